"""Alarm benchmark: many objects each re-arming its alarm (the shard tick pattern).

Two parts, figures one JSON line each.

**Cost per alarm event vs the number of live objects** (``alarm_events_per_s``,
``alarm_cpu_us_per_event``): for N objects (default 100, 1,000 and 10,000;
env ``SHARDSIM_BENCH_ALARM_SCALE``, comma-separated), each ``alarm()``
re-arms its own alarm for ``now + period`` (``SHARDSIM_BENCH_ALARM_SCALE_PERIOD_MS``,
default 0: due at once, so the runtime runs alarms as fast as it can and
the figure is its capacity). Measured over ``SHARDSIM_BENCH_ALARM_SCALE_SECONDS``
(default 3) of real time once every object has fired twice (at most 30 s
of warm-up; a runtime that never gets there reports what it does in the
window, possibly nothing). Two handlers: ``rearm`` (only ``setAlarm``) and
``put`` (one ``storage.put`` as well). CPU is the process's CPU time over
the window divided by the alarms fired in it; the share of it spent in the
garbage collector is reported too (``alarm_gc_share``): that cost grows
with the number of live Python objects. For reference,
``rpc_put_cpu_us_per_event``: one sequential caller sending one RPC with
one put to each of the N objects in turn. An alarm event should cost about
what that costs, whatever N is.

**Lateness at scale** (``alarms_fired_per_s``, ``lateness_p50``/``p99``): N
objects (default 10,000; env ``SHARDSIM_BENCH_ALARM_OBJECTS``) each re-arming
every ``PERIOD_MS`` (1 s), and the scheduling lateness (runtime clock at
firing minus the alarm time).

Real clock. State lives in a temporary directory on tmpfs (``/dev/shm``)
when there is one, as Cloudflare's local runtime was measured: on disks where
creating or opening a file costs milliseconds, 10,000 objects would measure
the disk, not the scheduler (``SHARDSIM_BENCH_DIR`` overrides the place).
``SHARDSIM_BENCH_ALARM_SECONDS=0`` skips the lateness part.
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from typing import Any

import trio

from runtime import DurableObject, RuntimeConfig, now_ms, open_runtime

from ._report import report

SUITE = "alarms"
OBJECTS = int(os.environ.get("SHARDSIM_BENCH_ALARM_OBJECTS", "10000"))
PERIOD_MS = 1000
BENCH_DIR = os.environ.get("SHARDSIM_BENCH_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
DURATION_S = float(os.environ.get("SHARDSIM_BENCH_ALARM_SECONDS", "10"))
SCALE = [int(n) for n in os.environ.get("SHARDSIM_BENCH_ALARM_SCALE", "100,1000,10000").split(",") if n]
SCALE_SECONDS = float(os.environ.get("SHARDSIM_BENCH_ALARM_SCALE_SECONDS", "3"))
SCALE_PERIOD_MS = int(os.environ.get("SHARDSIM_BENCH_ALARM_SCALE_PERIOD_MS", "0"))
HANDLERS = ("rearm", "put")
WARMUP_LIMIT_S = 30.0


class Tick(DurableObject):
    async def create(self) -> None:
        self.ctx.storage.put("created", True)  # creates the object's database file

    async def start(self, at: float) -> None:
        await self.ctx.storage.setAlarm(at)

    async def alarm(self) -> None:
        self.ctx.storage.setAlarm(now_ms() + PERIOD_MS)


class Rearm(DurableObject):
    """Re-arms for ``now + SCALE_PERIOD_MS``; nothing else."""

    async def start(self, at: float) -> None:
        self.ctx.storage.put("created", True)  # creates the object's database file
        self.ctx.storage.setAlarm(at)

    async def alarm(self) -> None:
        self.ctx.storage.setAlarm(now_ms() + SCALE_PERIOD_MS)

    async def put(self, value: int) -> None:
        self.ctx.storage.put("n", value)


class RearmPut(Rearm):
    """Re-arms and writes one key per alarm."""

    async def alarm(self) -> None:
        self.ctx.storage.put("n", now_ms())
        self.ctx.storage.setAlarm(now_ms() + SCALE_PERIOD_MS)


class _GcTimer:
    """Sums the time the garbage collector runs (gc.callbacks)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start


async def main() -> None:
    for handler in HANDLERS:
        for n in SCALE:
            with tempfile.TemporaryDirectory(dir=BENCH_DIR) as state_dir:
                await _scale(n, handler, state_dir)
    await _rpc_reference()
    if DURATION_S > 0:
        with tempfile.TemporaryDirectory(dir=BENCH_DIR) as state_dir:
            await _measure(RuntimeConfig(hibernate_after=3600), state_dir)


async def _start_all(stubs: list[Any], at: float) -> None:
    # All at once: alarms that fire early (period 0 keeps them always due)
    # would otherwise starve a sequential loop of starts.
    async with trio.open_nursery() as nursery:
        for stub in stubs:
            nursery.start_soon(stub.start, at)


async def _scale(n: int, handler: str, state_dir: str) -> None:
    cls = Rearm if handler == "rearm" else RearmPut
    cfg = RuntimeConfig(hibernate_after=3600)
    async with open_runtime(objects={"A": cls}, config=cfg, seed=9, state_dir=state_dir) as rt:
        stubs = [rt.env.A.getByName(f"a{i}") for i in range(n)]
        mgr = rt._alarms
        await _start_all(stubs, now_ms() + 500)
        # Warm up until every object has fired twice (or WARMUP_LIMIT_S passed).
        warm_until = time.perf_counter() + WARMUP_LIMIT_S
        while mgr.fired < 2 * n and time.perf_counter() < warm_until:  # noqa: ASYNC110 - polls the code it measures
            await trio.sleep(0.1)
        timer = _GcTimer()
        gc.callbacks.append(timer)
        try:
            fired0, t0, cpu0 = mgr.fired, time.perf_counter(), time.process_time()
            await trio.sleep(SCALE_SECONDS)
            fired = mgr.fired - fired0
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            gc.callbacks.remove(timer)
        extra = {"objects": n, "handler": handler, "period_ms": SCALE_PERIOD_MS}
        report(SUITE, "alarm_events_per_s", fired / wall, "alarms/s", **extra)
        report(SUITE, "alarm_cpu_us_per_event", 1e6 * cpu / max(fired, 1), "µs", **extra)
        report(SUITE, "alarm_gc_share", 100 * timer.total / max(cpu, 1e-9), "% of CPU", **extra)


async def _rpc_reference() -> None:
    """One RPC with one put per event, to N objects in turn: what an event costs."""
    for n in SCALE:
        with tempfile.TemporaryDirectory(dir=BENCH_DIR) as state_dir:
            cfg = RuntimeConfig(hibernate_after=3600)
            async with open_runtime(objects={"A": Rearm}, config=cfg, seed=9, state_dir=state_dir) as rt:
                stubs = [rt.env.A.getByName(f"a{i}") for i in range(n)]
                for stub in stubs:
                    await stub.put(0)
                calls = max(n, 20_000)
                t0, cpu0 = time.perf_counter(), time.process_time()
                for i in range(calls):
                    await stubs[i % n].put(i)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                report(SUITE, "rpc_put_events_per_s", calls / wall, "events/s", objects=n)
                report(SUITE, "rpc_put_cpu_us_per_event", 1e6 * cpu / calls, "µs", objects=n)


async def _measure(cfg: RuntimeConfig, state_dir: str) -> None:
    async with open_runtime(objects={"T": Tick}, config=cfg, seed=9, state_dir=state_dir) as rt:
        report(SUITE, "state_dir", 0, "-", path=state_dir)
        stubs = [rt.env.T.getByName(f"t{i}") for i in range(OBJECTS)]
        # Create every object first: on slow disks creating files dominates,
        # and alarms must not start firing while that still runs.
        setup = time.perf_counter()
        for stub in stubs:
            await stub.create()
        report(
            SUITE,
            "setup_objects_per_s",
            OBJECTS / (time.perf_counter() - setup),
            "objects/s",
            objects=OBJECTS,
        )
        start_ms = now_ms() + 3000
        for i, stub in enumerate(stubs):
            # spread first firings over one period
            await stub.start(start_ms + (i * PERIOD_MS) / OBJECTS)
        await trio.sleep_until(rt.clock.trio_time_for(start_ms + PERIOD_MS))  # one warm-up period
        mgr = rt._alarms
        mgr.record_lateness = True
        fired0 = mgr.fired
        t0 = time.perf_counter()
        await trio.sleep(DURATION_S)
        elapsed = time.perf_counter() - t0
        fired = mgr.fired - fired0
        lateness = mgr.lateness_ms
        report(SUITE, "alarms_fired_per_s", fired / elapsed, "alarms/s", objects=OBJECTS, period_ms=PERIOD_MS)
        report(SUITE, "alarms_offered_per_s", OBJECTS * 1000 / PERIOD_MS, "alarms/s")
        if lateness:
            q = statistics.quantiles(lateness, n=100)
            report(SUITE, "lateness_p50", statistics.median(lateness), "ms")
            report(SUITE, "lateness_p99", q[98], "ms")


def run() -> None:
    trio.run(main)
