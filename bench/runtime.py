"""Runtime benchmarks (issue: Durable Objects runtime core).

Figures, one JSON line each:

* RPC round trips/s to one object doing one storage increment: sequential,
  and 64 concurrent callers; the same spread over many objects.
* KV put+flush per event vs raw inline sqlite3 single-row commits with the
  engine's SQLite settings (WAL, synchronous=NORMAL, exclusive locking),
  measured side by side in this run (target: >= 50 %), and how many events
  share a commit with 64 concurrent callers.
* Memory per hibernated object (state on disk; target <= 1 KB) and per idle
  live object, measured with tracemalloc.
* Hibernate -> wake latency p50/p99 for a small object (target p50 <= 0.5 ms).

Environment: ``SHARDSIM_BENCH_OBJECTS`` (default 100000) sets the object
count of the memory figure; ``SHARDSIM_BENCH_SCALE`` (default 1.0) scales
the iteration counts.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import trio

from runtime import DurableObject, RuntimeConfig, open_runtime

from ._report import report

SUITE = "runtime"
SCALE = float(os.environ.get("SHARDSIM_BENCH_SCALE", "1.0"))
OBJECTS = int(os.environ.get("SHARDSIM_BENCH_OBJECTS", "100000"))


def _n(base: int) -> int:
    return max(10, int(base * SCALE))


class Counter(DurableObject):
    async def increment(self, by: int) -> int:
        n = (await self.ctx.storage.get("n") or 0) + by
        self.ctx.storage.put("n", n)
        return n

    async def put(self, value: int) -> None:
        self.ctx.storage.put("v", value)

    async def read(self) -> int:
        return await self.ctx.storage.get("n") or 0


def raw_sqlite_commits(n: int, *, exclusive: bool = True) -> float:
    """Single-row upsert + COMMIT per transaction, inline, with the engine's settings.

    WAL, synchronous=NORMAL and (``exclusive``, as every object database is
    opened) locking_mode=EXCLUSIVE, which spares each transaction the
    shared-memory locking and makes it about a third cheaper.
    """
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.sqlite", isolation_level=None)
        if exclusive:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        start = time.perf_counter()
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("n", i.to_bytes(8, "big")))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return n / elapsed


async def rpc_figures() -> None:
    cfg = RuntimeConfig(hibernate_after=3600)
    async with open_runtime(objects={"C": Counter}, config=cfg, seed=1) as rt:
        stub = rt.env.C.getByName("one")
        await stub.increment(1)
        n = _n(5000)
        start = time.perf_counter()
        for _ in range(n):
            await stub.increment(1)
        seq_rate = n / (time.perf_counter() - start)
        report(SUITE, "rpc_increment_sequential_one_object", seq_rate, "calls/s")

        before = rt.statistics()
        calls = _n(6400)
        per_caller = calls // 64

        async def caller() -> None:
            s = rt.env.C.getByName("one")
            for _ in range(per_caller):
                await s.increment(1)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(64):
                nursery.start_soon(caller)
        conc_rate = per_caller * 64 / (time.perf_counter() - start)
        after = rt.statistics()
        commits = after.commits - before.commits
        report(SUITE, "rpc_increment_64_callers_one_object", conc_rate, "calls/s")
        report(
            SUITE,
            "events_per_commit_64_callers",
            (after.committed_writes - before.committed_writes) / max(1, commits),
            "events/commit",
            commits=commits,
        )

    async with open_runtime(objects={"C": Counter}, config=cfg, seed=2) as rt:
        n_objects = _n(10000)
        stubs = [rt.env.C.getByName(f"o{i}") for i in range(n_objects)]
        start = time.perf_counter()
        for s in stubs:
            await s.increment(1)
        first_rate = n_objects / (time.perf_counter() - start)
        report(SUITE, "rpc_increment_first_call_many_objects", first_rate, "calls/s", objects=n_objects)
        start = time.perf_counter()
        for s in stubs:
            await s.increment(1)
        seq_many = n_objects / (time.perf_counter() - start)
        report(SUITE, "rpc_increment_sequential_many_objects", seq_many, "calls/s", objects=n_objects)

        chunk = n_objects // 64

        async def spread(part: list) -> None:  # type: ignore[type-arg]
            for s in part:
                await s.increment(1)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(64):
                nursery.start_soon(spread, stubs[i * chunk : (i + 1) * chunk])
        report(
            SUITE,
            "rpc_increment_64_callers_many_objects",
            chunk * 64 / (time.perf_counter() - start),
            "calls/s",
            objects=n_objects,
        )


async def kv_vs_raw() -> None:
    """Medians of 3 alternating rounds, so noise hits both sides alike.

    One task calls one object in a loop: the lone-writer case, where each
    reply commits its own write. The raw baseline uses the engine's SQLite
    settings; the same baseline without the exclusive lock is printed as
    ``default_locking`` (the one earlier figures were measured against).
    """
    n = _n(5000)
    raws: list[float] = []
    shared: list[float] = []
    rpcs: list[float] = []
    bares: list[float] = []
    cfg = RuntimeConfig(hibernate_after=3600)
    async with open_runtime(objects={"C": Counter}, config=cfg, seed=3) as rt:
        stub = rt.env.C.getByName("kv")
        await stub.put(0)

        def put(inst, ctx) -> None:
            ctx.storage.put("v", 1)

        for _ in range(3):
            raws.append(raw_sqlite_commits(n))
            shared.append(raw_sqlite_commits(n, exclusive=False))
            start = time.perf_counter()
            for i in range(n):
                await stub.put(i)
            rpcs.append(n / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(n):
                await rt.run_in_object(stub, put)
            bares.append(n / (time.perf_counter() - start))
    raw, default_locking, rpc, bare = (statistics.median(x) for x in (raws, shared, rpcs, bares))
    report(
        SUITE,
        "raw_sqlite3_single_row_commits",
        raw,
        "txn/s",
        locking="exclusive",
        default_locking=round(default_locking, 1),
    )
    report(SUITE, "kv_put_flush_per_rpc_event", rpc, "events/s")
    report(SUITE, "kv_put_flush_per_rpc_event_vs_raw", 100.0 * rpc / raw, "%", target=">= 50")
    report(SUITE, "kv_put_flush_per_bare_event", bare, "events/s")
    report(SUITE, "kv_put_flush_per_bare_event_vs_raw", 100.0 * bare / raw, "%", target=">= 50")


def _live_objects_memory(count: int, hibernate: bool) -> float:
    async def main() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = RuntimeConfig(hibernate_after=3600)
            async with open_runtime(objects={"C": Counter}, config=cfg, state_dir=tmp, seed=4) as rt:
                ns = rt.env.C
                names = [f"m{i}" for i in range(count)]
                stubs = [ns.getByName(n) for n in names]
                gc.collect()
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
                for s in stubs:
                    await s.put(1)
                    if hibernate:
                        rt._actor_of(s).hibernate()
                await trio.lowlevel.checkpoint()
                gc.collect()
                used = tracemalloc.get_traced_memory()[0] - base
                tracemalloc.stop()
                stats = rt.statistics()
                assert stats.hibernated == (count if hibernate else 0), stats
                return used / count

    return trio.run(main)


def memory_figures() -> None:
    per_hibernated = _live_objects_memory(OBJECTS, hibernate=True)
    report(SUITE, "memory_per_hibernated_object", per_hibernated, "bytes", objects=OBJECTS, target="<= 1024")
    live = min(OBJECTS, _n(10000))
    per_live = _live_objects_memory(live, hibernate=False)
    report(SUITE, "memory_per_idle_live_object", per_live, "bytes", objects=live)


async def wake_latency() -> None:
    cfg = RuntimeConfig(hibernate_after=3600)
    with tempfile.TemporaryDirectory() as tmp:
        async with open_runtime(objects={"C": Counter}, config=cfg, state_dir=tmp, seed=5) as rt:
            stub = rt.env.C.getByName("sleepy")
            await stub.increment(1)
            actor = rt._actor_of(stub)
            wakes: list[float] = []
            warm: list[float] = []
            for _ in range(_n(2000)):
                actor.hibernate()
                start = time.perf_counter()
                await stub.read()
                wakes.append(time.perf_counter() - start)
                start = time.perf_counter()
                await stub.read()
                warm.append(time.perf_counter() - start)
    q = statistics.quantiles(wakes, n=100)
    report(SUITE, "wake_latency_p50", statistics.median(wakes) * 1000, "ms", target="<= 0.5")
    report(SUITE, "wake_latency_p99", q[98] * 1000, "ms")
    report(SUITE, "live_call_latency_p50", statistics.median(warm) * 1000, "ms")


def run() -> None:
    trio.run(rpc_figures)
    trio.run(kv_vs_raw)
    trio.run(wake_latency)
    memory_figures()
