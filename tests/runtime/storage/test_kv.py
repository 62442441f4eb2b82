"""ctx.storage: the KV API's rules, limits, messages, transactions, alarms and sync KV."""

from __future__ import annotations

import datetime as dt
import gc
import warnings
from pathlib import Path

import pytest
import trio

from runtime.storage import (
    DeferredStorageCall,
    DurableObjectTransaction,
    StorageLimits,
    StorageResult,
)
from shards import ObjectResetError, StorageError

from .fakes import Harness, make_harness


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return make_harness(tmp_path / "obj.sqlite")


@pytest.fixture
def legacy(tmp_path: Path) -> Harness:
    return make_harness(tmp_path / "legacy.sqlite", limits=StorageLimits.legacy_kv())


def stored_keys(h: Harness) -> list[str]:
    return list(h.storage.kv.list())  # type: ignore[arg-type]


# --- calling convention ---------------------------------------------------------------------------


async def test_get_after_an_unawaited_put_sees_it(h: Harness) -> None:
    """put without await acts at once; a get in the same turn sees the value."""
    s = h.storage
    s.put("n", 1)
    assert await s.get("n") == 1
    s.put("n", 2)
    s.delete("gone")
    assert await s.get("n") == 2


async def test_storage_awaits_never_yield_to_trio(h: Harness) -> None:
    """Awaiting storage does not suspend: a task started before it does not get to run."""
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await h.storage.put("k", 1)
        await h.storage.get("k")
        await h.storage.list()
        await h.storage.delete("k")
        await h.storage.setAlarm(1000)
        await h.storage.getAlarm()
        assert ran == []
    assert ran == ["other"]


def test_storage_methods_are_plain_functions(h: Harness) -> None:
    """No storage method is a coroutine function (an un-awaited call would never run)."""
    import inspect

    for name in ["get", "put", "delete", "list", "deleteAll", "getAlarm", "setAlarm", "deleteAlarm"]:
        assert not inspect.iscoroutinefunction(getattr(h.storage, name)), name
    assert isinstance(h.storage.put("k", 1), StorageResult)
    assert isinstance(h.storage.sync(), DeferredStorageCall)


def test_dropped_awaitables_warn_about_nothing(h: Harness) -> None:
    """Dropping every kind of storage awaitable emits no warning (warnings are errors here)."""

    async def closure(txn: DurableObjectTransaction) -> None:
        raise AssertionError("a dropped transaction() never runs")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h.storage.put("k", 1)
        h.storage.get("k")
        h.storage.list()
        h.storage.delete("k")
        h.storage.setAlarm(10)
        h.storage.deleteAlarm()
        h.storage.deleteAll()
        h.storage.sync()
        h.storage.transaction(closure)
        gc.collect()


async def test_deferred_call_may_be_awaited_once(h: Harness) -> None:
    """Awaiting a sync() result twice is refused rather than silently repeated."""
    call = h.storage.sync()
    await call
    with pytest.raises(StorageError, match=r"awaited twice"):
        await call


# --- get / put / delete ----------------------------------------------------------------------------


async def test_put_get_delete_round_trip(h: Harness) -> None:
    """Values of every codec type read back equal and with the same types."""
    value = {"a": [1, 2.5, None, True, "x", b"\x00\xff"], "when": dt.datetime(2026, 1, 2, tzinfo=dt.UTC)}
    await h.storage.put("k", value)
    assert await h.storage.get("k") == value
    assert await h.storage.get("missing") is None
    assert await h.storage.delete("k") is True
    assert await h.storage.delete("k") is False
    assert await h.storage.get("k") is None


async def test_put_then_rollback_loses_it(h: Harness) -> None:
    """A crash (db rollback) before the commit loses the put."""
    h.storage.put("k", "v")
    h.db.rollback()
    assert await h.storage.get("k") is None


async def test_committed_put_survives_reopen(h: Harness) -> None:
    """After commit, a new activation on the same file sees the data."""
    h.storage.put("k", "v")
    h.db.commit()
    h.db.close()
    again = h.reopen()
    assert await again.storage.get("k") == "v"


async def test_writes_notify_the_host(h: Harness) -> None:
    """Each write calls wrote(confirmed=...) once; allowUnconfirmed makes it unconfirmed."""
    s = h.storage
    s.put("a", 1)
    s.put("b", 2, {"allowUnconfirmed": True})
    s.put({"c": 3, "d": 4})
    s.put({"e": 5}, {"allowUnconfirmed": True})
    s.delete("a")
    s.delete(["b", "c"], {"allowUnconfirmed": True})
    s.deleteAll()
    assert h.host.wrote_calls == [True, False, True, False, True, False, True]


async def test_reads_do_not_notify_the_host(h: Harness) -> None:
    """Reads write nothing: no wrote() and no open batch."""
    await h.storage.get("a")
    await h.storage.get(["a", "b"])
    await h.storage.list()
    await h.storage.getAlarm()
    assert h.host.wrote_calls == []
    assert not h.db.dirty


async def test_reads_of_a_never_written_object_create_no_file(h: Harness) -> None:
    """An object that never wrote has no database file, whatever it reads."""
    assert await h.storage.get("a") is None
    assert await h.storage.get(["a"]) == {}
    assert await h.storage.list({"prefix": "x"}) == {}
    assert await h.storage.getAlarm() is None
    assert h.storage.kv.get("a") is None
    assert not h.path.exists()


async def test_batch_get_omits_missing_keys_and_orders_by_bytes(h: Harness) -> None:
    """get([...]) returns only existing keys, in UTF-8 byte order, whatever the request order."""
    await h.storage.put({"😀": 4, "b": 2, "é": 3, "a": 1})
    result = await h.storage.get(["😀", "nope", "é", "a", "b"])
    assert list(result.items()) == [("a", 1), ("b", 2), ("é", 3), ("😀", 4)]


async def test_batch_delete_counts_existing_keys(h: Harness) -> None:
    """delete([...]) returns how many of the keys existed."""
    await h.storage.put({"a": 1, "b": 2})
    assert await h.storage.delete(["a", "b", "c", "a"]) == 2
    assert await h.storage.list() == {}


async def test_reset_object_cannot_read_or_write(h: Harness) -> None:
    """Once the host reports a reset, every call raises ObjectResetError and writes nothing."""
    h.storage.put("k", 1)
    h.db.commit()
    h.host.reset()
    for call in [
        lambda: h.storage.get("k"),
        lambda: h.storage.put("k", 2),
        lambda: h.storage.delete("k"),
        lambda: h.storage.list(),
        lambda: h.storage.setAlarm(5),
        lambda: h.storage.kv.get("k"),
    ]:
        with pytest.raises(ObjectResetError):
            call()
    assert not h.db.dirty
