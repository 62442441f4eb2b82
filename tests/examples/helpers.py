"""Real websocket subscribers for the examples' end-to-end tests, and the admin routes they poke.

A :class:`Subscriber` checks, as each binary frame arrives, that its tick is
above the previous frame's on that connection; every test therefore checks
"snapshots arrive in tick order" for every frame it reads. Nothing here
sleeps to wait for something: the tests wait for frames, text frames or a
close, and poll the admin routes only for the runtime's own counters
(there is no event to wait on for those).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from runtime.devserver import DevServer, load_config
from runtime.devserver._worker import load_worker
from runtime.shard_objects import STATE_KEY, load_secret, make_token
from shards import ShardRecord, decode_frame, decode_shard_state
from tests.runtime.devserver.helpers import Client

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def token(example: Path, user: str, *, admin: bool = False) -> str:
    """A token signed with the example's own secret (its ``.dev.vars``), as ``shardsim token`` makes it."""
    secret = load_secret(example, environ={})
    assert secret is not None, f"{example} has no SHARDSIM_SECRET in .dev.vars"
    return make_token(secret, user, admin=admin, now_ms=time.time() * 1000)


def refusal(seq: int, code: str, message: str) -> dict[str, Any]:
    """The error text frame a refused input with ``client_seq`` ``seq`` gets."""
    return {"error": {"code": code, "message": message}, "client_seq": seq}


@contextmanager
def example_module(example: Path) -> Iterator[ModuleType]:
    """The example's Worker module, loaded as the dev server loads it (for pure-model tests)."""
    worker = load_worker(load_config(example))
    try:
        yield worker.module
    finally:
        worker.unload()


class Subscriber:
    """One subscriber's connection: what it received, in order, with the tick order checked."""

    def __init__(self, ws: ClientConnection, sid: str) -> None:
        self.ws = ws
        self.sid = sid
        #: Ticks of the binary frames received, in order.
        self.ticks: list[int] = []
        #: Decoded snapshots, parallel to ``ticks``.
        self.snapshots: list[Any] = []
        #: Decoded text frames (acks and errors), in order.
        self.texts: list[dict[str, Any]] = []
        self._texts_read = 0

    @property
    def last(self) -> tuple[int, Any]:
        """The last frame received: ``(tick, snapshot)``."""
        return self.ticks[-1], self.snapshots[-1]

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The error text frames received so far."""
        return [t for t in self.texts if "error" in t]

    async def _receive(self) -> Literal["frame", "text"]:
        message = await self.ws.recv()
        if isinstance(message, bytes):
            tick, snapshot = decode_frame(message, "json")
            if self.ticks:
                assert tick > self.ticks[-1], f"{self.sid}: tick {tick} arrived after tick {self.ticks[-1]}"
            self.ticks.append(tick)
            self.snapshots.append(snapshot)
            return "frame"
        body = json.loads(message)
        assert isinstance(body, dict), body
        assert len(set(body) - {"client_seq"}) == 1, body  # exactly one of "ack" and "error"
        self.texts.append(body)
        return "text"

    async def frame(self, until: Callable[[int, Any], bool] | None = None) -> tuple[int, Any]:
        """Receive until a binary frame (satisfying ``until(tick, snapshot)``, if given) arrives."""
        while True:
            if await self._receive() == "frame" and (until is None or until(*self.last)):
                return self.last

    async def text(self) -> dict[str, Any]:
        """The next text frame not returned yet, receiving until it arrives (frames are recorded on the way)."""
        while len(self.texts) == self._texts_read:
            await self._receive()
        self._texts_read += 1
        return self.texts[self._texts_read - 1]

    async def send(self, input: Any, client_seq: int | None = None) -> None:
        """Send one input in the wire format."""
        message: dict[str, Any] = {"input": input}
        if client_seq is not None:
            message["client_seq"] = client_seq
        await self.ws.send(json.dumps(message))

    async def send_raw(self, message: str | bytes) -> None:
        await self.ws.send(message)

    async def closed(self) -> tuple[int, str]:
        """Receive until the server closes the connection; its close code and reason."""
        try:
            while True:
                await self._receive()
        except ConnectionClosed as exc:
            close = exc.rcvd
        assert close is not None, "the connection ended without a close frame"
        return close.code, close.reason


@asynccontextmanager
async def subscribe(
    server: DevServer,
    example: Path,
    shard: str,
    sid: str,
    *,
    user: str | None = None,
    admin: bool = False,
    via: Literal["header", "subprotocol"] = "header",
) -> AsyncIterator[Subscriber]:
    """Connect to ``?shard=<shard>&sid=<sid>`` with a token for ``user`` (default: ``sid``)."""
    bearer = token(example, user or sid, admin=admin)
    query = urllib.parse.urlencode({"shard": shard, "sid": sid})
    url = f"ws://127.0.0.1:{server.port}/?{query}"
    protocol: Subprotocol | None = None
    if via == "header":
        conn = connect(url, additional_headers={"Authorization": f"Bearer {bearer}"})
    else:
        protocol = Subprotocol("bearer." + urllib.parse.quote(bearer, safe=""))
        conn = connect(url, subprotocols=[protocol])
    async with conn as ws:
        assert ws.subprotocol == protocol  # a bearer subprotocol is echoed, as browsers require
        yield Subscriber(ws, sid)


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
