"""The ?shard= endpoint through the real dev server, with real websocket clients."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import pytest
import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import connect
from websockets.typing import Subprotocol

from runtime.shard_objects import make_token
from shards import decode_frame

from .helpers import running

WORKER = """
from workers import WorkerEntrypoint, Response
from runtime.shard_objects import ShardObject
from shards import ShardConfig, SimState


class Score(SimState):
    def __init__(self):
        self.total = 0

    def apply_input(self, subscriber_id, input, now):
        self.total += input

    def tick(self, dt):
        pass

    def snapshot(self):
        return {"total": self.total}


class Arena(ShardObject):
    sim = Score
    config = ShardConfig(tick_rate_hz=20)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("not a shard")
"""

CONFIG = """
name = "arena"
main = "worker.py"
compatibility_date = "2026-11-01"

[[durable_objects.bindings]]
name = "ARENA"
class_name = "Arena"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Arena"]

[vars]
SHARDSIM_SECRET = "dev-secret"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "wrangler.toml").write_text(CONFIG)
    return tmp_path


async def test_a_subscriber_connects_with_a_bearer_subprotocol_and_gets_frames(project: Path) -> None:
    token = make_token("dev-secret", "alice", now_ms=time.time() * 1000)
    protocol = Subprotocol("bearer." + urllib.parse.quote(token, safe=""))
    with trio.fail_after(20):
        async with running(project) as server:
            url = f"ws://127.0.0.1:{server.port}/?shard=match-1&sid=alice"
            async with connect(url, subprotocols=[protocol]) as ws:
                assert ws.subprotocol == protocol  # echoed, as browsers require
                await ws.send(json.dumps({"input": 5, "client_seq": 1}))
                total = None
                while total != 5:
                    message = await ws.recv()
                    if isinstance(message, bytes):
                        _tick, snapshot = decode_frame(message, "json")
                        total = snapshot["total"]


async def drain(ws) -> None:
    while True:
        await ws.recv()


async def test_a_connection_without_a_token_is_closed_with_1008(project: Path) -> None:
    with trio.fail_after(20):
        async with running(project) as server:
            url = f"ws://127.0.0.1:{server.port}/?shard=match-1&sid=mallory"
            async with connect(url) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await drain(ws)
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 1008
