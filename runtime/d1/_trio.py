"""The trio driver: D1's core on sqlite3, inline on the trio thread.

SQLite runs inline, as object storage does (runtime.storage._engine): a point
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
  so sockets and timers are still polled. Cancellation lands on every call
  (a cancelled task's call passes a checkpoint, which raises). A call that
  need not yield passes no checkpoint at all: ``trio.testing.assert_checkpoints``
  around it fails, and ``assert_no_checkpoints`` holds. Whether it must
  yield is asked of :func:`runtime._trio_compat.checkpoint_needed`
  (see ``TrioDriver._gate``).
  Once SQLite work starts, the call finishes without yielding, so calls on
  one database never interleave.
* The connection uses ``isolation_level=None`` (the core issues BEGIN/COMMIT
  itself), WAL with ``synchronous=NORMAL``, production's limits through
  ``setlimit`` and the core's authorizer.
* ``timeout=0``: a database locked by another process (a CLI run while the
  dev server writes) fails at once with SQLITE_BUSY rather than blocking
  the trio thread.
* ``meta.size_after`` is what ``PRAGMA page_count`` reports after the write.
  On a WAL file the driver reads that number from SQLite's WAL-index header
  (:class:`WalPages`) instead of running the PRAGMA, which after a write
  costs half an INSERT; whenever the header cannot be trusted it runs the
  PRAGMA.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import struct
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Final, TypeVar

import trio

from runtime._core import Activation, current_activation
from runtime._trio_compat import checkpoint_needed

from ._api import D1Database
from ._core import (
    Answer,
    Authorizer,
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

#: Calls between two yields to trio when no other task is runnable (see ``TrioDriver._gate``).
_POLL_EVERY = 16


__all__ = [
    "TrioDriver",
    "WalPages",
    "close_d1",
    "configure_connection",
    "connect",
    "execute_step",
    "open_d1",
]

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


# The WAL-index header (https://sqlite.org/walformat.html, "The WAL-Index Header"): two
# copies of 48 bytes at the start of the -shm file, in native byte order. A writer updates
# the second copy, then the first; a reader that finds them equal has a consistent header.
_HEADER_BYTES: Final = 48
_WAL_INDEX_VERSION: Final = 3007000
#: iVersion, iChange, isInit, szPage, mxFrame, nPage (then checksums and salts, skipped).
_HEADER: Final = struct.Struct("=I4xIBxHII24x")
_IS_INIT: Final = 12
_N_PAGE: Final = struct.Struct("=20xI")


class WalPages:
    """The database size in pages, read from SQLite's WAL-index header (the ``-shm`` file).

    In WAL mode every commit writes the database size in pages (``nPage``)
    into the header before ``execute`` returns, and ``PRAGMA page_count`` reports
    that number. Reading it from a read-only mapping costs a fraction of a
    microsecond; the PRAGMA after a write opens a read transaction that moves
    the connection's WAL read mark (four fcntl calls), half the cost of the
    INSERT it follows (bench/d1.py).

    Made by :meth:`open` only when the header checks out against the
    connection; :meth:`pages` answers 0 whenever a read cannot be trusted, and
    the caller then runs the PRAGMA. The mapping must be closed before the
    connection: while the connection is open it holds SQLite's shared lock on
    the ``-shm`` file, so nobody truncates the file under the mapping.
    """

    __slots__ = ("_map",)

    def __init__(self, mapping: mmap.mmap) -> None:
        self._map = mapping

    @classmethod
    def open(cls, db_path: str, page_size: int, pages: int) -> WalPages | None:
        """Map ``db_path``'s ``-shm`` file if its header describes this database, else None.

        Args:
            db_path: the database file, as given to ``sqlite3.connect``.
            page_size: the database's page size (``PRAGMA page_size``).
            pages: ``PRAGMA page_count``, just read on the open connection.
        """
        # SQLite names the file after the database's full path with symlinks resolved.
        shm_path = os.path.realpath(db_path) + "-shm"
        try:
            with open(shm_path, "rb") as file:
                mapping = mmap.mmap(file.fileno(), 2 * _HEADER_BYTES, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # no such file, or shorter than the header
            return None
        version, _change, is_init, size_code, _frames, n_page = _HEADER.unpack_from(mapping, 0)
        # szPage holds 1 for 65536 (sqlite3WalBeginWriteTransaction's encoding).
        header_page_size = (size_code & 0xFE00) + ((size_code & 1) << 16)
        probe = cls(mapping)
        if (
            version == _WAL_INDEX_VERSION
            and is_init == 1
            and header_page_size == page_size
            and n_page == pages
            and probe.pages() == pages
        ):
            return probe
        mapping.close()
        return None

    def pages(self) -> int:
        """``nPage`` from the header, or 0 if the copies differ (a commit by another process in progress)."""
        mapping = self._map
        if mapping[_IS_INIT] != 1 or mapping[:_HEADER_BYTES] != mapping[_HEADER_BYTES : 2 * _HEADER_BYTES]:
            return 0
        pages: int = _N_PAGE.unpack_from(mapping, 0)[0]
        return pages

    def close(self) -> None:
        """Unmap the header (before the connection closes)."""
        self._map.close()


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
        self._pages: WalPages | None = None
        #: The cursor single user statements run on (see query_sync); None once closed.
        self._cursor: sqlite3.Cursor | None = None
        configure_connection(self._conn, self.engine)
        self.run_sync(self.engine.open())
        self._pages = self._open_wal_pages(self._conn)
        self._cursor = self._conn.cursor()

    def _open_wal_pages(self, conn: sqlite3.Connection) -> WalPages | None:
        if self.path in ("", ":memory:"):
            return None
        engine = self.engine
        mode = execute_step(conn, engine.authorizer, engine.internal_step("PRAGMA journal_mode"))
        count = execute_step(conn, engine.authorizer, engine.size_step)
        if type(mode) is not Executed or type(count) is not Executed or mode.rows[0][0] != "wal":
            return None
        return WalPages.open(self.path, engine.page_size, int(count.rows[0][0]))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    def close(self) -> None:
        """Close the connection; later calls fail with ``D1_ERROR``."""
        pages, self._pages = self._pages, None
        if pages is not None:
            pages.close()
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            cursor.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def invocation(self) -> object:
        """The current trio task: a handler runs in its caller's task, one per invocation."""
        return trio.lowlevel.current_task()

    def _gate(self) -> Awaitable[None] | None:
        # What to await before the call runs, or None: nothing to wait for. Not async:
        # the caller awaits what this returns, at once, and skips the await when there
        # is nothing to wait for (each coroutine costs ~1,000 instructions).
        act = current_activation()
        if act is not None:
            return self._object_gates(act)
        # Outside an object (Worker-style code, tests, tools) there is no input gate.
        # A yield with nothing else to run only polls for I/O and costs more than the
        # query (a scheduler pass and a syscall), so we yield when tasks are queued to
        # run, and otherwise every _POLL_EVERY calls. Cancellation lands on every call:
        # a cancelled task (or one a KeyboardInterrupt waits for) gets the checkpoint,
        # which raises. A call that runs at once passes no checkpoint at all. Counting it
        # as one for trio's testing helpers would mean awaiting checkpoint_if_cancelled()
        # on every call: ~2,800 instructions (~500 ns) more, twice what checkpoint_needed()
        # costs, for an answer checkpoint_needed() already gave. It is called here
        # rather than through a helper: one more Python call on this path measured ~100 ns.
        self._unpolled += 1
        if self._unpolled >= _POLL_EVERY or checkpoint_needed():
            self._unpolled = 0
            return trio.lowlevel.checkpoint()  # noqa: ASYNC105 - awaited by the caller
        return None

    @staticmethod
    async def _object_gates(act: Activation) -> None:
        # A D1 query is an outbound request: inside an object it waits until the
        # object's earlier storage writes are durable (the output gate), and
        # it fails, never runs, if they could not be written. It is network I/O in
        # production, so the object's input gate opens: any other event may run
        # while the query is awaited. One full checkpoint gives them that chance.
        gate = act.output_gate()
        if gate is not None:
            await gate
        await trio.lowlevel.checkpoint()

    async def run(self, call: Generator[Step, Answer, T]) -> T:
        """Run ``call``: output gate, one checkpoint (the input gate opens), then inline SQLite work."""
        gate = self._gate()
        if gate is not None:
            try:
                await gate
            except BaseException:
                call.close()
                raise
        return self.run_sync(call)

    async def query(self, sql: str, params: Sequence[SqlValue], meta: bool = True) -> Outcome:
        """One prepared statement: the gates, then :meth:`query_sync`."""
        gate = self._gate()
        if gate is not None:
            await gate
        return self.query_sync(sql, params, meta)

    async def first(self, sql: str, params: Sequence[SqlValue]) -> JsDict | None:
        """``first()``'s row (None without rows): the gates, then the statement inline.

        The same as ``first_of(await self.query(sql, params, False), None)``,
        without the :class:`Outcome`: a single statement runs here, on the
        driver's cursor, and its row is built with the statement's cached
        builder (tests/runtime/d1/test_fast_paths.py compares the two).
        """
        gate = self._gate()
        if gate is not None:
            await gate
        engine = self.engine
        prepared = engine.prepared(sql) or engine.prepare(sql)
        statement = prepared.single
        cursor = self._cursor
        if statement is None or cursor is None:
            return first_row(self.run_sync(engine.query(sql, params, False)))
        conn = cursor.connection
        before = conn.total_changes
        try:
            rows = cursor.execute(statement, params).fetchall()
        except sqlite3.Error as exc:
            raise engine.single_failed(StepFailed(exc), params) from exc
        if prepared.schema or conn.total_changes != before:
            engine.single_changed()
        if not rows:
            return None
        description = cursor.description
        if description != prepared.description:
            prepared.shape(description)
        return prepared.build(rows[0])

    def query_sync(self, sql: str, params: Sequence[SqlValue], meta: bool = True) -> Outcome:
        """What ``engine.query`` does, inline; for one statement without a generator (it is cheaper).

        The statement runs here rather than through :func:`execute_step`: a user
        statement never needs the authorizer's bypass, and no :class:`Executed`
        is made for it. It runs on the driver's one cursor: ``conn.execute``
        makes (and registers) a cursor per call, ~2,000 instructions, an
        eighth of a raw point query.
        Each ``execute`` starts afresh and ``fetchall`` runs the statement to
        its end, so nothing carries over from one call to the next.
        """
        engine = self.engine
        prepared = engine.prepared(sql) or engine.prepare(sql)
        statement = prepared.single
        cursor = self._cursor
        if statement is None or cursor is None:
            return self.run_sync(engine.query(sql, params, meta))
        conn = cursor.connection
        start = self._now_ms() if meta else 0.0
        before = conn.total_changes
        try:
            rows = cursor.execute(statement, params).fetchall()
        except sqlite3.Error as exc:
            raise engine.single_failed(StepFailed(exc), params) from exc
        changes = conn.total_changes - before
        duration = self._now_ms() - start if meta else 0.0
        outcome = engine.single_ran(
            prepared, cursor.description, rows, cursor.lastrowid or 0, changes, duration
        )
        if meta and engine.size_stale:
            probe = self._pages
            pages = probe.pages() if probe is not None else 0
            if pages:
                engine.pages_known(outcome, pages)
            else:
                engine.size_known(outcome, execute_step(conn, engine.authorizer, engine.size_step))
        return outcome

    def run_sync(self, call: Generator[Step, Answer, T]) -> T:
        """Run ``call`` to completion without yielding to trio (migrations, setup, tests)."""
        conn = self._conn
        engine = self.engine
        authorizer = engine.authorizer
        size_step = engine.size_step
        probe = self._pages
        answer: Answer = None
        try:
            while True:
                step = call.send(answer)
                if type(step) is Execute:
                    if conn is None:
                        answer = StepFailed(sqlite3.ProgrammingError("Cannot operate on a closed database."))
                    elif step is size_step and probe is not None and (pages := probe.pages()):
                        answer = Executed((), [(pages,)], 0, 0)
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
