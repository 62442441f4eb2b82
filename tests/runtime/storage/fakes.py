"""A fake StorageHost (the actor's side of the seam) and helpers to build storage in tests.

The fake records what storage tells the actor and plays the actor's part
where tests need it: ``wait_durable`` commits the database, ``reset()``
makes ``check_alive`` raise as a reset object's would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trio

from runtime.storage import (
    ConnectionPool,
    DurableObjectStorage,
    ObjectDatabase,
    StorageHost,
    StorageLimits,
)
from shards import ObjectResetError


class FakeHost:
    """Records every call storage makes on its host."""

    def __init__(self, db: ObjectDatabase | None = None) -> None:
        self.db = db
        self.wrote_calls: list[bool] = []  # the `confirmed` flag of each wrote()
        self.gate_events: list[str] = []  # "close" / "open", in order
        self.gate_depth = 0
        self.alarm_changes: list[int | None] = []
        self.durable_waits = 0
        self.alive = True

    def wrote(self, *, confirmed: bool) -> None:
        self.wrote_calls.append(confirmed)

    async def wait_durable(self) -> None:
        self.durable_waits += 1
        await trio.lowlevel.checkpoint()  # a real actor suspends here
        if self.db is not None:
            self.db.commit()

    def close_input_gate(self) -> None:
        self.gate_events.append("close")
        self.gate_depth += 1

    def open_input_gate(self) -> None:
        self.gate_events.append("open")
        self.gate_depth -= 1

    def check_alive(self) -> None:
        if not self.alive:
            raise ObjectResetError("Durable Object reset because its code was updated.")

    def alarm_changed(self, scheduled_ms: int | None) -> None:
        self.alarm_changes.append(scheduled_ms)

    def reset(self) -> None:
        """Act as the actor does on a crash: discard the batch, refuse later calls."""
        self.alive = False
        if self.db is not None:
            self.db.rollback()


def _host_type_check(host: FakeHost) -> StorageHost:
    return host  # mypy proves FakeHost satisfies the protocol


@dataclass
class Harness:
    """One object's storage with its fake host, database and pool."""

    path: Path
    pool: ConnectionPool
    db: ObjectDatabase
    host: FakeHost
    storage: DurableObjectStorage

    def reopen(self) -> Harness:
        """A fresh database object, host and storage on the same file (a new activation)."""
        return make_harness(
            self.path,
            self.pool,
            limits=self.storage.limits,
            delete_all_deletes_alarm=self.storage._delete_all_deletes_alarm,
        )


def make_harness(
    path: Path,
    pool: ConnectionPool | None = None,
    *,
    limits: StorageLimits | None = None,
    delete_all_deletes_alarm: bool = True,
) -> Harness:
    """Build storage for an object whose database file is ``path``."""
    pool = pool if pool is not None else ConnectionPool(max_open=16)
    db = ObjectDatabase(path, pool)
    host = FakeHost(db)
    storage = DurableObjectStorage(
        db,
        host,
        limits if limits is not None else StorageLimits.sqlite(),
        compat_delete_all_deletes_alarm=delete_all_deletes_alarm,
    )
    return Harness(path=path, pool=pool, db=db, host=host, storage=storage)
