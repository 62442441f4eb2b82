"""Input acknowledgement and client-side reconciliation for client prediction.

A client numbers its inputs (client sequence numbers, from 1), applies each
one to a local copy of the state at once (prediction), and sends it. The
server, after a tick, tells the client "as of tick T, I have processed your
inputs up to seq N" (:class:`InputAck`) next to the authoritative state. The
client then drops the inputs up to N and replays the rest on top of that
state (:class:`Reconciler`). :class:`AckTracker` is the server's half.

Invariants:

* Client sequence numbers are ints in ``[1, MAX_SEQ]`` and strictly
  increase per subscriber; 0 in an ack means "none processed yet". Ticks and
  seqs stay within JavaScript's safe-integer range so browser clients read
  them exactly from JSON.
* "Processed" means applied *or refused*: the server records refused inputs
  too, otherwise the client would keep a refused input pending forever.
* The :class:`Reconciler` only moves forward: an ack whose tick is not newer
  than the last one it took (a duplicate or one delivered out of order) is
  ignored and counted, never applied, because its state is older than what
  the client already reconciled against. An ack that would move the
  acknowledged seq backwards, or acknowledge a seq never sent, is a protocol
  violation and raises :class:`InvalidInput`.
* Every refused call leaves the object unchanged, including when the
  user's ``apply`` raises part-way through a replay.
* ``apply(state, input)`` must be pure: it returns a new state and does not
  mutate its arguments, since the authoritative state is replayed onto
  again at the next ack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar, final

from ._errors import InvalidInput

__all__ = [
    "MAX_SEQ",
    "AckTracker",
    "InputAck",
    "PendingInput",
    "Reconciler",
    "ReconcilerStatistics",
]

MAX_SEQ = 2**53 - 1
"""Largest tick or sequence number: JavaScript's ``Number.MAX_SAFE_INTEGER``."""

StateT = TypeVar("StateT")
InputT = TypeVar("InputT")

_WIRE_FIELDS = ("tick", "last_client_seq")


def _bounded_int(value: object, name: str, low: int) -> int:
    # bool is an int subclass; ``True`` as a tick is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= MAX_SEQ:
        raise InvalidInput(f"{name} must be in [{low}, {MAX_SEQ}], got {value}")
    return value


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InputAck:
    """The server has processed the client's inputs up to ``last_client_seq`` as of ``tick``.

    Attributes:
        tick: The server tick whose state accompanies this ack.
        last_client_seq: The highest client seq processed (applied or
            refused); 0 if none yet.

    Raises:
        InvalidInput: If a field is not an int in ``[0, MAX_SEQ]``; the message names it.
    """

    tick: int
    last_client_seq: int

    def __post_init__(self) -> None:
        _bounded_int(self.tick, "tick", 0)
        _bounded_int(self.last_client_seq, "last_client_seq", 0)

    def to_wire(self) -> dict[str, int]:
        """Return the JSON-friendly form: ``{"tick": ..., "last_client_seq": ...}``."""
        return {"tick": self.tick, "last_client_seq": self.last_client_seq}

    @classmethod
    def from_wire(cls, value: object) -> InputAck:
        """Parse :meth:`to_wire`'s form, strictly.

        Args:
            value: A decoded JSON (or msgpack) value from the peer.

        Returns:
            The ack.

        Raises:
            InvalidInput: If ``value`` is not a mapping with exactly the fields
                ``tick`` and ``last_client_seq``, each an int in ``[0, MAX_SEQ]``
                (floats, bools and strings are refused); the message names the field.
        """
        if not isinstance(value, Mapping):
            raise InvalidInput(f"ack must be an object, got {type(value).__name__}")
        for key in value:
            if key not in _WIRE_FIELDS:
                raise InvalidInput(f"ack has an unknown field {key!r}")
        for key in _WIRE_FIELDS:
            if key not in value:
                raise InvalidInput(f"ack is missing the field {key!r}")
        return cls(
            tick=_bounded_int(value["tick"], "tick", 0),
            last_client_seq=_bounded_int(value["last_client_seq"], "last_client_seq", 0),
        )


@final
class AckTracker:
    """Server side: the last client seq processed per subscriber, and the acks to send.

    Call :meth:`record` as each input carrying a client seq is processed
    (applied or refused), then :meth:`drain` once per tick to get the acks
    for the subscribers that have something new acknowledged.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        # Subscribers whose last seq moved since the previous drain().
        self._dirty: set[str] = set()

    def record(self, subscriber_id: str, client_seq: int) -> None:
        """Note that ``subscriber_id``'s input ``client_seq`` was processed.

        Raises:
            InvalidInput: If ``client_seq`` is not an int in ``[1, MAX_SEQ]``, or
                is not above the last one recorded for this subscriber (a
                duplicate or reordered input); nothing is recorded.
        """
        seq = _bounded_int(client_seq, "client_seq", 1)
        last = self._last.get(subscriber_id, 0)
        if seq <= last:
            raise InvalidInput(
                f"client_seq {seq} from subscriber {subscriber_id!r} is not above the last processed {last}"
            )
        self._last[subscriber_id] = seq
        self._dirty.add(subscriber_id)

    def last_processed(self, subscriber_id: str) -> int:
        """Return the last client seq recorded for ``subscriber_id``, 0 if none."""
        return self._last.get(subscriber_id, 0)

    def ack(self, subscriber_id: str, *, tick: int) -> InputAck:
        """Return the ack for ``subscriber_id`` as of ``tick`` (last seq 0 if none recorded).

        Raises:
            InvalidInput: If ``tick`` is not an int in ``[0, MAX_SEQ]``.
        """
        return InputAck(tick=tick, last_client_seq=self._last.get(subscriber_id, 0))

    def drain(self, *, tick: int) -> dict[str, InputAck]:
        """Return acks as of ``tick`` for subscribers with newly processed inputs, by id.

        The result is ordered by subscriber id. Each processed seq is reported
        once; a subscriber with nothing new gets no ack.

        Raises:
            InvalidInput: If ``tick`` is not an int in ``[0, MAX_SEQ]``; nothing is drained.
        """
        _bounded_int(tick, "tick", 0)
        out = {sid: InputAck(tick=tick, last_client_seq=self._last[sid]) for sid in sorted(self._dirty)}
        self._dirty.clear()
        return out

    def forget(self, subscriber_id: str) -> None:
        """Drop what we know of ``subscriber_id`` (it left). Unknown ids are ignored.

        A subscriber that comes back afterwards starts again from seq 1.
        """
        self._last.pop(subscriber_id, None)
        self._dirty.discard(subscriber_id)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PendingInput(Generic[InputT]):
    """An input the client predicted and the server has not acknowledged yet.

    Attributes:
        seq: Its client sequence number.
        input: The input as passed to :meth:`Reconciler.predict`.
    """

    seq: int
    input: InputT


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcilerStatistics:
    """Counters of a :class:`Reconciler`.

    Attributes:
        pending: Inputs predicted and not yet acknowledged.
        predicted: Inputs predicted in total.
        acknowledged: Inputs dropped because an ack covered them.
        reconciliations: Acks taken.
        ignored_acks: Duplicate or out-of-order acks ignored.
    """

    pending: int
    predicted: int
    acknowledged: int
    reconciliations: int
    ignored_acks: int


@final
class Reconciler(Generic[StateT, InputT]):
    """Client side: predicted state = authoritative state + pending inputs replayed.

    Args:
        apply: A pure ``apply(state, input) -> new_state``, the same rules the
            server applies.
        state: The initial authoritative state.
        first_seq: The seq given to the first predicted input (default 1).
        max_pending: How many unacknowledged inputs we keep before
            :meth:`predict` refuses more; it bounds memory and replay cost
            when the server stops answering.

    Raises:
        InvalidInput: If ``first_seq`` is not in ``[1, MAX_SEQ]`` or ``max_pending`` < 1.
    """

    def __init__(
        self,
        apply: Callable[[StateT, InputT], StateT],
        state: StateT,
        *,
        first_seq: int = 1,
        max_pending: int = 1024,
    ) -> None:
        self._next_seq = _bounded_int(first_seq, "first_seq", 1)
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise InvalidInput(f"max_pending must be an int >= 1, got {max_pending!r}")
        self._apply = apply
        self._max_pending = max_pending
        self._authoritative = state
        self._predicted = state
        self._pending: list[PendingInput[InputT]] = []
        self._last_ack: InputAck | None = None
        self._predicted_count = 0
        self._acknowledged = 0
        self._reconciliations = 0
        self._ignored = 0

    @property
    def state(self) -> StateT:
        """The predicted state: the authoritative state with the pending inputs applied."""
        return self._predicted

    @property
    def authoritative(self) -> StateT:
        """The last state received from the server (or the initial state)."""
        return self._authoritative

    @property
    def pending(self) -> tuple[PendingInput[InputT], ...]:
        """The unacknowledged inputs, oldest first."""
        return tuple(self._pending)

    @property
    def last_ack(self) -> InputAck | None:
        """The last ack taken, or None before the first one."""
        return self._last_ack

    @property
    def next_seq(self) -> int:
        """The seq the next predicted input will get."""
        return self._next_seq

    def statistics(self) -> ReconcilerStatistics:
        """Return the current counters."""
        return ReconcilerStatistics(
            pending=len(self._pending),
            predicted=self._predicted_count,
            acknowledged=self._acknowledged,
            reconciliations=self._reconciliations,
            ignored_acks=self._ignored,
        )

    def predict(self, input: InputT) -> int:
        """Apply ``input`` to the predicted state and keep it pending.

        Returns:
            The client seq to send along with ``input``.

        Raises:
            InvalidInput: If ``max_pending`` inputs are pending already, or the
                seq space is exhausted; nothing changes.
            Exception: Whatever ``apply`` raises; nothing changes.
        """
        if len(self._pending) >= self._max_pending:
            raise InvalidInput(f"{self._max_pending} inputs are pending already (max_pending)")
        if self._next_seq > MAX_SEQ:
            raise InvalidInput(f"client_seq would exceed {MAX_SEQ}")
        predicted = self._apply(self._predicted, input)
        seq = self._next_seq
        self._pending.append(PendingInput(seq=seq, input=input))
        self._predicted = predicted
        self._next_seq += 1
        self._predicted_count += 1
        return seq

    def reconcile(self, ack: InputAck, state: StateT) -> bool:
        """Take the server's ``state`` as of ``ack.tick`` and replay what it has not processed.

        Args:
            ack: Which of our inputs ``state`` reflects.
            state: The authoritative state as of ``ack.tick``.

        Returns:
            True if the ack was taken; False if it was ignored because its tick
            is not newer than the last ack taken (a duplicate or late delivery).

        Raises:
            InvalidInput: If ``ack`` acknowledges a seq we never sent, or a
                lower seq than an earlier ack; nothing changes.
            Exception: Whatever ``apply`` raises during the replay; nothing changes.
        """
        last = self._last_ack
        if last is not None and ack.tick <= last.tick:
            self._ignored += 1
            return False
        if ack.last_client_seq >= self._next_seq:
            raise InvalidInput(
                f"ack.last_client_seq {ack.last_client_seq} was never sent (the last sent is {self._next_seq - 1})"
            )
        if last is not None and ack.last_client_seq < last.last_client_seq:
            raise InvalidInput(
                f"ack.last_client_seq {ack.last_client_seq} is below the previously acknowledged "
                f"{last.last_client_seq}"
            )
        # Pending inputs are in seq order, so the acknowledged ones are a prefix.
        cut = 0
        while cut < len(self._pending) and self._pending[cut].seq <= ack.last_client_seq:
            cut += 1
        kept = self._pending[cut:]
        predicted = state
        for p in kept:
            predicted = self._apply(predicted, p.input)
        # Commit only now, so a raising ``apply`` leaves everything as it was.
        self._pending = kept
        self._authoritative = state
        self._predicted = predicted
        self._last_ack = ack
        self._acknowledged += cut
        self._reconciliations += 1
        return True
