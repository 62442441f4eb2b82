"""The D1 binding as Worker code sees it: ``env.DB.prepare(sql).bind(...).all()`` and friends.

These objects hold no connection and do no I/O: each awaited call hands the
statement (or a generator built on the :class:`~runtime.d1._core.Engine`) to
the database's driver (trio inline, or asyncio over aiosqlite). Names and
shapes are production's (``withSession``, ``getBookmark``,
``raw(columnNames=True)``), because the point is that code validated here
deploys unchanged.

Invariants:

* ``bind()`` validates and converts every value at once and returns a new
  statement; the original is unchanged (production's shim does the same).
* A plain ``env.DB`` always talks to the primary and has no bookmark; a
  session's bookmark only moves forward (the larger string wins).
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from shards._errors import D1SessionError

from ._core import (
    _MAX_SAFE_INTEGER,
    Answer,
    Engine,
    JsDict,
    Outcome,
    SqlValue,
    Step,
    column_of,
    convert_bind_value,
    raw_of,
    result_of,
)

__all__ = ["D1Database", "D1DatabaseSession", "D1PreparedStatement", "Driver"]

T = TypeVar("T")

_FIRST_UNCONSTRAINED = "first-unconstrained"
_FIRST_PRIMARY = "first-primary"


class Driver(Protocol):
    """What the binding needs from a driver: run a core call, name the current invocation."""

    engine: Engine

    async def run(self, call: Generator[Step, Answer, T]) -> T:
        """Run ``call`` against the database and return its result (raising its error)."""
        ...

    async def query(self, sql: str, params: Sequence[SqlValue], meta: bool) -> Outcome:
        """Run one prepared statement (``engine.query(sql, params, meta)``), however the driver likes best."""
        ...

    async def first(self, sql: str, params: Sequence[SqlValue]) -> JsDict | None:
        """``first()``'s row: ``first_of(await self.query(sql, params, False), None)``, or the same faster."""
        ...

    def invocation(self) -> object:
        """An object that lives as long as the current invocation (for the query budget)."""
        ...


class _Target:
    """Where statements go: the always-primary path of ``env.DB``, or a session."""

    __slots__ = ("_driver",)

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    def _run(self, call: Generator[Step, Answer, T], statements: int) -> Awaitable[T]:
        # Not async: returning the driver's coroutine saves a coroutine frame on every call.
        driver = self._driver
        budget = driver.engine.budget
        if budget.limit is not None:
            try:
                budget.charge(driver.invocation(), statements)
            except BaseException:
                call.close()
                raise
        return driver.run(call)

    def prepare(self, query: str) -> D1PreparedStatement:
        """A prepared statement, of this database or in this session (no I/O happens until it runs).

        Raises:
            TypeError: ``query`` is not a string.
        """
        if type(query) is not str and not isinstance(query, str):
            raise TypeError(f"prepare() takes a string of SQL, got {type(query).__name__}")
        statement = D1PreparedStatement()
        statement._target = self
        statement.statement = query
        statement.params = ()
        return statement

    def _query(self, statement: D1PreparedStatement, meta: bool) -> Awaitable[Outcome]:
        # meta: whether the caller shows ``meta`` (see Engine.query).
        driver = self._driver
        budget = driver.engine.budget
        if budget.limit is not None:
            budget.charge(driver.invocation(), 1)
        return driver.query(statement.statement, statement.params, meta)

    def _first(self, statement: D1PreparedStatement) -> Awaitable[JsDict | None]:
        # first()'s row (see _query).
        driver = self._driver
        budget = driver.engine.budget
        if budget.limit is not None:
            budget.charge(driver.invocation(), 1)
        return driver.first(statement.statement, statement.params)

    async def _batch(self, statements: Sequence[D1PreparedStatement]) -> list[JsDict]:
        calls: list[tuple[str, Sequence[SqlValue]]] = []
        for stmt in statements:
            if not isinstance(stmt, D1PreparedStatement):
                raise TypeError(f"batch() takes prepared statements, got {type(stmt).__name__}")
            calls.append((stmt.statement, stmt.params))
        outcomes = await self._run(self._driver.engine.batch(calls), max(1, len(calls)))
        return [result_of(o) for o in outcomes]


class D1PreparedStatement:
    """A statement and its bound values. Made by ``prepare()``; ``bind()`` makes a new one."""

    __slots__ = ("_target", "params", "statement")

    # No __init__: prepare() and bind() fill the slots of D1PreparedStatement(); a class
    # without one is made in C (~750 instructions; prepare() went from ~2,100 to ~1,500).
    _target: _Target
    #: The SQL text given to ``prepare()``.
    statement: str
    #: The bound values, as SQLite will store them.
    params: tuple[SqlValue, ...]

    def __repr__(self) -> str:
        return f"<D1PreparedStatement {self.statement!r} params={list(self.params)!r}>"

    def bind(self, *values: Any) -> D1PreparedStatement:
        """Bind ``values`` to the ``?`` / ``?NNN`` parameters; returns a new statement.

        Raises:
            D1TypeError: a value D1 cannot store (production's ``D1_TYPE_ERROR``).
            CodecError: a tuple or bytearray, which production's Python SDK refuses.
        """
        bound = D1PreparedStatement()
        bound._target = self._target
        bound.statement = self.statement
        # Most values pass unchanged: check them all (is_plain, inline) before converting any.
        for value in values:
            kind = type(value)
            if (
                kind is str
                or value is None
                or (kind is int and -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER)
            ):
                continue
            bound.params = tuple([convert_bind_value(v) for v in values])
            return bound
        bound.params = values
        return bound

    async def all(self) -> JsDict:
        """Run the statement; ``{success, meta, results}`` with every row as a dict.

        Raises:
            D1QueryError: SQLite's error as ``D1_ERROR: <message>: SQLITE_<CODE>``.
        """
        return result_of(await self._target._query(self, True))

    async def run(self) -> JsDict:
        """The same as :meth:`all` (production returns rows from ``run()`` too)."""
        return result_of(await self._target._query(self, True))  # not `await self.all()`: one frame less

    async def first(self, column: str | None = None) -> Any:
        """The first row (a dict), or with ``column`` that row's value; None when no rows.

        Raises:
            D1ColumnNotFound: rows exist but have no column ``column``.
        """
        row = await self._target._first(self)
        return row if column is None else column_of(row, column)

    async def raw(
        self, options: Mapping[str, Any] | None = None, *, columnNames: bool = False
    ) -> list[list[Any]]:
        """Rows as lists; with ``columnNames=True`` the first list holds the column names.

        Python Workers code passes ``raw(columnNames=True)`` (Pyodide turns keyword
        arguments into an options object); ``raw({"columnNames": True})`` works too.
        """
        with_names = bool(options.get("columnNames", False)) if options is not None else columnNames
        return raw_of(await self._target._query(self, False), with_names)


class D1DatabaseSession(_Target):
    """``withSession()``: queries that see the database at least as fresh as the bookmark.

    There is one local primary, so every query is consistent; the bookmark is
    still tracked as production does: ``getBookmark()`` is None until a query
    returns and never moves backwards.
    """

    __slots__ = ("_bookmark_or_constraint",)

    def __init__(self, driver: Driver, bookmark_or_constraint: str) -> None:
        super().__init__(driver)
        if not bookmark_or_constraint:
            raise D1SessionError(
                "D1_SESSION_ERROR: invalid bookmark or constraint", detail="invalid bookmark or constraint"
            )
        self._bookmark_or_constraint = bookmark_or_constraint

    def _observe(self) -> None:
        # The query saw the database at its current bookmark; keep the larger one.
        bookmark = self._driver.engine.bookmark()
        current = self.getBookmark()
        if current is None or current < bookmark:
            self._bookmark_or_constraint = bookmark

    async def _run(self, call: Generator[Step, Answer, T], statements: int) -> T:
        result = await super()._run(call, statements)
        self._observe()
        return result

    async def _query(self, statement: D1PreparedStatement, meta: bool) -> Outcome:
        outcome = await super()._query(statement, meta)
        self._observe()
        return outcome

    async def _first(self, statement: D1PreparedStatement) -> JsDict | None:
        row = await super()._first(statement)
        self._observe()
        return row

    async def batch(self, statements: Sequence[D1PreparedStatement]) -> list[JsDict]:
        """Run ``statements`` in one transaction (see :meth:`D1Database.batch`)."""
        return await self._batch(statements)

    def getBookmark(self) -> str | None:
        """The latest bookmark seen in this session, or None before any query returned."""
        if self._bookmark_or_constraint in (_FIRST_UNCONSTRAINED, _FIRST_PRIMARY):
            return None
        return self._bookmark_or_constraint


class D1Database(_Target):
    """``env.DB``: a D1 database binding.

    Made by :func:`runtime.d1.open_d1` (trio) or :func:`runtime.d1.open_d1_asyncio`,
    and by ``open_runtime(d1={binding: database_name})``.
    """

    __slots__ = ("name",)

    def __init__(self, driver: Driver, name: str = "") -> None:
        super().__init__(driver)
        self.name = name

    def __repr__(self) -> str:
        return f"<D1Database {self.name!r}>"

    async def batch(self, statements: Sequence[D1PreparedStatement]) -> list[JsDict]:
        """Run ``statements`` in order, in one transaction; one ``D1Result`` each.

        Raises:
            D1QueryError: a statement failed; none of the batch was applied.
        """
        return await self._batch(statements)

    async def exec(self, query: str) -> JsDict:
        """Run SQL without bindings, one query per line; ``{count, duration}``.

        Raises:
            D1ExecError: ``D1_EXEC_ERROR: Error in line N: <line>: <error>``; nothing was applied.
        """
        lines = query.strip().count("\n") + 1 if isinstance(query, str) else 1
        return await self._run(self._driver.engine.exec(query), lines)

    def withSession(self, constraintOrBookmark: str | None = None) -> D1DatabaseSession:
        """A session starting at ``"first-unconstrained"`` (default), ``"first-primary"`` or a bookmark."""
        if constraintOrBookmark is not None and not isinstance(constraintOrBookmark, str):
            raise D1SessionError(
                "D1_SESSION_ERROR: invalid bookmark or constraint", detail="invalid bookmark or constraint"
            )
        value = (constraintOrBookmark or "").strip() or _FIRST_UNCONSTRAINED
        return D1DatabaseSession(self._driver, value)
