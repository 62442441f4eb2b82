"""One timer heap for the whole runtime."""

from __future__ import annotations

import math

import pytest
import trio

from runtime._scheduler import Scheduler, TimerHandle


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


async def test_timers_due_within_the_slack_run_together_never_early(autojump_clock) -> None:
    sched = Scheduler(slack=0.01)
    fired: list[tuple[int, float]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        t0 = trio.current_time()
        for i in range(10):
            deadline = t0 + 1.0 + i * 0.002
            sched.call_at(deadline, lambda i=i, d=deadline: fired.append((i, trio.current_time() - d)))
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert [i for i, _ in fired] == list(range(10))
    lateness = [late for _, late in fired]
    assert min(lateness) >= 0  # never before the deadline
    assert max(lateness) <= 0.01 + 1e-9  # at most the slack late
    # The first ran alone, exactly on time; the rest were batched after it.
    assert lateness[0] == 0
    assert len({round(late + i * 0.002, 9) for i, late in enumerate(lateness)}) <= 3


async def test_a_lone_timer_and_a_timer_already_due_run_on_time_despite_the_slack(autojump_clock) -> None:
    sched = Scheduler(slack=1.0)
    fired: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        await trio.sleep(1.5)  # more than the slack since the task last woke
        t0 = trio.current_time()
        sched.call_at(t0 + 0.5, lambda: fired.append(trio.current_time() - t0))
        await trio.sleep(0.6)
        # The task woke 0.1 s ago; a timer for a time already past must not wait out the slack.
        done = trio.Event()

        def past() -> None:
            fired.append(trio.current_time() - t0)
            done.set()

        sched.call_at(t0, past)
        await done.wait()
        nursery.cancel_scope.cancel()
    assert fired == pytest.approx([0.5, 0.6])


async def test_call_again_re_arms_a_fired_handle_without_a_new_one(autojump_clock) -> None:
    sched = Scheduler()
    fired: list[float] = []
    handles: list[TimerHandle] = []

    def tick() -> None:
        fired.append(trio.current_time() - t0)
        if len(fired) < 5:
            sched.call_again(handles[0], t0 + 0.05 * (len(fired) + 1))

    async with trio.open_nursery() as nursery:
        await nursery.start(sched.run)
        t0 = trio.current_time()
        handles.append(sched.call_at(t0 + 0.05, tick))
        with pytest.raises(ValueError, match="has fired"):
            sched.call_again(handles[0], t0 + 1)  # still pending
        await trio.sleep(1)
        assert len(sched) == 0
        handles[0].cancel()  # cancelling a fired handle is a no-op...
        with pytest.raises(ValueError, match="has fired"):
            sched.call_again(handles[0], t0 + 2)  # ...but it may not be re-armed after
        other = Scheduler()
        fired_elsewhere = other.call_at(0, lambda: None)
        other.run_due(1.0)
        with pytest.raises(ValueError, match="has fired"):
            sched.call_again(fired_elsewhere, t0 + 2)
        nursery.cancel_scope.cancel()
    assert fired == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25])


def test_a_partly_due_bucket_runs_its_due_entries_in_deadline_then_scheduling_order() -> None:
    sched = Scheduler()
    fired: list[str] = []
    # All in the same 1 ms bucket, scheduled out of deadline order.
    for name, deadline in [("late", 10.0009), ("a", 10.0002), ("b", 10.0002), ("first", 10.0001)]:
        sched.call_at(deadline, fired.append, name)
    cancelled = sched.call_at(10.0001, fired.append, "cancelled")
    cancelled.cancel()
    sched.run_due(10.0005)
    assert fired == ["first", "a", "b"]
    assert len(sched) == 1
    # Appended behind a later deadline in the same, partly run bucket: sorted again before it runs.
    sched.call_at(10.0007, fired.append, "between")
    assert sched._first_deadline() == 10.0007
    sched.call_at(10.00065, fired.append, "before")
    sched.run_due(10.0009)
    assert fired == ["first", "a", "b", "before", "between", "late"]
    assert len(sched) == 0
    # A bucket filled in deadline order needs no sort, and is not marked as needing one.
    for i in range(5):
        sched.call_at(20.0 + i / 10000, fired.append, str(i))
    assert not sched._unsorted
    sched.run_due(20.001)
    assert fired[-5:] == ["0", "1", "2", "3", "4"]


def test_infinite_deadlines_never_fire_and_bad_ones_are_refused() -> None:
    sched = Scheduler()
    fired: list[int] = []
    never = sched.call_at(math.inf, fired.append, 1)
    sched.call_at(5.0, fired.append, 2)
    assert sched._first_deadline() == 5.0
    sched.run_due(1e12)
    assert fired == [2]
    assert sched._first_deadline() == math.inf
    never.cancel()
    assert len(sched) == 0
    for bad in (math.nan, -math.inf):
        with pytest.raises(ValueError, match="finite time"):
            sched.call_at(bad, fired.append, 3)
    with pytest.raises(ValueError, match="slack"):
        Scheduler(slack=-1)


def test_many_cancelled_timers_are_compacted_away_and_drop_their_references() -> None:
    sched = Scheduler()
    payload = object()
    handles = [sched.call_at(1.0 + i / 100, lambda p=payload: None) for i in range(500)]
    keep = sched.call_at(100.0, lambda: None)
    for h in handles:
        h.cancel()
    assert len(sched) == 1
    entries = sum(len(b) for b in sched._buckets.values())
    assert entries < 100  # compacted: not 501
    assert all(h._args == () for h in handles)
    assert sched._first_deadline() == 100.0
    keep.cancel()
