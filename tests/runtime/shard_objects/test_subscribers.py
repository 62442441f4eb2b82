"""Subscribing, inputs, frames and slow subscribers, through the shard endpoint's entry point."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
import trio

from runtime import Request, open_runtime
from runtime.shard_objects import BackpressurePolicy, ShardObject, handle_shard_upgrade
from shards import InvalidInput, ShardAuth, ShardConfig, SimState, Unauthorized, apply_delta, decode_frame
from tests.runtime.conftest import config

from .helpers import OBJECTS, RESOLVER, Counter, FakeTransport, SlowTransport, connect, token


async def stats(rt: Any, binding: str, shard: str) -> Any:
    stub = getattr(rt.env, binding).getByName(shard)
    return await rt.run_in_object(stub, lambda inst, ctx: inst.statistics())


@pytest.mark.parametrize(
    ("sid", "auth", "query", "reason"),
    [
        ("bob", token("alice"), "", "may not subscribe"),  # forged subscriber id
        ("alice", None, "", "missing bearer token"),
        ("alice", "alice", "", "malformed token"),  # a bare user id is not a token
        ("alice", token("alice")[:-3] + "AAA", "", "signature"),
        ("alice", token("alice", ttl=0.001), "", "expired"),
        ("", token("alice"), "", "missing subscriber id"),
        ("alice", "self", "&format=xml", "unknown format"),
        ("alice", "self", "&delta=maybe", "delta must be"),
    ],
)
async def test_refused_subscriptions_close_with_1008(autojump_clock, sid, auth, query, reason) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        await trio.sleep(1)  # so the short-lived token has expired
        client = await connect(rt, "ALARM", "arena", sid, auth=auth, query=query)
        assert client.transport.closed is not None
        code, text = client.transport.closed
        assert code == 1008
        assert reason in text
        assert client.transport.sent == []
        await trio.sleep(0.2)
        shard_stats = await stats(rt, "ALARM", "arena")
        assert shard_stats.subscribers == 0
        assert shard_stats.ticks == 0


async def test_missing_shard_id_closes_with_1008(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        req = Request(
            "http://127.0.0.1:8787/?sid=alice", headers={"authorization": f"Bearer {token('alice')}"}
        )
        resp = await handle_shard_upgrade(rt.env.ALARM, req, RESOLVER)
        t = FakeTransport()
        from runtime.sockets import attach

        attach(resp.webSocket, t)  # type: ignore[arg-type]
        assert t.closed is not None
        assert t.closed[0] == 1008


async def test_admin_may_subscribe_as_anyone_and_the_subprotocol_is_echoed(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        from urllib.parse import quote

        proto = "bearer." + quote(token("root", admin=True), safe="")
        bob = await connect(rt, "ALARM", "arena", "bob", auth=None, headers={"sec-websocket-protocol": proto})
        assert bob.headers["sec-websocket-protocol"] == proto
        await trio.sleep(0.12)
        assert bob.transport.closed is None
        assert bob.transport.ticks()[:2] == [1, 2]
        # refused connections echo it too, so the handshake completes and the client sees 1008
        eve = await connect(
            rt, "ALARM", "arena", "eve", auth=None, headers={"sec-websocket-protocol": "bearer.nope"}
        )
        assert eve.headers["sec-websocket-protocol"] == "bearer.nope"
        assert eve.transport.closed is not None
        assert eve.transport.closed[0] == 1008


async def test_a_full_shard_closes_with_1013_and_others_are_unaffected(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        alice = await connect(rt, "TINY", "room", "alice")
        bob = await connect(rt, "TINY", "room", "bob")
        assert bob.transport.closed is not None
        assert bob.transport.closed[0] == 1013
        await trio.sleep(0.12)
        assert alice.transport.closed is None
        assert alice.transport.ticks()[:2] == [1, 2]


async def test_reconnecting_with_the_same_sid_replaces_the_old_connection(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        old = await connect(rt, "TINY", "room", "alice")
        await trio.sleep(0.12)
        new = await connect(rt, "TINY", "room", "alice", query="&format=msgpack")
        assert old.transport.closed == (1000, "replaced by a new connection")
        await old.close()  # the old client's close must not detach the new one
        await trio.sleep(0.12)
        assert new.transport.closed is None
        assert len(new.transport.frames("msgpack")) >= 2
        assert (await stats(rt, "TINY", "room")).subscribers == 1


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "malformed"),
        ('{"input": 1, "extra": 2}', "malformed"),
        ('{"client_seq": 1}', "malformed"),
        ('{"input": NaN}', "malformed"),
        ('{"input": 1, "input": 2}', "malformed"),
        ('{"input": 1, "client_seq": true}', "malformed"),
        ('{"input": 1, "client_seq": -1}', "malformed"),
        ("[1]", "malformed"),
        (b"\xff\xfe", "malformed"),
        ('{"input": "five"}', "unauthorized"),  # authorize_input refuses non-ints
        ('{"input": "' + "x" * 200_000 + '"}', "too_large"),
    ],
)
async def test_malformed_inputs_get_a_text_error_and_change_nothing(autojump_clock, message, code) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        alice = await connect(rt, "ALARM", "arena", "alice")
        bob = await connect(rt, "ALARM", "arena", "bob")
        await trio.sleep(0.12)
        await alice.raw(message)
        await trio.sleep(0.2)
        errors = [m["error"] for m in alice.transport.texts() if "error" in m]
        assert [e["code"] for e in errors] == [code]
        assert all(isinstance(m, str) for m in alice.transport.sent if not isinstance(m, bytes))
        s = await stats(rt, "ALARM", "arena")
        assert s.inputs_accepted == 0
        assert s.shard.inputs_accepted == 0
        assert alice.transport.frames()[-1][1]["total"] == 0
        assert bob.transport.texts() == []  # other subscribers see nothing
        assert alice.transport.closed is None


async def test_refused_input_error_carries_the_client_seq(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        alice = await connect(rt, "ALARM", "arena", "alice")
        await alice.send("x", client_seq=7)
        await trio.sleep(0.1)
        assert alice.transport.texts()[0]["client_seq"] == 7
        assert alice.transport.texts()[0]["error"]["code"] == "unauthorized"


async def test_binary_json_inputs_are_accepted(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        alice = await connect(rt, "ALARM", "arena", "alice")
        await alice.raw(json.dumps({"input": 9, "client_seq": 1}).encode())
        await trio.sleep(0.12)
        assert alice.transport.frames()[-1][1]["total"] == 9


async def test_delta_mode_and_formats(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        delta = await connect(rt, "ALARM", "arena", "alice", query="&delta=1")
        packed = await connect(rt, "ALARM", "arena", "bob", query="&format=msgpack")
        await delta.send(2)
        await trio.sleep(0.32)
        frames = delta.transport.frames()
        assert "full" in frames[0][1]
        state = frames[0][1]["full"]
        last_tick = frames[0][0]
        for tick, envelope in frames[1:]:
            assert envelope["base"] == last_tick
            state = apply_delta(state, envelope["delta"])
            last_tick = tick
        assert state == {"total": 2, "ticks": last_tick}
        got = [m for m in packed.transport.sent if isinstance(m, bytes)]
        tick, snap = decode_frame(got[-1], "msgpack")
        assert snap == msgpack.unpackb(got[-1][8:])
        assert snap["total"] == 2


async def test_one_encoding_per_format_per_tick(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        for sid in ["a", "b", "c"]:
            await connect(rt, "ALARM", "arena", sid)
        for sid in ["d", "e"]:
            await connect(rt, "ALARM", "arena", sid, query="&format=msgpack")
        await trio.sleep(0.52)
        s = await stats(rt, "ALARM", "arena")
        assert s.shard.frames_built == 5 * s.ticks
        assert s.shard.encodings == 2 * s.ticks
        assert s.frames_sent == 5 * s.ticks


class SlowShard(ShardObject):
    sim = Counter
    config = ShardConfig(tick_rate_hz=20)
    tick_strategy = "timer"
    backpressure = BackpressurePolicy(high_water_bytes=1000, stuck_after=2.0)


async def test_a_backed_up_subscriber_gets_the_latest_frame_then_is_disconnected(autojump_clock) -> None:
    async with open_runtime(objects={"SLOW": SlowShard}, config=config()) as rt:
        slow = SlowTransport()
        alice = await connect(rt, "SLOW", "arena", "alice", transport=slow, query="&delta=1")
        bob = await connect(rt, "SLOW", "arena", "bob", transport=SlowTransport())
        await trio.sleep(0.52)
        before = len(slow.frames())
        slow.buffered = 5000  # the connection stopped draining
        await alice.send(1)
        await trio.sleep(1)
        assert len(slow.frames()) == before  # skipped, not queued
        slow.buffered = 0  # drained
        await trio.sleep(0.06)
        tick, envelope = slow.frames()[-1]
        assert "full" in envelope  # its delta base was skipped: a full frame of the latest state
        assert envelope["full"]["total"] == 1
        assert tick == bob.transport.ticks()[-1]
        slow.buffered = 5000
        await trio.sleep(2.1)
        assert slow.closed == (4001, "subscriber too slow")
        s = await stats(rt, "SLOW", "arena")
        assert s.slow_disconnects == 1
        assert s.frames_skipped > 0
        assert s.subscribers == 1
        assert bob.transport.closed is None
        ticks = bob.transport.ticks()
        assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # the fast one missed nothing


async def test_fetch_without_the_endpoint_is_refused(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        resp = await rt.env.ALARM.getByName("arena").fetch(
            "http://x/?shard=arena&sid=alice", headers={"authorization": f"Bearer {token('alice')}"}
        )
        assert resp.status == 426


async def test_a_finished_shard_sends_its_last_frame_and_closes(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        alice = await connect(rt, "FINITE", "lot", "alice")
        await trio.sleep(0.12)
        await alice.send(10)
        await trio.sleep(0.3)
        last_tick, snap = alice.transport.frames()[-1]
        assert snap["total"] == 10
        assert alice.transport.closed == (1000, "shard finished")
        stub = rt.env.FINITE.getByName("lot")
        assert rt.get_alarm(stub) is None
        await trio.sleep(11)
        late = await connect(rt, "FINITE", "lot", "bob")
        assert late.transport.frames() == [(last_tick, snap)]
        assert late.transport.closed == (1000, "shard finished")


async def test_a_failing_simulation_closes_subscribers_with_1011(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        alice = await connect(rt, "EXPLODING", "boom", "alice")
        await trio.sleep(0.12)
        await alice.send(13)
        await trio.sleep(0.2)
        assert alice.transport.closed == (1011, "shard failed")
        again = await connect(rt, "EXPLODING", "boom", "alice")
        assert again.transport.closed is not None
        assert again.transport.closed[0] == 1011
        stub = rt.env.EXPLODING.getByName("boom")
        await trio.sleep(1)
        assert rt.object_statistics(stub).background_tasks == 0  # no longer pinned


class Corruptible(ShardObject):
    sim = Counter
    config = ShardConfig(tick_rate_hz=20)

    async def corrupt(self) -> None:
        self.ctx.storage.put("shard/state", b"not a record")


async def test_a_shard_that_cannot_load_closes_with_1011(autojump_clock) -> None:
    async with open_runtime(objects={"C": Corruptible}, config=config()) as rt:
        stub = rt.env.C.getByName("bad")
        await stub.corrupt()
        await rt.evict(stub)
        client = await connect(rt, "C", "bad", "alice")
        assert client.transport.closed == (1011, "the shard is unavailable")


async def test_the_finishing_tick_is_persisted_without_a_periodic_record(autojump_clock) -> None:
    from runtime.shard_objects import STATE_KEY
    from shards import decode_shard_state

    from .helpers import Finite

    class Lot(ShardObject):
        sim = Finite
        config = ShardConfig(tick_rate_hz=20, persist_every_ticks=0)
        tick_strategy = "timer"

    async with open_runtime(objects={"LOT": Lot}, config=config()) as rt:
        alice = await connect(rt, "LOT", "lot", "alice")
        await trio.sleep(0.12)
        assert "shard/state" not in rt.dump_storage(rt.env.LOT.getByName("lot"))["kv"]
        await alice.send(12)
        await trio.sleep(0.12)
        record = decode_shard_state(rt.dump_storage(rt.env.LOT.getByName("lot"))["kv"][STATE_KEY])
        assert record.finished
        assert record.tick == alice.transport.ticks()[-1]


def test_class_attributes_are_checked_at_definition() -> None:
    with pytest.raises(TypeError, match="must be a SimState subclass"):

        class NoSim(ShardObject):
            sim = int  # type: ignore[assignment]

    with pytest.raises(ValueError, match="tick_strategy"):

        class BadStrategy(ShardObject):
            sim = Counter
            tick_strategy = "cron"  # type: ignore[assignment]

    with pytest.raises(ValueError, match="persist_every_ticks"):

        class BadPersist(ShardObject):
            sim = Counter
            persist_every_ticks = -1

    class Fine(ShardObject):
        sim = Counter
        persist_every_ticks = 7

    assert Fine._shard_config.persist_every_ticks == 7


class ApiKeys:
    """A custom resolver: API keys looked up in a table."""

    async def resolve(self, token: str | None) -> Any:
        from runtime.shard_objects import InvalidToken
        from shards import ShardAuth

        if token == "boom":
            raise RuntimeError("key store down")
        if token == "weird":
            return "alice"
        users = {"k1": "alice"}
        if token not in users:
            raise InvalidToken("unknown API key", reason="signature")
        return ShardAuth(user_id=users[token])


async def test_token_resolution_is_pluggable(autojump_clock) -> None:
    from runtime.sockets import attach

    async def open_with(key: str) -> FakeTransport:
        req = Request("http://h/?shard=arena&sid=alice", headers={"authorization": f"Bearer {key}"})
        resp = await handle_shard_upgrade(rt.env.ALARM, req, ApiKeys())
        t = FakeTransport()
        attach(resp.webSocket, t)  # type: ignore[arg-type]
        return t

    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        ok = await open_with("k1")
        assert (await open_with("k2")).closed == (1008, "unauthorized: unknown API key")
        assert (await open_with("boom")).closed == (1011, "cannot check the token")
        with pytest.raises(TypeError, match="must return a ShardAuth"):
            await open_with("weird")
        await trio.sleep(0.12)
        assert ok.closed is None
        assert ok.ticks()[:2] == [1, 2]


class Picky(SimState):
    """Refuses with its own reasons, by raising."""

    def __init__(self) -> None:
        self.total = 0

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        self.total += input

    def tick(self, dt: float) -> None:
        pass

    def snapshot(self) -> Any:
        return {"total": self.total}

    def authorize_subscribe(self, subscriber_id: str, auth: ShardAuth) -> bool:
        if subscriber_id == "mallory":
            raise Unauthorized("this match is invite-only")
        return True

    def authorize_input(self, subscriber_id: str, auth: ShardAuth, input: Any) -> bool:
        if type(input) is not int:
            raise InvalidInput("an input is a whole number of points")
        if input == 0:
            raise Unauthorized("zero is reserved for the referee")
        return True


class PickyShard(ShardObject):
    sim = Picky
    config = ShardConfig(tick_rate_hz=20)


async def test_hooks_refuse_with_their_own_reasons_and_the_shard_carries_on(autojump_clock) -> None:
    async with open_runtime(objects={"PICKY": PickyShard}, config=config()) as rt:
        mallory = await connect(rt, "PICKY", "arena", "mallory")
        assert mallory.transport.closed is not None
        assert mallory.transport.closed[0] == 1008
        assert "this match is invite-only" in mallory.transport.closed[1]
        alice = await connect(rt, "PICKY", "arena", "alice")
        bob = await connect(rt, "PICKY", "arena", "bob")
        await alice.send("five", client_seq=1)
        await alice.send(0, client_seq=2)
        await alice.send(5, client_seq=3)
        await trio.sleep(0.2)
        errors = [m for m in alice.transport.texts() if "error" in m]
        assert [(e["client_seq"], e["error"]["code"], e["error"]["message"]) for e in errors] == [
            (1, "invalid", "an input is a whole number of points"),
            (2, "unauthorized", "zero is reserved for the referee"),
        ]
        assert alice.transport.frames()[-1][1] == {"total": 5}
        assert bob.transport.texts() == []
        s = await stats(rt, "PICKY", "arena")
        assert (s.failed, s.inputs_accepted, s.subscribers) == (False, 1, 2)
