"""The SQL text rules Durable Object SQL and D1 share: splitting, trivia, PRAGMA tables."""

from __future__ import annotations

import ast
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from runtime import _sqltext
from runtime._sqltext import (
    D1_PRAGMAS,
    DURABLE_OBJECT_PRAGMAS,
    EmptyStatementError,
    PragmaRules,
    is_blank,
    reserved_name,
    skip_trivia,
    split_statements,
)

TRIGGER = "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END;"

# --- splitting: what both modes agree on -------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;", ["SELECT 1;"]),
        ("SELECT 1; SELECT 2", ["SELECT 1;", " SELECT 2"]),
        # strings and quoted names
        ("SELECT ';'; SELECT \"a;b\"", ["SELECT ';';", ' SELECT "a;b"']),
        ("SELECT 'it''s;'; SELECT 2", ["SELECT 'it''s;';", " SELECT 2"]),
        ("SELECT `a;b`, [c;d]; SELECT 2", ["SELECT `a;b`, [c;d];", " SELECT 2"]),
        # comments
        ("SELECT 1 -- x;y\n; SELECT 2;", ["SELECT 1 -- x;y\n;", " SELECT 2;"]),
        ("/* a; b */ SELECT 1;", ["/* a; b */ SELECT 1;"]),
        (
            "SELECT 1; -- a comment; with a semicolon\nSELECT 2",
            ["SELECT 1;", " -- a comment; with a semicolon\nSELECT 2"],
        ),
        # trigger bodies are one statement, semicolons and all
        (TRIGGER + " SELECT 3", [TRIGGER, " SELECT 3"]),
        (
            "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT CASE WHEN 1 THEN 'a;' END; END;",
            ["CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT CASE WHEN 1 THEN 'a;' END; END;"],
        ),
        # an incomplete statement is kept for SQLite to report
        ("SELECT (", ["SELECT ("]),
        ("SELECT 'a;", ["SELECT 'a;"]),
        # whitespace after the last statement is not a statement
        ("SELECT 1;  \n\t", ["SELECT 1;"]),
    ],
)
def test_both_modes_split_alike(sql: str, expected: list[str], strict: bool) -> None:
    """Semicolons split only where SQLite's tokenizer ends a statement."""
    assert split_statements(sql, strict=strict) == expected


@pytest.mark.parametrize(
    ("query", "pieces"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;  \n", ["SELECT 1;"]),
        ("SELECT ';'; SELECT 2", ["SELECT ';';", " SELECT 2"]),
        ("/* ; */ SELECT 1 -- ;", ["/* ; */ SELECT 1 -- ;"]),
    ],
)
def test_split_statements(query: str, pieces: list[str]) -> None:
    """Durable Object SQL's cases (strict mode)."""
    assert split_statements(query, strict=True) == pieces


# --- splitting: empty statements, where the modes differ --------------------------------------------


@pytest.mark.parametrize(
    ("sql", "lenient"),
    [
        ("", []),
        ("   \n", []),
        (";", []),
        (";; ;", []),
        ("  -- only a comment", []),
        ("/* only a comment */", []),
        ("/* unclosed; comment", []),
        ("SELECT 1;;", ["SELECT 1;"]),
        ("SELECT 1; -- trailing", ["SELECT 1;"]),
        ("SELECT 1; /* c */ ; SELECT 2", ["SELECT 1;", " SELECT 2"]),
        (";SELECT 1", ["SELECT 1"]),
    ],
)
def test_empty_statements_are_dropped_or_refused(sql: str, lenient: list[str]) -> None:
    """D1 (lenient) drops them; Durable Object SQL (strict) refuses the whole text."""
    assert split_statements(sql) == lenient
    assert split_statements(sql, strict=False) == lenient
    with pytest.raises(EmptyStatementError):
        split_statements(sql, strict=True)


_pieces = st.sampled_from(
    [";", " ", "\n", "--", "/*", "*/", "'", '"', "`", "[", "]", "SELECT 1", "x", "BEGIN", "END",
     "CREATE TRIGGER t AFTER INSERT ON x BEGIN ", "a;b", "é", "-", "/", "*"]
)  # fmt: skip


@given(st.lists(_pieces, max_size=12).map("".join))
def test_split_properties(sql: str) -> None:
    """Statements are non-blank slices that split again into themselves; strict agrees or refuses."""
    lenient = split_statements(sql)
    for i, statement in enumerate(lenient):
        assert statement in sql
        assert not is_blank(statement)
        if i < len(lenient) - 1:
            assert statement.endswith(";")
            assert sqlite3.complete_statement(statement)
    assert split_statements("".join(lenient)) == lenient
    if lenient:
        assert split_statements("".join(lenient), strict=True) == lenient
    try:
        strict = split_statements(sql, strict=True)
    except EmptyStatementError:
        return
    assert strict == lenient
    assert strict


# --- trivia -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pos", "expected"),
    [
        ("SELECT 1", 0, 0),
        ("  \n\tSELECT", 0, 4),
        ("-- c; d\nSELECT", 0, 8),
        ("/* a */ /* b */SELECT", 0, 15),
        ("-- to the end", 0, 13),
        ("/* never closed", 0, 15),
        ("SELECT 1 -- c\n x", 8, 15),
        ("a - b / c", 1, 2),  # a lone '-' or '/' is not a comment
    ],
)
def test_skip_trivia(text: str, pos: int, expected: int) -> None:
    assert skip_trivia(text, pos) == expected
    assert is_blank(text[pos:]) == (expected == len(text))


# --- PRAGMAs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "argument", "durable_object", "d1"),
    [
        # allowed in one product and refused in the other
        ("page_count", None, False, True),
        ("integrity_check", None, False, True),
        ("foreign_keys", "OFF", True, False),  # D1 keeps foreign keys on
        ("defer_foreign_keys", "maybe", False, True),  # only Durable Objects insist on a boolean
        ("table_info", "_cf_KV", False, True),  # only Durable Objects check a PRAGMA's name argument
        ("table_info", "_CF_kv", False, True),
        # allowed in both
        ("foreign_keys", None, True, True),
        ("defer_foreign_keys", "'ON'", True, True),
        ("defer_foreign_keys", " false ", True, True),
        ("TABLE_INFO", "t", True, True),
        ("table_list", None, True, True),
        ("data_version", None, True, True),
        # refused in both
        ("data_version", "5", False, False),
        ("page_size", "8192", False, False),
        ("journal_mode", None, False, False),
        ("user_version", "3", False, False),
        (None, None, False, False),
    ],
)
def test_pragma_tables(name: str | None, argument: str | None, durable_object: bool, d1: bool) -> None:
    assert DURABLE_OBJECT_PRAGMAS.allows(name, argument) is durable_object
    assert D1_PRAGMAS.allows(name, argument) is d1


@contextmanager
def _authorized(rules: PragmaRules) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
        if action == sqlite3.SQLITE_PRAGMA and not rules.allows(arg1, arg2):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    conn.execute("CREATE TABLE t (a)")
    conn.set_authorizer(authorize)
    try:
        yield conn
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("sql", "durable_object", "d1"),
    [
        ("PRAGMA page_count", False, True),
        ("PRAGMA foreign_keys = OFF", True, False),
        ("PRAGMA defer_foreign_keys = maybe", False, True),
        ("PRAGMA table_info(_cf_KV)", False, True),
        ("PRAGMA table_info(t)", True, True),
        ("PRAGMA journal_mode = WAL", False, False),
    ],
)
def test_pragma_tables_as_sqlite_asks(sql: str, durable_object: bool, d1: bool) -> None:
    """The rules read the arguments the way SQLite's authorizer hands them over."""
    for rules, allowed in ((DURABLE_OBJECT_PRAGMAS, durable_object), (D1_PRAGMAS, d1)):
        with _authorized(rules) as conn:
            if allowed:
                conn.execute(sql).fetchall()
            else:
                with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
                    conn.execute(sql)


def test_a_pragma_belongs_to_one_set() -> None:
    with pytest.raises(ValueError, match="only one"):
        PragmaRules(
            reads=frozenset({"foreign_keys"}),
            named=frozenset(),
            settings=frozenset({"foreign_keys"}),
            refuse_reserved_names=False,
            boolean_settings=False,
        )


@pytest.mark.parametrize(
    ("name", "reserved"),
    [
        ("_cf_KV", True),
        ("_CF_x", True),
        ("_Cf_", True),
        ("cf_KV", False),
        ("x_cf_", False),
        ("", False),
        (None, False),
    ],
)
def test_reserved_name(name: str | None, reserved: bool) -> None:
    assert reserved_name(name) is reserved


# --- its place in the layering ----------------------------------------------------------------------


def test_the_module_imports_the_standard_library_only() -> None:
    """It sits below storage and D1: nothing of the runtime, and of shards only the error tree."""
    tree = ast.parse(Path(_sqltext.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            imported.add(node.module or "")
    foreign = {
        name
        for name in imported
        if name.partition(".")[0] not in sys.stdlib_module_names
        and name not in ("__future__", "shards._errors")
    }
    assert foreign == set()


def test_d1_splits_with_the_shared_splitter() -> None:
    from runtime.d1 import _core

    assert _core.split_statements is split_statements
