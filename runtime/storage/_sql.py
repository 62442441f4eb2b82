"""``ctx.storage.sql``: the SQL API of SQLite-backed objects, with production's rules.

``sql.exec(query, *bindings)`` runs at once, on the object's one connection,
and returns a :class:`SqlStorageCursor`. What production does and we do too
(workerd src/workerd/api/sql.c++, src/workerd/util/sqlite.c++):

* Several ``;``-separated statements may be given: all run, in order; the
  bindings belong to the last one and the cursor reads the last one's rows.
  Only the last statement may have parameters. A string with no statement
  (empty, only comments, or an empty statement such as a trailing ``;`` after
  a comment) is refused. Splitting is :func:`runtime._sqltext.split_statements`
  in its strict mode (D1 shares the splitter, in its lenient mode).
* Bindable values are what a JavaScript caller can pass: str, numbers, None
  and bytes (a BLOB). Production binds every number as a double, so we do:
  an int binds as a float (``typeof(?)`` is ``'real'``), and an int beyond
  ±(2**53 - 1), which Pyodide would hand over as a BigInt, is refused; so is
  a bool (JavaScript booleans are not bindable in Durable Object SQL).
* Values read back as JavaScript numbers reach Python: a number with an integral
  value within ±(2**53 - 1) is an int, any other number a float (so integers
  beyond 2**53 lose precision, as in production). BLOBs are bytes.
* Errors read ``<sqlite message>: SQLITE_<PRIMARY CODE>``; a few are
  workerd's own texts (see :mod:`runtime.storage._limits`).

Invariants:

* :class:`SqlStorage` works on the object's database and its host alone; it
  never sees the KV API (``ctx.storage``), which builds it, so this module
  does not depend on ``runtime.storage._kv``.
* A statement that may write runs inside the open write batch
  (``db.write_connection()``) and then calls ``host.wrote(confirmed=True)``,
  exactly like a KV write; a statement that only reads never opens a batch and
  never tells the host. workerd asks ``sqlite3_stmt_readonly``, which Python
  does not expose: we decide by the first keyword (``SELECT``, ``VALUES``,
  ``EXPLAIN``, ``PRAGMA`` read; a ``WITH`` statement is compiled once as
  ``EXPLAIN <text>`` and the authorizer tells whether it writes; everything
  else writes), a rule that depends on the text only, never on the schema.
* An ``exec`` is all or nothing: a single statement is atomic in SQLite, and a
  multi-statement ``exec`` runs inside a savepoint that a failure rolls back.
  Production runs the statements before the failing one for good (workerd
  steps each statement as it parses the string); we are stricter, on purpose.
* An object that has no database file yet runs user SQL on an in-memory
  database shaped like a new object's: a read returns what an empty object
  holds and creates no file; a statement that turns out to write runs again
  on the real file, which it creates.
* A read cursor is lazy: rows are stepped as it is read (one row ahead, as in
  production), so reading it after an ``await`` can see later writes. Results of
  a statement that writes, and of a multi-statement ``exec``, are read in full
  at once. A cursor whose connection was closed (the object hibernated, or its
  idle connection went back to the pool) raises StorageError when read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, Final, final

from runtime._sqltext import EmptyStatementError, skip_trivia, split_statements
from shards._errors import StorageError, StorageLimitError, StorageTypeError

from ._engine import ObjectDatabase, sqlite_error_code_name
from ._host import StorageHost
from ._limits import (
    SQL_CURSOR_CLOSED,
    SQL_MULTI_STATEMENT_PARAMETERS,
    SQL_NO_STATEMENT,
    SQL_ONE_MULTIPLE,
    SQL_ONE_NONE,
    SQL_STATEMENT_TOO_LONG,
    SQL_TRANSACTION_STATEMENT,
    SQL_WRONG_BINDINGS,
)
from ._policy import MAX_SQL_BYTES, user_text

__all__ = ["RawCursor", "SqlStorage", "SqlStorageCursor"]

MAX_SAFE_INTEGER: Final = 2**53 - 1
_PLAN_CACHE: Final = 512
# Statements that start with these keywords never change the database.
_READ_KEYWORDS: Final = frozenset({"select", "values", "explain", "pragma"})
_Row = tuple[Any, ...]


# --- values ---------------------------------------------------------------------------------------


def _bindings(values: tuple[object, ...]) -> list[object]:
    """Check and convert exec() bindings as production would receive them."""
    out: list[object] = []
    for value in values:
        kind = type(value)
        if kind is str or kind is float or kind is bytes or value is None:
            out.append(value)
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:  # type: ignore[operator]
                raise StorageTypeError(_big_int(len(out) + 1, value))
            out.append(float(value))  # type: ignore[arg-type]
        else:
            out.append(_binding_slow(len(out) + 1, value))
    return out


def _big_int(position: int, value: object) -> str:
    return (
        f"sql.exec() binding {position} is the int {value}, beyond ±(2**53 - 1): production binds "
        "numbers as doubles and would receive it as a BigInt, which SQL bindings do not accept; "
        "bind it as a str"
    )


def _binding_slow(position: int, value: object) -> object:
    if isinstance(value, bool):
        raise StorageTypeError(
            f"sql.exec() binding {position} is a bool: JavaScript booleans are not bindable in "
            "Durable Object SQL; bind 1 or 0"
        )
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise StorageTypeError(_big_int(position, value))
        return float(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bytes):
        return bytes(value)
    raise StorageTypeError(
        f"sql.exec() binding {position} has type {type(value).__name__}; SQL bindings must be "
        "str, int, float, bytes (a BLOB) or None"
    )


def _js_values(row: _Row) -> list[Any]:
    """A row's values as production hands them to Python (JavaScript numbers through Pyodide)."""
    values = list(row)
    for i, value in enumerate(values):
        kind = type(value)
        if kind is str or value is None:
            continue
        if kind is int:
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                values[i] = float(value)
        elif kind is float and value.is_integer() and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            values[i] = int(value)
    return values


# --- the API ----------------------------------------------------------------------------------------


@final
class SqlStorage:
    """``ctx.storage.sql`` of one SQLite-backed object.

    Built by ``ctx.storage.sql`` (:class:`~runtime.storage.DurableObjectStorage`)
    on the same database and host as the KV API; user code never constructs it.

    Args:
        db: the object's database.
        host: the actor, as seen through :class:`~runtime.storage.StorageHost`.
    """

    __slots__ = ("_db", "_host", "_plans")

    def __init__(self, db: ObjectDatabase, host: StorageHost) -> None:
        self._db = db
        self._host = host
        # query text -> its statements (as handed to sqlite3)
        self._plans: dict[str, tuple[str, ...]] = {}

    def exec(self, query: str, *bindings: object) -> SqlStorageCursor:
        """Run ``query`` (one statement or several) and return a cursor on the last one's rows.

        Args:
            query: SQL text; ``?`` / ``?NNN`` placeholders in the last statement.
            *bindings: str, int, float, bytes or None, one per parameter.

        Raises:
            StorageTypeError: a binding of a type production cannot bind, or a
                query that is not a str.
            StorageLimitError: a statement over 100,000 bytes, or a value over
                2,000,000 bytes (``SQLITE_TOOBIG``).
            StorageError: any other refusal, with production's message: a
                syntax error, the wrong number of bindings, a transaction
                statement, a ``_cf_`` name (``not authorized: SQLITE_AUTH``), a
                constraint failure, ...
        """
        self._host.check_alive()
        params = _bindings(bindings)
        pieces = self._plans.get(query) if type(query) is str else None
        if pieces is None:
            pieces = self._plan(query)
        db = self._db
        conn = db.read_connection()
        if conn is None:
            return self._exec_without_file(pieces, params)
        if len(pieces) == 1:
            piece = pieces[0]
            writes = db.policy.kinds.get(piece)
            if writes is None:
                writes = self._classify(conn, piece, params)
            if not writes:
                return self._read(conn, piece, params)
        return self._write(pieces, params)

    @property
    def databaseSize(self) -> int:
        """The database's size in bytes: (page_count - freelist_count) * page_size."""
        self._host.check_alive()
        conn = self._db.read_connection()
        scratch = conn is None
        if conn is None:
            conn = self._db.scratch_connection()
        try:
            pages = conn.execute(
                "SELECT (SELECT * FROM pragma_page_count) - (SELECT * FROM pragma_freelist_count)"
            ).fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        except sqlite3.Error as exc:  # pragma: no cover - the pragmas cannot fail on an open database
            raise StorageError(str(exc)) from exc
        finally:
            if scratch:
                conn.close()
        return int(pages) * int(page_size)

    # --- internals ----------------------------------------------------------------------------

    def _plan(self, query: object) -> tuple[str, ...]:
        if not isinstance(query, str):
            raise StorageTypeError(f"sql.exec() takes the query as a str, got {type(query).__name__}")
        text = query if type(query) is str else str.__str__(query)
        # A str of n characters holds n to 4n UTF-8 bytes: encode only when it could matter.
        if len(text) * 4 > MAX_SQL_BYTES and (
            len(text) > MAX_SQL_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_SQL_BYTES
        ):
            raise StorageLimitError(SQL_STATEMENT_TOO_LONG)
        try:
            statements = split_statements(text, strict=True)
        except EmptyStatementError:
            raise StorageError(SQL_NO_STATEMENT) from None
        pieces = tuple(user_text(piece) for piece in statements)
        if len(self._plans) >= _PLAN_CACHE:
            self._plans.clear()
        self._plans[text] = pieces
        return pieces

    def _error(self, exc: BaseException, *, intermediate: bool = False) -> StorageError:
        """Production's error for a failure of user SQL."""
        policy = self._db.policy
        if policy.refused_transaction:
            policy.refused_transaction = False
            return StorageError(SQL_TRANSACTION_STATEMENT)
        if isinstance(exc, UnicodeEncodeError):
            return StorageTypeError(
                "sql.exec(): a str binding or the query contains a lone surrogate, so it has no UTF-8 form"
            )
        message = str(exc)
        if isinstance(exc, sqlite3.ProgrammingError):
            if message.startswith("Incorrect number of bindings"):
                return StorageError(SQL_MULTI_STATEMENT_PARAMETERS if intermediate else SQL_WRONG_BINDINGS)
            if message.startswith("Cannot operate on a closed"):
                return StorageError(SQL_CURSOR_CLOSED)
        name = sqlite_error_code_name(exc) if isinstance(exc, sqlite3.Error) else None
        if name is None:
            return StorageError(message)
        text = f"{message}: {name}"
        return StorageLimitError(text) if name == "SQLITE_TOOBIG" else StorageError(text)

    def _classify(self, conn: sqlite3.Connection, piece: str, params: list[object]) -> bool:
        """Whether ``piece`` may write (and so must run inside the write batch).

        By its first keyword: ``SELECT``, ``VALUES``, ``EXPLAIN`` and ``PRAGMA``
        only read; a ``WITH`` statement is compiled once as ``EXPLAIN <text>``
        (which runs nothing) and the authorizer says whether its body writes;
        anything else (``CREATE ... IF NOT EXISTS`` included, as
        ``sqlite3_stmt_readonly`` would say) writes. The answer depends only on
        the text, never on the schema, so it is remembered per text.
        """
        policy = self._db.policy
        head = skip_trivia(piece)
        tail = head
        while tail < len(piece) and piece[tail].isalpha():
            tail += 1
        keyword = piece[head:tail].lower()
        if keyword in _READ_KEYWORDS:
            writes = False
        elif keyword != "with":
            writes = True
        else:
            policy.reset()
            try:
                policy.enter(conn)
                conn.execute("EXPLAIN " + piece, params)
            except (sqlite3.Error, ValueError) as exc:
                raise self._error(exc) from exc
            finally:
                policy.exit(conn)
            writes = policy.wrote
        kinds = policy.kinds
        if len(kinds) >= _PLAN_CACHE:
            kinds.clear()
        kinds[piece] = writes
        return writes

    def _read(self, conn: sqlite3.Connection, piece: str, params: list[object]) -> SqlStorageCursor:
        policy = self._db.policy
        try:
            policy.enter(conn)
            cur = conn.execute(piece, params)
            first = cur.fetchone()
            second = None if first is None else cur.fetchone()
        except (sqlite3.Error, ValueError) as exc:
            raise self._error(exc) from exc
        finally:
            policy.exit(conn)
        description = cur.description
        names = [d[0] for d in description] if description else []
        if second is not None:
            return SqlStorageCursor(self, names, [first, second], cur, 0)
        return SqlStorageCursor(self, names, [] if first is None else [first], None, 0)

    def _run(self, conn: sqlite3.Connection, pieces: tuple[str, ...], params: list[object]) -> sqlite3.Cursor:
        """Run every statement of ``pieces`` with the user's rules; the last one's cursor."""
        for piece in pieces[:-1]:
            try:
                conn.execute(piece)
            except (sqlite3.Error, ValueError) as exc:
                raise self._error(exc, intermediate=True) from exc
        try:
            return conn.execute(pieces[-1], params)
        except (sqlite3.Error, ValueError) as exc:
            raise self._error(exc) from exc

    def _write(self, pieces: tuple[str, ...], params: list[object]) -> SqlStorageCursor:
        db = self._db
        policy = db.policy
        began = not db.dirty
        conn = db.write_connection()
        multi = len(pieces) > 1
        token = db.savepoint() if multi else None
        before = conn.total_changes
        try:
            cur, rows = self._run_user_sql(conn, pieces, params)
        except BaseException:
            if token is not None:
                db.rollback_savepoint(token)
            if began:
                db.rollback()  # the batch holds nothing but this failed exec
            raise
        if token is not None:
            db.release_savepoint(token)
        changed = conn.total_changes - before
        if policy.wrote or changed or not multi:
            self._host.wrote(confirmed=True)
        elif began:
            db.rollback()  # a multi-statement exec that only read: close the batch it opened
        description = cur.description
        names = [d[0] for d in description] if description else []
        return SqlStorageCursor(self, names, rows, None, changed)

    def _run_user_sql(
        self, conn: sqlite3.Connection, pieces: tuple[str, ...], params: list[object]
    ) -> tuple[sqlite3.Cursor, list[Any]]:
        """Run user statements under the SQL policy; errors become production's."""
        policy = self._db.policy
        policy.reset()
        try:
            policy.enter(conn)
            cur = self._run(conn, pieces, params)
            return cur, cur.fetchall()
        except StorageError:  # already production's error (some are ValueErrors)
            raise
        except (sqlite3.Error, ValueError) as exc:
            raise self._error(exc) from exc
        finally:
            policy.exit(conn)

    def _exec_without_file(self, pieces: tuple[str, ...], params: list[object]) -> SqlStorageCursor:
        conn = self._db.scratch_connection()
        policy = self._db.policy
        try:
            conn.execute("BEGIN")
            cur, rows = self._run_user_sql(conn, pieces, params)
            wrote = policy.wrote or conn.total_changes > 0
            description = cur.description
        finally:
            conn.close()
        if wrote:
            return self._write(pieces, params)  # now on the real file, which this creates
        names = [d[0] for d in description] if description else []
        return SqlStorageCursor(self, names, rows, None, 0)


@final
class SqlStorageCursor:
    """The result of ``sql.exec``: an iterator of rows as dicts (column name -> value).

    Rows are read lazily for reads (see the module docstring). When two
    columns share a name, the dict keeps the last one's value; :meth:`raw`
    gives every value.
    """

    __slots__ = ("_buffer", "_cur", "_names", "_read", "_sql", "_written")

    def __init__(
        self,
        sql: SqlStorage,
        names: list[str],
        buffer: list[_Row],
        cur: sqlite3.Cursor | None,
        written: int,
    ) -> None:
        self._sql = sql
        self._names = names
        self._buffer = buffer
        self._cur = cur  # None once every row is in the buffer
        self._read = 0
        self._written = written

    def __repr__(self) -> str:
        return f"<SqlStorageCursor columns={self._names!r} rowsRead={self._read}>"

    @property
    def columnNames(self) -> list[str]:
        """The result's column names, in order (duplicates included)."""
        return list(self._names)

    @property
    def rowsRead(self) -> int:
        """Rows read so far (approximation: the rows this cursor has returned).

        Production counts the rows SQLite scanned, so a ``count(*)`` over 1,000
        rows reads 1,000 there and 1 here.
        """
        return self._read

    @property
    def rowsWritten(self) -> int:
        """Rows written (approximation: rows the statements inserted, updated or deleted).

        Python's sqlite3 exposes only the connection's change counter: rows
        changed by triggers are counted, index rows (which production bills
        as extra rows written) are not.
        """
        return self._written

    # --- reading ----------------------------------------------------------------------------------

    def _next_row(self) -> _Row | None:
        buffer = self._buffer
        if buffer:
            row = buffer.pop(0)
            if not buffer and self._cur is not None:
                self._fetch_ahead()
            self._read += 1
            return row
        return None

    def _fetch_ahead(self) -> None:
        cur = self._cur
        assert cur is not None
        sql = self._sql
        conn = cur.connection
        policy = sql._db.policy
        try:
            policy.enter(conn)
            row = cur.fetchone()
        except (sqlite3.Error, ValueError) as exc:
            self._cur = None
            raise sql._error(exc) from exc
        finally:
            policy.exit(conn)
        if row is None:
            self._cur = None
        else:
            self._buffer.append(row)

    def _row_dict(self, row: _Row) -> dict[str, Any]:
        return dict(zip(self._names, _js_values(row), strict=False))  # equal lengths by construction

    def __iter__(self) -> SqlStorageCursor:
        return self

    def __next__(self) -> dict[str, Any]:
        row = self._next_row()
        if row is None:
            raise StopIteration
        return self._row_dict(row)

    def next(self) -> dict[str, Any]:
        """The next row as production's iterator result: ``{"done": False, "value": row}``.

        Once the rows are exhausted: ``{"done": True, "value": None}``.
        """
        row = self._next_row()
        if row is None:
            return {"done": True, "value": None}
        return {"done": False, "value": self._row_dict(row)}

    def toArray(self) -> list[dict[str, Any]]:
        """Every remaining row, as dicts; the cursor is exhausted afterwards."""
        return [self._row_dict(row) for row in self._drain()]

    def one(self) -> dict[str, Any]:
        """The only row.

        Raises:
            StorageError: production's ``Expected exactly one result from SQL
                query, but got no results.`` / ``... but got multiple results.``
        """
        row = self._next_row()
        if row is None:
            raise StorageError(SQL_ONE_NONE)
        if self._buffer:
            self._buffer.clear()
            self._cur = None
            raise StorageError(SQL_ONE_MULTIPLE)
        return self._row_dict(row)

    def raw(self) -> RawCursor:
        """An iterator of value lists that shares this cursor's position."""
        return RawCursor(self)

    def _drain(self) -> list[_Row]:
        rows = self._buffer
        self._buffer = []
        cur = self._cur
        if cur is not None:
            self._cur = None
            sql = self._sql
            conn = cur.connection
            policy = sql._db.policy
            try:
                policy.enter(conn)
                rows.extend(cur.fetchall())
            except (sqlite3.Error, ValueError) as exc:
                raise sql._error(exc) from exc
            finally:
                policy.exit(conn)
        self._read += len(rows)
        return rows


@final
class RawCursor:
    """``cursor.raw()``: rows as lists of values, read from the same position as the cursor."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: SqlStorageCursor) -> None:
        self._cursor = cursor

    @property
    def columnNames(self) -> list[str]:
        """The column names of the cursor."""
        return self._cursor.columnNames

    def __iter__(self) -> Iterator[list[Any]]:
        return self

    def __next__(self) -> list[Any]:
        row = self._cursor._next_row()
        if row is None:
            raise StopIteration
        return _js_values(row)

    def next(self) -> dict[str, Any]:
        """``{"done": False, "value": [values]}``, or ``{"done": True, "value": None}``."""
        row = self._cursor._next_row()
        if row is None:
            return {"done": True, "value": None}
        return {"done": False, "value": _js_values(row)}

    def toArray(self) -> list[list[Any]]:
        """Every remaining row as a list of values."""
        return [_js_values(row) for row in self._cursor._drain()]
