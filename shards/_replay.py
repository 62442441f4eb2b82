"""The replay log: the last N ticks of a shard, and a deterministic :func:`replay`.

A :class:`~shards.Shard` whose config has ``replay_log_ticks > 0`` records,
for every tick it runs, the tick number, ``now``, ``dt`` and the ordered
``(subscriber_id, input)`` pairs it applied. Restoring the simulation as it
was just before the window's first tick and calling :func:`replay` on the
entries rebuilds the simulation exactly, because hooks see nothing but their
arguments (no clocks, no unseeded randomness: see :mod:`shards._simulation`).

Invariants:

* The log holds at most ``max_ticks`` entries, oldest first; each append
  beyond that drops the oldest entry and counts it in :attr:`ReplayLog.dropped`.
* Inputs are kept in their encoded form (the shared codec), so a simulation
  that mutates an input object it was handed cannot change the log, and every
  read of the log returns fresh copies.
* Entries are consecutive: each entry's tick is the previous one's plus one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ._codec import decode
from ._simulation import SimState

__all__ = ["ReplayEntry", "ReplayLog", "replay"]

_Sim = TypeVar("_Sim", bound=SimState)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayEntry:
    """One recorded tick.

    Attributes:
        tick: The tick number (the first tick a shard runs is 1).
        now: The ``now`` passed to ``run_tick`` (seconds).
        dt: The ``dt`` passed to the simulation's ``tick`` hook (seconds).
        inputs: ``(subscriber_id, input)`` pairs, in the order they were applied.
    """

    tick: int
    now: float
    dt: float
    inputs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class _Recorded:
    tick: int
    now: float
    dt: float
    inputs: tuple[tuple[str, bytes], ...]  # encoded with the shared codec


class ReplayLog:
    """A bounded record of the last ``max_ticks`` ticks of one shard."""

    def __init__(self, max_ticks: int) -> None:
        """Create an empty log that keeps at most ``max_ticks`` entries.

        Raises:
            ValueError: ``max_ticks`` is not a positive integer.
        """
        if type(max_ticks) is not int or max_ticks < 1:
            raise ValueError(f"max_ticks must be an integer >= 1, got {max_ticks!r}")
        self._entries: deque[_Recorded] = deque(maxlen=max_ticks)
        self._dropped = 0

    @property
    def max_ticks(self) -> int:
        """How many ticks the log keeps."""
        maxlen = self._entries.maxlen
        assert maxlen is not None
        return maxlen

    @property
    def dropped(self) -> int:
        """How many ticks were pushed out of the window since the log was created."""
        return self._dropped

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, tick: int, now: float, dt: float, inputs: Iterable[tuple[str, bytes]]) -> None:
        """Append one tick; ``inputs`` are ``(subscriber_id, encoded input)`` pairs.

        The shard calls this; inputs are already codec-encoded there.

        Raises:
            ValueError: ``tick`` does not follow the last recorded tick.
        """
        if self._entries and tick != self._entries[-1].tick + 1:
            raise ValueError(f"tick {tick} does not follow the last recorded tick {self._entries[-1].tick}")
        if len(self._entries) == self._entries.maxlen:
            self._dropped += 1
        self._entries.append(_Recorded(tick, now, dt, tuple(inputs)))

    def entries(self, *, after: int | None = None) -> tuple[ReplayEntry, ...]:
        """Return the recorded ticks, oldest first, with freshly decoded inputs.

        Args:
            after: If given, only ticks with a number greater than ``after``
                (for example the tick of a persisted state to replay from).
        """
        return tuple(
            ReplayEntry(
                tick=r.tick,
                now=r.now,
                dt=r.dt,
                inputs=tuple((sid, decode(data)) for sid, data in r.inputs),
            )
            for r in self._entries
            if after is None or r.tick > after
        )

    @property
    def first_tick(self) -> int | None:
        """The oldest recorded tick number, or None when the log is empty."""
        return self._entries[0].tick if self._entries else None

    @property
    def last_tick(self) -> int | None:
        """The newest recorded tick number, or None when the log is empty."""
        return self._entries[-1].tick if self._entries else None


def replay(sim: _Sim, entries: Iterable[ReplayEntry]) -> _Sim:
    """Re-run recorded ticks on ``sim`` and return it.

    For each entry, in order: ``apply_input(subscriber_id, input, now)`` for
    each input, then ``tick(dt)``, exactly as :meth:`Shard.run_tick
    <shards.Shard.run_tick>` did. ``sim`` must be the simulation as it was
    before the first entry's tick (for example
    ``SimCls.from_state(decode_shard_state(record).sim_state)`` for a record
    persisted at tick ``entries[0].tick - 1``). Exceptions from the hooks
    propagate unchanged.

    Raises:
        ValueError: the entries are not consecutive ticks.
    """
    previous: int | None = None
    for entry in entries:
        if previous is not None and entry.tick != previous + 1:
            raise ValueError(f"replay entries jump from tick {previous} to tick {entry.tick}")
        previous = entry.tick
        for subscriber_id, value in entry.inputs:
            sim.apply_input(subscriber_id, value, entry.now)
        sim.tick(entry.dt)
    return sim
