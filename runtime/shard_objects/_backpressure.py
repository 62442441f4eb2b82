"""The slow-subscriber policy: latest snapshot or nothing, then disconnect.

A shard produces a frame per subscriber per tick; a subscriber whose
connection cannot take them as fast must not make the server queue frames
without bound. The policy, decided here in pure code and carried out by the
shard object:

* Before each frame we look at how many bytes the subscriber's connection
  still has buffered (the transport's optional ``buffered_amount()``; a
  connection without one is never considered slow).
* At or below ``high_water_bytes`` the frame is sent.
* Above it the frame is **skipped** (not queued): when the buffer drains,
  the next frame the subscriber gets is the newest one, so a slow reader
  sees the latest snapshot rather than an ever older backlog. A delta
  subscriber's next frame is then full (its base was skipped).
* A subscriber that stays above the mark for ``stuck_after`` seconds is
  disconnected with close code 4001; it may reconnect.

Invariants: pure (no clock reads: the caller passes ``now``), and one
decision per frame; text frames (acks, errors) are small and always sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

__all__ = ["Backpressure", "BackpressurePolicy", "Decision"]


class Decision(Enum):
    """What to do with one frame for one subscriber."""

    SEND = "send"
    SKIP = "skip"
    DISCONNECT = "disconnect"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackpressurePolicy:
    """Thresholds of the slow-subscriber policy.

    Attributes:
        high_water_bytes: Frames are skipped while more than this many bytes
            are buffered for the subscriber (default 1 MiB).
        stuck_after: Seconds above the mark before the subscriber is
            disconnected (default 10 s).
    """

    high_water_bytes: int = 1 << 20
    stuck_after: float = 10.0

    def __post_init__(self) -> None:
        if type(self.high_water_bytes) is not int or self.high_water_bytes < 0:
            raise ValueError(f"high_water_bytes must be an int >= 0, got {self.high_water_bytes!r}")
        if not isinstance(self.stuck_after, int | float) or not math.isfinite(self.stuck_after):
            raise ValueError(f"stuck_after must be a finite number, got {self.stuck_after!r}")
        if self.stuck_after < 0:
            raise ValueError(f"stuck_after must be >= 0, got {self.stuck_after!r}")


class Backpressure:
    """Per-subscriber state of the policy: since when each subscriber has been backed up."""

    __slots__ = ("_policy", "_since")

    def __init__(self, policy: BackpressurePolicy) -> None:
        self._policy = policy
        self._since: dict[str, float] = {}

    def decide(self, subscriber_id: str, buffered: int | None, now: float) -> Decision:
        """Decide about one frame for ``subscriber_id``.

        Args:
            subscriber_id: The subscriber.
            buffered: Bytes its connection still holds, or None when unknown.
            now: The current time in seconds (any monotonic clock).
        """
        if buffered is None or buffered <= self._policy.high_water_bytes:
            self._since.pop(subscriber_id, None)
            return Decision.SEND
        since = self._since.setdefault(subscriber_id, now)
        if now - since >= self._policy.stuck_after:
            del self._since[subscriber_id]
            return Decision.DISCONNECT
        return Decision.SKIP

    def forget(self, subscriber_id: str) -> None:
        """The subscriber left."""
        self._since.pop(subscriber_id, None)

    @property
    def backed_up(self) -> int:
        """How many subscribers are above the mark now."""
        return len(self._since)
