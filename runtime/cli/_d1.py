"""``shardsim d1``: migrations and ad-hoc SQL against the dev server's D1 state.

``shardsim d1 migrations list|apply <database>`` and
``shardsim d1 execute <database> --command SQL | --file PATH``, where
``<database>`` is a ``database_name`` (or binding) of the project's
``d1_databases``, as with ``wrangler d1``. They use the same files as
``shardsim dev`` (``<state dir>/d1/<database_name>.sqlite``). A file given
to ``execute`` runs as one transaction: any failing statement rolls back
every one. Errors print as ``file: problem`` or D1's own message, exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import trio

__all__ = ["add_parser", "run_d1"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``d1`` subcommand."""
    d1 = sub.add_parser("d1", help="D1 migrations and SQL against the dev state (like wrangler d1 --local)")
    d1_sub = d1.add_subparsers(dest="d1_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("database", help="database_name (or binding) from d1_databases")
        p.add_argument("--config", default=".", help="project directory or config file (default: .)")
        p.add_argument("--state-dir", default=".shardsim", help="state directory, relative to the project")

    migrations = d1_sub.add_parser("migrations", help="list or apply migrations")
    m_sub = migrations.add_subparsers(dest="migrations_command", metavar="ACTION", required=True)
    common(m_sub.add_parser("list", help="show every migration and whether it was applied"))
    common(m_sub.add_parser("apply", help="apply pending migrations in order"))
    execute = d1_sub.add_parser("execute", help="run SQL (a --file runs as one transaction)")
    common(execute)
    what = execute.add_mutually_exclusive_group(required=True)
    what.add_argument("--command", dest="sql", help="SQL to run")
    what.add_argument("--file", help="a file of SQL statements")
    execute.add_argument("--json", action="store_true", help="print results as JSON")


def run_d1(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run a ``shardsim d1`` command; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    from runtime.devserver import ConfigError, d1_database_path, find_d1, load_config, migrations_folder
    from shards._errors import D1Error

    try:
        config = load_config(args.config, require_migrations=False)
        entry = find_d1(config, args.database)
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return 1
    state_dir = config.root / args.state_dir
    db_path = d1_database_path(state_dir, entry)
    sql = None
    if args.d1_command == "execute":
        if args.file is not None:
            try:
                sql = Path(args.file).read_text(encoding="utf-8")
            except OSError as exc:
                print(f"error: {args.file}: {exc.strerror or exc}", file=err)
                return 1
        else:
            sql = args.sql
    try:
        return trio.run(_run, args, entry, db_path, migrations_folder(config, entry), sql, out)
    except D1Error as exc:
        print(str(exc), file=err)
        return 1


async def _run(
    args: argparse.Namespace, entry: Any, db_path: Path, folder: Path, sql: str | None, out: TextIO
) -> int:
    from runtime._sqltext import split_statements
    from runtime.d1 import apply_migrations, close_d1, list_migrations, open_d1

    db_path.parent.mkdir(parents=True, exist_ok=True)
    db = open_d1(db_path, name=entry.database_name)
    try:
        if args.d1_command == "migrations":
            if args.migrations_command == "list":
                for migration in await list_migrations(db, folder):
                    print(f"{'applied' if migration.applied else 'pending'}  {migration.name}", file=out)
                return 0
            applied = await apply_migrations(db, folder)
            for name in applied:
                print(f"applied  {name}", file=out)
            if not applied:
                print("no migrations to apply", file=out)
            return 0
        assert sql is not None
        statements = [db.prepare(s) for s in split_statements(sql)]
        if not statements:
            print("error: no SQL statements to run", file=sys.stderr)
            return 1
        results = await db.batch(statements)
        if args.json:
            print(json.dumps([_plain(r) for r in results], indent=1, default=str), file=out)
        else:
            for result in results:
                for row in result.results:
                    print(json.dumps(dict(row), default=str), file=out)
                print(f"-- {result.meta.changes} change(s), {len(result.results)} row(s)", file=out)
        return 0
    finally:
        close_d1(db)


def _plain(result: Any) -> dict[str, Any]:
    return {
        "results": [dict(r) for r in result.results],
        "meta": dict(result.meta),
        "success": result.success,
    }
