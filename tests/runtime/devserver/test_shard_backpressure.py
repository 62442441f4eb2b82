"""A shard's slow-subscriber policy sees a real socket's backlog through the dev server's transport."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import trio

from runtime.shard_objects import make_token
from tests.wsclient import handshake_request, read_response_head

from .helpers import SHARD_SECRET, make_shard_project, running

OBJECTS = """
class Blob(SimState):
    def __init__(self):
        self.n = 0

    def apply_input(self, subscriber_id, input, now):
        pass

    def tick(self, dt):
        self.n += 1

    def snapshot(self):
        return {"n": self.n, "blob": "x" * 50_000}


class Arena(ShardObject):
    sim = Blob
    config = ShardConfig(tick_rate_hz=50, persist_every_ticks=0)
    tick_strategy = "timer"
    backpressure = BackpressurePolicy(high_water_bytes=100_000, stuck_after=3600)

    async def stats(self):
        s = self.statistics()
        return {"sent": s.frames_sent, "skipped": s.frames_skipped, "subscribers": s.subscribers}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_shard_project(tmp_path, OBJECTS, name="slow")


async def open_unread_subscriber(port: int, sid: str) -> trio.SocketStream:
    """Complete a websocket handshake by hand on a socket with a tiny receive buffer, then never read."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    token = make_token(SHARD_SECRET, sid, now_ms=time.time() * 1000)
    await stream.send_all(handshake_request(f"/?shard=m1&sid={sid}", token=token))
    head = await read_response_head(stream)  # the 101 and nothing after it
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream


async def test_frames_to_a_subscriber_that_does_not_read_are_skipped_not_queued(project: Path) -> None:
    with trio.fail_after(30):
        async with running(project) as server:
            stream = await open_unread_subscriber(server.port, "slow")
            arena = server.runtime.env.ARENA.getByName("m1")
            while (stats := await arena.stats())["skipped"] == 0:  # noqa: ASYNC110 - no event for counters
                await trio.sleep(0.05)
            # Skipped at the policy's mark: the connection stays open and far below the 16 MiB cut-off.
            assert stats["subscribers"] == 1
            assert server.statistics().websockets == 1
            await stream.aclose()
