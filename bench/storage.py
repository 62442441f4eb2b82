"""Storage hot-path benchmarks (issue: SQL storage API and alarms): our storage beside raw sqlite3.

Every figure is measured side by side with raw inline sqlite3 on the same
kind of file (WAL, synchronous=NORMAL, exclusive locking, as every object
database is opened) in the same process and run, and
reported as a ratio (targets: >= 0.5). No trio: storage runs with a host that
only counts, so the figures measure the storage layer's own overhead.

* ``kv_put_commit``: ``storage.put(key, value)`` + ``db.commit()`` per event, vs
  ``BEGIN`` / upsert / ``COMMIT``.
* ``kv_get``: ``await storage.get(key)`` (driven without an event loop), vs a
  point ``SELECT`` on the KV table.
* ``sql_point_read``: ``sql.exec("SELECT ... WHERE id = ?", i).one()``, vs
  ``execute(...).fetchone()``.
* ``sql_write_commit``: ``sql.exec("INSERT OR REPLACE ...", i, v)`` + ``db.commit()``,
  vs ``BEGIN`` / the same statement / ``COMMIT``.

Each figure is the median of 3 short rounds. ``SHARDSIM_BENCH_SCALE`` (default
1.0) scales the iteration counts.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from runtime.storage import ConnectionPool, DurableObjectStorage, ObjectDatabase, StorageLimits

from ._report import report

SUITE = "storage"
SCALE = float(os.environ.get("SHARDSIM_BENCH_SCALE", "1.0"))
ROUNDS = 3
KEYS = 1000


def _n(base: int) -> int:
    return max(100, int(base * SCALE))


class _CountingHost:
    """The actor's side of the storage seam, reduced to counting writes."""

    def __init__(self) -> None:
        self.writes = 0

    def wrote(self, *, confirmed: bool) -> None:
        self.writes += 1

    async def wait_durable(self) -> None:  # pragma: no cover - not used by these figures
        pass

    def close_input_gate(self) -> None:  # pragma: no cover
        pass

    def open_input_gate(self) -> None:  # pragma: no cover
        pass

    def check_alive(self) -> None:
        pass

    def alarm_changed(self, scheduled_ms: int | None) -> None:  # pragma: no cover
        pass


def _value(awaitable: Awaitable[Any]) -> Any:
    """The result of a storage awaitable that never suspends, as ``await`` would give it."""
    gen = awaitable.__await__()
    try:
        next(gen)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("a storage read suspended")  # pragma: no cover


def _raw(path: Path) -> sqlite3.Connection:
    """A raw connection with the settings of an object database (see ``_engine._open``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _rate(n: int, fn: Callable[[int], None]) -> float:
    start = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - start)


def _side_by_side(name: str, n: int, ours: Callable[[int], None], raw: Callable[[int], None]) -> None:
    ours_rates: list[float] = []
    raw_rates: list[float] = []
    for _ in range(ROUNDS):  # interleaved, so drift in the machine hits both alike
        raw_rates.append(_rate(n, raw))
        ours_rates.append(_rate(n, ours))
    ours_median = statistics.median(ours_rates)
    raw_median = statistics.median(raw_rates)
    report(
        SUITE, name, ours_median, "ops/s", raw=round(raw_median, 1), ratio=round(ours_median / raw_median, 3)
    )


def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pool = ConnectionPool(max_open=8)
        db = ObjectDatabase(root / "object.sqlite", pool)
        host = _CountingHost()
        storage = DurableObjectStorage(db, host, StorageLimits.sqlite(), compat_delete_all_deletes_alarm=True)
        sql = storage.sql
        raw = _raw(root / "raw.sqlite")
        raw.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        keys = [f"key-{i}" for i in range(KEYS)]
        for i, key in enumerate(keys):
            storage.put(key, i)
            sql.exec("INSERT INTO t VALUES (?, ?)", i, f"value-{i}")
            raw.execute("INSERT INTO kv VALUES (?, ?)", (key, b"\x01"))
            raw.execute("INSERT INTO t VALUES (?, ?)", (i, f"value-{i}"))
        db.commit()

        def kv_put(n: int) -> None:
            put, commit = storage.put, db.commit
            for i in range(n):
                put(keys[i % KEYS], i)
                commit()

        def raw_put(n: int) -> None:
            execute = raw.execute
            for i in range(n):
                execute("BEGIN")
                execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (keys[i % KEYS], b"\x01"))
                execute("COMMIT")

        def kv_get(n: int) -> None:
            get = storage.get
            for i in range(n):
                _value(get(keys[i % KEYS]))

        def raw_get(n: int) -> None:
            execute = raw.execute
            for i in range(n):
                execute("SELECT value FROM kv WHERE key = ?", (keys[i % KEYS],)).fetchone()

        def sql_read(n: int) -> None:
            run_sql = sql.exec
            for i in range(n):
                run_sql("SELECT v FROM t WHERE id = ?", i % KEYS).one()

        def raw_read(n: int) -> None:
            execute = raw.execute
            for i in range(n):
                execute("SELECT v FROM t WHERE id = ?", (i % KEYS,)).fetchone()

        def sql_write(n: int) -> None:
            run_sql, commit = sql.exec, db.commit
            for i in range(n):
                run_sql("INSERT OR REPLACE INTO t (id, v) VALUES (?, ?)", i % KEYS, "w")
                commit()

        def raw_write(n: int) -> None:
            execute = raw.execute
            for i in range(n):
                execute("BEGIN")
                execute("INSERT OR REPLACE INTO t (id, v) VALUES (?, ?)", (i % KEYS, "w"))
                execute("COMMIT")

        _side_by_side("kv_put_commit", _n(10_000), kv_put, raw_put)
        _side_by_side("kv_get", _n(50_000), kv_get, raw_get)
        _side_by_side("sql_point_read", _n(50_000), sql_read, raw_read)
        _side_by_side("sql_write_commit", _n(10_000), sql_write, raw_write)
        raw.close()
        pool.close_all()


if __name__ == "__main__":
    run()
