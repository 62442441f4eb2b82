"""The trio driver inside the runtime: env bindings, the input gate, files, lifetime."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
import trio
import trio.testing

from runtime import DurableObject, ObjectResetError, open_runtime
from runtime.d1 import D1Database, D1QueryError, close_d1, open_d1
from runtime.d1._trio import TrioDriver, WalPages
from tests.runtime.conftest import config

#: Set by Notes.slow once it runs (module globals outlive instances, as in production).
SLOW_STARTED: list[trio.Event] = []


class Notes(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.log: list[str] = []

    async def add(self, text):
        row = await self.env.DB.prepare("INSERT INTO notes (text) VALUES (?) RETURNING id").bind(text).first()
        return row.id

    async def texts(self):
        result = await self.env.DB.prepare("SELECT text FROM notes ORDER BY id").all()
        return [r.text for r in result.results]

    async def slow(self):
        self.log = ["slow start"]
        SLOW_STARTED[0].set()
        for _ in range(100):  # keeps awaiting D1 until the other event got in (bounded)
            await self.env.DB.prepare("SELECT 1").all()
            if "fast" in self.log:
                break
        self.log.append("slow end")
        return list(self.log)

    async def fast(self):
        self.log.append("fast")

    async def remember_then_insert(self, text):
        self.ctx.storage.put("last", text)  # not awaited: the D1 call must wait for it
        await self.env.DB.prepare("INSERT INTO notes (text) VALUES (?)").bind(text).run()


async def schema(db: D1Database) -> None:
    await db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")


async def test_object_reads_and_writes_d1_through_env(tmp_path: Path):
    """An object writes and reads D1 through env.DB; the file is d1/<database name>.sqlite."""
    async with open_runtime(
        objects={"NOTES": Notes}, d1={"DB": "main"}, state_dir=tmp_path, config=config()
    ) as rt:
        await schema(rt.env.DB)
        stub = rt.env.NOTES.getByName("a")
        assert await stub.add("one") == 1
        assert await stub.add("two") == 2
        assert await stub.texts() == ["one", "two"]
    assert (tmp_path / "d1" / "main.sqlite").is_file()
    async with open_runtime(
        objects={"NOTES": Notes}, d1={"DB": "main"}, state_dir=tmp_path, config=config()
    ) as rt:
        assert await rt.env.NOTES.getByName("b").texts() == ["one", "two"]


async def test_awaiting_d1_opens_the_input_gate():
    """While a handler awaits D1, another event to the same object runs."""
    async with open_runtime(objects={"NOTES": Notes}, d1={"DB": "main"}, config=config()) as rt:
        stub = rt.env.NOTES.getByName("a")
        await stub.fast()  # activate
        result: list[list[str]] = []
        SLOW_STARTED[:] = [trio.Event()]

        async def slow() -> None:
            result.append(await stub.slow())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow)
            await SLOW_STARTED[0].wait()
            nursery.start_soon(stub.fast)
        log = result[0]
        assert log == ["slow start", "fast", "slow end"]


async def test_bindings_may_share_a_database():
    """Two bindings naming one database see the same rows."""
    async with open_runtime(d1={"DB": "main", "ALSO": "main", "OTHER": "other"}, config=config()) as rt:
        assert rt.env.DB is rt.env.ALSO
        assert rt.env.DB is not rt.env.OTHER
        await schema(rt.env.DB)
        with pytest.raises(D1QueryError, match="no such table: notes"):
            await rt.env.OTHER.prepare("SELECT * FROM notes").all()


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden"])
async def test_invalid_database_names_are_refused(name: str):
    """A database name must be a plain file name."""
    with pytest.raises(ValueError, match="invalid database name"):
        async with open_runtime(d1={"DB": name}, config=config()):
            pass  # pragma: no cover


async def test_binding_names_must_be_unique():
    """A D1 binding may not reuse a var's name."""
    with pytest.raises(ValueError, match="declared twice"):
        async with open_runtime(d1={"X": "main"}, vars={"X": "1"}, config=config()):
            pass  # pragma: no cover


async def test_databases_close_with_the_runtime():
    """After the runtime closed, its D1 bindings fail with D1_ERROR."""
    async with open_runtime(d1={"DB": "main"}, config=config()) as rt:
        db = rt.env.DB
        await db.prepare("SELECT 1").all()
    with pytest.raises(D1QueryError, match=r"^D1_ERROR: Cannot operate on a closed database\.$"):
        await db.prepare("SELECT 1").all()


async def test_duration_comes_from_the_runtime_clock(autojump_clock):
    """Under the MockClock, inline SQLite takes no virtual time."""
    async with open_runtime(d1={"DB": "main"}, config=config()) as rt:
        result = await rt.env.DB.prepare("SELECT 1").all()
        assert result.meta.duration == 0.0
        assert result.meta.timings.sql_duration_ms == 0.0
        out = await rt.env.DB.exec("CREATE TABLE t (a)")
        assert out.duration == 0.0


async def test_a_call_cancelled_before_it_ran_writes_nothing(tmp_path: Path):
    """Cancellation lands on the call's checkpoint, before any SQLite work."""
    db = open_d1(tmp_path / "x.sqlite")
    try:
        await db.exec("CREATE TABLE t (a)")
        with trio.CancelScope() as scope:
            scope.cancel()
            await db.prepare("INSERT INTO t VALUES (1)").run()
        assert scope.cancelled_caught
        assert await db.prepare("SELECT count(*) AS n FROM t").first("n") == 0
    finally:
        close_d1(db)


async def test_close_d1_refuses_other_drivers():
    """close_d1 only closes trio-driver databases."""
    with pytest.raises(TypeError, match="open_d1"):
        close_d1(D1Database(object(), "x"))  # type: ignore[arg-type]


async def test_d1_waits_for_earlier_storage_writes(autojump_clock):
    """Output gate: a D1 query after an unawaited put runs once the put is durable."""
    async with open_runtime(objects={"NOTES": Notes}, d1={"DB": "main"}, config=config()) as rt:
        await schema(rt.env.DB)
        stub = rt.env.NOTES.getByName("a")
        before = rt.statistics().commits
        await stub.remember_then_insert("one")
        assert rt.statistics().commits == before + 1
        assert rt.dump_storage(stub)["kv"] == {"last": "one"}
        assert await stub.texts() == ["one"]


async def test_d1_never_runs_after_a_failed_storage_write(autojump_clock):
    """If the writes before a D1 call are lost, the call fails and nothing reaches D1."""
    async with open_runtime(objects={"NOTES": Notes}, d1={"DB": "main"}, config=config()) as rt:
        await schema(rt.env.DB)
        stub = rt.env.NOTES.getByName("a")
        await stub.remember_then_insert("one")
        actor = rt._actor_of(stub)
        assert actor.db is not None
        actor.db.fail_next_commit("disk I/O error")
        with pytest.raises(ObjectResetError):
            await stub.remember_then_insert("two")
        assert await rt.env.NOTES.getByName("a").texts() == ["one"]


async def test_outside_objects_ready_tasks_run_at_least_every_16_calls(tmp_path: Path):
    """Outside an object there is no input gate, but other tasks are not starved either."""
    db = open_d1(tmp_path / "x.sqlite")
    turns: list[int] = []

    async def other() -> None:
        while True:
            turns.append(len(turns))
            await trio.lowlevel.checkpoint()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
            await trio.lowlevel.checkpoint()
            before = len(turns)
            # A yield lets `other` run by the next yield at the latest (trio may order the two
            # tasks either way in the next batch), and yields come at least every 16 calls:
            # 48 calls make three yields, so two turns of `other` are certain by the end.
            for _ in range(48):
                await db.prepare("SELECT 1").all()
            assert len(turns) - before >= 2
            nursery.cancel_scope.cancel()
    finally:
        close_d1(db)


async def test_a_busy_d1_loop_still_reaches_the_scheduler(tmp_path: Path, mock_clock):
    """With nothing else runnable, a loop of D1 calls still passes trio's scheduler every 16 calls."""
    db = open_d1(tmp_path / "x.sqlite")
    calls = 0
    try:
        with trio.move_on_after(5) as scope:
            mock_clock.jump(10)  # the deadline has passed; the scheduler notices at its next pass
            for _ in range(100):
                await db.prepare("SELECT 1").all()
                calls += 1
        assert scope.cancelled_caught
        assert calls < 16
    finally:
        close_d1(db)


def _page_count(path: Path) -> int:
    """``PRAGMA page_count`` on a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        pages: int = conn.execute("PRAGMA page_count").fetchone()[0]
        return pages
    finally:
        conn.close()


async def test_the_size_comes_from_the_wal_index_and_matches_page_count(tmp_path: Path):
    """On a WAL file the driver reads the page count from SQLite's WAL-index header, not a PRAGMA."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)  # SQLite names the -shm file after the resolved path
    path = tmp_path / "link" / "x.sqlite"
    db = open_d1(path)
    try:
        driver = db._driver
        assert isinstance(driver, TrioDriver)
        probe = driver._pages
        assert probe is not None
        await db.exec("CREATE TABLE t (v)")
        for i in range(40):
            result = await db.prepare("INSERT INTO t VALUES (?)").bind("x" * 300 * i).run()
            assert probe.pages() == _page_count(path)
            assert result.meta.size_after == probe.pages() * 4096
        assert probe.pages() > 40
    finally:
        close_d1(db)
    assert driver._pages is None


async def test_without_a_trusted_header_the_size_comes_from_page_count(tmp_path: Path, monkeypatch):
    """A memory database has no WAL index; a header caught mid-commit (pages() == 0) is not used."""
    memory = open_d1(":memory:")
    try:
        driver = memory._driver
        assert isinstance(driver, TrioDriver)
        assert driver._pages is None
        await memory.exec("CREATE TABLE t (v)")
        result = await memory.prepare("INSERT INTO t VALUES (?)").bind("x" * 20_000).run()
        answer = driver.run_sync(driver.engine._internal("PRAGMA page_count"))
        assert result.meta.size_after == answer.rows[0][0] * 4096 > 4 * 4096
    finally:
        close_d1(memory)

    monkeypatch.setattr(WalPages, "pages", lambda self: 0)
    path = tmp_path / "x.sqlite"
    db = open_d1(path)
    try:
        await db.exec("CREATE TABLE t (v)")
        for i in range(10):
            result = await db.prepare("INSERT INTO t VALUES (?)").bind("x" * 2000 * i).run()
            assert result.meta.size_after == _page_count(path) * 4096
    finally:
        close_d1(db)


def test_wal_pages_maps_only_a_header_that_describes_the_database(tmp_path: Path):
    """WalPages.open checks the header against the connection and refuses anything else."""
    path = tmp_path / "x.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (a)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        probe = WalPages.open(str(path), 4096, pages)
        assert probe is not None
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 10_000,))
        assert probe.pages() == conn.execute("PRAGMA page_count").fetchone()[0] > pages
        probe.close()
        assert WalPages.open(str(path), 4096, pages) is None  # the count moved on
        assert WalPages.open(str(path), 8192, probe_pages := _page_count(path)) is None
        assert WalPages.open(str(path), 4096, probe_pages) is not None
        assert WalPages.open(str(tmp_path / "missing.sqlite"), 4096, 1) is None
    finally:
        conn.close()
    journal = tmp_path / "journal.sqlite"  # rollback journal: no WAL index at all
    with contextlib.closing(sqlite3.connect(journal)) as other:
        other.execute("CREATE TABLE t (a)")
        other.commit()
        assert WalPages.open(str(journal), 4096, _page_count(journal)) is None


async def test_outside_objects_a_call_yields_only_for_runnable_tasks_or_cancellation(tmp_path: Path):
    """A checkpoint when tasks are runnable or the task is cancelled (it raises); else no checkpoint at all.

    A call that need not yield is no checkpoint for trio's testing helpers:
    ``assert_no_checkpoints`` holds around it (and ``assert_checkpoints``
    fails). Whether trio's internals and its public API agree on "runnable
    or cancelled" is pinned in tests/runtime/test_trio_compat.py.
    """
    db = open_d1(tmp_path / "x.sqlite")
    driver = db._driver
    assert isinstance(driver, TrioDriver)
    try:
        assert trio.lowlevel.current_statistics().tasks_runnable == 0
        with trio.testing.assert_no_checkpoints():
            assert driver._gate() is None
            await db.prepare("SELECT 1").all()  # far from the 16th call
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(trio.lowlevel.checkpoint)
            assert trio.lowlevel.current_statistics().tasks_runnable == 3
            gate = driver._gate()
            assert gate is not None
            with trio.testing.assert_checkpoints():
                await gate
        with trio.CancelScope() as scope:
            scope.cancel()
            gate = driver._gate()
            assert gate is not None
            await gate  # raises Cancelled, which the scope catches
            raise AssertionError("the gate of a cancelled task did not raise")
        assert scope.cancelled_caught
    finally:
        close_d1(db)
