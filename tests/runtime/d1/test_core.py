"""The sans-I/O core on its own: splitting, binding rules, the authorizer, results, errors."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import pytest

from runtime.d1 import D1QueryError, D1TypeError, JsDict
from runtime.d1._core import (
    Authorizer,
    D1Limits,
    Engine,
    Execute,
    Executed,
    Outcome,
    QueryBudget,
    StepFailed,
    _map_error,
    convert_bind_value,
    first_of,
    raw_of,
    result_of,
    split_statements,
)
from shards import CodecError


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;", ["SELECT 1;"]),
        ("SELECT 1; SELECT 2", ["SELECT 1;", " SELECT 2"]),
        ("SELECT ';'; SELECT \"a;b\"", ["SELECT ';';", ' SELECT "a;b"']),
        ("SELECT 1 -- x;y\n; SELECT 2;", ["SELECT 1 -- x;y\n;", " SELECT 2;"]),
        ("/* a; b */ SELECT 1;", ["/* a; b */ SELECT 1;"]),
        (";; ;", []),
        ("  -- only a comment", []),
        (
            "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END; SELECT 3",
            ["CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2; END;", " SELECT 3"],
        ),
        ("SELECT (", ["SELECT ("]),
    ],
)
def test_split_statements(sql, expected):
    """Semicolons split only where SQLite's tokenizer ends a statement."""
    assert split_statements(sql) == expected


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (None, None),
        (True, 1),
        (False, 0),
        (0, 0),
        (-(2**53) + 1, -(2**53) + 1),
        (1.5, 1.5),
        (math.inf, None),
        (-math.inf, None),
        ("x", "x"),
        (b"ab", b"ab"),
        (memoryview(b"ab"), b"ab"),
        ([], b""),
        ([0, 255], b"\x00\xff"),
    ],
)
def test_bind_conversions(value, stored):
    """What each accepted Python value is stored as."""
    assert convert_bind_value(value) == stored


def test_bind_refusals():
    """Unsafe ints are BigInts, callables functions, everything else an object."""
    with pytest.raises(
        D1TypeError, match=r"^D1_TYPE_ERROR: Type 'bigint' not supported for value '-9007199254740992'$"
    ):
        convert_bind_value(-(2**53))
    with pytest.raises(D1TypeError, match=r"Type 'function'"):
        convert_bind_value(print)
    with pytest.raises(D1TypeError, match=r"^D1_TYPE_ERROR: Type 'object' not supported for value ','$"):
        convert_bind_value([None, [None]])  # JS prints null items of an array as empty
    with pytest.raises(D1TypeError, match=r"value '1.5'"):
        convert_bind_value([1.5])
    with pytest.raises(CodecError):
        convert_bind_value(())


def test_jsdict_attribute_access():
    """Keys read as attributes; missing ones raise AttributeError; setting works both ways."""
    d = JsDict(a=1)
    d.b = 2
    assert d == {"a": 1, "b": 2}
    assert d.a == 1
    with pytest.raises(AttributeError):
        _ = d.c


def test_result_shaping():
    """BLOBs become lists, integral floats ints, and first/raw follow production."""
    outcome = Outcome(("a", "b"), [(b"\x01", 2.0), (None, 2**60)])
    assert result_of(outcome).results == [{"a": [1], "b": 2}, {"a": None, "b": float(2**60)}]
    assert first_of(outcome, "b") == 2
    assert raw_of(outcome, True) == [["a", "b"], [[1], 2], [None, float(2**60)]]
    assert first_of(Outcome(("a",), []), None) is None


def test_authorizer_rules():
    """Transactions, ATTACH, unlisted or value-setting PRAGMAs and _cf_ names are denied; internal passes."""
    auth = Authorizer()
    assert auth(22, "BEGIN", None, None, None) == 1
    assert auth.refused_transaction
    assert auth(24, "x.db", None, None, None) == 1
    assert auth(19, "table_info", "t", None, None) == 0
    assert auth(19, "defer_foreign_keys", "on", None, None) == 0
    assert auth(19, "foreign_keys", None, None, None) == 0
    assert auth(19, "foreign_keys", "off", None, None) == 1
    assert auth(19, "journal_mode", None, None, None) == 1
    assert auth(2, "_cf_x", None, "main", None) == 1
    assert auth(20, "t", "_cf_col", "main", None) == 1
    assert auth(20, "t", "a", "main", None) == 0
    auth.internal = True
    assert auth(22, "BEGIN", None, None, None) == 0
    assert auth(2, "_cf_x", None, "main", None) == 0


def test_error_mapping_of_non_sqlite_errors():
    """Errors Python's sqlite3 raises itself keep their text; extended codes print their primary name."""
    auth = Authorizer()
    mapped = _map_error(
        StepFailed(sqlite3.ProgrammingError("Cannot operate on a closed database.")),
        auth,
        last=True,
        has_params=False,
    )
    assert str(mapped) == "D1_ERROR: Cannot operate on a closed database."
    too_large = _map_error(
        StepFailed(sqlite3.DataError("query string is too large")), auth, last=True, has_params=False
    )
    assert str(too_large) == "D1_ERROR: statement too long: SQLITE_TOOBIG"
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5 | (2 << 8)  # SQLITE_BUSY_SNAPSHOT
    assert (
        str(_map_error(StepFailed(busy), auth, last=True, has_params=False))
        == "D1_ERROR: database is locked: SQLITE_BUSY"
    )


def test_limits_and_budget():
    """The limits map onto sqlite3's setlimit names; the budget counts per key."""
    names = D1Limits().sqlite_limits()
    assert names["SQLITE_LIMIT_VARIABLE_NUMBER"] == 100
    assert all(hasattr(sqlite3, n) for n in names)
    budget = QueryBudget(2)

    class Key:
        pass

    a, b = Key(), Key()
    budget.charge(a, 2)
    budget.charge(b, 1)
    with pytest.raises(D1QueryError):
        budget.charge(a, 1)
    QueryBudget(None).charge(a, 10**6)


def _drive_failing_batch(seen: list[str]) -> None:
    engine = Engine()
    call = engine.batch([("INSERT INTO t VALUES (1)", ()), ("BAD", ())])
    answer: Any = None
    while True:
        step = call.send(answer)
        if not isinstance(step, Execute):
            answer = 0.0
            continue
        seen.append(step.sql.split("*/ ")[-1])
        if step.sql == "BAD":
            err = sqlite3.OperationalError('near "BAD": syntax error')
            err.sqlite_errorcode = 1
            answer = StepFailed(err)
        else:
            answer = Executed((), [], 0, 1)


def test_engine_rolls_back_a_failed_batch():
    """The engine's effects for a failing batch: BEGIN, the steps, then ROLLBACK; the error is raised."""
    seen: list[str] = []
    with pytest.raises(D1QueryError, match="syntax error"):
        _drive_failing_batch(seen)
    assert seen == ["BEGIN", "INSERT INTO t VALUES (1)", "BAD", "ROLLBACK"]
