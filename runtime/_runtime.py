"""open_runtime(): bindings, env, lifetime, statistics and the test helpers.

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

import fcntl
import json
import logging
import os
import random
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from shards._errors import DurableObjectError, StorageError

from ._actor import Activation, Actor, reset_error
from ._alarms import AlarmManager
from ._clock import RuntimeClock
from ._config import RuntimeConfig
from ._ids import DurableObjectId, IdFactory
from ._lifecycle import ObjectState, Transition
from ._object import DurableObject
from ._scheduler import Scheduler
from ._stub import DurableObjectNamespace, DurableObjectStub
from .d1 import D1Database, close_d1, open_d1
from .sockets._manager import SocketManager
from .storage import ConnectionPool, DurableObjectStorage, ObjectDatabase, StorageLimits

__all__ = ["Env", "ObjectStatistics", "Runtime", "RuntimeStatistics", "open_runtime"]

log = logging.getLogger("shardsim.runtime")
T = TypeVar("T")

CRASH_MESSAGE = "Network connection lost."
_HEX_ID = re.compile(r"^[0-9a-f]{64}$")
_D1_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


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
    """One object, as the runtime sees it."""

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


class _Flusher:
    """Commits dirty objects' write batches: one transaction per object per round.

    A round starts one scheduling step after the first write, so every event
    runnable at that moment adds its writes first (group commit).
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
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
        batch, self._dirty = self._dirty, {}
        for actor in batch:
            act = actor.act
            if act is None or act.dead:
                continue
            try:
                self._runtime._commit(actor, act)
            except DurableObjectError as exc:
                actor.reset(exc, lose_writes=True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self._dirty:
                await self._lot.park()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            self.flush_all()


class Runtime:
    """A running emulator. Made by :func:`open_runtime`; never construct it directly."""

    def __init__(
        self,
        *,
        objects: Mapping[str, type[DurableObject]],
        vars: Mapping[str, str],
        root: Path,
        d1: Mapping[str, str] = {},
        config: RuntimeConfig,
        rng: random.Random,
    ) -> None:
        self.config = config
        self.rng = rng
        self._root = root
        self._classes = dict(objects)
        self._actors: dict[tuple[str, str], Actor] = {}
        self._nursery: trio.Nursery = None  # type: ignore[assignment]  # set by open_runtime
        #: trio's clock, read directly: the end of every event reads it.
        self._now: Callable[[], float] = trio.lowlevel.current_clock().current_time
        self.scheduler = Scheduler()
        self._flusher = _Flusher(self)
        self._alarms = AlarmManager(self)
        self._sockets = SocketManager(self)
        self._pool = ConnectionPool(config.max_open_databases)
        self._pool.relieve_pressure = self._relieve_pool_pressure
        self.clock: RuntimeClock = None  # type: ignore[assignment]  # set by open_runtime
        self._persistent = False
        #: Set when closing starts: from then on no event is delivered, so
        #: nothing reactivates an object (and re-locks its file) mid-shutdown.
        self._closing = False
        self._events = 0
        self._commits = 0
        self._committed_writes = 0
        #: Commits made at an output gate without a scheduling step since the
        #: last one that took it (Activation.commit_through).
        self._unyielded_commits = 0
        self._limits = {
            b: (StorageLimits.legacy_kv() if b in config.legacy_kv_bindings else StorageLimits.sqlite())
            for b in objects
        }
        bindings: dict[str, Any] = dict(vars)
        self._namespaces: dict[str, DurableObjectNamespace] = {}
        for binding, cls in objects.items():
            if not (isinstance(cls, type) and issubclass(cls, DurableObject)):
                raise TypeError(f"binding {binding!r}: {cls!r} is not a DurableObject subclass")
            (root / "do" / binding).mkdir(parents=True, exist_ok=True)
            ns = DurableObjectNamespace(self, binding, IdFactory(cls.__name__, rng))
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
                    root / "d1" / f"{database_name}.sqlite", name=database_name, now_ms=self._d1_now_ms
                )
            bindings[binding] = db
        self.env = Env(bindings)

    def _d1_now_ms(self) -> float:
        return self.clock.now_ms()

    # -- internals used by actors ----------------------------------------------

    def _actor_for(self, binding: str, object_id: DurableObjectId) -> Actor:
        key = (binding, object_id.toString())
        actor = self._actors.get(key)
        if actor is None:
            actor = self._actors[key] = Actor(self, binding, object_id)
        return actor

    def _db_path(self, binding: str, hex_id: str) -> Path:
        return self._root / "do" / binding / f"{hex_id}.sqlite"

    def _open_database(self, actor: Actor) -> ObjectDatabase:
        return ObjectDatabase(self._db_path(actor.binding, actor.id.toString()), self._pool)

    def _make_storage(self, actor: Actor, act: Activation) -> DurableObjectStorage:
        return DurableObjectStorage(
            actor.database(),
            act,
            self._limits[actor.binding],
            compat_delete_all_deletes_alarm=self.config.delete_all_deletes_alarm,
            now_ms=self.clock.now_ms,
        )

    def _commit(self, actor: Actor, act: Activation) -> None:
        """Commit ``actor``'s open batch and release the outputs waiting on it."""
        db = actor.db
        if db is None or not db.dirty:
            act.committed_seq = act.write_seq
            act.output_lot.unpark_all()
            act.release_held()
            return
        if not db.can_commit:
            return  # inside storage.transaction(); committed when its gate opens
        self._flusher.forget(actor)
        seq = act.write_seq
        try:
            db.commit()
        except StorageError as exc:
            err = reset_error(STORAGE_RESET.format(ref=actor.id.toString()[:16]) + f" ({exc})")
            raise err from exc
        self._commits += 1
        self._committed_writes += seq - act.committed_seq
        act.committed_seq = seq
        if act.output_lot:
            act.output_lot.unpark_all()
        if act.held:
            act.release_held()

    def _relieve_pool_pressure(self) -> None:
        """Every open connection holds a batch: commit them now so some can close.

        Rare (thousands of objects writing at once) and O(objects); committing
        a batch early is always allowed, it only makes writes durable sooner.
        """
        self._flusher.flush_all()
        for actor in list(self._actors.values()):
            act, db = actor.act, actor.db
            if act is not None and not act.dead and db is not None and db.dirty and db.can_commit:
                try:
                    self._commit(actor, act)
                except DurableObjectError as exc:
                    actor.reset(exc, lose_writes=True)

    def _activation_ended(self, actor: Actor, transition: Transition) -> None:
        if transition is Transition.RESET:
            # A rollback may have undone a setAlarm/deleteAlarm: trust the database.
            self._alarms.resync(actor)
            actor.close_idle_database()

    def _alarm_changed(self, actor: Actor, scheduled_ms: int | None) -> None:
        self._alarms.changed(actor, scheduled_ms)

    def _actor_of(self, stub: DurableObjectStub) -> Actor:
        if not isinstance(stub, DurableObjectStub) or stub._runtime is not self:
            raise TypeError(f"expected a stub of this runtime, got {stub!r}")
        return self._actor_for(stub._binding, stub.id)

    # -- public API -----------------------------------------------------------------

    def statistics(self) -> RuntimeStatistics:
        counts = dict.fromkeys(ObjectState, 0)
        for actor in self._actors.values():
            counts[actor.state] += 1
        return RuntimeStatistics(
            objects=len(self._actors),
            live=counts[ObjectState.ACTIVE] + counts[ObjectState.IDLE],
            hibernated=counts[ObjectState.HIBERNATED],
            inactive=counts[ObjectState.INACTIVE],
            events_delivered=self._events,
            commits=self._commits,
            committed_writes=self._committed_writes,
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
            background_tasks=act.background if act else 0,
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
        if not isinstance(stub, DurableObjectStub) or stub._runtime is not self:
            raise TypeError(f"expected a stub of this runtime, got {stub!r}")
        actor, visible_id = stub._target()

        def invoke(act: Activation) -> T | Awaitable[T]:
            return fn(act.instance, act.ctx)  # the actor awaits it if it is awaitable

        return await actor.deliver(invoke, visible_id=visible_id)  # type: ignore[no-any-return]

    def list_ids(self, binding: str) -> list[DurableObjectId]:
        """Ids of the objects of ``binding`` that have run or have storage, sorted by hex."""
        ns = self._namespaces.get(binding)
        if ns is None:
            raise KeyError(f"no Durable Object binding named {binding!r}")
        hexes = {hex_id for (b, hex_id), actor in self._actors.items() if b == binding and actor.activations}
        folder = self._root / "do" / binding
        if folder.is_dir():
            hexes.update(p.stem for p in folder.glob("*.sqlite") if _HEX_ID.match(p.stem))
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
        from shards._codec import decode

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
        self._actor_of(stub).reset(reset_error(CRASH_MESSAGE, retryable=True), lose_writes=True)
        await trio.lowlevel.checkpoint()

    def _load_alarms(self) -> None:
        for binding in self._classes:
            self._alarms.load(binding, self._root / "do" / binding)

    async def _close(self) -> None:
        self._closing = True
        self._flusher.flush_all()
        for actor in list(self._actors.values()):
            if actor.act is not None:
                actor.evict()
        if self._persistent:
            for binding in self._classes:
                self._alarms.save(binding, self._root / "do" / binding)
        # Nothing of this runtime fires after it closed (no alarm leaks into
        # the next test).
        for actor in self._actors.values():
            if actor.alarm_timer is not None:
                actor.alarm_timer.cancel()
                actor.alarm_timer = None
        self._pool.close_all()
        for db in self._d1.values():
            close_d1(db)


STORAGE_RESET = "Internal error in Durable Object storage caused object to be reset; reference = {ref}"


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
        rt = Runtime(
            objects=objects,
            vars=vars,
            root=root,
            d1=d1,
            config=config,
            rng=_runtime_rng(seed, root, tmp is None),
        )
        rt.clock = RuntimeClock(config.epoch_ms)
        rt._persistent = tmp is None
        token = rt.clock.install()
        # The body's own exception is re-raised outside the nursery, so users
        # see their error, not an ExceptionGroup wrapping it.
        body_error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                rt._nursery = nursery
                await nursery.start(rt.scheduler.run)
                await nursery.start(rt._flusher.run)
                # Alarms that came due while the runtime was down fire on start.
                rt._load_alarms()
                try:
                    yield rt
                except BaseException as exc:
                    body_error = exc
                finally:
                    with trio.CancelScope(shield=True):
                        await rt._close()
                    nursery.cancel_scope.cancel()
            if body_error is not None:
                raise body_error
        finally:
            from ._clock import _current_clock

            _current_clock.reset(token)
    finally:
        if tmp is not None:
            tmp.cleanup()
        if lock is not None:
            os.close(lock)  # releases the lock
