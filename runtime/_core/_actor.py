"""One Durable Object: its lifecycle, its gates, its commits, and the delivery of events.

An :class:`Actor` exists for every object that has received an event. While
the object is live it has an :class:`Activation`: the instance, its ``ctx``,
its storage, and everything that dies with it (in-flight events, background
tasks, held outputs). Hibernation, eviction and reset end the activation; the
next event starts a new one, which re-runs the constructor. :class:`Core`
holds what all actors share (the host, the flusher, the counters) and is
owned by the runtime that composes it; the core reaches that runtime only
through the :class:`ActorHost` protocol defined here.

Invariants:

* Events of one object never run in parallel (trio is single-threaded) and
  interleave only at real suspensions. Storage calls never suspend, so while
  a handler "awaits its own storage" no other event can start (input gate).
* Calls through one stub start in the order they were issued (StubOrder).
* ``blockConcurrencyWhile`` and ``storage.transaction`` close the input gate:
  no new event starts until it reopens.
* The activation owns its commits. :meth:`Activation.commit` is the one
  place a write batch becomes durable (one SQLite transaction) and the
  outputs waiting for it are released; everything else that commits (the
  output gate, the flusher, a graceful end) goes through it.
* Output gate: every output (RPC result, fetch response, a websocket frame,
  an outbound call) waits until the writes made before it are committed.
  :meth:`Activation.output_gate` is the gate for outputs that can wait; the
  waiter commits the batch itself, after one scheduling step when other
  events may be writing too, so many events share one commit (group
  commit), or at once when its task writes alone. :meth:`Activation.output`
  is the gate for outputs that cannot wait (``ws.send`` is synchronous):
  they are held and released by the commit. Writes no output waits for are
  committed by the :class:`Flusher`. If a commit fails, the waiting outputs
  become errors and the object is reset.
* A handler runs in its caller's task, shielded from the caller's
  cancellation; a handler that cannot suspend needs no shield and gets none.
  Events nobody waits for (alarms) run in a dispatcher's task, whose one
  shielded scope stands for each event's (``Actor.deliver_begun``).
* A hibernated or inactive object owns no task, no timer, no connection.
* ``reset`` (crash, abort, failed write, failed blockConcurrencyWhile)
  cancels every task of the activation and turns its held outputs into
  errors; a crash also discards uncommitted writes.
"""

from __future__ import annotations

import contextvars
import logging
import random
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

import trio

from runtime._clock import RuntimeClock
from runtime._config import RuntimeConfig
from runtime._scheduler import Scheduler, TimerHandle
from shards._errors import DurableObjectError, StorageError

from ._awaits import INSTANT, MAY_SUSPEND, await_kind, await_watched, settle
from ._errors import (
    ABORTED_MESSAGE,
    BCW_TIMEOUT_MESSAGE,
    CONNECTION_LOST_MESSAGE,
    CONSTRUCTOR_FAILED_MESSAGE,
    SHUTTING_DOWN_MESSAGE,
    STORAGE_RESET_MESSAGE,
    DurableObjectAbort,
    overloaded_error,
    remote_error,
    reset_error,
)
from ._lifecycle import Lifecycle, ObjectState, Transition
from ._order import StubOrder

if TYPE_CHECKING:
    from runtime._ids import DurableObjectId
    from runtime.storage import DurableObjectStorage, ObjectDatabase

__all__ = [
    "SOLO_COMMITS",
    "Activation",
    "Actor",
    "ActorHost",
    "Core",
    "Flusher",
    "Pending",
    "current_activation",
    "outbound_gate",
    "run_as",
]

log = logging.getLogger("shardsim.runtime")
T = TypeVar("T")

#: A lone writer commits at once, but takes a scheduling step once in this
#: many commits (see Activation.commit_through).
SOLO_COMMITS: Final = 16

_current: contextvars.ContextVar[Activation | None] = contextvars.ContextVar(
    "shardsim_activation", default=None
)
# The blockConcurrencyWhile callback currently running in this task, if any:
# its own outbound calls must not wait for the gate it holds.
_in_bcw: contextvars.ContextVar[Activation | None] = contextvars.ContextVar("shardsim_bcw", default=None)


def current_activation() -> Activation | None:
    """The activation whose code is running in this task, if any."""
    return _current.get()


def run_as(act: Activation, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` as the object's own code outside any event (a timer's callback).

    The activation is current meanwhile, so storage, sockets and outbound
    calls belong to it; writes it makes are committed by the flusher, and
    outputs they hold are released then. It counts as activity: the idle
    timeout (hibernation, eviction) counts from its end.
    """
    token = _current.set(act)
    try:
        return fn(*args)
    finally:
        _current.reset(token)
        actor = act.actor
        actor.last_active = actor.core.now()


def outbound_gate() -> Awaitable[None] | None:
    """What an outbound call (to another object, to D1) awaits before it leaves its object.

    Production's output gate holds new outbound requests too: inside an
    object, a call that follows a write waits until the write is durable,
    and fails with the object's error if the write was lost. None: nothing
    to wait for (no object is running, or none of its writes is unconfirmed).
    """
    act = _current.get()
    return None if act is None else act.output_gate()


class ActorHost(Protocol):
    """What the core needs from the runtime that composes it.

    Invariants the host keeps:

    * ``open_database`` returns a database nothing else holds open for the
      object; the core closes it when the object is no longer live.
    * ``make_storage`` and then ``make_context`` are called once per
      activation, before the constructor (``construct``) runs; ``construct``
      runs with the activation current.
    * ``activation_ended`` is called once per ended activation, after it is
      dead, its writes committed (graceful end) or dropped (reset), its
      tasks cancelled and its database closed; the object is already in its
      new lifecycle state.
    * ``alarm_changed`` is called from inside a storage call, after the new
      alarm time landed in the open batch.
    * None of these calls suspends.
    """

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` as a task of the runtime."""

    def open_database(self, actor: Actor) -> ObjectDatabase:
        """Open the object's database."""

    def make_storage(self, act: Activation) -> DurableObjectStorage:
        """The storage API (``ctx.storage``) of a new activation; ``act`` is its storage host."""

    def make_context(self, act: Activation, visible_id: DurableObjectId) -> Any:
        """The ``ctx`` of a new activation (made after its storage), whose ``ctx.id`` is ``visible_id``."""

    def construct(self, actor: Actor, ctx: Any) -> Any:
        """Run the constructor of the object's class with ``ctx`` and ``env``; returns the instance."""

    def alarm_changed(self, actor: Actor, scheduled_ms: int | None) -> None:
        """Storage set (or, with None, deleted) the object's alarm in the open batch."""

    def activation_ended(self, actor: Actor, act: Activation, transition: Transition) -> None:
        """``act`` ended by ``transition`` (hibernation, eviction or reset)."""


class Pending(Generic[T]):
    """The result of background work that may be awaited, or dropped safely.

    Awaiting creates the waiting coroutine only then, so a dropped ``Pending``
    never produces a "coroutine was never awaited" warning.
    """

    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def set_value(self, value: T) -> None:
        self._value = value
        self._event.set()

    def set_error(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    async def _wait(self) -> T:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def __await__(self) -> Generator[Any, None, T]:
        return self._wait().__await__()


class Flusher:
    """Commits dirty objects' write batches: one transaction per object per round.

    A round starts one scheduling step after the first write, so every event
    runnable at that moment adds its writes first (group commit).
    """

    def __init__(self) -> None:
        self._dirty: dict[Actor, None] = {}
        self._lot = trio.lowlevel.ParkingLot()

    def mark_dirty(self, actor: Actor) -> None:
        if actor not in self._dirty:
            self._dirty[actor] = None
            if len(self._dirty) == 1:
                self._lot.unpark_all()

    def forget(self, actor: Actor) -> None:
        if self._dirty:
            self._dirty.pop(actor, None)

    def flush_all(self) -> None:
        """Commit every dirty object now (a failed commit resets that object only)."""
        batch, self._dirty = self._dirty, {}
        for actor in batch:
            act = actor.act
            if act is not None and not act.dead:
                act.commit_or_reset()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self._dirty:
                await self._lot.park()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            self.flush_all()


class Core:
    """What every actor of one runtime shares: the host, the actors, the flusher, the counters."""

    def __init__(
        self,
        host: ActorHost,
        *,
        config: RuntimeConfig,
        clock: RuntimeClock,
        scheduler: Scheduler,
        rng: random.Random,
    ) -> None:
        self.host = host
        self.config = config
        self.clock = clock
        self.scheduler = scheduler
        self.rng = rng
        #: trio's clock, read directly: the end of every event reads it.
        self.now: Callable[[], float] = trio.lowlevel.current_clock().current_time
        self.actors: dict[tuple[str, str], Actor] = {}
        self.flusher = Flusher()
        #: Set when closing starts: from then on no event is delivered, so
        #: nothing reactivates an object (and re-locks its file) mid-shutdown.
        self.closing = False
        self.events = 0
        self.commits = 0
        self.committed_writes = 0
        #: Commits made at an output gate without a scheduling step since the
        #: last one that took it (Activation.commit_through).
        self.unyielded_commits = 0

    def actor_for(self, binding: str, object_id: DurableObjectId) -> Actor:
        """The actor of ``object_id`` in ``binding``, made on first use (it activates nothing)."""
        key = (binding, object_id.toString())
        actor = self.actors.get(key)
        if actor is None:
            actor = self.actors[key] = Actor(self, binding, object_id)
        return actor

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` as a task of the runtime."""
        self.host.spawn(fn, *args)

    def commit_everything(self) -> None:
        """Commit every live object's open batch now (so that their databases can close).

        Rare (thousands of objects writing at once, or shutting down) and
        O(objects); committing a batch early is always allowed, it only makes
        writes durable sooner.
        """
        self.flusher.flush_all()
        for actor in list(self.actors.values()):
            act, db = actor.act, actor.db
            if act is not None and not act.dead and db is not None and db.dirty and db.can_commit:
                act.commit_or_reset()

    def close(self) -> None:
        """Stop delivering events, commit what is pending and evict every live object (gracefully)."""
        self.closing = True
        self.flusher.flush_all()
        for actor in list(self.actors.values()):
            if actor.act is not None:
                actor.evict()


class Activation:
    """One life of an object's instance. Implements runtime.storage's ``StorageHost``."""

    __slots__ = (
        "actor",
        "committed_seq",
        "committer",
        "crowded",
        "ctx",
        "dead",
        "error",
        "evict_delay",
        "gate_closers",
        "gate_seq",
        "gate_waiters",
        "held",
        "in_flight",
        "instance",
        "output_lot",
        "pins",
        "retry_alarm",
        "scopes",
        "storage",
        "write_seq",
    )

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.instance: Any = None
        self.ctx: Any = None
        self.storage: DurableObjectStorage | None = None
        self.scopes: set[trio.CancelScope] = set()
        self.in_flight = 0
        #: Background tasks and other pins (pin/unpin): they keep the instance in memory.
        self.pins = 0
        self.gate_closers = 0
        self.write_seq = 0  # every write landed in the open batch
        self.gate_seq = 0  # the last write outputs must wait for (not allowUnconfirmed ones)
        self.committed_seq = 0
        # Group commit (commit_through): the task that made the last commit
        # after a scheduling step, whether that step found other events
        # waiting for the same commit, and how many are waiting now.
        self.committer: trio.lowlevel.Task | None = None
        self.crowded = False
        self.gate_waiters = 0
        self.output_lot = trio.lowlevel.ParkingLot()
        self.dead = False
        self.error: BaseException = reset_error(CONNECTION_LOST_MESSAGE, retryable=True)
        #: Whether an alarm interrupted by ctx.abort() is tried again (abort's retryAlarm option).
        self.retry_alarm = True
        # Outputs that could not wait, held for unconfirmed writes: (gate seq, send, item).
        self.held: list[tuple[int, Callable[[Any], None], Any]] = []
        # Production evicts a pinned idle object after 70-140 s: one seeded
        # draw per activation.
        core = actor.core
        lo, hi = core.config.evict_after
        self.evict_delay = core.rng.uniform(lo, hi)

    # -- StorageHost -------------------------------------------------------

    def wrote(self, *, confirmed: bool) -> None:
        self.write_seq += 1
        if confirmed:
            self.gate_seq = self.write_seq
        if self.in_flight == 0:
            # No event will pass an output gate soon (a background task or a
            # blockConcurrencyWhile callback wrote): the flusher commits it.
            # Events commit their own batch at their reply (see deliver), so
            # waking the flusher for them would only cost a task switch.
            self.actor.core.flusher.mark_dirty(self.actor)

    async def wait_durable(self) -> None:
        # Commit here: an event's writes are otherwise committed only at its reply, which
        # the caller (storage.sync()) is still waiting to make.
        await self.commit_through(self.write_seq)

    def close_input_gate(self) -> None:
        self.gate_closers += 1

    def open_input_gate(self) -> None:
        self.gate_closers -= 1
        if self.gate_closers == 0:
            actor = self.actor
            db = actor.db
            if db is not None and db.dirty:
                # A transaction() kept the flusher off this batch; commit it now.
                actor.core.flusher.mark_dirty(actor)
            actor.wake_gate()

    def check_alive(self) -> None:
        if self.dead:
            raise self.error

    def alarm_changed(self, scheduled_ms: int | None) -> None:
        actor = self.actor
        actor.core.host.alarm_changed(actor, scheduled_ms)

    # -- commit --------------------------------------------------------------

    def commit(self) -> None:
        """Commit the open batch now and release the outputs waiting for it.

        Inside a ``storage.transaction()`` this does nothing: that batch
        commits when the transaction's gate reopens.

        Raises:
            ObjectResetError: the object was reset already (its error), or
                the commit failed: the object is then reset, the batch lost.
        """
        if self.dead:
            raise self.error
        try:
            self._write_batch()
        except DurableObjectError as exc:
            self.actor.reset(exc, lose_writes=True)
            raise

    def commit_or_reset(self) -> bool:
        """:meth:`commit` for a committer nobody waits on; returns whether it succeeded.

        A failed commit resets the object, and its waiting outputs carry the
        error: there is nothing more to report.
        """
        try:
            self.commit()
        except DurableObjectError:
            return False
        return True

    def _write_batch(self) -> None:
        """The commit itself; a failure raises the reset error and resets nothing."""
        actor = self.actor
        db = actor.db
        if db is None or not db.dirty:
            self.committed_seq = self.write_seq
            self.output_lot.unpark_all()
            self.release_held()
            return
        if not db.can_commit:
            return  # inside storage.transaction(); committed when its gate opens
        core = actor.core
        core.flusher.forget(actor)
        seq = self.write_seq
        try:
            db.commit()
        except StorageError as exc:
            message = STORAGE_RESET_MESSAGE.format(ref=actor.id.toString()[:16]) + f" ({exc})"
            raise reset_error(message) from exc
        core.commits += 1
        core.committed_writes += seq - self.committed_seq
        self.committed_seq = seq
        if self.output_lot:
            self.output_lot.unpark_all()
        if self.held:
            self.release_held()

    # -- the output gate ---------------------------------------------------

    def output_gate(self) -> Awaitable[None] | None:
        """The output gate for an output that can wait (a reply, an outbound call).

        Returns None when the output may go now: no confirmed write is
        unconfirmed, or this task writes alone and committed at once (see
        :meth:`commit_through`). Otherwise returns what to await first. Not
        async itself: most outputs follow no write, and a coroutine costs
        more than the check.

        Raises:
            ObjectResetError: writes the output follows were lost (a reset).
        """
        seq = self.gate_seq
        if self.committed_seq >= seq or self.commit_alone(seq):
            return None
        return self.commit_through(seq)

    @property
    def outputs_held(self) -> bool:
        """Whether an output that cannot wait must be held now (:meth:`output`, :meth:`hold`)."""
        return self.gate_seq > self.committed_seq

    def output(self, send: Callable[[Any], None], item: Any) -> None:
        """The output gate for an output that cannot wait: ``send(item)`` now, or once the writes before it are durable.

        Held outputs go out in order when their commit lands and are dropped
        if the object resets first.
        """
        if self.gate_seq > self.committed_seq:
            self.held.append((self.gate_seq, send, item))
        else:
            send(item)

    def hold(self, send: Callable[[Any], None], item: Any) -> None:
        """Hold ``send(item)`` for the writes made so far (when :attr:`outputs_held` was found true)."""
        self.held.append((self.gate_seq, send, item))

    def release_held(self) -> None:
        """Send the held outputs whose writes are now committed, in order."""
        if not self.held:
            return
        committed = self.committed_seq
        ready = [entry for entry in self.held if entry[0] <= committed]
        self.held = [entry for entry in self.held if entry[0] > committed]
        for _seq, send, item in ready:
            send(item)

    async def wait_committed(self, seq: int) -> None:
        """Wait until writes up to ``seq`` are durable."""
        while self.committed_seq < seq:
            if self.dead:
                raise self.error
            await self.output_lot.park()
        if self.dead and self.committed_seq < seq:
            raise self.error

    async def commit_through(self, seq: int) -> None:
        """Return once writes up to ``seq`` are durable, committing them here.

        The waiter commits the open batch itself instead of waiting for the
        flusher's next round. Group commit: it first takes one scheduling
        step, so every event runnable now adds its writes to this batch
        before it commits. (Skipping the step when nothing looks runnable
        was tried: trio takes the whole current batch off its run queue
        before running it, so concurrent callers are invisible and each
        committed alone.)

        The step costs a round trip through trio's scheduler, a good part
        of a small event, and a lone writer gains nothing from it. As we
        cannot see other writers coming, we go by what the object saw last:
        if its last commit was made by this same task after a step that
        found no other event waiting (``crowded`` false), this task writes
        alone and commits at once (:meth:`commit_alone`). Any other task, or
        a step that found company, takes the step again. A lone writer still
        steps every ``SOLO_COMMITS`` commits, so a loop of calls cannot keep
        other tasks from running for long.
        """
        if self.committed_seq >= seq or self.commit_alone(seq):
            return
        self.gate_waiters += 1
        try:
            await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self.gate_waiters -= 1
        self.actor.core.unyielded_commits = 0
        if self.committed_seq >= seq:
            return
        # Whether the step found company decides how the next write commits.
        self.crowded = self.gate_waiters > 0
        self.committer = trio.lowlevel.current_task()
        self.commit()
        if self.committed_seq < seq:
            await self.wait_committed(seq)

    def commit_alone(self, seq: int) -> bool:
        """The first half of :meth:`commit_through`: commit at once if this task writes alone.

        Returns whether writes up to ``seq`` are durable; if not, await
        :meth:`commit_through`. Never suspends.
        """
        core = self.actor.core
        if (
            self.committer is not trio.lowlevel.current_task()
            or self.crowded
            or core.unyielded_commits >= SOLO_COMMITS
        ):
            return False
        core.unyielded_commits += 1
        self.commit()
        return self.committed_seq >= seq

    # -- pins ----------------------------------------------------------------

    @property
    def pinned(self) -> bool:
        """Something other than an in-flight event keeps the instance in memory.

        Background tasks (production: pending timers), other pins (a socket
        accepted with the standard ``accept()`` API, a ticking timer), and a
        held input gate.
        """
        return self.pins > 0 or self.gate_closers > 0

    def pin(self) -> None:
        """Keep the instance in memory (no hibernation) until the matching :meth:`unpin`."""
        self.pins += 1

    def unpin(self) -> None:
        """Undo one :meth:`pin`; an object left with nothing to do goes idle."""
        self.pins -= 1
        if not self.dead and self.in_flight == 0 and self.pins == 0:
            self.actor.schedule_idle()

    # -- concurrency controls (ctx) ------------------------------------------

    def block_concurrency_while(self, callback: Callable[[], Awaitable[T]] | Awaitable[T]) -> Pending[T]:
        self.check_alive()
        pending: Pending[T] = Pending()
        self.close_input_gate()
        self.actor.core.spawn(self._run_blocking, callback, pending)
        return pending

    async def _run_blocking(
        self, callback: Callable[[], Awaitable[T]] | Awaitable[T], pending: Pending[T]
    ) -> None:
        token = _current.set(self)
        bcw_token = _in_bcw.set(self)
        timeout = self.actor.core.config.block_concurrency_timeout
        try:
            with trio.CancelScope() as scope:
                self.scopes.add(scope)
                try:
                    with trio.move_on_after(timeout) as timer:
                        awaitable = callback() if callable(callback) else callback
                        value = await awaitable
                    if timer.cancelled_caught:
                        err = reset_error(BCW_TIMEOUT_MESSAGE)
                        pending.set_error(err)
                        self.actor.reset(err, lose_writes=True)
                        return
                except Exception as exc:
                    rebuilt = remote_error(exc)
                    rebuilt.durableObjectReset = True  # type: ignore[attr-defined]
                    pending.set_error(rebuilt)
                    self.actor.reset(rebuilt, lose_writes=True)
                    return
                finally:
                    self.scopes.discard(scope)
            if scope.cancelled_caught:
                pending.set_error(self.error)
                return
            pending.set_value(value)
        finally:
            _in_bcw.reset(bcw_token)
            _current.reset(token)
            if not self.dead:
                self.open_input_gate()

    def start_background(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], limit: float | None
    ) -> None:
        """Run ``fn(*args)`` as a task of this activation: it pins the object and dies with it."""
        self.check_alive()
        self.pins += 1
        self.actor.core.spawn(self._run_background, fn, args, limit)

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        async def settle_it() -> None:
            await awaitable

        self.start_background(settle_it, (), self.actor.core.config.wait_until_limit)

    async def _run_background(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], limit: float | None
    ) -> None:
        token = _current.set(self)
        try:
            with trio.CancelScope() as scope:
                self.scopes.add(scope)
                if limit is not None:
                    scope.deadline = trio.current_time() + limit
                try:
                    await fn(*args)
                except Exception:
                    # Production logs an unhandled rejection and carries on.
                    log.exception("background task of %s failed", self.actor)
                finally:
                    self.scopes.discard(scope)
        finally:
            _current.reset(token)
            self.unpin()

    def abort(self, reason: str | None, *, retry_alarm: bool) -> None:
        """Reset the object now (``ctx.abort``); the caller then raises :class:`DurableObjectAbort`."""
        self.retry_alarm = retry_alarm
        self.actor.reset(reset_error(reason if reason is not None else ABORTED_MESSAGE), lose_writes=True)


class Actor:
    """Everything the runtime keeps about one object, live or asleep."""

    __slots__ = (
        "_gate_lot",
        "act",
        "activations",
        "alarm",
        "binding",
        "core",
        "db",
        "events",
        "id",
        "idle_timer",
        "last_active",
        "lifecycle",
        "queued",
        "sockets",
    )

    def __init__(self, core: Core, binding: str, object_id: DurableObjectId) -> None:
        self.core = core
        self.binding = binding
        self.id = object_id
        self.lifecycle = Lifecycle()
        self.act: Activation | None = None
        self.db: ObjectDatabase | None = None
        self.idle_timer: TimerHandle | None = None
        self._gate_lot: trio.lowlevel.ParkingLot | None = None
        self.events = 0
        self.activations = 0
        self.queued = 0
        self.last_active = 0.0
        #: The alarm service's state for this object (runtime._alarms), made
        #: when the object first has an alarm; the core never reads it.
        self.alarm: Any = None
        #: The socket service's state for this object (runtime.sockets), made
        #: when the object first accepts a socket; the core never reads it.
        self.sockets: Any = None

    def __repr__(self) -> str:
        return f"<{self.binding} {self.id.toString()[:12]}… {self.lifecycle.state.value}>"

    @property
    def state(self) -> ObjectState:
        return self.lifecycle.state

    # -- input gate ----------------------------------------------------------

    def gate_closed(self) -> bool:
        act = self.act
        return act is not None and act.gate_closers > 0

    def wake_gate(self) -> None:
        if self._gate_lot is not None:
            self._gate_lot.unpark_all()

    async def wait_gate(self) -> None:
        while self.gate_closed():
            if self._gate_lot is None:
                self._gate_lot = trio.lowlevel.ParkingLot()
            await self._gate_lot.park()

    # -- activation ------------------------------------------------------------

    def database(self) -> ObjectDatabase:
        if self.db is None:
            self.db = self.core.host.open_database(self)
        return self.db

    def close_idle_database(self) -> None:
        """Release the database of an object that is not live (nothing to commit)."""
        if self.act is None and self.db is not None and not self.db.dirty:
            self.db.close()
            self.db = None

    def activate(self, visible_id: DurableObjectId) -> Activation:
        """Construct the instance (runs the user's constructor)."""
        host = self.core.host
        act = Activation(self)
        act.storage = host.make_storage(act)
        act.ctx = host.make_context(act, visible_id)
        self.act = act
        self.activations += 1
        self.lifecycle.apply(Transition.EVENT)
        token = _current.set(act)
        try:
            act.instance = host.construct(self, act.ctx)
        except BaseException:
            # A constructor that raised leaves the object inactive; the next
            # event tries again.
            self.reset(reset_error(CONSTRUCTOR_FAILED_MESSAGE), lose_writes=True)
            raise
        finally:
            _current.reset(token)
        log.debug("activated %r", self)
        return act

    async def deliver(
        self,
        invoke: Callable[[Activation], Any],
        *,
        visible_id: DurableObjectId,
        order: StubOrder | None = None,
        finish: Callable[[Any], Any] | None = None,
        time_limit: float | None = None,
    ) -> Any:
        """Deliver one event and return its result, once the output gate allows.

        ``invoke(act)`` runs the handler: it returns the result, or an
        awaitable of it. ``finish(result)`` (RPC: copy the result out) runs
        after it, still inside the event; what it raises is the handler's
        error. ``order`` is the stub the call came through: the call starts
        in its turn, and an error that reset the object breaks the stub
        (``order.broken``). A handler that may suspend and is still running
        ``time_limit`` seconds after it began is cancelled, and the event
        fails with ``trio.TooSlowError``.

        The handler runs in the caller's task (a task per event would cost
        more than the event), shielded from the caller's cancellation: a
        caller that gives up never cuts an object's handler in the middle,
        which production never does either; the caller sees its
        cancellation once the handler has finished. Resets (crash, abort,
        eviction) still cancel the handler through its own scope. A handler
        that cannot suspend (see ``await_kind``) needs neither, and runs
        without a scope: trio's cancel scopes cost as much as a third of a
        small event.
        """
        try:
            caller = _current.get()
            if caller is not None:
                # An outbound call from inside an object: its output gate first.
                gate = caller.output_gate()
                if gate is not None:
                    await gate
            # The common case inline: a live object, its input gate open, no
            # earlier call of this stub outstanding. Else wait in _enter.
            act = self.act
            core = self.core
            if (
                act is not None
                and not act.gate_closers
                and not core.closing
                and self.queued < core.config.max_queued_events
                and (order is None or order.take_if_first())
            ):
                self._begin_event(act)
            else:
                act = await self._enter(visible_id, order)
            result: Any = None
            failure: BaseException | None = None
            try:
                token = _current.set(act)
                try:
                    result = invoke(act)
                    kind = await_kind(result)
                    if kind == MAY_SUSPEND:
                        result = await self._run_shielded(act, result, time_limit)
                    elif kind == INSTANT:
                        result = await result
                    if finish is not None and not act.dead:
                        result = finish(result)
                except DurableObjectAbort:
                    pass  # the activation is already reset; report its error below
                except Exception as exc:
                    failure = exc
                finally:
                    _current.reset(token)
                if not act.dead:
                    # The reply (value or error) waits for the writes made before it.
                    gate = act.output_gate()
                    if gate is not None:
                        await gate
            finally:
                self._end_event(act)
            if act.dead:
                raise act.error
            if caller is not None and caller.gate_closers > 0 and _in_bcw.get() is not caller:
                # The reply is an event for the caller: it waits while someone
                # else holds the caller's input gate (blockConcurrencyWhile).
                await caller.actor.wait_gate()
            if failure is not None:
                raise remote_error(failure) from None
            return result
        except BaseException as exc:
            if order is not None and getattr(exc, "durableObjectReset", False):
                # Production: a stub whose object was reset fails every later call.
                order.broken = exc
            raise

    @staticmethod
    async def _run_shielded(
        act: Activation, awaitable: Awaitable[Any], time_limit: float | None = None
    ) -> Any:
        """Await a handler that may suspend, shielded from the caller's cancellation.

        A reset cancels the scope (cancelling a shielded scope still cancels
        its body); the caller then reports the activation's error. With a
        ``time_limit``, the same scope's deadline cuts a handler that runs
        longer, which then raises ``trio.TooSlowError``.
        """
        with trio.CancelScope(shield=True) as scope:
            if time_limit is not None:
                scope.deadline = trio.current_time() + time_limit
            act.scopes.add(scope)
            try:
                return await awaitable
            finally:
                act.scopes.discard(scope)
        if not act.dead:
            raise trio.TooSlowError  # only the deadline cancels a live activation's scope
        return None  # cancelled by a reset

    # -- events nobody waits for (alarms) --------------------------------------

    def begin_nowait(self, visible_id: DurableObjectId | None = None) -> Activation | None:
        """Begin an event now, activating the object if needed, unless it would have to wait.

        ``visible_id`` is ``ctx.id`` if the object activates (default: the
        id as the object sees it, ``for_object()``).

        Returns None, having begun nothing, when the event would wait:
        the input gate is closed (a constructor's blockConcurrencyWhile
        included), the object's queue is full, or the runtime is closing.
        :meth:`deliver` then does the waiting. A constructor that raises
        raises here, rebuilt as the caller sees it.
        """
        core = self.core
        if core.closing or self.queued >= core.config.max_queued_events:
            return None
        act = self.act
        if act is None:
            try:
                act = self.activate(visible_id if visible_id is not None else self.id.for_object())
            except Exception as exc:
                raise remote_error(exc) from None
        if act.gate_closers:
            return None
        self._begin_event(act)
        return act

    async def deliver_begun(
        self,
        act: Activation,
        invoke: Callable[[Activation], Any],
        *,
        scope: trio.CancelScope,
        on_suspend: Callable[[], None],
        done: Callable[[Activation, BaseException | None], None],
        finish: Callable[[Any], Any] | None = None,
        time_limit: float | None = None,
    ) -> None:
        """Run an event that has no reply, begun with :meth:`begin_nowait`, in this task.

        For a task that runs many such events one after the other (the
        alarm dispatcher). ``scope`` is the task's own shielded cancel scope,
        already entered: it stands for the event's scope (a reset cancels
        it), so an event costs no scope of its own. The handler
        (``invoke(act)``, then ``finish(result)``, as for :meth:`deliver`)
        runs here, awaits that never suspend (storage results) included. If
        it really suspends, ``on_suspend()`` is called first (the task hands
        its other work to another task: from then on it serves this event
        only, and its scope with it) and the scope's deadline becomes
        ``time_limit`` from then; a handler still running then fails with
        ``trio.TooSlowError``. The writes are committed at once when the
        handler ends: with no reply to hold back there is no group commit to
        wait for, and a commit is always allowed early. ``done(act,
        failure)`` is called once the event has ended; ``failure`` is the
        handler's exception, the error of a reset (crash, abort, failed
        commit), or None. ``done`` must not raise. Once ``scope`` is
        cancelled (a reset, the deadline), trio's Cancelled propagates from
        here to it.
        """
        failure: BaseException | None = None
        act.scopes.add(scope)
        try:
            token = _current.set(act)
            try:
                result = invoke(act)
                kind = await_kind(result)
                if kind == INSTANT:
                    result = settle(result)
                elif kind == MAY_SUSPEND:

                    def suspended() -> None:
                        on_suspend()
                        if time_limit is not None:
                            scope.deadline = trio.current_time() + time_limit

                    result = await await_watched(result, suspended)
                if finish is not None and not act.dead:
                    finish(result)
            except DurableObjectAbort:
                pass  # the activation is already reset; its error is the failure
            except trio.Cancelled:
                failure = trio.TooSlowError()  # unless a reset did it: see done below
                raise
            except Exception as exc:
                failure = exc
            finally:
                _current.reset(token)
            if not act.dead and act.committed_seq < act.gate_seq:
                try:
                    act.commit()
                except Exception as exc:  # a failed commit resets the object: act.error says why
                    failure = failure or exc
        finally:
            act.scopes.discard(scope)
            self._end_event(act)
            done(act, act.error if act.dead else failure)

    async def _enter(self, visible_id: DurableObjectId, order: StubOrder | None) -> Activation:
        """Wait for this call's turn on its stub and for the input gate; activate if needed."""
        ticket = order.take() if order is not None else None
        core = self.core
        try:
            if core.closing:
                raise reset_error(SHUTTING_DOWN_MESSAGE, retryable=True)
            if order is not None and ticket is not None:
                await order.wait_turn(ticket)
            if self.queued >= core.config.max_queued_events:
                raise overloaded_error()
            self.queued += 1
            try:
                while True:
                    await self.wait_gate()
                    act = self.act
                    if act is None:
                        try:
                            act = self.activate(visible_id)
                        except Exception as exc:
                            raise remote_error(exc) from None
                    if not self.gate_closed():
                        break  # a constructor's blockConcurrencyWhile must finish first
            finally:
                self.queued -= 1
            self._begin_event(act)
            return act
        finally:
            if order is not None and ticket is not None:
                order.done(ticket)

    def _begin_event(self, act: Activation) -> None:
        act.in_flight += 1
        self.events += 1
        self.core.events += 1
        if self.lifecycle.state is not ObjectState.ACTIVE:
            self.lifecycle.apply(Transition.EVENT)
        # The idle timer stays armed: when it fires it re-checks last_active,
        # which is cheaper than re-arming it for every event.

    def _end_event(self, act: Activation) -> None:
        act.in_flight -= 1
        core = self.core
        self.last_active = core.now()
        if act.in_flight or act.dead:
            return
        db = self.db
        if db is not None and db.dirty:
            # allowUnconfirmed writes, or writes of background work made
            # while events were in flight: nothing else will commit them.
            core.flusher.mark_dirty(self)
        if act is self.act:
            self.lifecycle.apply(Transition.IDLE)
            if self.idle_timer is None:
                self.schedule_idle()

    # -- idle, hibernation, eviction ------------------------------------------

    def schedule_idle(self) -> None:
        """Arm the idle timer: hibernate if nothing pins us, else evict later.

        The deadline counts from the end of the last event. An armed timer
        that fires no later than the new deadline is kept: it re-checks when
        it fires.
        """
        act = self.act
        if act is None or act.in_flight:
            return
        core = self.core
        delay = act.evict_delay if act.pinned else core.config.hibernate_after
        deadline = max(core.now(), self.last_active + delay)
        timer = self.idle_timer
        if timer is not None:
            if timer.deadline <= deadline:
                return
            timer.cancel()
        self.idle_timer = core.scheduler.call_at(deadline, self._idle_timeout, act)

    def _idle_timeout(self, act: Activation) -> None:
        self.idle_timer = None
        if act is not self.act or act.in_flight:
            return  # the event in flight re-arms the timer when it ends
        core = self.core
        delay = act.evict_delay if act.pinned else core.config.hibernate_after
        if core.now() < self.last_active + delay:
            self.schedule_idle()  # events came meanwhile: not idle long enough yet
        elif act.pinned:
            self.evict()
        else:
            self.hibernate()

    def _end_activation(self, error: BaseException, transition: Transition, *, lose_writes: bool) -> None:
        act = self.act
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if act is None:
            self.lifecycle.apply(transition)
            return
        act.dead = True
        act.error = error
        if lose_writes or transition is Transition.RESET:
            act.held = []  # outputs held for unconfirmed writes are lost with them
        db = self.db
        if db is not None:
            if lose_writes or not db.can_commit:
                db.rollback()
            else:
                try:
                    act._write_batch()
                except DurableObjectError:
                    db.rollback()
        # A graceful end committed the writes and released the outputs held
        # for them (the sockets outlive the activation); what is still held is lost.
        act.held = []
        for scope in list(act.scopes):
            scope.cancel()
        act.output_lot.unpark_all()
        self.act = None
        self.lifecycle.apply(transition)
        core = self.core
        if db is not None:
            db.close()
            self.db = None
        core.flusher.forget(self)
        self.wake_gate()
        core.host.activation_ended(self, act, transition)

    def hibernate(self) -> None:
        """Drop the instance; storage and hibernatable sockets survive."""
        log.debug("hibernating %r", self)
        self._end_activation(
            reset_error(CONNECTION_LOST_MESSAGE, retryable=True), Transition.HIBERNATE, lose_writes=False
        )

    def evict(self) -> None:
        """Remove the object from memory (graceful: committed and pending writes are kept)."""
        log.debug("evicting %r", self)
        self._end_activation(
            reset_error(CONNECTION_LOST_MESSAGE, retryable=True), Transition.EVICT, lose_writes=False
        )

    def reset(self, error: BaseException, *, lose_writes: bool) -> None:
        """Reset: cancel everything of the activation; held outputs fail with ``error``."""
        log.info("resetting %r: %s", self, error)
        self._end_activation(error, Transition.RESET, lose_writes=lose_writes)
