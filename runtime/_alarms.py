"""Alarms: one per object, persisted in its database, fired by the runtime's scheduler.

Production's rules (reference/durable-objects.md section 3 and the gotchas):

* The alarm time lives in the object's own database, written in the same
  batch as the writes that set it; a crash that rolls the batch back rolls
  the alarm back too (we then re-read it: :meth:`AlarmManager.resync`).
* Firing is an event: a sleeping object is constructed first. At most one
  ``alarm()`` runs per object at a time; other events still flow.
* While ``alarm()`` runs, ``getAlarm()`` returns None unless the handler set
  a new alarm: the stored time is cleared inside the handler's batch.
* An uncaught exception is retried after 2, 4, 8, 16, 32, 64 s plus up to 25 %
  seeded jitter, at most 6 retries, with ``retryCount``/``isRetry`` passed to
  the handler; during the backoff ``getAlarm()`` returns the original time.
  A ``setAlarm``/``deleteAlarm`` during the failed run replaces the retry.
  ``ctx.abort()`` during an alarm retries it unless ``retryAlarm`` is False.
  Writes made by a failing handler are kept, as workerd does.
* Delivery is at least once: a crash mid-alarm leaves the stored time in
  place, so it fires again.
* With a ``state_dir``, alarms survive a restart: each namespace keeps an
  index (``do/<binding>/alarms.json``) written on close; objects whose files
  changed after it are re-read, so the index may be missing or stale.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ._actor import Activation, Actor

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["AlarmInfo", "AlarmManager"]

log = logging.getLogger("shardsim.alarms")

_HEX_ID = re.compile(r"^[0-9a-f]{64}$")
#: Seconds before an alarm that failed for an internal reason is tried again.
INTERNAL_RETRY_DELAY = 1.0
_INDEX = "alarms.json"


@dataclass(frozen=True, slots=True)
class AlarmInfo:
    """What ``alarm(alarm_info)`` receives: production's ``retryCount`` and ``isRetry``."""

    retryCount: int
    isRetry: bool


def _takes_argument(handler: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


class AlarmManager:
    """Schedules and runs every object's alarm on the runtime's one scheduler."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._takes_arg: dict[type, bool] = {}
        self.fired = 0
        self.lateness_ms: list[float] = []  # kept short; benchmarks read it
        self.record_lateness = False

    # -- scheduling ------------------------------------------------------------

    def changed(self, actor: Actor, scheduled_ms: int | None) -> None:
        """Storage set or deleted the alarm in the open batch."""
        if actor.alarm_running:
            # Applied when the run ends (it replaces a retry).
            actor.alarm_touched = True
            actor.alarm_rearmed_ms = scheduled_ms
            return
        actor.alarm_retry = 0
        self._schedule(actor, scheduled_ms)

    def _schedule(self, actor: Actor, scheduled_ms: int | float | None, *, at: float | None = None) -> None:
        timer = actor.alarm_timer
        if timer is not None:
            timer.cancel()
            actor.alarm_timer = None
        if scheduled_ms is None and at is None:
            return
        if at is None:
            assert scheduled_ms is not None
            at = self._rt.clock.trio_time_for(scheduled_ms)
        actor.alarm_timer = self._rt.scheduler.call_at(at, self._fire, actor)

    def resync(self, actor: Actor) -> None:
        """Schedule from what the database holds (after a rollback, or at start)."""
        if actor.alarm_running:
            return
        db = actor.database()
        self._schedule(actor, db.get_alarm())

    def _fire(self, actor: Actor) -> None:
        actor.alarm_timer = None
        if not actor.alarm_running and not self._rt._closing:
            self._rt._nursery.start_soon(self._run_safely, actor)

    async def _run_safely(self, actor: Actor) -> None:
        """A scheduled firing: nothing it meets may take the runtime down."""
        try:
            await self.run(actor, False)
        except Exception:
            # An internal failure (the database could not be opened, say):
            # like workerd, try again soon without counting it as a retry.
            log.exception("alarm of %r could not run; trying again in %s s", actor, INTERNAL_RETRY_DELAY)
            actor.alarm_running = False
            self._schedule(actor, None, at=trio.current_time() + INTERNAL_RETRY_DELAY)

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
        if actor.alarm_running:
            return False
        rt = self._rt
        scheduled = actor.database().get_alarm()
        if scheduled is None:
            return False
        now_ms = rt.clock.now_ms()
        if not forced and scheduled > now_ms + 0.5:
            self._schedule(actor, scheduled)  # a stale timer: re-arm for the real time
            return False
        if self.record_lateness:
            self.lateness_ms.append(now_ms - scheduled)
        if actor.alarm_timer is not None:
            actor.alarm_timer.cancel()
            actor.alarm_timer = None
        actor.alarm_running = True
        actor.alarm_touched = False
        retry = actor.alarm_retry
        info = AlarmInfo(retryCount=retry, isRetry=retry > 0)
        ran: list[Activation] = []
        limit = rt.config.alarm_time_limit

        async def invoke(act: Activation) -> None:
            ran.append(act)
            # getAlarm() is None while the handler runs unless it re-arms.
            actor.database().set_alarm(None)
            act.wrote(confirmed=True)
            handler = getattr(act.instance, "alarm", None)
            if handler is None:
                log.warning("%r has an alarm but no alarm() handler; the alarm is dropped", actor)
                return
            cls = type(act.instance)
            takes = self._takes_arg.get(cls)
            if takes is None:
                takes = self._takes_arg[cls] = _takes_argument(handler)
            with trio.fail_after(limit):
                result = handler(info) if takes else handler()
                if inspect.isawaitable(result):
                    await result

        failure: BaseException | None = None
        try:
            await actor.deliver(invoke, visible_id=actor.id.for_object())
        except Exception as exc:
            failure = exc
        finally:
            actor.alarm_running = False
        self.fired += 1
        if failure is None:
            actor.alarm_retry = 0
            if actor.alarm_touched:
                # The run's writes passed the output gate: what the handler
                # set is durable, no need to read it back. (Were it undone by
                # a rolled-back transaction, the timer would find no alarm
                # stored when it fires, and do nothing.)
                self._schedule(actor, actor.alarm_rearmed_ms)
            return True
        log.info("alarm of %r failed (attempt %d): %r", actor, retry + 1, failure)
        retry_allowed = not (ran and ran[0].dead and not ran[0].retry_alarm)
        if actor.alarm_touched:
            # A setAlarm/deleteAlarm during the failed run replaces the retry.
            actor.alarm_retry = 0
            self.resync(actor)
        elif retry_allowed and retry < rt.config.alarm_max_retries:
            actor.alarm_retry = retry + 1
            delay = rt.config.alarm_retry_base * (2**retry)
            delay *= 1 + rt.rng.uniform(0, rt.config.alarm_retry_jitter)
            # During the backoff getAlarm() reports the original time (workerd).
            self._store(actor, scheduled)
            self._schedule(actor, None, at=trio.current_time() + delay)
        else:
            actor.alarm_retry = 0
            # actor.database(), not ``db``: a reset during the run replaced it.
            if actor.database().get_alarm() is not None:
                self._store(actor, None)
        return True

    # -- persistence across restarts ---------------------------------------------

    def load(self, binding: str, folder: Path) -> int:
        """Schedule the stored alarms of ``binding``'s objects; returns how many."""
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
            if not _HEX_ID.match(stem) or ext not in ("sqlite", "sqlite-wal"):
                continue
            if entry.stat().st_mtime >= index_mtime:
                stale.append(stem)
        ns = self._rt._namespaces[binding]
        for hex_id in sorted(set(stale)):
            known.pop(hex_id, None)
            actor = self._rt._actor_for(binding, ns.idFromString(hex_id))
            ms = actor.database().get_alarm()
            actor.close_idle_database()
            if ms is not None:
                known[hex_id] = ms
        for hex_id in sorted(known):
            actor = self._rt._actor_for(binding, ns.idFromString(hex_id))
            self._schedule(actor, known[hex_id])
        return len(known)

    def save(self, binding: str, folder: Path) -> None:
        """Write the namespace's alarm index (on close)."""
        alarms: dict[str, int] = {}
        for (b, hex_id), actor in self._rt._actors.items():
            if b != binding:
                continue
            if actor.alarm_timer is not None or actor.alarm_retry:
                ms = actor.database().get_alarm()
                actor.close_idle_database()
                if ms is not None:
                    alarms[hex_id] = ms
        tmp = folder / (_INDEX + ".tmp")
        tmp.write_text(json.dumps(alarms, sort_keys=True))
        os.replace(tmp, folder / _INDEX)
