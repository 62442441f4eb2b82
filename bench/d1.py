"""D1 benchmarks (issue: D1, the SQLite store behind the objects).

Figures, one JSON line each:

* Single-statement INSERT per second through ``env.DB``-style calls
  (``prepare().bind().run()``, trio driver, file on disk) and through raw
  inline sqlite3 on an identical file, measured side by side in this run;
  the ratio (target: >= 50 %).
* Point SELECT by primary key per second, the same way (``first()`` vs
  ``execute().fetchone()``).
* ``batch()`` of 100 and of 1,000 INSERTs, in rows/s.
* Point SELECTs awaited inside an object's event, where every call passes a
  full trio checkpoint (the input gate opens); outside objects a call yields
  only when other tasks are queued, or every 16th call.
* Where the time of a point SELECT and of an INSERT goes, in microseconds
  per call (``*_us_*``), rung by rung: raw sqlite3; the D1 core and trio
  driver alone (``query_sync``: statement cache, the cursor, the outcome,
  the bookmark, for INSERT the size after it); plus the gates (output gate
  or cancellation check and a yield every 16th call); plus result shaping
  (``first()``'s dict, ``run()``'s ``D1Result`` and ``meta``); the whole API
  call (``prepare()``, ``bind()``, its coroutine). A bare trio checkpoint too.
  For the point SELECT two more: raw sqlite3 on one reused cursor, as the
  driver runs a single statement (``select_us_raw_sqlite3_one_cursor``; the
  raw figures above make a cursor per call, as ``conn.execute`` does), and
  ``first()``'s own path, which runs the statement and builds the row without
  an outcome (``select_us_d1_first_path``: gates, statement and row; the
  rungs before it are the general path that ``all()`` and ``raw()`` take).

The baseline is like for like. Raw sqlite3 gets the connection the D1
driver opens, minus what D1 adds (the authorizer, production's limits):
``isolation_level=None`` (autocommit, one transaction per INSERT),
``timeout=0``, ``check_same_thread=False``, WAL and ``synchronous=NORMAL``
(checked against the D1 connection each round), the default statement
cache. It runs the same SQL text with the same single bound value, on its
own file that holds the same rows. Both sides start each round with their
WAL folded into the file (the last connection to close checkpoints it).
The raw side returns a tuple where D1 returns a dict and meta, which is
the point of comparing.

Each pair alternates D1 and raw runs over 5 rounds and keeps the medians;
a ratio is the median of the rounds' ratios (see ``_pair``), so a noisy
neighbour hits both sides. Cloudflare's local runtime measured
~2,900 single INSERTs/s and ~38,000 batched rows/s on our machine (Nov
2026). ``SHARDSIM_BENCH_SCALE`` scales the counts.
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
from typing import TypeVar

import trio

from runtime import DurableObject, open_runtime
from runtime.d1 import D1Database, close_d1, open_d1
from runtime.d1._core import first_of, result_of
from runtime.d1._trio import TrioDriver

from ._report import report

T = TypeVar("T")

SUITE = "d1"
SCALE = float(os.environ.get("SHARDSIM_BENCH_SCALE", "1.0"))
ROUNDS = 5
SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"
INSERT = "INSERT INTO t (v) VALUES (?)"
SELECT = "SELECT id, v FROM t WHERE id = ?"


def _n(base: int) -> int:
    return max(100, int(base * SCALE))


def _raw(path: Path) -> sqlite3.Connection:
    # The D1 driver's settings (runtime.d1._trio.connect), written out: see the module docstring.
    conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    return conn


def _settings(conn: sqlite3.Connection) -> tuple[object, ...]:
    return (
        conn.isolation_level,
        conn.execute("PRAGMA journal_mode").fetchone()[0],
        conn.execute("PRAGMA synchronous").fetchone()[0],
    )


def _check_like_for_like(raw: sqlite3.Connection, db: D1Database) -> None:
    driver = db._driver
    assert isinstance(driver, TrioDriver)
    conn = driver._conn
    assert conn is not None
    # The authorizer refuses these PRAGMAs to user SQL; ours is the bench's own check.
    driver.engine.authorizer.internal = True
    try:
        d1 = _settings(conn)
    finally:
        driver.engine.authorizer.internal = False
    assert _settings(raw) == d1, f"raw sqlite3 {_settings(raw)} != D1 {d1}"


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


async def _with_db(path: Path, fn: Callable[[D1Database], Awaitable[T]]) -> T:
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


def _us(calls: int, start: float) -> float:
    return (time.perf_counter() - start) / calls * 1e6


def breakdown(d1_path: Path, raw_path: Path, n: int, rows: int) -> dict[str, float]:
    """Microseconds per call of each rung (see the module docstring), INSERT and point SELECT."""

    async def body(db: D1Database) -> dict[str, float]:
        driver = db._driver
        assert isinstance(driver, TrioDriver)
        raw = _raw(raw_path)
        _check_like_for_like(raw, db)
        out: dict[str, float] = {}
        try:
            t = time.perf_counter()
            for i in range(n):
                raw.execute(SELECT, (i % rows + 1,)).fetchone()
            out["select_raw_sqlite3"] = _us(n, t)
            cursor = raw.cursor()
            t = time.perf_counter()
            for i in range(n):
                cursor.execute(SELECT, (i % rows + 1,)).fetchall()
            out["select_raw_sqlite3_one_cursor"] = _us(n, t)
            t = time.perf_counter()
            for i in range(n):
                driver.query_sync(SELECT, (i % rows + 1,), False)
            out["select_d1_core"] = _us(n, t)
            t = time.perf_counter()
            for i in range(n):
                await driver.query(SELECT, (i % rows + 1,), False)
            out["select_d1_core_gates"] = _us(n, t)
            t = time.perf_counter()
            for i in range(n):
                first_of(await driver.query(SELECT, (i % rows + 1,), False), None)
            out["select_d1_core_gates_shaping"] = _us(n, t)
            t = time.perf_counter()
            for i in range(n):
                await driver.first(SELECT, (i % rows + 1,))
            out["select_d1_first_path"] = _us(n, t)
            t = time.perf_counter()
            for i in range(n):
                await db.prepare(SELECT).bind(i % rows + 1).first()
            out["select_d1_api"] = _us(n, t)

            t = time.perf_counter()
            for i in range(n):
                raw.execute(INSERT, (f"value {i}",))
            out["insert_raw_sqlite3"] = _us(n, t)
            t = time.perf_counter()
            for i in range(n):
                driver.query_sync(INSERT, (f"value {i}",), True)
            out["insert_d1_core"] = _us(n, t)
            t = time.perf_counter()
            for i in range(n):
                await driver.query(INSERT, (f"value {i}",), True)
            out["insert_d1_core_gates"] = _us(n, t)
            t = time.perf_counter()
            for i in range(n):
                result_of(await driver.query(INSERT, (f"value {i}",), True))
            out["insert_d1_core_gates_shaping"] = _us(n, t)
            t = time.perf_counter()
            for i in range(n):
                await db.prepare(INSERT).bind(f"value {i}").run()
            out["insert_d1_api"] = _us(n, t)
        finally:
            raw.close()
        return out

    return trio.run(_with_db, d1_path, body)


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


def _pair(d1: Callable[[], float], raw: Callable[[], float]) -> tuple[float, float, float]:
    """Median D1 rate, median raw rate, and the median of each round's D1/raw ratio in %.

    The ratio is taken within a round, from two runs next to each other, so a
    burst of load from a neighbour skews one round rather than one side; who
    runs first alternates from round to round.
    """
    d1_rates, raw_rates, ratios = [], [], []
    for i in range(ROUNDS):
        if i % 2:
            raw_rate = raw()
            d1_rate = d1()
        else:
            d1_rate = d1()
            raw_rate = raw()
        d1_rates.append(d1_rate)
        raw_rates.append(raw_rate)
        ratios.append(100.0 * d1_rate / raw_rate)
    return statistics.median(d1_rates), statistics.median(raw_rates), statistics.median(ratios)


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="shardsim-bench-d1-") as tmp:
        root = Path(tmp)
        d1_path, raw_path = root / "d1.sqlite", root / "raw.sqlite"

        n = _n(10_000)
        d1_rate, raw_rate, ratio = _pair(lambda: d1_inserts(d1_path, n), lambda: raw_inserts(raw_path, n))
        report(SUITE, "insert_single_d1", d1_rate, "inserts/s", n=n)
        report(SUITE, "insert_single_raw_sqlite3", raw_rate, "inserts/s", n=n)
        report(SUITE, "insert_single_d1_vs_raw", ratio, "%", target=">= 50", rounds=ROUNDS)

        rows = n * ROUNDS
        m = _n(25_000)
        d1_rate, raw_rate, ratio = _pair(
            lambda: d1_selects(d1_path, m, rows), lambda: raw_selects(raw_path, m, rows)
        )
        report(SUITE, "point_select_d1", d1_rate, "selects/s", n=m)
        report(SUITE, "point_select_raw_sqlite3", raw_rate, "selects/s", n=m)
        report(SUITE, "point_select_d1_vs_raw", ratio, "%", target=">= 50", rounds=ROUNDS)

        rate = statistics.median(d1_selects_in_object(m, rows) for _ in range(ROUNDS))
        report(SUITE, "point_select_d1_inside_object", rate, "selects/s", n=m)
        k = _n(10_000)
        ladders = [breakdown(d1_path, raw_path, k, rows) for _ in range(ROUNDS)]
        for rung in ladders[0]:
            us = statistics.median(ladder[rung] for ladder in ladders)
            report(SUITE, f"{rung.split('_', 1)[0]}_us_{rung.split('_', 1)[1]}", us, "us/call", n=k)
        us = statistics.median(1e6 / trio_checkpoints(m) for _ in range(ROUNDS))
        report(SUITE, "trio_checkpoint_us", us, "us/call", n=m)

        for size, batches in ((100, max(5, int(100 * SCALE))), (1000, max(2, int(20 * SCALE)))):
            d1_rate, raw_rate, _ = _pair(
                partial(d1_batches, d1_path, size, batches), partial(raw_batches, raw_path, size, batches)
            )
            report(SUITE, f"batch_{size}_inserts_d1", d1_rate, "rows/s", batches=batches)
            report(
                SUITE, f"batch_{size}_inserts_raw_sqlite3_executemany", raw_rate, "rows/s", batches=batches
            )


if __name__ == "__main__":
    run()
