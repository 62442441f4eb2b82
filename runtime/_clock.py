"""The runtime clock: the one mapping from trio time to wall time.

Everything a user sees as wall time (alarm times, :func:`now_ms`, D1
durations) is the configured epoch plus the trio time elapsed since the
runtime opened, so under ``trio.testing.MockClock`` it is all virtual and
consistent. ``time.time()`` in user code drifts from it; use :func:`now_ms`.

Invariants: this is the only module that reads the wall clock (once, for an
unpinned epoch) and the only one that turns trio time into epoch time and
back. Other modules read trio's clock (``trio.current_time()``, or the
scheduler's ``now``) for deadlines and durations only: that is scheduling
time, never a time a user sees.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

import trio

__all__ = ["RuntimeClock", "now_ms"]

_current_clock: contextvars.ContextVar[RuntimeClock] = contextvars.ContextVar("shardsim_clock")


class RuntimeClock:
    """Maps trio time to milliseconds since the Unix epoch."""

    __slots__ = ("_epoch_ms", "_start")

    def __init__(self, epoch_ms: int | None) -> None:
        # Wall time is read once, here, when no epoch is pinned: this is the
        # one place a wall clock enters the runtime.
        self._epoch_ms = float(epoch_ms if epoch_ms is not None else int(time.time() * 1000))
        self._start = trio.current_time()

    def now(self) -> float:
        """trio's time in seconds (what the scheduler uses)."""
        return trio.current_time()

    def now_ms(self) -> float:
        """Milliseconds since the Unix epoch on the runtime clock."""
        return self._epoch_ms + (trio.current_time() - self._start) * 1000.0

    def epoch_seconds_at(self, trio_time: float) -> float:
        """Seconds since the Unix epoch on the runtime clock at trio time ``trio_time``."""
        return (self._epoch_ms + (trio_time - self._start) * 1000.0) / 1000.0

    def trio_time_for(self, epoch_ms: float) -> float:
        """The trio time at which the runtime clock reads ``epoch_ms``."""
        return self._start + (epoch_ms - self._epoch_ms) / 1000.0

    def install(self) -> contextvars.Token[RuntimeClock]:
        """Make this the clock :func:`now_ms` reads in this task (until the task ends)."""
        return _current_clock.set(self)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Make this the clock :func:`now_ms` reads, in this task and the tasks it starts."""
        token = _current_clock.set(self)
        try:
            yield
        finally:
            _current_clock.reset(token)


def now_ms() -> float:
    """Milliseconds since the Unix epoch on the current runtime's clock (Date.now()).

    Raises:
        RuntimeError: called outside an open runtime.
    """
    try:
        clock = _current_clock.get()
    except LookupError:
        raise RuntimeError("now_ms() must be called inside an open runtime (open_runtime)") from None
    return clock.now_ms()
