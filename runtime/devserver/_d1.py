"""D1 for a Wrangler project: which database a name means, and its migrations folder.

Shared by ``shardsim d1 …`` and the dev server (which applies pending
migrations on start unless told not to). Like wrangler, a database is named
by its ``database_name`` or by its binding, and its migrations live in the
project's ``migrations/`` folder (``NNNN_name.sql``), recorded in
``d1_migrations``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.d1 import apply_migrations

from ._wrangler import ConfigError, D1Binding, WranglerConfig

__all__ = ["apply_pending_migrations", "d1_database_path", "find_d1", "migrations_folder"]


def find_d1(config: WranglerConfig, name: str) -> D1Binding:
    """The ``d1_databases`` entry whose ``database_name`` (or binding) is ``name``."""
    for entry in config.d1_databases:
        if name in (entry.database_name, entry.binding):
            return entry
    known = ", ".join(f"{e.database_name} (binding {e.binding})" for e in config.d1_databases) or "none"
    raise ConfigError(config.path, f"no D1 database named {name!r} in d1_databases (databases: {known})")


def migrations_folder(config: WranglerConfig, entry: D1Binding) -> Path:
    """Where ``entry``'s migrations live: ``migrations_dir`` if the config sets it, else ``migrations/``."""
    custom = getattr(entry, "migrations_dir", None)
    return config.root / (custom or "migrations")


def d1_database_path(state_dir: Path, entry: D1Binding) -> Path:
    """The file the dev server and the CLI share for ``entry``."""
    return state_dir / "d1" / f"{entry.database_name}.sqlite"


async def apply_pending_migrations(config: WranglerConfig, env: Any) -> dict[str, list[str]]:
    """Apply every D1 database's pending migrations through ``env``; returns the names applied."""
    applied: dict[str, list[str]] = {}
    for entry in config.d1_databases:
        folder = migrations_folder(config, entry)
        if folder.is_dir():
            applied[entry.database_name] = await apply_migrations(getattr(env, entry.binding), folder)
    return applied
