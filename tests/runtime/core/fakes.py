"""A fake ActorHost (the runtime's side of the core's seam) and a core built on it.

The fake plays the runtime for the core with as little as it can: real
object databases in a temporary folder (storage is below the core, so
there is nothing to fake there), a plain ``ctx`` with an ``id`` and a
``storage``, the object class given, the test's nursery for tasks, and a
record of everything the core reports upward (ended activations, alarm
changes).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from runtime import RuntimeConfig
from runtime._clock import RuntimeClock
from runtime._core import Activation, Actor, ActorHost, Core, Transition
from runtime._ids import DurableObjectId, IdFactory
from runtime._scheduler import Scheduler
from runtime.storage import ConnectionPool, DurableObjectStorage, ObjectDatabase, StorageLimits


@dataclass
class FakeContext:
    """What the fake host hands the constructor as ``ctx``."""

    act: Activation
    id: DurableObjectId
    storage: DurableObjectStorage


@dataclass
class FakeActorHost:
    """Records what the core reports and builds what it asks for."""

    root: Path
    object_class: Callable[[FakeContext], Any]
    nursery: trio.Nursery | None = None
    pool: ConnectionPool = field(default_factory=lambda: ConnectionPool(64))
    ended: list[tuple[str, Transition]] = field(default_factory=list)
    alarm_changes: list[int | None] = field(default_factory=list)
    opened: int = 0

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self.nursery is not None
        self.nursery.start_soon(fn, *args)

    def open_database(self, actor: Actor) -> ObjectDatabase:
        self.opened += 1
        return ObjectDatabase(self.root / f"{actor.id.toString()}.sqlite", self.pool)

    def make_storage(self, act: Activation) -> DurableObjectStorage:
        return DurableObjectStorage(
            act.actor.database(), act, StorageLimits.sqlite(), compat_delete_all_deletes_alarm=True
        )

    def make_context(self, act: Activation, visible_id: DurableObjectId) -> FakeContext:
        assert act.storage is not None
        return FakeContext(act, visible_id, act.storage)

    def construct(self, actor: Actor, ctx: Any) -> Any:
        return self.object_class(ctx)

    def alarm_changed(self, actor: Actor, scheduled_ms: int | None) -> None:
        self.alarm_changes.append(scheduled_ms)

    def activation_ended(self, actor: Actor, act: Activation, transition: Transition) -> None:
        assert act.dead
        assert actor.act is None
        assert actor.db is None
        self.ended.append((actor.id.name or "", transition))


def _host_type_check(host: FakeActorHost) -> ActorHost:
    return host  # mypy proves FakeActorHost satisfies the protocol


@dataclass
class CoreHarness:
    """A core on the fake host, with its scheduler and flusher running."""

    core: Core
    host: FakeActorHost
    ids: IdFactory

    def actor(self, name: str) -> Actor:
        return self.core.actor_for("TEST", self.ids.idFromName(name))

    async def call(self, actor: Actor, fn: Callable[[Any], Any]) -> Any:
        """Deliver an event that calls ``fn(instance)`` and return its result, as a stub call would."""
        return await actor.deliver(lambda act: fn(act.instance), visible_id=actor.id.for_object())


@asynccontextmanager
async def open_core(
    root: Path, object_class: Callable[[FakeContext], Any], config: RuntimeConfig | None = None
) -> AsyncIterator[CoreHarness]:
    """A core whose host is a :class:`FakeActorHost`; everything is closed on exit."""
    host = FakeActorHost(root, object_class)
    scheduler = Scheduler()
    core = Core(
        host,
        config=config or RuntimeConfig(epoch_ms=0),
        clock=RuntimeClock(0),
        scheduler=scheduler,
        rng=random.Random(0),
    )
    async with trio.open_nursery() as nursery:
        host.nursery = nursery
        await nursery.start(scheduler.run)
        await nursery.start(core.flusher.run)
        try:
            yield CoreHarness(core, host, IdFactory("Test", random.Random(0)))
        finally:
            core.close()
            host.pool.close_all()
            nursery.cancel_scope.cancel()
