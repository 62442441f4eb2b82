"""The one place shardsim reaches into trio's internals.

``tasks_runnable()`` is ``trio.lowlevel.current_statistics().tasks_runnable``
without the rest of that call (I/O and deadline statistics), which cost as
much as the scheduler round the answer is meant to save. If trio's internals
move, it falls back to the public call; a test checks both agree.
"""

from __future__ import annotations

import trio
from trio._core import _run as _trio_run

__all__ = ["tasks_runnable"]


def tasks_runnable() -> int:
    """How many tasks are ready to run right now (the current one excluded)."""
    try:
        return len(_trio_run.GLOBAL_RUN_CONTEXT.runner.runq)
    except AttributeError:  # pragma: no cover - a future trio
        return trio.lowlevel.current_statistics().tasks_runnable
