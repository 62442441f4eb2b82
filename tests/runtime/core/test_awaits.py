"""Telling handlers that cannot suspend from those that may, and driving the former."""

from __future__ import annotations

import pytest
import trio

from runtime._core import INSTANT, MAY_SUSPEND, PLAIN, await_kind, await_watched, settle
from runtime.storage import StorageResult


async def _no_await() -> int:
    return 1


async def _awaits() -> None:
    await trio.lowlevel.checkpoint()


async def _async_with() -> None:
    async with trio.open_nursery():
        pass


class _Awaitable:
    def __await__(self):
        yield from ()


def test_handlers_that_cannot_suspend_are_told_apart_from_those_that_may() -> None:
    """Only a handler that may suspend needs the shielded cancel scope."""
    for fn, kind in [(_no_await, INSTANT), (_awaits, MAY_SUSPEND), (_async_with, MAY_SUSPEND)]:
        coro = fn()
        assert await_kind(coro) == kind, fn.__name__
        assert await_kind(coro) == kind, fn.__name__  # cached
        coro.close()
    assert await_kind(StorageResult(1)) == INSTANT
    assert await_kind(_Awaitable()) == MAY_SUSPEND
    assert await_kind(None) == PLAIN
    assert await_kind({"a": 1}) == PLAIN


def test_settle_runs_an_instant_awaitable_to_its_end() -> None:
    """settle() returns the value and lets the awaitable's exception through."""
    assert settle(_no_await()) == 1
    assert settle(StorageResult("v")) == "v"

    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match=r"^boom$"):
        settle(fails())


async def test_await_watched_calls_back_only_before_a_real_suspension() -> None:
    """A coroutine of instant awaits never calls on_suspend; one that yields to trio calls it once."""
    calls: list[str] = []

    async def instant_only() -> int:
        return await StorageResult(2) + await StorageResult(3)

    assert await await_watched(instant_only(), lambda: calls.append("suspended")) == 5
    assert calls == []

    async def suspends() -> str:
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        return "done"

    assert await await_watched(suspends(), lambda: calls.append("suspended")) == "done"
    assert calls == ["suspended"]


async def test_await_watched_passes_cancellation_through(autojump_clock) -> None:
    """trio's Cancelled reaches the awaited coroutine, as with a plain await."""
    seen: list[str] = []

    async def sleeper() -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            seen.append("cancelled")
            raise

    with trio.move_on_after(1):
        await await_watched(sleeper(), lambda: None)
    assert seen == ["cancelled"]
