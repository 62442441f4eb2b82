"""Alarm benchmark: many objects each re-arming its alarm (the shard tick pattern).

Figures: alarms fired per second across N objects (default 10,000; env
``SHARDSIM_BENCH_ALARM_OBJECTS``) each re-arming every ``period`` ms, and the
scheduling lateness p50/p99 (runtime clock at firing minus the alarm time).
Real clock. State lives in a temporary directory on tmpfs (``/dev/shm``)
when there is one, as Cloudflare's local runtime was measured: on disks where
creating or opening a file costs milliseconds, 10,000 objects would measure
the disk, not the scheduler (``SHARDSIM_BENCH_DIR`` overrides the place).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import trio

from runtime import DurableObject, RuntimeConfig, now_ms, open_runtime

from ._report import report

SUITE = "alarms"
OBJECTS = int(os.environ.get("SHARDSIM_BENCH_ALARM_OBJECTS", "10000"))
PERIOD_MS = 1000
BENCH_DIR = os.environ.get("SHARDSIM_BENCH_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
DURATION_S = float(os.environ.get("SHARDSIM_BENCH_ALARM_SECONDS", "10"))


class Tick(DurableObject):
    async def create(self) -> None:
        self.ctx.storage.put("created", True)  # creates the object's database file

    async def start(self, at: float) -> None:
        await self.ctx.storage.setAlarm(at)

    async def alarm(self) -> None:
        self.ctx.storage.setAlarm(now_ms() + PERIOD_MS)


async def main() -> None:
    cfg = RuntimeConfig(hibernate_after=3600)
    base = os.environ.get("SHARDSIM_BENCH_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)  # noqa: ASYNC240 - once, at start
    with tempfile.TemporaryDirectory(dir=base) as state_dir:
        await _measure(cfg, state_dir)


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
