"""What user SQL may do: production's authorizer rules and SQL limits, with an internal bypass.

One :class:`SqlPolicy` belongs to each object database and is installed as
the SQLite authorizer of every connection the database opens (the real file
and the scratch database that serves reads of objects with no file).

Invariants:

* Outside :meth:`SqlPolicy.user` the authorizer allows everything: the
  runtime's own statements (``_cf_KV``, ``_cf_METADATA``, savepoints,
  ``deleteAll``) never meet the user's rules.
* Inside it, the rules follow workerd's authorizer (src/workerd/util/sqlite.c++,
  ``isAuthorized``; src/workerd/api/sql.c++): names starting with ``_cf_`` are
  refused, transaction statements are refused (and reported as such, so the
  caller can raise production's long message), temp schema objects, ATTACH
  and ``sqlite_*()`` functions are refused, virtual tables are limited to
  FTS5, and PRAGMAs to :data:`runtime._sqltext.DURABLE_OBJECT_PRAGMAS` (the
  PRAGMA rules are shared with D1, which has its own table of them).
* SQLite consults the authorizer when it *compiles* a statement. Python's
  statement cache skips compiling for a text it has compiled before, so a user
  statement whose text equals an internal one must not reach the cache as is:
  :func:`user_text` makes every user text differ from every internal text.
* The permanent limits (:data:`PERMANENT_LIMITS`) are ones no internal
  statement comes near; the string/BLOB/row length limit would refuse large KV
  values, so it is lowered only while user SQL runs.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Final

from runtime._sqltext import DURABLE_OBJECT_PRAGMAS, reserved_name

__all__ = [
    "MAX_BOUND_PARAMETERS",
    "MAX_SQL_BYTES",
    "MAX_VALUE_BYTES",
    "PERMANENT_LIMITS",
    "SqlPolicy",
    "user_text",
]

# Production's SQL limits: 100 bound parameters, 100 KB statements, 2 MB
# strings/BLOBs/rows, 100 columns, 32 function arguments, 50-byte LIKE/GLOB patterns.
# D1's limits page spells the sizes out as 100,000 and 2,000,000 bytes; workerd's own
# test (src/workerd/api/sql-test.js) shows a compound SELECT of 5 terms passing and 6 failing.
MAX_BOUND_PARAMETERS: Final = 100
MAX_SQL_BYTES: Final = 100_000
MAX_VALUE_BYTES: Final = 2_000_000

PERMANENT_LIMITS: Final = (
    (sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, MAX_BOUND_PARAMETERS),
    (sqlite3.SQLITE_LIMIT_COLUMN, 100),
    (sqlite3.SQLITE_LIMIT_FUNCTION_ARG, 32),
    (sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
    (sqlite3.SQLITE_LIMIT_COMPOUND_SELECT, 5),
    (sqlite3.SQLITE_LIMIT_ATTACHED, 0),
    (sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH, 10),
)
# The default (1e9) while the runtime's own statements run; KV values are bounded by
# StorageLimits instead.
_INTERNAL_LENGTH: Final = 1_000_000_000

_LENGTH: Final = sqlite3.SQLITE_LIMIT_LENGTH
_OK: Final = sqlite3.SQLITE_OK
_DENY: Final = sqlite3.SQLITE_DENY

# Actions that change the database (sqlite3_stmt_readonly would be false).
_WRITES: Final = frozenset(
    {
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_ALTER_TABLE,
        sqlite3.SQLITE_REINDEX,
        sqlite3.SQLITE_ANALYZE,
        sqlite3.SQLITE_CREATE_VTABLE,
        sqlite3.SQLITE_DROP_VTABLE,
    }
)
_TEMP: Final = frozenset(
    {
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
        sqlite3.SQLITE_DROP_TEMP_INDEX,
        sqlite3.SQLITE_DROP_TEMP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER,
        sqlite3.SQLITE_DROP_TEMP_VIEW,
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_DETACH,
    }
)
_TRANSACTIONS: Final = frozenset({sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT})
_VTABLE_MODULES: Final = frozenset({"fts5", "fts5vocab"})


def user_text(piece: str) -> str:
    """The text to hand sqlite3 for a user statement (see the module docstring).

    No internal statement ends in a space, so adding one to every user text
    guarantees Python's statement cache never serves user SQL a statement the
    runtime compiled without the user's rules (a user ``COMMIT`` must not reuse
    the runtime's compiled ``COMMIT``, nor a user ``SELECT ... FROM _cf_KV`` the
    runtime's read).
    """
    return piece + " "


class SqlPolicy:
    """The authorizer of one object database's connections.

    Attributes:
        active: user SQL is being compiled or run (the rules apply).
        wrote: a write action was authorized since the last :meth:`reset`.
        refused_transaction: a transaction statement was refused since the last reset.
    """

    __slots__ = ("active", "kinds", "refused_transaction", "wrote")

    def __init__(self) -> None:
        #: user statement text -> whether it writes (learned when it was first compiled)
        self.kinds: dict[str, bool] = {}
        self.active = False
        self.wrote = False
        self.refused_transaction = False

    def install(self, conn: sqlite3.Connection) -> None:
        """Set the permanent limits and this authorizer on ``conn``."""
        for category, value in PERMANENT_LIMITS:
            conn.setlimit(category, value)
        conn.set_authorizer(self)

    def reset(self) -> None:
        self.wrote = False
        self.refused_transaction = False

    def enter(self, conn: sqlite3.Connection) -> None:
        """Apply the user's rules (and the value length limit) on ``conn``."""
        self.active = True
        conn.setlimit(_LENGTH, MAX_VALUE_BYTES)

    def exit(self, conn: sqlite3.Connection) -> None:
        """Back to internal work: everything allowed, default length limit."""
        self.active = False
        # A cursor may outlive its connection (closed by hibernation or the pool); then there
        # is nothing to restore, and the read that failed reports the closed connection.
        with contextlib.suppress(sqlite3.ProgrammingError):
            conn.setlimit(_LENGTH, _INTERNAL_LENGTH)

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, database: str | None, _source: str | None
    ) -> int:
        if not self.active:
            return _OK
        if action in _TRANSACTIONS:
            self.refused_transaction = True
            return _DENY
        if action in _TEMP or database == "temp":
            return _DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return _DENY if arg2 is not None and arg2[:7].lower() == "sqlite_" else _OK
        if action == sqlite3.SQLITE_PRAGMA:
            return _OK if DURABLE_OBJECT_PRAGMAS.allows(arg1, arg2) else _DENY
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return _OK
        if reserved_name(arg1) or reserved_name(arg2):
            return _DENY
        if action == sqlite3.SQLITE_CREATE_VTABLE and (arg2 or "").lower() not in _VTABLE_MODULES:
            return _DENY
        if action in _WRITES:
            self.wrote = True
        return _OK
