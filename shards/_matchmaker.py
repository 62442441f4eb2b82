"""A pure matchmaker: a queue of players, a pluggable match function, assignments.

Players :meth:`~Matchmaker.enqueue` with criteria (rating, region, mode, ...);
each :meth:`~Matchmaker.poll` first expires entries that waited longer than
``max_wait``, then hands the rest, oldest first, to the match function, which
returns groups. Each group becomes an :class:`MatchAssignment`: a match id, its
players, and the id of the shard that will host the match.

Invariants:

* Time is passed in (``now``, seconds) and never goes backwards: a call with
  an earlier ``now`` than one already seen is refused. The queue is
  therefore ordered by ``enqueued_at`` as well as by arrival, so the entries
  to expire are always its oldest ones.
* A player is in at most one of: queued, or a recorded outcome (matched or
  expired). Enqueueing again clears the old outcome.
* :meth:`Matchmaker.poll` is atomic: if the match function raises or
  returns something the queue cannot honour (a player not queued, a player
  twice, an altered entry, an empty group), nothing changes, expiry
  included, and :class:`InvalidMatch` (or the function's own error) is raised.
* Match ids are deterministic: a counter, optionally hashed with a seed
  passed in, so a replayed sequence of calls yields the same ids.
* Memory is bounded: at most ``max_queued`` waiting players and
  ``max_history`` recorded outcomes (the oldest outcome is forgotten first).
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, final

from ._errors import InvalidMatch, MatchmakingError, MatchQueueFull, PlayerAlreadyQueued, PlayerNotQueued

__all__ = [
    "MatchAssignment",
    "MatchEntry",
    "MatchFunction",
    "Matchmaker",
    "MatchmakerStatistics",
    "MatchState",
    "MatchStatus",
    "MatchPollResult",
    "fixed_size",
]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MatchEntry:
    """One player waiting in the queue.

    Attributes:
        player_id: Who is waiting.
        enqueued_at: When they joined, in seconds (the ``now`` given to ``enqueue``).
        criteria: What the match function looks at (``{"mode": "duel",
            "rating": 1500}``...); a read-only copy of what was passed in.
    """

    player_id: str
    enqueued_at: float
    # Excluded from the hash (a mapping is not hashable) but compared.
    criteria: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def waited(self, now: float) -> float:
        """Return how long this entry has waited as of ``now``, in seconds."""
        return now - self.enqueued_at


MatchFunction = Callable[[Sequence[MatchEntry], float], Sequence[Sequence[MatchEntry]]]
"""``match(entries, now) -> groups``: entries are the queue, oldest first.

Each returned group becomes one match. It must only use entries it was given,
each at most once; entries it leaves out stay queued. It must be pure and
deterministic, so that a replay makes the same matches.
"""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MatchAssignment:
    """A match that was made.

    Attributes:
        match_id: Deterministic id of the match.
        shard_id: The shard that hosts it (by default the match id).
        players: The matched entries, in the order the match function gave.
        matched_at: The ``now`` of the poll that made it.
    """

    match_id: str
    shard_id: str
    players: tuple[MatchEntry, ...]
    matched_at: float

    @property
    def player_ids(self) -> tuple[str, ...]:
        """The players' ids, in order."""
        return tuple(e.player_id for e in self.players)


class MatchState(enum.Enum):
    """Where a player stands with the matchmaker."""

    QUEUED = "queued"
    MATCHED = "matched"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MatchStatus:
    """A player's status.

    Attributes:
        player_id: Who.
        state: Queued, matched, expired, or not found (never queued, cancelled,
            or forgotten).
        entry: The queued or expired entry; for a matched player, their entry
            in the match; None when not found.
        assignment: The match, when ``state`` is ``MATCHED``.
    """

    player_id: str
    state: MatchState
    entry: MatchEntry | None = None
    assignment: MatchAssignment | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MatchPollResult:
    """What one :meth:`Matchmaker.poll` did.

    Attributes:
        assignments: Matches made, in the order the match function returned them.
        expired: Entries dropped because they waited longer than ``max_wait``, oldest first.
    """

    assignments: tuple[MatchAssignment, ...] = ()
    expired: tuple[MatchEntry, ...] = ()


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class MatchmakerStatistics:
    """Counters of a :class:`Matchmaker`.

    Attributes:
        queued: Players waiting now.
        matched: Players matched so far.
        expired: Players expired so far.
        cancelled: Players who cancelled so far.
        matches: Matches made so far.
    """

    queued: int
    matched: int
    expired: int
    cancelled: int
    matches: int


def fixed_size(size: int, *, same: Sequence[str] = ()) -> MatchFunction:
    """Return a match function making groups of ``size`` players in FIFO order.

    Args:
        size: Players per match, >= 1.
        same: Criteria keys whose values must be equal within a group, e.g.
            ``("mode",)``; an entry without the key only groups with others
            without it. Values are compared with ``==`` (they need not be hashable).

    Returns:
        A match function. Groups come out in the order they fill up; within a
        group, players are in queue order; players left over stay queued.

    Raises:
        MatchmakingError: If ``size`` is not an int >= 1.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise MatchmakingError(f"size must be an int >= 1, got {size!r}")
    keys = tuple(same)
    missing = object()  # "no such criterion": distinct from any value, including None

    def match(entries: Sequence[MatchEntry], now: float) -> list[list[MatchEntry]]:
        del now
        # Buckets are kept in a list and searched with ==, so unhashable
        # criteria values (lists, dicts) work; the bucket count is small.
        buckets: list[tuple[tuple[object, ...], list[MatchEntry]]] = []
        groups: list[list[MatchEntry]] = []
        for entry in entries:
            signature = tuple(entry.criteria.get(k, missing) for k in keys)
            index = next((i for i, bucket in enumerate(buckets) if bucket[0] == signature), None)
            if index is None:
                index = len(buckets)
                buckets.append((signature, []))
            members = buckets[index][1]
            members.append(entry)
            if len(members) == size:
                groups.append(members)
                del buckets[index]
        return groups

    return match


def _check_now(now: float) -> float:
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise MatchmakingError(f"now must be a finite number, got {now!r}")
    return float(now)


def _check_limit(value: int | None, name: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        or_none = " or None" if optional else ""
        raise MatchmakingError(f"{name} must be an int >= 1{or_none}, got {value!r}")


@final
class Matchmaker:
    """A queue of players turned into matches by a match function.

    Args:
        match: The match function; defaults to ``fixed_size(2)``.
        max_wait: Seconds an entry may wait; at a poll, entries that waited
            longer are expired. None: entries never expire.
        shard_for: Maps a match id to the id of the shard that hosts it;
            defaults to the match id itself (one shard per match).
        id_prefix: Prefix of every match id.
        seed: If given, match ids are a hash of the seed and a counter
            (unguessable without the seed, still deterministic); otherwise
            the counter itself (``match-1``, ``match-2``, ...).
        max_queued: Most players that may wait at once; None for no bound.
        max_history: Most matched / expired outcomes remembered for
            :meth:`status`; the oldest is forgotten first.

    Raises:
        MatchmakingError: On a negative or non-finite ``max_wait`` or a bound < 1.
    """

    def __init__(
        self,
        *,
        match: MatchFunction | None = None,
        max_wait: float | None = None,
        shard_for: Callable[[str], str] | None = None,
        id_prefix: str = "match-",
        seed: int | None = None,
        max_queued: int | None = 100_000,
        max_history: int = 100_000,
    ) -> None:
        if max_wait is not None:
            if isinstance(max_wait, bool) or not isinstance(max_wait, int | float):
                raise MatchmakingError(f"max_wait must be a number or None, got {max_wait!r}")
            if not math.isfinite(max_wait) or max_wait < 0:
                raise MatchmakingError(f"max_wait must be a finite number >= 0 or None, got {max_wait!r}")
        _check_limit(max_queued, "max_queued", optional=True)
        _check_limit(max_history, "max_history", optional=False)
        self._match = match if match is not None else fixed_size(2)
        self._max_wait = max_wait
        self._shard_for = shard_for
        self._id_prefix = id_prefix
        self._seed = seed
        self._max_queued = max_queued
        self._max_history = max_history
        # Insertion order is arrival order, hence FIFO (and, since time never
        # goes backwards, also enqueued_at order).
        self._queue: dict[str, MatchEntry] = {}
        # Matched and expired outcomes, oldest first, for status().
        self._outcomes: dict[str, MatchStatus] = {}
        self._now = -math.inf
        self._counter = 0
        self._matched = 0
        self._expired = 0
        self._cancelled = 0

    # -- queries -------------------------------------------------------------

    @property
    def queue(self) -> tuple[MatchEntry, ...]:
        """The waiting entries, oldest first."""
        return tuple(self._queue.values())

    def __len__(self) -> int:
        return len(self._queue)

    def status(self, player_id: str) -> MatchStatus:
        """Return where ``player_id`` stands: queued, matched, expired or not found."""
        entry = self._queue.get(player_id)
        if entry is not None:
            return MatchStatus(player_id=player_id, state=MatchState.QUEUED, entry=entry)
        outcome = self._outcomes.get(player_id)
        if outcome is not None:
            return outcome
        return MatchStatus(player_id=player_id, state=MatchState.NOT_FOUND)

    def statistics(self) -> MatchmakerStatistics:
        """Return the current counters."""
        return MatchmakerStatistics(
            queued=len(self._queue),
            matched=self._matched,
            expired=self._expired,
            cancelled=self._cancelled,
            matches=self._counter,
        )

    # -- commands ------------------------------------------------------------

    def enqueue(self, player_id: str, *, now: float, criteria: Mapping[str, Any] | None = None) -> MatchEntry:
        """Put ``player_id`` in the queue as of ``now``.

        A player whose last outcome was matched or expired may enqueue again;
        that outcome is then forgotten.

        Args:
            player_id: A non-empty string.
            now: The current time in seconds; becomes ``enqueued_at``.
            criteria: A mapping with string keys; copied.

        Returns:
            The queued entry.

        Raises:
            PlayerAlreadyQueued: If the player is waiting already.
            MatchQueueFull: If ``max_queued`` players are waiting.
            MatchmakingError: On an empty or non-str ``player_id``, malformed
                ``criteria``, or a ``now`` that is not finite or is earlier than
                a time already seen. Nothing changes in every case.
        """
        if not isinstance(player_id, str) or not player_id:
            raise MatchmakingError(f"player_id must be a non-empty str, got {player_id!r}")
        t = self._advance(now)
        if player_id in self._queue:
            raise PlayerAlreadyQueued(f"player {player_id!r} is already queued", player_id=player_id)
        if self._max_queued is not None and len(self._queue) >= self._max_queued:
            raise MatchQueueFull(f"the queue is full ({self._max_queued} players)", limit=self._max_queued)
        if criteria is None:
            criteria = {}
        if not isinstance(criteria, Mapping):
            raise MatchmakingError(f"criteria must be a mapping, got {type(criteria).__name__}")
        for key in criteria:
            if not isinstance(key, str):
                raise MatchmakingError(f"criteria keys must be str, got {key!r}")
        entry = MatchEntry(player_id=player_id, enqueued_at=t, criteria=MappingProxyType(dict(criteria)))
        self._now = t
        self._outcomes.pop(player_id, None)
        self._queue[player_id] = entry
        return entry

    def cancel(self, player_id: str) -> MatchEntry:
        """Take ``player_id`` out of the queue; their status becomes not found.

        Returns:
            The entry that was waiting.

        Raises:
            PlayerNotQueued: If the player is not waiting (never queued,
                already matched, expired or cancelled).
        """
        entry = self._queue.pop(player_id, None)
        if entry is None:
            raise PlayerNotQueued(f"player {player_id!r} is not queued", player_id=player_id)
        self._cancelled += 1
        return entry

    def forget(self, player_id: str) -> None:
        """Drop the recorded outcome of ``player_id`` (e.g. once they have read it).

        Waiting players and unknown ids are left alone.
        """
        self._outcomes.pop(player_id, None)

    def poll(self, now: float) -> MatchPollResult:
        """Expire stale entries, then run the match function and record assignments.

        Atomic: when it raises, nothing changes, expiry included.

        Args:
            now: The current time in seconds.

        Returns:
            The matches made and the entries expired by this poll.

        Raises:
            InvalidMatch: If the match function returns a player who is not
                queued (or just expired), the same player twice, an entry that
                differs from the queued one, a non-entry, or an empty group.
            MatchmakingError: If ``now`` is not finite or goes backwards, or
                ``shard_for`` returns something other than a non-empty str.
            Exception: Whatever the match function or ``shard_for`` raises.
        """
        t = self._advance(now)
        expired: list[MatchEntry] = []
        if self._max_wait is not None:
            for entry in self._queue.values():
                # The queue is in enqueued_at order, so the stale ones are a prefix.
                if t - entry.enqueued_at <= self._max_wait:
                    break
                expired.append(entry)
        gone = {e.player_id for e in expired}
        waiting = [e for e in self._queue.values() if e.player_id not in gone]
        groups = self._validated(self._match(tuple(waiting), t), {e.player_id: e for e in waiting})
        assignments: list[MatchAssignment] = []
        for n, group in enumerate(groups, start=self._counter + 1):
            match_id = self._match_id(n)
            assignments.append(
                MatchAssignment(
                    match_id=match_id, shard_id=self._shard_id(match_id), players=group, matched_at=t
                )
            )

        # Commit: nothing below can fail (shard_for, the last user code, ran above).
        self._now = t
        for entry in expired:
            del self._queue[entry.player_id]
            self._remember(MatchStatus(player_id=entry.player_id, state=MatchState.EXPIRED, entry=entry))
        self._expired += len(expired)
        for assignment in assignments:
            for entry in assignment.players:
                del self._queue[entry.player_id]
                self._remember(
                    MatchStatus(
                        player_id=entry.player_id,
                        state=MatchState.MATCHED,
                        entry=entry,
                        assignment=assignment,
                    )
                )
            self._matched += len(assignment.players)
        self._counter += len(assignments)
        return MatchPollResult(assignments=tuple(assignments), expired=tuple(expired))

    # -- helpers -------------------------------------------------------------

    def _advance(self, now: float) -> float:
        t = _check_now(now)
        if t < self._now:
            raise MatchmakingError(f"now={t!r} is earlier than a time already seen ({self._now!r})")
        return t

    def _validated(self, result: object, waiting: dict[str, MatchEntry]) -> list[tuple[MatchEntry, ...]]:
        if isinstance(result, str | bytes) or not isinstance(result, Sequence):
            raise InvalidMatch(
                f"match function must return a sequence of groups, got {type(result).__name__}"
            )
        seen: set[str] = set()
        groups: list[tuple[MatchEntry, ...]] = []
        for gi, group in enumerate(result):
            if isinstance(group, str | bytes) or not isinstance(group, Sequence):
                raise InvalidMatch(
                    f"match function returned group {gi} as a {type(group).__name__}, not a sequence"
                )
            if not group:
                raise InvalidMatch(f"match function returned an empty group (group {gi})")
            for entry in group:
                if not isinstance(entry, MatchEntry):
                    raise InvalidMatch(
                        f"match function returned a {type(entry).__name__} in group {gi}, expected a MatchEntry"
                    )
                pid = entry.player_id
                if pid in seen:
                    raise InvalidMatch(f"match function returned player {pid!r} twice", player_id=pid)
                queued = waiting.get(pid)
                if queued is None:
                    raise InvalidMatch(
                        f"match function returned player {pid!r}, who is not queued", player_id=pid
                    )
                if entry != queued:
                    raise InvalidMatch(
                        f"match function returned an altered entry for player {pid!r}", player_id=pid
                    )
                seen.add(pid)
            groups.append(tuple(waiting[e.player_id] for e in group))
        return groups

    def _shard_id(self, match_id: str) -> str:
        if self._shard_for is None:
            return match_id
        shard_id = self._shard_for(match_id)
        if not isinstance(shard_id, str) or not shard_id:
            raise MatchmakingError(
                f"shard_for must return a non-empty str, got {shard_id!r} for {match_id!r}"
            )
        return shard_id

    def _match_id(self, n: int) -> str:
        if self._seed is None:
            return f"{self._id_prefix}{n}"
        digest = hashlib.blake2b(f"{self._seed}:{n}".encode(), digest_size=8).hexdigest()
        return f"{self._id_prefix}{digest}"

    def _remember(self, status: MatchStatus) -> None:
        self._outcomes.pop(status.player_id, None)  # re-insert at the end: newest
        self._outcomes[status.player_id] = status
        while len(self._outcomes) > self._max_history:
            del self._outcomes[next(iter(self._outcomes))]
