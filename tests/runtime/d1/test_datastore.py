"""D1DataStore over both executors: the D1 API (trio driver) and a plain sqlite3 connection."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from runtime.d1 import (
    D1DataStore,
    D1Executor,
    DataStoreError,
    Entity,
    Field,
    Manifest,
    SqliteExecutor,
    close_d1,
    open_d1,
)

MANIFEST: dict[str, Any] = {
    "users": {
        "fields": {
            "name": {"type": "text", "required": True},
            "email": {"type": "text", "unique": True},
            "age": "integer",
            "score": "real",
            "active": "boolean",
            "prefs": "json",
            "avatar": "blob",
        },
        "relations": {"teams": "teams"},
    },
    "teams": {"fields": {"title": {"type": "text", "required": True}}},
}


class Recording:
    """Wraps an executor and records every statement it was asked to run."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sql: list[str] = []

    async def execute(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        self.sql.append(sql)
        rows: list[dict[str, Any]] = await self.inner.execute(sql, params)
        return rows

    async def execute_many(
        self, statements: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[dict[str, Any]]]:
        self.sql.extend(s for s, _ in statements)
        out: list[list[dict[str, Any]]] = await self.inner.execute_many(statements)
        return out


@pytest.fixture(params=["d1", "sqlite"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[D1DataStore]:
    """A store with its schema, ids id-0001, id-0002, ... and a recording executor."""
    counter = itertools.count(1)
    if request.param == "d1":
        db = open_d1(":memory:")
        executor: Any = D1Executor(db)
    else:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        executor = SqliteExecutor(conn)
    st = D1DataStore(Recording(executor), MANIFEST, id_factory=lambda: f"id-{next(counter):04d}")
    await st.create_schema()
    yield st
    if request.param == "d1":
        close_d1(db)
    else:
        conn.close()


async def test_insert_and_read_back_typed_values(store):
    """insert generates the id and returns the row with each field in its Python type."""
    row = await store.insert(
        "users",
        {
            "name": "ada",
            "email": "a@x",
            "age": 36,
            "score": 2.0,
            "active": True,
            "prefs": {"k": [1]},
            "avatar": b"\x00\x01",
        },
    )
    assert row == {
        "id": "id-0001",
        "name": "ada",
        "email": "a@x",
        "age": 36,
        "score": 2.0,
        "active": True,
        "prefs": {"k": [1]},
        "avatar": b"\x00\x01",
    }
    assert isinstance(row["score"], float)
    assert await store.get_by_id("users", "id-0001") == row
    assert await store.get_by_id("users", "nope") is None
    minimal = await store.insert("users", {"name": "bob"})
    assert minimal["age"] is None
    assert minimal["active"] is None


async def test_list_pages_update_delete_lookup(store):
    """list, list_after (keyset pages), update, delete and lookup."""
    for name in ["a", "b", "c", "d", "e"]:
        await store.insert("users", {"name": name, "email": f"{name}@x"})
    assert [r["name"] for r in await store.list("users")] == ["a", "b", "c", "d", "e"]
    assert len(await store.list("users", limit=2)) == 2
    page, cursor = await store.list_after("users", None, 2)
    assert [r["name"] for r in page] == ["a", "b"]
    assert cursor == "id-0002"
    page, cursor = await store.list_after("users", cursor, 2)
    assert [r["name"] for r in page] == ["c", "d"]
    page, cursor = await store.list_after("users", cursor, 2)
    assert [r["name"] for r in page] == ["e"]
    assert cursor is None
    updated = await store.update("users", "id-0003", {"age": 40, "email": None})
    assert updated["age"] == 40
    assert updated["email"] is None
    assert (await store.lookup("users", "email", "d@x"))["id"] == "id-0004"
    assert await store.lookup("users", "email", "zz@x") is None
    assert await store.delete("users", "id-0001") is True
    assert await store.delete("users", "id-0001") is False
    with pytest.raises(DataStoreError) as info:
        await store.update("users", "id-0001", {"age": 1})
    assert info.value.code == "RECORD_NOT_FOUND"


async def test_query_filtered_operators(store):
    """Equality, None, $not, comparisons, $in, $like, $order and $limit."""
    people = [("ann", 20, True), ("bob", 30, False), ("cat", 40, True), ("dan", None, None)]
    for name, age, active in people:
        await store.insert("users", {"name": name, "age": age, "active": active})

    async def names(filters):
        return [r["name"] for r in await store.query_filtered("users", filters)]

    assert await names({"age": 30}) == ["bob"]
    assert await names({"age": None}) == ["dan"]
    assert await names({"active": True}) == ["ann", "cat"]
    assert await names({"age": {"$not": 30}}) == ["ann", "cat", "dan"]
    assert await names({"age": {"$not": None}}) == ["ann", "bob", "cat"]
    assert await names({"age": {"$gt": 20, "$lte": 40}}) == ["bob", "cat"]
    assert await names({"age": {"$gte": 30}, "$order": "-age"}) == ["cat", "bob"]
    assert await names({"age": {"$lt": 30}}) == ["ann"]
    assert await names({"name": {"$in": ["cat", "ann", "zed"]}}) == ["ann", "cat"]
    assert await names({"name": {"$in": []}}) == []
    assert await names({"name": {"$like": "%a%"}, "$order": ["-name"], "$limit": 2}) == ["dan", "cat"]


async def test_links(store):
    """link/unlink/related through the join table; links go away with their row."""
    user = await store.insert("users", {"name": "ada"})
    team = await store.insert("teams", {"title": "core"})
    await store.link("users", user["id"], "teams", team["id"])
    await store.link("users", user["id"], "teams", team["id"])  # twice is a no-op
    assert [t["title"] for t in await store.related("users", user["id"], "teams")] == ["core"]
    assert await store.unlink("users", user["id"], "teams", team["id"]) is True
    assert await store.unlink("users", user["id"], "teams", team["id"]) is False
    await store.link("users", user["id"], "teams", team["id"])
    await store.delete("teams", team["id"])
    assert await store.related("users", user["id"], "teams") == []
    with pytest.raises(DataStoreError) as info:
        await store.link("users", user["id"], "teams", "missing")
    assert info.value.code == "RECORD_NOT_FOUND"
    with pytest.raises(DataStoreError) as info:
        await store.link("users", user["id"], "friends", team["id"])
    assert info.value.code == "RELATION_NOT_FOUND"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda s: s.insert("users; DROP TABLE users", {"name": "x"}), "ENTITY_NOT_FOUND"),
        (lambda s: s.insert("users", {'name" TEXT); DROP TABLE users; --': "x"}), "INVALID_COLUMN"),
        (lambda s: s.insert("users", {"name": "x", "age": "1; DROP TABLE users"}), "INVALID_DATA"),
        (lambda s: s.insert("users", {"name": "x", "age": True}), "INVALID_DATA"),
        (lambda s: s.insert("users", {"name": "x", "id": "mine"}), "INVALID_DATA"),
        (lambda s: s.insert("users", {"email": "x"}), "INVALID_DATA"),
        (lambda s: s.insert("users", {"name": "x", "prefs": {"nan": float("nan")}}), "INVALID_DATA"),
        (lambda s: s.insert("users", ["name"]), "INVALID_DATA"),
        (lambda s: s.update("users", "id-0001", {}), "INVALID_DATA"),
        (lambda s: s.update("users", "id-0001", {"name": None}), "INVALID_DATA"),
        (lambda s: s.get_by_id("users", 1), "INVALID_DATA"),
        (lambda s: s.lookup("users", "name = name OR 1", "x"), "INVALID_COLUMN"),
        (lambda s: s.query_filtered("users", {"age": {"$regex": "x"}}), "INVALID_QUERY"),
        (lambda s: s.query_filtered("users", {"age": {}}), "INVALID_QUERY"),
        (lambda s: s.query_filtered("users", {"age": {"$gt": None}}), "INVALID_DATA"),
        (lambda s: s.query_filtered("users", {"age": {"$in": 3}}), "INVALID_DATA"),
        (lambda s: s.query_filtered("users", {"name": {"$like": 3}}), "INVALID_DATA"),
        (lambda s: s.query_filtered("users", {"$order": "age; DROP TABLE users"}), "INVALID_COLUMN"),
        (lambda s: s.query_filtered("users", {"$order": 3}), "INVALID_QUERY"),
        (lambda s: s.query_filtered("users", {"$order": [3]}), "INVALID_QUERY"),
        (lambda s: s.query_filtered("users", {"$limit": "10; DROP TABLE users"}), "INVALID_QUERY"),
        (lambda s: s.query_filtered("users", {"$limit": 0}), "INVALID_QUERY"),
        (lambda s: s.query_filtered("users", {"age": {"$in": list(range(101))}}), "INVALID_QUERY"),
        (lambda s: s.query_filtered("users", "age = 1"), "INVALID_QUERY"),
        (lambda s: s.list_after("users", None, 10**9), "INVALID_QUERY"),
        (lambda s: s.related("users", "id-0001", "x; DROP TABLE users"), "RELATION_NOT_FOUND"),
    ],
)
async def test_bad_input_is_refused_before_any_sql_runs(store, call, code):
    """Injection through names and malformed input fail with a stable code and never execute."""
    before = list(store.executor.sql)
    with pytest.raises(DataStoreError) as info:
        await call(store)
    assert info.value.code == code
    assert str(info.value).startswith(f"{code}: ")
    assert store.executor.sql == before
    assert await store.list("users") == []  # the table is still there, and empty


async def test_values_are_bound_not_interpolated(store):
    """A value that looks like SQL is stored as text, and the SQL text never contains it."""
    evil = "x'); DROP TABLE users; --"
    row = await store.insert("users", {"name": evil})
    assert (await store.lookup("users", "name", evil))["id"] == row["id"]
    assert all(evil not in sql for sql in store.executor.sql)


async def test_constraint_and_query_failures(store):
    """A UNIQUE violation is CONSTRAINT_FAILED; any other executor error is QUERY_FAILED."""
    await store.insert("users", {"name": "a", "email": "a@x"})
    with pytest.raises(DataStoreError) as info:
        await store.insert("users", {"name": "b", "email": "a@x"})
    assert info.value.code == "CONSTRAINT_FAILED"
    assert "UNIQUE constraint failed: users.email" in str(info.value)
    assert len(await store.list("users")) == 1
    if isinstance(store.executor.inner, D1Executor):  # a plain sqlite3 connection has no D1 limits
        with pytest.raises(DataStoreError) as info:
            await store.query_filtered("users", {"name": {"$like": "x" * 51}})
        assert info.value.code == "QUERY_FAILED"
        assert str(info.value) == "QUERY_FAILED: D1_ERROR: LIKE or GLOB pattern too complex: SQLITE_ERROR"


def test_manifest_validation():
    """Bad names, types, duplicates and dangling relations are INVALID_MANIFEST."""
    bad: list[Any] = [
        {"users; DROP": {}},
        {"_cf_KV": {}},
        {"sqlite_x": {}},
        {"u": {"fields": {"a b": "text"}}},
        {"u": {"fields": {"id": "text"}}},
        {"u": {"fields": {"a": "decimal"}}},
        {"u": {"relations": {"r": "missing"}}},
        {"u": {"fields": {"a": "text"}, "relations": {"a": "u"}}},
        {"u": {"fields": {"a": {"type": "text", "bogus": 1}}}},
        {"u": "not a mapping"},
    ]
    for data in bad:
        with pytest.raises(DataStoreError) as info:
            Manifest.from_dict(data)
        assert info.value.code == "INVALID_MANIFEST", data
    with pytest.raises(DataStoreError, match="declared twice"):
        Manifest([Entity(name="a"), Entity(name="a")])
    with pytest.raises(DataStoreError, match="declared twice"):
        Manifest([Entity(name="a", fields=(Field(name="x"), Field(name="x")))])


async def test_store_accepts_a_database_directly():
    """Passing a D1Database wraps it in a D1Executor; schema() gives the DDL for a migration."""
    db = open_d1(":memory:")
    try:
        store = D1DataStore(db, MANIFEST)
        assert isinstance(store.executor, D1Executor)
        ddl = store.schema()
        assert ddl[0].startswith(
            'CREATE TABLE IF NOT EXISTS "users" (id TEXT PRIMARY KEY, "name" TEXT NOT NULL'
        )
        assert any('"users__teams"' in s for s in ddl)
        await store.create_schema()
        row = await store.insert("teams", {"title": "t"})
        assert len(row["id"]) == 32
    finally:
        close_d1(db)


async def test_executor_failures_become_query_failed():
    """Whatever an executor raises reaches the caller as QUERY_FAILED, chained."""

    class Broken:
        async def execute(self, sql, params):
            raise RuntimeError("connection reset")

        async def execute_many(self, statements):
            raise RuntimeError("connection reset")

    store = D1DataStore(Broken(), MANIFEST)
    with pytest.raises(DataStoreError) as info:
        await store.get_by_id("users", "x")
    assert info.value.code == "QUERY_FAILED"
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(DataStoreError, match=r"^QUERY_FAILED: connection reset$"):
        await store.create_schema()


async def test_sqlite_executor_is_atomic_and_commits_implicit_transactions(tmp_path):
    """execute_many undoes everything on failure; a default (implicit-transaction) connection is committed."""
    path = tmp_path / "plain.sqlite"
    conn = sqlite3.connect(path)  # Python's default: implicit transactions
    try:
        ex = SqliteExecutor(conn)
        await ex.execute("CREATE TABLE t (a UNIQUE)", [])
        await ex.execute("INSERT INTO t VALUES (?)", [1])
        with pytest.raises(Exception, match="UNIQUE constraint failed"):
            await ex.execute_many([("INSERT INTO t VALUES (?)", [2]), ("INSERT INTO t VALUES (?)", [1])])
        await ex.execute_many([("INSERT INTO t VALUES (?)", [3])])
        other = sqlite3.connect(path)
        assert other.execute("SELECT a FROM t ORDER BY a").fetchall() == [(1,), (3,)]
        other.close()
    finally:
        conn.close()
