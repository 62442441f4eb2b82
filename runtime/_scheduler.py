"""One timer structure for the whole runtime.

Alarms, idle/hibernation timers, eviction timers and shard ticks all live in
one heap driven by one task, which calls plain synchronous callbacks. A task
(or a ``sleep_until``) per object does not scale (reference/measured-limits.md).

Invariants:

* Callbacks run in deadline order; equal deadlines run in scheduling order
  (a sequence number breaks ties, so nothing depends on hash order).
* A callback never runs before its deadline, and never after it was cancelled.
* Callbacks are synchronous and must not raise; one that does is logged and
  the scheduler carries on (a bug in one object must not stop every timer).
* Cancelled entries are removed lazily; the heap is compacted when more than
  half of it is dead.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable
from typing import Any

import trio

__all__ = ["Scheduler", "TimerHandle"]

log = logging.getLogger("shardsim.scheduler")


def _noop() -> None:
    pass


class TimerHandle:
    """A scheduled callback; :meth:`cancel` is idempotent."""

    __slots__ = ("_args", "_fn", "_scheduler", "cancelled", "deadline", "seq")

    def __init__(
        self,
        scheduler: Scheduler,
        deadline: float,
        seq: int,
        fn: Callable[..., object],
        args: tuple[Any, ...],
    ) -> None:
        self._scheduler = scheduler
        self.deadline = deadline
        self.seq = seq
        self._fn = fn
        self._args = args
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            # Drop references now: a cancelled entry may sit in the heap for a
            # while, and must not keep a hibernated object's instance alive.
            self._fn = _noop
            self._args = ()
            scheduler = self._scheduler
            scheduler._dead += 1
            if scheduler._dead > 64 and scheduler._dead * 2 > len(scheduler._heap):
                scheduler._compact()


class Scheduler:
    """A heap of timers run by one task (:meth:`run`, started with ``nursery.start``)."""

    def __init__(self) -> None:
        # (deadline, seq, handle): tuples compare in C, a handle's __lt__ would
        # be a Python call per comparison (a third of the cost of a shard tick).
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = 0
        self._dead = 0
        self._wakeup = trio.lowlevel.ParkingLot()
        self._sleep_scope: trio.CancelScope | None = None
        self.fired = 0
        #: The time run_due was called with: callbacks read it instead of
        #: asking trio (they run at that time, give or take their own work).
        self.now = -math.inf

    def __len__(self) -> int:
        return len(self._heap) - self._dead

    def call_at(self, deadline: float, fn: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` at trio time ``deadline``; returns a handle to cancel it."""
        self._seq += 1
        handle = TimerHandle(self, deadline, self._seq, fn, args)
        heapq.heappush(self._heap, (deadline, self._seq, handle))
        scope = self._sleep_scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline
        return handle

    def call_later(self, delay: float, fn: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` after ``delay`` seconds of trio time."""
        return self.call_at(trio.current_time() + delay, fn, *args)

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(self._heap)
        self._dead = 0

    def run_due(self, now: float) -> None:
        """Run every callback due at ``now`` (the run loop calls this; tests may too)."""
        heap = self._heap
        self.now = now
        pop = heapq.heappop
        while heap and heap[0][0] <= now:
            handle = pop(heap)[2]
            if handle.cancelled:
                self._dead -= 1
                continue
            handle.cancelled = True  # a fired timer cannot be cancelled into _dead
            fn, args = handle._fn, handle._args
            handle._fn, handle._args = _noop, ()
            self.fired += 1
            try:
                fn(*args)
            except Exception:
                log.exception("timer callback %r failed", fn)
        if self._dead > 64 and self._dead * 2 > len(heap):
            self._compact()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drive the heap forever (until cancelled)."""
        task_status.started()
        while True:
            self.run_due(trio.current_time())
            heap = self._heap
            while heap and heap[0][2].cancelled:
                heapq.heappop(heap)
                self._dead -= 1
            deadline = heap[0][0] if heap else math.inf
            with trio.CancelScope(deadline=deadline) as scope:
                self._sleep_scope = scope
                await self._wakeup.park()
            self._sleep_scope = None
