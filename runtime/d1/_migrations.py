"""Wrangler-style D1 migrations: ``NNNN_name.sql`` files applied in order, recorded in ``d1_migrations``.

Invariants:

* Files are the folder's ``*.sql`` files whose names start with digits and
  an underscore, applied in order of their number (then name); anything else
  in the folder is ignored, as Wrangler does.
* A migration and its row in the migrations table commit together in one
  ``batch()`` transaction: a failing migration leaves no trace, and the ones
  before it stay applied. Applying twice applies nothing the second time.
* The table has Wrangler's shape (``id``, ``name`` unique, ``applied_at``),
  so a database migrated here reads the same to ``wrangler d1 migrations list``.
* Migrations run as user SQL through the D1 API, so production's refusals
  (BEGIN/COMMIT, ``_cf_`` names) apply to them as they would remotely.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from shards._errors import D1Error, D1MigrationError

from ._api import D1Database
from ._core import split_statements

__all__ = ["DEFAULT_MIGRATIONS_TABLE", "Migration", "apply_migrations", "list_migrations"]

#: Wrangler's default ``migrations_table``.
DEFAULT_MIGRATIONS_TABLE = "d1_migrations"
_FILE = re.compile(r"^(\d+)_.*\.sql$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """One migration file and whether it was applied.

    Attributes:
        name: the file name (``0001_create_users.sql``), as recorded in the table.
        path: where the file is.
        applied: whether the migrations table records it.
    """

    name: str
    path: Path
    applied: bool


def _files(folder: str | os.PathLike[str]) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no migrations folder at {root}")
    found: list[tuple[int, str, Path]] = []
    for entry in root.iterdir():
        m = _FILE.match(entry.name)
        if m and entry.is_file():
            found.append((int(m.group(1)), entry.name, entry))
    return [path for _n, _name, path in sorted(found)]


def _table(name: str) -> str:
    if not _TABLE_NAME.match(name) or name.startswith("_cf_"):
        raise ValueError(f"invalid migrations table name {name!r}")
    return name


async def _applied(db: D1Database, table: str) -> set[str]:
    await db.prepare(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "name TEXT UNIQUE, "
        "applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)"
    ).run()
    result = await db.prepare(f"SELECT name FROM {table}").all()
    return {row["name"] for row in result["results"]}


async def list_migrations(
    db: D1Database, folder: str | os.PathLike[str], *, table: str = DEFAULT_MIGRATIONS_TABLE
) -> list[Migration]:
    """Every migration file of ``folder`` in order, with whether it was applied.

    Creates the migrations table if it is missing (as Wrangler does).

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
    """
    done = await _applied(db, _table(table))
    return [Migration(name=p.name, path=p, applied=p.name in done) for p in _files(folder)]


async def apply_migrations(
    db: D1Database, folder: str | os.PathLike[str], *, table: str = DEFAULT_MIGRATIONS_TABLE
) -> list[str]:
    """Apply the pending migrations of ``folder`` in order; return the names applied.

    Raises:
        D1MigrationError: a migration failed; it was rolled back, the ones
            before it stay applied, later ones were not tried. ``migration``
            names the file, ``__cause__`` is D1's error.
        FileNotFoundError: ``folder`` is not a directory.
    """
    table = _table(table)
    done = await _applied(db, table)
    applied: list[str] = []
    for path in _files(folder):
        if path.name in done:
            continue
        sql = path.read_text(encoding="utf-8")
        statements = [db.prepare(s) for s in split_statements(sql)]
        statements.append(db.prepare(f"INSERT INTO {table} (name) VALUES (?)").bind(path.name))
        try:
            await db.batch(statements)
        except D1Error as exc:
            detail = f"Migration {path.name} failed: {exc}"
            raise D1MigrationError(detail, detail=detail, migration=path.name) from exc
        applied.append(path.name)
    return applied
