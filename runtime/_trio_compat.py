"""The one place shardsim reaches into trio's internals.

``tasks_runnable()`` is ``trio.lowlevel.current_statistics().tasks_runnable``
without the rest of that call (I/O and deadline statistics), which cost as
much as the scheduler round the answer is meant to save. If trio's internals
move, it falls back to the public call; a test checks both agree.
"""

from __future__ import annotations

import trio

try:
    from trio._core._run import GLOBAL_RUN_CONTEXT as _RUN_CONTEXT
except ImportError:  # pragma: no cover - a future trio
    _RUN_CONTEXT = None

__all__ = ["tasks_runnable"]


def tasks_runnable() -> int:
    """How many tasks are ready to run right now (the current one excluded)."""
    try:
        return len(_RUN_CONTEXT.runner.runq)  # type: ignore[union-attr]
    except AttributeError:  # pragma: no cover - a future trio
        return trio.lowlevel.current_statistics().tasks_runnable
