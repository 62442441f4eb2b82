"""ShardObject: a :class:`~shards.Shard` hosted in a Durable Object.

A user writes an ordinary module-level class (a Wrangler config names it by
``class_name``)::

    class Arena(ShardObject):
        sim = ArenaState                          # a SimState subclass
        config = ShardConfig(tick_rate_hz=20)     # 0 = event-driven
        tick_strategy = "timer"                   # or "alarm" (default)
        persist_every_ticks = 100                 # overrides config.persist_every_ticks

and subscribers reach it through :func:`~runtime.shard_objects.handle_shard_upgrade`.

How it runs:

* **Restore or init** in the constructor, from the record under
  ``"shard/state"`` (none: a new shard). The subscribers are then rebuilt
  from the object's hibernatable sockets (``ctx.getWebSockets()`` and each
  socket's attachment), not from memory: a subscriber in the record whose
  socket is gone is removed, a socket whose subscriber the record does not
  know (it joined after the last persist) is added back, and every delta
  subscriber's next frame is full (frames sent after the record may be lost).
* **Ticks.** ``alarm``: each tick is an alarm (one storage write per tick,
  as pylon's Durable Object template does); the handler ticks and re-arms.
  ``timer``: the runtime's one scheduler calls the tick directly (no task per
  shard, no event per tick) and the shard pins the object while it ticks,
  as a pending ``setInterval`` does in production; a keep-alive alarm every
  ``keepalive_seconds`` counts as an event, so a ticking object is not
  evicted for want of incoming events, and wakes it if it was. (The pin is
  an activation pin, so ``ObjectStatistics.background_tasks`` shows 1 while
  a timer shard ticks, though no task exists.)
  Event-driven (``tick_rate_hz == 0``): a tick runs on the scheduler right
  after inputs arrive (inputs arriving together share one tick).
* **Quiet.** When no subscriber is attached and no input is queued the shard
  persists (the :class:`~shards.TickResult` carries the record) and stops
  ticking: nothing pins the object, so it hibernates. Production offers no
  hook before hibernation; nothing here relies on one. The next message
  (a subscriber connecting, an input) restarts ticking at the next tick
  number. Persisted too: every ``persist_every_ticks`` ticks and on finish.
* **Shard time** (the ``now``/``dt`` hooks see) is the runtime clock with
  the quiet spells cut out, for ticking shards: the first tick after a
  pause or a wake gets ``dt`` = one period, not the hours spent asleep.
  Event-driven shards see the runtime clock as it is.
* **Frames**: binary, one per subscriber per tick (shared encodings, see
  :meth:`~shards.Shard.run_tick`), then acks as text frames; the
  slow-subscriber policy is :mod:`runtime.shard_objects._backpressure`.

Invariants:

* Only the object's own code (handlers, and its tick callbacks, which the
  scheduler runs between events, like production's timer callbacks) touches
  the shard, and never across an ``await``.
* A refused message is answered with a text error frame and changes nothing.
* At most one scheduled tick exists per object; a dead activation's
  callback does nothing.
* Writes (the record, the next alarm) precede the frames that follow them,
  so the output gate holds those frames until the record is durable.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeVar

from runtime._http import Response
from runtime._object import DurableObject, DurableObjectState
from runtime.sockets import OPEN, WebSocket, WebSocketPair
from shards import (
    Shard,
    ShardAuth,
    ShardConfig,
    ShardStatistics,
    SimState,
    SnapshotFormat,
    decode_shard_state,
    encode_frame,
    restore_or_init,
)
from shards._errors import (
    InputQueueFull,
    InputTooLarge,
    InvalidInput,
    ProtocolError,
    ShardFailed,
    ShardFull,
    ShardsError,
    ShardStopped,
    SnapshotError,
    SubscriberError,
    Unauthorized,
    UnknownSubscriber,
)

from ._backpressure import Backpressure, BackpressurePolicy, Decision
from ._protocol import (
    CLOSE_FINISHED,
    CLOSE_FULL,
    CLOSE_INTERNAL,
    CLOSE_REPLACED,
    CLOSE_TOO_SLOW,
    SubscribeParams,
    ack_message,
    error_message,
    message_too_large,
    parse_inbound,
)

if TYPE_CHECKING:
    from runtime._core import Activation
    from runtime._scheduler import Scheduler, TimerHandle

__all__ = ["STATE_KEY", "ShardObject", "ShardObjectStatistics", "TickStrategy"]

log = logging.getLogger("shardsim.shard_objects")
T = TypeVar("T")

TickStrategy = Literal["alarm", "timer"]

#: Storage key of the persisted shard record.
STATE_KEY: Final = "shard/state"
#: Storage key of the shard id (the object's id may be nameless when an alarm wakes it).
ID_KEY: Final = "shard/id"
#: Attachment format version.
_ATTACHMENT_VERSION: Final = 1


#: What a refused input is called in the error frame, most specific first
#: (InputQueueFull and InputTooLarge are InvalidInputs).
_INPUT_ERROR_CODES: tuple[tuple[type[ShardsError], str], ...] = (
    (Unauthorized, "unauthorized"),
    (InputQueueFull, "queue_full"),
    (InputTooLarge, "too_large"),
    (InvalidInput, "invalid"),
    (UnknownSubscriber, "not_subscribed"),
    (ShardStopped, "stopped"),
)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription the upgrade path has authenticated, handed to the object's ``fetch``."""

    params: SubscribeParams
    auth: ShardAuth


#: The verified subscription travels to the object's ``fetch`` in this
#: variable: the handler runs in the caller's task, and nothing a client
#: sends (headers, URL) can set it, so a Worker that forwards a client's
#: request to the object cannot forge a subscriber.
PENDING_SUBSCRIPTION: contextvars.ContextVar[Subscription | None] = contextvars.ContextVar(
    "shardsim_pending_subscription", default=None
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardObjectStatistics:
    """What one shard object did in this activation (counters restart on wake).

    Attributes:
        strategy: ``"alarm"``, ``"timer"`` or ``"event"``.
        ticking: Whether ticks are scheduled now.
        failed: Whether the simulation failed.
        subscribers: Subscribers with a live socket.
        ticks: Ticks run.
        frames_sent: Binary frames handed to sockets.
        frames_skipped: Frames not sent because the subscriber was backed up.
        slow_disconnects: Subscribers closed with 4001.
        acks_sent: Ack text frames sent.
        errors_sent: Error text frames sent.
        inputs_accepted: Inputs queued.
        records_written: Persistence records stored.
        shard: The shard's own counters (``encodings`` shows the sharing).
    """

    strategy: str
    ticking: bool
    failed: bool
    subscribers: int
    ticks: int
    frames_sent: int
    frames_skipped: int
    slow_disconnects: int
    acks_sent: int
    errors_sent: int
    inputs_accepted: int
    records_written: int
    shard: ShardStatistics


_UNPROBED: Final[Any] = object()


class _Conn:
    __slots__ = ("auth", "buffered", "delta", "format", "transport", "ws")

    def __init__(self, ws: WebSocket, auth: ShardAuth, fmt: SnapshotFormat | None, delta: bool) -> None:
        self.ws = ws
        self.auth = auth
        self.format = fmt
        self.delta = delta
        # The transport's buffered_amount (None: it has none), found at the first frame sent
        # after the connection got its transport.
        self.buffered: Any = _UNPROBED
        # The client end's transport once probed: a socket pair's ends and a
        # client's transport never change once set, so frames go straight to
        # it (what ws.send() does, minus two objects to fetch on every tick).
        self.transport: Any = None


def _settled(awaitable: Awaitable[T]) -> T:
    """The value of a storage call that never suspends (a ``StorageResult``), from sync code."""
    gen = awaitable.__await__()
    try:
        next(gen)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("a storage read suspended; please file a bug")  # pragma: no cover


def _probe(conn: _Conn) -> Any:
    """Find the connection's ``buffered_amount`` hook (see runtime/sockets/_transport.py).

    Returns the bound method, None when the transport has none (never slow),
    or ``_UNPROBED`` while no transport is attached yet (an in-memory pair).
    """
    other = conn.ws._other
    transport = other._transport if other is not None else None
    if transport is None:
        return _UNPROBED
    conn.transport = transport
    hook = getattr(transport, "buffered_amount", None)
    conn.buffered = hook if callable(hook) else None
    return conn.buffered


def _attachment(
    sid: str, auth: ShardAuth, fmt: SnapshotFormat | None, delta: bool, claims: bool
) -> dict[str, Any]:
    return {
        "v": _ATTACHMENT_VERSION,
        "sid": sid,
        "format": fmt,
        "delta": delta,
        "user": auth.user_id,
        "admin": auth.admin,
        "claims": dict(auth.claims) if claims else {},
    }


def _conn_from(ws: WebSocket) -> tuple[str, _Conn] | None:
    """Rebuild a subscriber from its socket's attachment (None: not a subscriber socket)."""
    att = ws.deserializeAttachment()
    if not isinstance(att, dict) or att.get("v") != _ATTACHMENT_VERSION:
        return None
    auth = ShardAuth(user_id=att["user"], admin=att["admin"], claims=att["claims"])
    return att["sid"], _Conn(ws, auth, att["format"], att["delta"])


class ShardObject(DurableObject):
    """Base class of shard objects: set the class attributes, subclass nothing else.

    Class attributes:
        sim: The :class:`~shards.SimState` subclass (required).
        config: The :class:`~shards.ShardConfig` (``tick_rate_hz == 0``: event-driven).
        tick_strategy: ``"alarm"`` (default) or ``"timer"``; ignored when event-driven.
        persist_every_ticks: When set, replaces ``config.persist_every_ticks``.
        backpressure: The :class:`BackpressurePolicy` for slow subscribers.
        keepalive_seconds: Timer strategy: the keep-alive alarm's period.
        max_message_bytes: Largest inbound message; None: twice
            ``config.max_input_bytes`` plus 1 KiB (JSON is larger than the codec).

    Subclasses may override ``fetch`` for their own routes (call
    ``super().fetch(request)`` for the rest), and add RPC methods. The
    object's alarm and the storage keys ``shard/state`` and ``shard/id``
    belong to the shard: do not set alarms or write those keys yourself.
    """

    # The per-tick state lives in slots, inside the object itself: with
    # 10,000 shards ticking, each attribute read that misses the CPU cache
    # costs more than the bytecode reading it. (Subclasses still get a
    # ``__dict__`` for their own attributes.)
    __slots__ = (
        "_acks",
        "_act",
        "_backpressure",
        "_errors",
        "_failed",
        "_frames_sent",
        "_frames_skipped",
        "_id_stored",
        "_inputs",
        "_last_now",
        "_max_message",
        "_next_due",
        "_offset",
        "_period",
        "_pinned",
        "_records",
        "_resync",
        "_runtime",
        "_scheduler",
        "_shard",
        "_slow",
        "_strategy",
        "_subs",
        "_ticking",
        "_ticks",
        "_timer",
    )

    sim: ClassVar[type[SimState]]
    config: ClassVar[ShardConfig] = ShardConfig()
    tick_strategy: ClassVar[TickStrategy] = "alarm"
    persist_every_ticks: ClassVar[int | None] = None
    backpressure: ClassVar[BackpressurePolicy] = BackpressurePolicy()
    keepalive_seconds: ClassVar[float] = 30.0
    max_message_bytes: ClassVar[int | None] = None

    _shard_config: ClassVar[ShardConfig]
    _tick_period: ClassVar[float]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        sim = cls.__dict__.get("sim", getattr(cls, "sim", None))
        if sim is None:
            return  # an intermediate base class; the concrete one names its sim
        if not (isinstance(sim, type) and issubclass(sim, SimState)):
            raise TypeError(f"{cls.__name__}.sim must be a SimState subclass, got {sim!r}")
        if not isinstance(cls.config, ShardConfig):
            raise TypeError(f"{cls.__name__}.config must be a ShardConfig, got {cls.config!r}")
        if cls.tick_strategy not in ("alarm", "timer"):
            raise ValueError(
                f"{cls.__name__}.tick_strategy must be 'alarm' or 'timer', got {cls.tick_strategy!r}"
            )
        if not isinstance(cls.backpressure, BackpressurePolicy):
            raise TypeError(f"{cls.__name__}.backpressure must be a BackpressurePolicy")
        if not cls.keepalive_seconds > 0:
            raise ValueError(f"{cls.__name__}.keepalive_seconds must be > 0")
        config = cls.config
        if cls.persist_every_ticks is not None:
            # ShardConfig validates the value.
            config = dataclasses.replace(config, persist_every_ticks=cls.persist_every_ticks)
        cls._shard_config = config
        # One float object for every instance: a per-instance one is one more
        # object to fetch from memory on every tick.
        cls._tick_period = 1.0 / config.tick_rate_hz if config.tick_rate_hz else 0.0

    # ------------------------------------------------------------------
    # Activation

    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        cls = type(self)
        if not hasattr(cls, "_shard_config"):
            raise TypeError(f"{cls.__name__} must set the class attribute 'sim' to a SimState subclass")
        config = cls._shard_config
        self._act: Activation = ctx._act
        # The core's shared state: its clock and its scheduler are the runtime's.
        self._runtime = self._act.actor.core
        self._scheduler = self._runtime.scheduler
        self._period = cls._tick_period
        self._strategy = "event" if config.event_driven else cls.tick_strategy
        self._max_message = cls.max_message_bytes or 2 * config.max_input_bytes + 1024
        self._subs: dict[str, _Conn] = {}
        self._backpressure = Backpressure(cls.backpressure)
        self._ticking = False
        self._timer: TimerHandle | None = None
        self._pinned = False
        self._next_due = 0.0  # trio time (timer) or ms since the epoch (alarm)
        self._failed = False
        self._ticks = self._frames_sent = self._frames_skipped = self._slow = 0
        self._acks = self._errors = self._inputs = self._records = 0

        kv = ctx.storage.kv
        record = kv.get(STATE_KEY)
        stored_id = kv.get(ID_KEY)
        self._id_stored = stored_id is not None
        shard_id = stored_id if stored_id is not None else (ctx.id.name or ctx.id.toString())
        self._shard: Shard = restore_or_init(shard_id, cls.sim, config, record)
        last_now = decode_shard_state(record).last_now if record is not None else None
        self._last_now = last_now
        wall = self._wall()
        if last_now is None:
            self._offset = 0.0
        elif self._strategy == "event":
            self._offset = min(0.0, wall - last_now)
        else:
            # Continue from the last tick as if no time had passed while asleep
            # (the first tick resynchronises, see _begin_clock).
            self._offset = wall - last_now - self._period
        self._resync = last_now is not None and self._strategy != "event"
        self._reconcile()
        self._ensure_ticking()

    def _wall(self) -> float:
        return float(self._runtime.clock.now_ms()) / 1000.0

    def _shard_now(self) -> float:
        return self._wall() - self._offset

    def _reconcile(self) -> None:
        """Rebuild the subscriber set from the sockets the runtime kept for us."""
        live: dict[str, _Conn] = {}
        for ws in self.ctx.getWebSockets():
            if ws.readyState != OPEN:
                continue
            found = _conn_from(ws)
            if found is not None:
                live[found[0]] = found[1]
        shard = self._shard
        for sid in shard.subscriber_ids():
            conn = live.get(sid)
            if conn is None:
                shard.remove_subscriber(sid)
            elif conn.delta:
                shard.mark_dropped(sid)
        known = set(shard.subscriber_ids())
        for sid, conn in live.items():
            if shard.stopped:
                if sid in known:
                    shard.remove_subscriber(sid)
                conn.ws.close(CLOSE_FINISHED, "shard finished")
                continue
            if sid not in known:
                try:
                    shard.add_subscriber(sid, format=conn.format, delta=conn.delta)
                except ShardFull:
                    conn.ws.close(CLOSE_FULL, "shard is full")
                    continue
            self._subs[sid] = conn

    # ------------------------------------------------------------------
    # Public helpers

    @property
    def shard(self) -> Shard:
        """The hosted shard (read it; mutate it only through the hooks)."""
        return self._shard

    def statistics(self) -> ShardObjectStatistics:
        """This activation's counters and the shard's (see :class:`ShardObjectStatistics`)."""
        return ShardObjectStatistics(
            strategy=self._strategy,
            ticking=self._ticking,
            failed=self._failed,
            subscribers=len(self._subs),
            ticks=self._ticks,
            frames_sent=self._frames_sent,
            frames_skipped=self._frames_skipped,
            slow_disconnects=self._slow,
            acks_sent=self._acks,
            errors_sent=self._errors,
            inputs_accepted=self._inputs,
            records_written=self._records,
            shard=self._shard.statistics(),
        )

    # ------------------------------------------------------------------
    # Subscribing

    async def fetch(self, request: Any) -> Response:
        """Accept a subscriber handed over by ``handle_shard_upgrade``; 426 for anything else."""
        sub = PENDING_SUBSCRIPTION.get()
        if sub is None:
            return Response(
                "connect through the shard endpoint: ws://host:port/?shard=<id>&sid=<subscriber>", status=426
            )
        PENDING_SUBSCRIPTION.set(None)  # one subscription per hand-over
        return self._subscribe(sub.params, sub.auth)

    @staticmethod
    def _refusal(status: int, reason: str) -> Response:
        return Response(
            json.dumps({"reason": reason}), status=status, headers={"content-type": "application/json"}
        )

    def _subscribe(self, params: SubscribeParams, auth: ShardAuth) -> Response:
        shard = self._shard
        if self._failed or shard.failed:
            return self._refusal(500, "the shard has failed")
        sid = params.sid
        pair = WebSocketPair()
        if shard.stopped:
            # A late viewer of a finished shard gets its final state, then a normal close.
            self.ctx.acceptWebSocket(pair.server, [sid])
            self._send_current(pair.server, sid, params.format, params.delta)
            pair.server.close(CLOSE_FINISHED, "shard finished")
            return Response(None, status=101, web_socket=pair.client)
        try:
            pair.server.serializeAttachment(_attachment(sid, auth, params.format, params.delta, claims=True))
        except (TypeError, ValueError):
            # Claims too large or not codec-friendly: keep who, drop the rest.
            pair.server.serializeAttachment(_attachment(sid, auth, params.format, params.delta, claims=False))
        old = self._subs.get(sid)
        if old is not None:
            shard.remove_subscriber(sid)
        try:
            shard.add_subscriber_authorized(sid, auth, format=params.format, delta=params.delta)
        except ShardFailed:
            self._fail()
            return self._refusal(500, "the shard has failed")
        except (ShardFull, Unauthorized, SubscriberError, ShardStopped) as exc:
            if old is not None:
                shard.add_subscriber(sid, format=old.format, delta=old.delta)
            return self._refusal(503 if isinstance(exc, ShardFull) else 403, str(exc))
        if old is not None:
            del self._subs[sid]
            old.ws.close(CLOSE_REPLACED, "replaced by a new connection")
        self.ctx.acceptWebSocket(pair.server, [sid])
        self._subs[sid] = _Conn(pair.server, auth, params.format, params.delta)
        if self._strategy == "event":
            # Nothing may tick for a while: show the newcomer the current state now.
            self._send_current(pair.server, sid, params.format, params.delta)
        self._ensure_ticking()
        return Response(None, status=101, web_socket=pair.client)

    def _send_current(self, ws: WebSocket, sid: str, fmt: SnapshotFormat | None, delta: bool) -> None:
        """Send the state as of the last tick, without ticking (the shard's next frame is full anyway)."""
        shard = self._shard
        try:
            snap = shard.sim.snapshot_for(sid)
            frame = encode_frame(
                shard.tick, {"full": snap} if delta else snap, fmt or shard.config.snapshot_format
            )
        except Exception:
            log.exception("shard %r: cannot build the current frame for %r", shard.shard_id, sid)
            return
        ws.send(frame)
        self._frames_sent += 1

    # ------------------------------------------------------------------
    # Socket events

    def _conn_for(self, ws: WebSocket) -> tuple[str, _Conn] | None:
        found = _conn_from(ws)
        if found is None:
            return None
        conn = self._subs.get(found[0])
        if conn is None or conn.ws is not ws:
            return None
        return found[0], conn

    def _send_error(self, ws: WebSocket, code: str, message: str, client_seq: int | None = None) -> None:
        if ws.readyState == OPEN:
            ws.send(error_message(code, message, client_seq))
            self._errors += 1

    async def webSocketMessage(self, ws: WebSocket, message: str | bytes) -> None:
        """An input from a subscriber: queue it (after ``authorize_input``) or answer with an error."""
        found = self._conn_for(ws)
        if found is None:
            self._send_error(ws, "not_subscribed", "this connection has no subscriber attached")
            return
        sid, conn = found
        if message_too_large(message, self._max_message):
            self._send_error(ws, "too_large", f"message is over the limit of {self._max_message} bytes")
            return
        try:
            inbound = parse_inbound(message, max_bytes=self._max_message)
        except ProtocolError as exc:
            self._send_error(ws, "malformed", str(exc))
            return
        seq = inbound.client_seq
        try:
            self._shard.push_input_authorized(sid, conn.auth, inbound.input, client_seq=seq)
        except ShardFailed:
            self._send_error(ws, "failed", "the shard has failed", seq)
            self._fail()
            return
        except ShardsError as exc:
            code = next((c for cls, c in _INPUT_ERROR_CODES if isinstance(exc, cls)), None)
            if code is None:
                raise
            self._send_error(ws, code, str(exc), seq)
            return
        self._inputs += 1
        self._ensure_ticking()

    async def webSocketClose(self, ws: WebSocket, code: int, reason: str, wasClean: bool) -> None:
        """The subscriber left."""
        self._detach(ws)

    async def webSocketError(self, ws: WebSocket, error: Any) -> None:
        """The subscriber's connection failed: it left."""
        self._detach(ws)

    def _detach(self, ws: WebSocket) -> None:
        found = self._conn_for(ws)
        if found is None:
            return  # a replaced or refused connection
        sid = found[0]
        del self._subs[sid]
        self._backpressure.forget(sid)
        if self._shard.failed:
            return
        self._shard.remove_subscriber(sid)
        if not self._ticking and self._shard.quiet:
            # No tick will notice (event-driven, or stopped): persist the quiet state now.
            self._persist_now()

    # ------------------------------------------------------------------
    # Ticking

    def _should_tick(self) -> bool:
        shard = self._shard
        if self._failed or shard.failed or shard.stopped or shard.quiet:
            return False
        # Event-driven shards tick for inputs only; subscribers alone give them nothing to do.
        return self._strategy != "event" or shard.statistics().inputs_queued > 0

    def _ensure_ticking(self) -> None:
        """Start ticking if the shard has something to do and nothing is scheduled."""
        if self._ticking or not self._should_tick():
            return
        self._ticking = True
        sched = self._runtime.scheduler
        if self._strategy == "event":
            # Inputs arriving in the same scheduling step share this tick.
            self._timer = sched.call_at(self._runtime.clock.now(), self._on_timer)
            return
        self._begin_clock()
        storage = self.ctx.storage
        now_ms = self._runtime.clock.now_ms()
        if self._strategy == "timer":
            self._act.pin()  # as production's pending timers do
            self._pinned = True
            # The first tick runs at once: a newcomer or a woken shard shows
            # its state now, not a period later.
            self._next_due = self._runtime.clock.now()
            self._timer = sched.call_at(self._next_due, self._on_timer)
            keepalive = int(now_ms + self.keepalive_seconds * 1000)
            pending = _settled(storage.getAlarm())
            if pending is None or pending > keepalive:
                storage.setAlarm(keepalive)
            return
        pending = _settled(storage.getAlarm())
        if pending is not None:
            self._next_due = float(pending)  # woken by this alarm, or it is armed already
        else:
            self._next_due = now_ms  # the first tick at once, as with the timer
            storage.setAlarm(int(self._next_due))

    def _begin_clock(self) -> None:
        """Ticking (re)starts: the first tick cuts the quiet spell out of shard time.

        Whenever that first tick runs (at once when an alarm woke us, a period
        later with a timer), its shard time is the last tick's plus one period
        (see the module docstring).
        """
        if self._last_now is not None:
            self._resync = True

    def _stop_ticking(self) -> None:
        if not self._ticking:
            return
        self._ticking = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pinned:
            self._pinned = False
            act = self._act
            if not act.dead:
                self.ctx.storage.deleteAlarm()  # the keep-alive must not wake us for nothing
            act.unpin()

    def _on_timer(self) -> None:
        """Scheduler callback (timer strategy and event-driven ticks): the hot path.

        It takes no arguments: a handle's arguments are a tuple of their own,
        one more object to fetch from memory on every tick of every shard.
        """
        handle = self._timer  # the one that fired (at most one tick is scheduled)
        self._timer = None
        act = self._act
        if act.dead or not self._ticking:
            return
        sched = self._scheduler
        now = sched.now  # the time the scheduler runs its due callbacks at
        if act.gate_closers:
            # Someone holds the input gate (blockConcurrencyWhile, a transaction): try again shortly.
            self._rearm(sched, handle, now + 0.001)
            return
        if self._strategy == "event":
            self._ticking = False
            self._run_tick(now, now)
            return
        due = self._next_due
        self._run_tick(due, now)
        if self._ticking and self._timer is None:
            # Keep the cadence; after a stall longer than a period, skip the missed ticks.
            next_due = due + self._period
            if next_due < now:
                next_due = now
            self._next_due = next_due
            self._rearm(sched, handle, next_due)

    def _rearm(self, sched: Scheduler, handle: TimerHandle | None, deadline: float) -> None:
        # Re-arming the handle that fired allocates nothing (see runtime/_scheduler.py).
        if handle is not None and handle.fired:
            sched.call_again(handle, deadline)
            self._timer = handle
        else:
            self._timer = sched.call_at(deadline, self._on_timer)

    async def alarm(self, alarm_info: Any = None) -> None:
        """Alarm strategy: one tick per alarm. Timer strategy: the keep-alive."""
        if self._strategy == "event":
            return
        storage = self.ctx.storage
        now_ms = self._runtime.clock.now_ms()
        if self._strategy == "timer":
            was_ticking = self._ticking
            self._ensure_ticking()  # after an eviction this resumes the ticks (and arms the keep-alive)
            if was_ticking and self._ticking:
                storage.setAlarm(int(now_ms + self.keepalive_seconds * 1000))
            return
        if not self._ticking:
            if not self._should_tick():
                return  # quiet: do not re-arm, so the object can hibernate
            self._begin_clock()
            self._ticking = True
            self._next_due = now_ms
        due = self._next_due
        self._run_tick(due)
        if self._ticking:
            self._next_due = max(due + self._period * 1000, now_ms)
            storage.setAlarm(int(self._next_due))

    def _run_tick(self, due: float, at: float | None = None) -> None:
        """Run one tick now; ``due`` is when it was scheduled (trio time, or epoch ms for alarms).

        ``at`` is the trio time it runs at, when the caller knows it (the
        scheduler's), else the clock is read. A hook for measurements:
        benchmarks override it to record lateness.
        """
        shard = self._shard
        wall = self._wall() if at is None else self._runtime.clock.epoch_seconds_at(at)
        if self._resync:
            self._resync = False
            last = self._last_now
            if last is not None:
                # Never add time: only cut out the spell since the last tick.
                self._offset = max(self._offset, wall - last - self._period)
        now = wall - self._offset
        try:
            outcome = shard.advance(now)
        except ShardFailed:
            self._fail()
            return
        except ShardStopped:
            self._stop_ticking()
            return
        except SnapshotError:
            # The tick happened but its frames or record could not be built.
            log.exception("shard %r: tick %d could not be encoded", shard.shard_id, shard.tick)
            self._last_now = now
            if shard.finished:
                self._persist_now()
                self._finish()
            return
        self._last_now = now
        self._ticks += 1
        if isinstance(outcome, bytes):
            # A plain tick: the same frame for every subscriber, and nothing else to do.
            self._fan_out(None, outcome)
            return
        record = outcome.persist
        if record is not None:
            self._store(record)
        frames = outcome.frames
        if frames:
            self._fan_out(frames, None)
        acks = outcome.acks
        if acks:
            self._send_acks(acks, outcome.tick)
        if outcome.finished:
            self._finish()
        elif outcome.quiet:
            self._stop_ticking()

    def _fan_out(self, frames: dict[str, bytes] | None, shared: bytes | None) -> None:
        """Send a tick's frames: ``frames[sid]`` to each subscriber it names, or ``shared`` to all."""
        subs = self._subs
        act = self._act
        # The output gate, checked once: every socket here belongs to this object.
        held = act.outputs_held
        sent = 0
        now: float | None = None
        slow: list[str] | None = None
        frame = b"" if shared is None else shared
        # Over the keys, not items(): one allocation (the iterator) instead of three per tick.
        for sid in subs:
            conn = subs[sid]
            if frames is not None:
                own = frames.get(sid)
                if own is None:
                    continue
                frame = own
            ws = conn.ws
            if ws.readyState != OPEN:
                continue
            buffered = conn.buffered
            if buffered is not None:
                if buffered is _UNPROBED:
                    buffered = _probe(conn)
                if buffered is not None and buffered is not _UNPROBED:
                    if now is None:
                        now = self._runtime.clock.now()
                    decision = self._backpressure.decide(sid, buffered(), now)
                    if decision is Decision.SKIP:
                        self._shard.mark_dropped(sid)
                        self._frames_skipped += 1
                        continue
                    if decision is Decision.DISCONNECT:
                        # Dropped after the loop: dropping changes ``subs``.
                        if slow is None:
                            slow = []
                        slow.append(sid)
                        continue
            # ws.send() minus its argument checks: the frame is bytes and the socket is open.
            if held:
                act.hold(ws._transmit, ("message", frame))
            else:
                transport = conn.transport
                if transport is not None:
                    transport.send_nowait(frame)
                else:
                    ws._transmit_message(frame)
            sent += 1
        self._frames_sent += sent
        if slow is not None:
            for sid in slow:
                self._slow += 1
                self._drop(sid, CLOSE_TOO_SLOW, "subscriber too slow")

    def _send_acks(self, acks: dict[str, int], tick: int) -> None:
        subs = self._subs
        for sid, seq in acks.items():
            conn = subs.get(sid)
            if conn is not None and conn.ws.readyState == OPEN:
                conn.ws.send(ack_message(tick, seq))
                self._acks += 1

    def _drop(self, sid: str, code: int, reason: str) -> None:
        """Close a subscriber's connection from our side and detach it now."""
        conn = self._subs.pop(sid)
        self._backpressure.forget(sid)
        if not self._shard.failed:
            self._shard.remove_subscriber(sid)
        conn.ws.close(code, reason)

    def _store(self, record: bytes) -> None:
        storage = self.ctx.storage
        storage.put(STATE_KEY, record)
        if not self._id_stored:
            storage.put(ID_KEY, self._shard.shard_id)
            self._id_stored = True
        self._records += 1

    def _persist_now(self) -> None:
        try:
            self._store(self._shard.persist_now())
        except (SnapshotError, ShardFailed):
            log.exception("shard %r: cannot persist", self._shard.shard_id)

    def _finish(self) -> None:
        self._stop_ticking()
        for sid in list(self._subs):
            self._drop(sid, CLOSE_FINISHED, "shard finished")

    def _fail(self) -> None:
        """The simulation raised: stop, and close every subscriber with 1011 (the last record stays)."""
        log.error("shard %r failed; closing its subscribers", self._shard.shard_id)
        self._failed = True
        self._stop_ticking()
        for sid in list(self._subs):
            self._drop(sid, CLOSE_INTERNAL, "shard failed")
