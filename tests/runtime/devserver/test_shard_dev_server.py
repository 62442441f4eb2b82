"""The ?shard= endpoint through the real dev server, with real websocket clients."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio

from runtime.shard_objects import make_token
from tests.wsclient import bearer_subprotocol, closed, next_frame, open_shard

from .helpers import SCORE, SHARD_SECRET, make_shard_project, running

ARENA = """
class Arena(ShardObject):
    sim = Score
    config = ShardConfig(tick_rate_hz=20)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_shard_project(tmp_path, SCORE, ARENA, name="arena")


async def test_a_subscriber_connects_with_a_bearer_subprotocol_and_gets_frames(project: Path) -> None:
    token = make_token(SHARD_SECRET, "alice", now_ms=time.time() * 1000)
    with trio.fail_after(20):
        async with (
            running(project) as server,
            open_shard(server.port, "match-1", "alice", token, via="subprotocol") as ws,
        ):
            assert ws.subprotocol == bearer_subprotocol(token)  # echoed, as browsers require
            await ws.send(json.dumps({"input": 5, "client_seq": 1}))
            total = None
            while total != 5:
                _tick, snapshot = await next_frame(ws)
                total = snapshot["total"]


async def test_a_connection_without_a_token_is_closed_with_1008(project: Path) -> None:
    with trio.fail_after(20):
        async with running(project) as server, open_shard(server.port, "match-1", "mallory") as ws:
            code, _reason = await closed(ws.recv)
            assert code == 1008
