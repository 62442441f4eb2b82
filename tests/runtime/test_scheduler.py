"""One timer heap for the whole runtime."""

from __future__ import annotations

import trio

from runtime._scheduler import Scheduler


async def test_callbacks_run_in_deadline_then_scheduling_order(autojump_clock) -> None:
    sched = Scheduler()
    fired: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        t0 = trio.current_time()
        for name, delay in [("c", 3.0), ("a", 1.0), ("b", 1.0), ("d", 2.0)]:
            sched.call_at(t0 + delay, lambda n=name: fired.append((n, trio.current_time() - t0)))
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert fired == [("a", 1.0), ("b", 1.0), ("d", 2.0), ("c", 3.0)]


async def test_cancelled_timers_never_fire_and_are_not_counted(autojump_clock) -> None:
    sched = Scheduler()
    fired: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        handles = [sched.call_later(1.0 + i, fired.append, i) for i in range(200)]
        for h in handles[::2]:
            h.cancel()
            h.cancel()  # idempotent
        assert len(sched) == 100
        await trio.sleep(300)
        nursery.cancel_scope.cancel()
    assert fired == list(range(1, 200, 2))
    assert len(sched) == 0


async def test_an_earlier_timer_wakes_a_sleeping_scheduler(autojump_clock) -> None:
    sched = Scheduler()
    fired: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        t0 = trio.current_time()
        sched.call_later(100.0, lambda: fired.append(trio.current_time() - t0))
        await trio.sleep(1)
        sched.call_later(1.0, lambda: fired.append(trio.current_time() - t0))
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    assert fired == [2.0, 100.0]


async def test_a_failing_callback_is_logged_and_the_rest_still_run(autojump_clock, caplog) -> None:
    sched = Scheduler()
    fired: list[str] = []

    def boom() -> None:
        raise RuntimeError("bug in one object")

    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        sched.call_later(1.0, boom)
        sched.call_later(2.0, fired.append, "after")
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert fired == ["after"]
    assert "bug in one object" in caplog.text
