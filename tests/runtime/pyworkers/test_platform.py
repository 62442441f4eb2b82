"""Time, timers and asyncio as Worker code uses them, on the runtime's clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import trio

from runtime import RemoteError, open_runtime, pyworkers
from tests.runtime.conftest import EPOCH_MS, config

from .helpers import worker_module

CLOCKS = """
import datetime
import time

from js import Date
from workers import DurableObject


class Clocks(DurableObject):
    async def read(self):
        return [Date.now(), int(time.time() * 1000), int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)]
"""


async def test_every_clock_worker_code_reads_is_the_runtime_clock(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, CLOCKS) as mod:
        async with open_runtime(objects={"C": mod.Clocks}, config=config()) as rt:
            await trio.sleep(3600)
            date_now, time_time, datetime_now = await rt.env.C.getByName("c").read()
            expected = EPOCH_MS + 3_600_000
            assert date_now == expected
            assert abs(time_time - expected) <= 1
            assert abs(datetime_now - expected) <= 1


def test_outside_a_runtime_the_clocks_are_the_wall_clock() -> None:
    with pyworkers.installed():
        assert abs(time.time() - time.monotonic() - (time.time() - time.monotonic())) < 1
        now = dt.datetime.now(dt.UTC)
        assert abs(now.timestamp() - time.time()) < 5


def test_patched_datetime_keeps_plain_datetime_values() -> None:
    before = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pyworkers.installed():
        made = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        assert type(made) is type(before)
        assert isinstance(before, dt.datetime)
        assert type(dt.datetime.now()) is type(before)
    assert dt.datetime.now is not None
    assert type(dt.datetime(2026, 1, 1)) is type(before)


TIMERS = """
from js import setTimeout, clearTimeout
from pyodide.ffi import create_proxy
from workers import DurableObject


class Timers(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.fired = []

    async def arm(self, ms):
        setTimeout(create_proxy(lambda: self.fired.append(ms)), ms)

    async def arm_plain(self):
        setTimeout(lambda: None, 10)

    async def arm_async(self):
        async def later():
            self.ctx.storage.kv.put("async", True)
        setTimeout(create_proxy(later), 5)

    async def cancel(self, ms):
        timer = setTimeout(create_proxy(lambda: self.fired.append(ms)), ms)
        clearTimeout(timer)

    async def read(self):
        return self.fired
"""


async def test_set_timeout_fires_on_the_runtime_clock_and_pins_the_object(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, TIMERS) as mod:
        cfg = config(hibernate_after=10.0, evict_after=(100.0, 100.0))
        async with open_runtime(objects={"T": mod.Timers}, config=cfg) as rt:
            stub = rt.env.T.getByName("t")
            await stub.arm(30_000)
            await stub.cancel(1_000)
            await trio.sleep(20)
            assert rt.state_of(stub) == "idle"  # a pending timer pins it: no hibernation at 10 s
            await trio.sleep(11)
            assert await stub.read() == [30_000]
            await trio.sleep(11)
            assert rt.state_of(stub) == "hibernated"


async def test_set_timeout_with_a_plain_function_is_refused(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, TIMERS) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            with pytest.raises(RemoteError, match=r"setTimeout\(\).*borrowed proxy.*create_proxy"):
                await rt.env.T.getByName("t").arm_plain()


async def test_an_async_timer_callback_runs_as_background_work(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, TIMERS) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            stub = rt.env.T.getByName("t")
            await stub.arm_async()
            await trio.sleep(1)
            assert rt.dump_storage(stub)["kv"] == {"async": True}


ASYNCIO = """
import asyncio

from workers import DurableObject


class Tasks(DurableObject):
    async def sleepy(self):
        await asyncio.sleep(5)
        return "slept"

    async def together(self):
        async def one(n):
            await asyncio.sleep(n)
            return n
        return await asyncio.gather(one(2), one(1), one(3))

    async def timeout(self):
        try:
            await asyncio.wait_for(asyncio.sleep(10), 1)
        except asyncio.TimeoutError:
            return "timed out"

    async def spawn(self):
        async def work():
            await asyncio.sleep(1)
            return 42
        task = asyncio.create_task(work())
        return await task

    async def unsupported(self):
        await asyncio.Event().wait()

    async def loop(self):
        asyncio.get_running_loop()
"""


async def test_common_asyncio_calls_run_on_the_runtime(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, ASYNCIO) as mod:
        async with open_runtime(objects={"A": mod.Tasks}, config=config()) as rt:
            stub = rt.env.A.getByName("a")
            start = trio.current_time()
            assert await stub.sleepy() == "slept"
            assert trio.current_time() - start == pytest.approx(5, abs=0.01)
            assert await stub.together() == [2, 1, 3]
            assert await stub.timeout() == "timed out"
            assert await stub.spawn() == 42


async def test_unsupported_asyncio_calls_fail_naming_what_is_supported(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, ASYNCIO) as mod:
        async with open_runtime(objects={"A": mod.Tasks}, config=config()) as rt:
            stub = rt.env.A.getByName("a")
            with pytest.raises(
                RuntimeError, match=r"asyncio.get_running_loop\(\) is not supported.*asyncio.sleep"
            ):
                await stub.loop()
            with trio.fail_after(5):
                with pytest.raises(Exception, match=r"Supported: asyncio\.sleep"):
                    await stub.unsupported()


def test_asyncio_programs_are_unaffected_while_installed() -> None:
    async def main() -> str:
        await asyncio.sleep(0)
        results = await asyncio.gather(asyncio.sleep(0, "a"), asyncio.sleep(0, "b"))
        return "".join(results)

    with pyworkers.installed():
        assert asyncio.run(main()) == "ab"
