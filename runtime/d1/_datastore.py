"""D1DataStore: pylon-workers' manifest-driven CRUD store over an async SQL executor.

A :class:`Manifest` declares entities (fields with types, relations to other
entities). The store builds every statement from it: insert with a
generated id, get/list/keyset pagination, update, delete, lookup by field,
link/unlink through join tables, and filtered queries (``$not``, ``$gt``,
``$gte``, ``$lt``, ``$lte``, ``$in``, ``$like``, ``$order``, ``$limit``).
The executor is a seam: :class:`D1Executor` runs on the D1 API (either
driver), :class:`SqliteExecutor` on a plain ``sqlite3`` connection.

Invariants:

* No identifier reaches SQL unless the manifest declares it: entity, field
  and relation names are looked up first (an unknown one raises before
  anything runs) and are double-quoted. Manifest names themselves must be
  plain identifiers, checked when the manifest is built.
* Values are always bound parameters, never part of the SQL text.
* Every refusal and failure is a :class:`DataStoreError` with a stable
  ``code``; executor errors are chained as ``__cause__``.
* Writes that touch several rows (a row and its links) are one executor
  transaction (``execute_many``).
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from shards._errors import D1ConstraintError, D1Error, DataStoreError

from ._api import D1Database
from ._core import JsDict, SqlValue, StepFailed, _map_error, convert_bind_value

__all__ = [
    "D1DataStore",
    "D1Executor",
    "Entity",
    "Executor",
    "Field",
    "Manifest",
    "Relation",
    "SqliteExecutor",
]

ENTITY_NOT_FOUND: Final = "ENTITY_NOT_FOUND"
RECORD_NOT_FOUND: Final = "RECORD_NOT_FOUND"
INVALID_COLUMN: Final = "INVALID_COLUMN"
INVALID_DATA: Final = "INVALID_DATA"
INVALID_QUERY: Final = "INVALID_QUERY"
INVALID_MANIFEST: Final = "INVALID_MANIFEST"
RELATION_NOT_FOUND: Final = "RELATION_NOT_FOUND"
CONSTRAINT_FAILED: Final = "CONSTRAINT_FAILED"
QUERY_FAILED: Final = "QUERY_FAILED"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TYPES: Final = {
    "text": "TEXT",
    "integer": "INTEGER",
    "real": "REAL",
    "boolean": "INTEGER",
    "json": "TEXT",
    "blob": "BLOB",
}
_COMPARISONS: Final = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
#: D1 binds at most 100 values per statement.
_MAX_PARAMS: Final = 100
_MAX_LIMIT: Final = 10_000


# --- executors -------------------------------------------------------------------------------------


class Executor(Protocol):
    """Runs SQL for the store. Rows come back as dicts keyed by column name."""

    async def execute(self, sql: str, params: Sequence[SqlValue]) -> list[dict[str, Any]]:
        """Run one statement; its rows (empty for writes without RETURNING)."""
        ...

    async def execute_many(
        self, statements: Sequence[tuple[str, Sequence[SqlValue]]]
    ) -> list[list[dict[str, Any]]]:
        """Run statements in one transaction (all or nothing); the rows of each."""
        ...


class D1Executor:
    """The D1 API as an executor (``env.DB``, a session, either driver)."""

    def __init__(self, db: D1Database) -> None:
        self.db = db

    async def execute(self, sql: str, params: Sequence[SqlValue]) -> list[dict[str, Any]]:
        result = await self.db.prepare(sql).bind(*params).all()
        rows: list[dict[str, Any]] = result["results"]
        return rows

    async def execute_many(
        self, statements: Sequence[tuple[str, Sequence[SqlValue]]]
    ) -> list[list[dict[str, Any]]]:
        results = await self.db.batch([self.db.prepare(sql).bind(*params) for sql, params in statements])
        return [r["results"] for r in results]


class SqliteExecutor:
    """A plain ``sqlite3`` connection as an executor (runs inline; foreign keys turned on).

    Errors come out as D1's (``D1ConstraintError`` ...), so the store treats both alike.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("PRAGMA foreign_keys = ON")

    def _run(self, sql: str, params: Sequence[SqlValue]) -> list[dict[str, Any]]:
        try:
            cur = self.conn.execute(sql, tuple(params))
            if cur.description is None:
                return []
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
        except sqlite3.Error as exc:
            raise _map_error(StepFailed(exc), _NO_AUTHORIZER, last=True, has_params=bool(params)) from exc

    async def execute(self, sql: str, params: Sequence[SqlValue]) -> list[dict[str, Any]]:
        in_txn = self.conn.in_transaction
        rows = self._run(sql, params)
        if not in_txn and self.conn.in_transaction:  # a connection with implicit transactions
            self.conn.commit()
        return rows

    async def execute_many(
        self, statements: Sequence[tuple[str, Sequence[SqlValue]]]
    ) -> list[list[dict[str, Any]]]:
        self.conn.execute("SAVEPOINT d1_datastore")
        try:
            out = [self._run(sql, params) for sql, params in statements]
        except BaseException:
            self.conn.execute("ROLLBACK TO d1_datastore")
            self.conn.execute("RELEASE d1_datastore")
            raise
        self.conn.execute("RELEASE d1_datastore")
        if self.conn.in_transaction and self.conn.isolation_level is not None:
            self.conn.commit()
        return out


class _NoAuthorizer:
    refused_transaction = False


_NO_AUTHORIZER: Any = _NoAuthorizer()


# --- the manifest ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One column of an entity.

    Attributes:
        name: the column name (a plain identifier).
        type: ``text``, ``integer``, ``real``, ``boolean`` (stored 1/0), ``json``
            (stored as text) or ``blob`` (bytes).
        required: NOT NULL, and ``insert`` must give it.
        unique: a UNIQUE constraint.
    """

    name: str
    type: str = "text"
    required: bool = False
    unique: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Relation:
    """A many-to-many link from one entity to ``target``, kept in a join table."""

    name: str
    target: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """An entity: a table with a generated text ``id`` and the declared fields."""

    name: str
    fields: tuple[Field, ...] = ()
    relations: tuple[Relation, ...] = ()
    _by_name: dict[str, Field] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.fields})


def _check_ident(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name) or name.lower().startswith(("_cf_", "sqlite_")):
        raise DataStoreError(INVALID_MANIFEST, f"{kind} name {name!r} is not a plain identifier")
    return name


class Manifest:
    """The entities a store knows, validated once.

    Build it from :class:`Entity` objects or from the dict form::

        Manifest.from_dict({
            "users": {"fields": {"name": {"type": "text", "required": True}, "age": "integer"},
                      "relations": {"teams": "teams"}},
            "teams": {"fields": {"title": "text"}},
        })

    Raises:
        DataStoreError: ``INVALID_MANIFEST`` for a bad name, type, duplicate or relation target.
    """

    def __init__(self, entities: Sequence[Entity]) -> None:
        self.entities: dict[str, Entity] = {}
        for entity in entities:
            _check_ident("entity", entity.name)
            if entity.name in self.entities:
                raise DataStoreError(INVALID_MANIFEST, f"entity {entity.name!r} is declared twice")
            seen: set[str] = {"id"}
            for f in entity.fields:
                _check_ident("field", f.name)
                if f.name in seen:
                    raise DataStoreError(
                        INVALID_MANIFEST, f"{entity.name}.{f.name} is declared twice (or is 'id')"
                    )
                if f.type not in _TYPES:
                    raise DataStoreError(INVALID_MANIFEST, f"{entity.name}.{f.name}: unknown type {f.type!r}")
                seen.add(f.name)
            for r in entity.relations:
                _check_ident("relation", r.name)
                if r.name in seen:
                    raise DataStoreError(INVALID_MANIFEST, f"{entity.name}.{r.name} is declared twice")
                seen.add(r.name)
            self.entities[entity.name] = entity
        for entity in self.entities.values():
            for r in entity.relations:
                if r.target not in self.entities:
                    raise DataStoreError(
                        INVALID_MANIFEST,
                        f"relation {entity.name}.{r.name} targets unknown entity {r.target!r}",
                    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> Manifest:
        """Build a manifest from ``{entity: {"fields": {...}, "relations": {...}}}``."""
        entities = []
        try:
            for name, spec in data.items():
                fields = []
                for fname, fspec in dict(spec.get("fields", {})).items():
                    if isinstance(fspec, str):
                        fields.append(Field(name=fname, type=fspec))
                    else:
                        fields.append(Field(name=fname, **dict(fspec)))
                relations = [Relation(name=rn, target=t) for rn, t in dict(spec.get("relations", {})).items()]
                entities.append(Entity(name=name, fields=tuple(fields), relations=tuple(relations)))
        except (TypeError, AttributeError, ValueError) as exc:
            raise DataStoreError(INVALID_MANIFEST, f"malformed manifest: {exc}") from exc
        return cls(entities)


def _q(name: str) -> str:
    # Only manifest names (plain identifiers) get here; quoting is belt and braces.
    return '"' + name.replace('"', '""') + '"'


def _join_table(entity: Entity, relation: Relation) -> str:
    return f"{entity.name}__{relation.name}"


# --- the store -------------------------------------------------------------------------------------


class D1DataStore:
    """Manifest-driven CRUD over an :class:`Executor`.

    Args:
        executor: where SQL runs (:class:`D1Executor`, :class:`SqliteExecutor`),
            or a :class:`~runtime.d1.D1Database`, wrapped for you.
        manifest: the entities, as a :class:`Manifest` or its dict form.
        id_factory: makes ids for ``insert`` (default: 32 random hex digits;
            pass a seeded one for reproducible tests).
    """

    def __init__(
        self,
        executor: Executor | D1Database,
        manifest: Manifest | Mapping[str, Mapping[str, Any]],
        *,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.executor: Executor = D1Executor(executor) if isinstance(executor, D1Database) else executor
        self.manifest = manifest if isinstance(manifest, Manifest) else Manifest.from_dict(manifest)
        self._new_id = id_factory or (lambda: secrets.token_hex(16))

    # -- schema --

    def schema(self) -> builtins.list[str]:
        """``CREATE TABLE IF NOT EXISTS`` statements for every entity and relation (e.g. for a migration)."""
        out = []
        for entity in self.manifest.entities.values():
            cols = ["id TEXT PRIMARY KEY"]
            for f in entity.fields:
                col = f"{_q(f.name)} {_TYPES[f.type]}"
                if f.required:
                    col += " NOT NULL"
                if f.unique:
                    col += " UNIQUE"
                cols.append(col)
            out.append(f"CREATE TABLE IF NOT EXISTS {_q(entity.name)} ({', '.join(cols)})")
        for entity in self.manifest.entities.values():
            for r in entity.relations:
                out.append(
                    f"CREATE TABLE IF NOT EXISTS {_q(_join_table(entity, r))} ("
                    f"source_id TEXT NOT NULL REFERENCES {_q(entity.name)}(id) ON DELETE CASCADE, "
                    f"target_id TEXT NOT NULL REFERENCES {_q(r.target)}(id) ON DELETE CASCADE, "
                    "PRIMARY KEY (source_id, target_id)) WITHOUT ROWID"
                )
        return out

    async def create_schema(self) -> None:
        """Create every table of the manifest that does not exist yet (one transaction)."""
        await self._many([(sql, ()) for sql in self.schema()])

    # -- CRUD --

    async def insert(self, entity: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a row with a generated id; returns it as stored.

        Raises:
            DataStoreError: ENTITY_NOT_FOUND, INVALID_COLUMN, INVALID_DATA (a
                missing required field, a value of the wrong type, an ``id``),
                CONSTRAINT_FAILED (e.g. a unique field), QUERY_FAILED.
        """
        ent = self._entity(entity)
        if not isinstance(data, Mapping):
            raise DataStoreError(INVALID_DATA, f"insert takes a mapping of fields, got {type(data).__name__}")
        values = self._values(ent, data)
        missing = [f.name for f in ent.fields if f.required and values.get(f.name) is None]
        if missing:
            raise DataStoreError(INVALID_DATA, f"{entity}: missing required field(s) {', '.join(missing)}")
        row_id = self._new_id()
        cols = ["id", *values]
        sql = (
            f"INSERT INTO {_q(ent.name)} ({', '.join(map(_q, cols))}) "
            f"VALUES ({', '.join('?' * len(cols))}) RETURNING *"
        )
        rows = await self._one(sql, [row_id, *values.values()])
        return self._decode(ent, rows[0])

    async def get_by_id(self, entity: str, id: str) -> dict[str, Any] | None:
        """The row with ``id``, or None."""
        ent = self._entity(entity)
        rows = await self._one(f"SELECT * FROM {_q(ent.name)} WHERE id = ?", [self._id(id)])
        return self._decode(ent, rows[0]) if rows else None

    async def list(self, entity: str, *, limit: int | None = None) -> builtins.list[dict[str, Any]]:
        """Rows in id order (at most ``limit``)."""
        ent = self._entity(entity)
        sql = f"SELECT * FROM {_q(ent.name)} ORDER BY id"
        params: builtins.list[SqlValue] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(self._limit(limit))
        return [self._decode(ent, r) for r in await self._one(sql, params)]

    async def list_after(
        self, entity: str, cursor: str | None, limit: int
    ) -> tuple[builtins.list[dict[str, Any]], str | None]:
        """One page of rows in id order after ``cursor`` (None: from the start).

        Returns:
            ``(rows, next_cursor)``; ``next_cursor`` is None on the last page.
        """
        ent = self._entity(entity)
        n = self._limit(limit)
        params: builtins.list[SqlValue] = [n + 1]
        if cursor is None:
            sql = f"SELECT * FROM {_q(ent.name)} ORDER BY id LIMIT ?"
        else:
            sql = f"SELECT * FROM {_q(ent.name)} WHERE id > ? ORDER BY id LIMIT ?"
            params.insert(0, self._id(cursor))
        rows = [self._decode(ent, r) for r in await self._one(sql, params)]
        if len(rows) > n:
            return rows[:n], rows[n - 1]["id"]
        return rows, None

    async def update(self, entity: str, id: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Set the given fields of row ``id``; returns the row as stored.

        Raises:
            DataStoreError: RECORD_NOT_FOUND, plus the codes of :meth:`insert`.
        """
        ent = self._entity(entity)
        if not isinstance(data, Mapping) or not data:
            raise DataStoreError(INVALID_DATA, "update takes a non-empty mapping of fields")
        values = self._values(ent, data)
        for name, value in values.items():
            if value is None and ent._by_name[name].required:
                raise DataStoreError(INVALID_DATA, f"{entity}.{name} is required")
        sets = ", ".join(f"{_q(c)} = ?" for c in values)
        rows = await self._one(
            f"UPDATE {_q(ent.name)} SET {sets} WHERE id = ? RETURNING *", [*values.values(), self._id(id)]
        )
        if not rows:
            raise DataStoreError(RECORD_NOT_FOUND, f"{entity} {id!r} does not exist")
        return self._decode(ent, rows[0])

    async def delete(self, entity: str, id: str) -> bool:
        """Delete row ``id`` (its links go with it); whether it existed."""
        ent = self._entity(entity)
        rows = await self._one(f"DELETE FROM {_q(ent.name)} WHERE id = ? RETURNING id", [self._id(id)])
        return bool(rows)

    async def lookup(self, entity: str, field: str, value: Any) -> dict[str, Any] | None:
        """The first row (in id order) whose ``field`` equals ``value``, or None."""
        rows = await self.query_filtered(entity, {field: value, "$limit": 1})
        return rows[0] if rows else None

    # -- relations --

    async def link(self, entity: str, id: str, relation: str, target_id: str) -> None:
        """Link row ``id`` to ``target_id`` through ``relation`` (linking twice is a no-op).

        Raises:
            DataStoreError: RELATION_NOT_FOUND, RECORD_NOT_FOUND (either row is missing).
        """
        ent, rel = self._relation(entity, relation)
        sql = f"INSERT OR IGNORE INTO {_q(_join_table(ent, rel))} (source_id, target_id) VALUES (?, ?)"
        try:
            await self._one(sql, [self._id(id), self._id(target_id)])
        except DataStoreError as exc:
            if exc.code == CONSTRAINT_FAILED:
                raise DataStoreError(
                    RECORD_NOT_FOUND, f"{entity} {id!r} or {rel.target} {target_id!r} does not exist"
                ) from exc
            raise

    async def unlink(self, entity: str, id: str, relation: str, target_id: str) -> bool:
        """Remove a link; whether it existed."""
        ent, rel = self._relation(entity, relation)
        rows = await self._one(
            f"DELETE FROM {_q(_join_table(ent, rel))} WHERE source_id = ? AND target_id = ? RETURNING source_id",
            [self._id(id), self._id(target_id)],
        )
        return bool(rows)

    async def related(self, entity: str, id: str, relation: str) -> builtins.list[dict[str, Any]]:
        """The rows linked from row ``id`` through ``relation``, in id order."""
        ent, rel = self._relation(entity, relation)
        target = self.manifest.entities[rel.target]
        sql = (
            f"SELECT t.* FROM {_q(target.name)} AS t JOIN {_q(_join_table(ent, rel))} AS j "
            "ON j.target_id = t.id WHERE j.source_id = ? ORDER BY t.id"
        )
        return [self._decode(target, r) for r in await self._one(sql, [self._id(id)])]

    # -- queries --

    async def query_filtered(self, entity: str, filters: Mapping[str, Any]) -> builtins.list[dict[str, Any]]:
        """Rows matching every condition of ``filters``.

        ``{"field": value}`` is equality (None: IS NULL); ``{"field": {"$not": v}}``,
        ``$gt``/``$gte``/``$lt``/``$lte``, ``$in`` (a list) and ``$like`` (a
        pattern) may be combined per field. ``"$order"`` is a field name or a list
        of them, ``-field`` for descending (default: id); ``"$limit"`` caps the rows.

        Raises:
            DataStoreError: INVALID_COLUMN (unknown field), INVALID_QUERY (unknown
                operator, bad ``$order``/``$limit``, too many values), INVALID_DATA.
        """
        ent = self._entity(entity)
        if not isinstance(filters, Mapping):
            raise DataStoreError(INVALID_QUERY, f"filters must be a mapping, got {type(filters).__name__}")
        where: builtins.list[str] = []
        params: builtins.list[SqlValue] = []
        order = "id"
        limit: int | None = None
        for key, cond in filters.items():
            if key == "$order":
                order = self._order(ent, cond)
            elif key == "$limit":
                limit = self._limit(cond)
            else:
                self._conditions(ent, key, cond, where, params)
        sql = f"SELECT * FROM {_q(ent.name)}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        if len(params) > _MAX_PARAMS:
            raise DataStoreError(
                INVALID_QUERY, f"the filter needs {len(params)} values; D1 binds at most {_MAX_PARAMS}"
            )
        return [self._decode(ent, r) for r in await self._one(sql, params)]

    # -- internals --

    def _entity(self, name: Any) -> Entity:
        ent = self.manifest.entities.get(name) if isinstance(name, str) else None
        if ent is None:
            raise DataStoreError(ENTITY_NOT_FOUND, f"no entity named {name!r} in the manifest")
        return ent

    def _relation(self, entity: str, relation: Any) -> tuple[Entity, Relation]:
        ent = self._entity(entity)
        for r in ent.relations:
            if r.name == relation:
                return ent, r
        raise DataStoreError(RELATION_NOT_FOUND, f"{entity} has no relation named {relation!r}")

    def _field(self, ent: Entity, name: Any) -> str:
        if name == "id":
            return "id"
        if not isinstance(name, str) or name not in ent._by_name:
            raise DataStoreError(INVALID_COLUMN, f"{ent.name} has no field named {name!r}")
        return name

    @staticmethod
    def _id(value: Any) -> str:
        if not isinstance(value, str):
            raise DataStoreError(INVALID_DATA, f"ids are strings, got {type(value).__name__}")
        return value

    @staticmethod
    def _limit(value: Any) -> int:
        if type(value) is not int or not 0 < value <= _MAX_LIMIT:
            raise DataStoreError(INVALID_QUERY, f"limit must be an int in 1..{_MAX_LIMIT}, got {value!r}")
        return value

    def _order(self, ent: Entity, spec: Any) -> str:
        items = [spec] if isinstance(spec, str) else spec
        if not isinstance(items, list) or not items:
            raise DataStoreError(
                INVALID_QUERY, f"$order must be a field name or a list of them, got {spec!r}"
            )
        parts = []
        for item in items:
            if not isinstance(item, str):
                raise DataStoreError(INVALID_QUERY, f"$order entries are field names, got {item!r}")
            desc = item.startswith("-")
            parts.append(f"{_q(self._field(ent, item[1:] if desc else item))}{' DESC' if desc else ''}")
        if "id" not in {p.split()[0].strip('"') for p in parts}:
            parts.append("id")  # a total order, so pages and ties are stable
        return ", ".join(parts)

    def _conditions(
        self, ent: Entity, key: str, cond: Any, where: builtins.list[str], params: builtins.list[SqlValue]
    ) -> None:
        name = self._field(ent, key)
        col = _q(name)
        if not isinstance(cond, Mapping):
            if cond is None:
                where.append(f"{col} IS NULL")
            else:
                where.append(f"{col} = ?")
                params.append(self._encode(ent, name, cond))
            return
        if not cond:
            raise DataStoreError(INVALID_QUERY, f"empty condition for {key!r}")
        for op, value in cond.items():
            if op == "$not":
                if value is None:
                    where.append(f"{col} IS NOT NULL")
                else:
                    where.append(f"({col} IS NULL OR {col} != ?)")
                    params.append(self._encode(ent, name, value))
            elif op in _COMPARISONS:
                if value is None:
                    raise DataStoreError(INVALID_DATA, f"{op} needs a value, not None")
                where.append(f"{col} {_COMPARISONS[op]} ?")
                params.append(self._encode(ent, name, value))
            elif op == "$in":
                if not isinstance(value, list):
                    raise DataStoreError(INVALID_DATA, f"$in takes a list, got {type(value).__name__}")
                if not value:
                    where.append("0")  # IN () matches nothing
                    continue
                where.append(f"{col} IN ({', '.join('?' * len(value))})")
                params.extend(self._encode(ent, name, v) for v in value)
            elif op == "$like":
                if not isinstance(value, str):
                    raise DataStoreError(
                        INVALID_DATA, f"$like takes a pattern string, got {type(value).__name__}"
                    )
                where.append(f"{col} LIKE ?")
                params.append(value)
            else:
                raise DataStoreError(INVALID_QUERY, f"unknown operator {op!r} for {key!r}")

    def _values(self, ent: Entity, data: Mapping[str, Any]) -> dict[str, SqlValue]:
        out: dict[str, SqlValue] = {}
        for name, value in data.items():
            if name == "id":
                raise DataStoreError(INVALID_DATA, f"{ent.name}.id is generated; it cannot be set")
            column = self._field(ent, name)  # checked before the value is looked at
            out[column] = self._encode(ent, column, value)
        return out

    def _encode(self, ent: Entity, name: str, value: Any) -> SqlValue:
        if name == "id":
            return self._id(value)
        kind = ent._by_name[name].type
        if value is None:
            return None
        ok = {
            "text": isinstance(value, str),
            "integer": type(value) is int,
            "real": type(value) in (int, float),
            "boolean": type(value) is bool,
            "blob": isinstance(value, bytes),
            "json": True,
        }[kind]
        if not ok:
            raise DataStoreError(
                INVALID_DATA, f"{ent.name}.{name} is {kind}; got {type(value).__name__} {value!r}"
            )
        if kind == "json":
            try:
                return json.dumps(value, allow_nan=False, separators=(",", ":"))
            except (TypeError, ValueError) as exc:
                raise DataStoreError(
                    INVALID_DATA, f"{ent.name}.{name} is not JSON-serializable: {exc}"
                ) from exc
        try:
            return convert_bind_value(value)
        except (D1Error, TypeError) as exc:
            raise DataStoreError(INVALID_DATA, f"{ent.name}.{name}: {exc}") from exc

    @staticmethod
    def _decode(ent: Entity, row: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in row.items():
            f = ent._by_name.get(name)
            if f is not None and value is not None:
                if f.type == "boolean":
                    value = bool(value)
                elif f.type == "json":
                    value = json.loads(value)
                elif f.type == "blob":
                    value = bytes(value)  # D1 reads BLOBs as lists of ints
                elif f.type == "real":
                    value = float(value)
            out[name] = value
        return JsDict(out)

    async def _one(self, sql: str, params: Sequence[SqlValue]) -> builtins.list[dict[str, Any]]:
        try:
            return await self.executor.execute(sql, params)
        except DataStoreError:
            raise
        except Exception as exc:  # whatever the executor raises is a failed query to our callers
            raise _failure(exc) from exc

    async def _many(
        self, statements: Sequence[tuple[str, Sequence[SqlValue]]]
    ) -> builtins.list[builtins.list[dict[str, Any]]]:
        try:
            return await self.executor.execute_many(statements)
        except DataStoreError:
            raise
        except Exception as exc:
            raise _failure(exc) from exc


def _failure(exc: Exception) -> DataStoreError:
    if isinstance(exc, D1ConstraintError):
        return DataStoreError(CONSTRAINT_FAILED, str(exc))
    return DataStoreError(QUERY_FAILED, str(exc))
