"""Alarms: production's rules, under the virtual clock."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
import trio

from runtime import DurableObject, ObjectResetError, StorageError, now_ms, open_runtime

from .conftest import EPOCH_MS, config

LOG: list[Any] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    LOG.clear()


class Ticker(DurableObject):
    """Re-arms itself every second, like a shard ticking by alarm."""

    async def start(self, every_ms: int, times: int) -> None:
        self.ctx.storage.put("every", every_ms)
        self.ctx.storage.put("left", times)
        self.ctx.storage.setAlarm(now_ms() + every_ms)

    async def alarm(self, info) -> None:
        LOG.append(("alarm", now_ms() - EPOCH_MS, info.retryCount, await self.ctx.storage.getAlarm()))
        left = await self.ctx.storage.get("left") - 1
        self.ctx.storage.put("left", left)
        if left > 0:
            self.ctx.storage.setAlarm(now_ms() + await self.ctx.storage.get("every"))

    async def get_alarm(self) -> int | None:
        return await self.ctx.storage.getAlarm()

    async def set_alarm(self, when: Any) -> None:
        await self.ctx.storage.setAlarm(when)

    async def delete_alarm(self) -> None:
        await self.ctx.storage.deleteAlarm()


async def test_alarm_fires_at_its_time_and_can_rearm(autojump_clock) -> None:
    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        stub = rt.env.T.getByName("t")
        await stub.start(1000, 3)
        assert await stub.get_alarm() == EPOCH_MS + 1000
        await trio.sleep(10)
        # getAlarm() inside the handler: None unless re-armed (it re-arms after the read)
        assert LOG == [("alarm", 1000, 0, None), ("alarm", 2000, 0, None), ("alarm", 3000, 0, None)]
        assert await stub.get_alarm() is None


async def test_alarm_in_the_past_fires_at_once_and_datetimes_work(autojump_clock) -> None:
    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        stub = rt.env.T.getByName("t")
        await stub.start(1000, 1)
        await stub.set_alarm(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        # production stores a past time as "now"
        assert await stub.get_alarm() == EPOCH_MS
        await trio.sleep(0.001)
        assert LOG == [("alarm", 0, 0, None)]


async def test_delete_alarm_cancels_a_pending_alarm(autojump_clock) -> None:
    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        stub = rt.env.T.getByName("t")
        await stub.start(1000, 5)
        await stub.delete_alarm()
        await trio.sleep(60)
        assert LOG == []
        assert rt.get_alarm(stub) is None


async def test_an_alarm_wakes_a_hibernated_object_running_the_constructor_first(autojump_clock) -> None:
    class Sleepy(DurableObject):
        def __init__(self, ctx, env) -> None:
            super().__init__(ctx, env)
            LOG.append("constructed")

        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 60_000)

        async def alarm(self) -> None:  # the info argument is optional
            LOG.append("alarm")

    async with open_runtime(objects={"S": Sleepy}, config=config()) as rt:
        stub = rt.env.S.getByName("s")
        await stub.arm()
        await trio.sleep(30)
        assert rt.state_of(stub) == "hibernated"
        await trio.sleep(31)
        assert LOG == ["constructed", "constructed", "alarm"]


async def test_a_constructor_that_sets_the_alarm_unconditionally_clobbers_it(autojump_clock) -> None:
    """Gotcha 2."""

    class Clobber(DurableObject):
        def __init__(self, ctx, env) -> None:
            super().__init__(ctx, env)
            ctx.storage.setAlarm(now_ms() + 100_000)

        async def ping(self) -> None:
            pass

        async def alarm(self) -> None:
            LOG.append(now_ms() - EPOCH_MS)

    async with open_runtime(objects={"C": Clobber}, config=config()) as rt:
        stub = rt.env.C.getByName("c")
        await stub.ping()  # alarm at +100 s
        await trio.sleep(50)
        await rt.hibernate(stub)
        await rt.env.C.getByName("c").ping()  # the constructor pushes it to +150 s
        await trio.sleep(200)
        assert LOG == [150_000]


async def test_failed_alarm_retries_with_backoff_then_gives_up(autojump_clock) -> None:
    class Failing(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 1000)

        async def alarm(self, info) -> None:
            self.ctx.storage.put(f"attempt{info.retryCount}", True)  # kept despite the failure
            LOG.append((trio.current_time(), info.retryCount, info.isRetry))
            raise RuntimeError("flaky")

        async def keys(self) -> list[str]:
            return list(await self.ctx.storage.list())

    async with open_runtime(objects={"F": Failing}, config=config(), seed=11) as rt:
        stub = rt.env.F.getByName("f")
        t0 = trio.current_time()
        await stub.arm()
        await trio.sleep(1.5)
        # during the backoff getAlarm() reports the original (past) time
        assert rt.get_alarm(stub) == EPOCH_MS + 1000
        await trio.sleep(400)
        times = [t - t0 for t, _, _ in LOG]
        assert [r for _, r, _ in LOG] == [0, 1, 2, 3, 4, 5, 6]
        assert [i for _, _, i in LOG] == [False] + [True] * 6
        gaps = [b - a for a, b in itertools.pairwise(times)]
        for gap, base in zip(gaps, [2, 4, 8, 16, 32, 64], strict=True):
            assert base <= gap <= base * 1.25 + 1e-9
        assert rt.get_alarm(stub) is None  # dropped after 6 retries
        assert len(await stub.keys()) == 7


async def test_set_alarm_during_a_failed_run_replaces_the_retry(autojump_clock) -> None:
    class Rearm(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 1000)

        async def alarm(self, info) -> None:
            LOG.append((now_ms() - EPOCH_MS, info.retryCount))
            if len(LOG) == 1:
                self.ctx.storage.setAlarm(now_ms() + 10_000)
                raise RuntimeError("boom")

    async with open_runtime(objects={"R": Rearm}, config=config()) as rt:
        await rt.env.R.getByName("r").arm()
        await trio.sleep(60)
        assert LOG == [(1000, 0), (11_000, 0)]


async def test_abort_in_an_alarm_retries_unless_told_not_to(autojump_clock) -> None:
    class Aborting(DurableObject):
        async def arm(self, retry: bool) -> None:
            self.ctx.storage.put("retry", retry)
            self.ctx.storage.setAlarm(now_ms() + 1000)

        async def alarm(self, info) -> None:
            LOG.append(info.retryCount)
            if info.retryCount == 0:
                self.ctx.abort("restart", {"retryAlarm": await self.ctx.storage.get("retry")})

    async with open_runtime(objects={"A": Aborting, "B": Aborting}, config=config()) as rt:
        await rt.env.A.getByName("a").arm(True)
        await trio.sleep(30)
        assert LOG == [0, 1]
        LOG.clear()
        await rt.env.B.getByName("b").arm(False)
        await trio.sleep(30)
        assert LOG == [0]


async def test_other_events_flow_while_an_alarm_runs_and_only_one_alarm_runs(autojump_clock) -> None:
    class Slow(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms())

        async def alarm(self) -> None:
            LOG.append("alarm:start")
            self.ctx.storage.setAlarm(now_ms())  # due at once, but must wait for this run
            await trio.sleep(5)
            LOG.append("alarm:end")

        async def ping(self) -> str:
            LOG.append("ping")
            return "pong"

    async with open_runtime(objects={"S": Slow}, config=config()) as rt:
        stub = rt.env.S.getByName("s")
        await stub.arm()
        await trio.sleep(1)
        assert await stub.ping() == "pong"
        await trio.sleep(5.5)
        assert LOG[:4] == ["alarm:start", "ping", "alarm:end", "alarm:start"]


async def test_crash_mid_alarm_fires_it_again(autojump_clock) -> None:
    """At least once: the clear of the stored time was never committed."""

    class Crashy(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 1000)

        async def alarm(self, info) -> None:
            LOG.append(info.retryCount)
            if len(LOG) == 1:
                await trio.sleep(10)

    async with open_runtime(objects={"C": Crashy}, config=config()) as rt:
        stub = rt.env.C.getByName("c")
        await stub.arm()
        await trio.sleep(2)
        await rt.crash(stub)
        await trio.sleep(30)
        assert len(LOG) == 2
        assert rt.get_alarm(stub) is None


async def test_run_alarm_helper_runs_the_pending_alarm_now(autojump_clock) -> None:
    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        stub = rt.env.T.getByName("t")
        assert await rt.run_alarm(stub) is False
        await stub.start(3_600_000, 1)
        assert await rt.run_alarm(stub) is True
        assert LOG == [("alarm", 0, 0, None)]
        assert await rt.run_alarm(stub) is False
        await trio.sleep(4000)
        assert len(LOG) == 1


async def test_alarms_survive_a_restart_and_overdue_ones_fire_on_start(tmp_path, autojump_clock) -> None:
    async with open_runtime(objects={"T": Ticker}, state_dir=tmp_path, config=config()) as rt:
        await rt.env.T.getByName("soon").start(5_000, 1)
        await rt.env.T.getByName("later").start(3_600_000, 1)
    assert (tmp_path / "do" / "T" / "alarms.json").exists()
    # Reopen with the clock 10 s later: "soon" is overdue and fires at once.
    cfg = config().__class__(epoch_ms=EPOCH_MS + 10_000)
    async with open_runtime(objects={"T": Ticker}, state_dir=tmp_path, config=cfg) as rt:
        await trio.sleep(0.01)
        assert [entry[0] for entry in LOG] == ["alarm"]
        assert rt.get_alarm(rt.env.T.getByName("later")) == EPOCH_MS + 3_600_000


async def test_alarms_survive_a_restart_without_an_index(tmp_path, autojump_clock) -> None:
    async with open_runtime(objects={"T": Ticker}, state_dir=tmp_path, config=config()) as rt:
        await rt.env.T.getByName("soon").start(5_000, 1)
    (tmp_path / "do" / "T" / "alarms.json").unlink()
    async with open_runtime(objects={"T": Ticker}, state_dir=tmp_path, config=config()):
        await trio.sleep(6)
        assert len(LOG) == 1


@pytest.mark.parametrize(
    "bad", ["tomorrow", None, [1], -5, 0], ids=["str", "none", "list", "negative", "zero"]
)
async def test_bad_alarm_times_are_refused_and_nothing_is_written(bad, autojump_clock) -> None:
    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        stub = rt.env.T.getByName("t")
        with pytest.raises((TypeError, ValueError)):
            await stub.set_alarm(bad)
        assert rt.get_alarm(stub) is None


async def test_unawaited_set_alarm_is_rolled_back_by_a_crash(autojump_clock) -> None:
    from runtime._core import reset_error

    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        stub = rt.env.T.getByName("t")

        def arm_then_crash(inst, ctx) -> None:
            ctx.storage.setAlarm(now_ms() + 1000)
            rt._actor_of(stub).reset(reset_error("Network connection lost."), lose_writes=True)

        with pytest.raises(ObjectResetError):
            await rt.run_in_object(stub, arm_then_crash)
        await trio.sleep(5)
        assert LOG == []
        assert rt.get_alarm(stub) is None


async def test_failed_commit_of_an_alarm_write_resets(autojump_clock) -> None:
    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        stub = rt.env.T.getByName("t")
        await stub.start(1000, 1)
        db = rt._actor_of(stub).db
        assert db is not None
        db.fail_next_commit("disk full")
        with pytest.raises(ObjectResetError, match=r"^Internal error in Durable Object storage") as info:
            await stub.set_alarm(now_ms() + 50_000)
        assert isinstance(info.value.__cause__, StorageError)
        assert rt.get_alarm(rt.env.T.getByName("t")) == EPOCH_MS + 1000


async def test_an_internal_failure_never_takes_the_runtime_down_and_the_alarm_runs_later(
    autojump_clock, monkeypatch
) -> None:
    from runtime.storage import ObjectDatabase

    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        stub = rt.env.T.getByName("t")
        await stub.start(1000, 1)
        original = ObjectDatabase.get_alarm
        failures: list[int] = []

        def flaky(self):  # the database cannot be read, once
            if not failures:
                failures.append(1)
                raise StorageError("cannot open x.sqlite: unable to open database file: SQLITE_CANTOPEN")
            return original(self)

        monkeypatch.setattr(ObjectDatabase, "get_alarm", flaky)
        await trio.sleep(1.5)
        assert LOG == []  # the first attempt failed internally
        await trio.sleep(1)
        assert [entry[0] for entry in LOG] == ["alarm"]  # tried again, not counted as a retry
        assert LOG[0][2] == 0


async def test_the_pool_commits_early_rather_than_exceed_its_bound(autojump_clock) -> None:
    class Holder(DurableObject):
        async def hold(self, n: int) -> None:
            self.ctx.storage.put("n", n)
            await trio.sleep(1)  # the batch stays open while the event waits

        async def read(self) -> int:
            return int(await self.ctx.storage.get("n"))

    async with open_runtime(objects={"H": Holder}, config=config(max_open_databases=4)) as rt:
        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(rt.env.H.getByName(f"h{i}").hold, i)
        assert rt._pool.statistics().over_bound == 0
        assert rt.statistics().open_databases <= 4
        for i in range(12):
            assert await rt.env.H.getByName(f"h{i}").read() == i


async def test_a_crash_after_a_commit_inside_the_handler_still_fires_the_alarm_again(autojump_clock) -> None:
    """At least once: an outbound call commits the handler's writes, not the end of the run."""

    class Sink(DurableObject):
        async def take(self, n: int) -> None:
            pass

    class Caller(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 1000)

        async def alarm(self, info) -> None:
            self.ctx.storage.put("runs", (await self.ctx.storage.get("runs") or 0) + 1)
            await self.env.SINK.getByName("sink").take(1)  # the output gate commits the put
            LOG.append(await self.ctx.storage.getAlarm())
            if info.retryCount == 0 and len(LOG) == 1:
                await trio.sleep(10)  # crashed here

        async def runs(self) -> int:
            return int(await self.ctx.storage.get("runs"))

    async with open_runtime(objects={"C": Caller, "SINK": Sink}, config=config()) as rt:
        stub = rt.env.C.getByName("c")
        await stub.arm()
        await trio.sleep(2)
        assert LOG == [None]  # getAlarm() inside the handler, after the commit
        assert rt.get_alarm(stub) is None  # what the object sees while the handler runs
        db = rt._actor_of(stub).db
        assert db is not None
        assert not db.dirty  # so the connection shows what is durable: the time is still stored
        conn = db.read_connection()
        assert conn is not None
        durable = conn.execute("SELECT value FROM _cf_METADATA WHERE name = 'alarm'").fetchall()
        assert durable == [(EPOCH_MS + 1000,)]  # a process killed now fires it again
        await rt.crash(stub)
        await trio.sleep(5)
        assert LOG == [None, None]  # fired again
        assert await stub.runs() == 2  # the first run's committed write was kept
        assert rt.get_alarm(stub) is None


async def test_a_successful_run_deletes_the_alarm_in_the_batch_of_its_writes(autojump_clock) -> None:
    """Persisted with the batch: a failed final commit keeps the alarm, which fires again."""

    class Once(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 1000)

        async def alarm(self) -> None:
            LOG.append(now_ms() - EPOCH_MS)
            self.ctx.storage.put("done", True)
            if len(LOG) == 1:
                db = rt._actor_of(stub).db
                assert db is not None
                db.fail_next_commit("disk full")

        async def done(self) -> bool:
            return bool(await self.ctx.storage.get("done"))

    async with open_runtime(objects={"O": Once}, config=config(), seed=3) as rt:
        stub = rt.env.O.getByName("o")
        await stub.arm()
        await trio.sleep(1.5)
        assert LOG == [1000]
        assert rt.get_alarm(stub) == EPOCH_MS + 1000  # rolled back with the put: retried
        await trio.sleep(5)
        assert len(LOG) == 2
        assert rt.get_alarm(stub) is None
        assert await stub.done() is True


async def test_a_transaction_rolled_back_in_the_handler_leaves_the_alarm_deleted(autojump_clock) -> None:
    class Txn(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 1000)

        async def alarm(self) -> None:
            async def body(txn) -> None:
                txn.setAlarm(now_ms() + 5000)
                txn.rollback()

            await self.ctx.storage.transaction(body)
            LOG.append(await self.ctx.storage.getAlarm())

    async with open_runtime(objects={"T": Txn}, config=config()) as rt:
        stub = rt.env.T.getByName("t")
        await stub.arm()
        await trio.sleep(10)
        assert LOG == [None]
        assert rt.get_alarm(stub) is None


async def test_a_handler_that_suspends_holds_up_no_other_alarm(autojump_clock) -> None:
    class Sleeper(DurableObject):
        async def arm(self, in_ms: int, sleep: float) -> None:
            self.ctx.storage.put("sleep", sleep)
            self.ctx.storage.setAlarm(now_ms() + in_ms)

        async def alarm(self) -> None:
            LOG.append(("start", self.ctx.id.name, now_ms() - EPOCH_MS))
            await trio.sleep(await self.ctx.storage.get("sleep"))
            LOG.append(("end", self.ctx.id.name, now_ms() - EPOCH_MS))

    async with open_runtime(objects={"S": Sleeper}, config=config()) as rt:
        await rt.env.S.getByName("slow").arm(1000, 10.0)
        await rt.env.S.getByName("quick").arm(2000, 0.0)
        await trio.sleep(20)
        assert LOG == [
            ("start", "slow", 1000),
            ("start", "quick", 2000),
            ("end", "quick", 2000),
            ("end", "slow", 11_000),
        ]


async def test_a_handler_that_suspends_is_cut_at_the_time_limit_and_retried(autojump_clock) -> None:
    class Stuck(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 1000)

        async def alarm(self, info) -> None:
            LOG.append(info.retryCount)
            if info.retryCount == 0:
                await trio.sleep(3600)

    async with open_runtime(objects={"S": Stuck}, config=config(alarm_time_limit=60.0), seed=5) as rt:
        await rt.env.S.getByName("s").arm()
        await trio.sleep(30)
        assert LOG == [0]
        await trio.sleep(40)  # cut at 61 s, retried 2-2.5 s later
        assert LOG == [0, 1]


async def test_an_alarm_waits_for_a_closed_input_gate(autojump_clock) -> None:
    class Gated(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 1000)

            async def hold() -> None:
                await trio.sleep(5)
                LOG.append(("gate opens", now_ms() - EPOCH_MS))

            self.ctx.blockConcurrencyWhile(hold)

        async def alarm(self) -> None:
            LOG.append(("alarm", now_ms() - EPOCH_MS))

    async with open_runtime(objects={"G": Gated}, config=config()) as rt:
        await rt.env.G.getByName("g").arm()
        await trio.sleep(10)
        assert LOG == [("gate opens", 5000), ("alarm", 5000)]


async def test_alarms_that_cannot_suspend_run_without_a_task_each(autojump_clock) -> None:
    """A task per alarm cost more than the alarm: 200 alarms must not start 200 tasks."""

    class Count(trio.abc.Instrument):
        spawned = 0

        def task_spawned(self, task: trio.lowlevel.Task) -> None:
            Count.spawned += 1

    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        for i in range(100):
            await rt.env.T.getByName(f"t{i}").start(1000, 2)
        instrument = Count()
        trio.lowlevel.add_instrument(instrument)
        try:
            await trio.sleep(2.5)
        finally:
            trio.lowlevel.remove_instrument(instrument)
        assert len(LOG) == 200
        assert Count.spawned <= 4  # the dispatcher, once per second (its queue empties)


async def test_alarms_queued_but_not_run_at_close_are_in_the_index(tmp_path, autojump_clock) -> None:
    async with open_runtime(objects={"T": Ticker}, state_dir=tmp_path, config=config()) as rt:
        stub = rt.env.T.getByName("t")
        await stub.start(5_000, 1)
        actor = rt._actor_of(stub)
        rt._alarms._fire(actor)  # its timer fired; the dispatcher has not run yet
        # The runtime closes here, before any checkpoint.
    assert '"' + actor.id.toString() + '"' in (tmp_path / "do" / "T" / "alarms.json").read_text()
    async with open_runtime(objects={"T": Ticker}, state_dir=tmp_path, config=config()) as rt:
        await trio.sleep(6)
        assert [entry[0] for entry in LOG] == ["alarm"]


async def test_an_alarm_cut_by_the_shutdown_fires_after_a_restart(tmp_path, autojump_clock) -> None:
    """Nothing reopens a database after close, and the unfinished run's time stands."""

    class Long(DurableObject):
        async def arm(self) -> None:
            self.ctx.storage.setAlarm(now_ms() + 1000)

        async def alarm(self) -> None:
            LOG.append("start")
            await trio.sleep(100)
            LOG.append("end")

    async with open_runtime(objects={"L": Long}, state_dir=tmp_path, config=config()) as rt:
        await rt.env.L.getByName("l").arm()
        await trio.sleep(2)
        assert LOG == ["start"]
        pool = rt._pool
    assert pool.statistics().open == 0
    async with open_runtime(objects={"L": Long}, state_dir=tmp_path, config=config()) as rt:
        await trio.sleep(2)  # the clock starts at the same epoch again: due at +1 s
        assert LOG == ["start", "start"]


async def test_a_bug_in_the_alarm_path_stops_no_other_alarm(autojump_clock, monkeypatch) -> None:
    from runtime._core import Actor

    async with open_runtime(objects={"T": Ticker}, config=config()) as rt:
        await rt.env.T.getByName("a").start(1000, 1)
        await rt.env.T.getByName("b").start(1000, 1)
        original = Actor.deliver_begun
        broken: list[Actor] = []

        async def buggy(self, *args, **kwargs):
            if not broken:
                broken.append(self)
                raise RuntimeError("a bug")
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(Actor, "deliver_begun", buggy)
        await trio.sleep(1.5)
        assert len(LOG) == 1  # the other object's alarm ran
        await trio.sleep(1.5)
        assert len(LOG) == 2  # and the broken one was tried again (not counted as a retry)
        assert [entry[2] for entry in LOG] == [0, 0]
