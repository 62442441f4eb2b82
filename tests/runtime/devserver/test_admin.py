"""Admin routes: listing, one object, storage dump, hibernate/evict, and their errors."""

from __future__ import annotations

import pytest
import trio

from runtime.devserver._admin import jsonable

from .helpers import client, make_project, running

ENTRY_EXTRA = """

class Store(DurableObject):
    async def fill(self):
        await self.ctx.storage.put("text", "v")
        await self.ctx.storage.put("raw", b"\\x00\\x01")
        await self.ctx.storage.put("nan", float("nan"))
        self.ctx.storage.sql.exec("CREATE TABLE t (a INTEGER, b TEXT)")
        self.ctx.storage.sql.exec("INSERT INTO t VALUES (1, 'x')")
        await self.ctx.storage.setAlarm(4102444800000)

    async def alarm(self, info=None):
        pass
"""


@pytest.fixture
def project(tmp_path):
    from .helpers import ENTRY, TOML

    toml = TOML.replace('new_sqlite_classes = ["Echo"]', 'new_sqlite_classes = ["Echo", "Store"]')
    toml += '\n[[durable_objects.bindings]]\nname = "STORE"\nclass_name = "Store"\n'
    return make_project(tmp_path, ENTRY + ENTRY_EXTRA, toml)


async def test_admin_routes(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server, client(server) as c:
            root = (await c.request("GET", "/__shardsim")).json()
            assert root["durable_objects"] == {
                "ECHO": {"class": "Echo", "backend": "sqlite"},
                "STORE": {"class": "Store", "backend": "sqlite"},
            }
            assert root["not_emulated"] == {"CACHE": "KV namespace"}
            assert root["secrets"] == ["SECRET"]

            assert (await c.request("GET", "/__shardsim/objects/STORE")).json()["objects"] == []
            await server.runtime.env.STORE.getByName("a").fill()

            [obj] = (await c.request("GET", "/__shardsim/objects/STORE")).json()["objects"]
            assert obj["alarm"] == "2100-01-01T00:00:00Z"
            assert obj["state"] in ("active", "idle")
            assert obj["storage_bytes"] > 0

            dump = (await c.request("GET", f"/__shardsim/objects/STORE/{obj['id']}/storage")).json()
            assert dump["kv"] == {"text": "v", "raw": {"$bytes": "AAE="}, "nan": {"$repr": "nan"}}
            assert dump["sql"] == {"t": [{"a": 1, "b": "x"}]}
            assert dump["alarm"] == 4102444800000

            evicted = (await c.request("POST", "/__shardsim/objects/STORE/a/evict")).json()
            assert evicted["state"] in ("inactive", "hibernated")
            assert evicted["name"] == "a"
            hibernated = (await c.request("POST", f"/__shardsim/objects/STORE/{obj['id']}/hibernate")).json()
            assert hibernated["activations"] == 1


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/__shardsim/objects/NOPE", 404),
        ("GET", "/__shardsim/other", 404),
        ("GET", "/__shardsim/objects/STORE/a/explode", 404),
        ("POST", "/__shardsim/objects", 405),
        ("GET", "/__shardsim/objects/STORE/a/evict", 405),
        ("POST", "/__shardsim/objects/STORE/a/storage", 405),
    ],
)
async def test_admin_errors(project, method, path, status) -> None:
    with trio.fail_after(10):
        async with running(project) as server, client(server) as c:
            reply = await c.request(method, path)
            assert reply.status == status
            assert "error" in reply.json()


def test_jsonable() -> None:
    import datetime as dt

    assert jsonable({1: (b"x", float("inf"), dt.date(2026, 1, 2), {3})}) == {
        "1": [{"$bytes": "eA=="}, {"$repr": "inf"}, "2026-01-02", [3]]
    }
