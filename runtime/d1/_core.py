"""D1's statement logic, sans I/O: binding, splitting, transactions, result shaping, errors.

The core never touches a database. Each D1 call is a generator that yields
*effects* (:class:`Execute` one SQL statement, :class:`ReadClock`) and is
sent back their outcomes (:class:`Executed`, :class:`StepFailed`, a time in
ms); a driver moves them between the generator and SQLite. The trio driver
answers inline on the trio thread, the asyncio driver awaits aiosqlite for
each step: the same generator runs under both, so they cannot drift apart.
For the commonest call, one statement, the engine also exposes the pieces
the generator is made of (:meth:`Engine.prepare`, :meth:`Engine.single_ran`,
:meth:`Engine.single_changed`, :meth:`Engine.single_failed`,
:meth:`Engine.size_known`, and a statement's cached :func:`row_builder`); the
trio driver calls them directly, because a generator costs a quarter of a
point query; tests/runtime/d1/test_fast_paths.py checks that both ways give
the same answers.

Invariants:

* One D1 call is atomic. A single SQL statement runs in SQLite's autocommit
  (atomic on its own); several statements (a multi-statement string, a
  ``batch()``, ``exec()``) run between ``BEGIN`` and ``COMMIT``, and any
  failure rolls every one of them back before the error is raised.
* Values are validated and converted by ``bind()`` (production's shim does it
  there too), so a statement that reaches SQLite carries only None, int,
  float, str and bytes.
* User SQL passes the :class:`Authorizer`: ``_cf_`` names, BEGIN/COMMIT/
  SAVEPOINT, ATTACH and PRAGMAs outside D1's list
  (:data:`runtime._sqltext.D1_PRAGMAS`) are refused. The core's
  own statements (transaction control, metadata) are marked ``internal`` and
  bypass it; a driver sets :attr:`Authorizer.internal` around exactly those.
* Bookmarks are ``<generation>-<sequence>`` in fixed-width hex: the
  generation grows by one at every open (persisted in ``_cf_METADATA``), the
  sequence at every committed change, so bookmarks never go backwards, even
  across restarts, and compare correctly as strings.
* Results look like what production's Python SDK hands to Python code:
  dicts with attribute access (:class:`JsDict`), BLOBs as lists of ints, and
  numbers as Pyodide converts JS numbers (an integral float is an int, an
  integer beyond 2**53 a float).
* SQL text is split by :func:`runtime._sqltext.split_statements`, the
  splitter Durable Object SQL uses too, in its lenient mode: empty statements
  are dropped, and a text with none left is ``No SQL statements detected.``
  (``split_statements`` here is that function, for this package's users).
"""

from __future__ import annotations

import math
import re
import secrets
import weakref
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeAlias

from runtime._sqltext import D1_PRAGMAS, is_blank, skip_trivia, split_statements
from shards._errors import (
    CodecError,
    D1ColumnNotFound,
    D1ConstraintError,
    D1Error,
    D1ExecError,
    D1NotAuthorized,
    D1QueryError,
    D1SyntaxError,
    D1TypeError,
)

__all__ = [
    "D1Limits",
    "Authorizer",
    "Engine",
    "Execute",
    "Executed",
    "JsDict",
    "Outcome",
    "QueryBudget",
    "ReadClock",
    "Step",
    "StepFailed",
    "SqlValue",
    "TRANSACTION_REFUSED",
    "RowBuilder",
    "column_of",
    "convert_bind_value",
    "first_of",
    "first_row",
    "is_plain",
    "raw_of",
    "result_of",
    "row_builder",
    "split_statements",
]

SqlValue: TypeAlias = int | float | str | bytes | None

#: Production's text for BEGIN/COMMIT/SAVEPOINT (workerd src/workerd/api/sql.c++, allowTransactions).
TRANSACTION_REFUSED: Final = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
    "write coalescing."
)
#: workerd's texts for a binding count that does not match the statement (sql.c++).
WRONG_BINDINGS: Final = "Wrong number of parameter bindings for SQL query."
ONLY_LAST_BINDS: Final = (
    "When executing multiple SQL statements in a single call, only the last statement can have parameters."
)
NO_STATEMENTS: Final = "No SQL statements detected."
#: What production's local runtime reports as ``meta.served_by`` is "miniflare.db"; ours says who we are.
SERVED_BY: Final = "shardsim.db"

_MAX_SAFE_INTEGER: Final = 2**53 - 1

# SQLite's primary result codes (sqlite3.h). Production prints the primary name,
# while Python 3.11 names the extended code (SQLITE_CONSTRAINT_UNIQUE): mask with 0xFF.
_PRIMARY_CODES: Final = [
    "SQLITE_OK",
    "SQLITE_ERROR",
    "SQLITE_INTERNAL",
    "SQLITE_PERM",
    "SQLITE_ABORT",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_NOMEM",
    "SQLITE_READONLY",
    "SQLITE_INTERRUPT",
    "SQLITE_IOERR",
    "SQLITE_CORRUPT",
    "SQLITE_NOTFOUND",
    "SQLITE_FULL",
    "SQLITE_CANTOPEN",
    "SQLITE_PROTOCOL",
    "SQLITE_EMPTY",
    "SQLITE_SCHEMA",
    "SQLITE_TOOBIG",
    "SQLITE_CONSTRAINT",
    "SQLITE_MISMATCH",
    "SQLITE_MISUSE",
    "SQLITE_NOLFS",
    "SQLITE_AUTH",
    "SQLITE_FORMAT",
    "SQLITE_RANGE",
    "SQLITE_NOTADB",
    "SQLITE_NOTICE",
    "SQLITE_WARNING",
]
_SQLITE_CONSTRAINT: Final = 19
_SQLITE_AUTH: Final = 23
_SYNTAX_MARKERS: Final = ("syntax error", "incomplete input", "unrecognized token")

# Authorizer action codes (sqlite3.h; stable across SQLite versions).
_SQLITE_OK: Final = 0
_SQLITE_DENY: Final = 1
_PRAGMA: Final = 19
_TRANSACTION: Final = 22
_ATTACH: Final = 24
_DETACH: Final = 25
_SAVEPOINT: Final = 32

#: Statements that change the database without changing rows (changed_db).
_SCHEMA_KEYWORDS: Final = frozenset({"CREATE", "DROP", "ALTER", "REINDEX", "VACUUM", "ANALYZE"})
_FIRST_WORD = re.compile(r"[A-Za-z]+")

_METADATA_TABLE: Final = "_cf_METADATA"
_GENERATION_KEY: Final = "d1_generation"


# --- results ---------------------------------------------------------------------------------------


class JsDict(dict[str, Any]):
    """A dict whose keys are also attributes, as production's Python SDK converts JS objects.

    ``result.results[0].name`` and ``result["results"][0]["name"]`` both work.
    A key that shadows a dict method (``items``, ``keys``) is reachable only by
    subscription, as in the SDK.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _js_number(value: int | float) -> int | float:
    # Pyodide turns a JS number into an int when it is a safe integer, else a float.
    if isinstance(value, int):
        return value if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER else float(value)
    if value.is_integer() and -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        return int(value)
    return value


def _js_cell(value: Any) -> Any:
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int:
        return value if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER else float(value)
    if kind is bytes:
        return list(value)  # production: Array.from(blob), not an ArrayBuffer
    if kind is float:
        return _js_number(value)
    raise AssertionError(f"SQLite returned {kind.__name__}; please file a bug")  # pragma: no cover


def is_plain(values: Sequence[Any]) -> bool:
    """Whether every value is text, NULL or an int within JavaScript's safe range.

    Those cross between Python, D1 and JavaScript unchanged, both ways (bound
    values and result cells), and are most values: checking them costs less
    than converting them one call at a time.
    """
    for value in values:
        kind = type(value)
        if kind is str or value is None or (kind is int and -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER):
            continue
        return False
    return True


# --- rows as dicts ---------------------------------------------------------------------------------

#: Turns one result row (one cell per column, as sqlite3 returns it) into the JsDict the SDK shows.
RowBuilder: TypeAlias = Callable[[tuple[Any, ...]], JsDict]

#: Rows up to this many columns get a generated builder; wider ones take :func:`_build_row`.
_GENERATED_WIDTH: Final = 64
#: Generated factories by width: ``factory(*columns)`` returns the builder for those names.
_builder_factories: dict[int, Callable[..., RowBuilder]] = {}
#: Builders by column names (most programs run a few dozen result shapes); cleared when full.
_builders: dict[tuple[str, ...], RowBuilder] = {}


def row_builder(columns: tuple[str, ...]) -> RowBuilder:
    """The function that makes a row's :class:`JsDict`, for results with these column names.

    It returns what ``JsDict(zip(columns, [js(v) for v in row]))`` would, where
    ``js`` converts a cell as Pyodide shows it (BLOB to a list of ints, an
    integral float to an int, an int beyond 2**53 to a float): a repeated name
    keeps its first place and its last value, as ``Object.fromEntries`` does.
    Building each row's dict in one straight-line function, the names bound
    once and each cell checked where it is stored, costs about half of that
    expression with a separate check of the cells (callgrind, a two-column
    row: ~3,000 instructions against ~5,700; a whole point query through
    ``first()`` is ~35,000). Like ``collections.namedtuple`` and
    ``dataclasses``, we generate the function's source, from the width alone;
    column names are bound as arguments and never enter the source.
    """
    builder = _builders.get(columns)
    if builder is None:
        width = len(columns)
        if 0 < width <= _GENERATED_WIDTH:
            factory = _builder_factories.get(width)
            if factory is None:
                factory = _builder_factories[width] = _builder_factory(width)
            builder = factory(*columns)
        else:
            builder = partial(_build_row, columns)
        if len(_builders) >= 256:
            _builders.clear()
        _builders[columns] = builder
    return builder


def _build_row(columns: tuple[str, ...], row: tuple[Any, ...]) -> JsDict:
    # What every builder returns, written as a loop: for rows wider than _GENERATED_WIDTH.
    return JsDict(zip(columns, row if is_plain(row) else [_js_cell(v) for v in row]))  # noqa: B905


def _builder_factory(width: int) -> Callable[..., RowBuilder]:
    keys = [f"k{i}" for i in range(width)]
    cells = [f"v{i}" for i in range(width)]
    lines = [
        f"def factory({', '.join(keys)}):",
        "    def build(row):",
        f"        {''.join(c + ', ' for c in cells)}= row",
        "        out = JsDict()",
    ]
    for key, cell in zip(keys, cells, strict=True):
        # is_plain's test, cell by cell: text, NULL and safe ints are stored unchanged.
        lines.append(f"        kind = type({cell})")
        lines.append(
            f"        out[{key}] = {cell} if kind is str or {cell} is None or (kind is int and "
            f"{-_MAX_SAFE_INTEGER} <= {cell} <= {_MAX_SAFE_INTEGER}) else js_cell({cell})"
        )
    lines += ["        return out", "    return build"]
    namespace: dict[str, Any] = {"JsDict": JsDict, "js_cell": _js_cell}
    exec("\n".join(lines), namespace)  # source made above from the width alone
    factory: Callable[..., RowBuilder] = namespace["factory"]
    return factory


@dataclass(slots=True)
class Outcome:
    """What one statement (or one multi-statement string) produced, before shaping.

    ``meta`` is built on demand: ``first()`` and ``raw()`` never show it, and
    building it costs as much as the rest of a point query's shaping. For
    them the engine does not measure ``duration`` or ``size_after`` either
    (``Engine.query(..., meta=False)``): those two are then left stale.
    """

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    duration: float = 0.0
    changes: int = 0
    last_row_id: int = 0
    changed_db: bool = False
    size_after: int = 0
    rows_read: int = 0

    @property
    def meta(self) -> JsDict:
        """``D1Result.meta``: every field production documents, always present."""
        # Filled key by key: about a third cheaper than JsDict(served_by=..., ...), same order.
        duration = self.duration
        timings = JsDict()
        timings["sql_duration_ms"] = duration
        meta = JsDict()
        meta["served_by"] = SERVED_BY
        meta["served_by_primary"] = True
        meta["timings"] = timings
        meta["duration"] = duration
        meta["changes"] = self.changes
        meta["last_row_id"] = self.last_row_id
        meta["changed_db"] = self.changed_db
        meta["size_after"] = self.size_after
        meta["rows_read"] = self.rows_read
        meta["rows_written"] = self.changes
        return meta


def result_of(outcome: Outcome) -> JsDict:
    """The ``D1Result`` of ``all()`` / ``run()``: ``{success, meta, results}``."""
    results: list[JsDict] = []
    if outcome.rows:
        build = row_builder(outcome.columns)
        results = [build(row) for row in outcome.rows]
    return JsDict(success=True, meta=outcome.meta, results=results)


def first_of(outcome: Outcome, column: str | None) -> Any:
    """``first()`` / ``first(column)``: the first row, that row's column, or None when no rows.

    Raises:
        D1ColumnNotFound: rows exist but none has ``column``.
    """
    return column_of(first_row(outcome), column)


def first_row(outcome: Outcome) -> JsDict | None:
    """``first()``: the first row as a dict, or None when there are no rows."""
    if not outcome.rows:
        return None
    return row_builder(outcome.columns)(outcome.rows[0])


def column_of(row: JsDict | None, column: str | None) -> Any:
    """``first(column)`` given ``first()``'s row: the row itself without ``column``, None without a row.

    Raises:
        D1ColumnNotFound: rows exist but none has ``column``.
    """
    if column is None or row is None:
        return row
    if column not in row:
        raise D1ColumnNotFound(f"D1_COLUMN_NOTFOUND: Column not found ({column})", detail="Column not found")
    return row[column]


def raw_of(outcome: Outcome, column_names: bool) -> list[list[Any]]:
    """``raw()``: rows as lists, preceded by the column names when asked (even with no rows)."""
    rows = [list(row) if is_plain(row) else [_js_cell(v) for v in row] for row in outcome.rows]
    return [list(outcome.columns), *rows] if column_names else rows


# --- binding ---------------------------------------------------------------------------------------


def _js_string(value: Any) -> str:
    # String(value) as JS would print what Pyodide hands over.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list):
        return ",".join("" if v is None else _js_string(v) for v in value)
    return str(value)


def _type_error(js_type: str, value: Any) -> D1TypeError:
    detail = f"Type '{js_type}' not supported for value '{_js_string(value)}'"
    return D1TypeError(f"D1_TYPE_ERROR: {detail}", detail=detail)


def convert_bind_value(value: Any) -> SqlValue:
    """Check one ``bind()`` argument and convert it to what SQLite stores.

    Accepted: None, bool (stored as 1/0), int within JavaScript's safe range,
    float (NaN and infinities become NULL, as JSON carries them), str, bytes
    and memoryview (BLOB), and lists of ints 0-255 (BLOB).

    Raises:
        D1TypeError: any other value, with production's message; an int beyond
            2**53 - 1 is a JS BigInt there (``Type 'bigint' ...``).
        CodecError: a tuple or bytearray, which production's Python SDK
            refuses before the value reaches D1.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int):
        if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            return value
        raise _type_error("bigint", value)  # Pyodide turns unsafe ints into BigInt
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, tuple | bytearray):
        raise CodecError(f"{type(value)} cannot be sent over RPC.")
    if isinstance(value, list):
        if all(type(b) is int and 0 <= b < 256 for b in value):
            return bytes(value)
        raise _type_error("object", value)
    if callable(value):
        raise _type_error("function", value)
    raise _type_error("object", value)


# --- limits ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class D1Limits:
    """Production's per-statement limits and the opt-in query budget.

    Attributes:
        sql_length: bytes of SQL text per call (SQLite's statement length).
        bound_parameters: ``?`` parameters per statement.
        value_length: bytes of one string, BLOB or row.
        columns: columns per table (and per result).
        function_args: arguments of one SQL function call.
        like_pattern: bytes of a LIKE or GLOB pattern.
        queries_per_invocation: statements one invocation may run (production:
            1,000 on Paid, 50 on Free); None turns the check off (the default).
    """

    sql_length: int = 100_000
    bound_parameters: int = 100
    value_length: int = 2_000_000
    columns: int = 100
    function_args: int = 32
    like_pattern: int = 50
    queries_per_invocation: int | None = None

    def sqlite_limits(self) -> dict[str, int]:
        """``sqlite3`` limit names -> values, for ``Connection.setlimit``."""
        return {
            "SQLITE_LIMIT_SQL_LENGTH": self.sql_length,
            "SQLITE_LIMIT_VARIABLE_NUMBER": self.bound_parameters,
            "SQLITE_LIMIT_LENGTH": self.value_length,
            "SQLITE_LIMIT_COLUMN": self.columns,
            "SQLITE_LIMIT_FUNCTION_ARG": self.function_args,
            "SQLITE_LIMIT_LIKE_PATTERN_LENGTH": self.like_pattern,
        }


class QueryBudget:
    """Counts statements per invocation when ``queries_per_invocation`` is set.

    The driver names the invocation by an object that lives as long as it
    (the trio or asyncio task running it); counts are held weakly by it.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._counts: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()

    def charge(self, key: object, statements: int) -> None:
        """Count ``statements`` more for invocation ``key``.

        Raises:
            D1QueryError: the invocation would go over the limit (nothing runs).
        """
        if self.limit is None:
            return
        n = self._counts.get(key, 0) + statements
        if n > self.limit:
            raise D1QueryError(f"Exceeded the limit of {self.limit} queries per Worker invocation")
        self._counts[key] = n


# --- SQL text ----------------------------------------------------------------------------------------


def _first_keyword(sql: str) -> str:
    m = _FIRST_WORD.match(sql, skip_trivia(sql))
    return m.group(0).upper() if m else ""


# --- effects and answers ----------------------------------------------------------------------------


class Execute:
    """Effect: run one SQL statement with ``params``; answer with :class:`Executed` or :class:`StepFailed`.

    ``internal`` statements are the core's own and bypass the authorizer.
    (A plain slotted class: one is made per statement, on the hot path.)
    """

    __slots__ = ("internal", "params", "sql")

    def __init__(self, sql: str, params: Sequence[SqlValue] = (), internal: bool = False) -> None:
        self.sql = sql
        self.params = params
        self.internal = internal

    def __repr__(self) -> str:
        return f"Execute({self.sql!r}, {self.params!r}, internal={self.internal})"


@dataclass(frozen=True, slots=True)
class ReadClock:
    """Effect: answer with the runtime clock's time in ms (for ``meta.duration``)."""


_CLOCK: Final = ReadClock()


@dataclass(slots=True)
class Executed:
    """Answer: the statement ran.

    Attributes:
        columns: result column names (empty for statements without a result).
        rows: every result row.
        last_row_id: ``sqlite3_last_insert_rowid`` after the statement.
        changes: rows the statement inserted, updated or deleted (the step of
            the connection's ``total_changes``).
    """

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    last_row_id: int
    changes: int


@dataclass(frozen=True, slots=True)
class StepFailed:
    """Answer: the statement raised ``error`` (a ``sqlite3.Error``); nothing of it applied."""

    error: Exception


Step: TypeAlias = Execute | ReadClock
Answer: TypeAlias = Executed | StepFailed | float | None


# --- the authorizer -----------------------------------------------------------------------------------


class Authorizer:
    """``set_authorizer`` callback: what D1 refuses in user SQL.

    The driver sets :attr:`internal` while one of the core's own statements
    runs. :attr:`refused_transaction` records that the last denial was a
    transaction statement, whose error production words differently.
    """

    __slots__ = ("internal", "refused_transaction")

    def __init__(self) -> None:
        self.internal = False
        self.refused_transaction = False

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None
    ) -> int:
        if self.internal:
            return _SQLITE_OK
        if action in (_TRANSACTION, _SAVEPOINT):
            self.refused_transaction = True
            return _SQLITE_DENY
        if action in (_ATTACH, _DETACH):
            return _SQLITE_DENY
        if action == _PRAGMA:
            return _SQLITE_OK if D1_PRAGMAS.allows(arg1, arg2) else _SQLITE_DENY
        # workerd's isAllowedName: any table, index, trigger or view named _cf_*.
        if (arg1 is not None and arg1.startswith("_cf_")) or (arg2 is not None and arg2.startswith("_cf_")):
            return _SQLITE_DENY
        return _SQLITE_OK


# --- errors -----------------------------------------------------------------------------------------


def _map_error(failure: StepFailed, authorizer: Authorizer, *, last: bool, has_params: bool) -> D1Error:
    exc = failure.error
    code = getattr(exc, "sqlite_errorcode", None)
    message = str(exc)
    if code is None:
        # Errors raised by Python's sqlite3 before SQLite ran anything.
        if message.startswith("Incorrect number of bindings"):
            return D1QueryError(WRONG_BINDINGS if last or not has_params else ONLY_LAST_BINDS)
        if message.startswith("query string is too large"):
            return D1QueryError("statement too long: SQLITE_TOOBIG", sqlite_code="SQLITE_TOOBIG")
        return D1QueryError(message)
    primary = code & 0xFF
    name = _PRIMARY_CODES[primary] if primary < len(_PRIMARY_CODES) else f"SQLITE_{primary}"
    refused_transaction, authorizer.refused_transaction = authorizer.refused_transaction, False
    if primary == _SQLITE_AUTH and refused_transaction:
        return D1NotAuthorized(TRANSACTION_REFUSED)
    detail = f"{message}: {name}"
    if primary == _SQLITE_CONSTRAINT:
        return D1ConstraintError(detail, sqlite_code=name)
    if primary == _SQLITE_AUTH:
        return D1NotAuthorized(detail, sqlite_code=name)
    if any(m in message for m in _SYNTAX_MARKERS):
        return D1SyntaxError(detail, sqlite_code=name)
    return D1QueryError(detail, sqlite_code=name)


# --- the engine ---------------------------------------------------------------------------------------


def _unshaped(row: tuple[Any, ...]) -> JsDict:
    raise AssertionError("a row built before its statement's shape is known; please file a bug")


@dataclass(slots=True)
class _Prepared:
    statements: list[str]
    #: Whether a statement changes the schema (changed_db even when no row changed).
    schema: bool
    #: The statement when there is exactly one (the common case), else None.
    single: str | None = None
    #: The last ``cursor.description`` seen for ``single``, its column names and their
    #: row builder: while the description is equal (the schema did not change, or not
    #: in a way the statement's result shows), the names and the builder are reused.
    description: Any = None
    columns: tuple[str, ...] = ()
    build: RowBuilder = _unshaped

    def shape(self, description: Any) -> None:
        """Take a new ``cursor.description`` (not None): its column names and their row builder."""
        self.columns = columns = tuple([d[0] for d in description])
        self.build = row_builder(columns)
        self.description = description


class Engine:
    """The per-database state of the core: authorizer, bookmark, size, limits.

    Every public method returns a generator of effects (see the module
    docstring); a driver runs it. Nothing here blocks or does I/O.

    Args:
        limits: production's limits to enforce.
    """

    def __init__(self, limits: D1Limits | None = None) -> None:
        self.limits = limits or D1Limits()
        self.authorizer = Authorizer()
        self.budget = QueryBudget(self.limits.queries_per_invocation)
        self._generation = 0
        self._sequence = 0
        self._page_size = 4096
        self._size = 0
        #: A write ran since the size was last read: the next call that shows ``meta`` reads it.
        self.size_stale = False
        self._cache: dict[str, _Prepared] = {}
        #: ``sql``'s cached :meth:`prepare`, or None: a bound ``dict.get``, which a driver's
        #: hot path calls before :meth:`prepare` (a C call instead of a Python one).
        self.prepared = self._cache.get
        # sqlite3 caches compiled statements by their text, and the authorizer only runs
        # when a statement is compiled: a user statement with the same text as one of ours
        # would reuse our authorized compilation. Our texts start with a comment nobody can
        # guess (at the start, so SQLite does not store it in the schema text of a CREATE).
        self._tag = f"/* d1 {secrets.token_hex(8)} */ "
        #: The step that reads the database size (``meta.size_after``) after a change.
        self.size_step = Execute(self._tag + "PRAGMA page_count", (), True)

    # -- lifecycle --

    def open(self) -> Generator[Step, Answer, None]:
        """Set up a freshly opened connection (foreign keys, metadata, generation)."""
        for sql in (
            "PRAGMA foreign_keys = ON",
            f"CREATE TABLE IF NOT EXISTS {_METADATA_TABLE} (name TEXT PRIMARY KEY, value) WITHOUT ROWID",
        ):
            yield from self._internal(sql)
        got = yield from self._internal(
            f"SELECT value FROM {_METADATA_TABLE} WHERE name = ?", (_GENERATION_KEY,)
        )
        self._generation = (int(got.rows[0][0]) if got.rows else 0) + 1
        yield from self._internal(
            f"INSERT OR REPLACE INTO {_METADATA_TABLE} (name, value) VALUES (?, ?)",
            (_GENERATION_KEY, self._generation),
        )
        got = yield from self._internal("PRAGMA page_size")
        self._page_size = int(got.rows[0][0])
        yield from self._refresh_size()

    def internal_step(self, sql: str, params: Sequence[SqlValue] = ()) -> Execute:
        """A step of the driver's own (tagged like the core's, so it bypasses the authorizer)."""
        return Execute(self._tag + sql, params, True)

    def bookmark(self) -> str:
        """The database's current bookmark (monotonic; compares as a string)."""
        return f"{self._generation:08x}-{self._sequence:016x}"

    # -- calls --

    def query(
        self, sql: str, params: Sequence[SqlValue], meta: bool = True
    ) -> Generator[Step, Answer, Outcome]:
        """One prepared statement (``all/run/first/raw``): its :class:`Outcome`.

        ``meta=False`` when the caller never shows ``meta`` (``first()``,
        ``raw()``): a single statement then reads neither the clock nor the
        database size, and its outcome's ``duration`` and ``size_after`` are
        not filled in. The size is read at the next call that shows ``meta``
        (:attr:`size_stale`), which is the same number: only writes change it.
        """
        prepared = self.prepare(sql)
        if prepared.single is not None:
            start = (yield _CLOCK) if meta else 0.0
            answer = yield Execute(prepared.single, params)
            if type(answer) is not Executed:
                raise self.single_failed(answer, params)
            end = (yield _CLOCK) if meta else 0.0
            outcome = self.single_done(prepared, answer, end - start)  # type: ignore[operator]
            if meta and self.size_stale:
                self.size_known(outcome, (yield self.size_step))
            return outcome
        start = yield _CLOCK
        yield from self._internal("BEGIN")
        try:
            outcome = yield from self._run(prepared, params)
            end = yield _CLOCK
            outcome.duration = float(end - start)  # type: ignore[operator]
        except D1Error:
            yield from self._rollback()
            raise
        yield from self._commit()
        yield from self._finish([outcome])
        return outcome

    # The single-statement query in pieces: :meth:`query` strings them together as
    # effects, and the trio driver calls them directly, inline, without a generator
    # (a quarter of a point query's cost in the core; bench/d1.py).

    def single_failed(self, failure: Answer, params: Sequence[SqlValue]) -> D1Error:
        """The error to raise for a failed single statement (chained to SQLite's)."""
        assert isinstance(failure, StepFailed)
        error = _map_error(failure, self.authorizer, last=True, has_params=bool(params))
        error.__cause__ = failure.error
        return error

    def single_done(self, prepared: _Prepared, answer: Executed, duration: float) -> Outcome:
        """The outcome of a single statement that ran.

        If the caller shows ``meta`` and :attr:`size_stale` is set, answer
        :attr:`size_step` next (:meth:`size_known`, or :meth:`pages_known`).
        """
        changes = answer.changes
        changed_db = changes > 0 or prepared.schema
        if changed_db:
            self._sequence += 1
            self.size_stale = True
        rows = answer.rows
        return Outcome(
            answer.columns,
            rows,
            float(duration),
            changes,
            answer.last_row_id,
            changed_db,
            self._size,
            len(rows),
        )

    def single_ran(
        self,
        prepared: _Prepared,
        description: Any,
        rows: list[tuple[Any, ...]],
        last_row_id: int,
        changes: int,
        duration: float,
    ) -> Outcome:
        """:meth:`single_done` from the cursor's pieces (``description`` is ``cursor.description``).

        For a driver that runs the statement itself: no :class:`Executed` is made,
        and the column names are taken from the last call when the description
        is unchanged.
        """
        if description is None:
            columns: tuple[str, ...] = ()
        else:
            if description != prepared.description:
                prepared.shape(description)
            columns = prepared.columns
        # single_done's body, repeated: a call less on the commonest path.
        changed_db = changes > 0 or prepared.schema
        if changed_db:
            self._sequence += 1
            self.size_stale = True
        return Outcome(
            columns, rows, float(duration), changes, last_row_id, changed_db, self._size, len(rows)
        )

    def single_changed(self) -> None:
        """Record that a single statement changed the database (``changed_db``), for a driver
        that runs it without :meth:`single_ran`: a new bookmark, and the size to read again."""
        self._sequence += 1
        self.size_stale = True

    def size_known(self, outcome: Outcome, answer: Answer) -> None:
        """Record the answer to :attr:`size_step`: the database size now, ``outcome.size_after``."""
        if type(answer) is Executed:
            self._size = answer.rows[0][0] * self._page_size
            self.size_stale = False
        outcome.size_after = self._size

    def pages_known(self, outcome: Outcome, pages: int) -> None:
        """Record the database size now, in pages, as the driver learnt it without :attr:`size_step`.

        The same as answering :attr:`size_step` with ``PRAGMA page_count``'s result.
        """
        self._size = pages * self._page_size
        self.size_stale = False
        outcome.size_after = self._size

    @property
    def page_size(self) -> int:
        """The database's page size in bytes (read at :meth:`open`; D1 SQL cannot change it)."""
        return self._page_size

    def batch(
        self, calls: Sequence[tuple[str, Sequence[SqlValue]]]
    ) -> Generator[Step, Answer, list[Outcome]]:
        """``batch()``: every statement in one transaction; any failure undoes all."""
        prepared = [(self.prepare(sql), params) for sql, params in calls]
        if not prepared:
            return []
        yield from self._internal("BEGIN")
        outcomes: list[Outcome] = []
        try:
            # One clock read per statement: where one ends, the next starts.
            start = yield _CLOCK
            for p, params in prepared:
                outcome = yield from self._run(p, params)
                end = yield _CLOCK
                outcome.duration = float(end - start)  # type: ignore[operator]
                outcomes.append(outcome)
                start = end
        except D1Error:
            yield from self._rollback()
            raise
        yield from self._commit()
        yield from self._finish(outcomes)
        return outcomes

    def exec(self, sql: str) -> Generator[Step, Answer, JsDict]:
        """``exec()``: one query per line, all in one transaction; ``{count, duration}``.

        Raises:
            D1ExecError: a line failed; nothing of any line was applied.
        """
        if not isinstance(sql, str):
            raise TypeError(f"exec() takes a string of SQL, got {type(sql).__name__}")
        lines = sql.strip().split("\n")
        start = yield _CLOCK
        yield from self._internal("BEGIN")
        outcomes: list[Outcome] = []
        for number, line in enumerate(lines, 1):
            if is_blank(line):
                continue  # production sends it and D1 answers with nothing to run
            try:
                outcomes.append((yield from self._run(self.prepare(line), ())))
            except D1Error as exc:
                yield from self._rollback()
                detail = f"Error in line {number}: {line}: {exc.detail}"
                raise D1ExecError(f"D1_EXEC_ERROR: {detail}", detail=detail, line=number) from exc
        yield from self._commit()
        yield from self._finish(outcomes)
        end = yield _CLOCK
        return JsDict(count=len(lines), duration=float(end - start))  # type: ignore[operator]

    # -- internals --

    def prepare(self, sql: str) -> _Prepared:
        """Split and check ``sql`` (cached by text).

        Raises:
            TypeError: ``sql`` is not a string.
            D1QueryError: the text is too long, or holds no statement.
        """
        prepared = self._cache.get(sql) if type(sql) is str else None
        if prepared is None:
            if not isinstance(sql, str):
                raise TypeError(f"prepare() takes a string of SQL, got {type(sql).__name__}")
            # SQLite checks the length of the whole text it is handed (SQLITE_LIMIT_SQL_LENGTH);
            # Python's sqlite3 would word it differently, so we check first.
            if len(sql) > self.limits.sql_length // 4 and len(sql.encode()) > self.limits.sql_length:
                raise D1QueryError("statement too long: SQLITE_TOOBIG", sqlite_code="SQLITE_TOOBIG")
            statements = split_statements(sql, strict=False)
            if not statements:
                raise D1QueryError(NO_STATEMENTS)
            prepared = _Prepared(
                statements,
                any(_first_keyword(s) in _SCHEMA_KEYWORDS for s in statements),
                statements[0] if len(statements) == 1 else None,
            )
            if len(self._cache) >= 256:
                self._cache.clear()
            self._cache[sql] = prepared
        return prepared

    def _run(self, prepared: _Prepared, params: Sequence[SqlValue]) -> Generator[Step, Answer, Outcome]:
        """Run the statements of one prepared text; bindings go to the last one.

        The outcome's ``duration`` is 0.0: the caller times the call (only
        ``batch()`` and ``query()`` show it).
        """
        statements = prepared.statements
        last_index = len(statements) - 1
        changes = 0
        rows_read = 0
        got: Executed | None = None
        for i, sql in enumerate(statements):
            answer = yield Execute(sql, params if i == last_index else ())
            if isinstance(answer, StepFailed):
                raise _map_error(
                    answer, self.authorizer, last=i == last_index, has_params=bool(params)
                ) from (answer.error)
            assert isinstance(answer, Executed)
            changes += answer.changes
            rows_read += len(answer.rows)
            got = answer
        assert got is not None
        changed_db = changes > 0 or prepared.schema
        return Outcome(
            got.columns, got.rows, 0.0, changes, got.last_row_id, changed_db, self._size, rows_read
        )

    def _finish(self, outcomes: list[Outcome]) -> Generator[Step, Answer, None]:
        changed = any(o.changed_db for o in outcomes)
        if changed:
            self._sequence += 1
        if changed or self.size_stale:
            yield from self._refresh_size()
        for o in outcomes:
            o.size_after = self._size

    def _refresh_size(self) -> Generator[Step, Answer, None]:
        # The same step object as query()'s, so a driver can answer it without SQL.
        answer = yield self.size_step
        if isinstance(answer, StepFailed):
            raise _map_error(answer, self.authorizer, last=True, has_params=False) from answer.error
        assert isinstance(answer, Executed)
        self._size = int(answer.rows[0][0]) * self._page_size
        self.size_stale = False

    def _commit(self) -> Generator[Step, Answer, None]:
        yield from self._internal("COMMIT")

    def _rollback(self) -> Generator[Step, Answer, None]:
        # A failed statement may already have ended the transaction (SQLITE_FULL and
        # friends roll back on their own): a failing ROLLBACK then has nothing to undo.
        answer = yield Execute(self._tag + "ROLLBACK", (), True)
        del answer

    def _internal(self, sql: str, params: Sequence[SqlValue] = ()) -> Generator[Step, Answer, Executed]:
        answer = yield Execute(self._tag + sql, params, True)
        if isinstance(answer, StepFailed):
            raise _map_error(answer, self.authorizer, last=True, has_params=bool(params)) from answer.error
        assert isinstance(answer, Executed)
        return answer
