"""What the core keeps for each stub: the order of its calls, and whether a reset broke it.

Invariants:

* Calls through one stub start in the order they were issued (tickets); a
  call that gives up before its turn (its caller was cancelled) is skipped,
  so it never blocks the calls issued after it.
* Once ``broken`` is set (an error that reset the object reached a caller
  through this stub), every later call through the stub fails with that
  error, as in production; the caller makes a new stub.
"""

from __future__ import annotations

import trio

__all__ = ["StubOrder"]


class StubOrder:
    """Per-stub FIFO of calls, and the error that broke the stub (None while it works)."""

    __slots__ = ("_finished", "_lot", "_next", "_serving", "broken")

    def __init__(self) -> None:
        self._next = 0
        self._serving = 0
        self._finished: set[int] = set()
        self._lot = trio.lowlevel.ParkingLot()
        self.broken: BaseException | None = None

    def take(self) -> int:
        """A ticket for a call that will wait for its turn (:meth:`wait_turn`, then :meth:`done`)."""
        ticket = self._next
        self._next += 1
        return ticket

    def take_if_first(self) -> bool:
        """Take a ticket and mark it done at once, if no earlier call is outstanding."""
        if self._serving != self._next:
            return False
        self._next += 1
        self._serving += 1
        return True

    async def wait_turn(self, ticket: int) -> None:
        while self._serving != ticket:
            await self._lot.park()

    def done(self, ticket: int) -> None:
        """The call holding ``ticket`` has started (or given up)."""
        self._finished.add(ticket)
        advanced = False
        while self._serving in self._finished:
            self._finished.discard(self._serving)
            self._serving += 1
            advanced = True
        if advanced:
            self._lot.unpark_all()
