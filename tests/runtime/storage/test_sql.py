"""ctx.storage.sql and transactionSync: results, bindings, errors, rules, limits, batching."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runtime.storage import SqlStorageCursor, StorageLimits, StorageTypeError
from runtime.storage._limits import SQL_TRANSACTION_STATEMENT
from shards import ObjectResetError, StorageError, StorageLimitError

from .fakes import Harness, make_harness


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return make_harness(tmp_path / "obj.sqlite")


def table(h: Harness) -> None:
    h.storage.sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    h.storage.sql.exec("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    h.db.commit()
    h.host.wrote_calls.clear()


def count(h: Harness, name: str = "t") -> int:
    return int(h.storage.sql.exec(f"SELECT count(*) AS n FROM {name}").one()["n"])


def dirty(h: Harness) -> bool:
    return h.db.dirty  # a function, so mypy does not narrow the property between calls


# --- results ----------------------------------------------------------------------------------------


def test_rows_as_dicts_and_column_names(h: Harness) -> None:
    table(h)
    cursor = h.storage.sql.exec("SELECT id, v FROM t ORDER BY id")
    assert isinstance(cursor, SqlStorageCursor)
    assert cursor.columnNames == ["id", "v"]
    assert list(cursor) == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    assert cursor.rowsRead == 3
    assert cursor.columnNames == ["id", "v"]  # still known once consumed


def test_next_to_array_one_and_raw_share_one_position(h: Harness) -> None:
    table(h)
    sql = h.storage.sql
    cursor = sql.exec("SELECT id FROM t ORDER BY id")
    assert cursor.next() == {"done": False, "value": {"id": 1}}
    raw = cursor.raw()
    assert next(raw) == [2]
    assert cursor.toArray() == [{"id": 3}]
    assert cursor.next() == {"done": True, "value": None}
    assert raw.toArray() == []
    assert sql.exec("SELECT id, v FROM t WHERE id = ?", 2).one() == {"id": 2, "v": "b"}
    assert sql.exec("SELECT id FROM t").raw().toArray() == [[1], [2], [3]]
    assert sql.exec("SELECT 1 AS a").raw().next() == {"done": False, "value": [1]}
    assert sql.exec("SELECT 1 AS a").raw().columnNames == ["a"]


def test_one_refuses_zero_and_several_rows_with_productions_messages(h: Harness) -> None:
    table(h)
    sql = h.storage.sql
    with pytest.raises(
        StorageError, match=r"^Expected exactly one result from SQL query, but got no results\.$"
    ):
        sql.exec("SELECT * FROM t WHERE id = 99").one()
    with pytest.raises(
        StorageError, match=r"^Expected exactly one result from SQL query, but got multiple results\.$"
    ):
        sql.exec("SELECT * FROM t").one()
    with pytest.raises(StorageError, match=r"no results"):
        sql.exec("INSERT INTO t VALUES (9, 'z')").one()
    assert sql.exec("DELETE FROM t WHERE id = 9 RETURNING v").one() == {"v": "z"}


def test_duplicate_column_names_keep_the_last_in_dicts_and_all_in_raw(h: Harness) -> None:
    sql = h.storage.sql
    cursor = sql.exec("SELECT 1 AS c, 2 AS c")
    assert cursor.columnNames == ["c", "c"]
    assert cursor.raw().toArray() == [[1, 2]]
    assert sql.exec("SELECT 1 AS c, 2 AS c").one() == {"c": 2}


def test_values_read_back_as_javascript_numbers_through_pyodide(h: Harness) -> None:
    """Integral numbers are ints, others floats; integers beyond 2**53 lose precision, as in production."""
    row = h.storage.sql.exec(
        "SELECT 5 AS i, 2.0 AS whole, 2.5 AS f, 9007199254740993 AS big, 'x' AS s, x'ff00' AS b, NULL AS n"
    ).one()
    assert row == {
        "i": 5,
        "whole": 2,
        "f": 2.5,
        "big": 9007199254740992.0,
        "s": "x",
        "b": b"\xff\x00",
        "n": None,
    }
    assert type(row["whole"]) is int
    assert type(row["big"]) is float


def test_cursor_is_lazy_and_sees_later_writes(h: Harness) -> None:
    """Gotcha 8: a cursor read later can see rows written after exec."""
    table(h)
    sql = h.storage.sql
    cursor = sql.exec("SELECT id FROM t ORDER BY id")
    assert cursor.next()["value"] == {"id": 1}
    sql.exec("INSERT INTO t VALUES (4, 'd')")
    assert [row["id"] for row in cursor] == [2, 3, 4]


def test_lazy_cursor_after_its_connection_closed(h: Harness) -> None:
    h.storage.sql.exec("CREATE TABLE big (x)")
    for i in range(10):
        h.storage.sql.exec("INSERT INTO big VALUES (?)", i)
    h.db.commit()
    cursor = h.storage.sql.exec("SELECT x FROM big")
    h.db.close()
    with pytest.raises(StorageError, match=r"connection was closed"):
        cursor.toArray()


# --- statements -------------------------------------------------------------------------------------


def test_multi_statement_exec_binds_and_returns_the_last_statement(h: Harness) -> None:
    """Gotcha 9."""
    cursor = h.storage.sql.exec(
        "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('a;b'); -- a comment; with a semicolon\n"
        "INSERT INTO t VALUES ('c'); SELECT v FROM t WHERE v != ? ORDER BY v;",
        "zzz",
    )
    assert cursor.toArray() == [{"v": "a;b"}, {"v": "c"}]


def test_trigger_bodies_are_one_statement(h: Harness) -> None:
    h.storage.sql.exec(
        "CREATE TABLE e (v); CREATE TABLE audit (v);"
        "CREATE TRIGGER e_audit AFTER INSERT ON e BEGIN INSERT INTO audit VALUES (new.v); "
        "INSERT INTO audit VALUES (new.v * 2); END; INSERT INTO e VALUES (?)",
        5,
    )
    assert h.storage.sql.exec("SELECT v FROM audit ORDER BY v").raw().toArray() == [[5], [10]]


@pytest.mark.parametrize(
    "query", ["", "   ", ";", "-- only a comment", "SELECT 1; -- trailing", "SELECT 1;;"]
)
def test_text_without_a_statement_is_refused(h: Harness, query: str) -> None:
    with pytest.raises(StorageError, match=r"^SQL code did not contain a statement\.$"):
        h.storage.sql.exec(query)


def test_a_failing_multi_statement_exec_leaves_nothing(h: Harness) -> None:
    """All or nothing (production keeps the statements before the failure; we are stricter)."""
    table(h)
    with pytest.raises(StorageError, match=r"^no such table: missing: SQLITE_ERROR$"):
        h.storage.sql.exec("INSERT INTO t VALUES (10, 'x'); CREATE TABLE u (a); SELECT * FROM missing")
    assert count(h) == 3
    assert h.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'u'").toArray() == []
    assert not h.db.dirty
    assert h.host.wrote_calls == []


def test_a_failing_statement_keeps_earlier_writes_of_the_batch(h: Harness) -> None:
    table(h)
    sql = h.storage.sql
    sql.exec("INSERT INTO t VALUES (10, 'x')")
    with pytest.raises(StorageError, match=r"^UNIQUE constraint failed: t\.id: SQLITE_CONSTRAINT$"):
        sql.exec("INSERT INTO t VALUES (11, 'y'), (10, 'dup')")
    assert count(h) == 4  # the batch keeps 10; the failed statement left nothing
    h.db.commit()
    assert count(h) == 4


def test_syntax_and_constraint_errors_carry_the_primary_code(h: Harness) -> None:
    table(h)
    sql = h.storage.sql
    with pytest.raises(StorageError, match=r'^near "SELEC": syntax error: SQLITE_ERROR$'):
        sql.exec("SELEC 1")
    with pytest.raises(StorageError, match=r"^datatype mismatch: SQLITE_MISMATCH$"):
        sql.exec("INSERT INTO t (id, v) VALUES ('yeah', 'nah')")
    sql.exec("CREATE TABLE c (p INTEGER REFERENCES t(id))")
    with pytest.raises(StorageError, match=r"^FOREIGN KEY constraint failed: SQLITE_CONSTRAINT$"):
        sql.exec("INSERT INTO c VALUES (99)")  # foreign keys are on, as in production


# --- bindings ---------------------------------------------------------------------------------------


def test_bindings_of_every_accepted_type(h: Harness) -> None:
    row = h.storage.sql.exec(
        "SELECT ? AS s, ? AS i, typeof(?) AS it, ? AS f, ? AS b, ? AS n", "x", 7, 7, 1.5, b"\x01", None
    ).one()
    assert row == {"s": "x", "i": 7, "it": "real", "f": 1.5, "b": b"\x01", "n": None}
    assert h.storage.sql.exec("SELECT ?1 + ?1 AS two", 1).one() == {"two": 2}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, r"^sql\.exec\(\) binding 1 is a bool: JavaScript booleans are not bindable"),
        (2**53, r"^sql\.exec\(\) binding 1 is the int 9007199254740992, beyond"),
        (-(2**70), r"beyond ±\(2\*\*53 - 1\)"),
        ([1], r"^sql\.exec\(\) binding 1 has type list; SQL bindings must be str, int, float"),
        (bytearray(b"x"), r"has type bytearray"),
        ({"a": 1}, r"has type dict"),
    ],
)
def test_bindings_production_cannot_bind_are_refused(h: Harness, value: object, message: str) -> None:
    with pytest.raises(StorageTypeError, match=message):
        h.storage.sql.exec("SELECT ?", value)
    assert not h.path.exists()


def test_subclasses_of_accepted_types_bind_as_their_base(h: Harness) -> None:
    import enum

    class Colour(enum.StrEnum):
        RED = "red"

    class Size(enum.IntEnum):
        BIG = 3

    assert h.storage.sql.exec("SELECT ? AS c, ? AS s", Colour.RED, Size.BIG).one() == {"c": "red", "s": 3}


def test_wrong_binding_counts(h: Harness) -> None:
    sql = h.storage.sql
    for query, args in [("SELECT ?", ()), ("SELECT ?, ?", (1,)), ("SELECT 1", (1,))]:
        with pytest.raises(StorageError, match=r"^Wrong number of parameter bindings for SQL query\.$"):
            sql.exec(query, *args)
    with pytest.raises(
        StorageError,
        match=r"^When executing multiple SQL statements in a single call, only the last statement can have parameters\.$",
    ):
        sql.exec("CREATE TABLE early (v); INSERT INTO early VALUES (?); SELECT 1", "x")
    assert sql.exec("SELECT name FROM sqlite_master WHERE name = 'early'").toArray() == []


def test_surrogates_are_refused(h: Harness) -> None:
    with pytest.raises(StorageTypeError, match=r"lone surrogate"):
        h.storage.sql.exec("SELECT ?", "\ud800")
    with pytest.raises(StorageTypeError, match=r"takes the query as a str"):
        h.storage.sql.exec(b"SELECT 1")  # type: ignore[arg-type]


# --- rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["BEGIN", "BEGIN TRANSACTION", "COMMIT", "END", "ROLLBACK", "SAVEPOINT x", "RELEASE x", "ROLLBACK TO x"],
)
def test_transaction_statements_are_refused_with_productions_message(h: Harness, query: str) -> None:
    """Gotcha 10."""
    table(h)
    with pytest.raises(StorageError) as info:
        h.storage.sql.exec(query)
    assert str(info.value) == SQL_TRANSACTION_STATEMENT
    with pytest.raises(StorageError, match=r"^To execute a transaction, please use"):
        h.storage.sql.exec(f"INSERT INTO t VALUES (7, 'x'); {query}")
    assert count(h) == 3


def test_cf_names_are_refused_but_listed(h: Harness) -> None:
    """Gotcha 11: _cf_KV shows in sqlite_master but user SQL cannot read or create _cf_ names."""
    h.storage.put("secret", 1)
    sql = h.storage.sql
    names = [row["name"] for row in sql.exec("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert "_cf_KV" in names
    with pytest.raises(StorageError, match=r"^access to _cf_KV\.key is prohibited: SQLITE_AUTH$"):
        sql.exec("SELECT * FROM _cf_KV")
    # The exact text of the runtime's own statement cannot reuse its compiled (allowed) form.
    with pytest.raises(StorageError, match=r"SQLITE_AUTH$"):
        sql.exec("SELECT value FROM _cf_KV WHERE key = ?", "secret")
    for query in [
        "CREATE TABLE _cf_mine (a)",
        "DELETE FROM _cf_KV",
        "DROP TABLE _cf_METADATA",
        "CREATE TABLE u (a); CREATE INDEX _cf_idx ON u (a)",
        "INSERT INTO _CF_kv VALUES ('k', x'00')",
        "PRAGMA table_info(_cf_KV)",
    ]:
        with pytest.raises(StorageError, match=r"not authorized: SQLITE_AUTH$|prohibited: SQLITE_AUTH$"):
            sql.exec(query)
    assert h.storage.kv.get("secret") == 1


def test_other_authorizer_rules(h: Harness) -> None:
    sql = h.storage.sql
    sql.exec("CREATE TABLE t (a)")
    assert sql.exec("PRAGMA table_info(t)").toArray()[0]["name"] == "a"
    sql.exec("PRAGMA defer_foreign_keys = on")
    assert sql.exec("PRAGMA data_version").one()
    for query in [
        "PRAGMA page_size = 8192",
        "PRAGMA data_version = 5",
        "PRAGMA defer_foreign_keys = maybe",
        "CREATE TEMP TABLE tmp (a)",
        "ATTACH ':memory:' AS other",
        "CREATE VIRTUAL TABLE v USING rtree(id, a, b)",
    ]:
        with pytest.raises(StorageError, match=r"not authorized"):
            sql.exec(query)
    with pytest.raises(StorageError, match=r"^not authorized to use function: sqlite_version"):
        sql.exec("SELECT sqlite_version()")
    sql.exec("CREATE VIRTUAL TABLE docs USING fts5(body)")


def test_runtime_statements_keep_working_after_user_sql(h: Harness) -> None:
    sql = h.storage.sql
    sql.exec("CREATE TABLE t (a)")
    h.storage.put("k", "v" * 100)
    h.storage.setAlarm(10_000)
    h.db.commit()
    assert h.storage.kv.get("k") == "v" * 100
    h.storage.deleteAll()
    assert h.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 't'").toArray() == []


# --- limits ---------------------------------------------------------------------------------------------


def test_statement_length_limit(h: Harness) -> None:
    filler = " " * (100_000 - len("SELECT 1"))
    assert h.storage.sql.exec("SELECT 1" + filler).one() == {"1": 1}
    with pytest.raises(StorageLimitError, match=r"^statement too long: SQLITE_TOOBIG$"):
        h.storage.sql.exec("SELECT 1" + filler + " ")
    with pytest.raises(StorageLimitError, match=r"too long"):
        h.storage.sql.exec("SELECT '" + "é" * 50_000 + "'")  # 100,000 bytes of é alone


def test_bound_parameter_limit(h: Harness) -> None:
    sql = h.storage.sql
    hundred = ",".join("?" * 100)
    assert len(sql.exec(f"SELECT {hundred}", *range(100)).raw().toArray()[0]) == 100
    with pytest.raises(StorageError, match=r"^too many SQL variables: SQLITE_ERROR$"):
        sql.exec(f"SELECT {hundred}, ?", *range(101))
    with pytest.raises(StorageError, match=r"^variable number must be between \?1 and \?100: SQLITE_ERROR$"):
        sql.exec("SELECT ?101")


def test_value_size_limit_applies_to_user_sql_only(h: Harness) -> None:
    sql = h.storage.sql
    sql.exec("CREATE TABLE b (x)")
    sql.exec("INSERT INTO b VALUES (?)", b"x" * 1_999_000)  # the row, not only the value, counts
    with pytest.raises(StorageLimitError, match=r"^string or blob too big: SQLITE_TOOBIG$"):
        sql.exec("INSERT INTO b VALUES (?)", b"x" * 2_000_001)
    with pytest.raises(StorageLimitError, match=r"SQLITE_TOOBIG$"):
        sql.exec("SELECT zeroblob(2000001)")
    assert count(h, "b") == 1
    # KV values are bounded by StorageLimits (2 MiB), not by the SQL limit.
    h.storage.put("k", b"y" * 2_050_000)
    assert len(h.storage.kv.get("k")) == 2_050_000


def test_other_sql_limits(h: Harness) -> None:
    sql = h.storage.sql
    with pytest.raises(StorageError, match=r"too many terms in compound SELECT"):
        sql.exec(" UNION ALL ".join(["SELECT 1"] * 6))
    assert len(sql.exec(" UNION ALL ".join(["SELECT 1"] * 5)).toArray()) == 5
    columns = ", ".join(f"c{i}" for i in range(101))
    with pytest.raises(StorageError, match=r"too many columns"):
        sql.exec(f"CREATE TABLE wide ({columns})")
    with pytest.raises(StorageError, match=r"LIKE or GLOB pattern too complex"):
        sql.exec("SELECT 'a' LIKE ?", "a" * 51)


# --- batching and the host --------------------------------------------------------------------------


def test_writes_join_the_batch_and_tell_the_host_reads_do_not(h: Harness) -> None:
    table(h)
    sql = h.storage.sql
    sql.exec("SELECT * FROM t").toArray()
    assert h.host.wrote_calls == []
    assert not dirty(h)
    sql.exec("UPDATE t SET v = 'z' WHERE id = 1")
    assert h.host.wrote_calls == [True]
    assert dirty(h)
    h.storage.put("k", 1)  # KV and SQL share one batch
    h.db.rollback()  # a crash: the whole batch is gone
    assert sql.exec("SELECT v FROM t WHERE id = 1").one() == {"v": "a"}
    assert h.storage.kv.get("k") is None


def test_a_write_that_changes_nothing_is_still_a_write(h: Harness) -> None:
    table(h)
    cursor = h.storage.sql.exec("DELETE FROM t WHERE id = 99")
    assert cursor.rowsWritten == 0
    assert h.host.wrote_calls == [True]


def test_rows_written_and_read(h: Harness) -> None:
    table(h)
    sql = h.storage.sql
    assert sql.exec("INSERT INTO t VALUES (10, 'x'), (11, 'y')").rowsWritten == 2
    assert sql.exec("UPDATE t SET v = 'q'").rowsWritten == 5
    cursor = sql.exec("SELECT * FROM t")
    for seen, _row in enumerate(cursor, start=1):
        assert cursor.rowsRead == seen
    assert cursor.rowsWritten == 0


def test_a_read_of_an_object_without_a_file_creates_nothing(h: Harness) -> None:
    sql = h.storage.sql
    assert sql.exec("SELECT 1 AS one").one() == {"one": 1}
    names = {row["name"] for row in sql.exec("SELECT name FROM sqlite_master")}
    assert "_cf_KV" in names
    with pytest.raises(StorageError, match=r"^no such table: t: SQLITE_ERROR$"):
        sql.exec("SELECT * FROM t")
    with pytest.raises(StorageError, match=r"^Wrong number"):
        sql.exec("SELECT ?")
    assert sql.databaseSize > 0
    assert not h.path.exists()
    assert h.host.wrote_calls == []
    sql.exec("CREATE TABLE t (a); INSERT INTO t VALUES (1)")
    assert h.path.exists()
    assert h.host.wrote_calls == [True]
    assert sql.exec("SELECT a FROM t").one() == {"a": 1}


def test_a_multi_statement_read_does_not_leave_a_batch_open(h: Harness) -> None:
    table(h)
    assert h.storage.sql.exec("SELECT 1; SELECT id FROM t WHERE id = 1").one() == {"id": 1}
    assert not h.db.dirty
    assert h.host.wrote_calls == []


def test_database_size(h: Harness) -> None:
    sql = h.storage.sql
    sql.exec("CREATE TABLE t (a)")
    h.db.commit()
    before = sql.databaseSize
    conn = h.db.read_connection()
    assert conn is not None
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    assert before % page_size == 0
    sql.exec("CREATE TABLE one_more_page (a)")
    assert sql.databaseSize == before + page_size
    sql.exec("DROP TABLE one_more_page")
    assert sql.databaseSize == before


def test_reset_object_cannot_use_sql(h: Harness) -> None:
    h.host.reset()
    with pytest.raises(ObjectResetError):
        h.storage.sql.exec("SELECT 1")
    with pytest.raises(ObjectResetError):
        h.storage.transactionSync(lambda: None)


def test_sql_and_transaction_sync_are_sqlite_only(tmp_path: Path) -> None:
    legacy = make_harness(tmp_path / "legacy.sqlite", limits=StorageLimits.legacy_kv())
    with pytest.raises(StorageError, match=r"only available on SQLite-backed Durable Objects"):
        _ = legacy.storage.sql
    with pytest.raises(StorageError, match=r"only available on SQLite-backed Durable Objects"):
        legacy.storage.transactionSync(lambda: None)


# --- transactionSync ------------------------------------------------------------------------------


def test_transaction_sync_returns_the_value_and_commits_with_the_batch(h: Harness) -> None:
    table(h)
    result = h.storage.transactionSync(lambda: h.storage.sql.exec("DELETE FROM t WHERE id = 1").rowsWritten)
    assert result == 1
    assert h.db.can_commit
    assert h.host.wrote_calls[-1] is True
    h.db.commit()
    assert count(h) == 2


def test_transaction_sync_rolls_back_on_exception(h: Harness) -> None:
    table(h)
    h.storage.put("kept", 1)

    def work() -> None:
        h.storage.sql.exec("DELETE FROM t")
        h.storage.put("gone", 1)
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        h.storage.transactionSync(work)
    assert count(h) == 3
    assert h.storage.kv.get("gone") is None
    assert h.storage.kv.get("kept") == 1
    assert h.db.can_commit


def test_nested_transaction_sync(h: Harness) -> None:
    table(h)
    sql = h.storage.sql

    def inner() -> None:
        sql.exec("UPDATE t SET v = 'inner'")
        raise ValueError("inner")

    def outer() -> str:
        sql.exec("UPDATE t SET v = 'outer'")
        with pytest.raises(ValueError, match="inner"):
            h.storage.transactionSync(inner)
        return str(sql.exec("SELECT v FROM t WHERE id = 1").one()["v"])

    assert h.storage.transactionSync(outer) == "outer"


def test_transaction_sync_refuses_async_callbacks(h: Harness) -> None:
    table(h)

    async def coroutine_function() -> None:
        h.storage.sql.exec("DELETE FROM t")  # pragma: no cover - never runs

    with pytest.raises(StorageTypeError, match=r"^transactionSync\(\) takes a synchronous function"):
        h.storage.transactionSync(coroutine_function)  # type: ignore[unused-coroutine]

    def returns_awaitable() -> object:
        h.storage.sql.exec("DELETE FROM t")
        return coroutine_function()

    with pytest.raises(StorageTypeError, match=r"synchronous function"):
        h.storage.transactionSync(returns_awaitable)
    assert count(h) == 3  # rolled back
    with pytest.raises(StorageTypeError, match=r"takes a function"):
        h.storage.transactionSync(42)  # type: ignore[arg-type]


def test_delete_all_is_refused_inside_transaction_sync(h: Harness) -> None:
    with pytest.raises(StorageError, match=r"^Cannot call deleteAll\(\) within a transaction$"):
        h.storage.transactionSync(h.storage.deleteAll)


async def test_sql_inside_an_async_transaction_is_part_of_it(h: Harness) -> None:
    table(h)

    async def closure(txn) -> None:
        h.storage.sql.exec("DELETE FROM t")
        txn.rollback()

    await h.storage.transaction(closure)
    assert count(h) == 3


def test_delete_all_wipes_user_tables_and_kv(h: Harness) -> None:
    table(h)
    h.storage.put("k", 1)
    h.storage.deleteAll()
    with pytest.raises(StorageError, match=r"no such table: t"):
        h.storage.sql.exec("SELECT * FROM t")
    assert h.storage.kv.get("k") is None


def test_sqlite3_errors_never_escape(h: Harness) -> None:
    """Everything user SQL can raise is a StorageError (never a sqlite3 exception)."""
    for query in ["SELECT", "SELECT * FROM nowhere", "SELECT 1/0 + abs(-9223372036854775808)"]:
        with pytest.raises(StorageError) as info:
            h.storage.sql.exec(query)
        assert not isinstance(info.value, sqlite3.Error)


def test_create_if_not_exists_is_always_a_write_whatever_the_schema(h: Harness) -> None:
    """Whether a statement may write depends on its text only, so a no-op CREATE cannot leak past the batch."""
    sql = h.storage.sql
    create = "CREATE TABLE IF NOT EXISTS t (a)"
    sql.exec(create)
    h.db.commit()
    sql.exec(create)  # a no-op now, but still a write as far as batching goes
    h.db.commit()
    h.storage.deleteAll()
    h.db.commit()
    h.host.wrote_calls.clear()
    sql.exec(create)  # creates the table again: it must be in the batch, not autocommitted
    assert h.host.wrote_calls == [True]
    h.db.rollback()  # a crash before the commit
    with pytest.raises(StorageError, match=r"^no such table: t: SQLITE_ERROR$"):
        sql.exec("SELECT * FROM t")


def test_with_statements_are_classified_by_what_they_do(h: Harness) -> None:
    table(h)
    sql = h.storage.sql
    assert sql.exec("WITH x AS (SELECT 1 AS one) SELECT one FROM x").one() == {"one": 1}
    assert h.host.wrote_calls == []
    sql.exec("WITH x AS (SELECT 9 AS id) INSERT INTO t (id, v) SELECT id, 'w' FROM x")
    assert h.host.wrote_calls == [True]
    assert count(h) == 4


def test_user_transaction_statements_cannot_reuse_the_runtime_s_compiled_ones(h: Harness) -> None:
    """The runtime has compiled COMMIT and BEGIN IMMEDIATE; user SQL must still meet the rules."""
    table(h)
    h.storage.sql.exec("INSERT INTO t VALUES (8, 'x')")
    for query in ["COMMIT", "BEGIN IMMEDIATE", "ROLLBACK"]:
        with pytest.raises(StorageError, match=r"^To execute a transaction"):
            h.storage.sql.exec(query)
    h.db.rollback()
    assert count(h) == 3  # the batch was never committed behind the runtime's back


def test_a_failing_write_on_an_object_without_a_file_creates_nothing(h: Harness) -> None:
    with pytest.raises(StorageError, match=r"^no such table: t: SQLITE_ERROR$"):
        h.storage.sql.exec("INSERT INTO t VALUES (1)")
    with pytest.raises(StorageError, match=r"^To execute a transaction"):
        h.storage.sql.exec("BEGIN")
    assert not h.path.exists()
    assert h.host.wrote_calls == []


def test_float_and_bytes_subclasses_bind_as_their_base(h: Harness) -> None:
    class Money(float):
        pass

    class Blob(bytes):
        pass

    row = h.storage.sql.exec("SELECT ? AS m, typeof(?) AS t", Money(1.5), Blob(b"ab")).one()
    assert row == {"m": 1.5, "t": "blob"}


def test_raw_iteration_ends_like_the_cursor(h: Harness) -> None:
    raw = h.storage.sql.exec("SELECT 1 AS a").raw()
    assert list(raw) == [[1]]
    assert raw.next() == {"done": True, "value": None}
    assert "SqlStorageCursor" in repr(h.storage.sql.exec("SELECT 1"))


def test_nul_characters_in_a_query_are_a_storage_error(h: Harness) -> None:
    with pytest.raises(StorageError, match=r"null character"):
        h.storage.sql.exec("SELECT 1 AS a\x00")
