"""Object storage: the per-object SQLite engine and ``ctx.storage`` (KV API, SQL API, transactions, alarms).

The actor builds one :class:`ObjectDatabase` per object (all sharing one
:class:`ConnectionPool`) and hands it, with itself as the
:class:`StorageHost`, to :class:`DurableObjectStorage`, which is what user
code sees as ``ctx.storage``. The actor owns batching: it commits the open
write batch (``db.commit()``) when a turn ends and ``db.can_commit`` is true,
and rolls it back (``db.rollback()``) on a crash.
"""

from __future__ import annotations

from shards._errors import StorageTypeError as StorageTypeError

from ._engine import (
    ConnectionPool as ConnectionPool,
    DatabaseStatistics as DatabaseStatistics,
    ObjectDatabase as ObjectDatabase,
    PoolStatistics as PoolStatistics,
    SavepointToken as SavepointToken,
    default_max_open as default_max_open,
)
from ._host import StorageHost as StorageHost
from ._kv import (
    DeferredStorageCall as DeferredStorageCall,
    DurableObjectStorage as DurableObjectStorage,
    DurableObjectTransaction as DurableObjectTransaction,
    StorageResult as StorageResult,
    StorageStatistics as StorageStatistics,
    SyncKV as SyncKV,
)
from ._limits import StorageLimits as StorageLimits
from ._sql import (
    RawCursor as RawCursor,
    SqlStorage as SqlStorage,
    SqlStorageCursor as SqlStorageCursor,
)

__all__ = [
    # engine
    "ConnectionPool",
    "DatabaseStatistics",
    "ObjectDatabase",
    "PoolStatistics",
    "SavepointToken",
    "default_max_open",
    # the actor seam
    "StorageHost",
    # ctx.storage
    "DeferredStorageCall",
    "DurableObjectStorage",
    "DurableObjectTransaction",
    "StorageResult",
    "StorageStatistics",
    "SyncKV",
    # ctx.storage.sql
    "RawCursor",
    "SqlStorage",
    "SqlStorageCursor",
    # limits and errors
    "StorageLimits",
    "StorageTypeError",
]
