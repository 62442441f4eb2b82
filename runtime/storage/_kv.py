"""``ctx.storage``: the async and sync KV API, with production's names and rules.

Calling convention (the reason this module looks the way it does):
production code calls ``self.ctx.storage.put(...)`` without ``await``, and an
``async def`` called without ``await`` never runs (and warns, an error in our
test configuration). So every storage method is a plain function that does
its work *at once* and returns an awaitable that is safe to drop:

* :class:`StorageResult` holds the already computed value; awaiting it
  returns that value without suspending. Storage awaits never yield to
  trio, which is how the input gate holds: nothing else runs while an object
  "awaits its own storage".
* :class:`DeferredStorageCall` (``sync()`` and ``transaction()``, which
  really must run async code) starts its coroutine only when awaited, so
  dropping it creates no coroutine and warns about nothing. Unlike
  production, a dropped ``transaction()`` therefore never runs its closure.

Invariants:

* Validation (key types and sizes, batch size, codec refusals, option names
  and types) happens before anything is written: a refused call leaves
  storage unchanged, even a multi-entry ``put``.
* Every read and write calls ``host.check_alive()`` first; every write calls
  ``host.wrote(confirmed=not allowUnconfirmed)`` once it is in the batch.
* Storage operations apply in call order on one connection inside the open
  batch, so reads see earlier unflushed writes.
* Keys are ordered by their UTF-8 bytes. Keys with lone surrogates have no
  UTF-8 form and are refused; for every other ``str``, Python's code point
  order equals UTF-8 byte order.
* A ``transaction()`` is a SAVEPOINT in the open batch and keeps the input
  gate closed until its closure returns. Savepoints nest strictly, so
  transactions started by different tasks run one after the other; a task
  may nest inside a transaction opened by itself or an ancestor task.
* A ``transactionSync()`` is a SAVEPOINT too, opened and closed within the
  call (its closure cannot await), so it needs no turn-taking. Both kinds
  count in the open-transaction depth that refuses ``deleteAll()``.
* ``ctx.storage.sql`` (:class:`~runtime.storage.SqlStorage`) is built here on
  this object's database and host and knows nothing of this class: the SQL
  API depends on the engine, never on the KV API.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, final

import trio
import trio.lowlevel

from shards._codec import decode, encode
from shards._errors import CodecError, StorageError, StorageTypeError

from ._engine import ObjectDatabase, SavepointToken
from ._host import StorageHost
from ._limits import (
    DELETE_ALL_IN_TRANSACTION,
    LIST_LIMIT_NOT_POSITIVE,
    LIST_START_AND_START_AFTER,
    PUT_BAD_ARGUMENTS,
    PUT_UNDEFINED_VALUE,
    SET_ALARM_NOT_POSITIVE,
    SQL_NOT_SQLITE,
    SYNC_KV_NOT_SQLITE,
    TRANSACTION_SYNC_ASYNC,
    TXN_COMMITTED,
    TXN_ROLLED_BACK,
    StorageLimits,
)
from ._sql import SqlStorage

__all__ = [
    "DeferredStorageCall",
    "DurableObjectStorage",
    "DurableObjectTransaction",
    "StorageResult",
    "StorageStatistics",
    "SyncKV",
]

logger = logging.getLogger("shardsim.storage")

T = TypeVar("T")

# Module-level aliases: inside classes that define a ``list`` method, ``list`` names the method.
_Keys = str | list[str]
_CheckedKeys = list[tuple[str, int]]
_Entries = list[tuple[str, Any]]
_EncodedEntries = list[tuple[str, bytes]]


class _Missing:
    """Marks an argument that was not passed (JavaScript's ``undefined``)."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()

_GET_OPTIONS: Final = frozenset({"allowConcurrency", "noCache"})
_PUT_OPTIONS: Final = frozenset({"allowConcurrency", "allowUnconfirmed", "noCache"})
_LIST_OPTIONS: Final = frozenset(
    {"start", "startAfter", "end", "prefix", "reverse", "limit", "allowConcurrency", "noCache"}
)
_SYNC_LIST_OPTIONS: Final = frozenset({"start", "startAfter", "end", "prefix", "reverse", "limit"})
_GET_ALARM_OPTIONS: Final = frozenset({"allowConcurrency"})
_SET_ALARM_OPTIONS: Final = frozenset({"allowConcurrency", "allowUnconfirmed"})
_BOOL_OPTIONS: Final = frozenset({"allowConcurrency", "allowUnconfirmed", "noCache", "reverse"})
_STR_OPTIONS: Final = frozenset({"start", "startAfter", "end", "prefix"})

_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
# The latest time a JavaScript Date can hold (ECMA-262 TimeClip): 100,000,000 days.
_MAX_DATE_MS: Final = 8_640_000_000_000_000


# --- awaitables -----------------------------------------------------------------------------------


@final
class StorageResult(Generic[T]):
    """The result of a storage call that already happened; awaiting it never suspends.

    Safe to drop: it is not a coroutine, so an un-awaited result warns about nothing.
    """

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def __await__(self) -> Generator[Any, Any, T]:
        yield from ()  # a generator that finishes at once: the await never reaches trio
        return self._value

    def __repr__(self) -> str:
        return f"<StorageResult {self._value!r}>"


@final
class DeferredStorageCall(Generic[T]):
    """A storage call that must run async code; it starts only when awaited.

    Dropping it without awaiting creates no coroutine (so nothing warns), and
    nothing happens. It may be awaited once.
    """

    __slots__ = ("_awaited", "_name", "_start")

    def __init__(self, name: str, start: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._name = name
        self._start = start
        self._awaited = False

    def __await__(self) -> Generator[Any, Any, T]:
        if self._awaited:
            raise StorageError(f"the result of {self._name}() was awaited twice; call it again instead")
        self._awaited = True
        return self._start().__await__()

    def __repr__(self) -> str:
        return f"<DeferredStorageCall {self._name}() awaited={self._awaited}>"


_DONE: Final[StorageResult[None]] = StorageResult(None)


# --- validation helpers ---------------------------------------------------------------------------


def _options(method: str, options: object, allowed: frozenset[str]) -> Mapping[str, Any]:
    """Check an options dict: known names only, right types; None values mean "not given"."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise StorageTypeError(
            f"{method}() options must be a dict such as {{'allowUnconfirmed': True}}, "
            f"got {type(options).__name__}"
        )
    for name, value in options.items():
        if name not in allowed:
            raise StorageTypeError(
                f"{method}() got an unknown option {name!r}; it accepts {', '.join(sorted(allowed))}"
            )
        if value is None:
            continue
        if name in _BOOL_OPTIONS and type(value) is not bool:
            raise StorageTypeError(f"{method}() option {name!r} must be a bool, got {type(value).__name__}")
        if name in _STR_OPTIONS:
            _key(f"{method}() option {name!r}", value)
    return options


def _key(what: str, key: object) -> tuple[str, int]:
    """Return ``key`` as a plain str and its UTF-8 size, or refuse it."""
    if type(key) is str and key.isascii():  # the common case: one byte per character
        return key, len(key)
    if not isinstance(key, str):
        raise StorageTypeError(f"{what}: keys must be str, got {type(key).__name__}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise StorageTypeError(
            f"{what}: key {key!r} contains a lone surrogate, so it has no UTF-8 form"
        ) from None
    # A str subclass (e.g. StrEnum) is stored as the plain string it holds.
    return (key if type(key) is str else str.__str__(key)), size


def _key_list(method: str, keys: object) -> list[tuple[str, int]]:
    if not isinstance(keys, list):
        raise StorageTypeError(f"{method}() takes a key (str) or a list of keys, got {type(keys).__name__}")
    return [_key(f"{method}()", k) for k in keys]


def _encode(key: str, value: object) -> bytes:
    try:
        return encode(value)
    except CodecError as exc:
        raise CodecError(f"{exc} (storage key {key!r})", path=exc.path) from exc


def _prefix_successor(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars:
        point = ord(chars[-1])
        if point < 0x10FFFF:
            point += 1
            if 0xD800 <= point <= 0xDFFF:  # surrogates are not characters a key can hold
                point = 0xE000
            chars[-1] = chr(point)
            return "".join(chars)
        chars.pop()
    return None


def _alarm_ms(time: object) -> int:
    """Convert a ``setAlarm`` time to integer ms since the epoch, or refuse it."""
    if isinstance(time, bool):
        ms = None
    elif isinstance(time, int):
        ms = int(time)
    elif isinstance(time, float):
        if not math.isfinite(time):
            raise StorageTypeError(f"setAlarm() time must be a finite number of milliseconds, got {time!r}")
        ms = math.trunc(time)  # a JavaScript Date drops the fraction of a millisecond too
    elif isinstance(time, _dt.datetime):
        if time.utcoffset() is None:
            raise StorageTypeError(
                f"setAlarm() got the naive datetime {time!s}; attach a timezone (e.g. datetime.UTC)"
            )
        delta = time - _EPOCH
        ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        ms = None
    if ms is None:
        raise StorageTypeError(
            "setAlarm() takes milliseconds since the epoch (int or float) or a timezone-aware "
            f"datetime, got {type(time).__name__}"
        )
    if ms <= 0:
        raise StorageTypeError(SET_ALARM_NOT_POSITIVE)
    if ms > _MAX_DATE_MS:
        raise StorageTypeError(
            f"setAlarm() time {ms} ms is after the latest date a JavaScript Date can hold ({_MAX_DATE_MS} ms)"
        )
    return ms


@dataclass(frozen=True, slots=True, kw_only=True)
class _ListRange:
    lower: str | None
    lower_inclusive: bool
    upper: str | None
    limit: int | None
    reverse: bool
    empty: bool


def _list_range(method: str, opts: Mapping[str, Any]) -> _ListRange:
    """Turn list() options into one key range, as production does (prefix clamps start/end)."""
    start = opts.get("start")
    start_after = opts.get("startAfter")
    end = opts.get("end")
    prefix = opts.get("prefix")
    limit = opts.get("limit")
    reverse = bool(opts.get("reverse"))
    if start is not None and start_after is not None:
        raise StorageTypeError(LIST_START_AND_START_AFTER)
    if limit is not None:
        if type(limit) is not int:
            raise StorageTypeError(f"{method}() option 'limit' must be an int, got {type(limit).__name__}")
        if limit <= 0:
            raise StorageTypeError(LIST_LIMIT_NOT_POSITIVE)
    lower: str | None = None
    inclusive = True
    if start is not None:
        lower = start
    elif start_after is not None:
        lower, inclusive = start_after, False
    upper: str | None = end
    if prefix:  # "" matches everything
        if lower is None or prefix > lower:
            lower, inclusive = prefix, True
        successor = _prefix_successor(prefix)
        if successor is not None and (upper is None or successor < upper):
            upper = successor
    empty = lower is not None and upper is not None and upper <= lower
    return _ListRange(
        lower=lower, lower_inclusive=inclusive, upper=upper, limit=limit, reverse=reverse, empty=empty
    )


# --- statistics -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageStatistics:
    """A snapshot of one object's storage activity.

    Attributes:
        reads: keys read: each key a get names, each entry a list returns.
        writes: entries put (alarm changes not included).
        deletes: keys named by delete calls, plus entries removed by deleteAll.
        bytes_read: UTF-8 key bytes plus encoded value bytes returned by reads.
        bytes_written: UTF-8 key bytes plus encoded value bytes put.
        commits: batches the object's database committed.
    """

    reads: int
    writes: int
    deletes: int
    bytes_read: int
    bytes_written: int
    commits: int


# --- the storage ----------------------------------------------------------------------------------


@final
class DurableObjectStorage:
    """``ctx.storage`` of one object: the KV API, transactions, alarms and ``kv``.

    Args:
        db: the object's database.
        host: the actor, as seen through :class:`~runtime.storage.StorageHost`.
        limits: the backend's limits (:meth:`StorageLimits.sqlite` or
            :meth:`StorageLimits.legacy_kv`).
        compat_delete_all_deletes_alarm: production's ``delete_all_deletes_alarm``
            compatibility flag (on from compatibility date 2026-02-24): whether
            ``deleteAll()`` also deletes the alarm.
        now_ms: the runtime clock (ms since the epoch). When given, ``setAlarm``
            with a time in the past stores "now" instead, as production does
            (so ``getAlarm`` then returns the time it was set, not the past one).
    """

    def __init__(
        self,
        db: ObjectDatabase,
        host: StorageHost,
        limits: StorageLimits,
        *,
        compat_delete_all_deletes_alarm: bool,
        now_ms: Callable[[], float] | None = None,
    ) -> None:
        self._db = db
        self._now_ms = now_ms
        self._host = host
        self._limits = limits
        self._delete_all_deletes_alarm = compat_delete_all_deletes_alarm
        self._kv = SyncKV(self) if limits.sql_enabled else None
        self._sql: SqlStorage | None = None
        self._transactions = 0  # open transaction() and transactionSync() closures
        # (task that opened it, set when it ends) per open transaction, innermost last.
        self._open_transactions: list[tuple[trio.lowlevel.Task, trio.Event]] = []
        self._reads = 0
        self._writes = 0
        self._deletes = 0
        self._bytes_read = 0
        self._bytes_written = 0

    @property
    def limits(self) -> StorageLimits:
        """The limits this storage enforces."""
        return self._limits

    @property
    def kv(self) -> SyncKV:
        """The synchronous KV API (SQLite-backed objects only).

        Raises:
            StorageError: on a KV-backed (``new_classes``) object.
        """
        if self._kv is None:
            raise StorageError(SYNC_KV_NOT_SQLITE)
        return self._kv

    @property
    def sql(self) -> SqlStorage:
        """The SQL API (SQLite-backed objects only): ``sql.exec(query, *bindings)``, ``databaseSize``.

        Raises:
            StorageError: on a KV-backed (``new_classes``) object.
        """
        sql = self._sql
        if sql is None:
            if not self._limits.sql_enabled:
                raise StorageError(SQL_NOT_SQLITE)
            sql = self._sql = SqlStorage(self._db, self._host)
        return sql

    def transactionSync(self, closure: Callable[[], T]) -> T:
        """Run the synchronous ``closure()`` as one transaction and return its result.

        The closure runs at once, inside a savepoint of the open write batch;
        if it raises, its writes (SQL and KV) are rolled back and the exception
        propagates. Nesting is allowed (an inner failure undoes only the inner
        writes). SQLite-backed objects only.

        Raises:
            StorageTypeError: ``closure`` is not callable, is an ``async def``
                function, or returned an awaitable (its writes are rolled back).
            StorageError: on a KV-backed object.
        """
        if not self._limits.sql_enabled:
            raise StorageError(SQL_NOT_SQLITE)
        if not callable(closure):
            raise StorageTypeError(f"transactionSync() takes a function, got {type(closure).__name__}")
        if inspect.iscoroutinefunction(closure):
            raise StorageTypeError(TRANSACTION_SYNC_ASYNC)
        self._host.check_alive()
        db = self._db
        token = db.savepoint()
        self._transactions += 1
        keep = False
        try:
            result = closure()
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # a coroutine that will never run must not warn
                raise StorageTypeError(TRANSACTION_SYNC_ASYNC)
            keep = True
        finally:
            self._transactions -= 1
            if keep:
                db.release_savepoint(token)
            else:
                db.rollback_savepoint(token)
            if db.can_commit and db.dirty:
                # The savepoint opened (or joined) the batch; like transaction(), its end is a write.
                self._host.wrote(confirmed=True)
        return result

    def statistics(self) -> StorageStatistics:
        """Return counters for this object's storage."""
        return StorageStatistics(
            reads=self._reads,
            writes=self._writes,
            deletes=self._deletes,
            bytes_read=self._bytes_read,
            bytes_written=self._bytes_written,
            commits=self._db.statistics().commits,
        )

    # --- reads ----------------------------------------------------------------------------------

    def get(self, keys: _Keys, options: Mapping[str, Any] | None = None) -> StorageResult[Any]:
        """Read one key (its value or None) or a list of at most 128 keys.

        A list returns a dict of the keys that exist, in UTF-8 byte order of
        the keys. Options: ``allowConcurrency``, ``noCache`` (accepted; reads
        never yield here, so both change nothing).

        Raises:
            StorageTypeError: a key is not a str, or an option is unknown.
            StorageLimitError: more than 128 keys.
        """
        if options is not None:
            _options("get", options, _GET_OPTIONS)
        if isinstance(keys, list):
            return StorageResult(self._get_many(keys))
        return StorageResult(self._get_one("get()", keys))

    def list(self, options: Mapping[str, Any] | None = None) -> StorageResult[dict[str, Any]]:
        """List entries in UTF-8 byte order of their keys, as a dict.

        Options: ``start`` (inclusive), ``startAfter`` (exclusive; not with
        ``start``), ``end`` (exclusive), ``prefix``, ``reverse`` (descending;
        ``start``/``end`` stay the lower/upper bounds), ``limit`` (> 0),
        ``allowConcurrency``, ``noCache``.

        Raises:
            StorageTypeError: both ``start`` and ``startAfter``, a limit ≤ 0, an
                unknown option or a value of the wrong type.
        """
        opts = _options("list", options, _LIST_OPTIONS)
        return StorageResult(dict(self._list("list", opts)))

    def getAlarm(self, options: Mapping[str, Any] | None = None) -> StorageResult[int | None]:
        """The alarm time in ms since the epoch (unflushed changes included), or None.

        Option: ``allowConcurrency``.
        """
        _options("getAlarm", options, _GET_ALARM_OPTIONS)
        self._host.check_alive()
        return StorageResult(self._db.get_alarm())

    # --- writes ---------------------------------------------------------------------------------

    def put(
        self,
        key_or_entries: str | dict[str, Any],
        value: Any = _MISSING,
        options: Mapping[str, Any] | None = None,
    ) -> StorageResult[None]:
        """Store one value (``put(key, value, options)``) or up to 128 (``put(entries, options)``).

        Values go through the shared codec; a value it refuses (tuples, sets,
        non-str dict keys, naive datetimes, ...) fails here and nothing of the
        call is written. Options: ``allowUnconfirmed``, ``allowConcurrency``,
        ``noCache``.

        Raises:
            StorageTypeError: a missing value, a non-str key, bad options.
            CodecError: a value the codec refuses.
            StorageLimitError: over the key, value or batch limits.
        """
        if isinstance(key_or_entries, dict):
            if value is not _MISSING and value is not None:
                if options is not None or not isinstance(value, dict):
                    raise StorageTypeError(PUT_BAD_ARGUMENTS)
                options = value
            opts = _options("put", options, _PUT_OPTIONS)
            self._put_many(key_or_entries, confirmed=not opts.get("allowUnconfirmed"))
            return _DONE
        if value is _MISSING:
            raise StorageTypeError(PUT_UNDEFINED_VALUE)
        confirmed = True
        if options is not None:
            confirmed = not _options("put", options, _PUT_OPTIONS).get("allowUnconfirmed")
        self._put_one(key_or_entries, value, confirmed)
        return _DONE

    def delete(self, keys: _Keys, options: Mapping[str, Any] | None = None) -> StorageResult[Any]:
        """Delete one key (returns whether it existed) or a list of at most 128 (returns the count).

        Options: ``allowUnconfirmed``, ``allowConcurrency``, ``noCache``.
        """
        opts = _options("delete", options, _PUT_OPTIONS)
        confirmed = not opts.get("allowUnconfirmed")
        if isinstance(keys, list):
            return StorageResult(self._delete_many(_key_list("delete", keys), confirmed))
        return StorageResult(self._delete_many([_key("delete()", keys)], confirmed) == 1)

    def deleteAll(self, options: Mapping[str, Any] | None = None) -> StorageResult[None]:
        """Delete every key and (SQLite) every user SQL table, index, view and trigger.

        The alarm goes too when the ``delete_all_deletes_alarm`` compatibility
        flag is on. Options: ``allowUnconfirmed``, ``allowConcurrency``, ``noCache``.

        Raises:
            StorageError: inside ``transaction()`` (production refuses it too).
        """
        opts = _options("deleteAll", options, _PUT_OPTIONS)
        self._host.check_alive()
        if self._transactions:
            raise StorageError(DELETE_ALL_IN_TRANSACTION)
        had_alarm = self._delete_all_deletes_alarm and self._db.get_alarm() is not None
        removed = self._db.delete_all(delete_alarm=self._delete_all_deletes_alarm)
        self._deletes += removed
        if had_alarm:
            self._host.alarm_changed(None)
        self._host.wrote(confirmed=not opts.get("allowUnconfirmed"))
        logger.debug("deleteAll removed %d keys from %s", removed, self._db.path)
        return _DONE

    def setAlarm(
        self, scheduledTime: object, options: Mapping[str, Any] | None = None
    ) -> StorageResult[None]:
        """Set the object's one alarm, replacing any other.

        Args:
            scheduledTime: ms since the epoch (int, or float truncated to whole
                ms) or a timezone-aware datetime. A time in the past fires at
                once (and is stored as now when the storage has a clock).
            options: ``allowUnconfirmed``, ``allowConcurrency``.

        Raises:
            StorageTypeError: not a number or aware datetime, ≤ 0, or too late for a Date.
        """
        opts = _options("setAlarm", options, _SET_ALARM_OPTIONS)
        ms = _alarm_ms(scheduledTime)
        self._host.check_alive()
        if self._now_ms is not None:
            # Production moves past times up to now (workerd's setAlarm: max(time, Date.now())).
            ms = max(ms, int(self._now_ms()))
        self._db.set_alarm(ms)
        self._host.alarm_changed(ms)
        self._host.wrote(confirmed=not opts.get("allowUnconfirmed"))
        return _DONE

    def deleteAlarm(self, options: Mapping[str, Any] | None = None) -> StorageResult[None]:
        """Delete the alarm, if any (a running ``alarm()`` handler is not cancelled).

        Options: ``allowUnconfirmed``, ``allowConcurrency``.
        """
        opts = _options("deleteAlarm", options, _SET_ALARM_OPTIONS)
        self._host.check_alive()
        self._db.set_alarm(None)
        self._host.alarm_changed(None)
        self._host.wrote(confirmed=not opts.get("allowUnconfirmed"))
        return _DONE

    # --- async operations -----------------------------------------------------------------------

    def sync(self) -> DeferredStorageCall[None]:
        """Wait until every write made so far (``allowUnconfirmed`` ones too) is durable.

        Returns an awaitable that does nothing unless awaited.
        """
        return DeferredStorageCall("sync", self._sync)

    def transaction(
        self, closure: Callable[[DurableObjectTransaction], Awaitable[T]]
    ) -> DeferredStorageCall[T]:
        """Run ``closure(txn)`` as one transaction; return its result.

        On SQLite the transaction is a SAVEPOINT inside the open write batch:
        ``txn`` and ``ctx.storage`` itself (and SQL) are all part of it. If the
        closure raises, its writes are rolled back and the exception
        propagates; ``txn.rollback()`` rolls back without raising. No other
        event is delivered to the object until the closure returns.

        Returns an awaitable that runs the closure when awaited (and never if
        dropped: production would run it).

        Raises:
            StorageTypeError: ``closure`` is not callable.
        """
        if not callable(closure):
            raise StorageTypeError(f"transaction() takes a function, got {type(closure).__name__}")
        return DeferredStorageCall("transaction", lambda: self._transaction(closure))

    async def _sync(self) -> None:
        self._host.check_alive()
        await self._host.wait_durable()

    async def _wait_for_turn(self) -> None:
        """Wait until the current task may open a transaction.

        Savepoints nest strictly, so two transactions started by different
        tasks of one event (production serializes them: each runs in its own
        critical section) must not interleave. A task may nest inside a
        transaction its own task or an ancestor task opened; any other task
        waits for the innermost open transaction to end.
        """
        while self._open_transactions:
            owner, done = self._open_transactions[-1]
            task: trio.lowlevel.Task | None = trio.lowlevel.current_task()
            while task is not None and task is not owner:
                nursery = task.parent_nursery
                task = nursery.parent_task if nursery is not None else None
            if task is owner:
                return
            await done.wait()

    async def _transaction(self, closure: Callable[[DurableObjectTransaction], Awaitable[T]]) -> T:
        self._host.check_alive()
        await self._wait_for_turn()
        self._host.check_alive()  # the object may have been reset while we waited
        self._host.close_input_gate()
        done = trio.Event()
        try:
            token = self._db.savepoint()
            self._open_transactions.append((trio.lowlevel.current_task(), done))
            self._transactions += 1
            txn = DurableObjectTransaction(self, token)
            keep = False
            try:
                pending: Any = closure(txn)
                # Production accepts a closure that returns a plain value too.
                result: T = await pending if inspect.isawaitable(pending) else pending
                keep = not txn._rolled_back
            finally:
                # Runs on exceptions and on cancellation alike: the savepoint must close.
                txn._finished = True
                self._transactions -= 1
                if keep:
                    self._db.release_savepoint(token)
                else:
                    self._db.rollback_savepoint(token)
                    logger.debug("transaction rolled back on %s", self._db.path)
                # The outermost transaction's end is a write as far as the actor is concerned
                # (production holds the output gate while it commits): its savepoint opened a
                # batch even if the closure only read, and that batch must be committed.
                if self._transactions == 0 and self._db.dirty:
                    self._host.wrote(confirmed=True)
        finally:
            self._open_transactions = [entry for entry in self._open_transactions if entry[1] is not done]
            done.set()
            self._host.open_input_gate()
        return result

    # --- shared implementation (also used by SyncKV) --------------------------------------------

    def _get_one(self, what: str, key: object) -> Any:
        self._host.check_alive()
        plain, size = _key(what, key)
        blob = self._db.kv_get(plain)
        self._reads += 1
        if blob is None:
            return None
        self._bytes_read += size + len(blob)
        return decode(blob)

    def _get_many(self, keys: object) -> dict[str, Any]:
        self._host.check_alive()
        checked = _key_list("get", keys)
        self._limits.check_batch(len(checked))
        rows = self._db.kv_get_many(plain for plain, _size in checked)
        self._reads += len(checked)
        out: dict[str, Any] = {}
        for key, blob in rows:
            self._bytes_read += len(key.encode("utf-8")) + len(blob)
            out[key] = decode(blob)
        return out

    def _put_many(self, entries: Mapping[Any, object], *, confirmed: bool) -> None:
        self._host.check_alive()
        self._limits.check_batch(len(entries))
        # Encode and check everything first: all or nothing.
        encoded: _EncodedEntries = []
        nbytes = 0
        for key, value in entries.items():
            plain, size = _key("put()", key)
            blob = _encode(plain, value)
            self._limits.check_entry(size, len(blob))
            encoded.append((plain, blob))
            nbytes += size + len(blob)
        if not encoded:
            return
        self._db.kv_put_many(encoded)
        self._writes += len(encoded)
        self._bytes_written += nbytes
        self._host.wrote(confirmed=confirmed)

    def _put_one(self, key: object, value: object, confirmed: bool) -> None:
        """``_put_many`` for one entry, without building a dict (the hot path)."""
        self._host.check_alive()
        plain, size = _key("put()", key)
        blob = _encode(plain, value)
        nbytes = size + len(blob)
        if nbytes > self._limits.small_entry_bytes:  # smaller entries pass every limit
            self._limits.check_entry(size, len(blob))
        self._db.kv_put(plain, blob)
        self._writes += 1
        self._bytes_written += nbytes
        self._host.wrote(confirmed=confirmed)

    def _delete_many(self, checked: _CheckedKeys, confirmed: bool) -> int:
        self._host.check_alive()
        self._limits.check_batch(len(checked))
        for _plain, size in checked:
            self._limits.check_key(size)
        count = self._db.kv_delete_many(plain for plain, _size in checked)
        self._deletes += len(checked)
        self._host.wrote(confirmed=confirmed)
        return count

    def _list(self, method: str, opts: Mapping[str, Any]) -> _Entries:
        self._host.check_alive()
        spec = _list_range(method, opts)
        if spec.empty:
            return []
        rows = self._db.kv_list(
            lower=spec.lower,
            lower_inclusive=spec.lower_inclusive,
            upper=spec.upper,
            limit=spec.limit,
            reverse=spec.reverse,
        )
        out: _Entries = []
        for key, blob in rows:
            self._bytes_read += len(key.encode("utf-8")) + len(blob)
            out.append((key, decode(blob)))
        self._reads += len(out)
        return out


@final
class DurableObjectTransaction:
    """The ``txn`` a ``transaction()`` closure receives.

    On SQLite it is ``ctx.storage`` under another name (calls on either are
    part of the transaction), plus :meth:`rollback`. After ``rollback()``, or
    once the closure has returned, calls on ``txn`` raise, as in production.
    """

    def __init__(self, storage: DurableObjectStorage, token: SavepointToken) -> None:
        self._storage = storage
        self._token = token
        self._rolled_back = False
        self._finished = False

    def _check(self, op: str) -> DurableObjectStorage:
        if self._rolled_back:
            raise StorageError(TXN_ROLLED_BACK.format(op=op))
        if self._finished:
            raise StorageError(TXN_COMMITTED.format(op=op))
        return self._storage

    def rollback(self) -> None:
        """Undo the transaction's writes; the closure's result is still returned.

        Calling it again does nothing.
        """
        if self._rolled_back:
            return
        storage = self._check("rollback")
        storage._db.undo_savepoint(self._token)
        self._rolled_back = True

    def get(self, keys: _Keys, options: Mapping[str, Any] | None = None) -> StorageResult[Any]:
        """:meth:`DurableObjectStorage.get` inside the transaction."""
        return self._check("get").get(keys, options)

    def list(self, options: Mapping[str, Any] | None = None) -> StorageResult[dict[str, Any]]:
        """:meth:`DurableObjectStorage.list` inside the transaction."""
        return self._check("list").list(options)

    def put(
        self,
        key_or_entries: str | dict[str, Any],
        value: Any = _MISSING,
        options: Mapping[str, Any] | None = None,
    ) -> StorageResult[None]:
        """:meth:`DurableObjectStorage.put` inside the transaction."""
        return self._check("put").put(key_or_entries, value, options)

    def delete(self, keys: _Keys, options: Mapping[str, Any] | None = None) -> StorageResult[Any]:
        """:meth:`DurableObjectStorage.delete` inside the transaction."""
        return self._check("delete").delete(keys, options)

    def deleteAll(self, options: Mapping[str, Any] | None = None) -> StorageResult[None]:
        """Always refused, as in production.

        Raises:
            StorageError: ``Cannot call deleteAll() within a transaction``.
        """
        raise StorageError(DELETE_ALL_IN_TRANSACTION)

    def getAlarm(self, options: Mapping[str, Any] | None = None) -> StorageResult[int | None]:
        """:meth:`DurableObjectStorage.getAlarm` inside the transaction."""
        return self._check("getAlarm").getAlarm(options)

    def setAlarm(
        self, scheduledTime: object, options: Mapping[str, Any] | None = None
    ) -> StorageResult[None]:
        """:meth:`DurableObjectStorage.setAlarm` inside the transaction."""
        return self._check("setAlarm").setAlarm(scheduledTime, options)

    def deleteAlarm(self, options: Mapping[str, Any] | None = None) -> StorageResult[None]:
        """:meth:`DurableObjectStorage.deleteAlarm` inside the transaction."""
        return self._check("deleteAlarm").deleteAlarm(options)


@final
class SyncKV:
    """``ctx.storage.kv``: the synchronous KV API of SQLite-backed objects.

    The same data as the async API, returned directly. Writes are confirmed
    writes (they hold the output gate) and join the open batch.
    """

    def __init__(self, storage: DurableObjectStorage) -> None:
        self._storage = storage

    def get(self, key: str) -> Any:
        """The value stored under ``key``, or None."""
        return self._storage._get_one("kv.get()", key)

    def put(self, key: str, value: Any = _MISSING) -> None:
        """Store ``value`` under ``key`` (same codec and limits as ``storage.put``)."""
        if value is _MISSING:
            raise StorageTypeError(PUT_UNDEFINED_VALUE)
        self._storage._put_one(key, value, True)

    def delete(self, key: str) -> bool:
        """Delete ``key``; return whether it existed."""
        return self._storage._delete_many([_key("kv.delete()", key)], True) == 1

    def list(self, options: Mapping[str, Any] | None = None) -> Iterator[tuple[str, Any]]:
        """Iterate ``(key, value)`` pairs in UTF-8 byte order of the keys.

        Options: ``start``, ``startAfter``, ``end``, ``prefix``, ``reverse``, ``limit``,
        with the meaning they have in ``storage.list``. The entries are read at
        the call, so later writes do not show up in the iteration.
        """
        opts = _options("kv.list", options, _SYNC_LIST_OPTIONS)
        return iter(self._storage._list("kv.list", opts))
