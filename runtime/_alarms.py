"""Alarms: one per object, persisted in its database, fired by the runtime's scheduler.

Invariants (production's rules: Cloudflare's alarm documentation, and what
workerd did when probed):

* The alarm time lives in the object's own database, written in the same
  batch as the writes that set it; a crash that rolls the batch back rolls
  the alarm back too (we then re-read it: :meth:`AlarmManager.resync`).
* Firing is an event: a sleeping object is constructed first. At most one
  ``alarm()`` runs per object at a time; other events still flow.
* While ``alarm()`` runs, ``getAlarm()`` returns None unless the handler set
  a new alarm: the stored time is hidden, and deleted in the batch that
  ends a successful run (``ObjectDatabase.hide_alarm``), atomically with the
  handler's last writes.
* An uncaught exception is retried after 2, 4, 8, 16, 32, 64 s plus up to 25 %
  seeded jitter, at most 6 retries, with ``retryCount``/``isRetry`` passed to
  the handler; during the backoff ``getAlarm()`` returns the original time.
  A ``setAlarm``/``deleteAlarm`` during the failed run replaces the retry.
  ``ctx.abort()`` during an alarm retries it unless ``retryAlarm`` is False.
  Writes made by a failing handler are kept, as workerd does.
* Delivery is at least once: a crash mid-alarm leaves the stored time in
  place, so it fires again, even if writes of the handler were committed
  before the crash (an outbound call's output gate commits them).
* With a ``state_dir``, alarms survive a restart: each namespace keeps an
  index (``do/<binding>/alarms.json``) written on close; objects whose files
  changed after it are re-read, so the index may be missing or stale.
* An object's alarm state (:class:`ObjectAlarm`) hangs off its actor
  (``Actor.alarm``), made when the object first has an alarm; only this
  module reads or writes it.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ._core import Transition, handler_of
from ._ids import looks_like_id

if TYPE_CHECKING:
    from ._core import Activation, Actor, Core
    from ._ids import IdFactory
    from ._scheduler import TimerHandle

__all__ = ["AlarmInfo", "AlarmManager", "ObjectAlarm"]

log = logging.getLogger("shardsim.alarms")

#: Seconds before an alarm that failed for an internal reason is tried again.
INTERNAL_RETRY_DELAY = 1.0
_INDEX = "alarms.json"
#: Alarms the dispatcher runs before it lets other tasks run.
DISPATCH_BATCH = 64


@dataclass(frozen=True, slots=True)
class AlarmInfo:
    """What ``alarm(alarm_info)`` receives: production's ``retryCount`` and ``isRetry``."""

    retryCount: int
    isRetry: bool


_FIRST_RUN = AlarmInfo(retryCount=0, isRetry=False)


class ObjectAlarm:
    """One object's alarm bookkeeping (the alarm time itself lives in its database)."""

    __slots__ = ("rearmed_ms", "retry", "running", "timer", "touched")

    def __init__(self) -> None:
        #: The scheduler's handle of the next firing (or of a retry's backoff).
        self.timer: TimerHandle | None = None
        #: ``alarm()`` is running (or queued to run, or waiting for the input gate).
        self.running = False
        #: Retries so far of the alarm that is failing (0: none).
        self.retry = 0
        #: ``setAlarm``/``deleteAlarm`` was called during the run, and what it left.
        self.touched = False
        self.rearmed_ms: int | None = None


def _state(actor: Actor) -> ObjectAlarm:
    state: ObjectAlarm | None = actor.alarm
    if state is None:
        state = actor.alarm = ObjectAlarm()
    return state


def _takes_argument(handler: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


class _Turn:
    """One dispatcher task's hold on the queue of due alarms."""

    __slots__ = ("_manager", "owner")

    def __init__(self, manager: AlarmManager) -> None:
        self._manager = manager
        self.owner = True

    def hand_off(self) -> None:
        """Give the queue up (to a new dispatcher task, if anything is queued)."""
        self.owner = False
        mgr = self._manager
        if mgr._due and not mgr._core.closing:
            mgr._core.spawn(mgr._dispatch)
        else:
            mgr._dispatching = False


class AlarmManager:
    """Schedules and runs every object's alarm on the runtime's one scheduler.

    A due alarm's timer puts the object on a queue that one task, the
    dispatcher (:meth:`_dispatch`, started when the queue fills and ended
    when it is empty), works through, running each alarm event itself: no
    task and no cancel scope per alarm. An alarm that must wait (a closed
    input gate, a full queue) gets a task of its own; so, in effect, does a
    handler that really suspends (an outbound call, a sleep): it keeps the
    dispatcher's task and a new dispatcher takes the queue over. A task per
    alarm cost more than the alarm itself, and with thousands of alarms
    due at once their thousands of live tasks made every garbage collection
    walk them all.
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        self._takes_arg: dict[type, bool] = {}
        self._due: deque[Actor] = deque()
        self._dispatching = False
        self.fired = 0
        self.lateness_ms: list[float] = []  # kept short; benchmarks read it
        self.record_lateness = False

    # -- scheduling ------------------------------------------------------------

    def changed(self, actor: Actor, scheduled_ms: int | None) -> None:
        """Storage set or deleted the alarm in the open batch."""
        state = actor.alarm
        if state is None:
            if scheduled_ms is None:
                return  # no alarm, and none was ever scheduled
            state = _state(actor)
        if state.running:
            # Applied when the run ends (it replaces a retry).
            state.touched = True
            state.rearmed_ms = scheduled_ms
            return
        state.retry = 0
        self._schedule(actor, scheduled_ms)

    def _schedule(self, actor: Actor, scheduled_ms: int | float | None, *, at: float | None = None) -> None:
        state = _state(actor)
        timer = state.timer
        if at is None:
            if scheduled_ms is None:
                if timer is not None and timer.pending:
                    timer.cancel()
                return
            at = self._core.clock.trio_time_for(scheduled_ms)
        scheduler = self._core.scheduler
        if timer is not None:
            if timer.pending:
                if timer.deadline == at:
                    return
                timer.cancel()
            elif timer.fired:
                # The handle that fired last: re-arming it allocates nothing.
                scheduler.call_again(timer, at)
                return
        state.timer = scheduler.call_at(at, self._fire, actor)

    @staticmethod
    def _cancel_timer(state: ObjectAlarm) -> None:
        timer = state.timer
        if timer is not None and timer.pending:
            timer.cancel()

    def resync(self, actor: Actor) -> None:
        """Schedule from what the database holds (after a rollback, or at start)."""
        state = actor.alarm
        if state is not None and state.running:
            return
        ms = actor.database().get_alarm()
        if ms is not None or state is not None:
            self._schedule(actor, ms)

    def activation_ended(self, actor: Actor, transition: Transition) -> None:
        """After a reset: a rollback may have undone a setAlarm/deleteAlarm, so trust the database."""
        if transition is Transition.RESET:
            self.resync(actor)
            actor.close_idle_database()

    def close(self) -> None:
        """Cancel every pending alarm timer: nothing of a closed runtime fires (or leaks into the next test)."""
        for actor in self._core.actors.values():
            state = actor.alarm
            if state is not None:
                self._cancel_timer(state)
                state.timer = None

    def _fire(self, actor: Actor) -> None:
        """The timer's callback: queue the object for the dispatcher."""
        if actor.alarm.running or self._core.closing:
            return
        self._due.append(actor)
        if not self._dispatching:
            self._dispatching = True
            self._core.spawn(self._dispatch)

    async def _dispatch(self) -> None:
        """Run the queued alarms, a batch at a time, until none is left.

        One task at a time owns the queue. An alarm whose handler really
        suspends keeps the task that runs it, and a new task takes the queue
        over (see ``Actor.deliver_begun``).
        """
        due = self._due
        turn = _Turn(self)
        try:
            # The task's one scope stands for the scope of each event it runs.
            with trio.CancelScope(shield=True) as scope:
                while due:
                    for _ in range(min(len(due), DISPATCH_BATCH)):
                        actor = due.popleft()
                        try:
                            await self._run_next(actor, scope, turn.hand_off)
                        except Exception:  # a safety net: a bug here must not stop every alarm
                            self._internal_failure(actor)
                        if not turn.owner:
                            return
                        if scope.cancel_called:
                            # A reset of the object cancelled it: this task is done.
                            turn.hand_off()
                            return
                    if due:
                        await trio.lowlevel.checkpoint()  # a turn for every other task
        finally:
            if turn.owner:
                self._dispatching = False

    async def _run_next(self, actor: Actor, scope: trio.CancelScope, hand_off: Callable[[], None]) -> None:
        """Run a queued alarm in the dispatcher, or in a task of its own if it must wait."""
        if self._core.closing:
            return  # its stored time stands: it fires after a restart
        try:
            scheduled = self._prepare(actor, False)
        except Exception:
            self._internal_failure(actor)
            return
        if scheduled is None:
            return
        retry = actor.alarm.retry
        try:
            act = actor.begin_nowait()
        except Exception as exc:
            # The constructor failed (nothing began): a failed run, as deliver() reports it.
            self._done(actor, scheduled, retry, None, exc)
            return
        if act is None:
            # It must wait (input gate, queue): the alarm stays marked running meanwhile.
            self._core.spawn(self._run_safely, actor, scheduled, retry)
            return
        await actor.deliver_begun(
            act,
            self._invoker(actor, retry, None),
            scope=scope,
            on_suspend=hand_off,
            finish=partial(self._succeeded, actor),
            done=partial(self._done, actor, scheduled, retry),
            time_limit=self._core.config.alarm_time_limit,
        )

    def _done(
        self, actor: Actor, scheduled: int, retry: int, act: Activation | None, failure: BaseException | None
    ) -> None:
        """The event of a dispatched alarm ended (``Actor.deliver_begun``'s ``done``)."""
        try:
            self._ended(actor, scheduled, retry, act, failure)
        except Exception:
            self._internal_failure(actor)

    def _internal_failure(self, actor: Actor) -> None:
        # An internal failure (the database could not be opened, say): like
        # workerd, try again soon without counting it as a retry.
        log.exception("alarm of %r could not run; trying again in %s s", actor, INTERNAL_RETRY_DELAY)
        _state(actor).running = False
        if actor.db is not None:
            actor.db.reveal_alarm()
        self._schedule(actor, None, at=trio.current_time() + INTERNAL_RETRY_DELAY)

    async def _run_safely(self, actor: Actor, scheduled: int, retry: int) -> None:
        """A dispatched alarm that must wait: nothing it meets may take the runtime down."""
        try:
            await self._run_prepared(actor, scheduled, retry)
        except Exception:
            self._internal_failure(actor)

    # -- running -----------------------------------------------------------------

    def _store(self, actor: Actor, scheduled_ms: int | None) -> None:
        """Write the alarm time outside any handler and commit it now."""
        db = actor.database()
        db.set_alarm(scheduled_ms)
        act = actor.act
        if act is not None and not act.dead:
            act.wrote(confirmed=True)
        else:
            db.commit()

    async def run(self, actor: Actor, forced: bool) -> bool:
        """Run the object's pending alarm; returns whether a handler ran.

        ``forced`` runs it even if it is not due yet (the test helper).
        """
        scheduled = self._prepare(actor, forced)
        if scheduled is None:
            return False
        await self._run_prepared(actor, scheduled, actor.alarm.retry)
        return True

    def _prepare(self, actor: Actor, forced: bool) -> int | None:
        """Mark the alarm running if it is due (or ``forced``); returns its time, or None."""
        state = actor.alarm
        if state is not None and state.running:
            return None
        scheduled = actor.database().get_alarm()
        if scheduled is None:
            return None
        state = _state(actor)
        now_ms = self._core.clock.now_ms()
        if not forced and scheduled > now_ms + 0.5:
            self._schedule(actor, scheduled)  # a stale timer: re-arm for the real time
            return None
        if self.record_lateness:
            self.lateness_ms.append(now_ms - scheduled)
        self._cancel_timer(state)  # a forced run, or a retry's backoff
        state.running = True
        state.touched = False
        return scheduled

    def _invoker(self, actor: Actor, retry: int, ran: list[Activation] | None) -> Callable[[Activation], Any]:
        """The event's handler call, run inside the object's turn; ``ran`` collects its activation."""
        info = _FIRST_RUN if retry == 0 else AlarmInfo(retryCount=retry, isRetry=True)

        def invoke(act: Activation) -> Any:
            if ran is not None:
                ran.append(act)
            # getAlarm() is None while the handler runs unless it re-arms.
            actor.database().hide_alarm()
            handler = handler_of(act.instance, "alarm")
            if handler is None:
                log.warning("%r has an alarm but no alarm() handler; the alarm is dropped", actor)
                return None
            cls = type(act.instance)
            takes = self._takes_arg.get(cls)
            if takes is None:
                takes = self._takes_arg[cls] = _takes_argument(handler)
            return handler(info) if takes else handler()

        return invoke

    @staticmethod
    def _succeeded(actor: Actor, result: object) -> None:
        """The handler returned (inside the event): delete the hidden time in its batch."""
        db, act = actor.db, actor.act
        if db is not None and act is not None and db.clear_hidden_alarm():
            act.wrote(confirmed=True)

    async def _run_prepared(self, actor: Actor, scheduled: int, retry: int) -> None:
        ran: list[Activation] = []
        failure: BaseException | None = None
        try:
            await actor.deliver(
                self._invoker(actor, retry, ran),
                visible_id=actor.id.for_object(),
                finish=partial(self._succeeded, actor),
                time_limit=self._core.config.alarm_time_limit,
            )
        except Exception as exc:
            failure = exc
        except BaseException:
            actor.alarm.running = False
            if actor.db is not None:
                actor.db.reveal_alarm()
            raise
        self._ended(actor, scheduled, retry, ran[0] if ran else None, failure)

    def _ended(
        self, actor: Actor, scheduled: int, retry: int, act: Activation | None, failure: BaseException | None
    ) -> None:
        """Bookkeeping after the event: the next alarm, a retry, or nothing."""
        state: ObjectAlarm = actor.alarm
        state.running = False
        self.fired += 1
        core = self._core
        if core.closing:
            # Cut by the shutdown (or ended during it): the databases are closed, and what
            # is stored stands. An unfinished run never deleted its time: it fires after a
            # restart (the index written on close lists it).
            return
        if failure is None:
            state.retry = 0
            if state.touched:
                # The run's writes passed the output gate: what the handler
                # set is durable, no need to read it back. (Were it undone by
                # a rolled-back transaction, the timer would find no alarm
                # stored when it fires, and do nothing.)
                self._schedule(actor, state.rearmed_ms)
            return
        log.info("alarm of %r failed (attempt %d): %r", actor, retry + 1, failure)
        retry_allowed = not (act is not None and act.dead and not act.retry_alarm)
        # actor.database(): a reset during the run replaced the one it ran with.
        db = actor.database()
        db.reveal_alarm()
        if state.touched:
            # A setAlarm/deleteAlarm during the failed run replaces the retry.
            state.retry = 0
            self.resync(actor)
        elif retry_allowed and retry < core.config.alarm_max_retries:
            state.retry = retry + 1
            delay = core.config.alarm_retry_base * (2**retry)
            delay *= 1 + core.rng.uniform(0, core.config.alarm_retry_jitter)
            # During the backoff getAlarm() reports the original time (workerd),
            # which is still stored: the run never deleted it.
            if db.get_alarm() != scheduled:
                self._store(actor, scheduled)
            self._schedule(actor, None, at=trio.current_time() + delay)
        else:
            state.retry = 0
            if db.get_alarm() is not None:
                self._store(actor, None)

    # -- persistence across restarts ---------------------------------------------

    def load(self, binding: str, folder: Path, ids: IdFactory) -> int:
        """Schedule the stored alarms of ``binding``'s objects (``ids``: its namespace's); returns how many."""
        index_path = folder / _INDEX
        known: dict[str, int] = {}
        index_mtime = -1.0
        try:
            known = {k: int(v) for k, v in json.loads(index_path.read_text()).items()}
            index_mtime = index_path.stat().st_mtime
        except (FileNotFoundError, ValueError, TypeError, AttributeError):
            known, index_mtime = {}, -1.0
        stale: list[str] = []
        for entry in os.scandir(folder):
            stem, _, ext = entry.name.partition(".")
            if not looks_like_id(stem) or ext not in ("sqlite", "sqlite-wal"):
                continue
            if entry.stat().st_mtime >= index_mtime:
                stale.append(stem)
        core = self._core
        for hex_id in sorted(set(stale)):
            known.pop(hex_id, None)
            actor = core.actor_for(binding, ids.idFromString(hex_id))
            ms = actor.database().get_alarm()
            actor.close_idle_database()
            if ms is not None:
                known[hex_id] = ms
        for hex_id in sorted(known):
            actor = core.actor_for(binding, ids.idFromString(hex_id))
            self._schedule(actor, known[hex_id])
        return len(known)

    def save(self, binding: str, folder: Path) -> None:
        """Write the namespace's alarm index (on close)."""
        alarms: dict[str, int] = {}
        queued = set(self._due)  # fired, not run yet: their stored time stands
        for (b, hex_id), actor in self._core.actors.items():
            state: ObjectAlarm | None = actor.alarm
            if b != binding or state is None:
                continue
            timer = state.timer
            if (timer is not None and timer.pending) or state.retry or state.running or actor in queued:
                ms = actor.database().get_alarm()
                actor.close_idle_database()
                if ms is not None:
                    alarms[hex_id] = ms
        tmp = folder / (_INDEX + ".tmp")
        tmp.write_text(json.dumps(alarms, sort_keys=True))
        os.replace(tmp, folder / _INDEX)
