"""One timer structure for the whole runtime.

Alarms, idle/hibernation timers, eviction timers and shard ticks all live in
one calendar of 1 ms buckets driven by one task, which calls plain
synchronous callbacks. A task (or a ``sleep_until``) per object does not
scale: on our machines 10,000 tasks each sleeping until its next 20 Hz tick
managed 56-59k ticks/s at 100 % CPU, where one loop calling synchronous
ticks managed 200k.

Invariants:

* Callbacks run in deadline order; equal deadlines run in scheduling order.
  (A bucket is a list in scheduling order, sorted stably by deadline before
  it runs.)
* A callback never runs before its deadline, and never after it was cancelled.
* Callbacks are synchronous and must not raise; one that does is logged and
  the scheduler carries on (a bug in one object must not stop every timer).
* A handle sits in at most one bucket: :meth:`Scheduler.call_again` only
  re-arms a handle that has fired. Cancelled entries are removed lazily
  (when their bucket runs, or when more than half of all entries are dead).
* The driving task wakes at most once per ``slack`` seconds (default 1 ms):
  it sleeps until the first deadline or ``slack`` after its last wake,
  whichever is later, and then runs everything due. A timer due more than
  ``slack`` after the last wake is exact, and one scheduled for a time
  already past wakes the task at once;
  timers due within ``slack`` of each other run together, at most ``slack``
  late. Each wake is a trio sleep (~14 µs on our machines), so
  10,000 shards at 20 Hz staggered over the period would otherwise cost
  200,000 wakes a second; with the slack they cost 1,000. (Linux's timer
  slack does the same for the same reason.)

Why buckets rather than a binary heap: a heap push and pop per tick cost a
tenth of a shard tick, and each entry was a fresh tuple (plus a fresh
handle), so the 10,000 live entries of 10,000 shards were always young
objects: every generation-0 collection of the garbage collector walked all
of them (about 9 ms, a dozen times a second). A periodic timer re-armed with
``call_again`` allocates nothing: its handle is appended to a bucket list.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import trio

__all__ = ["Scheduler", "TimerHandle"]

log = logging.getLogger("shardsim.scheduler")

#: Bucket width in seconds. Only performance depends on it (a bucket is
#: checked deadline by deadline while it is partly due), never timing.
_WIDTH_INV = 1000.0
#: The bucket of timers that never fire (an infinite deadline).
_NEVER = 1 << 80
_by_deadline = attrgetter("deadline")


def _noop() -> None:
    pass


def _slot(deadline: float) -> int:
    try:
        return math.floor(deadline * _WIDTH_INV)
    except OverflowError:
        if deadline > 0:
            return _NEVER
        raise ValueError(f"a timer's deadline must be a finite time or +inf, got {deadline!r}") from None
    except ValueError:
        raise ValueError(f"a timer's deadline must be a finite time or +inf, got {deadline!r}") from None


class TimerHandle:
    """A scheduled callback; :meth:`cancel` is idempotent.

    ``pending`` is True while the callback waits to run; ``cancelled`` once
    :meth:`cancel` was called. A handle neither pending nor cancelled has
    fired, and :meth:`Scheduler.call_again` may re-arm it.
    """

    __slots__ = ("_args", "_fn", "_scheduler", "cancelled", "deadline", "pending")

    def __init__(
        self,
        scheduler: Scheduler,
        deadline: float,
        fn: Callable[..., object],
        args: tuple[Any, ...],
    ) -> None:
        self._scheduler = scheduler
        self.deadline = deadline
        self._fn = fn
        self._args = args
        self.pending = True
        self.cancelled = False

    @property
    def fired(self) -> bool:
        """Whether the callback has run (and the handle was not cancelled since): re-armable."""
        return not self.pending and not self.cancelled

    def cancel(self) -> None:
        self.cancelled = True
        # Drop references now: a cancelled entry may sit in a bucket for a
        # while, and must not keep a hibernated object's instance alive.
        self._fn = _noop
        self._args = ()
        if self.pending:
            self.pending = False
            scheduler = self._scheduler
            scheduler._live -= 1
            scheduler._dead += 1
            scheduler._maybe_compact()


class Scheduler:
    """A calendar of timers run by one task (:meth:`run`, started with ``nursery.start``)."""

    def __init__(self, *, slack: float = 0.001) -> None:
        if not slack >= 0:
            raise ValueError(f"slack must be >= 0 seconds, got {slack!r}")
        #: The shortest interval between two wakes of the driving task (see the module docstring).
        self.slack = slack
        # The earliest time the driving task may wake again: its last wake plus the slack.
        self._earliest = -math.inf
        # Bucket number (floor of the deadline in ms) -> handles in scheduling order,
        # and a heap of the bucket numbers in use (ints: cheap to compare, never tracked by the GC).
        self._buckets: dict[int, list[TimerHandle]] = {}
        # Buckets whose handles were not appended in deadline order, so need a
        # sort before they run. Periodic timers re-armed as they fire append in
        # order; sorting every bucket anyway was a tenth of the scheduler's time,
        # and sorting a big bucket on every wake made setting up N timers for
        # the same millisecond quadratic.
        self._unsorted: set[int] = set()
        self._slots: list[int] = []
        self._live = 0
        self._dead = 0
        self._wakeup = trio.lowlevel.ParkingLot()
        self._sleep_scope: trio.CancelScope | None = None
        # The sleep scope's deadline; -inf while awake, when an insert needs no
        # wake (the loop looks for the first deadline before it sleeps again).
        self._sleep_deadline = -math.inf
        self.fired = 0
        #: The time run_due was called with: callbacks read it instead of
        #: asking trio (they run at that time, give or take their own work).
        self.now = -math.inf

    def __len__(self) -> int:
        return self._live

    def call_at(self, deadline: float, fn: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` at trio time ``deadline``; returns a handle to cancel it."""
        handle = TimerHandle(self, deadline, fn, args)
        self._insert(handle, deadline)
        return handle

    def call_later(self, delay: float, fn: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` after ``delay`` seconds of trio time."""
        return self.call_at(trio.current_time() + delay, fn, *args)

    def call_again(self, handle: TimerHandle, deadline: float) -> None:
        """Run a handle that has fired again, with the same callback, at ``deadline``.

        What a periodic timer uses: it allocates nothing. Raises ValueError
        if the handle is still pending, was cancelled, or is another
        scheduler's.
        """
        if not handle.fired or handle._scheduler is not self:
            raise ValueError("call_again() re-arms a handle of this scheduler that has fired")
        handle.deadline = deadline
        handle.pending = True
        self._insert(handle, deadline)

    def _insert(self, handle: TimerHandle, deadline: float) -> None:
        try:
            k = math.floor(deadline * _WIDTH_INV)  # _slot(), inlined: every tick re-arms a timer
        except (OverflowError, ValueError):
            k = _slot(deadline)
        bucket = self._buckets.get(k)
        if bucket is None:
            self._buckets[k] = [handle]
            heapq.heappush(self._slots, k)
        else:
            if deadline < bucket[-1].deadline:
                self._unsorted.add(k)
            bucket.append(handle)
        self._live += 1
        if deadline < self._sleep_deadline:
            scope = self._sleep_scope
            if scope is not None:
                # The slack batches future timers; one already due runs at once.
                if deadline < self._earliest and deadline > trio.current_time():
                    deadline = self._earliest
                scope.deadline = self._sleep_deadline = deadline

    def _maybe_compact(self) -> None:
        if self._dead > 64 and self._dead > self._live:
            self._compact()

    def _compact(self) -> None:
        buckets: dict[int, list[TimerHandle]] = {}
        for k, bucket in self._buckets.items():
            kept = [h for h in bucket if h.pending]
            if kept:
                buckets[k] = kept
        self._buckets = buckets
        self._unsorted.intersection_update(buckets)
        self._slots = list(buckets)
        heapq.heapify(self._slots)
        self._dead = 0

    def run_due(self, now: float) -> None:
        """Run every callback due at ``now`` (the run loop calls this; tests may too)."""
        self.now = now
        last = _slot(now)
        slots = self._slots
        while slots and slots[0] <= last:
            k = slots[0]
            bucket = self._buckets[k]
            if k in self._unsorted:
                self._unsorted.discard(k)
                bucket.sort(key=_by_deadline)
            if k < last:
                # Every deadline in an earlier bucket is <= now (floor is monotonic).
                due = bucket
                heapq.heappop(slots)
                del self._buckets[k]
            else:
                # The bucket ``now`` falls in: run its due prefix, keep the rest.
                n = len(bucket)
                i = 0
                while i < n and bucket[i].deadline <= now:
                    i += 1
                if i == 0:
                    break
                if i == n:
                    due = bucket
                    heapq.heappop(slots)
                    del self._buckets[k]
                else:
                    due = bucket[:i]
                    del bucket[:i]
            self._run(due)
            slots = self._slots  # a compaction may have replaced it
        self._maybe_compact()

    def _run(self, due: list[TimerHandle]) -> None:
        for handle in due:
            if not handle.pending:
                self._dead -= 1  # cancelled while it waited
                continue
            handle.pending = False
            self._live -= 1
            self.fired += 1
            try:
                handle._fn(*handle._args)
            except Exception:
                log.exception("timer callback %r failed", handle._fn)

    def _first_deadline(self) -> float:
        """The earliest pending deadline (inf: none), dropping dead entries in front of it."""
        slots = self._slots
        buckets = self._buckets
        while slots:
            k = slots[0]
            if k == _NEVER:
                return math.inf
            bucket = buckets[k]
            if k in self._unsorted:
                self._unsorted.discard(k)
                bucket.sort(key=_by_deadline)
            for i, handle in enumerate(bucket):
                if handle.pending:
                    if i:
                        self._dead -= i
                        del bucket[:i]
                    return handle.deadline
            self._dead -= len(bucket)
            heapq.heappop(slots)
            del buckets[k]
        return math.inf

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drive the calendar forever (until cancelled)."""
        task_status.started()
        slack = self.slack
        while True:
            now = trio.current_time()
            self._earliest = now + slack
            self.run_due(now)
            deadline = self._first_deadline()
            if deadline < self._earliest:
                deadline = self._earliest
            with trio.CancelScope(deadline=deadline) as scope:
                self._sleep_scope = scope
                self._sleep_deadline = deadline
                try:
                    await self._wakeup.park()
                finally:
                    self._sleep_scope = None
                    self._sleep_deadline = -math.inf
