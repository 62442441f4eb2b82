"""Shard objects end to end: in-memory sockets, the autojump clock."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from runtime import open_runtime
from runtime.shard_objects import STATE_KEY, ShardObject
from shards import ShardConfig, SimState, decode_shard_state
from tests.runtime.conftest import config

from .helpers import OBJECTS, connect


def stored_tick(rt: Any, binding: str, shard: str) -> int | None:
    record = rt.dump_storage(getattr(rt.env, binding).getByName(shard))["kv"].get(STATE_KEY)
    return None if record is None else decode_shard_state(record).tick


async def stats(rt: Any, binding: str, shard: str) -> Any:
    return await rt.run_in_object(
        getattr(rt.env, binding).getByName(shard), lambda inst, ctx: inst.statistics()
    )


@pytest.mark.parametrize("binding", ["ALARM", "TIMER"])
async def test_ticking_shard_sends_frames_in_tick_order_and_applies_inputs(autojump_clock, binding) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        alice = await connect(rt, binding, "arena", "alice")
        await trio.sleep(0.52)
        ticks = alice.transport.ticks()
        assert ticks == list(range(1, len(ticks) + 1))
        assert 9 <= len(ticks) <= 11  # 20 Hz for half a second
        await alice.send(5, client_seq=1)
        await alice.send(2, client_seq=2)
        await trio.sleep(0.2)
        frames = alice.transport.frames()
        assert frames[-1][1]["total"] == 7
        ticks = [t for t, _ in frames]
        assert ticks == list(range(1, len(ticks) + 1))
        acks = [m["ack"] for m in alice.transport.texts()]
        assert acks[-1]["last_client_seq"] == 2
        assert acks[-1]["tick"] in ticks
        s = await stats(rt, binding, "arena")
        assert s.strategy == binding.lower()
        assert s.ticking
        assert s.inputs_accepted == 2


async def test_persists_every_n_ticks_then_when_quiet_and_hibernates(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        stub = rt.env.ALARM.getByName("arena")
        alice = await connect(rt, "ALARM", "arena", "alice")
        await trio.sleep(1.02)  # ~20 ticks at 20 Hz, persisting every 10
        assert stored_tick(rt, "ALARM", "arena") in (10, 20)
        await alice.send(3)
        await trio.sleep(0.1)
        await alice.close()
        await trio.sleep(0.2)
        last = alice.transport.ticks()[-1]
        quiet_tick = stored_tick(rt, "ALARM", "arena")
        assert quiet_tick is not None
        assert quiet_tick >= last  # the tick that found the shard quiet persisted it
        assert rt.get_alarm(stub) is None  # no more ticks
        await trio.sleep(11)
        assert rt.state_of(stub) == "hibernated"
        assert stored_tick(rt, "ALARM", "arena") == quiet_tick
        bob = await connect(rt, "ALARM", "arena", "bob")
        await trio.sleep(0.12)
        frames = bob.transport.frames()
        assert frames[0][0] == quiet_tick + 1  # resumes at the next tick number
        assert frames[0][1]["total"] == 3  # and from the persisted state


async def test_timer_shard_pins_the_object_and_stops_pinning_when_quiet(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        stub = rt.env.TIMER.getByName("arena")
        alice = await connect(rt, "TIMER", "arena", "alice")
        await trio.sleep(200)  # past the 70-140 s eviction window: the keep-alive alarm holds it
        assert rt.state_of(stub) == "idle"
        assert rt.object_statistics(stub).background_tasks == 1  # the pin
        ticks = alice.transport.ticks()
        assert ticks == list(range(1, len(ticks) + 1))
        assert len(ticks) >= 200 * 20 - 2
        await alice.close()
        await trio.sleep(0.2)
        assert rt.object_statistics(stub).background_tasks == 0
        assert rt.get_alarm(stub) is None  # keep-alive removed
        await trio.sleep(11)
        assert rt.state_of(stub) == "hibernated"
        assert (stored_tick(rt, "TIMER", "arena") or 0) >= ticks[-1]


async def test_many_timer_shards_share_the_one_scheduler(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        clients = [await connect(rt, "TIMER", f"s{i}", "alice") for i in range(20)]
        await trio.sleep(0.3)
        await trio.sleep(1)
        # No task per shard: the ticks are scheduler callbacks; the runtime
        # runs its scheduler and its flusher, nothing else at rest.
        assert rt._nursery is not None
        assert len(rt._nursery.child_tasks) == 2
        for c in clients:
            assert len(c.transport.ticks()) >= 25


async def test_a_ticking_timer_shard_re_arms_one_timer_handle(autojump_clock) -> None:
    # Periodic ticks re-arm the handle that fired (Scheduler.call_again): a
    # new handle per tick made every live shard's timer a young object that
    # each garbage collection walked.
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        stub = rt.env.TIMER.getByName("arena")
        alice = await connect(rt, "TIMER", "arena", "alice")
        await trio.sleep(0.12)
        first = await rt.run_in_object(stub, lambda inst, ctx: inst._timer)
        await trio.sleep(1)
        later = await rt.run_in_object(stub, lambda inst, ctx: inst._timer)
        assert later is first
        assert later.pending
        assert len(alice.transport.ticks()) >= 22
        await alice.close()
        await trio.sleep(0.2)
        assert not first.pending  # cancelled when the shard went quiet
        assert len(rt.scheduler) == 1  # only the idle timer is left


async def test_event_driven_shard_ticks_only_for_inputs_and_greets_newcomers(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        alice = await connect(rt, "EVENT", "chess", "alice")
        await trio.sleep(5)
        assert alice.transport.frames() == [(0, {"total": 0, "ticks": 0})]  # current state, no tick
        await alice.send(1)
        await alice.send(2)  # same scheduling step: one tick
        await trio.sleep(1)
        assert alice.transport.frames()[1:] == [(1, {"total": 3, "ticks": 1})]
        await alice.send(4)
        await trio.sleep(1)
        assert alice.transport.frames()[-1] == (2, {"total": 7, "ticks": 2})
        bob = await connect(rt, "EVENT", "chess", "bob")
        assert bob.transport.frames() == [(2, {"total": 7, "ticks": 2})]
        await alice.close()
        await bob.close()
        await trio.sleep(0.1)
        assert stored_tick(rt, "EVENT", "chess") == 2  # persisted when it went quiet
        await trio.sleep(11)
        assert rt.state_of(rt.env.EVENT.getByName("chess")) == "hibernated"
        carol = await connect(rt, "EVENT", "chess", "carol")
        assert carol.transport.frames() == [(2, {"total": 7, "ticks": 2})]


@pytest.mark.parametrize("binding", ["ALARM", "TIMER"])
async def test_resumes_from_the_record_after_a_crash(autojump_clock, binding) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        stub = getattr(rt.env, binding).getByName("arena")
        alice = await connect(rt, binding, "arena", "alice")
        await alice.send(4)
        await trio.sleep(0.62)  # ~12 ticks; persisted at 10
        assert alice.transport.ticks()[-1] >= 11
        await rt.crash(stub)
        await trio.sleep(0.1)
        assert alice.transport.closed == (1011, "Durable Object reset")
        await trio.sleep(1)
        alice2 = await connect(rt, binding, "arena", "alice")
        await trio.sleep(0.12)
        first = alice2.transport.frames()[0]
        assert first[0] == 11  # the record of tick 10, then the next tick
        assert first[1]["total"] == 4


async def test_forced_hibernation_with_subscribers_resumes_from_the_record(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        stub = rt.env.ALARM.getByName("arena")
        alice = await connect(rt, "ALARM", "arena", "alice", query="&delta=1")
        await alice.send(6)
        await trio.sleep(0.57)  # ~11 ticks; persisted at 10
        await rt.hibernate(stub)  # the socket survives; the next alarm wakes the object
        await trio.sleep(0.5)
        frames = alice.transport.frames()
        ticks = [t for t, _ in frames]
        resumed = ticks.index(11, ticks.index(11) + 1)  # tick 11 again: resumed from the record
        assert frames[resumed][1] == {"full": {"total": 6, "ticks": 11}}  # delta base reset: full frame
        assert ticks[resumed:] == list(range(11, 11 + len(ticks) - resumed))


async def test_an_evicted_timer_shard_is_woken_by_its_keepalive_and_resumes(autojump_clock) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        stub = rt.env.TIMER.getByName("arena")
        alice = await connect(rt, "TIMER", "arena", "alice")
        await trio.sleep(0.57)  # ~11 ticks; persisted at 10
        await rt.evict(stub)  # the instance and its timer go; the socket stays
        count = len(alice.transport.ticks())
        await trio.sleep(5)
        assert len(alice.transport.ticks()) == count  # nothing ticks while evicted
        await trio.sleep(30)  # the keep-alive alarm comes due and wakes the object
        ticks = alice.transport.ticks()
        assert ticks[count] == 11  # resumed from the record of tick 10
        assert ticks[count:] == list(range(11, 11 + len(ticks) - count))
        assert rt.state_of(stub) == "idle"
        assert alice.transport.closed is None


class Clocked(SimState):
    """Records the dt of every tick."""

    def __init__(self) -> None:
        self.dts: list[float] = []

    def tick(self, dt: float) -> None:
        self.dts.append(dt)

    def snapshot(self) -> Any:
        return {"dts": self.dts}


class ClockedAlarm(ShardObject):
    sim = Clocked
    config = ShardConfig(tick_rate_hz=20)


class ClockedTimer(ClockedAlarm):
    tick_strategy = "timer"


@pytest.mark.parametrize("cls", [ClockedAlarm, ClockedTimer])
async def test_the_first_tick_after_a_quiet_spell_and_a_wake_is_one_period_later(autojump_clock, cls) -> None:
    async with open_runtime(objects={"CLOCKED": cls}, config=config()) as rt:
        alice = await connect(rt, "CLOCKED", "arena", "alice")
        await trio.sleep(0.22)
        await alice.close()
        await trio.sleep(60)  # quiet, then hibernated
        assert rt.state_of(rt.env.CLOCKED.getByName("arena")) == "hibernated"
        bob = await connect(rt, "CLOCKED", "arena", "bob")
        await trio.sleep(0.22)
        await bob.close()
        await trio.sleep(0.3)  # a pause without hibernating
        carol = await connect(rt, "CLOCKED", "arena", "carol")
        await trio.sleep(0.22)
        dts = carol.transport.frames()[-1][1]["dts"]
        assert len(dts) >= 12
        assert dts == pytest.approx([0.05] * len(dts), abs=1e-3), dts


@pytest.mark.parametrize("binding", ["ALARM", "TIMER"])
async def test_a_newcomer_to_a_sleeping_shard_gets_a_frame_at_once(autojump_clock, binding) -> None:
    async with open_runtime(objects=OBJECTS, config=config()) as rt:
        alice = await connect(rt, binding, "arena", "alice")
        await trio.sleep(0.01)  # well under a period
        assert alice.transport.ticks() == [1]
        await alice.close()
        await trio.sleep(60)
        assert rt.state_of(getattr(rt.env, binding).getByName("arena")) == "hibernated"
        bob = await connect(rt, binding, "arena", "bob")
        await trio.sleep(0.01)
        assert len(bob.transport.ticks()) == 1
