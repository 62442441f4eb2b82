"""Shared pieces of the shard object tests: sims, objects, an in-memory client."""

from __future__ import annotations

import json
from typing import Any

from runtime import Request
from runtime.shard_objects import HmacTokenResolver, ShardObject, handle_shard_upgrade, make_token
from runtime.sockets import Peer, attach
from shards import ShardConfig, SimState, decode_frame
from tests.runtime.conftest import EPOCH_MS
from tests.runtime.fakes import FakeTransport as BaseFakeTransport

SECRET = "test-secret"
RESOLVER = HmacTokenResolver(SECRET)


def token(user: str, *, admin: bool = False, ttl: float | None = None) -> str:
    return make_token(SECRET, user, admin=admin, ttl=ttl, now_ms=EPOCH_MS)


class Counter(SimState):
    """Sums integer inputs; counts its ticks."""

    def __init__(self) -> None:
        self.total = 0
        self.ticks = 0

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        self.total += input

    def tick(self, dt: float) -> None:
        self.ticks += 1

    def snapshot(self) -> Any:
        return {"total": self.total, "ticks": self.ticks}

    def authorize_input(self, subscriber_id, auth, input) -> bool:
        return type(input) is int


class Finite(Counter):
    """Finishes once the total reaches 10."""

    def is_finished(self) -> bool:
        return self.total >= 10


class Exploding(Counter):
    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        if input == 13:
            raise RuntimeError("unlucky")
        self.total += input


class AlarmShard(ShardObject):
    sim = Counter
    config = ShardConfig(tick_rate_hz=20, persist_every_ticks=10)


class TimerShard(ShardObject):
    sim = Counter
    config = ShardConfig(tick_rate_hz=20, persist_every_ticks=10)
    tick_strategy = "timer"


class EventShard(ShardObject):
    sim = Counter
    config = ShardConfig(tick_rate_hz=0)


class TinyShard(ShardObject):
    sim = Counter
    config = ShardConfig(tick_rate_hz=20, max_subscribers=1)


class FiniteShard(ShardObject):
    sim = Finite
    config = ShardConfig(tick_rate_hz=20)
    persist_every_ticks = 1


class ExplodingShard(ShardObject):
    sim = Exploding
    config = ShardConfig(tick_rate_hz=20)
    tick_strategy = "timer"


OBJECTS: dict[str, type[ShardObject]] = {
    "ALARM": AlarmShard,
    "TIMER": TimerShard,
    "EVENT": EventShard,
    "TINY": TinyShard,
    "FINITE": FiniteShard,
    "EXPLODING": ExplodingShard,
}


class FakeTransport(BaseFakeTransport):
    """The remote peer of one connection, with decoding helpers for shard frames."""

    def frames(self, fmt: str = "json") -> list[tuple[int, Any]]:
        return [decode_frame(m, fmt) for m in self.sent if isinstance(m, bytes)]  # type: ignore[arg-type]

    def ticks(self) -> list[int]:
        return [t for t, _ in self.frames()]

    def texts(self) -> list[Any]:
        return [json.loads(m) for m in self.sent if isinstance(m, str)]


class SlowTransport(FakeTransport):
    """A transport that reports how much it still has to write (the proposed hook)."""

    def __init__(self) -> None:
        super().__init__()
        self.buffered = 0

    def buffered_amount(self) -> int:
        return self.buffered


class Client:
    """One subscriber connection driven from a test."""

    def __init__(self, peer: Peer, transport: FakeTransport, headers: dict[str, str]) -> None:
        self.peer = peer
        self.transport = transport
        self.headers = headers

    async def send(self, message: Any, client_seq: int | None = None) -> None:
        body: dict[str, Any] = {"input": message}
        if client_seq is not None:
            body["client_seq"] = client_seq
        await self.peer.message(json.dumps(body))

    async def raw(self, data: str | bytes) -> None:
        await self.peer.message(data)

    async def close(self) -> None:
        await self.peer.closed(1000, "bye", True)


async def connect(
    rt: Any,
    binding: str,
    shard: str,
    sid: str,
    *,
    auth: str | None = "self",
    query: str = "",
    headers: dict[str, str] | None = None,
    transport: FakeTransport | None = None,
) -> Client:
    """Open a subscriber connection through the shard endpoint's entry point."""
    hdrs = dict(headers or {})
    if auth == "self":
        hdrs["authorization"] = f"Bearer {token(sid)}"
    elif auth is not None:
        hdrs["authorization"] = f"Bearer {auth}"
    url = "http://127.0.0.1:8787/?" + (f"shard={shard}&sid={sid}" if sid else f"shard={shard}") + query
    resp = await handle_shard_upgrade(getattr(rt.env, binding), Request(url, headers=hdrs), RESOLVER)
    assert resp.status == 101
    t = transport or FakeTransport()
    peer = attach(resp.webSocket, t)  # type: ignore[arg-type]
    return Client(peer, t, dict(resp.headers.items()))
