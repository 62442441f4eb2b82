"""open_runtime(): the composition root. Bindings, env, lifetime, statistics and the test helpers.

The runtime builds the core (:class:`~runtime._core.Core`), the services
(alarms, sockets, D1) and the facades (namespaces and stubs on ``env``,
``ctx``), and implements the protocols the lower layers define for what
they need from it: the core's ``ActorHost`` (open a database, make storage
and ``ctx``, run a constructor, spawn a task, hear of alarm changes and
ended activations). Nothing below imports this module.

Invariants:

* Every task the runtime starts lives in its nursery; closing the runtime
  commits pending writes (a graceful shutdown, not a crash), cancels the
  rest and closes every database.
* One scheduler task and one flusher task serve all objects (and, while
  alarms are due, one task runs them).
* ``state_dir=None`` keeps state in a temporary directory removed on close,
  so nothing outlives the runtime but 100,000 objects still fit. A given
  state directory serves one runtime at a time (``runtime.lock``).
* All randomness comes from one seeded generator. With a ``state_dir`` the
  number of previous opens is stored there and mixed into the seed, so a
  reopened runtime never replays the same ``newUniqueId`` sequence.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import json
import logging
import os
import random
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from shards._codec import decode
from shards._errors import StorageError

from ._alarms import AlarmManager
from ._clock import RuntimeClock
from ._config import RuntimeConfig
from ._core import (
    CONNECTION_LOST_MESSAGE,
    Activation,
    Actor,
    Core,
    ObjectState,
    Transition,
    current_activation,
    reset_error,
)
from ._ids import DurableObjectId, IdFactory, looks_like_id
from ._object import DurableObject, DurableObjectState
from ._scheduler import Scheduler
from ._stub import DurableObjectNamespace, DurableObjectStub, stub_target
from .d1 import D1Database, close_d1, open_d1
from .sockets._manager import SocketManager
from .storage import ConnectionPool, DurableObjectStorage, ObjectDatabase, StorageLimits

__all__ = ["Env", "ObjectStatistics", "Runtime", "RuntimeStatistics", "current_runtime", "open_runtime"]

log = logging.getLogger("shardsim.runtime")
T = TypeVar("T")

_D1_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

_current_runtime: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar(
    "shardsim_runtime", default=None
)


def current_runtime() -> Runtime | None:
    """The runtime this task runs under (its body, its objects' code, tasks they start), if any.

    What the Python Workers modules (``workers``, ``js``) use to find ``env``,
    the clock and the scheduler, so that one imported Worker module works
    with several runtimes in one process.
    """
    # An object's code runs in its caller's task, which may be another runtime's: the object's own
    # runtime comes first (two runtimes open at once, the body of one calling into the other).
    act = current_activation()
    if act is not None:
        host = act.actor.core.host
        if isinstance(host, Runtime):
            return host
    return _current_runtime.get()


class Env:
    """``env``: one attribute per binding and per var."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"<Env {', '.join(sorted(self.__dict__))}>"

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not bindings or vars.
        raise AttributeError(f"env has no binding or var named {name!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectStatistics:
    """One object, as the runtime sees it.

    ``background_tasks`` counts what pins the live instance in memory:
    background tasks and other pins (a ticking timer shard, a socket
    accepted with ``accept()``).
    """

    binding: str
    id: str
    state: str
    events_delivered: int
    activations: int
    in_flight: int
    background_tasks: int
    storage_reads: int
    storage_writes: int
    storage_bytes_written: int
    websockets: int
    alarm_ms: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeStatistics:
    """The whole runtime."""

    objects: int
    live: int
    hibernated: int
    inactive: int
    events_delivered: int
    commits: int
    committed_writes: int
    timers: int
    open_databases: int


class Runtime:
    """A running emulator. Made by :func:`open_runtime`; never construct it directly.

    Implements the core's ``ActorHost``.
    """

    def __init__(
        self,
        *,
        objects: Mapping[str, type[DurableObject]],
        vars: Mapping[str, str],
        root: Path,
        d1: Mapping[str, str] = {},
        config: RuntimeConfig,
        clock: RuntimeClock,
        rng: random.Random,
        persistent: bool,
    ) -> None:
        self.config = config
        self.rng = rng
        self.clock = clock
        self._root = root
        self._persistent = persistent
        self._classes = dict(objects)
        self._nursery: trio.Nursery | None = None  # set by open_runtime
        self.scheduler = Scheduler()
        self._core = Core(self, config=config, clock=clock, scheduler=self.scheduler, rng=rng)
        self._alarms = AlarmManager(self._core)
        self._sockets = SocketManager(self._core)
        self._pool = ConnectionPool(config.max_open_databases)
        self._pool.relieve_pressure = self._core.commit_everything
        self._limits = {
            b: (StorageLimits.legacy_kv() if b in config.legacy_kv_bindings else StorageLimits.sqlite())
            for b in objects
        }
        bindings: dict[str, Any] = dict(vars)
        self._namespaces: dict[str, DurableObjectNamespace] = {}
        self._ids: dict[str, IdFactory] = {}
        for binding, cls in objects.items():
            if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
                raise TypeError(f"binding {binding!r}: {cls!r} is not a DurableObject subclass")
            (root / "do" / binding).mkdir(parents=True, exist_ok=True)
            ids = self._ids[binding] = IdFactory(cls.__name__, rng)
            ns = DurableObjectNamespace(self._core, binding, cls, ids)
            self._namespaces[binding] = ns
            bindings[binding] = ns
        # D1: one trio-driver database per database name (two bindings may share one),
        # stored as d1/<database name>.sqlite under the state directory.
        self._d1: dict[str, D1Database] = {}
        for binding, database_name in d1.items():
            if binding in bindings:
                raise ValueError(f"binding {binding!r} is declared twice")
            if not database_name or not _D1_NAME.match(database_name):
                raise ValueError(f"D1 binding {binding!r}: invalid database name {database_name!r}")
            db = self._d1.get(database_name)
            if db is None:
                db = self._d1[database_name] = open_d1(
                    root / "d1" / f"{database_name}.sqlite", name=database_name, now_ms=clock.now_ms
                )
            bindings[binding] = db
        self.env = Env(bindings)

    def install(self) -> None:
        """Make this the current runtime (and its clock the current clock) for the calling task.

        Tasks the runtime starts, and the body of ``open_runtime``, have it
        already; a task started elsewhere that calls into objects (a server's
        connection task) calls this first.
        """
        self.clock.install()
        _current_runtime.set(self)

    @contextlib.contextmanager
    def _installed(self) -> Iterator[None]:
        token = _current_runtime.set(self)
        try:
            with self.clock.installed():
                yield
        finally:
            _current_runtime.reset(token)

    # -- ActorHost -------------------------------------------------------------

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._nursery is not None, "the runtime has not started; please file a bug"
        self._nursery.start_soon(fn, *args)

    def open_database(self, actor: Actor) -> ObjectDatabase:
        return ObjectDatabase(self._db_path(actor.binding, actor.id.toString()), self._pool)

    def make_storage(self, act: Activation) -> DurableObjectStorage:
        actor = act.actor
        return DurableObjectStorage(
            actor.database(),
            act,
            self._limits[actor.binding],
            compat_delete_all_deletes_alarm=self.config.delete_all_deletes_alarm,
            now_ms=self.clock.now_ms,
        )

    def make_context(self, act: Activation, visible_id: DurableObjectId) -> DurableObjectState:
        assert act.storage is not None
        return DurableObjectState(act, visible_id, act.storage, self._sockets)

    def construct(self, actor: Actor, ctx: Any) -> Any:
        return self._classes[actor.binding](ctx, self.env)

    def alarm_changed(self, actor: Actor, scheduled_ms: int | None) -> None:
        self._alarms.changed(actor, scheduled_ms)

    def activation_ended(self, actor: Actor, act: Activation, transition: Transition) -> None:
        self._sockets.activation_ended(actor, transition)
        self._alarms.activation_ended(actor, transition)

    # -- internals ---------------------------------------------------------------

    def _db_path(self, binding: str, hex_id: str) -> Path:
        return self._root / "do" / binding / f"{hex_id}.sqlite"

    def _actor_of(self, stub: DurableObjectStub) -> Actor:
        """The actor behind one of this runtime's stubs (white-box tests use it too)."""
        actor = stub_target(stub)[0]
        if actor.core is not self._core:
            raise TypeError(f"expected a stub of this runtime, got {stub!r}")
        return actor

    # -- public API -----------------------------------------------------------------

    def statistics(self) -> RuntimeStatistics:
        core = self._core
        counts = dict.fromkeys(ObjectState, 0)
        for actor in core.actors.values():
            counts[actor.state] += 1
        return RuntimeStatistics(
            objects=len(core.actors),
            live=counts[ObjectState.ACTIVE] + counts[ObjectState.IDLE],
            hibernated=counts[ObjectState.HIBERNATED],
            inactive=counts[ObjectState.INACTIVE],
            events_delivered=core.events,
            commits=core.commits,
            committed_writes=core.committed_writes,
            timers=len(self.scheduler),
            open_databases=self._pool.statistics().open,
        )

    def object_statistics(self, stub: DurableObjectStub) -> ObjectStatistics:
        actor = self._actor_of(stub)
        act = actor.act
        storage = act.storage.statistics() if act is not None and act.storage is not None else None
        return ObjectStatistics(
            binding=actor.binding,
            id=actor.id.toString(),
            state=actor.state.value,
            events_delivered=actor.events,
            activations=actor.activations,
            in_flight=act.in_flight if act else 0,
            background_tasks=act.pins if act else 0,
            storage_reads=storage.reads if storage else 0,
            storage_writes=storage.writes if storage else 0,
            storage_bytes_written=storage.bytes_written if storage else 0,
            websockets=self._sockets.count(actor),
            alarm_ms=self.get_alarm(stub),
        )

    def state_of(self, stub: DurableObjectStub) -> str:
        """The object's lifecycle state: inactive, active, idle or hibernated."""
        return self._actor_of(stub).state.value

    async def run_in_object(self, stub: DurableObjectStub, fn: Callable[[Any, Any], T | Awaitable[T]]) -> T:
        """Call ``fn(instance, ctx)`` inside the object's turn and return its result (by reference)."""
        actor = self._actor_of(stub)
        visible_id = stub_target(stub)[1]

        def invoke(act: Activation) -> T | Awaitable[T]:
            return fn(act.instance, act.ctx)  # the actor awaits it if it is awaitable

        return await actor.deliver(invoke, visible_id=visible_id)  # type: ignore[no-any-return]

    def list_ids(self, binding: str) -> list[DurableObjectId]:
        """Ids of the objects of ``binding`` that have run or have storage, sorted by hex."""
        ns = self._namespaces.get(binding)
        if ns is None:
            raise KeyError(f"no Durable Object binding named {binding!r}")
        hexes = {
            hex_id for (b, hex_id), actor in self._core.actors.items() if b == binding and actor.activations
        }
        folder = self._root / "do" / binding
        if folder.is_dir():
            hexes.update(p.stem for p in folder.glob("*.sqlite") if looks_like_id(p.stem))
        return [ns.idFromString(h) for h in sorted(hexes)]

    async def run_alarm(self, stub: DurableObjectStub) -> bool:
        """Run the object's pending alarm now, due or not; returns whether one ran."""
        return await self._alarms.run(self._actor_of(stub), True)

    def get_alarm(self, stub: DurableObjectStub) -> int | None:
        """The object's stored alarm time (ms since the epoch), or None."""
        actor = self._actor_of(stub)
        ms = actor.database().get_alarm()
        actor.close_idle_database()
        return ms

    def dump_storage(self, stub: DurableObjectStub) -> dict[str, Any]:
        """An object's KV entries and SQL tables, read without waking it.

        Returns ``{"kv": {key: value}, "sql": {table: [row dicts]}, "alarm": ms | None}``.
        Uncommitted writes of a live object are included (they are what its
        code reads).
        """
        actor = self._actor_of(stub)
        db = actor.database()
        conn = db.read_connection()
        out: dict[str, Any] = {"kv": {}, "sql": {}, "alarm": None}
        if conn is not None:
            out["kv"] = {k: decode(v) for k, v in conn.execute("SELECT key, value FROM _cf_KV ORDER BY key")}
            names = [
                r[0]
                for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            ]
            tables = [n for n in names if not n.startswith(("_cf_", "sqlite_"))]
            for table in tables:
                cur = conn.execute(f'SELECT * FROM "{table.replace(chr(34), chr(34) * 2)}"')
                cols = [d[0] for d in cur.description]
                out["sql"][table] = [dict(zip(cols, row, strict=True)) for row in cur]
            out["alarm"] = db.get_alarm()
        actor.close_idle_database()
        return out

    async def hibernate(self, stub: DurableObjectStub) -> None:
        """Hibernate the object now, as after 10 idle seconds (in-flight events are cut)."""
        self._actor_of(stub).hibernate()
        await trio.lowlevel.checkpoint()

    async def evict(self, stub: DurableObjectStub) -> None:
        """Evict the object now (graceful: pending writes are committed)."""
        self._actor_of(stub).evict()
        await trio.lowlevel.checkpoint()

    async def crash(self, stub: DurableObjectStub) -> None:
        """Power cut: uncommitted writes and the outputs held for them are lost."""
        self._actor_of(stub).reset(reset_error(CONNECTION_LOST_MESSAGE, retryable=True), lose_writes=True)
        await trio.lowlevel.checkpoint()

    # -- lifetime -------------------------------------------------------------------

    async def _start(self, nursery: trio.Nursery) -> None:
        """Start the runtime's own tasks in ``nursery``, then schedule the stored alarms."""
        self._nursery = nursery
        await nursery.start(self.scheduler.run)
        await nursery.start(self._core.flusher.run)
        # Alarms that came due while the runtime was down fire on start.
        for binding, ids in self._ids.items():
            self._alarms.load(binding, self._root / "do" / binding, ids)

    def _close(self) -> None:
        self._core.close()
        if self._persistent:
            for binding in self._classes:
                self._alarms.save(binding, self._root / "do" / binding)
        self._alarms.close()
        self._pool.close_all()
        for db in self._d1.values():
            close_d1(db)


def _lock_state_dir(root: Path) -> int:
    """Hold ``root/runtime.lock`` for the runtime's life; returns its descriptor.

    Object databases take no SQLite file locks (runtime.storage's
    ObjectDatabase): this one lock keeps a second runtime, in this process
    or another, away from every object of the state directory. The kernel
    drops it when the process dies, so a crash leaves nothing stale.
    """
    path = root / "runtime.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(f"{root} is in use by another runtime (it holds {path})") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _runtime_rng(seed: int | None, root: Path, persistent: bool) -> random.Random:
    base = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
    opens = 0
    if persistent:
        meta = root / "runtime.json"
        try:
            opens = int(json.loads(meta.read_text())["opens"])
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            opens = 0
        opens += 1
        meta.write_text(json.dumps({"opens": opens}))
    return random.Random(f"{base}/{opens}")


@asynccontextmanager
async def open_runtime(
    objects: Mapping[str, type[DurableObject]] = {},
    d1: Mapping[str, str] = {},
    vars: Mapping[str, str] = {},
    state_dir: str | os.PathLike[str] | None = None,
    config: RuntimeConfig | None = None,
    seed: int | None = None,
) -> AsyncIterator[Runtime]:
    """Open an emulated Durable Objects runtime; yields a :class:`Runtime`.

    Args:
        objects: binding name -> DurableObject subclass.
        d1: binding name -> D1 database name (``d1/<name>.sqlite`` under the state dir).
        vars: plain values put on ``env``.
        state_dir: where state lives (``do/<binding>/<id>.sqlite``); None =
            a temporary directory removed on close.
        config: timings, limits, compatibility settings, clock epoch.
        seed: seeds every random choice (ids, jitter, eviction windows).
    """
    config = config or RuntimeConfig()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    lock: int | None = None
    if state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="shardsim-")
        root = Path(tmp.name)
    else:
        root = Path(state_dir)
        root.mkdir(parents=True, exist_ok=True)
        lock = _lock_state_dir(root)
    try:
        clock = RuntimeClock(config.epoch_ms)
        rt = Runtime(
            objects=objects,
            vars=vars,
            root=root,
            d1=d1,
            config=config,
            clock=clock,
            rng=_runtime_rng(seed, root, tmp is None),
            persistent=tmp is None,
        )
        # The body's own exception is re-raised outside the nursery, so users
        # see their error, not an ExceptionGroup wrapping it.
        body_error: BaseException | None = None
        with rt._installed():
            async with trio.open_nursery() as nursery:
                await rt._start(nursery)
                try:
                    yield rt
                except BaseException as exc:
                    body_error = exc
                finally:
                    rt._close()
                    nursery.cancel_scope.cancel()
            if body_error is not None:
                raise body_error
    finally:
        if tmp is not None:
            tmp.cleanup()
        if lock is not None:
            os.close(lock)  # releases the lock
