"""The private shortcut into trio agrees with trio's public statistics."""

from __future__ import annotations

import trio
import trio.testing

from runtime._trio_compat import tasks_runnable


async def test_tasks_runnable_matches_the_public_statistics() -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(trio.lowlevel.checkpoint)
        assert tasks_runnable() == trio.lowlevel.current_statistics().tasks_runnable == 5
        await trio.testing.wait_all_tasks_blocked()
        assert tasks_runnable() == trio.lowlevel.current_statistics().tasks_runnable == 0
