"""D1 emulated on SQLite: the ``env.DB`` binding, its drivers, migrations and D1DataStore.

``open_runtime(d1={"DB": "main"})`` puts a :class:`D1Database` on ``env.DB``
(trio driver, ``<state_dir>/d1/main.sqlite``). Outside the runtime,
:func:`open_d1` opens one for trio code and :func:`open_d1_asyncio` (extra
``shardsim[asyncio]``) for asyncio code; both run the same sans-I/O core.
"""

from __future__ import annotations

from typing import Any as _Any

from shards._errors import (
    D1ColumnNotFound as D1ColumnNotFound,
    D1ConstraintError as D1ConstraintError,
    D1Error as D1Error,
    D1ExecError as D1ExecError,
    D1MigrationError as D1MigrationError,
    D1NotAuthorized as D1NotAuthorized,
    D1QueryError as D1QueryError,
    D1SessionError as D1SessionError,
    D1SyntaxError as D1SyntaxError,
    D1TypeError as D1TypeError,
    DataStoreError as DataStoreError,
)

from ._api import (
    D1Database as D1Database,
    D1DatabaseSession as D1DatabaseSession,
    D1PreparedStatement as D1PreparedStatement,
)
from ._core import D1Limits as D1Limits, JsDict as JsDict
from ._datastore import (
    D1DataStore as D1DataStore,
    D1Executor as D1Executor,
    Entity as Entity,
    Executor as Executor,
    Field as Field,
    Manifest as Manifest,
    Relation as Relation,
    SqliteExecutor as SqliteExecutor,
)
from ._migrations import (
    Migration as Migration,
    apply_migrations as apply_migrations,
    list_migrations as list_migrations,
)
from ._trio import close_d1 as close_d1, open_d1 as open_d1

__all__ = [
    "D1ColumnNotFound",
    "D1ConstraintError",
    "D1DataStore",
    "D1Database",
    "D1DatabaseSession",
    "D1Error",
    "D1ExecError",
    "D1Executor",
    "D1Limits",
    "D1MigrationError",
    "D1NotAuthorized",
    "D1PreparedStatement",
    "D1QueryError",
    "D1SessionError",
    "D1SyntaxError",
    "D1TypeError",
    "DataStoreError",
    "Entity",
    "Executor",
    "Field",
    "JsDict",
    "Manifest",
    "Migration",
    "Relation",
    "SqliteExecutor",
    "apply_migrations",
    "close_d1",
    "close_d1_asyncio",
    "list_migrations",
    "open_d1",
    "open_d1_asyncio",
]


def __getattr__(name: str) -> _Any:
    # The asyncio driver needs aiosqlite (extra "shardsim[asyncio]"): import it on first use only.
    if name in ("open_d1_asyncio", "close_d1_asyncio"):
        from . import _asyncio

        return getattr(_asyncio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
