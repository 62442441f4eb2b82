"""D1 benchmarks (issue: D1, the SQLite store behind the objects).

Figures, one JSON line each:

* Single-statement INSERT per second through ``env.DB``-style calls
  (``prepare().bind().run()``, trio driver, file on disk, WAL +
  synchronous=NORMAL) and through raw inline sqlite3 on an identical file,
  measured side by side in this run; the ratio (target: >= 50 %).
* Point SELECT by primary key per second, the same way (``first()`` vs
  ``execute().fetchone()``).
* ``batch()`` of 100 and of 1,000 INSERTs, in rows/s.
* Point SELECTs awaited inside an object's event, where every call passes a
  full trio checkpoint (the input gate opens); outside objects a call yields
  only when other tasks are queued, or every 16th call.
* Where a point SELECT's time goes: the same calls without any yield, and a
  bare checkpoint.

Each pair alternates D1 and raw rounds and keeps the median of 3, so a
noisy neighbour hits both sides. Cloudflare's local runtime measured
~2,900 single INSERTs/s and ~38,000 batched rows/s on our machine
(reference/measured-limits.md). ``SHARDSIM_BENCH_SCALE`` scales the counts.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

from runtime import DurableObject, open_runtime
from runtime.d1 import D1Database, close_d1, open_d1
from runtime.d1._core import first_of
from runtime.d1._trio import TrioDriver

from ._report import report

SUITE = "d1"
SCALE = float(os.environ.get("SHARDSIM_BENCH_SCALE", "1.0"))
ROUNDS = 3
SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"
INSERT = "INSERT INTO t (v) VALUES (?)"
SELECT = "SELECT id, v FROM t WHERE id = ?"


def _n(base: int) -> int:
    return max(100, int(base * SCALE))


def _raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    return conn


def raw_inserts(path: Path, n: int) -> float:
    """Single-row INSERT in autocommit (one transaction each), inline."""
    conn = _raw(path)
    start = time.perf_counter()
    for i in range(n):
        conn.execute(INSERT, (f"value {i}",))
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def raw_selects(path: Path, n: int, rows: int) -> float:
    """Point SELECT by primary key, inline."""
    conn = _raw(path)
    start = time.perf_counter()
    for i in range(n):
        conn.execute(SELECT, (i % rows + 1,)).fetchone()
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


async def _with_db(path: Path, fn: Callable[[D1Database], Awaitable[float]]) -> float:
    db = open_d1(path)
    try:
        await db.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        return await fn(db)
    finally:
        close_d1(db)


def d1_inserts(path: Path, n: int) -> float:
    async def body(db: D1Database) -> float:
        start = time.perf_counter()
        for i in range(n):
            await db.prepare(INSERT).bind(f"value {i}").run()
        return n / (time.perf_counter() - start)

    return trio.run(_with_db, path, body)


def d1_selects(path: Path, n: int, rows: int) -> float:
    async def body(db: D1Database) -> float:
        start = time.perf_counter()
        for i in range(n):
            await db.prepare(SELECT).bind(i % rows + 1).first()
        return n / (time.perf_counter() - start)

    return trio.run(_with_db, path, body)


def d1_selects_inline(path: Path, n: int, rows: int) -> float:
    """The same calls run by the core and the driver without the trio checkpoint (where the time goes)."""

    async def body(db: D1Database) -> float:
        driver = db._driver
        assert isinstance(driver, TrioDriver)
        start = time.perf_counter()
        for i in range(n):
            first_of(driver.query_sync(SELECT, (i % rows + 1,)), None)
        return n / (time.perf_counter() - start)

    return trio.run(_with_db, path, body)


class Reader(DurableObject):
    """An object whose handlers the benchmark runs D1 queries in."""


def d1_selects_in_object(n: int, rows: int) -> float:
    """Point SELECTs awaited inside one object's event, where every call opens the input gate."""

    async def main() -> float:
        async with open_runtime(objects={"R": Reader}, d1={"DB": "bench"}, seed=1) as rt:
            db = rt.env.DB
            await db.exec(SCHEMA)
            insert = db.prepare(INSERT)
            for start in range(0, rows, 1000):
                await db.batch([insert.bind(f"value {i}") for i in range(start, min(rows, start + 1000))])

            async def loop(instance: Reader, ctx: object) -> float:
                env_db = instance.env.DB
                t0 = time.perf_counter()
                for i in range(n):
                    await env_db.prepare(SELECT).bind(i % rows + 1).first()
                return n / (time.perf_counter() - t0)

            rate: float = await rt.run_in_object(rt.env.R.getByName("bench"), loop)
            return rate

    return trio.run(main)


def trio_checkpoints(n: int) -> float:
    """A bare ``trio.lowlevel.checkpoint()``: what every D1 call pays to open the input gate."""

    async def body() -> float:
        start = time.perf_counter()
        for _ in range(n):
            await trio.lowlevel.checkpoint()
        return n / (time.perf_counter() - start)

    return trio.run(body)


def d1_batches(path: Path, size: int, batches: int) -> float:
    async def body(db: D1Database) -> float:
        stmt = db.prepare(INSERT)
        start = time.perf_counter()
        for b in range(batches):
            await db.batch([stmt.bind(f"value {b}.{i}") for i in range(size)])
        return size * batches / (time.perf_counter() - start)

    return trio.run(_with_db, path, body)


def raw_batches(path: Path, size: int, batches: int) -> float:
    """The same rows through executemany inside BEGIN/COMMIT, for reference."""
    conn = _raw(path)
    start = time.perf_counter()
    for b in range(batches):
        conn.execute("BEGIN")
        conn.executemany(INSERT, [(f"value {b}.{i}",) for i in range(size)])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return size * batches / elapsed


def _pair(d1: Callable[[], float], raw: Callable[[], float]) -> tuple[float, float]:
    d1_rates, raw_rates = [], []
    for _ in range(ROUNDS):
        d1_rates.append(d1())
        raw_rates.append(raw())
    return statistics.median(d1_rates), statistics.median(raw_rates)


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="shardsim-bench-d1-") as tmp:
        root = Path(tmp)
        d1_path, raw_path = root / "d1.sqlite", root / "raw.sqlite"

        n = _n(10_000)
        d1_rate, raw_rate = _pair(lambda: d1_inserts(d1_path, n), lambda: raw_inserts(raw_path, n))
        report(SUITE, "insert_single_d1", d1_rate, "inserts/s", n=n)
        report(SUITE, "insert_single_raw_sqlite3", raw_rate, "inserts/s", n=n)
        report(SUITE, "insert_single_d1_vs_raw", 100.0 * d1_rate / raw_rate, "%", target=">= 50")

        rows = n * ROUNDS
        m = _n(25_000)
        d1_rate, raw_rate = _pair(
            lambda: d1_selects(d1_path, m, rows), lambda: raw_selects(raw_path, m, rows)
        )
        report(SUITE, "point_select_d1", d1_rate, "selects/s", n=m)
        report(SUITE, "point_select_raw_sqlite3", raw_rate, "selects/s", n=m)
        report(SUITE, "point_select_d1_vs_raw", 100.0 * d1_rate / raw_rate, "%", target=">= 50")

        rate = statistics.median(d1_selects_in_object(m, rows) for _ in range(ROUNDS))
        report(SUITE, "point_select_d1_inside_object", rate, "selects/s", n=m)
        rate = statistics.median(d1_selects_inline(d1_path, m, rows) for _ in range(ROUNDS))
        report(SUITE, "point_select_d1_without_checkpoint", rate, "selects/s", n=m)
        rate = statistics.median(trio_checkpoints(m) for _ in range(ROUNDS))
        report(SUITE, "trio_checkpoint", rate, "checkpoints/s", n=m)

        for size, batches in ((100, max(5, int(100 * SCALE))), (1000, max(2, int(20 * SCALE)))):
            d1_rate, raw_rate = _pair(
                partial(d1_batches, d1_path, size, batches), partial(raw_batches, raw_path, size, batches)
            )
            report(SUITE, f"batch_{size}_inserts_d1", d1_rate, "rows/s", batches=batches)
            report(
                SUITE, f"batch_{size}_inserts_raw_sqlite3_executemany", raw_rate, "rows/s", batches=batches
            )


if __name__ == "__main__":
    run()
