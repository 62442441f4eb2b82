"""Replay log and deterministic replay."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from shards import (
    ReplayEntry,
    ReplayLog,
    Shard,
    ShardConfig,
    SimState,
    decode_shard_state,
    encode,
    replay,
)


class Walkers(SimState):
    """Entities that move by inputs and drift with a seeded RNG kept in the state."""

    def __init__(self) -> None:
        self.pos: dict[str, list[float]] = {}
        self.seed = 7
        self.steps = 0

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        p = self.pos.setdefault(subscriber_id, [0.0, 0.0])
        p[0] += input["dx"] * (1 + now % 1)
        p[1] += input["dy"]
        input["dx"] = 999  # a rude simulation must not corrupt the log

    def tick(self, dt: float) -> None:
        rng = random.Random(self.seed * 1_000_003 + self.steps)
        for p in self.pos.values():
            p[0] += dt * rng.uniform(-1, 1)
        self.steps += 1

    def snapshot(self) -> Any:
        return {"pos": self.pos}


def test_log_is_bounded_and_counts_dropped_ticks() -> None:
    log = ReplayLog(2)
    assert (len(log), log.first_tick, log.last_tick, log.max_ticks, log.dropped) == (0, None, None, 2, 0)
    for t in (1, 2, 3):
        log.record(t, t * 0.5, 0.5, [("a", encode({"t": t}))])
    assert (len(log), log.first_tick, log.last_tick, log.dropped) == (2, 2, 3, 1)
    assert log.entries() == (
        ReplayEntry(tick=2, now=1.0, dt=0.5, inputs=(("a", {"t": 2}),)),
        ReplayEntry(tick=3, now=1.5, dt=0.5, inputs=(("a", {"t": 3}),)),
    )
    assert [e.tick for e in log.entries(after=2)] == [3]


def test_log_refuses_bad_sizes_and_gaps() -> None:
    with pytest.raises(ValueError, match=r"^max_ticks must be an integer >= 1, got 0$"):
        ReplayLog(0)
    log = ReplayLog(3)
    log.record(5, 0.0, 0.0, [])
    with pytest.raises(ValueError, match=r"^tick 7 does not follow the last recorded tick 5$"):
        log.record(7, 0.0, 0.0, [])
    assert len(log) == 1


def test_entries_are_fresh_copies() -> None:
    log = ReplayLog(1)
    log.record(1, 0.0, 0.0, [("a", encode([1]))])
    log.entries()[0].inputs[0][1].append(2)
    assert log.entries()[0].inputs == (("a", [1]),)


def test_shard_fills_the_log_only_when_configured() -> None:
    assert Shard("s", Walkers()).replay_log is None
    shard = Shard("s", Walkers(), ShardConfig(replay_log_ticks=3, tick_rate_hz=4))
    shard.add_subscriber("a")
    shard.push_input("a", {"dx": 1, "dy": 2})
    shard.push_input("a", {"dx": 3, "dy": 4})
    for t in range(5):
        shard.run_tick(10.0 + t)
    log = shard.replay_log
    assert log is not None
    assert [(e.tick, e.now, e.dt) for e in log.entries()] == [(3, 12.0, 1.0), (4, 13.0, 1.0), (5, 14.0, 1.0)]
    assert shard.statistics().replay_dropped == 2
    first = Shard("s", Walkers(), ShardConfig(replay_log_ticks=3, tick_rate_hz=4))
    first.add_subscriber("a")
    first.push_input("a", {"dx": 1, "dy": 2})
    first.run_tick(10.0)
    assert first.replay_log is not None
    assert first.replay_log.entries() == (
        ReplayEntry(tick=1, now=10.0, dt=0.25, inputs=(("a", {"dx": 1, "dy": 2}),)),
    )


def test_replay_refuses_gaps() -> None:
    entries = [
        ReplayEntry(tick=1, now=0.0, dt=0.0, inputs=()),
        ReplayEntry(tick=3, now=0.0, dt=0.0, inputs=()),
    ]
    with pytest.raises(ValueError, match=r"^replay entries jump from tick 1 to tick 3$"):
        replay(Walkers(), entries)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.sampled_from("abc"), st.integers(-3, 3), st.integers(-3, 3)), max_size=4),
            st.floats(0, 1, allow_nan=False),
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(0, 20),
)
def test_replay_from_a_persisted_state_rebuilds_the_sim(ticks: Any, split: int) -> None:
    shard = Shard("s", Walkers(), ShardConfig(replay_log_ticks=64, tick_rate_hz=0))
    for sid in "abc":
        shard.add_subscriber(sid)
    now = 0.0
    start: bytes | None = None
    for i, (inputs, step) in enumerate(ticks):
        if i == min(split, len(ticks) - 1):
            start = shard.persist_now()
        for sid, dx, dy in inputs:
            shard.push_input(sid, {"dx": dx, "dy": dy})
        now += step
        shard.run_tick(now)
    assert start is not None
    record = decode_shard_state(start)
    log = shard.replay_log
    assert log is not None
    rebuilt = replay(Walkers.from_state(record.sim_state), log.entries(after=record.tick))
    assert encode(rebuilt.to_state()) == encode(shard.sim.to_state())
    # and replaying twice from the same start is deterministic
    again = replay(Walkers.from_state(decode_shard_state(start).sim_state), log.entries(after=record.tick))
    assert encode(again.to_state()) == encode(rebuilt.to_state())
