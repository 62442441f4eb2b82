"""The trio driver: D1's core on sqlite3, inline on the trio thread.

SQLite runs inline, as object storage does (DESIGN.md, "Storage"): a point
query costs microseconds, less than any thread hop, and a hop would let the
autojump MockClock leap forward.

Invariants:

* Inside an object, a call first passes the object's output gate: D1 is an
  outbound request, so it waits for the object's earlier storage writes to
  be durable and fails if they were lost.
* Inside an object every awaited call then passes one trio checkpoint: D1 is
  network I/O in production, so the object's input gate opens and other
  events may run while a query is awaited. Outside objects (no input gate)
  a call yields when tasks are queued to run and at least every 16th call,
  so sockets and timers are still polled. Cancellation lands on every call.
  Once SQLite work starts, the call finishes without yielding, so calls on
  one database never interleave.
* The connection uses ``isolation_level=None`` (the core issues BEGIN/COMMIT
  itself), WAL with ``synchronous=NORMAL``, production's limits through
  ``setlimit`` and the core's authorizer.
* ``timeout=0``: a database locked by another process (a CLI run while the
  dev server writes) fails at once with SQLITE_BUSY rather than blocking
  the trio thread.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Generator, Sequence
from typing import TypeVar

import trio

from runtime._actor import current_activation

from ._api import D1Database
from ._core import (
    Answer,
    Authorizer,
    D1Limits,
    Engine,
    Execute,
    Executed,
    Outcome,
    SqlValue,
    Step,
    StepFailed,
)

#: Calls between two yields to trio when no other task is runnable (see ``_gates``).
_POLL_EVERY = 16

__all__ = ["TrioDriver", "close_d1", "configure_connection", "connect", "execute_step", "open_d1"]

T = TypeVar("T")


def execute_step(conn: sqlite3.Connection, authorizer: Authorizer, step: Execute) -> Executed | StepFailed:
    """Run one core step on ``conn`` (synchronously) and describe what happened."""
    if step.internal:
        authorizer.internal = True
    try:
        before = conn.total_changes
        cur = conn.execute(step.sql, step.params)
        desc = cur.description
        if desc is None:
            return Executed((), [], cur.lastrowid or 0, conn.total_changes - before)
        rows = cur.fetchall()
        return Executed(tuple([d[0] for d in desc]), rows, cur.lastrowid or 0, conn.total_changes - before)
    except sqlite3.Error as exc:
        return StepFailed(exc)
    finally:
        authorizer.internal = False


def configure_connection(conn: sqlite3.Connection, engine: Engine) -> None:
    """Apply production's limits and the authorizer to a fresh connection."""
    for name, value in engine.limits.sqlite_limits().items():
        conn.setlimit(getattr(sqlite3, name), value)
    conn.set_authorizer(engine.authorizer)


def connect(path: str) -> sqlite3.Connection:
    """Open ``path`` for D1 (creating its directory); WAL, synchronous=NORMAL, no implicit transactions."""
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class TrioDriver:
    """Runs core calls inline on one sqlite3 connection.

    Args:
        path: the database file (``":memory:"`` for a throwaway database).
        now_ms: the runtime clock, for ``meta.duration``.
        limits: production's limits (default: :class:`D1Limits`).
    """

    def __init__(
        self, path: str | os.PathLike[str], now_ms: Callable[[], float], limits: D1Limits | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.engine = Engine(limits)
        self._now_ms = now_ms
        self._unpolled = 0
        self._conn: sqlite3.Connection | None = connect(self.path)
        configure_connection(self._conn, self.engine)
        self.run_sync(self.engine.open())

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    def close(self) -> None:
        """Close the connection; later calls fail with ``D1_ERROR``."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def invocation(self) -> object:
        """The current trio task: a handler runs in its caller's task, one per invocation."""
        return trio.lowlevel.current_task()

    async def _gates(self) -> None:
        act = current_activation()
        if act is not None:
            # A D1 query is an outbound request: inside an object it waits until the
            # object's earlier storage writes are durable (output gate, gotcha 5), and
            # it fails, never runs, if they could not be written. It is network I/O in
            # production, so the object's input gate opens: any other event may run
            # while the query is awaited. One full checkpoint gives them that chance.
            await act.output_gate()
            await trio.lowlevel.checkpoint()
            return
        # Outside an object (Worker-style code, tests, tools) there is no input gate.
        # A yield with nothing else to run only polls for I/O and costs more than the
        # query (a scheduler pass and a syscall), so we yield when tasks are queued to
        # run, and otherwise every _POLL_EVERY calls. Cancellation lands on every call.
        self._unpolled += 1
        if self._unpolled >= _POLL_EVERY or trio.lowlevel.current_statistics().tasks_runnable:
            self._unpolled = 0
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    async def run(self, call: Generator[Step, Answer, T]) -> T:
        """Run ``call``: output gate, one checkpoint (the input gate opens), then inline SQLite work."""
        try:
            await self._gates()
        except BaseException:
            call.close()
            raise
        return self.run_sync(call)

    async def query(self, sql: str, params: Sequence[SqlValue]) -> Outcome:
        """One prepared statement: the gates, then :meth:`query_sync`."""
        await self._gates()
        return self.query_sync(sql, params)

    def query_sync(self, sql: str, params: Sequence[SqlValue]) -> Outcome:
        """What ``engine.query`` does, inline; for one statement without a generator (it is cheaper)."""
        engine = self.engine
        prepared = engine.prepare(sql)
        statement = prepared.single
        conn = self._conn
        if statement is None or conn is None:
            return self.run_sync(engine.query(sql, params))
        authorizer = engine.authorizer
        start = self._now_ms()
        answer = execute_step(conn, authorizer, Execute(statement, params))
        if type(answer) is not Executed:
            raise engine.single_failed(answer, params)
        outcome = engine.single_done(prepared, answer, self._now_ms() - start)
        if outcome.changed_db:
            engine.size_known(outcome, execute_step(conn, authorizer, engine.size_step))
        return outcome

    def run_sync(self, call: Generator[Step, Answer, T]) -> T:
        """Run ``call`` to completion without yielding to trio (migrations, setup, tests)."""
        conn = self._conn
        authorizer = self.engine.authorizer
        answer: Answer = None
        try:
            while True:
                step = call.send(answer)
                if type(step) is Execute:
                    if conn is None:
                        answer = StepFailed(sqlite3.ProgrammingError("Cannot operate on a closed database."))
                    else:
                        answer = execute_step(conn, authorizer, step)
                else:
                    answer = self._now_ms()
        except StopIteration as stop:
            result: T = stop.value
            return result


def open_d1(
    path: str | os.PathLike[str],
    *,
    name: str = "",
    now_ms: Callable[[], float] | None = None,
    limits: D1Limits | None = None,
) -> D1Database:
    """Open a D1 database file with the trio driver and return its binding object.

    Close it with ``close_d1(db)`` (the runtime does so for its bindings).

    Args:
        path: the SQLite file (created if missing) or ``":memory:"``.
        name: the database name, for ``repr`` and errors.
        now_ms: the clock for ``meta.duration``; default: the current trio clock in ms.
        limits: production's limits, and the opt-in queries-per-invocation check.
    """
    clock = now_ms if now_ms is not None else _trio_ms
    return D1Database(TrioDriver(path, clock, limits), name)


def close_d1(db: D1Database) -> None:
    """Close a database opened by :func:`open_d1`; later calls fail with ``D1_ERROR``."""
    driver = db._driver
    if not isinstance(driver, TrioDriver):
        raise TypeError(f"{db!r} was not opened by open_d1")
    driver.close()


def _trio_ms() -> float:
    return trio.current_time() * 1000.0
