"""The asyncio driver: D1's core on aiosqlite, for asyncio programs (``shardsim[asyncio]``).

The same core calls as the trio driver run here; each SQL step is awaited
on aiosqlite's worker thread. aiosqlite cannot run under trio (trio refuses
asyncio futures), so this driver is for asyncio programs only; the runtime
itself uses the trio driver.

Invariants:

* One core call at a time per database (an ``asyncio.Lock``): a call's steps
  are awaited one by one, and two calls interleaving their steps would mix
  their transactions on the one connection.
* The authorizer's ``internal`` flag is set on the event loop before an
  internal step is queued and cleared after it completed; steps run strictly
  one after another, so no user statement is ever compiled while it is set.
* The sqlite3 connection is created and configured (limits, authorizer,
  WAL) on aiosqlite's thread, by the connector we hand to it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

import aiosqlite

from ._api import D1Database
from ._core import (
    Answer,
    D1Limits,
    Engine,
    Execute,
    Executed,
    JsDict,
    Outcome,
    SqlValue,
    Step,
    StepFailed,
    first_row,
)
from ._trio import configure_connection, connect

__all__ = ["AsyncioDriver", "close_d1_asyncio", "open_d1_asyncio"]

T = TypeVar("T")


class AsyncioDriver:
    """Runs core calls on an aiosqlite connection. Made by :func:`open_d1_asyncio`."""

    def __init__(self, conn: aiosqlite.Connection, engine: Engine, now_ms: Callable[[], float]) -> None:
        self.engine = engine
        self._conn = conn
        self._now_ms = now_ms
        self._lock = asyncio.Lock()
        self._closed = False

    def invocation(self) -> object:
        """The current asyncio task (or the loop, outside any task)."""
        return asyncio.current_task() or asyncio.get_running_loop()

    async def close(self) -> None:
        """Close the connection and stop aiosqlite's thread."""
        if not self._closed:
            self._closed = True
            async with self._lock:
                await self._conn.close()

    async def run(self, call: Generator[Step, Answer, T]) -> T:
        """Run ``call``, awaiting aiosqlite for each SQL step."""
        async with self._lock:
            answer: Answer = None
            try:
                while True:
                    step = call.send(answer)
                    if type(step) is Execute:
                        answer = await self._step(step)
                    else:
                        answer = self._now_ms()
            except StopIteration as stop:
                result: T = stop.value
                return result
            finally:
                call.close()

    async def query(self, sql: str, params: Sequence[SqlValue], meta: bool = True) -> Outcome:
        """One prepared statement: the core's ``query`` generator, step by step."""
        return await self.run(self.engine.query(sql, params, meta))

    async def first(self, sql: str, params: Sequence[SqlValue]) -> JsDict | None:
        """``first()``'s row: :meth:`query` without meta, shaped by the core."""
        return first_row(await self.run(self.engine.query(sql, params, False)))

    async def _step(self, step: Execute) -> Executed | StepFailed:
        if self._closed:
            return StepFailed(sqlite3.ProgrammingError("Cannot operate on a closed database."))
        conn = self._conn
        authorizer = self.engine.authorizer
        if step.internal:
            authorizer.internal = True
        try:
            before = conn.total_changes
            cur = await conn.execute(step.sql, step.params)
            try:
                desc = cur.description
                rows: list[tuple[Any, ...]] = (
                    [tuple(r) for r in await cur.fetchall()] if desc is not None else []
                )
                columns = tuple(d[0] for d in desc) if desc is not None else ()
                return Executed(columns, rows, cur.lastrowid or 0, conn.total_changes - before)
            finally:
                await cur.close()
        except sqlite3.Error as exc:
            return StepFailed(exc)
        finally:
            authorizer.internal = False


async def open_d1_asyncio(
    path: str | os.PathLike[str],
    *,
    name: str = "",
    now_ms: Callable[[], float] | None = None,
    limits: D1Limits | None = None,
) -> D1Database:
    """Open a D1 database with the asyncio driver (aiosqlite); call inside a running loop.

    Close it with ``await close_d1_asyncio(db)``.

    Args:
        path: the SQLite file (created if missing) or ``":memory:"``.
        name: the database name, for ``repr``.
        now_ms: the clock for ``meta.duration``; default: the loop's monotonic clock in ms.
        limits: production's limits, and the opt-in queries-per-invocation check.
    """
    engine = Engine(limits)
    target = os.fspath(path)

    def connector() -> sqlite3.Connection:
        conn = connect(target)
        configure_connection(conn, engine)
        return conn

    conn = await aiosqlite.Connection(connector, 64)
    clock = now_ms if now_ms is not None else _loop_ms
    driver = AsyncioDriver(conn, engine, clock)
    try:
        await driver.run(engine.open())
    except BaseException:
        await driver.close()
        raise
    return D1Database(driver, name)


async def close_d1_asyncio(db: D1Database) -> None:
    """Close a database opened by :func:`open_d1_asyncio`."""
    driver = db._driver
    if not isinstance(driver, AsyncioDriver):
        raise TypeError(f"{db!r} was not opened by open_d1_asyncio")
    await driver.close()


def _loop_ms() -> float:
    return asyncio.get_running_loop().time() * 1000.0
