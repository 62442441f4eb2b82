"""The fast paths give what the general paths give: same rows, meta, errors and bookmarks.

``first()`` on the trio driver runs a single statement without an outcome
(``TrioDriver.first``); ``all()``/``run()``/``raw()`` run it on the driver's
one cursor (``TrioDriver.query_sync``); rows are built by generated builders
(``row_builder``); ``bind()`` checks plain values inline. The general path is
the core's ``Engine.query`` generator, run step by step (what the asyncio
driver runs), with ``first_row`` / ``result_of`` on its outcome and
``convert_bind_value`` on every value.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from runtime.d1 import D1Database, D1Limits, D1QueryError, D1TypeError, JsDict, close_d1, open_d1
from runtime.d1._core import (
    _GENERATED_WIDTH,
    _js_cell,
    convert_bind_value,
    first_row,
    result_of,
    row_builder,
)
from runtime.d1._trio import TrioDriver
from shards import CodecError

MAX_SAFE = 2**53 - 1

# --- row builders -------------------------------------------------------------------------------


def reference_row(columns: tuple[str, ...], row: tuple[Any, ...]) -> JsDict:
    """What a row looked like before builders: Object.fromEntries over converted cells."""
    return JsDict(zip(columns, [_js_cell(v) for v in row], strict=True))


def same_row(got: Any, expected: JsDict) -> None:
    """Equal keys in the same order, equal values of the same types (1 == 1.0 is not enough)."""
    assert type(got) is JsDict
    assert list(got.items()) == list(expected.items())
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


# What SQLite hands back: NULL, text, 64-bit ints, reals (no NaN: SQLite stores it as NULL), BLOBs.
sqlite_cells = st.one_of(
    st.none(),
    st.text(max_size=4),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([MAX_SAFE, -MAX_SAFE, MAX_SAFE + 1, -MAX_SAFE - 1, 2**63 - 1, -(2**63), 0]),
    st.floats(allow_nan=False),
    st.sampled_from([3.0, -0.0, 2.0**53, 2.0**60, 0.5, math.inf]),
    st.binary(max_size=4),
)
# Few names, so repeats are common (SELECT 1 AS a, 2 AS a).
column_names = st.sampled_from(["a", "b", "id", "x y", "Δ", "", "items", "0"])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_row_builders_build_what_the_general_expression_builds(data):
    """Every width, generated or not (up to and past _GENERATED_WIDTH), repeated names, every kind of cell."""
    width = data.draw(st.one_of(st.integers(1, 6), st.integers(_GENERATED_WIDTH - 1, _GENERATED_WIDTH + 3)))
    columns = tuple(data.draw(st.lists(column_names, min_size=width, max_size=width)))
    build = row_builder(columns)
    for _ in range(3):  # one builder, several rows
        row = tuple(data.draw(st.lists(sqlite_cells, min_size=width, max_size=width)))
        same_row(build(row), reference_row(columns, row))


def test_row_builders_at_the_edges():
    """Safe-integer bounds, integral floats, empty BLOBs; the last of a repeated name wins, in first place."""
    columns = ("a", "b", "a", "c", "d", "e", "f")
    row = (MAX_SAFE, -MAX_SAFE - 1, 2**63 - 1, b"", 3.0, -0.0, 2.5)
    built = row_builder(columns)(row)
    assert list(built.items()) == [
        ("a", float(2**63 - 1)),
        ("b", float(-MAX_SAFE - 1)),
        ("c", []),
        ("d", 3),
        ("e", 0),
        ("f", 2.5),
    ]
    same_row(built, reference_row(columns, row))
    assert row_builder(columns) is row_builder(tuple(list(columns)))  # cached by names
    assert row_builder(())(()) == {}


# --- bind -------------------------------------------------------------------------------------------

BIND_VALUES: list[Any] = [
    None,
    "",
    "text",
    0,
    -1,
    MAX_SAFE,
    -MAX_SAFE,
    True,
    False,
    1.0,
    2.5,
    math.nan,
    math.inf,
    -math.inf,
    b"",
    b"\x00\xff",
    memoryview(b"mv"),
    [0, 1, 255],
    [],
]
BIND_REFUSED: list[Any] = [
    MAX_SAFE + 1,
    -MAX_SAFE - 1,
    2**70,
    [1, 256],
    [1, True],
    {"a": 1},
    {1},
    (1,),
    bytearray(b"x"),
]


def test_bind_converts_as_convert_bind_value_does():
    """bind()'s inline check passes a value unchanged only where convert_bind_value would."""
    db = D1Database(None)  # type: ignore[arg-type]  # bind() never reaches the driver
    stmt = db.prepare("SELECT ?")
    for value in BIND_VALUES:
        for values in ((value,), ("plain", value, 7), (value, value)):
            got = stmt.bind(*values).params
            expected = tuple(convert_bind_value(v) for v in values)
            assert got == expected or all(
                g is None and e is None for g, e in zip(got, expected, strict=True)
            ), values
            assert [type(v) for v in got] == [type(v) for v in expected], values
    for value in BIND_REFUSED:
        for values in ((value,), ("plain", 7, value)):
            with pytest.raises((D1TypeError, CodecError)) as via_bind:
                stmt.bind(*values)
            with pytest.raises((D1TypeError, CodecError)) as via_convert:
                [convert_bind_value(v) for v in values]
            assert type(via_bind.value) is type(via_convert.value)
            assert str(via_bind.value) == str(via_convert.value)


def test_prepare_takes_str_subclasses_and_nothing_else():
    """prepare() checks its text as the constructor did: any str (subclasses too), else TypeError."""

    class Sql(str):
        pass

    db = D1Database(None)  # type: ignore[arg-type]
    stmt = db.prepare(Sql("SELECT 1"))
    assert stmt.statement == "SELECT 1"
    assert stmt.params == ()
    assert repr(stmt) == "<D1PreparedStatement 'SELECT 1' params=[]>"
    for bad in (None, b"SELECT 1", 42):
        with pytest.raises(TypeError, match=r"^prepare\(\) takes a string of SQL, got "):
            db.prepare(bad)  # type: ignore[arg-type]
    session = db.withSession()
    assert session.prepare("SELECT 2")._target is session


# --- the trio driver's fast paths against the core's generator ----------------------------------------

#: Statements run in order on two databases, one through each path. Writes, reads of every
#: kind of value, errors between successful calls, and schema changes under the same text.
STEPS: list[tuple[str, tuple[Any, ...]]] = [
    ("CREATE TABLE t (id INTEGER PRIMARY KEY, v, w BLOB)", ()),
    ("INSERT INTO t (v, w) VALUES (?, ?) RETURNING id, v, w", ("text", b"\x00\x01")),
    ("INSERT INTO t (v, w) VALUES (?, ?) RETURNING *", (None, None)),
    ("INSERT INTO t (v, w) VALUES (?, ?)", (True, [1, 2, 255])),
    ("INSERT INTO t (v, w) VALUES (?, ?)", (2.5, memoryview(b"mv"))),
    ("INSERT INTO t (v, w) VALUES (?, ?)", (3.0, math.nan)),
    ("INSERT INTO t (v, w) VALUES (?, ?)", (MAX_SAFE, False)),
    ("SELECT v * 1024 AS big, -v * 1024 AS small FROM t WHERE v = ?", (MAX_SAFE,)),
    ("SELECT * FROM t WHERE id = ?", (1,)),
    ("SELECT * FROM t WHERE id = ?", (4,)),
    ("SELECT * FROM t ORDER BY id DESC", ()),
    ("SELECT * FROM t WHERE id = ?", (999,)),
    ("SELECT 1 AS a, 2 AS a, 'x' AS b, NULL AS c, x'00' AS d, 1.0 AS e", ()),
    ("INSERT INTO t (id, v) VALUES (?, ?)", (1, "duplicate id")),
    ("SELECT * FROM t WHERE id = ?", (2,)),
    ("SELECT * FROM missing WHERE id = ?", (1,)),
    ("SELEC * FROM t", ()),
    ("SELECT * FROM t WHERE id = ?", ()),
    ("SELECT * FROM t WHERE id = ?", (1, 2)),
    ("SELECT * FROM _cf_METADATA", ()),
    ("BEGIN", ()),
    ("PRAGMA journal_mode = DELETE", ()),
    ("SELECT * FROM t WHERE id = ?", (3,)),
    ("ALTER TABLE t ADD COLUMN extra DEFAULT 7", ()),
    ("SELECT * FROM t WHERE id = ?", (1,)),
    ("ALTER TABLE t RENAME COLUMN v TO renamed", ()),
    ("SELECT * FROM t WHERE id = ?", (1,)),
    ("UPDATE t SET renamed = ? WHERE id = ?", ("none match", 999)),
    ("UPDATE t SET renamed = ? WHERE id = ? RETURNING renamed, extra", ("changed", 2)),
    ("DROP TABLE t", ()),
    ("SELECT * FROM t WHERE id = ?", (1,)),
    ("CREATE TABLE t (id INTEGER PRIMARY KEY, only)", ()),
    ("INSERT INTO t (only) VALUES (?)", ("z",)),
    ("SELECT * FROM t WHERE id = ?", (1,)),
    ("SELECT 1 AS one; SELECT ? AS two", (2,)),
    ("CREATE INDEX i ON t (only)", ()),
    ("DELETE FROM t RETURNING *", ()),
    ("SELECT count(*) AS n FROM t", ()),
]


def describe(exc: BaseException) -> tuple[Any, ...]:
    """What a caller can see of an error."""
    cause = exc.__cause__
    return (
        type(exc),
        str(exc),
        getattr(exc, "detail", None),
        getattr(exc, "sqlite_code", None),
        type(cause),
        str(cause),
    )


def without_timing(result: JsDict) -> JsDict:
    meta = JsDict(result.meta)
    del meta["duration"], meta["timings"]
    return JsDict(result, meta=meta)


def general_path(driver: TrioDriver, sql: str, values: tuple[Any, ...], method: str) -> Any:
    """The core's generator for the same call, with every value converted."""
    params = tuple(convert_bind_value(v) for v in values)
    outcome = driver.run_sync(driver.engine.query(sql, params, method == "all"))
    return first_row(outcome) if method == "first" else without_timing(result_of(outcome))


@pytest.mark.parametrize("method", ["first", "all"])
async def test_trio_fast_paths_match_the_general_path(tmp_path: Path, method: str):
    """Step by step: the same rows, meta (all but the timings), errors, bookmarks and sizes."""
    fast, general = open_d1(tmp_path / "fast.sqlite"), open_d1(tmp_path / "general.sqlite")
    try:
        general_driver = general._driver
        assert isinstance(general_driver, TrioDriver)
        for _round in range(2):  # the second round finds every statement cached
            for sql, values in STEPS:
                try:
                    stmt = fast.prepare(sql).bind(*values)
                    got: Any = await (stmt.first() if method == "first" else stmt.all())
                    if method == "all":
                        got = without_timing(got)
                except D1QueryError as exc:
                    got = describe(exc)
                try:
                    expected = general_path(general_driver, sql, values, method)
                except D1QueryError as exc:
                    expected = describe(exc)
                if isinstance(expected, JsDict) and method == "first":
                    same_row(got, expected)
                elif isinstance(expected, JsDict):
                    assert got == expected, sql
                    for got_row, expected_row in zip(got.results, expected.results, strict=True):
                        same_row(got_row, expected_row)
                else:
                    assert got == expected, sql
                assert fast._driver.engine.bookmark() == general_driver.engine.bookmark(), sql
    finally:
        close_d1(fast)
        close_d1(general)


async def test_first_fast_path_writes_move_the_bookmark_and_size(tmp_path: Path):
    """A write through first() (no RETURNING rows or with) moves the bookmark; the next meta shows its size."""
    db = open_d1(tmp_path / "x.sqlite")
    try:
        await db.exec("CREATE TABLE t (v)")
        session = db.withSession()
        await session.prepare("SELECT 1").first()
        before = session.getBookmark()
        assert before is not None
        assert await session.prepare("INSERT INTO t VALUES (?)").bind("x" * 20_000).first() is None
        after = session.getBookmark()
        assert after is not None
        assert after > before
        assert await session.prepare("SELECT count(*) AS n FROM t").first("n") == 1
        assert session.getBookmark() == after  # reads do not move it
        result = await db.prepare("SELECT 1").all()
        driver = db._driver
        assert isinstance(driver, TrioDriver)
        pages = driver.run_sync(driver.engine._internal("PRAGMA page_count")).rows[0][0]
        assert result.meta.size_after == pages * 4096 > 5 * 4096
    finally:
        close_d1(db)


# --- the contract for first() on both drivers ----------------------------------------------------------


def test_first_counts_against_the_query_budget(run_d1):
    """first() is one statement of queries_per_invocation, checked before anything runs."""

    async def body(db):
        await db.prepare("SELECT 1").first()
        with pytest.raises(D1QueryError, match=r"Exceeded the limit of 1 queries per Worker invocation"):
            await db.prepare("SELECT 1").first()

    run_d1(body, limits=D1Limits(queries_per_invocation=1))


def test_first_on_a_closed_database_fails_with_d1_error(run_d1):
    """first() after close fails as all() does."""

    async def body(db):
        closing = db._driver.close()
        if inspect.isawaitable(closing):
            await closing
        with pytest.raises(D1QueryError, match=r"^D1_ERROR: Cannot operate on a closed database\.$"):
            await db.prepare("SELECT 1").first()

    run_d1(body)


def test_first_in_a_session_observes_the_bookmark(run_d1):
    """A session's first() records the bookmark the query saw."""

    async def body(db):
        session = db.withSession()
        assert await session.prepare("SELECT ? AS v").bind(3).first("v") == 3
        seen = session.getBookmark()
        await db.prepare("CREATE TABLE t (a)").run()
        await session.prepare("SELECT 1").first()
        return seen, session.getBookmark()

    seen, later = run_d1(body)
    assert seen is not None
    assert later > seen
