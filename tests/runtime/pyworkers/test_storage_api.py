"""Storage and database APIs as Python Worker code reaches them: ``ctx.storage``, SQL, KV, alarms, D1.

In production ``self.ctx.storage`` and ``env.DB`` are wrapped by the Python
Workers SDK: arguments cross with ``python_to_rpc`` (dicts to plain objects,
lists to arrays, bytes to ``Uint8Array``, None to ``null``), results with
``python_from_rpc`` (objects and maps to ``JsDict``, arrays to lists,
buffers to ``memoryview``, integral numbers to ints), and JavaScript objects
that stay objects (the SQL cursor, a prepared statement) come back wrapped
again. Each test runs a Durable Object written against ``workers`` in a
runtime and asserts what that code sees, and what ends up stored.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from runtime import RemoteError, open_runtime
from tests.runtime.conftest import EPOCH_MS, config

from .helpers import worker_module


@asynccontextmanager
async def running(tmp_path: Path, source: str, **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
    """A runtime serving ``Store`` from ``source`` (binding ``S``), and the stub of object ``s``."""
    with worker_module(tmp_path, source) as mod:
        async with open_runtime(objects={"S": mod.Store}, config=config(), **kwargs) as rt:
            yield rt, rt.env.S.getByName("s")


def where(source: str, fragment: str, method: str) -> str:
    """The ``[file:line, in Store.method]`` suffix of a refusal raised by the line holding ``fragment``."""
    lines = [i for i, text in enumerate(source.splitlines(), 1) if fragment in text]
    assert len(lines) == 1, lines
    return f"worker_under_test.py:{lines[0]}, in Store.{method}]"


# -- ctx.storage: the key-value API through the SDK's wrapper ----------------------------------

KV_WORKER = """
import asyncio

from workers import DurableObject


class Store(DurableObject):
    async def put_and_get(self):
        storage = self.ctx.storage
        await storage.put("n", 1)
        await storage.put({"obj": {"x": [1, None], "y": 2.5}, "text": "t", "blob": b"\\x00\\x01"})
        one = await storage.get("n")
        many = await storage.get(["n", "obj", "absent"])
        blob = await storage.get("blob")
        return {
            "one": one,
            "absent": await storage.get("absent"),
            "many": many,
            "many_type": type(many).__name__,
            "nested_type": type(many["obj"]).__name__,
            "attribute": many.obj.y,
            "blob_type": type(blob).__name__,
            "blob": bytes(blob),
        }

    async def deletes(self):
        storage = self.ctx.storage
        await storage.put({"a": 1, "b": 2, "c": 3, "d": 4})
        return [
            await storage.delete("a"),
            await storage.delete("a"),
            await storage.delete(["b", "c", "never"]),
            await storage.deleteAll(),
            await storage.list(),
        ]

    async def listing(self):
        storage = self.ctx.storage
        await storage.put({"a1": 1, "a2": 2, "a3": 3, "b1": 4, "b2": 5, "c": 6})
        everything = await storage.list()
        return {
            "type": type(everything).__name__,
            "prefix": await storage.list(prefix="a"),
            "start_end": await storage.list(start="a2", end="b2"),
            "start_after_limit": await storage.list(startAfter="a2", limit=2),
            "reverse_limit": list((await storage.list(reverse=True, limit=3)).keys()),
            "flags": await storage.list(prefix="b", allowConcurrency=True, noCache=True),
        }

    async def unconfirmed(self):
        await self.ctx.storage.put("u", {"v": 1}, allowUnconfirmed=True)
        value = await self.ctx.storage.get("u", allowConcurrency=True, noCache=True)
        return [type(value).__name__, value.v]

    async def synced(self):
        await self.ctx.storage.put("s1", "one")
        await self.ctx.storage.put("s2", "two", allowUnconfirmed=True)
        try:
            # sync() once waited for the commit made at the reply, which waited for sync(): forever.
            return await asyncio.wait_for(self.ctx.storage.sync(), 5)
        except TimeoutError:
            return "sync() never returned"

    async def fetch(self):
        return None
"""


async def test_get_and_put_convert_both_ways_through_the_sdk(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, KV_WORKER) as (rt, stub):
        seen = await stub.put_and_get()
        assert seen == {
            "one": 1,
            "absent": None,
            # A list of keys gives a Map: the SDK makes it a JsDict, without the missing keys.
            "many": {"n": 1, "obj": {"x": [1, None], "y": 2.5}},
            "many_type": "JsDict",
            "nested_type": "JsDict",
            "attribute": 2.5,
            "blob_type": "memoryview",  # bytes were stored as a Uint8Array
            "blob": b"\x00\x01",
        }
        assert rt.dump_storage(stub)["kv"] == {
            "n": 1,
            "obj": {"x": [1, None], "y": 2.5},
            "text": "t",
            "blob": b"\x00\x01",
        }


async def test_delete_one_many_and_all(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, KV_WORKER) as (rt, stub):
        # One key: whether it existed; many: how many existed; deleteAll: undefined.
        assert await stub.deletes() == [True, False, 2, None, {}]
        assert rt.dump_storage(stub)["kv"] == {}


async def test_list_takes_every_option_as_a_keyword_argument(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, KV_WORKER) as (_rt, stub):
        assert await stub.listing() == {
            "type": "JsDict",
            "prefix": {"a1": 1, "a2": 2, "a3": 3},
            "start_end": {"a2": 2, "a3": 3, "b1": 4},
            "start_after_limit": {"a3": 3, "b1": 4},
            "reverse_limit": ["c", "b2", "b1"],
            "flags": {"b1": 4, "b2": 5},
        }


async def test_put_with_allow_unconfirmed_stores_the_value(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, KV_WORKER) as (rt, stub):
        assert await stub.unconfirmed() == ["JsDict", 1]
        assert rt.dump_storage(stub)["kv"] == {"u": {"v": 1}}


async def test_sync_returns_once_the_writes_are_durable(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, KV_WORKER) as (rt, stub):
        before = rt.statistics().commits
        assert await stub.synced() is None
        assert rt.statistics().commits == before + 1
        assert rt.dump_storage(stub)["kv"] == {"s1": "one", "s2": "two"}


# -- transactions ----------------------------------------------------------------------------

TRANSACTION_WORKER = """
from pyodide.ffi import JsProxy
from workers import DurableObject


class Store(DurableObject):
    async def transactions(self):
        storage = self.ctx.storage

        async def commit(txn):
            await txn.put("t1", "one")
            return "read " + await txn.get("t1")

        async def fail(txn):
            await txn.put("t2", "two")
            raise ValueError("nope")

        async def roll_back(txn):
            await txn.put("t3", "three")
            txn.rollback()
            return 3

        committed = await storage.transaction(commit)
        try:
            await storage.transaction(fail)
        except ValueError as exc:
            failed = f"ValueError: {exc}"
        rolled_back = await storage.transaction(roll_back)
        return [committed, failed, rolled_back, await storage.get(["t1", "t2", "t3"])]

    async def txn_is_not_wrapped(self):
        await self.ctx.storage.put("o", {"a": 1})

        async def read(txn):
            value = await txn.get("o")
            return [isinstance(value, JsProxy), isinstance(value, dict), value.a, value.to_py()]

        return await self.ctx.storage.transaction(read)

    async def txn_put_dict(self):
        async def write(txn):
            await txn.put("d", {"a": 1})

        await self.ctx.storage.transaction(write)

    async def transaction_sync(self):
        storage = self.ctx.storage
        storage.sql.exec("CREATE TABLE c (n INTEGER)")

        def commit():
            storage.sql.exec("INSERT INTO c VALUES (?)", 1)
            storage.kv.put("k", "kept")
            return {"answer": 42}

        def fail():
            storage.sql.exec("INSERT INTO c VALUES (?)", 2)
            storage.kv.put("k", "lost")
            raise RuntimeError("undo")

        result = storage.transactionSync(commit)
        try:
            storage.transactionSync(fail)
        except RuntimeError as exc:
            failed = f"RuntimeError: {exc}"
        return [result, failed, storage.sql.exec("SELECT n FROM c").toArray(), storage.kv.get("k")]

    async def transaction_sync_async(self):
        async def body():
            return 1

        return self.ctx.storage.transactionSync(body)

    async def fetch(self):
        return None
"""


async def test_transaction_commits_raises_the_original_exception_and_rolls_back(
    tmp_path, autojump_clock
) -> None:
    async with running(tmp_path, TRANSACTION_WORKER) as (rt, stub):
        # The closure's ValueError travels through JavaScript and is itself again (Pyodide's rule).
        assert await stub.transactions() == ["read one", "ValueError: nope", 3, {"t1": "one"}]
        assert rt.dump_storage(stub)["kv"] == {"t1": "one"}


async def test_the_transaction_object_is_a_raw_javascript_proxy(tmp_path, autojump_clock) -> None:
    # The SDK wraps ctx.storage, not the txn JavaScript hands the closure: its results are
    # JsProxy objects, and a dict passed to it is a PyProxy (DataCloneError in production).
    source = TRANSACTION_WORKER
    async with running(tmp_path, source) as (rt, stub):
        assert await stub.txn_is_not_wrapped() == [True, False, 1, {"a": 1}]
        with pytest.raises(
            RemoteError,
            match=r"^storage\.put\(\): the value, a Python dict, reaches JavaScript as a PyProxy .*"
            r"DataCloneError.*to_js\(value, dict_converter=js\.Object\.fromEntries\)",
        ) as info:
            await stub.txn_put_dict()
        line = where(source, 'await txn.put("d", {"a": 1})', "txn_put_dict").split(",")[0]
        assert str(info.value).endswith(f"{line}, in write]")  # the closure, a plain function
        assert rt.dump_storage(stub)["kv"] == {"o": {"a": 1}}


async def test_transaction_sync_runs_sql_and_kv_as_one_transaction(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, TRANSACTION_WORKER) as (rt, stub):
        assert await stub.transaction_sync() == [
            {"answer": 42},
            "RuntimeError: undo",
            [{"n": 1}],
            "kept",
        ]
        assert rt.dump_storage(stub)["kv"] == {"k": "kept"}
        assert rt.dump_storage(stub)["sql"] == {"c": [{"n": 1}]}


async def test_transaction_sync_refuses_an_async_closure(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, TRANSACTION_WORKER) as (_rt, stub):
        with pytest.raises(RemoteError, match=r"^transactionSync\(\) takes a synchronous function"):
            await stub.transaction_sync_async()


# -- SQL ---------------------------------------------------------------------------------------

SQL_WORKER = """
from js import Uint8Array
from pyodide.ffi import to_js
from workers import DurableObject


class Store(DurableObject):
    async def schema(self):
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB, n)")

    async def insert(self):
        sql = self.ctx.storage.sql
        cursors = [
            sql.exec("INSERT INTO t (i, f, s, b, n) VALUES (?, ?, ?, ?, ?)", 5, 1.5, "text", b"\\x01", None),
            sql.exec("INSERT INTO t (i, f, s, b, n) VALUES (?, ?, ?, ?, ?)", -7, 2.0, "", to_js(b"\\x02"), 3),
            sql.exec(
                "INSERT INTO t (i, f, s, b, n) VALUES (?, ?, ?, ?, ?)",
                2**53 - 1, 0.25, "x", Uint8Array.new(to_js([3, 4])), "n",
            ),
        ]
        return [[c.rowsRead, c.rowsWritten] for c in cursors]

    async def read(self):
        sql = self.ctx.storage.sql
        query = "SELECT id, i, f, s, b, n FROM t ORDER BY id"
        rows = sql.exec(query).toArray()
        cursor = sql.exec(query)
        first = cursor.next()
        rest = [row for row in cursor]
        done = cursor.next()
        raw = sql.exec(query).raw()
        raw_rows = list(raw)
        return {
            "sql": repr(sql),
            "cursor": repr(cursor),
            "raw_repr": repr(raw),
            "columns": sql.exec(query).columnNames,
            "rows": [{k: bytes(v) if k == "b" else v for k, v in row.items()} for row in rows],
            "row_type": type(rows[0]).__name__,
            "blob_type": type(rows[0]["b"]).__name__,
            "first": [first.done, first.value.id, type(first).__name__],
            "rest": [row.id for row in rest],
            "done": done,
            "rows_read": cursor.rowsRead,
            "raw": [[bytes(v) if isinstance(v, memoryview) else v for v in row] for row in raw_rows],
            "raw_to_array": [row[0] for row in sql.exec(query).raw().toArray()],
            "one": sql.exec("SELECT s FROM t WHERE id = ?", 1).one(),
            "typeof": sql.exec("SELECT typeof(?) AS a, typeof(?) AS b, typeof(?) AS c", 5, 1.5, None).one(),
            "size": sql.databaseSize,
        }

    async def one_of_many(self):
        return self.ctx.storage.sql.exec("SELECT id FROM t").one()

    async def syntax_error(self):
        self.ctx.storage.sql.exec("SELEC 1")

    async def fetch(self):
        return None
"""


async def test_sql_exec_binds_python_values_as_production_does(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, SQL_WORKER) as (rt, stub):
        await stub.schema()
        assert await stub.insert() == [[0, 1], [0, 1], [0, 1]]
        assert rt.dump_storage(stub)["sql"] == {
            "t": [
                {"id": 1, "i": 5, "f": 1.5, "s": "text", "b": b"\x01", "n": None},
                {"id": 2, "i": -7, "f": 2.0, "s": "", "b": b"\x02", "n": 3.0},
                {"id": 3, "i": 2**53 - 1, "f": 0.25, "s": "x", "b": b"\x03\x04", "n": "n"},
            ]
        }


async def test_sql_results_and_the_cursor_as_python_sees_them(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, SQL_WORKER) as (_rt, stub):
        await stub.schema()
        await stub.insert()
        seen = await stub.read()
        size = seen.pop("size")
        assert isinstance(size, int)
        assert size > 0
        assert size % 4096 == 0
        assert seen == {
            # sql, the cursor and the raw iterator are JavaScript objects the SDK wraps again.
            "sql": "<SqlStorage (wrapped by the Python Workers SDK)>",
            "cursor": "<Cursor (wrapped by the Python Workers SDK)>",
            "raw_repr": "<RawIterator (wrapped by the Python Workers SDK)>",
            "columns": ["id", "i", "f", "s", "b", "n"],
            "rows": [
                {"id": 1, "i": 5, "f": 1.5, "s": "text", "b": b"\x01", "n": None},
                # A REAL 2.0 is the JavaScript number 2: an int in Python, as the 3 bound to n.
                {"id": 2, "i": -7, "f": 2, "s": "", "b": b"\x02", "n": 3},
                {"id": 3, "i": 2**53 - 1, "f": 0.25, "s": "x", "b": b"\x03\x04", "n": "n"},
            ],
            "row_type": "JsDict",
            "blob_type": "memoryview",
            "first": [False, 1, "JsDict"],
            "rest": [2, 3],
            "done": {"done": True, "value": None},
            "rows_read": 3,
            "raw": [
                [1, 5, 1.5, "text", b"\x01", None],
                [2, -7, 2, "", b"\x02", 3],
                [3, 2**53 - 1, 0.25, "x", b"\x03\x04", "n"],
            ],
            "raw_to_array": [1, 2, 3],
            "one": {"s": "text"},
            # JavaScript has one number type: every number is bound as a double.
            "typeof": {"a": "real", "b": "real", "c": "null"},
        }


async def test_sql_errors_reach_python_as_javascript_errors(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, SQL_WORKER) as (_rt, stub):
        await stub.schema()
        await stub.insert()
        with pytest.raises(
            RemoteError, match=r"^Expected exactly one result from SQL query, but got multiple results\.$"
        ):
            await stub.one_of_many()
        with pytest.raises(RemoteError, match=r"near \"SELEC\": syntax error"):
            await stub.syntax_error()


# -- the synchronous KV API ------------------------------------------------------------------

SYNC_KV_WORKER = """
from workers import DurableObject


class Store(DurableObject):
    async def sync_kv(self):
        kv = self.ctx.storage.kv
        kv.put("a", {"x": 1})
        kv.put("b", [1, None])
        kv.put("c", b"\\x05")
        got = kv.get("a")
        listed = kv.list()
        try:
            len(listed)
        except TypeError as exc:
            no_len = str(exc)
        entries = [[key, bytes(value) if key == "c" else value] for key, value in listed]
        return {
            "kv": repr(kv),
            "get": [type(got).__name__, got.x],
            "missing": kv.get("missing"),
            "list": repr(listed),
            "no_len": no_len,
            "entries": entries,
            "prefix": [key for key, _ in kv.list(prefix="b")],
            "reverse": [key for key, _ in kv.list(reverse=True, limit=2)],
            "delete": [kv.delete("a"), kv.delete("a")],
        }

    async def fetch(self):
        return None
"""


async def test_sync_kv_get_put_delete_and_list(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, SYNC_KV_WORKER) as (rt, stub):
        assert await stub.sync_kv() == {
            "kv": "<SyncKvStorage (wrapped by the Python Workers SDK)>",
            "get": ["JsDict", 1],
            "missing": None,
            # kv.list() is an iterator (workerd's ListIterator), not an array.
            "list": "<ListIterator (wrapped by the Python Workers SDK)>",
            "no_len": "'ListIterator' object has no len()",
            "entries": [["a", {"x": 1}], ["b", [1, None]], ["c", b"\x05"]],
            "prefix": ["b"],
            "reverse": ["c", "b"],
            "delete": [True, False],
        }
        assert rt.dump_storage(stub)["kv"] == {"b": [1, None], "c": b"\x05"}


# -- alarms ------------------------------------------------------------------------------------

ALARM_WORKER = """
import datetime

from js import Date
from workers import DurableObject


class Store(DurableObject):
    async def arm(self, ms):
        await self.ctx.storage.setAlarm(ms)
        return await self.ctx.storage.getAlarm()

    async def arm_in(self, seconds):
        # datetime.now() is the runtime clock; the SDK sends a datetime as a Date.
        await self.ctx.storage.setAlarm(datetime.datetime.now() + datetime.timedelta(seconds=seconds))
        return await self.ctx.storage.getAlarm()

    async def arm_at_utc(self, second):
        when = datetime.datetime(2026, 1, 1, 0, 0, second, tzinfo=datetime.timezone.utc)
        await self.ctx.storage.setAlarm(when)
        return await self.ctx.storage.getAlarm()

    async def disarm(self):
        return [await self.ctx.storage.deleteAlarm(), await self.ctx.storage.getAlarm()]

    async def alarm(self, alarm_info):
        runs = await self.ctx.storage.get("runs") or []
        runs.append([alarm_info.retryCount, alarm_info.isRetry, Date.now(), await self.ctx.storage.getAlarm()])
        await self.ctx.storage.put("runs", runs)
        if len(runs) < 3:
            raise RuntimeError("try again")


class Plain(DurableObject):
    async def arm(self, ms):
        await self.ctx.storage.setAlarm(ms)

    async def alarm(self):
        self.ctx.storage.kv.put("fired", Date.now())
"""


async def test_set_get_and_delete_alarm(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, ALARM_WORKER) as (rt, stub):
        assert await stub.arm(EPOCH_MS + 60_000) == EPOCH_MS + 60_000
        assert await stub.arm_in(5) == EPOCH_MS + 5_000
        assert await stub.arm_at_utc(30) == EPOCH_MS + 30_000
        assert rt.dump_storage(stub)["alarm"] == EPOCH_MS + 30_000
        assert await stub.disarm() == [None, None]
        await trio.sleep(60)
        assert rt.dump_storage(stub) == {"kv": {}, "sql": {}, "alarm": None}


async def test_alarm_info_on_the_runtime_clock_with_retries(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, ALARM_WORKER) as (rt, stub):
        await stub.arm(EPOCH_MS + 10_000)
        await trio.sleep(9.999)
        assert "runs" not in rt.dump_storage(stub)["kv"]
        await trio.sleep(120)
        first, second, third = rt.dump_storage(stub)["kv"]["runs"]
        # While alarm() runs, getAlarm() is None (the stored time is hidden).
        assert first == [0, False, EPOCH_MS + 10_000, None]
        assert second[:2] == [1, True]
        assert third[:2] == [2, True]
        assert second[3] is None
        assert third[3] is None
        # Retries back off 2 s, then 4 s, each with up to 25 % jitter.
        assert 2_000 <= second[2] - first[2] <= 2_500
        assert 4_000 <= third[2] - second[2] <= 5_000
        assert rt.dump_storage(stub)["alarm"] is None


async def test_alarm_without_parameters(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, ALARM_WORKER) as mod:
        async with open_runtime(objects={"P": mod.Plain}, config=config()) as rt:
            stub = rt.env.P.getByName("p")
            await stub.arm(EPOCH_MS + 1_500)
            await trio.sleep(2)
            assert rt.dump_storage(stub) == {"kv": {"fired": EPOCH_MS + 1_500}, "sql": {}, "alarm": None}


# -- D1 ----------------------------------------------------------------------------------------

D1_WORKER = """
from pyodide.ffi import to_js
from workers import DurableObject


class Thing:
    pass


class Store(DurableObject):
    async def schema(self):
        db = self.env.DB
        created = await db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT, n REAL, b BLOB)")
        return [repr(db), type(created).__name__, created]

    async def queries(self):
        db = self.env.DB
        insert = db.prepare("INSERT INTO notes (text, n, b) VALUES (?, ?, ?) RETURNING id")
        first = await insert.bind("one", 1.5, b"\\x01").first()
        second_id = await insert.bind("two", None, to_js(b"\\x02\\x03")).first("id")
        everything = await db.prepare("SELECT * FROM notes ORDER BY id").all()
        update = await db.prepare("UPDATE notes SET n = ? WHERE id = ?").bind(2, 1).run()
        meta = everything.meta
        return {
            "statement": repr(insert),
            "bound": repr(insert.bind("x", 0, None)),
            "first": [type(first).__name__, first],
            "first_column": second_id,
            "no_row": await db.prepare("SELECT * FROM notes WHERE id = 99").first(),
            "all_type": type(everything).__name__,
            "all": [everything.success, everything.results],
            "row_types": [type(row).__name__ for row in everything.results],
            "meta": [type(meta).__name__, meta.rows_read, meta.changes, meta.last_row_id, meta.changed_db],
            "run": [update.success, update.results, update.meta.changes, update.meta.rows_written],
            "raw": await db.prepare("SELECT id, text FROM notes ORDER BY id").raw(),
            "raw_names": await db.prepare("SELECT id, text FROM notes ORDER BY id").raw(columnNames=True),
            "bools_and_lists": await db.prepare("SELECT ? AS t, ? AS f, ? AS b").bind(True, False, [7, 8]).first(),
        }

    async def batch(self):
        db = self.env.DB
        results = await db.batch(
            [
                db.prepare("INSERT INTO notes (text) VALUES (?)").bind("three"),
                db.prepare("SELECT count(*) AS c FROM notes"),
            ]
        )
        return [[type(r).__name__, r.success, r.results, r.meta.changes] for r in results]

    async def sessions(self):
        db = self.env.DB
        session = db.withSession("first-primary")
        before = session.getBookmark()
        count = await session.prepare("SELECT count(*) AS c FROM notes").first("c")
        bookmark = session.getBookmark()
        resumed = db.withSession(bookmark)
        return [repr(session), before, count, bookmark, resumed.getBookmark()]

    async def bind_object(self):
        await self.env.DB.prepare("INSERT INTO notes (text) VALUES (?)").bind(Thing()).run()

    async def bind_set(self):
        await self.env.DB.prepare("INSERT INTO notes (text) VALUES (?)").bind({1, 2}).run()

    async def bind_dict(self):
        await self.env.DB.prepare("INSERT INTO notes (text) VALUES (?)").bind({"a": 1}).run()

    async def bind_tuple(self):
        await self.env.DB.prepare("INSERT INTO notes (text) VALUES (?)").bind((1, 2)).run()

    async def fetch(self):
        return None
"""


async def test_d1_results_are_converted_dicts_through_the_sdk(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, D1_WORKER, d1={"DB": "main"}) as (_rt, stub):
        assert await stub.schema() == [
            "<D1Database (wrapped by the Python Workers SDK)>",
            "JsDict",
            {"count": 1, "duration": 0},
        ]
        assert await stub.queries() == {
            "statement": "<D1PreparedStatement (wrapped by the Python Workers SDK)>",
            "bound": "<D1PreparedStatement (wrapped by the Python Workers SDK)>",
            "first": ["JsDict", {"id": 1}],
            "first_column": 2,
            "no_row": None,
            "all_type": "JsDict",
            # D1 returns a BLOB as an array of byte values; a SQL NULL is None.
            "all": [
                True,
                [
                    {"id": 1, "text": "one", "n": 1.5, "b": [1]},
                    {"id": 2, "text": "two", "n": None, "b": [2, 3]},
                ],
            ],
            "row_types": ["JsDict", "JsDict"],
            "meta": ["JsDict", 2, 0, 2, False],
            "run": [True, [], 1, 1],
            "raw": [[1, "one"], [2, "two"]],
            "raw_names": [["id", "text"], [1, "one"], [2, "two"]],
            # D1 binds a bool as 1 / 0 and an array of byte values as a BLOB.
            "bools_and_lists": {"t": 1, "f": 0, "b": [7, 8]},
        }


async def test_d1_batch_and_sessions(tmp_path, autojump_clock) -> None:
    async with running(tmp_path, D1_WORKER, d1={"DB": "main"}) as (rt, stub):
        await stub.schema()
        assert await stub.batch() == [["JsDict", True, [], 1], ["JsDict", True, [{"c": 1}], 0]]
        session, before, count, bookmark, resumed = await stub.sessions()
        assert session == "<D1DatabaseSession (wrapped by the Python Workers SDK)>"
        assert before is None  # no query returned yet in a "first-primary" session
        assert count == 1
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{16}", bookmark)
        assert resumed == bookmark
        assert (await rt.env.DB.prepare("SELECT text FROM notes").all()).results == [{"text": "three"}]


# -- refusals ----------------------------------------------------------------------------------

REFUSALS_WORKER = """
from workers import DurableObject


class Thing:
    pass


class Store(DurableObject):
    async def setup(self):
        await self.ctx.storage.put({"keep": "me", "n": 1})
        self.ctx.storage.sql.exec("CREATE TABLE t (v)")
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", "kept")

    async def contents(self):
        kv = await self.ctx.storage.list()
        return [kv, self.ctx.storage.sql.exec("SELECT v FROM t").toArray()]

    async def put_object(self):
        await self.ctx.storage.put("n", 2)
        await self.ctx.storage.put("x", Thing())

    async def put_entries_with_object(self):
        await self.ctx.storage.put({"a": 1, "b": {"inner": Thing()}})

    async def put_function(self):
        await self.ctx.storage.put("f", len)

    async def kv_put_object(self):
        self.ctx.storage.kv.put("x", Thing())

    async def sql_object(self):
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", Thing())

    async def sql_list(self):
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", [1, 2])

    async def sql_set(self):
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", {1, 2})

    async def sql_dict(self):
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", {"a": 1})

    async def sql_tuple(self):
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (?)", (1, 2))

    async def put_tuple(self):
        await self.ctx.storage.put("t", (1, 2))

    async def fetch(self):
        return None
"""

PYPROXY = (
    r"reaches JavaScript as a PyProxy \(Pyodide converts only str, int, float, bool and None by itself\)"
)
CLONE = r"structured clone cannot copy it \(DataCloneError: could not be cloned\)"
TO_OBJECT = (
    r"Convert it first: to_js\(value, dict_converter=js\.Object\.fromEntries\) "
    r"\(from pyodide\.ffi import to_js; import js\)"
)
SQL_FIX = r"Bind a str, a number, None or bytes \(a BLOB\); json\.dumps\(value\) to store structured data"


@pytest.mark.parametrize(
    ("method", "line", "message"),
    [
        (
            "put_object",
            'storage.put("x", Thing())',
            rf"^storage\.put\(\): the value, a Python Thing, {PYPROXY}; {CLONE}\. {TO_OBJECT} \[",
        ),
        (
            "put_entries_with_object",
            'put({"a": 1, "b": {"inner": Thing()}})',
            rf"^storage\.put\(\): the entries, a Python Thing, {PYPROXY}; {CLONE}\. {TO_OBJECT} \[",
        ),
        (
            "put_function",
            'put("f", len)',
            rf"^storage\.put\(\): the value, a Python builtin_function_or_method, {PYPROXY}; {CLONE}\. "
            rf"{TO_OBJECT} \[",
        ),
        (
            "kv_put_object",
            'kv.put("x", Thing())',
            rf"^kv\.put\(\): the value, a Python Thing, {PYPROXY}; {CLONE}\. {TO_OBJECT} \[",
        ),
        (
            "sql_object",
            '(?)", Thing())',
            rf"^sql\.exec\(\): binding 1, a Python Thing, {PYPROXY}; workerd would bind its text "
            rf"\(str\(value\)\) instead of the value\. {SQL_FIX} \[",
        ),
        (
            "sql_list",
            "[1, 2])",
            r"^sql\.exec\(\): binding 1 is an Array \(the SDK's conversion of a Python list\); workerd "
            rf"would bind its text \(its elements joined by commas\) instead of the value\. {SQL_FIX} \[",
        ),
        (
            "sql_set",
            "{1, 2})",
            r"^sql\.exec\(\): binding 1 is a Set \(the SDK's conversion of a Python set\); workerd "
            rf"would bind its text \('\[object Set\]'\) instead of the value\. {SQL_FIX} \[",
        ),
        (
            "sql_dict",
            '{"a": 1})',
            r"^sql\.exec\(\): binding 1 is an Object \(the SDK's conversion of a Python dict\); workerd "
            rf"would bind its text \('\[object Object\]'\) instead of the value\. {SQL_FIX} \[",
        ),
    ],
)
async def test_values_production_would_mishandle_are_refused_and_stored_data_stays(
    tmp_path, autojump_clock, method, line, message
) -> None:
    async with running(tmp_path, REFUSALS_WORKER) as (rt, stub):
        await stub.setup()
        before = rt.dump_storage(stub)
        with pytest.raises(RemoteError, match=message) as info:
            await getattr(stub, method)()
        assert info.value.name == "TypeError"  # a JavaScript TypeError inside the object
        assert str(info.value).endswith(where(REFUSALS_WORKER, line, method))
        after = rt.dump_storage(stub)
        if method == "put_object":
            # The awaited put before the refused one was acknowledged: it stays.
            before["kv"]["n"] = 2
        assert after == before
        # The object was not reset: it still serves, with its data.
        assert await stub.contents() == [before["kv"], [{"v": "kept"}]]


@pytest.mark.parametrize("method", ["sql_tuple", "put_tuple"])
async def test_the_sdk_refuses_tuples_before_javascript_sees_them(tmp_path, autojump_clock, method) -> None:
    async with running(tmp_path, REFUSALS_WORKER) as (rt, stub):
        await stub.setup()
        before = rt.dump_storage(stub)
        # The SDK's own TypeError, raised in Python before any JavaScript call.
        with pytest.raises(TypeError, match=r"^<class 'tuple'> cannot be sent over RPC\.$"):
            await getattr(stub, method)()
        assert rt.dump_storage(stub) == before


@pytest.mark.parametrize(
    ("method", "error", "message"),
    [
        (
            "bind_object",
            RemoteError,
            rf"^bind\(\): value 1, a Python Thing, {PYPROXY}; D1 cannot bind it \(D1_TYPE_ERROR\)\. "
            r"Bind a str, a number, a bool, None, or to_js\(bytes\) \[",
        ),
        # A set arrives as a JavaScript Set, which D1's bind() refuses as it does any object.
        ("bind_set", RemoteError, r"^D1_TYPE_ERROR: Type 'object' not supported for value '\[object Set\]'$"),
        (
            "bind_dict",
            RemoteError,
            r"^D1_TYPE_ERROR: Type 'object' not supported for value '\[object Object\]'$",
        ),
        ("bind_tuple", TypeError, r"^<class 'tuple'> cannot be sent over RPC\.$"),  # the SDK's, in Python
    ],
)
async def test_d1_bind_refuses_what_production_refuses(
    tmp_path, autojump_clock, method, error, message
) -> None:
    async with running(tmp_path, D1_WORKER, d1={"DB": "main"}) as (rt, stub):
        await stub.schema()
        await stub.batch()
        with pytest.raises(error, match=message) as info:
            await getattr(stub, method)()
        if method == "bind_object":
            assert str(info.value).endswith(where(D1_WORKER, ".bind(Thing())", method))
        assert (await rt.env.DB.prepare("SELECT text FROM notes").all()).results == [{"text": "three"}]
