"""Pure shard benchmarks: ``Shard.run_tick`` throughput, no trio, no I/O.

Figures, one JSON line each (``python -m bench core``):

* ticks/s and µs per tick for a trivial simulation (a counter) and for a
  50-entity simulation (id, x, y, vx, vy, hp; 10 move inputs per tick), with
  1, 10 and 100 subscribers, in JSON and in msgpack. Every subscriber sees
  the shared snapshot, so each tick encodes it once per format; the cost
  that grows with subscribers is the per-subscriber bookkeeping.
* The same 50-entity figure with 100 delta-mode subscribers (JSON), where
  each tick also diffs the snapshot against the last one sent.

Each figure runs for a fixed time budget after a warm-up, with a fixed seed.
``SHARDSIM_BENCH_SCALE`` (default 1.0) scales the budgets.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from shards import Shard, ShardConfig, SimState

from ._report import report

SUITE = "core"
SCALE = float(os.environ.get("SHARDSIM_BENCH_SCALE", "1.0"))
BUDGET_S = 0.5 * SCALE
INPUTS_PER_TICK = 10
ENTITIES = 50


class Trivial(SimState):
    """A counter: the floor of what a tick costs."""

    def __init__(self) -> None:
        self.n = 0

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        self.n += 1

    def tick(self, dt: float) -> None:
        self.n += 1

    def snapshot(self) -> Any:
        return {"n": self.n}


class Arena(SimState):
    """50 moving entities; inputs steer them, ticks integrate and wrap them."""

    def __init__(self) -> None:
        rng = random.Random(1)
        self.entities = [
            {
                "id": i,
                "x": rng.uniform(0, 100),
                "y": rng.uniform(0, 100),
                "vx": rng.uniform(-1, 1),
                "vy": rng.uniform(-1, 1),
                "hp": 100,
            }
            for i in range(ENTITIES)
        ]

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        e = self.entities[input["id"]]
        e["vx"] = input["vx"]
        e["vy"] = input["vy"]

    def tick(self, dt: float) -> None:
        for e in self.entities:
            e["x"] = (e["x"] + e["vx"] * dt) % 100.0
            e["y"] = (e["y"] + e["vy"] * dt) % 100.0

    def snapshot(self) -> Any:
        return {"entities": self.entities}


def _measure(
    sim: SimState, subscribers: int, fmt: str, *, inputs: bool, delta: bool = False
) -> tuple[float, dict[str, float]]:
    """Return ticks/s and per-tick averages for one configuration."""
    config = ShardConfig(
        tick_rate_hz=20,
        max_subscribers=max(subscribers, 1),
        persist_every_ticks=0,
        idle_ticks_before_shutdown=0,
    )
    shard = Shard("bench", sim, config)
    for i in range(subscribers):
        shard.add_subscriber(f"s{i}", format=fmt, delta=delta)
    rng = random.Random(2)
    moves = [
        {"id": rng.randrange(ENTITIES), "vx": rng.uniform(-1, 1), "vy": rng.uniform(-1, 1)}
        for _ in range(1024)
    ]
    k = 0
    now = 0.0

    def one_tick() -> None:
        nonlocal k, now
        if inputs:
            for _ in range(INPUTS_PER_TICK):
                shard.push_input("s0", moves[k % len(moves)], client_seq=k)
                k += 1
        now += 0.05
        shard.run_tick(now)

    warmup_end = time.perf_counter() + BUDGET_S / 5
    while time.perf_counter() < warmup_end:
        one_tick()
    before = shard.statistics()
    ticks = 0
    start = time.perf_counter()
    deadline = start + BUDGET_S
    while True:
        for _ in range(20):
            one_tick()
        ticks += 20
        elapsed = time.perf_counter() - start
        if elapsed >= BUDGET_S or time.perf_counter() >= deadline:
            break
    after = shard.statistics()
    per_tick = {
        "encodings_per_tick": (after.encodings - before.encodings) / ticks,
        "frame_bytes_per_tick": (after.frame_bytes - before.frame_bytes) / ticks,
    }
    return ticks / elapsed, per_tick


def run() -> None:
    """Print the core suite's figures."""
    cases: list[tuple[str, bool]] = [("trivial", False), ("entities50", True)]
    for name, inputs in cases:
        for subscribers in (1, 10, 100):
            for fmt in ("json", "msgpack"):
                sim: SimState = Trivial() if name == "trivial" else Arena()
                rate, per_tick = _measure(sim, subscribers, fmt, inputs=inputs)
                extra = {
                    "sim": name,
                    "subscribers": subscribers,
                    "format": fmt,
                    "inputs_per_tick": INPUTS_PER_TICK if inputs else 0,
                    **{k: round(v, 1) for k, v in per_tick.items()},
                }
                label = f"{name} {subscribers} sub {fmt}"
                report(SUITE, f"run_tick {label}", rate, "ticks/s", **extra)
                report(SUITE, f"tick cost {label}", 1e6 / rate, "us/tick", **extra)
    rate, per_tick = _measure(Arena(), 100, "json", inputs=True, delta=True)
    extra = {
        "sim": "entities50",
        "subscribers": 100,
        "format": "json",
        "delta": True,
        "inputs_per_tick": INPUTS_PER_TICK,
        **{k: round(v, 1) for k, v in per_tick.items()},
    }
    report(SUITE, "run_tick entities50 100 sub json delta", rate, "ticks/s", **extra)
    report(SUITE, "tick cost entities50 100 sub json delta", 1e6 / rate, "us/tick", **extra)


if __name__ == "__main__":
    run()
