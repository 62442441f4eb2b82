"""The shard: inputs, subscribers and ticks around one :class:`~shards.SimState`.

A :class:`Shard` performs no I/O and reads no clock. The host (the runtime's
shard object, a test, a benchmark) feeds it subscribers and inputs, calls
:meth:`Shard.run_tick` with the current time, and carries out what the
returned :class:`TickResult` says: send each frame, store the persistence
record, shut down when finished or idle. A host that ticks many shards
calls :meth:`Shard.advance` instead: the same tick, reported as the shared
frame alone when the tick is plain, else as a :class:`TickOutcome`.
:func:`restore_or_init` builds a shard from a persisted record (see
:mod:`shards._persistence`) or anew.

Invariants:

* A refused call (any :class:`~shards.ShardsError` raised before a tick runs)
  changes nothing: not the queue, not the subscribers, not the statistics.
* Inputs are applied in the order they were accepted (FIFO), each exactly
  once, all before the tick's ``tick(dt)``. An accepted input is applied even
  if its subscriber leaves before the tick: acceptance is a promise.
* Inputs are stored codec-encoded at push time; the simulation gets a fresh
  decoded copy, so nothing the caller or the simulation does to an input
  object afterwards changes the queue, the replay log or a persisted record.
* If a simulation hook raises, the shard is *failed*: that call and every
  later one (except :meth:`Shard.statistics` and the read-only properties)
  raise :class:`~shards.ShardFailed` chained ``from`` the hook's exception.
* After :meth:`Shard.stop`, or once the simulation reports it is finished,
  pushes, subscriptions and ticks raise :class:`~shards.ShardStopped`;
  removing subscribers and :meth:`Shard.persist_now` still work.
* Tick numbers start at 1 and go up by one per tick (:meth:`Shard.run_tick`
  or :meth:`Shard.advance`: one tick either way, reported two ways).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple, NoReturn

import msgpack

from ._codec import decode, encode
from ._errors import (
    CodecError,
    DuplicateSubscriber,
    InputQueueFull,
    InputTooLarge,
    InvalidInput,
    ShardFailed,
    ShardFull,
    ShardStopped,
    SnapshotError,
    SubscriberError,
    Unauthorized,
    UnknownSubscriber,
)
from ._frames import (
    _HEADER,
    _TICK_MAX,
    FORMATS,
    SnapshotFormat,
    encode_snapshot,
    frame_header,
    is_format,
    make_delta,
)
from ._persistence import (
    QueuedInput,
    ShardRecord,
    SubscriberRecord,
    decode_shard_state,
    encode_shard_state,
)
from ._replay import ReplayLog
from ._simulation import ShardAuth, SimState

__all__ = ["ShardConfig", "ShardStatistics", "Shard", "TickOutcome", "TickResult", "restore_or_init"]

_CLIENT_SEQ_MAX: Final = 2**63 - 1


def _check_int(name: str, value: object, minimum: int) -> None:
    if type(value) is not int or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardConfig:
    """How a shard runs. Validated on construction.

    Attributes:
        tick_rate_hz: Ticks per second the host should run. ``0`` means
            event-driven: the host calls :meth:`Shard.run_tick` when inputs
            arrive (and when it wants to), not on a timer.
        max_subscribers: Most subscribers attached at once (:class:`~shards.ShardFull` above).
        max_input_queue: Most inputs waiting for the next tick (:class:`~shards.InputQueueFull` above).
        max_input_bytes: Largest input, measured encoded with the shared codec
            (:class:`~shards.InputTooLarge` above).
        idle_ticks_before_shutdown: After this many consecutive ticks with no
            subscriber and no input, :attr:`TickResult.idle_shutdown` is set
            (default 1200: a minute at 20 Hz). ``0`` disables idle shutdown.
            A host that stops ticking when the shard is quiet never gets
            there; this is for hosts that keep ticking an empty shard.
        persist_every_ticks: A persistence record is returned every this many
            ticks (default 100: every 5 s at 20 Hz), as well as on finish,
            idle shutdown and going quiet. ``0`` disables the periodic record.
        snapshot_format: Format of subscribers that do not choose one.
        replay_log_ticks: Keep a :class:`~shards.ReplayLog` of this many
            ticks. ``0`` keeps none.
    """

    tick_rate_hz: float = 20.0
    max_subscribers: int = 64
    max_input_queue: int = 1024
    max_input_bytes: int = 64 * 1024
    idle_ticks_before_shutdown: int = 1200
    persist_every_ticks: int = 100
    snapshot_format: SnapshotFormat = "json"
    replay_log_ticks: int = 0

    def __post_init__(self) -> None:
        rate = self.tick_rate_hz
        if type(rate) not in (int, float) or not math.isfinite(rate) or rate < 0:
            raise ValueError(f"tick_rate_hz must be a finite number >= 0 (0 = event-driven), got {rate!r}")
        _check_int("max_subscribers", self.max_subscribers, 1)
        _check_int("max_input_queue", self.max_input_queue, 1)
        _check_int("max_input_bytes", self.max_input_bytes, 1)
        _check_int("idle_ticks_before_shutdown", self.idle_ticks_before_shutdown, 0)
        _check_int("persist_every_ticks", self.persist_every_ticks, 0)
        _check_int("replay_log_ticks", self.replay_log_ticks, 0)
        if not is_format(self.snapshot_format):
            raise ValueError(f"snapshot_format must be 'json' or 'msgpack', got {self.snapshot_format!r}")

    @property
    def event_driven(self) -> bool:
        """Whether ticks are driven by inputs rather than a timer (``tick_rate_hz == 0``)."""
        return self.tick_rate_hz == 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TickResult:
    """What the host must do after one tick.

    Attributes:
        tick: This tick's number (the first tick is 1).
        now: The time passed to :meth:`Shard.run_tick`.
        dt: The ``dt`` passed to the simulation's ``tick``.
        inputs_applied: How many inputs this tick applied.
        frames: Subscriber id to frame bytes (8-byte tick + snapshot), for
            every subscriber attached, in the order they were added.
        acks: Subscriber id to the client sequence number of its last input
            applied this tick (only subscribers with such an input), for
            acknowledgement envelopes.
        persist: A persistence record to store, or None when none is due.
        finished: The simulation is over; the shard is stopped.
        idle_shutdown: No subscriber and no input for
            ``idle_ticks_before_shutdown`` ticks; the host may shut the shard down.
        quiet: No subscriber and no queued input: the host stops ticking (the
            record in ``persist`` is the last one until something arrives).
    """

    tick: int
    now: float
    dt: float
    inputs_applied: int
    frames: Mapping[str, bytes] = field(default_factory=dict)
    acks: Mapping[str, int] = field(default_factory=dict)
    persist: bytes | None = None
    finished: bool = False
    idle_shutdown: bool = False
    quiet: bool = False


class TickOutcome(NamedTuple):
    """A tick that is not plain, as :meth:`Shard.advance` reports it.

    The fields, their names and meanings are :class:`TickResult`'s; read them
    by name. A named tuple because a host ticking thousands of shards gets one
    per general tick, and no record with named fields is cheaper to build.
    ``frames`` and ``acks`` are new dicts each tick, handed over to the host.

    Attributes:
        tick: This tick's number.
        now: The time passed to :meth:`Shard.advance`, as a float.
        dt: The ``dt`` passed to the simulation's ``tick``.
        inputs_applied: How many inputs this tick applied.
        frames: Subscriber id to frame bytes, for every subscriber attached.
        acks: Subscriber id to the client sequence number of its last input
            applied this tick.
        persist: A persistence record to store, or None when none is due.
        finished: The simulation is over; the shard is stopped.
        idle_shutdown: The shard has been idle for ``idle_ticks_before_shutdown`` ticks.
        quiet: No subscriber and no queued input: the host stops ticking.
    """

    tick: int
    now: float
    dt: float
    inputs_applied: int
    frames: dict[str, bytes]
    acks: dict[str, int]
    persist: bytes | None
    finished: bool
    idle_shutdown: bool
    quiet: bool


ShardState = Literal["running", "stopped", "finished", "failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardStatistics:
    """Counters of one shard instance (they restart at zero after a restore).

    Attributes:
        state: ``"running"``, ``"stopped"``, ``"finished"`` or ``"failed"``.
        tick: The shard's tick number (persisted, unlike the counters).
        ticks: Ticks run by this instance.
        inputs_accepted: Inputs accepted by pushes.
        inputs_applied: Inputs applied to the simulation.
        inputs_queued: Inputs waiting for the next tick.
        subscribers: Subscribers attached.
        frames_built: Frames built (one per subscriber per tick).
        delta_frames: Of those, delta envelopes carrying a delta.
        encodings: Snapshot encodings performed; lower than ``frames_built``
            when subscribers share one.
        bytes_encoded: Bytes produced by those encodings.
        frame_bytes: Total size of all frames built (what fan-out sends).
        persists: Persistence records built.
        last_persist_bytes: Size of the last record (0 if none).
        idle_ticks: Consecutive idle ticks so far.
        replay_dropped: Ticks pushed out of the replay log (0 without one).
    """

    state: ShardState
    tick: int
    ticks: int
    inputs_accepted: int
    inputs_applied: int
    inputs_queued: int
    subscribers: int
    frames_built: int
    delta_frames: int
    encodings: int
    bytes_encoded: int
    frame_bytes: int
    persists: int
    last_persist_bytes: int
    idle_ticks: int
    replay_dropped: int


_NO_COUNTS: Final = (0, 0, 0, 0, 0)
_INF: Final = math.inf

# Builds a TickOutcome from a tuple in field order, as namedtuple's own _make
# does: calling TickOutcome(...) runs the generated Python-level __new__ on
# top, doubling what the outcome adds to a trivial general tick. Type checkers
# do not match the tuple against the fields; the tests read each by name.
_new_outcome: Final = tuple.__new__


class _Subscriber:
    __slots__ = ("client_seq", "delta", "format", "id", "sent", "sent_tick")

    def __init__(self, sid: str, fmt: SnapshotFormat, delta: bool) -> None:
        self.id = sid
        self.format: SnapshotFormat = fmt
        self.delta = delta
        self.client_seq: int | None = None
        # Delta mode only: a private copy of the last snapshot sent and its tick.
        # Subscribers that were sent the same snapshot share one copy, which is
        # what lets them share one delta encoding on the next tick.
        self.sent: Any = None
        self.sent_tick: int | None = None


class _Queued:
    __slots__ = ("client_seq", "data", "seq", "sid")

    def __init__(self, seq: int, sid: str, data: bytes, client_seq: int | None) -> None:
        self.seq = seq
        self.sid = sid
        self.data = data
        self.client_seq = client_seq


def _detached_copy(value: object) -> Any:
    """A deep copy of a snapshot that later changes to the simulation cannot reach."""
    try:
        # msgpack in C is far faster than a Python walk; it turns tuples into
        # lists, which is what the client received anyway.
        return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False, strict_map_key=False)
    except (ValueError, TypeError, OverflowError):
        return _copy_tree(value)


def _copy_tree(value: object) -> Any:
    if isinstance(value, dict):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_tree(v) for v in value]
    return value


class Shard:
    """One shard: a simulation, its subscribers, its input queue and its clock-free tick loop.

    The host decides when to tick. With ``tick_rate_hz > 0`` it calls
    :meth:`run_tick` every ``1 / tick_rate_hz`` seconds while the shard is not
    quiet; with ``tick_rate_hz == 0`` (event-driven) it calls it when inputs
    arrive. See the module docstring for the invariants.
    """

    __slots__ = (
        "_bytes_encoded",
        "_checks_finished",
        "_config",
        "_delta_frames",
        "_encodings",
        "_failure",
        "_failure_message",
        "_finished",
        "_frame_bytes",
        "_frames_built",
        "_id",
        "_idle_limit",
        "_idle_ticks",
        "_inputs_accepted",
        "_inputs_applied",
        "_last_now",
        "_last_persist_bytes",
        "_next_seq",
        "_persist_every",
        "_persist_pending",
        "_persists",
        "_plain_bytes",
        "_plain_format",
        "_plain_subscribers",
        "_plain_ticks",
        "_queue",
        "_replay",
        "_shared_snapshot",
        "_sim",
        "_stopped",
        "_subs",
        "_tick",
        "_ticks",
    )

    def __init__(self, shard_id: str, sim: SimState, config: ShardConfig | None = None) -> None:
        """Create a shard at tick 0 with no subscribers and an empty queue.

        Args:
            shard_id: The shard's id (non-empty).
            sim: The simulation, e.g. ``MySim.create(shard_id)``.
            config: Limits and policies; None means ``ShardConfig()``.

        Raises:
            ValueError: ``shard_id`` is empty or not a string.
            TypeError: ``sim`` is not a :class:`~shards.SimState`, or
                ``config`` not a :class:`ShardConfig`.
        """
        if type(shard_id) is not str or not shard_id:
            raise ValueError(f"shard_id must be a non-empty string, got {shard_id!r}")
        if not isinstance(sim, SimState):
            raise TypeError(f"sim must be a SimState instance, got {type(sim).__name__}")
        if config is None:
            config = ShardConfig()
        elif not isinstance(config, ShardConfig):
            raise TypeError(f"config must be a ShardConfig, got {type(config).__name__}")
        self._id = shard_id
        self._sim = sim
        self._config = config
        # Read on every tick (the config is frozen).
        self._idle_limit = config.idle_ticks_before_shutdown
        self._persist_every = config.persist_every_ticks
        # snapshot() is called once per tick and shared, unless the simulation
        # gives subscribers their own views.
        self._shared_snapshot = type(sim).snapshot_for is SimState.snapshot_for
        # is_finished() is called after every tick only if the simulation overrides it.
        self._checks_finished = type(sim).is_finished is not SimState.is_finished
        # The one format every subscriber gets when the plain tick applies
        # (see _refresh_plain); None: use the general path.
        self._plain_format: SnapshotFormat | None = None
        self._tick = 0
        self._last_now: float | None = None
        self._next_seq = 1
        self._queue: deque[_Queued] = deque()
        self._subs: dict[str, _Subscriber] = {}
        self._idle_ticks = 0
        self._stopped = False
        self._finished = False
        self._failure: BaseException | None = None
        self._failure_message = ""
        # A record was due but could not be handed over (SnapshotError); the
        # next successful tick returns one.
        self._persist_pending = False
        self._replay = ReplayLog(config.replay_log_ticks) if config.replay_log_ticks else None
        # statistics
        self._ticks = 0
        self._inputs_accepted = 0
        self._inputs_applied = 0
        self._frames_built = 0
        self._delta_frames = 0
        self._encodings = 0
        self._bytes_encoded = 0
        self._frame_bytes = 0
        self._persists = 0
        self._last_persist_bytes = 0
        # Plain ticks since the counters above were last brought up to date
        # (see _settle_plain), with the sum of their frames' sizes.
        self._plain_ticks = 0
        self._plain_bytes = 0
        self._plain_subscribers = 0

    @classmethod
    def _from_record(cls, record: ShardRecord, sim: SimState, config: ShardConfig | None) -> Shard:
        """Rebuild a shard from a decoded record (see :func:`~shards.restore_or_init`)."""
        shard = cls(record.shard_id, sim, config)
        shard._tick = record.tick
        shard._last_now = record.last_now
        shard._next_seq = record.next_seq
        shard._idle_ticks = record.idle_ticks
        shard._finished = record.finished
        shard._stopped = record.stopped
        shard._queue.extend(_Queued(q.seq, q.subscriber_id, q.data, q.client_seq) for q in record.queue)
        for s in record.subscribers:
            sub = _Subscriber(s.subscriber_id, s.format, s.delta)
            sub.client_seq = s.last_client_seq
            sub.sent_tick = s.sent_tick
            sub.sent = s.sent_snapshot
            shard._subs[sub.id] = sub
        shard._refresh_plain()
        return shard

    # ------------------------------------------------------------------
    # Read-only properties (these work in every state)

    @property
    def shard_id(self) -> str:
        """The shard's id."""
        return self._id

    @property
    def sim(self) -> SimState:
        """The simulation. Mutating it outside the hooks breaks replay and persistence."""
        return self._sim

    @property
    def config(self) -> ShardConfig:
        """The shard's configuration."""
        return self._config

    @property
    def tick(self) -> int:
        """The number of the last tick run (0 before the first)."""
        return self._tick

    @property
    def failed(self) -> bool:
        """Whether a simulation hook raised (see :class:`~shards.ShardFailed`)."""
        return self._failure is not None

    @property
    def stopped(self) -> bool:
        """Whether the shard takes no more inputs (stopped by the host or finished)."""
        return self._stopped or self._finished

    @property
    def finished(self) -> bool:
        """Whether the simulation reported it is finished."""
        return self._finished

    @property
    def quiet(self) -> bool:
        """No subscriber and no queued input: the host need not tick."""
        return not self._subs and not self._queue

    @property
    def replay_log(self) -> ReplayLog | None:
        """The replay log, or None when ``replay_log_ticks`` is 0."""
        return self._replay

    def subscriber_ids(self) -> tuple[str, ...]:
        """The attached subscribers, in the order they were added."""
        self._check_not_failed()
        return tuple(self._subs)

    def statistics(self) -> ShardStatistics:
        """Return the shard's counters (works in every state, failed included)."""
        state: ShardState
        if self._failure is not None:
            state = "failed"
        elif self._finished:
            state = "finished"
        elif self._stopped:
            state = "stopped"
        else:
            state = "running"
        self._settle_plain()
        return ShardStatistics(
            state=state,
            tick=self._tick,
            ticks=self._ticks,
            inputs_accepted=self._inputs_accepted,
            inputs_applied=self._inputs_applied,
            inputs_queued=len(self._queue),
            subscribers=len(self._subs),
            frames_built=self._frames_built,
            delta_frames=self._delta_frames,
            encodings=self._encodings,
            bytes_encoded=self._bytes_encoded,
            frame_bytes=self._frame_bytes,
            persists=self._persists,
            last_persist_bytes=self._last_persist_bytes,
            idle_ticks=self._idle_ticks,
            replay_dropped=self._replay.dropped if self._replay is not None else 0,
        )

    # ------------------------------------------------------------------
    # State checks and failure

    def _check_not_failed(self) -> None:
        if self._failure is not None:
            raise ShardFailed(self._failure_message) from self._failure

    def _check_running(self, action: str) -> None:
        self._check_not_failed()
        if self._finished:
            raise ShardStopped(f"shard {self._id!r} has finished; cannot {action}")
        if self._stopped:
            raise ShardStopped(f"shard {self._id!r} is stopped; cannot {action}")

    def _fail(self, hook: str, exc: Exception) -> NoReturn:
        self._failure = exc
        self._refresh_plain()
        self._failure_message = f"shard {self._id!r} failed: {hook}() raised {type(exc).__name__}: {exc}"
        raise ShardFailed(self._failure_message) from exc

    # ------------------------------------------------------------------
    # Subscribers

    def _subscriber(self, subscriber_id: str) -> _Subscriber:
        sub = self._subs.get(subscriber_id)
        if sub is None:
            raise UnknownSubscriber(
                f"subscriber {subscriber_id!r} is not attached to shard {self._id!r}",
                subscriber_id=subscriber_id,
            )
        return sub

    def _check_new_subscriber(self, subscriber_id: str, format: str | None, delta: bool) -> SnapshotFormat:
        self._check_running("add a subscriber")
        if type(subscriber_id) is not str or not subscriber_id:
            raise SubscriberError(
                f"subscriber id must be a non-empty string, got {subscriber_id!r}", subscriber_id=None
            )
        if subscriber_id in self._subs:
            raise DuplicateSubscriber(
                f"subscriber {subscriber_id!r} is already attached to shard {self._id!r}",
                subscriber_id=subscriber_id,
            )
        if len(self._subs) >= self._config.max_subscribers:
            raise ShardFull(
                f"shard {self._id!r} is full ({self._config.max_subscribers} subscribers)",
                subscriber_id=subscriber_id,
            )
        fmt = self._config.snapshot_format if format is None else format
        if not is_format(fmt):
            raise SubscriberError(
                f"unknown snapshot format {fmt!r}; choose one of {', '.join(map(repr, FORMATS))}",
                subscriber_id=subscriber_id,
            )
        if type(delta) is not bool:
            raise SubscriberError(f"delta must be a bool, got {delta!r}", subscriber_id=subscriber_id)
        return fmt

    def add_subscriber(self, subscriber_id: str, *, format: str | None = None, delta: bool = False) -> None:
        """Attach a subscriber the host already trusts (no authorization hook).

        Args:
            subscriber_id: The subscriber's id (non-empty).
            format: ``"json"`` or ``"msgpack"``; None uses ``config.snapshot_format``.
            delta: Send delta envelopes (see :mod:`shards._frames`) instead of full snapshots.

        Raises:
            ShardFailed: the shard has failed.
            ShardStopped: the shard is stopped or finished.
            DuplicateSubscriber: the id is already attached.
            ShardFull: ``max_subscribers`` are attached.
            SubscriberError: the id, format or delta flag is invalid.
        """
        fmt = self._check_new_subscriber(subscriber_id, format, delta)
        self._subs[subscriber_id] = _Subscriber(subscriber_id, fmt, delta)
        self._refresh_plain()

    def add_subscriber_authorized(
        self,
        subscriber_id: str,
        auth: ShardAuth,
        *,
        format: str | None = None,
        delta: bool = False,
    ) -> None:
        """Attach a subscriber after the simulation's ``authorize_subscribe`` hook allows it.

        The hook runs last, after every other check passed.

        Raises:
            Unauthorized: the hook returned a false value, or raised
                Unauthorized itself (its message is kept).
            ShardFailed: the hook raised anything else (the shard is now
                failed), or had before.
            ShardStopped, DuplicateSubscriber, ShardFull, SubscriberError:
                as :meth:`add_subscriber`.
        """
        fmt = self._check_new_subscriber(subscriber_id, format, delta)
        try:
            allowed = self._sim.authorize_subscribe(subscriber_id, auth)
        except Unauthorized as exc:
            # A refusal with the simulation's own reason, not a failure.
            if exc.subscriber_id is None:
                exc.subscriber_id = subscriber_id
            raise
        except Exception as exc:
            self._fail("authorize_subscribe", exc)
        if not allowed:
            raise Unauthorized(
                f"user {auth.user_id!r} may not subscribe to shard {self._id!r} as {subscriber_id!r}",
                subscriber_id=subscriber_id,
            )
        self._subs[subscriber_id] = _Subscriber(subscriber_id, fmt, delta)
        self._refresh_plain()

    def remove_subscriber(self, subscriber_id: str) -> None:
        """Detach a subscriber. Its inputs already accepted are still applied.

        Works on a stopped or finished shard (connections close after the end).

        Raises:
            ShardFailed: the shard has failed.
            UnknownSubscriber: the id is not attached.
        """
        self._check_not_failed()
        self._subscriber(subscriber_id)
        del self._subs[subscriber_id]
        self._refresh_plain()

    def _refresh_plain(self) -> None:
        """Recompute ``_plain_format`` after the subscriber set or the shard's state changed.

        The plain tick (the fast path of :meth:`advance`) applies while the
        shard runs (not failed, finished or stopped), when there is no replay
        log, one snapshot is shared, and every subscriber takes full frames
        in the same format: one encoding, the same frame for all.
        """
        self._settle_plain()
        fmt: SnapshotFormat | None = None
        running = self._failure is None and not self._finished and not self._stopped
        if running and self._replay is None and self._shared_snapshot:
            for sub in self._subs.values():
                if sub.delta or (fmt is not None and sub.format != fmt):
                    fmt = None
                    break
                fmt = sub.format
        self._plain_format = fmt
        self._plain_subscribers = len(self._subs)

    def _settle_plain(self) -> None:
        """Add the plain ticks' share to the frame counters (kept apart: fewer updates per tick)."""
        ticks = self._plain_ticks
        if ticks:
            n = self._plain_subscribers
            size = self._plain_bytes
            self._ticks += ticks
            self._frames_built += n * ticks
            self._encodings += ticks
            self._bytes_encoded += size - 8 * ticks
            self._frame_bytes += size * n
            self._plain_ticks = self._plain_bytes = 0

    def mark_dropped(self, subscriber_id: str) -> None:
        """Record that the host could not deliver the last frame to this subscriber.

        A delta subscriber's next frame is then full; for other subscribers
        every frame is full anyway and this changes nothing.

        Raises:
            ShardFailed: the shard has failed.
            UnknownSubscriber: the id is not attached.
        """
        self._check_not_failed()
        sub = self._subscriber(subscriber_id)
        sub.sent = None
        sub.sent_tick = None

    def last_client_seq(self, subscriber_id: str) -> int | None:
        """The client sequence number of the subscriber's last applied input that had one.

        None if no such input has been applied yet. Use it to build an
        acknowledgement envelope (``{"ack": n}``) for client-side prediction.

        Raises:
            ShardFailed: the shard has failed.
            UnknownSubscriber: the id is not attached.
        """
        self._check_not_failed()
        return self._subscriber(subscriber_id).client_seq

    # ------------------------------------------------------------------
    # Inputs

    def _check_input(self, subscriber_id: str, input: object, client_seq: int | None) -> bytes:
        self._check_running("accept inputs")
        self._subscriber(subscriber_id)
        if client_seq is not None and (type(client_seq) is not int or not 0 <= client_seq <= _CLIENT_SEQ_MAX):
            raise InvalidInput(f"client_seq must be None or an integer in [0, 2**63), got {client_seq!r}")
        if len(self._queue) >= self._config.max_input_queue:
            raise InputQueueFull(
                f"shard {self._id!r} input queue is full ({self._config.max_input_queue} inputs)"
            )
        try:
            data = encode(input)
        except CodecError as exc:
            raise InvalidInput(f"input from {subscriber_id!r} is not encodable: {exc}") from exc
        if len(data) > self._config.max_input_bytes:
            raise InputTooLarge(
                f"input from {subscriber_id!r} is {len(data)} bytes encoded; the limit is {self._config.max_input_bytes}"
            )
        return data

    def _enqueue(self, subscriber_id: str, data: bytes, client_seq: int | None) -> int:
        seq = self._next_seq
        self._next_seq += 1
        self._queue.append(_Queued(seq, subscriber_id, data, client_seq))
        self._inputs_accepted += 1
        return seq

    def push_input(self, subscriber_id: str, input: object, *, client_seq: int | None = None) -> int:
        """Queue an input from an attached subscriber for the next tick (no authorization hook).

        The input is checked now: a refused input changes nothing.

        Args:
            subscriber_id: An attached subscriber.
            input: A value the shared codec accepts, at most
                ``max_input_bytes`` encoded.
            client_seq: The client's sequence number, acknowledged through
                :meth:`last_client_seq` and :attr:`TickResult.acks` once applied.

        Returns:
            The input's server sequence number (1, 2, 3, ... per shard).

        Raises:
            ShardFailed: the shard has failed.
            ShardStopped: the shard is stopped or finished.
            UnknownSubscriber: ``subscriber_id`` is not attached.
            InvalidInput: ``client_seq`` is invalid, or ``input`` is not codec-encodable.
            InputQueueFull: ``max_input_queue`` inputs are waiting.
            InputTooLarge: the encoded input is above ``max_input_bytes``.
        """
        data = self._check_input(subscriber_id, input, client_seq)
        return self._enqueue(subscriber_id, data, client_seq)

    def push_input_authorized(
        self,
        subscriber_id: str,
        auth: ShardAuth,
        input: object,
        *,
        client_seq: int | None = None,
    ) -> int:
        """Queue an input after the simulation's ``authorize_input`` hook allows it.

        The hook runs after every other check passed and sees a decoded copy
        of the input.

        Raises:
            Unauthorized: the hook returned a false value, or raised
                Unauthorized itself (its message is kept).
            InvalidInput: the hook raised it (its message is kept), or as
                :meth:`push_input`.
            ShardFailed: the hook raised anything else (the shard is now
                failed), or had before.
            ShardStopped, UnknownSubscriber, InputQueueFull,
                InputTooLarge: as :meth:`push_input`.
        """
        data = self._check_input(subscriber_id, input, client_seq)
        try:
            allowed = self._sim.authorize_input(subscriber_id, auth, decode(data))
        except (InvalidInput, Unauthorized):
            raise  # a refusal with the simulation's own reason, not a failure
        except Exception as exc:
            self._fail("authorize_input", exc)
        if not allowed:
            raise Unauthorized(
                f"user {auth.user_id!r} may not send this input as {subscriber_id!r}",
                subscriber_id=subscriber_id,
            )
        return self._enqueue(subscriber_id, data, client_seq)

    # ------------------------------------------------------------------
    # Lifecycle

    def stop(self) -> None:
        """Stop taking inputs, subscribers and ticks. Idempotent.

        Raises:
            ShardFailed: the shard has failed.
        """
        self._check_not_failed()
        self._stopped = True
        self._refresh_plain()

    def persist_now(self) -> bytes:
        """Build a persistence record now (for example when the shard goes quiet).

        Works on a stopped or finished shard.

        Raises:
            ShardFailed: the shard has failed, or ``to_state()`` raised now.
            SnapshotError: the simulation state cannot be encoded.
        """
        self._check_not_failed()
        record = self._persist()
        self._persist_pending = False
        return record

    def _to_record(self) -> ShardRecord:
        try:
            sim_state = self._sim.to_state()
        except Exception as exc:
            self._fail("to_state", exc)
        return ShardRecord(
            shard_id=self._id,
            tick=self._tick,
            last_now=self._last_now,
            next_seq=self._next_seq,
            idle_ticks=self._idle_ticks,
            finished=self._finished,
            stopped=self._stopped,
            sim_state=sim_state,
            queue=tuple(
                QueuedInput(seq=q.seq, subscriber_id=q.sid, data=q.data, client_seq=q.client_seq)
                for q in self._queue
            ),
            subscribers=tuple(
                SubscriberRecord(
                    subscriber_id=s.id,
                    format=s.format,
                    delta=s.delta,
                    last_client_seq=s.client_seq,
                    sent_tick=s.sent_tick,
                    sent_snapshot=s.sent,
                )
                for s in self._subs.values()
            ),
        )

    def _persist(self) -> bytes:
        data = encode_shard_state(self._to_record())
        self._persists += 1
        self._last_persist_bytes = len(data)
        return data

    # ------------------------------------------------------------------
    # The tick

    def run_tick(self, now: float) -> TickResult:
        """Run one tick at time ``now`` (seconds) and return what the host must do.

        In order: apply every queued input (FIFO) with
        ``apply_input(subscriber_id, input, now)``; call ``tick(dt)``; ask
        ``is_finished()``; build one frame per subscriber; build a persistence
        record if one is due (every ``persist_every_ticks`` ticks, on finish,
        on idle shutdown, when the shard is quiet, or left over from a tick
        that raised :class:`~shards.SnapshotError`).

        ``dt`` is ``now`` minus the previous tick's ``now``. The first tick
        has no previous one: it uses ``1 / tick_rate_hz``, or ``0.0`` for an
        event-driven shard (``tick_rate_hz == 0``), whose host calls this when
        inputs arrive rather than on a timer.

        Raises:
            ShardFailed: a hook raised (the shard is now failed), or had before.
            ShardStopped: the shard is stopped or finished.
            ValueError: ``now`` is not finite or is before the previous tick's.
            SnapshotError: a snapshot cannot be encoded for some subscriber,
                or the state cannot be persisted. The tick itself has happened
                (inputs applied, tick number advanced), but no subscriber's
                frame state moved: delta bases stay on the last frame built,
                and a record that was due is returned by the next tick (if
                the simulation finished in this tick there is no next tick:
                check :attr:`finished` and call :meth:`persist_now`).
        """
        last = self._last_now
        outcome = self.advance(now)
        if isinstance(outcome, bytes):
            # A plain tick took a float ``now`` and had a previous tick.
            assert last is not None
            return TickResult(
                tick=self._tick,
                now=now,
                dt=now - last,
                inputs_applied=0,
                frames=dict.fromkeys(self._subs, outcome),
                acks={},
                persist=None,
                finished=False,
                idle_shutdown=False,
                quiet=False,
            )
        return TickResult(
            tick=outcome.tick,
            now=outcome.now,
            dt=outcome.dt,
            inputs_applied=outcome.inputs_applied,
            frames=outcome.frames,
            acks=outcome.acks,
            persist=outcome.persist,
            finished=outcome.finished,
            idle_shutdown=outcome.idle_shutdown,
            quiet=outcome.quiet,
        )

    def advance(self, now: float) -> bytes | TickOutcome:
        """Run one tick at time ``now``, as :meth:`run_tick` does, and report it for a busy host.

        The same tick as :meth:`run_tick` (same order, same effects, same
        exceptions), for a host ticking many shards: building a
        :class:`TickResult` costs about as much as a trivial tick, and most
        ticks need less.

        Returns:
            The frame, as ``bytes``, when the tick is *plain*: no input was
            applied, no persistence record is due, the shard is still
            running, and every subscriber (there is at least one) gets this
            same frame. The rest of a plain tick's :class:`TickResult` is
            implied: ``tick`` is :attr:`tick`, ``dt`` is ``now`` minus the
            previous tick's ``now`` (a plain tick always has one),
            ``inputs_applied`` is 0, ``acks`` is empty, ``persist`` is None and
            the flags are false.

            A :class:`TickOutcome` for any other tick, with the fields
            :meth:`run_tick`'s result would have.

            Which ticks are plain is the shard's business (it depends on the
            subscribers' formats and modes, the replay log, the simulation's
            hooks and more): a host handles both forms.

        Raises:
            As :meth:`run_tick`.
        """
        fmt = self._plain_format
        if fmt is not None and type(now) is float and not self._queue and not self._persist_pending:
            # The plain tick: no input to apply, no record due, one frame for
            # every subscriber. Same outcome as the general path below, in
            # far fewer steps (10,000 shards at 20 Hz leave a few µs a tick).
            last = self._last_now
            tick = self._tick + 1
            every = self._persist_every
            if (
                last is not None
                and last <= now < _INF
                and not (every and tick % every == 0)
                and tick <= _TICK_MAX
            ):
                return self._advance_plain(now, last, tick, fmt)
        if self._failure is not None or self._finished or self._stopped:
            self._check_running("run a tick")
        kind = type(now)
        if (kind is not float and kind is not int) or not math.isfinite(now):
            raise ValueError(f"now must be a finite number of seconds, got {now!r}")
        now = float(now)
        last = self._last_now
        if last is None:
            rate = self._config.tick_rate_hz
            dt = 1.0 / rate if rate else 0.0
        else:
            if now < last:
                raise ValueError(f"time went backwards: now={now} is before the previous tick's {last}")
            dt = now - last

        tick = self._tick + 1
        queue = self._queue
        sim = self._sim
        acks: dict[str, int] = {}
        subs = self._subs
        if queue:
            self._queue = deque()
            try:
                for q in queue:
                    sim.apply_input(q.sid, decode(q.data), now)
                    if q.client_seq is not None:
                        sub = subs.get(q.sid)
                        if sub is not None:
                            sub.client_seq = q.client_seq
                            acks[q.sid] = q.client_seq
            except Exception as exc:
                self._fail("apply_input", exc)
        try:
            sim.tick(dt)
        except Exception as exc:
            self._fail("tick", exc)
        finished = False
        if self._checks_finished:
            try:
                finished = bool(sim.is_finished())
            except Exception as exc:
                self._fail("is_finished", exc)
        return self._complete(tick, now, dt, queue, acks, finished)

    def _advance_plain(self, now: float, last: float, tick: int, fmt: SnapshotFormat) -> bytes | TickOutcome:
        """:meth:`advance` when its fast-path conditions hold (checked by the caller).

        Not plain after all (and a :class:`TickOutcome`) when the simulation finishes in this tick.
        """
        dt = now - last
        sim = self._sim
        try:
            sim.tick(dt)
        except Exception as exc:
            self._fail("tick", exc)
        if self._checks_finished:
            try:
                finished = bool(sim.is_finished())
            except Exception as exc:
                self._fail("is_finished", exc)
            if finished:
                return self._complete(tick, now, dt, (), {}, True)
        self._tick = tick
        self._last_now = now
        self._idle_ticks = 0
        try:
            snapshot = sim.snapshot()
        except Exception as exc:
            self._ticks += 1
            self._fail("snapshot", exc)
        header = _HEADER.pack(tick)
        try:
            frame = header + encode_snapshot(snapshot, fmt)
        except SnapshotError:
            self._ticks += 1
            self._build_shared_frames(tick, header, snapshot)  # raises it with the general path's message
            raise
        self._plain_ticks += 1
        self._plain_bytes += len(frame)
        return frame

    def _complete(
        self,
        tick: int,
        now: float,
        dt: float,
        queue: Collection[_Queued],
        acks: dict[str, int],
        finished: bool,
    ) -> TickOutcome:
        """The rest of :meth:`advance` once the simulation has ticked."""
        subs = self._subs
        # The tick has happened: commit it before anything that may raise SnapshotError.
        applied = len(queue)
        self._tick = tick
        self._last_now = now
        self._ticks += 1
        self._inputs_applied += applied
        if self._replay is not None:
            self._replay.record(tick, now, dt, [(q.sid, q.data) for q in queue])
        if subs:
            self._idle_ticks = 0
            idle_shutdown = quiet = False
        else:
            if queue:
                self._idle_ticks = 0
            else:
                self._idle_ticks += 1
            limit = self._idle_limit
            idle_shutdown = limit > 0 and self._idle_ticks >= limit
            quiet = not self._queue
        if finished:
            self._finished = True
            self._refresh_plain()
        every = self._persist_every
        if (every and tick % every == 0) or finished or idle_shutdown or quiet:
            self._persist_pending = True

        if subs:
            frames, updates, counts = self._build_frames(tick)
        else:
            frames, updates, counts = {}, [], _NO_COUNTS

        record: bytes | None = None
        if updates:
            # Commit the subscribers' frame state, keeping the old one in case the record fails.
            previous = [(sub, sub.sent, sub.sent_tick) for sub, _ in updates]
            for sub, sent in updates:
                sub.sent = sent
                sub.sent_tick = tick
        else:
            previous = []
        if self._persist_pending:
            try:
                record = self._persist()
            except SnapshotError:
                for sub, sent, sent_tick in previous:
                    sub.sent = sent
                    sub.sent_tick = sent_tick
                raise
            self._persist_pending = False
        if counts is not _NO_COUNTS:
            built, deltas, encodings, encoded, total = counts
            self._frames_built += built
            self._delta_frames += deltas
            self._encodings += encodings
            self._bytes_encoded += encoded
            self._frame_bytes += total
        return _new_outcome(
            TickOutcome, (tick, now, dt, applied, frames, acks, record, finished, idle_shutdown, quiet)
        )

    def _build_frames(
        self, tick: int
    ) -> tuple[dict[str, bytes], list[tuple[_Subscriber, Any]], tuple[int, int, int, int, int]]:
        """Build every subscriber's frame without changing any state.

        Returns the frames, the delta subscribers' new bases (to commit), and
        counters (frames, delta frames, encodings, bytes encoded, frame bytes).
        """
        frames: dict[str, bytes] = {}
        updates: list[tuple[_Subscriber, Any]] = []
        if not self._subs:
            return frames, updates, _NO_COUNTS
        sim = self._sim
        header = _HEADER.pack(tick) if tick <= _TICK_MAX else frame_header(tick)
        shared: Any = None
        if self._shared_snapshot:
            try:
                shared = sim.snapshot()
            except Exception as exc:
                self._fail("snapshot", exc)
            built = self._build_shared_frames(tick, header, shared)
            if built is not None:
                return built
        # Caches are keyed by object identity; `alive` holds every keyed object
        # so no id is reused while this tick's frames are built.
        alive: list[Any] = []
        encoded: dict[tuple[Any, ...], bytes] = {}
        copies: dict[int, Any] = {}
        deltas: dict[tuple[int, int], dict[str, Any]] = {}
        n_delta = n_enc = n_bytes = n_total = 0
        for sub in self._subs.values():
            if self._shared_snapshot:
                snap = shared
            else:
                try:
                    snap = sim.snapshot_for(sub.id)
                except Exception as exc:
                    self._fail("snapshot_for", exc)
                alive.append(snap)
            fmt = sub.format
            sent_tick = sub.sent_tick
            if not sub.delta:
                key: tuple[Any, ...] = (id(snap), fmt)
            elif sent_tick is None:
                key = (id(snap), fmt, "full")
            else:
                key = (id(snap), fmt, id(sub.sent), sent_tick)
                n_delta += 1
            frame = encoded.get(key)
            if frame is None:
                # Build the payload only on a cache miss: most subscribers hit.
                payload: object
                if not sub.delta:
                    payload = snap
                elif sent_tick is None:
                    payload = {"full": snap}
                else:
                    dkey = (id(sub.sent), id(snap))
                    d = deltas.get(dkey)
                    if d is None:
                        d = deltas[dkey] = make_delta(sub.sent, snap)
                    payload = {"base": sent_tick, "delta": d}
                try:
                    frame = header + encode_snapshot(payload, fmt)
                except SnapshotError as exc:
                    raise SnapshotError(
                        f"shard {self._id!r} tick {tick}, subscriber {sub.id!r}: {exc}"
                    ) from exc
                encoded[key] = frame
                n_enc += 1
                n_bytes += len(frame) - len(header)
            if sub.delta:
                copy = copies.get(id(snap))
                if copy is None:
                    copy = copies[id(snap)] = _detached_copy(snap)
                updates.append((sub, copy))
            frames[sub.id] = frame
            n_total += len(frame)
        return frames, updates, (len(frames), n_delta, n_enc, n_bytes, n_total)

    def _build_shared_frames(
        self, tick: int, header: bytes, snapshot: Any
    ) -> tuple[dict[str, bytes], list[tuple[_Subscriber, Any]], tuple[int, int, int, int, int]] | None:
        """The common case: one snapshot, no delta subscriber: one encoding per format.

        Same result as the general loop, without its per-subscriber cache
        lookups; None when some subscriber is in delta mode (the general loop's case).
        """
        subs = self._subs
        by_format: dict[str, bytes] = {}
        for sub in subs.values():
            if sub.delta:
                return None
            fmt = sub.format
            if fmt not in by_format:
                try:
                    by_format[fmt] = header + encode_snapshot(snapshot, fmt)
                except SnapshotError as exc:
                    raise SnapshotError(
                        f"shard {self._id!r} tick {tick}, subscriber {sub.id!r}: {exc}"
                    ) from exc
        n = len(subs)
        if len(by_format) == 1:
            [frame] = by_format.values()
            size = len(frame)
            return dict.fromkeys(subs, frame), [], (n, 0, 1, size - len(header), size * n)
        frames = {sid: by_format[sub.format] for sid, sub in subs.items()}
        n_bytes = sum(len(f) for f in by_format.values())
        n_total = sum(len(f) for f in frames.values())
        return frames, [], (n, 0, len(by_format), n_bytes - len(header) * len(by_format), n_total)


def restore_or_init(
    shard_id: str, sim_cls: type[SimState], config: ShardConfig | None, record: bytes | None
) -> Shard:
    """Return the shard persisted in ``record``, or a new one when ``record`` is None.

    A new shard's simulation is ``sim_cls.create(shard_id)``; a restored one's
    is ``sim_cls.from_state(...)``. Limits in ``config`` apply to what comes
    next: a restored queue or subscriber list above them is kept, not cut.

    Args:
        shard_id: The shard's id; a record for another shard is refused.
        sim_cls: The :class:`~shards.SimState` subclass.
        config: The configuration (None: defaults).
        record: Bytes from :meth:`Shard.persist_now <shards.Shard.persist_now>`
            or a :class:`~shards.TickResult`'s ``persist``, or None.

    Raises:
        SnapshotVersionError: the record has an unknown version.
        SnapshotCorrupt: the record is not decodable.
        SnapshotError: the record belongs to another shard, or
            ``sim_cls.create``/``sim_cls.from_state`` raised (chained).
    """
    if record is None:
        try:
            sim = sim_cls.create(shard_id)
        except Exception as exc:
            raise SnapshotError(
                f"cannot create shard {shard_id!r}: {sim_cls.__name__}.create() raised {type(exc).__name__}: {exc}"
            ) from exc
        return Shard(shard_id, sim, config)
    state = decode_shard_state(record)
    if state.shard_id != shard_id:
        raise SnapshotError(f"the record belongs to shard {state.shard_id!r}, not {shard_id!r}")
    try:
        sim = sim_cls.from_state(state.sim_state)
    except Exception as exc:
        raise SnapshotError(
            f"cannot restore shard {shard_id!r}: {sim_cls.__name__}.from_state() raised {type(exc).__name__}: {exc}"
        ) from exc
    return Shard._from_record(state, sim, config)
