"""One Durable Object: its lifecycle, its gates, and the delivery of events.

An :class:`Actor` exists for every object that has received an event. While
the object is live it has an :class:`Activation`: the instance, its ``ctx``,
its storage, and everything that dies with it (in-flight events, background
tasks, held outputs). Hibernation, eviction and reset end the activation; the
next event starts a new one, which re-runs the constructor.

Invariants:

* Events of one object never run in parallel (trio is single-threaded) and
  interleave only at real suspensions. Storage calls never suspend, so while
  a handler "awaits its own storage" no other event can start (input gate).
* Calls through one stub start in the order they were issued (tickets).
* ``blockConcurrencyWhile`` and ``storage.transaction`` close the input gate:
  no new event starts until it reopens.
* Output gate: every output (RPC result, fetch response, an outbound call)
  waits until the writes made before it are committed, one SQLite
  transaction per batch. The output waiting commits the batch itself: after
  one scheduling step when other events may be writing too, so many events
  share one commit (group commit), at once when its task writes alone
  (``Activation.commit_through``). Writes no output waits for are committed
  by the runtime's flusher. If a commit fails, the waiting outputs become
  errors and the object is reset.
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
import dis
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Generator
from types import CodeType, CoroutineType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import trio

from shards._errors import DurableObjectError, ObjectResetError

from ._lifecycle import Lifecycle, ObjectState, Transition
from ._object import DurableObjectAbort, DurableObjectState, Pending
from .storage import DurableObjectStorage, ObjectDatabase, StorageResult

if TYPE_CHECKING:
    from ._ids import DurableObjectId
    from ._runtime import Runtime
    from ._scheduler import TimerHandle

__all__ = ["Activation", "Actor", "current_activation"]

log = logging.getLogger("shardsim.runtime")
T = TypeVar("T")

# Production's texts (reference/durable-objects.md 1.31, 1.53, 1.58).
BCW_TIMEOUT_MESSAGE = (
    "A call to blockConcurrencyWhile() in a Durable Object waited for too long. "
    "The call was canceled and the Durable Object was reset."
)
OVERLOADED_MESSAGE = "Durable Object is overloaded. Too many requests queued."
CONNECTION_LOST_MESSAGE = "Network connection lost."
SHUTTING_DOWN_MESSAGE = "The Durable Objects runtime is shutting down."
#: A lone writer commits at once, but takes a scheduling step once in this
#: many commits (see Activation.commit_through).
SOLO_COMMITS = 16
STORAGE_RESET_MESSAGE = (
    "Internal error in Durable Object storage caused object to be reset; reference = {ref}"
)

_current: contextvars.ContextVar[Activation | None] = contextvars.ContextVar(
    "shardsim_activation", default=None
)
# The blockConcurrencyWhile callback currently running in this task, if any:
# its own outbound calls must not wait for the gate it holds.
_in_bcw: contextvars.ContextVar[Activation | None] = contextvars.ContextVar("shardsim_bcw", default=None)


def current_activation() -> Activation | None:
    """The activation whose code is running in this task, if any."""
    return _current.get()


def reset_error(message: str, *, retryable: bool = False) -> ObjectResetError:
    err = ObjectResetError(message)
    err.durableObjectReset = True
    err.retryable = retryable
    return err


# What awaiting a handler's return value involves (see _await_kind).
_PLAIN = 0  # not awaitable: the value itself
_INSTANT = 1  # awaitable, and never yields to trio
_MAY_SUSPEND = 2


def _await_kind(value: object) -> int:
    """Classify a handler's return value: plain, instantly awaited, or may suspend.

    A coroutine can only suspend at an ``await`` (or ``async with``/``async
    for``), which compiles to a yield instruction; a coroutine whose code
    has none runs to its end in one step, so nothing can cancel it half
    way. Storage results never suspend either. Any other awaitable may.
    """
    t = type(value)
    if t is CoroutineType:
        code = value.cr_code  # type: ignore[attr-defined]
        entry = _NO_YIELD.get(id(code))
        if entry is None or entry[0] is not code:
            if len(_NO_YIELD) >= _NO_YIELD_MAX:
                _NO_YIELD.clear()  # only code made at run time (exec, reloads) gets here often
            entry = _NO_YIELD[id(code)] = (
                code,
                not any(ins.opcode in _YIELD_OPCODES for ins in dis.get_instructions(code)),
            )
        return _INSTANT if entry[1] else _MAY_SUSPEND
    if value is None:
        return _PLAIN
    if t is StorageResult:
        return _INSTANT
    return _MAY_SUSPEND if inspect.isawaitable(value) else _PLAIN


@types.coroutine
def _await_watched(awaitable: Any, on_suspend: Callable[[], None]) -> Generator[Any, Any, Any]:
    """Await ``awaitable`` here, calling ``on_suspend()`` before it first yields to trio.

    Awaits that finish at once (storage results) never reach trio, so a
    coroutine made only of those runs to its end without ``on_suspend``.
    What trio sends or throws in is passed on unchanged.
    """
    steps = awaitable if type(awaitable) is CoroutineType else awaitable.__await__()
    try:
        trap = steps.send(None)
    except StopIteration as stop:
        return stop.value
    on_suspend()
    while True:
        try:
            sent = yield trap
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:  # thrown in by trio: pass it on, as await does
            throw = getattr(steps, "throw", None)
            if throw is None:
                raise
            try:
                trap = throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                trap = steps.send(sent)
            except StopIteration as stop:
                return stop.value


def _settle(awaitable: Any) -> Any:
    """Run an awaitable that cannot suspend (``_INSTANT``) to its end, outside any await.

    Returns its value; what it raises propagates.
    """
    steps = awaitable if type(awaitable) is CoroutineType else awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as stop:
        return stop.value
    # _await_kind found no yield in its code: this cannot happen.
    steps.close()
    raise RuntimeError(f"{awaitable!r} suspended, though it has no await; please file a bug")


#: Yield instructions, by opcode (YIELD_FROM is gone from 3.12 on).
_YIELD_OPCODES: Final = frozenset(
    dis.opmap[name] for name in ("YIELD_VALUE", "YIELD_FROM") if name in dis.opmap
)
#: id(code) -> (code, has no yield). The code object is kept so its id is never reused.
_NO_YIELD: dict[int, tuple[CodeType, bool]] = {}
_NO_YIELD_MAX: Final = 4096


class Activation:
    """One life of an object's instance. Implements runtime.storage's ``StorageHost``."""

    __slots__ = (
        "actor",
        "background",
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
        "retry_alarm",
        "scopes",
        "standard_socket_list",
        "storage",
        "write_seq",
    )

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.instance: Any = None
        self.ctx: DurableObjectState | None = None
        self.storage: DurableObjectStorage | None = None
        self.scopes: set[trio.CancelScope] = set()
        self.in_flight = 0
        self.background = 0
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
        self.retry_alarm = True
        # Websocket frames sent while writes were unconfirmed: (gate seq, socket, frame).
        self.held: list[tuple[int, Any, tuple[str, Any]]] = []
        self.standard_socket_list: list[Any] = []
        # Production evicts a pinned idle object after 70-140 s: one seeded
        # draw per activation.
        lo, hi = actor.runtime.config.evict_after
        self.evict_delay = actor.runtime.rng.uniform(lo, hi)

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
            self.actor.runtime._flusher.mark_dirty(self.actor)

    async def wait_durable(self) -> None:
        await self.wait_committed(self.write_seq)

    def close_input_gate(self) -> None:
        self.gate_closers += 1

    def open_input_gate(self) -> None:
        self.gate_closers -= 1
        if self.gate_closers == 0:
            db = self.actor.db
            if db is not None and db.dirty:
                # A transaction() kept the flusher off this batch; commit it now.
                self.actor.runtime._flusher.mark_dirty(self.actor)
            self.actor.wake_gate()

    def check_alive(self) -> None:
        if self.dead:
            raise self.error

    def alarm_changed(self, scheduled_ms: int | None) -> None:
        self.actor.runtime._alarm_changed(self.actor, scheduled_ms)

    # -- the output gate ---------------------------------------------------

    async def wait_committed(self, seq: int) -> None:
        """Wait until writes up to ``seq`` are durable (the output gate)."""
        while self.committed_seq < seq:
            if self.dead:
                raise self.error
            await self.output_lot.park()
        if self.dead and self.committed_seq < seq:
            raise self.error

    async def output_gate(self) -> None:
        if self.committed_seq < self.gate_seq:
            await self.commit_through(self.gate_seq)

    async def commit_through(self, seq: int) -> None:
        """The output gate: return once writes up to ``seq`` are durable.

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
        alone and commits at once. Any other task, or a step that found
        company, takes the step again. A lone writer still steps every
        ``SOLO_COMMITS`` commits, so a loop of calls cannot keep other tasks
        from running for long.
        """
        if self.committed_seq >= seq or self.commit_alone(seq):
            return
        self.gate_waiters += 1
        try:
            await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self.gate_waiters -= 1
        rt = self.actor.runtime
        rt._unyielded_commits = 0
        if self.committed_seq >= seq:
            return
        # Whether the step found company decides how the next write commits.
        self.crowded = self.gate_waiters > 0
        self.committer = trio.lowlevel.current_task()
        self._commit_batch()
        if self.committed_seq < seq:
            await self.wait_committed(seq)

    def commit_alone(self, seq: int) -> bool:
        """The first half of :meth:`commit_through`: commit at once if this task writes alone.

        Returns whether writes up to ``seq`` are durable; if not, await
        :meth:`commit_through`. Never suspends.
        """
        rt = self.actor.runtime
        if (
            self.committer is not trio.lowlevel.current_task()
            or self.crowded
            or rt._unyielded_commits >= SOLO_COMMITS
        ):
            return False
        rt._unyielded_commits += 1
        self._commit_batch()
        return self.committed_seq >= seq

    def _commit_batch(self) -> None:
        """Commit the open batch now (not inside another task's transaction())."""
        if self.dead:
            raise self.error
        actor = self.actor
        if actor.db is not None:
            try:
                actor.runtime._commit(actor, self)  # a no-op inside a transaction()
            except DurableObjectError as exc:
                actor.reset(exc, lose_writes=True)
                raise

    # -- concurrency controls (ctx) ------------------------------------------

    @property
    def pinned(self) -> bool:
        """Something other than an in-flight event keeps the instance in memory.

        Background tasks (production: pending timers), a held input gate,
        and sockets accepted with the standard ``accept()`` API.
        """
        if self.background > 0 or self.gate_closers > 0:
            # A blockConcurrencyWhile callback or a transaction still runs.
            return True
        return any(ws.readyState != 3 for ws in self.standard_socket_list)

    def hold_output(self, ws: Any, item: tuple[str, Any]) -> None:
        """Hold a websocket frame until the writes made before it are durable."""
        self.held.append((self.gate_seq, ws, item))

    def release_held(self) -> None:
        """Send the held frames whose writes are now committed, in order."""
        if not self.held:
            return
        committed = self.committed_seq
        ready = [entry for entry in self.held if entry[0] <= committed]
        self.held = [entry for entry in self.held if entry[0] > committed]
        for _seq, ws, item in ready:
            ws._transmit(item)

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self.actor.runtime._nursery.start_soon(fn, *args)

    def block_concurrency_while(self, callback: Callable[[], Awaitable[T]] | Awaitable[T]) -> Pending[T]:
        self.check_alive()
        pending: Pending[T] = Pending()
        self.close_input_gate()
        self._spawn(self._run_blocking, callback, pending)
        return pending

    async def _run_blocking(
        self, callback: Callable[[], Awaitable[T]] | Awaitable[T], pending: Pending[T]
    ) -> None:
        token = _current.set(self)
        bcw_token = _in_bcw.set(self)
        timeout = self.actor.runtime.config.block_concurrency_timeout
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
        self.check_alive()
        self.background += 1
        self._spawn(self._run_background, fn, args, limit)

    def wait_until(self, awaitable: Awaitable[Any]) -> None:
        async def settle() -> None:
            await awaitable

        self.start_background(settle, (), self.actor.runtime.config.wait_until_limit)

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
            self.background -= 1
            if not self.dead and self.in_flight == 0 and self.background == 0:
                self.actor.schedule_idle()

    def abort(self, reason: str | None, *, retry_alarm: bool) -> None:
        self.retry_alarm = retry_alarm
        message = reason if reason is not None else "Durable Object was aborted."
        self.actor.reset(reset_error(message), lose_writes=True)


def remote_error(exc: BaseException) -> BaseException:
    """Rebuild ``exc`` for a caller: same type name and message, production's flags.

    Production keeps the error's name and message but not its stack or own
    properties. Built-in exceptions (and ours) are rebuilt as the same type;
    others become :class:`~shards.RemoteError` carrying the original name.
    """
    from shards._errors import RemoteError

    if isinstance(exc, DurableObjectError) and getattr(exc, "remote", False):
        return exc  # already converted by a nested call
    message = str(exc)
    cls = type(exc)
    rebuilt: BaseException
    if cls.__module__ in ("builtins", "shards._errors"):
        try:
            rebuilt = cls(message)
        except Exception:
            rebuilt = RemoteError(cls.__name__, message)
    else:
        rebuilt = RemoteError(cls.__name__, message)
    for flag in ("retryable", "overloaded", "durableObjectReset"):
        setattr(rebuilt, flag, bool(getattr(exc, flag, False)))
    rebuilt.remote = True  # type: ignore[attr-defined]
    return rebuilt


class _Breakable(Protocol):
    """What a call comes through: a stub, which an error that reset the object breaks."""

    _broken: BaseException | None


class StubOrder:
    """Per-stub FIFO: calls through one stub start in the order they were issued.

    A call that gives up before its turn (its caller was cancelled) is
    skipped, so it never blocks the calls issued after it.
    """

    __slots__ = ("_finished", "_lot", "_next", "_serving")

    def __init__(self) -> None:
        self._next = 0
        self._serving = 0
        self._finished: set[int] = set()
        self._lot = trio.lowlevel.ParkingLot()

    def take(self) -> int:
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


class Actor:
    """Everything the runtime keeps about one object, live or asleep."""

    __slots__ = (
        "_gate_lot",
        "act",
        "activations",
        "alarm_rearmed_ms",
        "alarm_retry",
        "alarm_running",
        "alarm_timer",
        "alarm_touched",
        "binding",
        "db",
        "events",
        "id",
        "idle_timer",
        "last_active",
        "lifecycle",
        "queued",
        "runtime",
        "sockets",
    )

    def __init__(self, runtime: Runtime, binding: str, object_id: DurableObjectId) -> None:
        self.runtime = runtime
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
        self.alarm_timer: TimerHandle | None = None
        self.alarm_running = False
        self.alarm_retry = 0
        self.alarm_touched = False
        self.alarm_rearmed_ms: int | None = None  # what setAlarm/deleteAlarm left during a run
        self.sockets: Any = None  # runtime.sockets.ObjectSockets, made on first accept

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
            self.db = self.runtime._open_database(self)
        return self.db

    def close_idle_database(self) -> None:
        """Release the database of an object that is not live (nothing to commit)."""
        if self.act is None and self.db is not None and not self.db.dirty:
            self.db.close()
            self.db = None

    def activate(self, visible_id: DurableObjectId) -> Activation:
        """Construct the instance (runs the user's constructor)."""
        rt = self.runtime
        act = Activation(self)
        act.storage = rt._make_storage(self, act)
        act.ctx = DurableObjectState(act, visible_id, act.storage)
        cls = rt._classes[self.binding]
        self.act = act
        self.activations += 1
        self.lifecycle.apply(Transition.EVENT)
        token = _current.set(act)
        try:
            act.instance = cls(act.ctx, rt.env)
        except BaseException:
            # A constructor that raised leaves the object inactive; the next
            # event tries again.
            self.reset(reset_error("constructor failed"), lose_writes=True)
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
        breaks: _Breakable | None = None,
        time_limit: float | None = None,
    ) -> Any:
        """Deliver one event and return its result, once the output gate allows.

        ``invoke(act)`` runs the handler: it returns the result, or an
        awaitable of it. ``finish(result)`` (RPC: copy the result out) runs
        after it, still inside the event; what it raises is the handler's
        error. An error that reset the object is also stored as
        ``breaks._broken`` (the stub the call came through). A handler that
        may suspend and is still running ``time_limit`` seconds after it
        began is cancelled, and the event fails with ``trio.TooSlowError``.

        The handler runs in the caller's task (a task per event would cost
        more than the event), shielded from the caller's cancellation: a
        caller that gives up never cuts an object's handler in the middle,
        which production never does either; the caller sees its
        cancellation once the handler has finished. Resets (crash, abort,
        eviction) still cancel the handler through its own scope. A handler
        that cannot suspend (see :func:`_await_kind`) needs neither, and
        runs without a scope: trio's cancel scopes cost as much as a third
        of a small event.
        """
        try:
            caller = _current.get()
            if caller is not None and not caller.dead and caller.committed_seq < caller.gate_seq:
                # Output gate on outbound calls: a call that follows a write waits for it.
                await caller.commit_through(caller.gate_seq)
            # The common case inline: a live object, its input gate open, no
            # earlier call of this stub outstanding. Else wait in _enter.
            act = self.act
            if (
                act is not None
                and not act.gate_closers
                and not self.runtime._closing
                and self.queued < self.runtime.config.max_queued_events
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
                    kind = _await_kind(result)
                    if kind == _MAY_SUSPEND:
                        result = await self._run_shielded(act, result, time_limit)
                    elif kind == _INSTANT:
                        result = await result
                    if finish is not None and not act.dead:
                        result = finish(result)
                except DurableObjectAbort:
                    pass  # the activation is already reset; report its error below
                except Exception as exc:
                    failure = exc
                finally:
                    _current.reset(token)
                if not act.dead and act.committed_seq < act.gate_seq and not act.commit_alone(act.gate_seq):
                    # The reply (value or error) waits for the writes made before it.
                    await act.commit_through(act.gate_seq)
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
            if breaks is not None and getattr(exc, "durableObjectReset", False):
                # Production: a stub whose object was reset fails every later call.
                breaks._broken = exc
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
        :meth:`_enter` then does the waiting. A constructor that raises
        raises here, rebuilt as the caller sees it.
        """
        rt = self.runtime
        if rt._closing or self.queued >= rt.config.max_queued_events:
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
                kind = _await_kind(result)
                if kind == _INSTANT:
                    result = _settle(result)
                elif kind == _MAY_SUSPEND:

                    def suspended() -> None:
                        on_suspend()
                        if time_limit is not None:
                            scope.deadline = trio.current_time() + time_limit

                    result = await _await_watched(result, suspended)
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
            failure = self._commit_nowait(act, failure)
        finally:
            act.scopes.discard(scope)
            self._end_event(act)
            done(act, act.error if act.dead else failure)

    @staticmethod
    def _commit_nowait(act: Activation, failure: BaseException | None) -> BaseException | None:
        """Commit an ended handler's writes now; returns the event's failure so far."""
        if not act.dead and act.committed_seq < act.gate_seq:
            try:
                act._commit_batch()
            except Exception as exc:  # a failed commit resets the object: act.error says why
                return failure or exc
        return failure

    async def _enter(self, visible_id: DurableObjectId, order: StubOrder | None) -> Activation:
        """Wait for this call's turn on its stub and for the input gate; activate if needed."""
        ticket = order.take() if order is not None else None
        try:
            if self.runtime._closing:
                raise reset_error(SHUTTING_DOWN_MESSAGE, retryable=True)
            if order is not None and ticket is not None:
                await order.wait_turn(ticket)
            if self.queued >= self.runtime.config.max_queued_events:
                err = DurableObjectError(OVERLOADED_MESSAGE)
                err.overloaded = True
                raise err
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
        self.runtime._events += 1
        if self.lifecycle.state is not ObjectState.ACTIVE:
            self.lifecycle.apply(Transition.EVENT)
        # The idle timer stays armed: when it fires it re-checks last_active,
        # which is cheaper than re-arming it for every event.

    def _end_event(self, act: Activation) -> None:
        act.in_flight -= 1
        self.last_active = self.runtime._now()
        if act.in_flight or act.dead:
            return
        db = self.db
        if db is not None and db.dirty:
            # allowUnconfirmed writes, or writes of background work made
            # while events were in flight: nothing else will commit them.
            self.runtime._flusher.mark_dirty(self)
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
        cfg = self.runtime.config
        delay = act.evict_delay if act.pinned else cfg.hibernate_after
        deadline = max(trio.current_time(), self.last_active + delay)
        timer = self.idle_timer
        if timer is not None:
            if timer.deadline <= deadline:
                return
            timer.cancel()
        self.idle_timer = self.runtime.scheduler.call_at(deadline, self._idle_timeout, act)

    def _idle_timeout(self, act: Activation) -> None:
        self.idle_timer = None
        if act is not self.act or act.in_flight:
            return  # the event in flight re-arms the timer when it ends
        cfg = self.runtime.config
        delay = act.evict_delay if act.pinned else cfg.hibernate_after
        if trio.current_time() < self.last_active + delay:
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
            act.held = []  # frames held for unconfirmed writes are lost with them
        if transition is Transition.RESET:
            self.runtime._sockets.activation_reset(self, act)
        else:
            self.runtime._sockets.activation_ended_gracefully(act)
        db = self.db
        if db is not None:
            if lose_writes or not db.can_commit:
                db.rollback()
            else:
                try:
                    self.runtime._commit(self, act)
                except DurableObjectError:
                    db.rollback()
        # A graceful end committed the writes and released the frames held for
        # them (the sockets outlive the activation); what is still held is lost.
        act.held = []
        for scope in list(act.scopes):
            scope.cancel()
        act.output_lot.unpark_all()
        self.act = None
        self.lifecycle.apply(transition)
        if db is not None:
            db.close()
            self.db = None
        self.runtime._flusher.forget(self)
        self.wake_gate()
        self.runtime._activation_ended(self, transition)

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
