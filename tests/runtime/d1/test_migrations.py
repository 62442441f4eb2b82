"""Wrangler-style migrations, on both drivers."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.d1 import D1MigrationError, D1NotAuthorized, apply_migrations, list_migrations


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


def test_applies_in_order_records_and_is_idempotent(run_d1, tmp_path):
    """Files apply by number, each is recorded in d1_migrations, a second run applies nothing."""
    folder = write(
        tmp_path / "migrations",
        {
            "0002_add_email.sql": "ALTER TABLE users ADD COLUMN email TEXT;\nCREATE UNIQUE INDEX users_email ON users (email);",
            "0001_create_users.sql": "-- the first table\nCREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);",
            "0010_seed.sql": "INSERT INTO users (name, email) VALUES ('a;b', 'a@x');",
            "README.md": "not a migration",
            "notes.sql": "not numbered, ignored",
        },
    )

    async def body(db):
        first = await apply_migrations(db, folder)
        again = await apply_migrations(db, folder)
        rows = await db.prepare("SELECT id, name FROM d1_migrations ORDER BY id").raw()
        user = await db.prepare("SELECT name, email FROM users").first()
        listed = await list_migrations(db, folder)
        return first, again, rows, user, listed

    first, again, rows, user, listed = run_d1(body)
    assert first == ["0001_create_users.sql", "0002_add_email.sql", "0010_seed.sql"]
    assert again == []
    assert rows == [[1, "0001_create_users.sql"], [2, "0002_add_email.sql"], [3, "0010_seed.sql"]]
    assert user == {"name": "a;b", "email": "a@x"}
    assert [(m.name, m.applied) for m in listed] == [(n, True) for n in first]


def test_a_failing_migration_is_rolled_back_and_named(run_d1, tmp_path):
    """The failing file leaves nothing behind; earlier ones stay; later ones are not tried."""
    folder = write(
        tmp_path / "migrations",
        {
            "0001_ok.sql": "CREATE TABLE a (x);",
            "0002_bad.sql": "CREATE TABLE b (x);\nINSERT INTO nope VALUES (1);",
            "0003_later.sql": "CREATE TABLE c (x);",
        },
    )

    async def body(db):
        with pytest.raises(D1MigrationError) as info:
            await apply_migrations(db, folder)
        tables = await db.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('a', 'b', 'c')"
        ).raw()
        listed = await list_migrations(db, folder)
        return info.value, tables, listed

    error, tables, listed = run_d1(body)
    assert error.migration == "0002_bad.sql"
    assert str(error) == "Migration 0002_bad.sql failed: D1_ERROR: no such table: nope: SQLITE_ERROR"
    assert tables == [["a"]]
    assert [(m.name, m.applied) for m in listed] == [
        ("0001_ok.sql", True),
        ("0002_bad.sql", False),
        ("0003_later.sql", False),
    ]


def test_explicit_transactions_in_a_migration_are_refused(run_d1, tmp_path):
    """A migration wrapped in BEGIN/COMMIT fails as it would on production."""
    folder = write(tmp_path / "m", {"0001_txn.sql": "BEGIN;\nCREATE TABLE a (x);\nCOMMIT;"})

    async def body(db):
        with pytest.raises(D1MigrationError) as info:
            await apply_migrations(db, folder)
        return info.value

    assert isinstance(run_d1(body).__cause__, D1NotAuthorized)


def test_custom_table_and_bad_inputs(run_d1, tmp_path):
    """The table name is configurable (and checked); a missing folder is an error."""
    folder = write(tmp_path / "m", {"0001_a.sql": "CREATE TABLE a (x);"})

    async def body(db):
        assert await apply_migrations(db, folder, table="my_migrations") == ["0001_a.sql"]
        with pytest.raises(ValueError, match="invalid migrations table name"):
            await apply_migrations(db, folder, table="x; DROP TABLE a")
        with pytest.raises(FileNotFoundError):
            await apply_migrations(db, tmp_path / "missing")
        return await db.prepare("SELECT name FROM my_migrations").first("name")

    assert run_d1(body) == "0001_a.sql"
