"""The per-object SQLite engine: one database file per object, one open write batch.

SQLite runs inline on the calling (trio) thread: a point write costs ~10 µs,
less than any thread hop, and a hop would let the autojump MockClock leap
(under ``MockClock(autojump_threshold=0)`` a 50 ms hop moved virtual time 10 s).

Invariants:

* The current write batch is ONE open SQLite transaction. The first write
  after a commit issues ``BEGIN IMMEDIATE``; later writes join it; reads on
  the same connection see its uncommitted rows (so a get after an unawaited
  put sees the put). :meth:`ObjectDatabase.commit` ends the batch,
  :meth:`ObjectDatabase.rollback` discards it (a power cut).
* ``storage.transaction()`` is a SAVEPOINT inside the open batch. While one
  is open, :attr:`ObjectDatabase.can_commit` is False: the actor must not
  commit half a transaction.
* A read never creates the database file; a read of an object that has no
  file returns nothing. The first write creates the file (WAL mode is set
  then, and persists in the file).
* The alarm time (ms since the epoch) lives in ``_cf_METADATA`` in the same
  database, so it commits atomically with the writes that set it. The
  database keeps a copy of it in memory (every alarm event reads it), valid
  while the connection stays open and no rollback undid a write: both make
  the next read go to SQLite again. While an ``alarm()`` handler runs, the
  stored time is hidden (reads return None) and deleted only in the batch
  that ends the run (:meth:`ObjectDatabase.hide_alarm`).
* Every connection (and every scratch connection) has foreign keys on, as in
  production, and :attr:`ObjectDatabase.policy` as its authorizer: user SQL
  (``runtime.storage._sql``) meets production's rules and limits, the
  runtime's own statements run unrestricted.
* At most ``ConnectionPool.max_open`` connections are open (a WAL database
  holds three descriptors). Opening one more closes the least recently used
  *clean* connection (no open batch, no savepoint); a dirty connection is
  never closed behind the owner's back, so if every open database is dirty
  the pool goes over its bound and counts it.
* ``synchronous=NORMAL`` in WAL mode survives a killed process (the failure
  the fault kit simulates); a power loss at the OS level may lose the last
  commits, which production would not. We accept that for ~20x throughput.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import resource
import sqlite3
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Concatenate, Final, ParamSpec, TypeVar

from shards._errors import StorageError

from ._policy import SqlPolicy

__all__ = [
    "ConnectionPool",
    "DatabaseStatistics",
    "ObjectDatabase",
    "PoolStatistics",
    "SavepointToken",
    "default_max_open",
    "sqlite_error_text",
]

logger = logging.getLogger("shardsim.storage")

#: Descriptors one open database holds: the main file and -wal (an exclusive
#: WAL database keeps its index in memory: no -shm file).
FDS_PER_DATABASE: Final = 2
#: Descriptors we leave for everything else (sockets, D1, logs, the interpreter).
FD_RESERVE: Final = 256
_MIN_OPEN: Final = 4
_MAX_OPEN: Final = 10_000

_ALARM: Final = "alarm"

#: Exclusive databases with an open connection, by absolute path (see ObjectDatabase).
_HELD: weakref.WeakValueDictionary[str, ObjectDatabase] = weakref.WeakValueDictionary()

_SCHEMA: Final = (
    # TEXT with the default BINARY collation compares with memcmp on UTF-8 bytes: exactly
    # production's list() order. WITHOUT ROWID keeps rows in key order in one b-tree.
    "CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS _cf_METADATA (name TEXT PRIMARY KEY, value)",
)


_KV_PUT: Final = "INSERT OR REPLACE INTO _cf_KV (key, value) VALUES (?, ?)"
# An upsert updates the row in place (no delete and insert, as REPLACE does): a third cheaper.
_ALARM_SET: Final = (
    f"INSERT INTO _cf_METADATA (name, value) VALUES ('{_ALARM}', ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
_ALARM_DELETE: Final = f"DELETE FROM _cf_METADATA WHERE name = '{_ALARM}'"

_P = ParamSpec("_P")
_R = TypeVar("_R")


# SQLite's primary result codes (https://www.sqlite.org/rescode.html), which workerd names
# in its error messages (src/workerd/util/sqlite.c++, namedErrorCode).
_PRIMARY_CODES: Final = tuple(
    f"SQLITE_{name}"
    for name in [
        "OK",
        "ERROR",
        "INTERNAL",
        "PERM",
        "ABORT",
        "BUSY",
        "LOCKED",
        "NOMEM",
        "READONLY",
        "INTERRUPT",
        "IOERR",
        "CORRUPT",
        "NOTFOUND",
        "FULL",
        "CANTOPEN",
        "PROTOCOL",
        "EMPTY",
        "SCHEMA",
        "TOOBIG",
        "CONSTRAINT",
        "MISMATCH",
        "MISUSE",
        "NOLFS",
        "AUTH",
        "FORMAT",
        "RANGE",
        "NOTADB",
        "NOTICE",
        "WARNING",
    ]
)


def sqlite_error_code_name(exc: sqlite3.Error) -> str | None:
    """The primary result code name of a sqlite3 error (``SQLITE_CONSTRAINT``), or None.

    Python gives the extended code (``SQLITE_CONSTRAINT_UNIQUE``); production
    prints the primary one, which is the extended code's low byte.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    primary = code & 0xFF
    return _PRIMARY_CODES[primary] if primary < len(_PRIMARY_CODES) else f"SQLITE_{primary}"


def sqlite_error_text(exc: sqlite3.Error) -> str:
    """Format a sqlite3 error as production does: ``<message>: <primary code name>``.

    For example ``database or disk is full: SQLITE_FULL``.
    """
    name = sqlite_error_code_name(exc)
    return str(exc) if name is None else f"{exc}: {name}"


def _sqlite_boundary(
    method: Callable[Concatenate[ObjectDatabase, _P], _R],
) -> Callable[Concatenate[ObjectDatabase, _P], _R]:
    """Convert sqlite3 errors escaping ``method`` to StorageError (chained with ``from``)."""

    @functools.wraps(method)
    def wrapper(self: ObjectDatabase, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StorageError(sqlite_error_text(exc)) from exc

    return wrapper


def default_max_open() -> int:
    """The default bound on open connections, from the soft ``RLIMIT_NOFILE``.

    ``(soft - 256) // 2``: two descriptors per exclusive WAL database, 256
    kept in reserve, clamped to [4, 10000].
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_OPEN
    return max(_MIN_OPEN, min(_MAX_OPEN, (soft - FD_RESERVE) // FDS_PER_DATABASE))


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolStatistics:
    """A snapshot of a :class:`ConnectionPool`.

    Attributes:
        open: connections open now.
        max_open: the pool's bound.
        opened_total: connections ever opened.
        closed_total: connections ever closed (evictions and explicit closes).
        evicted_total: connections closed by the pool to stay within its bound.
        over_bound: times a connection was opened while every other one was dirty,
            leaving the pool above its bound.
    """

    open: int
    max_open: int
    opened_total: int
    closed_total: int
    evicted_total: int
    over_bound: int


class ConnectionPool:
    """Bounds the number of open SQLite connections across all objects.

    Over the bound, a randomly chosen clean connection is closed (seeded,
    so runs repeat). Not LRU on purpose: objects that take turns in a cycle
    (ticking shards, alarms) are the common case here, and a cyclic scan
    over more objects than the bound makes LRU miss on every access, while
    random eviction keeps about ``bound / objects`` of them open.

    Args:
        max_open: most connections open at once; default :func:`default_max_open`.
    """

    def __init__(self, max_open: int | None = None) -> None:
        if max_open is None:
            max_open = default_max_open()
        if max_open < 1:
            raise ValueError(f"max_open must be at least 1, got {max_open}")
        self.max_open = max_open
        # Open databases (hashed by identity) and their position in _open,
        # for O(1) random choice and removal.
        self._open: list[ObjectDatabase] = []
        self._index: dict[ObjectDatabase, int] = {}
        self._rng = random.Random(0)
        #: Called when every open connection is dirty and one must close: the
        #: runtime commits pending batches (committing early is always allowed),
        #: which makes their connections evictable.
        self.relieve_pressure: Callable[[], None] | None = None
        self._opened_total = 0
        self._closed_total = 0
        self._evicted_total = 0
        self._over_bound = 0

    def statistics(self) -> PoolStatistics:
        """Return counters for this pool."""
        return PoolStatistics(
            open=len(self._open),
            max_open=self.max_open,
            opened_total=self._opened_total,
            closed_total=self._closed_total,
            evicted_total=self._evicted_total,
            over_bound=self._over_bound,
        )

    def close_all(self) -> None:
        """Close every open connection (runtime shutdown).

        Uncommitted batches are rolled back, as a crash would lose them.
        """
        for db in list(self._open):
            db.close()

    # Private: called by ObjectDatabase.

    def _opened(self, db: ObjectDatabase) -> None:
        self._opened_total += 1
        self._index[db] = len(self._open)
        self._open.append(db)
        if len(self._open) <= self.max_open:
            return
        victim = self._choose_victim(db)
        if victim is None and self.relieve_pressure is not None:
            self.relieve_pressure()
            victim = self._choose_victim(db)
        if victim is not None:
            logger.debug("pool: closing idle connection to %s", victim.path)
            self._evicted_total += 1
            victim._close_connection()  # calls _closed
            return
        self._over_bound += 1
        # Warn once per pool; afterwards the count in statistics() tells the story.
        log = logger.warning if self._over_bound == 1 else logger.debug
        log(
            "pool: %d connections open, above the bound of %d: every other database has uncommitted writes",
            len(self._open),
            self.max_open,
        )

    def _choose_victim(self, keep: ObjectDatabase) -> ObjectDatabase | None:
        open_ = self._open
        for _ in range(8):  # a few random probes find a clean one almost always
            candidate = open_[self._rng.randrange(len(open_))]
            if candidate is not keep and candidate._evictable():
                return candidate
        for candidate in open_:
            if candidate is not keep and candidate._evictable():
                return candidate
        return None

    def _touch(self, db: ObjectDatabase) -> None:
        """Called on every use; random eviction needs no bookkeeping here."""

    def _closed(self, db: ObjectDatabase) -> None:
        index = self._index.pop(db, None)
        if index is None:
            return
        last = self._open.pop()
        if last is not db:
            self._open[index] = last
            self._index[last] = index
        self._closed_total += 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SavepointToken:
    """Names one open savepoint: the batch it belongs to and its nesting depth."""

    generation: int
    depth: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseStatistics:
    """A snapshot of one :class:`ObjectDatabase`.

    Attributes:
        commits: batches committed.
        rollbacks: batches discarded by :meth:`ObjectDatabase.rollback` or a failed commit.
        failed_commits: commits that raised.
        opens: times a connection was opened (reopens after eviction included).
    """

    commits: int
    rollbacks: int
    failed_commits: int
    opens: int


class ObjectDatabase:
    """One object's SQLite database: the KV table, metadata (alarm) and user SQL tables.

    One connection per object file, held by one runtime (production's "one
    live instance per id"). With ``exclusive`` (the runtime's default) this
    process enforces it: while the connection is open no other
    ``ObjectDatabase`` of the process opens the file (it gets SQLITE_BUSY),
    and the runtime holds a lock on its whole state directory, which keeps
    other processes out (``runtime._runtime``). SQLite's own file locks are
    off for such a connection (the ``unix-none`` VFS): SQLite's unix VFS
    keeps every file it locks in one list that it searches on each open, so
    with 10,000 databases open, opening one more cost ~3 ms instead of
    ~0.2 ms, and a runtime with more live objects than its pool's bound
    reopens databases all the time.

    Args:
        path: the database file. It is created by the first write, never by a read.
        pool: the pool this database's connection counts against.
        exclusive: the runtime's default, see above. Tests that inspect the
            file through a second connection turn it off: SQLite's locks
            and shared memory then apply.
    """

    def __init__(self, path: str | os.PathLike[str], pool: ConnectionPool, *, exclusive: bool = True) -> None:
        self.path = os.fspath(path)
        self._pool = pool
        self._exclusive = exclusive
        self._conn: sqlite3.Connection | None = None
        # The connection's own cursor, for the runtime's statements whose rows are read at
        # once: conn.execute() makes a cursor per call, and sqlite3 keeps a weak reference
        # to each (up to 200 per connection), which the garbage collector then walks.
        self._cur: sqlite3.Cursor | None = None
        # None: not checked yet. Only we create the file, so True is final.
        self._exists: bool | None = None
        self._in_batch = False
        self._savepoints = 0
        # Bumped whenever a batch ends, so a savepoint token from a discarded batch is stale.
        self._generation = 0
        self._fail_next_commit: str | None = None
        # The alarm time as stored (batch included), when _alarm_known: see get_alarm.
        self._alarm: int | None = None
        self._alarm_known = False
        self._alarm_hidden = False  # see hide_alarm
        #: The authorizer of this database's connections (user SQL rules, internal bypass).
        self.policy = SqlPolicy()
        self._commits = 0
        self._rollbacks = 0
        self._failed_commits = 0
        self._opens = 0

    def __repr__(self) -> str:
        state = "dirty" if self._in_batch else "clean"
        return f"<ObjectDatabase {self.path!r} {state} open={self._conn is not None}>"

    # --- batch control (the actor) --------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """Whether a write batch is open (uncommitted writes exist)."""
        return self._in_batch

    @property
    def can_commit(self) -> bool:
        """False while a ``transaction()`` savepoint is open: committing now would split it."""
        return self._savepoints == 0

    def commit(self) -> None:
        """Commit the open batch; a no-op when clean.

        Raises:
            StorageError: the commit failed (or a fault was injected); the batch
                was rolled back, so none of its writes survive.
        """
        if not self._in_batch:
            return
        if self._savepoints:
            raise AssertionError(
                "commit() while a storage.transaction() is open (check can_commit); please file a bug"
            )
        cur = self._cur
        assert cur is not None, "a batch is open, so the connection is"
        if self._fail_next_commit is not None:
            message, self._fail_next_commit = self._fail_next_commit, None
            self._failed_commits += 1
            self._discard_batch()
            logger.warning("commit failed (injected) for %s: %s", self.path, message)
            raise StorageError(message)
        try:
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            self._failed_commits += 1
            # A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY) or may
            # have rolled it back already; either way the batch must be gone afterwards.
            self._discard_batch()
            logger.warning("commit failed for %s: %s", self.path, exc)
            raise StorageError(sqlite_error_text(exc)) from exc
        self._in_batch = False
        self._generation += 1
        self._commits += 1

    def rollback(self) -> None:
        """Discard the open batch and any savepoints in it (a crash or power cut)."""
        if self._in_batch:
            self._discard_batch()

    def fail_next_commit(self, message: str = "simulated storage failure (fault injection)") -> None:
        """Fault hook: make the next :meth:`commit` that has work to do fail.

        It rolls the batch back and raises :class:`StorageError` with ``message``.
        """
        self._fail_next_commit = message

    def close(self) -> None:
        """Release the connection. Uncommitted writes are rolled back, as in a crash.

        The database stays usable: the next call reopens the file.
        """
        if self._in_batch:
            logger.warning("closing %s with uncommitted writes: they are discarded", self.path)
        self._close_connection()

    def statistics(self) -> DatabaseStatistics:
        """Return counters for this database."""
        return DatabaseStatistics(
            commits=self._commits,
            rollbacks=self._rollbacks,
            failed_commits=self._failed_commits,
            opens=self._opens,
        )

    # --- connections ----------------------------------------------------------------------------

    def read_connection(self) -> sqlite3.Connection | None:
        """The connection for a read, or None when the object has no file (nothing stored)."""
        conn = self._conn
        if conn is not None:
            self._pool._touch(self)
            return conn
        if not self._file_exists():
            return None
        return self._open()

    def write_connection(self) -> sqlite3.Connection:
        """The connection for a write, inside the open batch (begun here if needed).

        Creates the database file on the object's first write.

        Raises:
            StorageError: the file could not be created or the batch could not begin.
        """
        conn = self._conn
        if conn is None:
            conn = self._open()
        else:
            self._pool._touch(self)
        if not self._in_batch:
            try:
                self._cursor().execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(
                    f"cannot begin a write batch on {self.path}: {sqlite_error_text(exc)}"
                ) from exc
            self._in_batch = True
        return conn

    def _cursor(self) -> sqlite3.Cursor:
        """The open connection's own cursor (see ``_cur``)."""
        cur = self._cur
        assert cur is not None, "the connection is open"
        return cur

    def _write_cursor(self) -> sqlite3.Cursor:
        """:meth:`write_connection`, as its own cursor."""
        self.write_connection()
        return self._cursor()

    def _file_exists(self) -> bool:
        if not self._exists:  # re-check while missing: only a write of ours creates it
            self._exists = os.path.exists(self.path)
        return self._exists

    def _open(self) -> sqlite3.Connection:
        creating = not self._file_exists()
        try:
            if creating:
                # do/<binding>/ may not exist yet: the first object of a binding creates it.
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            if self._exclusive:
                key = os.path.abspath(self.path)
                holder = _HELD.get(key)
                if holder is not None and holder is not self:
                    raise StorageError(
                        f"cannot open {self.path}: database is locked: SQLITE_BUSY "
                        "(another connection of this process holds it)"
                    )
                # No SQLite file locks (see the class docstring): the "unix-none" VFS.
                conn = sqlite3.connect(
                    f"file:{urllib.parse.quote(self.path)}?vfs=unix-none",
                    uri=True,
                    isolation_level=None,
                    timeout=0,
                )
            else:
                # timeout=0: a locked database fails at once (SQLITE_BUSY) instead of blocking
                # the trio thread for sqlite3's default 5 s.
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        except OSError as exc:
            raise StorageError(f"cannot create the directory of {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {sqlite_error_text(exc)}") from exc
        try:
            # Exclusive locking mode: WAL then needs no -shm file (its index
            # lives in this connection's memory), which halves the cost of
            # creating and reopening a database on disks where creating a file
            # is slow (measured ~1.5 ms per file here).
            if self._exclusive:
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            if creating:
                # journal_mode is stored in the file: set once, kept by every later open.
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._configure(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise StorageError(f"cannot initialise {self.path}: {sqlite_error_text(exc)}") from exc
        self._exists = True
        self._conn = conn
        self._cur = conn.cursor()
        if self._exclusive:
            _HELD[os.path.abspath(self.path)] = self
        self._opens += 1
        logger.debug("%s %s", "created" if creating else "opened", self.path)
        self._pool._opened(self)
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        # Production enforces foreign keys (workerd's sql-test.js: "By default, [foreign] keys
        # are enforced"); SQLite ignores this PRAGMA inside a transaction, so set it first.
        conn.execute("PRAGMA foreign_keys=ON")
        for statement in _SCHEMA:
            conn.execute(statement)
        self.policy.install(conn)

    def scratch_connection(self) -> sqlite3.Connection:
        """An in-memory database shaped like a new object's, with the same rules.

        It serves user SQL on an object that has no file yet, so a read can run
        (and return what an empty object holds) without creating the file. The
        caller closes it.
        """
        conn = sqlite3.connect(":memory:", isolation_level=None)
        self._configure(conn)
        return conn

    def _evictable(self) -> bool:
        return self._conn is not None and not self._in_batch and self._savepoints == 0

    def _close_connection(self) -> None:
        conn = self._conn
        if conn is None:
            return
        if self._in_batch:
            self._discard_batch()
        self._conn = None
        self._cur = None
        self._alarm_known = False
        if self._exclusive:
            key = os.path.abspath(self.path)
            if _HELD.get(key) is self:
                del _HELD[key]
        conn.close()
        self._pool._closed(self)

    def _discard_batch(self) -> None:
        conn = self._conn
        assert conn is not None
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # pragma: no cover - SQLite rolls back on its own then
                logger.exception("rollback failed for %s", self.path)
        self._in_batch = False
        self._savepoints = 0
        self._generation += 1
        self._rollbacks += 1
        self._alarm_known = False

    # --- savepoints (storage.transaction) -------------------------------------------------------

    @_sqlite_boundary
    def savepoint(self) -> SavepointToken:
        """Open a (nested) savepoint inside the batch; the batch begins if needed.

        Returns:
            The token that :meth:`release_savepoint`, :meth:`rollback_savepoint`
            and :meth:`undo_savepoint` take.
        """
        if self._alarm_hidden:
            # A rollback to the savepoint must find the alarm deleted, as the
            # handler saw it: delete it for real before the savepoint opens.
            self.set_alarm(None)
        cur = self._write_cursor()
        token = SavepointToken(generation=self._generation, depth=self._savepoints)
        cur.execute(f"SAVEPOINT _cf_txn_{token.depth}")
        self._savepoints += 1
        return token

    def _savepoint_alive(self, token: SavepointToken) -> bool:
        # A discarded batch (crash, failed commit) took its savepoints with it: the
        # transaction's cleanup then has nothing left to do.
        if token.generation != self._generation:
            return False
        if token.depth != self._savepoints - 1:
            raise AssertionError(f"savepoints closed out of order ({token}); please file a bug")
        return True

    @_sqlite_boundary
    def release_savepoint(self, token: SavepointToken) -> None:
        """Keep the savepoint's writes (they stay in the batch) and close it."""
        if self._savepoint_alive(token):
            self._savepoints -= 1
            self._cursor().execute(f"RELEASE _cf_txn_{token.depth}")

    @_sqlite_boundary
    def rollback_savepoint(self, token: SavepointToken) -> None:
        """Undo the savepoint's writes and close it."""
        if self._savepoint_alive(token):
            self._savepoints -= 1
            self._alarm_known = False
            cur = self._cursor()
            cur.execute(f"ROLLBACK TO _cf_txn_{token.depth}")
            cur.execute(f"RELEASE _cf_txn_{token.depth}")

    @_sqlite_boundary
    def undo_savepoint(self, token: SavepointToken) -> None:
        """Undo the savepoint's writes so far, leaving it open (``txn.rollback()``)."""
        if self._savepoint_alive(token):
            self._alarm_known = False
            self._cursor().execute(f"ROLLBACK TO _cf_txn_{token.depth}")

    # --- KV ------------------------------------------------------------------------------------

    def kv_get(self, key: str) -> bytes | None:
        """The stored bytes of ``key``, or None."""
        # The hot path: the sqlite3 boundary is written out here rather than by decorator.
        if self.read_connection() is None:
            return None
        try:
            row = self._cursor().execute("SELECT value FROM _cf_KV WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(sqlite_error_text(exc)) from exc
        return None if row is None else row[0]

    @_sqlite_boundary
    def kv_get_many(self, keys: Iterable[str]) -> list[tuple[str, bytes]]:
        """The stored entries among ``keys``, in key order; missing keys are omitted."""
        if self.read_connection() is None:
            return []
        cur = self._cursor()
        found: dict[str, bytes] = {}
        # One point query per key (not one IN (...) query): the SQL API may lower SQLite's
        # bound-variable limit on this connection, and 128 cached point lookups cost ~0.3 ms.
        for key in keys:
            row = cur.execute("SELECT value FROM _cf_KV WHERE key = ?", (key,)).fetchone()
            if row is not None:
                found[key] = row[0]
        # Surrogate-free str order is code point order, which is UTF-8 byte order.
        return sorted(found.items())

    def kv_put(self, key: str, value: bytes) -> None:
        """Store one ``key`` and its encoded value in the open batch (the hot path)."""
        cur = self._write_cursor()
        try:
            cur.execute(_KV_PUT, (key, value))
        except sqlite3.Error as exc:
            raise StorageError(sqlite_error_text(exc)) from exc

    def kv_put_many(self, entries: Sequence[tuple[str, bytes]]) -> None:
        """Store every ``(key, encoded value)`` in the open batch."""
        cur = self._write_cursor()
        try:
            if len(entries) == 1:  # execute is cheaper than executemany
                cur.execute(_KV_PUT, entries[0])
            else:
                cur.executemany(_KV_PUT, entries)
        except sqlite3.Error as exc:
            raise StorageError(sqlite_error_text(exc)) from exc

    @_sqlite_boundary
    def kv_delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` in the open batch; return how many existed."""
        if self._conn is None and not self._file_exists():
            return 0  # nothing stored: do not create a file to delete nothing
        cur = self._write_cursor()
        count = 0
        for key in keys:
            count += cur.execute("DELETE FROM _cf_KV WHERE key = ?", (key,)).rowcount
        return count

    @_sqlite_boundary
    def kv_list(
        self,
        *,
        lower: str | None,
        lower_inclusive: bool,
        upper: str | None,
        limit: int | None,
        reverse: bool,
    ) -> list[tuple[str, bytes]]:
        """Entries with ``lower <(=) key < upper``, ascending (or descending), at most ``limit``."""
        conn = self.read_connection()
        if conn is None:
            return []
        where: list[str] = []
        params: list[object] = []
        if lower is not None:
            where.append("key >= ?" if lower_inclusive else "key > ?")
            params.append(lower)
        if upper is not None:
            where.append("key < ?")
            params.append(upper)
        sql = "SELECT key, value FROM _cf_KV"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY key DESC" if reverse else " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return conn.execute(sql, params).fetchall()

    # --- alarm and deleteAll --------------------------------------------------------------------

    def get_alarm(self) -> int | None:
        """The alarm time in ms since the epoch (batch included), or None; None while hidden."""
        if self._alarm_hidden:
            return None
        if self._alarm_known:
            return self._alarm
        return self._read_alarm()

    def hide_alarm(self) -> None:
        """A run of the alarm begins: reads return None until it ends or the alarm is set.

        The stored time is not deleted now but by :meth:`clear_hidden_alarm`
        in the batch that ends a successful run. Commits made while the
        handler runs (an outbound call's output gate, say) thus keep it
        stored, and a crash before the run ends fires it again (at least
        once). :meth:`set_alarm` (the handler's setAlarm or deleteAlarm)
        ends the hiding; so does a savepoint, which deletes the stored time
        first, so that rolling back to it gives what the handler saw.
        """
        self._alarm_hidden = True

    def clear_hidden_alarm(self) -> bool:
        """The run succeeded: delete the hidden time in the open batch; returns whether it wrote."""
        if not self._alarm_hidden:
            return False
        self.set_alarm(None)
        return True

    def reveal_alarm(self) -> None:
        """The run failed or was cut: the stored time stands (and reads see it again)."""
        self._alarm_hidden = False

    @_sqlite_boundary
    def _read_alarm(self) -> int | None:
        if self.read_connection() is None:
            return None
        row = self._cursor().execute("SELECT value FROM _cf_METADATA WHERE name = ?", (_ALARM,)).fetchone()
        self._alarm = None if row is None else int(row[0])
        self._alarm_known = True
        return self._alarm

    def set_alarm(self, scheduled_ms: int | None) -> None:
        """Store (or with None, delete) the alarm time in the open batch."""
        # A hot path (every alarm event): the sqlite3 boundary is written out here.
        self._alarm_hidden = False
        params: tuple[int, ...]
        if scheduled_ms is None:
            if self._conn is None and not self._file_exists():
                return
            sql, params = _ALARM_DELETE, ()
        else:
            sql, params = _ALARM_SET, (scheduled_ms,)
        cur = self._write_cursor()
        self._alarm_known = False  # until the write has succeeded
        try:
            cur.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(sqlite_error_text(exc)) from exc
        self._alarm = scheduled_ms
        self._alarm_known = True

    @_sqlite_boundary
    def delete_all(self, *, delete_alarm: bool) -> int:
        """Delete every KV entry and every user SQL object in the open batch.

        User tables, indexes, views and triggers (any name not starting with
        ``_cf_`` or ``sqlite_``) are dropped; the alarm is deleted only when
        ``delete_alarm`` is true (production's ``delete_all_deletes_alarm``).

        Returns:
            How many KV entries were deleted.
        """
        if self._conn is None and not self._file_exists():
            return 0
        if self._alarm_hidden:
            self.set_alarm(None)  # before the savepoint below (see savepoint)
        conn = self.write_connection()
        self._alarm_known = False  # read it again, whatever happens below
        # All or nothing, like production's deleteAll on SQLite: a failure part-way (a drop
        # SQLite refuses) undoes the whole call and leaves the rest of the batch alone.
        conn.execute("SAVEPOINT _cf_delete_all")
        try:
            count = self._delete_all_in(conn, delete_alarm=delete_alarm)
        except Exception:
            conn.execute("ROLLBACK TO _cf_delete_all")
            conn.execute("RELEASE _cf_delete_all")
            raise
        conn.execute("RELEASE _cf_delete_all")
        return count

    @staticmethod
    def _delete_all_in(conn: sqlite3.Connection, *, delete_alarm: bool) -> int:
        count: int = conn.execute("DELETE FROM _cf_KV").rowcount
        if delete_alarm:
            conn.execute("DELETE FROM _cf_METADATA WHERE name = ?", (_ALARM,))
        rows = conn.execute(
            "SELECT type, name FROM sqlite_master "
            "WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        ).fetchall()
        # Triggers and views first, then indexes, then tables; IF EXISTS because dropping a
        # table also drops its own indexes and triggers. Foreign keys between user tables
        # (when the user turned them on) are deferred, so the drop order does not matter:
        # once every table is gone, nothing is left to violate.
        order = {"trigger": 0, "view": 1, "index": 2, "table": 3}
        deferred = conn.execute("PRAGMA defer_foreign_keys").fetchone()[0]
        conn.execute("PRAGMA defer_foreign_keys = ON")
        try:
            for kind, name in sorted(rows, key=lambda r: order.get(r[0], 4)):
                if kind in order:
                    quoted = '"' + name.replace('"', '""') + '"'
                    conn.execute(f"DROP {kind.upper()} IF EXISTS {quoted}")
        finally:
            conn.execute(f"PRAGMA defer_foreign_keys = {1 if deferred else 0}")
        return count
