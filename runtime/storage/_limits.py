"""Production's storage limits and error messages, one instance per backend.

Every number and message here comes from production (Cloudflare's docs or
workerd's source); where production's text could not be found, the constant
says so and we wrote a precise message of our own. Messages are format
strings; the fields they take are named in each comment.

Invariants:

* A limit is checked before anything is written, so a refused call leaves
  storage exactly as it was (production throws before the write too).
* Value sizes are measured on the *encoded* value (our msgpack codec), not on
  V8's structured-clone bytes that production measures. The two differ by a
  few bytes per value (type tags and length prefixes); msgpack is usually the
  smaller. We keep production's 34-byte cushion on the legacy limit, so a
  value right at the advertised size passes here as it does there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from shards._errors import StorageLimitError

__all__ = [
    "DELETE_ALL_IN_TRANSACTION",
    "KEY_TOO_LARGE",
    "LIST_LIMIT_NOT_POSITIVE",
    "LIST_START_AND_START_AFTER",
    "MAX_PAIRS",
    "PUT_BAD_ARGUMENTS",
    "PUT_UNDEFINED_VALUE",
    "SET_ALARM_NOT_POSITIVE",
    "SQL_CURSOR_CLOSED",
    "SQL_MULTI_STATEMENT_PARAMETERS",
    "SQL_NOT_SQLITE",
    "SQL_NO_STATEMENT",
    "SQL_ONE_MULTIPLE",
    "SQL_ONE_NONE",
    "SQL_STATEMENT_TOO_LONG",
    "SQL_TRANSACTION_STATEMENT",
    "SQL_WRONG_BINDINGS",
    "SQLITE_TOO_BIG",
    "SYNC_KV_NOT_SQLITE",
    "TRANSACTION_SYNC_ASYNC",
    "TXN_COMMITTED",
    "TXN_ROLLED_BACK",
    "VALUE_TOO_LARGE",
    "Backend",
    "StorageLimits",
]

Backend = Literal["sqlite", "legacy_kv"]

# --- messages -------------------------------------------------------------------------------
# workerd src/workerd/io/actor-storage.c++, ActorStorageLimits::checkMaxPairsCount (RangeError).
# Fields: limit, count. Production applies it to get([...]), put({...}) and delete([...]).
MAX_PAIRS: Final = "Maximum number of key value pairs is {limit}. {count} pairs were provided."

# workerd src/workerd/io/actor-storage.c++, ActorStorageLimits::checkMaxKeySize (RangeError).
# Fields: limit, size (UTF-8 bytes). Legacy KV backend only.
KEY_TOO_LARGE: Final = "Keys cannot be larger than {limit} bytes. A key of size {size} was provided."

# workerd src/workerd/io/actor-storage.c++, ActorStorageLimits::checkMaxValueSize (RangeError);
# the docs quote its first sentence (cloudflare-docs PR #31048). Fields: limit (the advertised
# limit, not the enforced one), size. Legacy KV backend only.
VALUE_TOO_LARGE: Final = "Values cannot be larger than {limit} bytes. A value of size {size} was provided."

# SQLite-backed objects have no KV-specific size check: the row goes to SQLite, whose length
# limit refuses it. This is the text production users report for it (workerd formats SQLite
# errors as "<sqlite3_errmsg>: <code name>", src/workerd/util/sqlite.c++; reports in
# withastro/flue#240 and tldraw/tldraw#10133). Production raises a plain Error; we raise
# StorageLimitError so the whole "too big" family is catchable in one place. No fields.
SQLITE_TOO_BIG: Final = "string or blob too big: SQLITE_TOOBIG"

# workerd src/workerd/api/actor-state.c++, DurableObjectStorageOperations::list (TypeError).
LIST_START_AND_START_AFTER: Final = "list() cannot be called with both start and startAfter values."

# workerd src/workerd/api/actor-state.c++, DurableObjectStorageOperations::list (TypeError).
LIST_LIMIT_NOT_POSITIVE: Final = "List limit must be positive."

# workerd src/workerd/api/actor-state.c++, DurableObjectStorageOperations::put (TypeError).
PUT_UNDEFINED_VALUE: Final = "put() called with undefined value."

# workerd src/workerd/api/actor-state.c++, DurableObjectStorageOperations::put (TypeError).
PUT_BAD_ARGUMENTS: Final = (
    "put() may only be called with a single key-value pair and optional options as "
    "put(key, value, options) or with multiple key-value pairs and optional options as "
    "put(entries, options)"
)

# workerd src/workerd/api/actor-state.c++, DurableObjectStorageOperations::setAlarm (TypeError).
SET_ALARM_NOT_POSITIVE: Final = "setAlarm() cannot be called with an alarm time <= 0"

# workerd src/workerd/api/actor-state.c++ (DurableObjectTransaction::deleteAll) and
# src/workerd/io/actor-sqlite.c++ (ActorSqlite::deleteAll inside an explicit transaction).
DELETE_ALL_IN_TRANSACTION: Final = "Cannot call deleteAll() within a transaction"

# workerd src/workerd/api/actor-state.c++, DurableObjectTransaction::getCache (Error).
# Field: op. Production fills in an internal operation name whose exact spelling we could not
# confirm; we use the Python method name (get, put, delete, list, getAlarm, ...).
TXN_ROLLED_BACK: Final = "Cannot {op} on rolled back transaction"
TXN_COMMITTED: Final = (
    "Cannot call {op} on transaction that has already committed: did you move `txn` outside of the closure?"
)

# Production's text for ctx.storage.kv on a KV-backed class was not found; ours. No fields.
SYNC_KV_NOT_SQLITE: Final = (
    "ctx.storage.kv (the synchronous KV API) is only available on SQLite-backed Durable Objects; "
    "declare the class with new_sqlite_classes instead of new_classes in the migrations"
)

# --- SQL API (ctx.storage.sql) -----------------------------------------------------------------
# workerd src/workerd/util/sqlite.c++, SqliteDatabase::prepareSql (an empty string, only
# comments, or an empty statement; workerd's sql-test.js checks "" and ";"). No fields.
SQL_NO_STATEMENT: Final = "SQL code did not contain a statement."

# workerd src/workerd/util/sqlite.c++, Query::checkRequirements. No fields.
SQL_WRONG_BINDINGS: Final = "Wrong number of parameter bindings for SQL query."

# workerd src/workerd/util/sqlite.c++, SqliteDatabase::prepareSql (MULTI). No fields.
SQL_MULTI_STATEMENT_PARAMETERS: Final = (
    "When executing multiple SQL statements in a single call, only the last statement can have parameters."
)

# workerd src/workerd/api/sql.c++, SqlStorage::Cursor::one. No fields.
SQL_ONE_NONE: Final = "Expected exactly one result from SQL query, but got no results."
SQL_ONE_MULTIPLE: Final = "Expected exactly one result from SQL query, but got multiple results."

# workerd src/workerd/api/sql.c++, SqlStorage::allowTransactions (verbatim).
# Raised for BEGIN, COMMIT, END, ROLLBACK, SAVEPOINT and RELEASE. No fields.
SQL_TRANSACTION_STATEMENT: Final = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
    "write coalescing."
)

# SQLite's own text for SQLITE_LIMIT_SQL_LENGTH (100,000 bytes in production), with the code
# name workerd appends. No fields.
SQL_STATEMENT_TOO_LONG: Final = "statement too long: SQLITE_TOOBIG"

# Ours: production's texts for these were not found. No fields.
SQL_NOT_SQLITE: Final = (
    "ctx.storage.sql and transactionSync() are only available on SQLite-backed Durable Objects; "
    "declare the class with new_sqlite_classes instead of new_classes in the migrations"
)
TRANSACTION_SYNC_ASYNC: Final = (
    "transactionSync() takes a synchronous function: the transaction ends when the function "
    "returns, so an async function (or one returning an awaitable) would run outside it; "
    "use storage.transaction() for async code"
)
SQL_CURSOR_CLOSED: Final = (
    "this SQL cursor can no longer be read: the object's database connection was closed "
    "(hibernation, eviction or reset); read cursors before awaiting anything"
)

# --- numbers ----------------------------------------------------------------------------------
# rpc::ActorStorage::MAX_KEYS in workerd; "max 128 keys" in the storage API docs.
_MAX_BATCH_KEYS: Final = 128
# Docs (Limits, SQLite-backed): "Key and value combined size: 2 MB". We read MB as MiB,
# which is what SQLite's length limit is set in; the difference (97,152 bytes) is noted here
# so a test at the boundary knows which side it is on.
_SQLITE_MAX_ENTRY_BYTES: Final = 2 * 1024 * 1024
# workerd ActorStorageLimits: MAX_KEY_SIZE, ADVERTISED_MAX_VALUE_SIZE and the enforced size,
# which adds a 34-byte cushion for serialization headers.
_LEGACY_MAX_KEY_BYTES: Final = 2048
_LEGACY_MAX_VALUE_BYTES: Final = 128 * 1024
_LEGACY_VALUE_CUSHION: Final = 34


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageLimits:
    """The size limits of one storage backend.

    Build one with :meth:`sqlite` (classes declared with ``new_sqlite_classes``)
    or :meth:`legacy_kv` (classes declared with ``new_classes``).

    Attributes:
        backend: ``"sqlite"`` or ``"legacy_kv"``; only SQLite has the SQL and sync KV APIs.
        max_batch_keys: most keys one get/put/delete call may name.
        max_key_bytes: UTF-8 size limit of one key, or None for no separate key limit.
        max_value_bytes: the value limit production advertises (and prints), or None.
        enforced_value_bytes: the value limit actually enforced (advertised plus cushion).
        max_entry_bytes: limit on key + value together, or None.
    """

    backend: Backend
    max_batch_keys: int = _MAX_BATCH_KEYS
    max_key_bytes: int | None = None
    max_value_bytes: int | None = None
    enforced_value_bytes: int | None = None
    max_entry_bytes: int | None = None
    #: An entry whose key and value together are at most this many bytes
    #: passes every limit, so :meth:`check_entry` can be skipped for it.
    small_entry_bytes: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        limits = (self.max_key_bytes, self.enforced_value_bytes, self.max_entry_bytes)
        object.__setattr__(self, "small_entry_bytes", min([n for n in limits if n is not None] or [2**62]))

    @classmethod
    def sqlite(cls) -> StorageLimits:
        """Limits of SQLite-backed objects: key + value ≤ 2 MiB, 128 keys per call."""
        return cls(backend="sqlite", max_entry_bytes=_SQLITE_MAX_ENTRY_BYTES)

    @classmethod
    def legacy_kv(cls) -> StorageLimits:
        """Limits of KV-backed objects: keys ≤ 2048 bytes, values ≤ 131072 bytes, 128 keys per call."""
        return cls(
            backend="legacy_kv",
            max_key_bytes=_LEGACY_MAX_KEY_BYTES,
            max_value_bytes=_LEGACY_MAX_VALUE_BYTES,
            enforced_value_bytes=_LEGACY_MAX_VALUE_BYTES + _LEGACY_VALUE_CUSHION,
        )

    @property
    def sql_enabled(self) -> bool:
        """Whether the SQL API and ``ctx.storage.kv`` exist on this backend."""
        return self.backend == "sqlite"

    def check_batch(self, count: int) -> None:
        """Refuse a call naming more than :attr:`max_batch_keys` keys.

        Raises:
            StorageLimitError: with production's message.
        """
        if count > self.max_batch_keys:
            raise StorageLimitError(MAX_PAIRS.format(limit=self.max_batch_keys, count=count))

    def check_key(self, key_size: int) -> None:
        """Refuse a key of ``key_size`` UTF-8 bytes if it is over the key limit.

        Raises:
            StorageLimitError: with production's message.
        """
        if self.max_key_bytes is not None and key_size > self.max_key_bytes:
            raise StorageLimitError(KEY_TOO_LARGE.format(limit=self.max_key_bytes, size=key_size))

    def check_entry(self, key_size: int, value_size: int) -> None:
        """Refuse a key/value pair (sizes in bytes, value encoded) that is over a limit.

        Raises:
            StorageLimitError: with production's message.
        """
        self.check_key(key_size)
        if self.enforced_value_bytes is not None and value_size > self.enforced_value_bytes:
            raise StorageLimitError(VALUE_TOO_LARGE.format(limit=self.max_value_bytes, size=value_size))
        if self.max_entry_bytes is not None and key_size + value_size > self.max_entry_bytes:
            raise StorageLimitError(SQLITE_TOO_BIG)
