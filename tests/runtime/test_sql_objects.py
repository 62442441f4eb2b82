"""ctx.storage.sql end to end: objects using SQL through open_runtime (gates, crashes, hibernation, restarts)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from runtime import DurableObject, ObjectResetError, RuntimeConfig, open_runtime
from shards import StorageError

from .conftest import config


class Ledger(DurableObject):
    def __init__(self, ctx, env) -> None:
        super().__init__(ctx, env)
        ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, who TEXT NOT NULL, amount INTEGER)"
        )

    async def add(self, who: str, amount: int) -> int:
        cursor = self.ctx.storage.sql.exec(
            "INSERT INTO entries (who, amount) VALUES (?, ?) RETURNING id", who, amount
        )
        return int(cursor.one()["id"])

    async def add_then_wait(self, who: str, amount: int) -> None:
        self.ctx.storage.sql.exec("INSERT INTO entries (who, amount) VALUES (?, ?)", who, amount)
        await trio.sleep(5)  # not storage: the write is still unflushed while we wait

    async def total(self, who: str) -> int:
        row = self.ctx.storage.sql.exec(
            "SELECT coalesce(sum(amount), 0) AS total FROM entries WHERE who = ?", who
        ).one()
        return int(row["total"])

    async def rows(self) -> list[dict[str, Any]]:
        return self.ctx.storage.sql.exec("SELECT who, amount FROM entries ORDER BY id").toArray()

    async def transfer(self, source: str, target: str, amount: int) -> None:
        sql = self.ctx.storage.sql

        def move() -> None:
            sql.exec("INSERT INTO entries (who, amount) VALUES (?, ?)", source, -amount)
            if (
                self.ctx.storage.sql.exec(
                    "SELECT sum(amount) AS total FROM entries WHERE who = ?", source
                ).one()["total"]
                < 0
            ):
                raise ValueError("insufficient funds")
            sql.exec("INSERT INTO entries (who, amount) VALUES (?, ?)", target, amount)

        self.ctx.storage.transactionSync(move)

    async def bad(self) -> None:
        self.ctx.storage.sql.exec("INSERT INTO entries (who, amount) VALUES ('x', 1); BEGIN")

    async def kv_and_sql(self) -> list[Any]:
        self.ctx.storage.put("k", 1)
        names = [r["name"] for r in self.ctx.storage.sql.exec("SELECT name FROM sqlite_master")]
        try:
            self.ctx.storage.sql.exec("SELECT * FROM _cf_KV")
        except StorageError as exc:
            return [names, str(exc)]
        return [names, None]  # pragma: no cover


async def test_sql_round_trip_and_reads_do_not_commit(autojump_clock) -> None:
    async with open_runtime(objects={"LEDGER": Ledger}, config=config()) as rt:
        stub = rt.env.LEDGER.getByName("a")
        assert await stub.add("ann", 5) == 1
        assert await stub.add("ann", 7) == 2
        before = rt.statistics().commits
        assert await stub.total("ann") == 12
        assert rt.statistics().commits == before  # a read holds no output and commits nothing


async def test_output_gate_holds_the_reply_until_the_sql_write_is_durable(autojump_clock) -> None:
    """Gotchas 5 and 6: the reply to a call that wrote with sql.exec follows the commit."""
    async with open_runtime(objects={"LEDGER": Ledger}, config=config()) as rt:
        stub = rt.env.LEDGER.getByName("a")
        await stub.total("ann")
        before = rt.statistics().commits
        await stub.add("ann", 1)
        assert rt.statistics().commits == before + 1
        assert rt.statistics().committed_writes >= 1


async def test_crash_loses_only_the_unflushed_sql_write(autojump_clock) -> None:
    async with open_runtime(objects={"LEDGER": Ledger}, config=config()) as rt:
        stub = rt.env.LEDGER.getByName("a")
        await stub.add("ann", 5)  # acknowledged: durable
        failure: list[BaseException] = []

        async def call() -> None:
            try:
                await stub.add_then_wait("ann", 100)
            except ObjectResetError as exc:
                failure.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await trio.sleep(1)
            await rt.crash(stub)
        assert failure
        assert await rt.env.LEDGER.getByName("a").total("ann") == 5


async def test_sql_data_survives_hibernation_and_a_restart(tmp_path, autojump_clock) -> None:
    async with open_runtime(objects={"LEDGER": Ledger}, state_dir=tmp_path, config=config()) as rt:
        stub = rt.env.LEDGER.getByName("a")
        await stub.add("ann", 3)
        await rt.hibernate(stub)
        assert rt.state_of(stub) == "hibernated"
        assert await rt.env.LEDGER.getByName("a").add("bob", 4) == 2
        await trio.sleep(11)  # hibernates on its own too
        assert rt.state_of(stub) == "hibernated"
    async with open_runtime(objects={"LEDGER": Ledger}, state_dir=tmp_path, config=config()) as rt:
        assert await rt.env.LEDGER.getByName("a").rows() == [
            {"who": "ann", "amount": 3},
            {"who": "bob", "amount": 4},
        ]


async def test_transaction_sync_in_an_object(autojump_clock) -> None:
    async with open_runtime(objects={"LEDGER": Ledger}, config=config()) as rt:
        stub = rt.env.LEDGER.getByName("a")
        await stub.add("ann", 10)
        await stub.transfer("ann", "bob", 4)
        with pytest.raises(ValueError, match=r"^insufficient funds$"):
            await stub.transfer("ann", "bob", 100)
        assert await stub.total("ann") == 6
        assert await stub.total("bob") == 4


async def test_refused_sql_reaches_the_caller_and_writes_nothing(autojump_clock) -> None:
    async with open_runtime(objects={"LEDGER": Ledger}, config=config()) as rt:
        stub = rt.env.LEDGER.getByName("a")
        with pytest.raises(StorageError, match=r"^To execute a transaction, please use"):
            await stub.bad()
        assert await stub.rows() == []


async def test_kv_data_is_listed_but_not_readable_through_sql(autojump_clock) -> None:
    async with open_runtime(objects={"LEDGER": Ledger}, config=config()) as rt:
        names, error = await rt.env.LEDGER.getByName("a").kv_and_sql()
        assert "_cf_KV" in names
        assert "entries" in names
        assert error == "access to _cf_KV.key is prohibited: SQLITE_AUTH"


async def test_sql_on_a_legacy_kv_class_is_refused(autojump_clock) -> None:
    class Legacy(DurableObject):
        async def use_sql(self) -> None:
            self.ctx.storage.sql.exec("SELECT 1")

    cfg: RuntimeConfig = config(legacy_kv_bindings=frozenset({"OLD"}))
    async with open_runtime(objects={"OLD": Legacy}, config=cfg) as rt:
        with pytest.raises(StorageError, match=r"only available on SQLite-backed Durable Objects"):
            await rt.env.OLD.getByName("x").use_sql()
