"""The D1 contract: every test runs against the trio driver and the asyncio (aiosqlite) driver."""

from __future__ import annotations

import inspect
import math
import sqlite3

import pytest

from runtime.d1 import (
    D1ColumnNotFound,
    D1ConstraintError,
    D1Database,
    D1ExecError,
    D1Limits,
    D1NotAuthorized,
    D1QueryError,
    D1SessionError,
    D1SyntaxError,
    D1TypeError,
    JsDict,
)
from shards import CodecError

TRANSACTION_TEXT = (
    "D1_ERROR: To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
    "write coalescing."
)
META_KEYS = {
    "duration",
    "changes",
    "last_row_id",
    "changed_db",
    "size_after",
    "rows_read",
    "rows_written",
    "served_by",
    "served_by_primary",
    "timings",
}


async def users(db: D1Database) -> None:
    await db.exec(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, data BLOB, score REAL)"
    )


async def count(db: D1Database, table: str = "users") -> int:
    n: int = await db.prepare(f"SELECT count(*) AS n FROM {table}").first("n")
    return n


def test_all_returns_production_shape(run_d1):
    """all(): success, meta with every field, rows as dicts with attribute access."""

    async def body(db):
        await users(db)
        await db.prepare("INSERT INTO users (name, email) VALUES (?, ?)").bind("ada", "a@x").run()
        result = await db.prepare("SELECT id, name FROM users").all()
        assert result["success"] is True
        assert result.success is True
        assert set(result.meta) == META_KEYS
        assert result.meta.served_by == "shardsim.db"
        assert result.results == [{"id": 1, "name": "ada"}]
        assert isinstance(result.results[0], JsDict)
        assert result.results[0].name == "ada"
        assert result.meta.rows_read == 1
        assert result.meta.changes == 0
        assert result.meta.changed_db is False
        with pytest.raises(AttributeError):
            _ = result.results[0].missing

    run_d1(body)


def test_run_equals_all_and_returns_rows_for_returning(run_d1):
    """run() is all(): results is [] for a plain write and holds RETURNING rows."""

    async def body(db):
        await users(db)
        plain = await db.prepare("INSERT INTO users (name) VALUES ('a')").run()
        assert plain.results == []
        assert plain.meta.changes == 1
        assert plain.meta.last_row_id == 1
        assert plain.meta.changed_db is True
        assert plain.meta.rows_written == 1
        assert plain.meta.size_after > 0
        returning = await db.prepare("INSERT INTO users (name) VALUES ('b') RETURNING id, name").run()
        assert returning.results == [{"id": 2, "name": "b"}]
        assert (await db.prepare("SELECT name FROM users ORDER BY id").run()).results == [
            {"name": "a"},
            {"name": "b"},
        ]

    run_d1(body)


def test_bind_returns_a_new_statement(run_d1):
    """bind() leaves the original statement unbound."""

    async def body(db):
        stmt = db.prepare("SELECT ? AS v")
        bound = stmt.bind(7)
        assert bound is not stmt
        assert bound.params == (7,)
        assert stmt.params == ()
        assert await bound.first("v") == 7
        with pytest.raises(
            D1QueryError, match=r"^D1_ERROR: Wrong number of parameter bindings for SQL query\.$"
        ):
            await stmt.all()

    run_d1(body)


def test_numbered_parameters(run_d1):
    """?NNN parameters bind by position and may repeat."""

    async def body(db):
        row = await db.prepare("SELECT ?2 AS b, ?1 AS a, ?2 AS b2").bind("x", "y").first()
        assert row == {"b": "y", "a": "x", "b2": "y"}

    run_d1(body)


def test_value_types_round_trip_like_production(run_d1):
    """bool -> 1/0, byte lists and bytes -> BLOB read back as lists, NaN -> NULL, 3.0 reads as 3."""

    async def body(db):
        await db.exec("CREATE TABLE v (a, b, c, d, e, f, g)")
        await (
            db.prepare("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(True, False, [0, 1, 255], b"\x00\xff", math.nan, 3.0, None)
            .run()
        )
        row = await db.prepare("SELECT a, b, c, d, e, f, g, typeof(c) AS tc, typeof(e) AS te FROM v").first()
        assert row == {
            "a": 1,
            "b": 0,
            "c": [0, 1, 255],
            "d": [0, 255],
            "e": None,
            "f": 3,
            "g": None,
            "tc": "blob",
            "te": "null",
        }
        assert await db.prepare("SELECT ? AS x").bind(2.5).first("x") == 2.5
        big = await db.prepare("SELECT 9007199254740993 AS x").first("x")
        assert isinstance(big, float)  # beyond 2**53 a JS number is no longer exact

    run_d1(body)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 1}, "D1_TYPE_ERROR: Type 'object' not supported for value '[object Object]'"),
        ([1, 256], "D1_TYPE_ERROR: Type 'object' not supported for value '1,256'"),
        ([1, True], "D1_TYPE_ERROR: Type 'object' not supported for value '1,true'"),
        (2**53, "D1_TYPE_ERROR: Type 'bigint' not supported for value '9007199254740992'"),
        ({1, 2}, "D1_TYPE_ERROR: Type 'object' not supported for value '{1, 2}'"),
    ],
)
def test_unsupported_bind_values_fail_in_bind(run_d1, value, message):
    """Values production refuses raise D1_TYPE_ERROR from bind(), before anything runs."""

    async def body(db):
        stmt = db.prepare("SELECT ?")
        with pytest.raises(D1TypeError) as info:
            stmt.bind(value)
        assert str(info.value) == message
        assert info.value.detail == message.removeprefix("D1_TYPE_ERROR: ")

    run_d1(body)


def test_tuples_and_bytearrays_are_refused_as_by_the_python_sdk(run_d1):
    """Production's SDK refuses tuples and bytearrays before they reach D1."""

    async def body(db):
        with pytest.raises(CodecError, match=r"^<class 'tuple'> cannot be sent over RPC\.$"):
            db.prepare("SELECT ?").bind((1, 2))
        with pytest.raises(CodecError, match="bytearray"):
            db.prepare("SELECT ?").bind(bytearray(b"x"))

    run_d1(body)


def test_first(run_d1):
    """first(): None without rows, the row, a column, NULL as None, D1_COLUMN_NOTFOUND."""

    async def body(db):
        await users(db)
        assert await db.prepare("SELECT * FROM users").first() is None
        assert await db.prepare("SELECT * FROM users").first("nope") is None  # no rows: no check
        await db.prepare("INSERT INTO users (name) VALUES ('a'), ('b')").run()
        assert (await db.prepare("SELECT name FROM users ORDER BY id").first()).name == "a"
        assert await db.prepare("SELECT name, email FROM users").first("email") is None
        with pytest.raises(D1ColumnNotFound) as info:
            await db.prepare("SELECT name FROM users").first("nope")
        assert str(info.value) == "D1_COLUMN_NOTFOUND: Column not found (nope)"
        assert info.value.detail == "Column not found"

    run_d1(body)


def test_raw(run_d1):
    """raw(): lists of values; columnNames=True puts the names first, even with no rows."""

    async def body(db):
        await users(db)
        stmt = db.prepare("SELECT id, name FROM users")
        assert await stmt.raw() == []
        assert await stmt.raw(columnNames=True) == [["id", "name"]]
        await db.prepare("INSERT INTO users (name) VALUES ('a')").run()
        assert await stmt.raw() == [[1, "a"]]
        assert await stmt.raw(columnNames=True) == [["id", "name"], [1, "a"]]
        assert await stmt.raw({"columnNames": True}) == [["id", "name"], [1, "a"]]
        assert await db.prepare("SELECT 1 AS a, 2 AS a").raw(columnNames=True) == [["a", "a"], [1, 2]]
        assert await db.prepare("SELECT 1 AS a, 2 AS a").first() == {"a": 2}  # last one wins

    run_d1(body)


def test_sqlite_errors_carry_production_text(run_d1):
    """Syntax errors, unknown tables and constraints read D1_ERROR: <message>: SQLITE_<CODE>."""

    async def body(db):
        await users(db)
        with pytest.raises(D1SyntaxError) as syntax:
            await db.prepare("SELEC 1").all()
        assert str(syntax.value) == 'D1_ERROR: near "SELEC": syntax error: SQLITE_ERROR'
        assert syntax.value.sqlite_code == "SQLITE_ERROR"
        with pytest.raises(D1QueryError) as table:
            await db.prepare("SELECT * FROM nope").all()
        assert str(table.value) == "D1_ERROR: no such table: nope: SQLITE_ERROR"
        assert table.value.detail == "no such table: nope: SQLITE_ERROR"
        await db.prepare("INSERT INTO users (name, email) VALUES ('a', 'a@x')").run()
        with pytest.raises(D1ConstraintError) as unique:
            await db.prepare("INSERT INTO users (name, email) VALUES ('b', 'a@x')").run()
        assert str(unique.value) == "D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT"
        assert unique.value.sqlite_code == "SQLITE_CONSTRAINT"
        with pytest.raises(
            D1ConstraintError, match=r"NOT NULL constraint failed: users\.name: SQLITE_CONSTRAINT$"
        ):
            await db.prepare("INSERT INTO users (email) VALUES ('c@x')").run()
        assert await count(db) == 1

    run_d1(body)


@pytest.mark.parametrize(
    "sql", ["BEGIN", "BEGIN TRANSACTION", "COMMIT", "ROLLBACK", "SAVEPOINT sp", "RELEASE sp", "END"]
)
def test_transaction_statements_are_refused(run_d1, sql):
    """Explicit transactions are refused with production's long message."""

    async def body(db):
        with pytest.raises(D1NotAuthorized) as info:
            await db.prepare(sql).run()
        assert str(info.value) == TRANSACTION_TEXT
        assert info.value.sqlite_code is None

    run_d1(body)


def test_transaction_inside_a_multi_statement_string_writes_nothing(run_d1):
    """A BEGIN after a write in the same string refuses the whole call."""

    async def body(db):
        await users(db)
        with pytest.raises(D1NotAuthorized):
            await db.prepare(
                "INSERT INTO users (name) VALUES ('a'); BEGIN; INSERT INTO users (name) VALUES ('b')"
            ).run()
        assert await count(db) == 0

    run_d1(body)


def test_foreign_keys_are_always_enforced(run_d1):
    """Foreign keys are on and cannot be turned off; defer_foreign_keys works inside a batch."""

    async def body(db):
        await db.exec(
            "CREATE TABLE p (id INTEGER PRIMARY KEY)\nCREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id))"
        )
        assert await db.prepare("PRAGMA foreign_keys").first("foreign_keys") == 1
        info = await db.prepare("PRAGMA table_info('c')").all()
        assert [r.name for r in info.results] == ["id", "p"]
        assert (await db.prepare("PRAGMA foreign_key_list(c)").first()).table == "p"
        with pytest.raises(
            D1ConstraintError, match=r"^D1_ERROR: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT$"
        ):
            await db.prepare("INSERT INTO c (p) VALUES (9)").run()
        with pytest.raises(D1NotAuthorized, match=r"^D1_ERROR: not authorized: SQLITE_AUTH$"):
            await db.prepare("PRAGMA foreign_keys = OFF").run()
        await db.batch(
            [
                db.prepare("PRAGMA defer_foreign_keys = ON"),
                db.prepare("INSERT INTO c (p) VALUES (1)"),
                db.prepare("INSERT INTO p (id) VALUES (1)"),
            ]
        )
        assert await count(db, "c") == 1
        assert (
            await db.prepare("PRAGMA defer_foreign_keys").first("defer_foreign_keys") == 0
        )  # per transaction

    run_d1(body)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE _cf_mine (a)",
        "SELECT * FROM _cf_METADATA",
        "CREATE INDEX _cf_idx ON t (a)",
        "PRAGMA user_version = 3",
        "ATTACH DATABASE 'other.db' AS other",
    ],
)
def test_forbidden_names_and_statements(run_d1, sql):
    """_cf_ names, PRAGMAs outside D1's list and ATTACH fail with SQLITE_AUTH; nothing is created."""

    async def body(db):
        await db.exec("CREATE TABLE t (a)")
        with pytest.raises(D1NotAuthorized, match=r"SQLITE_AUTH$"):
            await db.prepare(sql).run()
        names = await db.prepare(
            "SELECT name FROM sqlite_master WHERE name LIKE '%mine' OR name LIKE '%idx'"
        ).all()
        assert names.results == []

    run_d1(body)


def test_parameter_limits(run_d1):
    """At most 100 parameters per statement; the binding count must match."""

    async def body(db):
        ok = await db.prepare("SELECT " + ", ".join(["?"] * 100)).bind(*range(100)).raw()
        assert ok == [list(range(100))]
        with pytest.raises(D1QueryError, match=r"^D1_ERROR: too many SQL variables: SQLITE_ERROR$"):
            await db.prepare("SELECT " + ", ".join(["?"] * 101)).bind(*range(101)).all()
        with pytest.raises(
            D1QueryError, match=r"^D1_ERROR: variable number must be between \?1 and \?100: SQLITE_ERROR$"
        ):
            await db.prepare("SELECT ?101").bind(1).all()
        with pytest.raises(
            D1QueryError, match=r"^D1_ERROR: Wrong number of parameter bindings for SQL query\.$"
        ):
            await db.prepare("SELECT ?, ?").bind(1).all()
        with pytest.raises(
            D1QueryError, match=r"^D1_ERROR: Wrong number of parameter bindings for SQL query\.$"
        ):
            await db.prepare("SELECT ?").bind(1, 2).all()

    run_d1(body)


def test_size_limits(run_d1):
    """Statement length, value size and LIKE pattern length follow production's limits."""

    async def body(db):
        with pytest.raises(D1QueryError, match=r"^D1_ERROR: statement too long: SQLITE_TOOBIG$"):
            await db.prepare("SELECT 1" + " " * 100_000).all()
        with pytest.raises(D1QueryError, match=r"^D1_ERROR: string or blob too big: SQLITE_TOOBIG$"):
            await db.prepare("SELECT length(?)").bind("x" * 2_000_001).all()
        assert await db.prepare("SELECT length(?) AS n").bind("x" * 2_000_000).first("n") == 2_000_000
        with pytest.raises(D1QueryError, match=r"^D1_ERROR: LIKE or GLOB pattern too complex: SQLITE_ERROR$"):
            await db.prepare("SELECT 'a' LIKE ?").bind("x" * 51).all()

    run_d1(body)


def test_multi_statement_strings(run_d1):
    """Bindings go to the last statement, its rows are returned, a failure undoes all of them."""

    async def body(db):
        await users(db)
        res = (
            await db.prepare(
                "INSERT INTO users (name) VALUES ('a'); -- a comment; still one\nSELECT name FROM users WHERE name = ?"
            )
            .bind("a")
            .all()
        )
        assert res.results == [{"name": "a"}]
        assert res.meta.changes == 1
        with pytest.raises(D1QueryError, match=r"only the last statement can have parameters\.$"):
            await db.prepare("SELECT ?; SELECT ?").bind(1).all()
        with pytest.raises(D1QueryError, match="no such table"):
            await db.prepare("INSERT INTO users (name) VALUES ('b'); INSERT INTO nope VALUES (1)").run()
        assert await count(db) == 1
        trigger = (
            "CREATE TRIGGER t AFTER INSERT ON users BEGIN UPDATE users SET score = 1 WHERE id = new.id; END; "
            "INSERT INTO users (name) VALUES ('x;y')"
        )
        await db.prepare(trigger).run()
        assert await db.prepare("SELECT score FROM users WHERE name = 'x;y'").first("score") == 1

    run_d1(body)


def test_empty_sql_is_refused(run_d1):
    """A statement with no SQL in it fails."""

    async def body(db):
        for sql in ("", "  ;  ", "-- nothing"):
            with pytest.raises(D1QueryError, match=r"^D1_ERROR: No SQL statements detected\.$"):
                await db.prepare(sql).all()

    run_d1(body)


def test_batch_is_one_transaction(run_d1):
    """batch(): positional results; any failure rolls every statement back."""

    async def body(db):
        await users(db)
        insert = db.prepare("INSERT INTO users (name, email) VALUES (?, ?)")
        results = await db.batch(
            [insert.bind("a", "a@x"), insert.bind("b", "b@x"), db.prepare("SELECT count(*) AS n FROM users")]
        )
        assert [r.meta.changes for r in results] == [1, 1, 0]
        assert results[2].results == [{"n": 2}]
        with pytest.raises(
            D1ConstraintError, match=r"^D1_ERROR: UNIQUE constraint failed: users\.email: SQLITE_CONSTRAINT$"
        ):
            await db.batch([insert.bind("c", "c@x"), insert.bind("d", "a@x")])
        assert await count(db) == 2
        with pytest.raises(D1SyntaxError):
            await db.batch([insert.bind("e", "e@x"), db.prepare("NOT SQL")])
        assert await count(db) == 2
        assert await db.batch([]) == []
        with pytest.raises(TypeError):
            await db.batch(["SELECT 1"])

    run_d1(body)


def test_exec(run_d1):
    """exec(): one query per line, {count, duration}; a failing line names itself and undoes all."""

    async def body(db):
        out = await db.exec("CREATE TABLE a (x)\n\nINSERT INTO a VALUES (1); INSERT INTO a VALUES (2)\n")
        assert out.count == 3
        assert set(out) == {"count", "duration"}
        assert await count(db, "a") == 2
        with pytest.raises(D1ExecError) as info:
            await db.exec("INSERT INTO a VALUES (3)\nINSERTZ INTO a VALUES (4)\nINSERT INTO a VALUES (5)")
        assert str(info.value) == (
            'D1_EXEC_ERROR: Error in line 2: INSERTZ INTO a VALUES (4): near "INSERTZ": syntax error: SQLITE_ERROR'
        )
        assert info.value.line == 2
        assert await count(db, "a") == 2
        with pytest.raises(
            D1ExecError,
            match=r"^D1_EXEC_ERROR: Error in line 1: CREATE TABLE b \(: incomplete input: SQLITE_ERROR$",
        ):
            await db.exec("CREATE TABLE b (\n  x\n)")  # statements may not span lines

    run_d1(body)


def test_sessions_and_bookmarks(run_d1):
    """getBookmark(): None before a query, then never moving backwards; bookmarks compare as strings."""

    async def body(db):
        await users(db)
        session = db.withSession()
        assert session.getBookmark() is None
        assert db.withSession("first-primary").getBookmark() is None
        await session.prepare("SELECT 1").all()
        first = session.getBookmark()
        assert isinstance(first, str)
        await session.prepare("INSERT INTO users (name) VALUES ('a')").run()
        second = session.getBookmark()
        assert second is not None
        assert second > first
        await session.batch([session.prepare("SELECT 1")])
        assert session.getBookmark() == second  # reads do not move it
        other = db.withSession(first)
        assert other.getBookmark() == first
        await other.prepare("SELECT 1").all()
        assert other.getBookmark() == second
        ahead = db.withSession("zzzz")
        await ahead.prepare("SELECT 1").all()
        assert ahead.getBookmark() == "zzzz"  # never moves backwards
        assert db.withSession("  ").getBookmark() is None

    run_d1(body)


def test_bookmarks_grow_across_reopen(run_d1):
    """A reopened database hands out bookmarks after every earlier one."""

    async def first(db):
        s = db.withSession()
        await s.prepare("CREATE TABLE t (a)").run()
        return s.getBookmark()

    async def second(db):
        s = db.withSession()
        await s.prepare("SELECT * FROM t").all()
        return s.getBookmark()

    before = run_d1(first)
    after = run_d1(second)
    assert after > before


def test_data_survives_reopen(run_d1):
    """Rows are on disk once the call returned."""

    async def write(db):
        await users(db)
        await db.prepare("INSERT INTO users (name) VALUES ('kept')").run()

    async def read(db):
        return await db.prepare("SELECT name FROM users").first("name")

    run_d1(write)
    assert run_d1(read) == "kept"


def test_queries_per_invocation_is_opt_in(run_d1):
    """With queries_per_invocation set, the next statement over it fails and nothing runs."""

    async def body(db):
        for _ in range(3):
            await db.prepare("SELECT 1").all()
        with pytest.raises(D1QueryError, match=r"Exceeded the limit of 3 queries per Worker invocation"):
            await db.prepare("SELECT 1").all()

    run_d1(body, limits=D1Limits(queries_per_invocation=3))


def test_non_string_sql_is_a_type_error(run_d1):
    """prepare() and exec() take strings."""

    async def body(db):
        with pytest.raises(TypeError):
            db.prepare(42)
        with pytest.raises(TypeError):
            await db.exec(None)

    run_d1(body)


def test_bad_writes_leave_nothing_behind(run_d1):
    """Too many parameters, a bad bind and a constraint failure in a multi-row write write nothing."""

    async def body(db):
        await users(db)
        with pytest.raises(D1QueryError, match="too many SQL variables"):
            await (
                db.prepare("INSERT INTO users (name) VALUES " + ", ".join(["(?)"] * 101))
                .bind(*map(str, range(101)))
                .run()
            )
        with pytest.raises(D1TypeError):
            await db.prepare("INSERT INTO users (name) VALUES (?)").bind(object()).run()
        with pytest.raises(D1ConstraintError):
            await db.prepare("INSERT INTO users (name) VALUES ('a'), (NULL)").run()
        assert await count(db) == 0

    run_d1(body)


def test_session_refuses_non_string_bookmarks(run_d1):
    """withSession() takes a constraint or bookmark string."""

    async def body(db):
        with pytest.raises(D1SessionError, match=r"^D1_SESSION_ERROR: invalid bookmark or constraint$"):
            db.withSession(42)

    run_d1(body)


def test_closed_database_fails_with_d1_error(run_d1):
    """After close, calls fail with D1_ERROR instead of reaching SQLite."""

    async def body(db):
        closing = db._driver.close()  # trio closes at once, asyncio returns a coroutine
        if inspect.isawaitable(closing):
            await closing
        with pytest.raises(D1QueryError, match=r"^D1_ERROR: Cannot operate on a closed database\.$"):
            await db.prepare("SELECT 1").all()

    run_d1(body)


def _size_on_disk(path: str) -> int:
    """The database's size as ``PRAGMA page_count`` x ``page_size`` says, read by a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        pages: int = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size: int = conn.execute("PRAGMA page_size").fetchone()[0]
        return pages * page_size
    finally:
        conn.close()


def test_size_after_is_the_database_size_after_the_call(run_d1):
    """meta.size_after is the size after each call: single writes, batches, exec, schema changes,
    and reads that follow writes whose results show no meta (first(), raw())."""
    path = run_d1.path

    async def body(db):
        seen: list[tuple[str, int, int]] = []

        def check(label: str, result: JsDict) -> None:
            seen.append((label, result.meta.size_after, _size_on_disk(path)))

        check("create", await db.prepare("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").run())
        for i in range(30):
            check(f"insert {i}", await db.prepare("INSERT INTO t (v) VALUES (?)").bind("x" * 1500).run())
        check("read", await db.prepare("SELECT count(*) FROM t").all())
        results = await db.batch(
            [db.prepare("INSERT INTO t (v) VALUES (?)").bind("y" * 3000) for _ in range(20)]
        )
        check("batch", results[-1])
        await db.exec("CREATE TABLE u (w TEXT)\nINSERT INTO u VALUES ('" + "z" * 3000 + "')")
        check("after exec", await db.prepare("SELECT 1").all())
        check("delete", await db.prepare("DELETE FROM t WHERE id % 2 = 0").run())
        check("drop", await db.prepare("DROP TABLE u").run())
        # More than the pages the DELETE and the DROP freed, so the file grows meanwhile.
        for _ in range(40):
            assert await db.prepare("INSERT INTO t (v) VALUES (?) RETURNING id").bind("w" * 4000).first("id")
        check("read after first()", await db.prepare("SELECT count(*) FROM t").all())
        await db.prepare("INSERT INTO t (v) VALUES (?)").bind("v" * 50_000).raw()
        check("batch read after raw()", (await db.batch([db.prepare("SELECT 1")]))[0])
        return seen

    seen = run_d1(body)
    assert [(label, shown) for label, shown, _ in seen] == [(label, actual) for label, _, actual in seen]
    actual = {label: size for label, _, size in seen}
    # The file grew where it matters: every kind of call was checked against a change.
    assert actual["insert 29"] > actual["create"]
    assert actual["batch"] > actual["read"]
    assert actual["read after first()"] > actual["drop"]
    assert actual["batch read after raw()"] > actual["read after first()"]


def test_column_names_follow_schema_changes(run_d1):
    """The same SELECT * text shows a column added since its last run."""

    async def body(db):
        await db.exec("CREATE TABLE t (a)\nINSERT INTO t VALUES (1)")
        before = await db.prepare("SELECT * FROM t").first()
        await db.prepare("ALTER TABLE t ADD COLUMN b DEFAULT 2").run()
        after = await db.prepare("SELECT * FROM t").first()
        renamed = await db.prepare("SELECT a AS c FROM t").all()
        return before, after, renamed.results

    assert run_d1(body) == ({"a": 1}, {"a": 1, "b": 2}, [{"c": 1}])


def test_bind_passes_plain_values_unchanged_and_converts_the_rest(run_d1):
    """bind() keeps text, NULL and safe ints as given and converts the others as before."""

    async def body(db):
        stmt = db.prepare("SELECT ?, ?, ?, ?, ?, ?")
        plain = stmt.bind("a", None, 7, -(2**53) + 1, 2**53 - 1, "")
        mixed = stmt.bind(True, 1.0, float("nan"), b"\x01", [2, 3], memoryview(b"\x04"))
        rows = await mixed.raw()
        return plain.params, mixed.params, rows

    plain, mixed, rows = run_d1(body)
    assert plain == ("a", None, 7, -(2**53) + 1, 2**53 - 1, "")
    assert mixed == (1, 1.0, None, b"\x01", b"\x02\x03", b"\x04")
    assert rows == [[1, 1, None, [1], [2, 3], [4]]]
