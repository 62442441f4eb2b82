"""The examples' end-to-end tests: tokens, subscribers, the help page, and the admin routes they poke.

A subscriber (:class:`tests.wsclient.Subscriber`) checks, as each binary
frame arrives, that its tick is above the previous frame's on that
connection; every test therefore checks "snapshots arrive in tick order"
for every frame it reads. Nothing here sleeps to wait for something: the
tests wait for frames, text frames or a close, and poll the admin routes
only for the runtime's own counters (there is no event to wait on for
those).
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest
import trio

from runtime.devserver import DevServer, load_config
from runtime.devserver._worker import load_worker
from runtime.shard_objects import STATE_KEY, load_secret, make_token
from shards import ShardRecord, decode_shard_state
from tests import wsclient
from tests.runtime.devserver.helpers import Client, client, running
from tests.wsclient import Subscriber, Via

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def token(example: Path, user: str, *, admin: bool = False) -> str:
    """A token signed with the example's own secret (its ``.dev.vars``), as ``shardsim token`` makes it."""
    secret = load_secret(example, environ={})
    assert secret is not None, f"{example} has no SHARDSIM_SECRET in .dev.vars"
    return make_token(secret, user, admin=admin, now_ms=time.time() * 1000)


def refusal(seq: int, code: str, message: str) -> dict[str, Any]:
    """The error text frame a refused input with ``client_seq`` ``seq`` gets."""
    return {"error": {"code": code, "message": message}, "client_seq": seq}


def malformed(message: str) -> dict[str, Any]:
    """The error text frame a message the shard cannot read as an input gets (it has no ``client_seq``)."""
    return {"error": {"code": "malformed", "message": message}}


@contextmanager
def example_module(example: Path) -> Iterator[ModuleType]:
    """The example's Worker module, loaded as the dev server loads it (for pure-model tests)."""
    worker = load_worker(load_config(example))
    try:
        yield worker.module
    finally:
        worker.unload()


@asynccontextmanager
async def subscribe(
    server: DevServer,
    example: Path,
    shard: str,
    sid: str,
    *,
    user: str | None = None,
    admin: bool = False,
    via: Via = "header",
) -> AsyncIterator[Subscriber]:
    """Connect to ``?shard=<shard>&sid=<sid>`` with a token for ``user`` (default: ``sid``)."""
    bearer = token(example, user or sid, admin=admin)
    async with wsclient.subscribe(server.port, shard, sid, bearer, via=via) as subscriber:
        yield subscriber


def module_fixture(example: Path) -> Any:
    """A fixture of the example's Worker module (:func:`example_module`), named by the name it is given.

    ``arena = module_fixture(ARENA)`` in a test module defines the fixture ``arena``.
    """

    @pytest.fixture
    def fixture() -> Iterator[ModuleType]:
        with example_module(example) as module:
            yield module

    return fixture


async def check_help_page(example: Path, usage: bytes) -> None:
    """Plain HTTP (``GET /``) to a dev server serving ``example`` gets a page that shows ``usage``."""
    with trio.fail_after(10):
        async with running(example) as server, client(server) as c:
            reply = await c.request("GET", "/")
    assert reply.status == 200
    assert usage in reply.body


# --------------------------------------------------------------------------- admin routes


def object_path(binding: str, shard: str, action: str = "") -> str:
    path = f"/__shardsim/objects/{binding}/{urllib.parse.quote(shard, safe='')}"
    return f"{path}/{action}" if action else path


async def describe(admin: Client, binding: str, shard: str) -> dict[str, Any]:
    """``GET /__shardsim/objects/<binding>/<shard>``: state, sockets, alarm, activations."""
    reply = await admin.request("GET", object_path(binding, shard))
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


async def force(
    admin: Client, binding: str, shard: str, action: Literal["hibernate", "evict"]
) -> dict[str, Any]:
    """``POST .../hibernate`` or ``.../evict``; the object's description afterwards."""
    reply = await admin.request("POST", object_path(binding, shard, action))
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


async def stored_record(admin: Client, binding: str, shard: str) -> ShardRecord:
    """The shard's persisted record, read through the storage dump route."""
    reply = await admin.request("GET", object_path(binding, shard, "storage"))
    assert reply.status == 200, reply.body
    raw = reply.json()["kv"][STATE_KEY]["$bytes"]
    return decode_shard_state(base64.b64decode(raw))


async def wait_until(
    admin: Client, binding: str, shard: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll the object's description until ``predicate`` holds (the caller's fail_after bounds it).

    The runtime exposes no event for these counters (sockets closed, alarm
    removed), so this polls them, as ``tests.runtime.devserver.helpers.wait_for`` does.
    """
    while True:
        found = await describe(admin, binding, shard)
        if predicate(found):
            return found
        await trio.sleep(0.01)
