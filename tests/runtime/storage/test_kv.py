"""ctx.storage: the KV API's rules, limits, messages, transactions, alarms and sync KV."""

from __future__ import annotations

import datetime as dt
import gc
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing
from hypothesis import given, settings, strategies as st

from runtime.storage import (
    DeferredStorageCall,
    DurableObjectTransaction,
    StorageLimits,
    StorageResult,
    StorageTypeError,
)
from shards import CodecError, ObjectResetError, StorageError, StorageLimitError

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


# --- list -----------------------------------------------------------------------------------------

ORDERED = ["", "a", "ab", "b", "~", "\x7f", "é", "ÿ", "Ā", "\uffee", "\uffff", "😀", "\U0010ffff"]


async def test_list_orders_by_utf8_bytes(h: Harness) -> None:
    """list() is in UTF-8 byte order: U+FFFF sorts before an emoji (UTF-16 order would not)."""
    assert sorted(ORDERED, key=lambda k: k.encode("utf-8")) == ORDERED
    await h.storage.put({k: i for i, k in enumerate(reversed(ORDERED))})
    assert list(await h.storage.list()) == ORDERED
    assert list(await h.storage.list({"reverse": True})) == ORDERED[::-1]
    assert "\uffff" < "😀"  # and Python's str order agrees, which the engine relies on


async def test_keys_with_nul_characters(h: Harness) -> None:
    """NUL is an ordinary character: stored exactly and ordered by bytes."""
    keys = ["ab", "a\x00b", "a", "a\x00"]
    await h.storage.put({k: k for k in keys})
    assert list(await h.storage.list()) == ["a", "a\x00", "a\x00b", "ab"]
    assert await h.storage.get("a\x00b") == "a\x00b"
    assert list(await h.storage.list({"prefix": "a\x00"})) == ["a\x00", "a\x00b"]


async def test_empty_key_and_empty_entries(h: Harness) -> None:
    """The empty string is a valid key; put({}) writes nothing."""
    await h.storage.put("", "empty")
    assert await h.storage.get("") == "empty"
    h.host.wrote_calls.clear()
    await h.storage.put({})
    assert h.host.wrote_calls == []


async def test_list_returns_decoded_values(h: Harness) -> None:
    """Entries come back as a dict of decoded values."""
    await h.storage.put({"a": [1, 2], "b": {"x": None}})
    assert await h.storage.list() == {"a": [1, 2], "b": {"x": None}}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, ["a", "aa", "ab", "b", "ba", "c"]),
        ({"start": "ab"}, ["ab", "b", "ba", "c"]),
        ({"startAfter": "ab"}, ["b", "ba", "c"]),
        ({"end": "b"}, ["a", "aa", "ab"]),
        ({"start": "aa", "end": "ba"}, ["aa", "ab", "b"]),
        ({"limit": 2}, ["a", "aa"]),
        ({"reverse": True}, ["c", "ba", "b", "ab", "aa", "a"]),
        ({"reverse": True, "limit": 2}, ["c", "ba"]),
        # reverse keeps start/end as the lower/upper bound
        ({"reverse": True, "start": "aa", "end": "ba"}, ["b", "ab", "aa"]),
        ({"reverse": True, "startAfter": "aa", "end": "ba", "limit": 1}, ["b"]),
        ({"prefix": "a"}, ["a", "aa", "ab"]),
        ({"prefix": "a", "reverse": True, "limit": 2}, ["ab", "aa"]),
        ({"prefix": "a", "start": "aa"}, ["aa", "ab"]),
        ({"prefix": "a", "startAfter": "a"}, ["aa", "ab"]),
        ({"prefix": "a", "startAfter": "0"}, ["a", "aa", "ab"]),
        ({"prefix": "a", "end": "ab"}, ["a", "aa"]),
        ({"prefix": "a", "end": "z"}, ["a", "aa", "ab"]),
        ({"prefix": "a", "start": "b"}, []),
        ({"prefix": "b", "end": "b"}, []),
        ({"prefix": ""}, ["a", "aa", "ab", "b", "ba", "c"]),
        ({"prefix": "zz"}, []),
        ({"start": "b", "end": "b"}, []),
        ({"start": "c", "end": "a"}, []),
        ({"start": None, "limit": None, "reverse": None}, ["a", "aa", "ab", "b", "ba", "c"]),
    ],
)
async def test_list_options(h: Harness, options: dict[str, object], expected: list[str]) -> None:
    """start / startAfter / end / prefix / reverse / limit combine as in production."""
    await h.storage.put({k: k for k in ["c", "ba", "b", "ab", "aa", "a"]})
    assert list(await h.storage.list(options)) == expected


async def test_list_prefix_with_non_ascii_and_top_code_points(h: Harness) -> None:
    """A prefix bound is exact for multi-byte characters and for U+10FFFF."""
    top = "\U0010ffff"
    keys = ["é", "éa", "é\U0010ffff", "ê", "\ud7ff", "\ue000", top, top + "x", top + top]
    await h.storage.put({k: 1 for k in keys})
    assert list(await h.storage.list({"prefix": "é"})) == ["é", "éa", "é\U0010ffff"]
    assert list(await h.storage.list({"prefix": "\ud7ff"})) == ["\ud7ff"]
    assert list(await h.storage.list({"prefix": top})) == [top, top + "x", top + top]
    assert list(await h.storage.list({"prefix": top + top})) == [top + top]


def test_list_refuses_start_with_start_after(h: Harness) -> None:
    """start and startAfter together is a TypeError with production's message."""
    with pytest.raises(
        StorageTypeError, match=r"^list\(\) cannot be called with both start and startAfter values\.$"
    ):
        h.storage.list({"start": "a", "startAfter": "b"})


@pytest.mark.parametrize("limit", [0, -1])
def test_list_refuses_a_limit_that_is_not_positive(h: Harness, limit: int) -> None:
    """A limit of 0 or less is refused with production's message."""
    with pytest.raises(StorageTypeError, match=r"^List limit must be positive\.$"):
        h.storage.list({"limit": limit})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limit": "3"}, r"option 'limit' must be an int, got str"),
        ({"limit": 2.0}, r"option 'limit' must be an int, got float"),
        ({"limit": True}, r"option 'limit' must be an int, got bool"),
        ({"reverse": 1}, r"option 'reverse' must be a bool, got int"),
        ({"start": 5}, r"keys must be str, got int"),
        ({"prefix": b"a"}, r"keys must be str, got bytes"),
        ({"allowUnconfirmed": True}, r"unknown option 'allowUnconfirmed'"),
        ({"startafter": "a"}, r"unknown option 'startafter'"),
    ],
)
def test_list_refuses_bad_options(h: Harness, options: dict[str, object], message: str) -> None:
    """Options of the wrong type or unknown names are TypeErrors naming the option."""
    with pytest.raises(StorageTypeError, match=message):
        h.storage.list(options)


# --- options --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda s: s.get("k", {"allowUnconfirmed": True}),
            r"^get\(\) got an unknown option 'allowUnconfirmed'",
        ),
        (lambda s: s.put("k", 1, {"allow_unconfirmed": True}), r"^put\(\) got an unknown option"),
        (lambda s: s.delete("k", {"limit": 1}), r"^delete\(\) got an unknown option 'limit'"),
        (lambda s: s.deleteAll({"x": 1}), r"^deleteAll\(\) got an unknown option 'x'"),
        (lambda s: s.getAlarm({"noCache": True}), r"^getAlarm\(\) got an unknown option 'noCache'"),
        (lambda s: s.setAlarm(5, {"noCache": True}), r"^setAlarm\(\) got an unknown option 'noCache'"),
        (lambda s: s.deleteAlarm({"noCache": True}), r"^deleteAlarm\(\) got an unknown option"),
        (lambda s: s.put("k", 1, {"allowUnconfirmed": "yes"}), r"'allowUnconfirmed' must be a bool, got str"),
        (lambda s: s.get("k", ["noCache"]), r"^get\(\) options must be a dict"),
    ],
)
def test_bad_options_are_refused_before_anything_happens(h: Harness, call: object, message: str) -> None:
    """Unknown option names and wrong types raise at the call; nothing is written."""
    with pytest.raises(StorageTypeError, match=message):
        call(h.storage)  # type: ignore[operator]
    assert h.host.wrote_calls == []
    assert not h.path.exists()


async def test_known_options_are_accepted(h: Harness) -> None:
    """Every documented option is accepted where production accepts it."""
    s = h.storage
    await s.put("k", 1, {"allowUnconfirmed": False, "allowConcurrency": True, "noCache": True})
    assert await s.get("k", {"allowConcurrency": True, "noCache": True}) == 1
    assert await s.get(["k"], {"noCache": False}) == {"k": 1}
    assert await s.list({"allowConcurrency": True, "noCache": True}) == {"k": 1}
    await s.setAlarm(10, {"allowConcurrency": True, "allowUnconfirmed": True})
    assert await s.getAlarm({"allowConcurrency": True}) == 10
    await s.deleteAlarm({"allowUnconfirmed": True})
    assert await s.delete("k", {"noCache": True}) is True
    await s.deleteAll({"allowUnconfirmed": True})


# --- argument validation and the codec -----------------------------------------------------------


def test_put_without_a_value_is_production_s_type_error(h: Harness) -> None:
    """put(key) with no value: production's 'called with undefined value' TypeError."""
    with pytest.raises(StorageTypeError, match=r"^put\(\) called with undefined value\.$"):
        h.storage.put("k")
    with pytest.raises(StorageTypeError, match=r"^put\(\) called with undefined value\.$"):
        h.storage.kv.put("k")


@pytest.mark.parametrize("second", [5, "x", [1]])
def test_put_entries_with_a_non_options_second_argument(h: Harness, second: object) -> None:
    """put(entries, <not options>) is production's 'may only be called with' TypeError."""
    with pytest.raises(StorageTypeError, match=r"^put\(\) may only be called with a single key-value pair"):
        h.storage.put({"a": 1}, second)
    with pytest.raises(StorageTypeError, match=r"^put\(\) may only be called with"):
        h.storage.put({"a": 1}, {}, {})
    assert not h.path.exists()


async def test_put_entries_with_options_as_second_argument(h: Harness) -> None:
    """put(entries, options) takes the options positionally, as production does."""
    await h.storage.put({"a": 1}, {"allowUnconfirmed": True})
    assert h.host.wrote_calls == [False]
    await h.storage.put({"b": 2}, None)
    assert await h.storage.get(["a", "b"]) == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.get(1), r"^get\(\): keys must be str, got int$"),
        (lambda s: s.get(("a", "b")), r"^get\(\): keys must be str, got tuple$"),
        (lambda s: s.get(["a", 2]), r"^get\(\): keys must be str, got int$"),
        (lambda s: s.put(b"k", 1), r"^put\(\): keys must be str, got bytes$"),
        (lambda s: s.put({1: "x"}), r"^put\(\): keys must be str, got int$"),
        (lambda s: s.delete(None), r"^delete\(\): keys must be str, got NoneType$"),
        (lambda s: s.delete({"a"}), r"^delete\(\): keys must be str, got set$"),
        (lambda s: s.put("bad\ud800", 1), r"contains a lone surrogate, so it has no UTF-8 form"),
        (lambda s: s.kv.get(["a"]), r"^kv\.get\(\): keys must be str, got list$"),
    ],
)
def test_bad_keys_are_refused(h: Harness, call: object, message: str) -> None:
    """Keys must be str with a UTF-8 form; lists must be lists of such keys."""
    with pytest.raises(StorageTypeError, match=message):
        call(h.storage)  # type: ignore[operator]
    assert not h.path.exists()


async def test_str_subclass_keys_are_stored_as_plain_strings(h: Harness) -> None:
    """A StrEnum key is stored as its string value."""
    import enum

    class Key(enum.StrEnum):
        SCORE = "score"

    await h.storage.put(Key.SCORE, 7)
    assert await h.storage.get("score") == 7
    assert type(next(iter(await h.storage.list()))) is str


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        {1: "non-str key"},
        {"nested": [{2: 3}]},
        dt.datetime(2026, 1, 1),
        2**64,
        {1, 2},
        bytearray(b"x"),
    ],
    ids=["tuple", "int-key", "nested-int-key", "naive-datetime", "too-big-int", "set", "bytearray"],
)
async def test_codec_refusals_fail_at_put_and_write_nothing(h: Harness, value: object) -> None:
    """A value the codec refuses raises CodecError at put; not even the other entries are written."""
    await h.storage.put("existing", 1)
    h.db.commit()
    h.host.wrote_calls.clear()
    with pytest.raises(CodecError, match=r"storage key 'bad'"):
        h.storage.put("bad", value)
    with pytest.raises(CodecError):
        h.storage.put({"good": 1, "bad": value, "after": 2})
    with pytest.raises(CodecError):
        h.storage.kv.put("bad", value)
    assert h.host.wrote_calls == []
    assert not h.db.dirty
    assert await h.storage.list() == {"existing": 1}


async def test_a_value_of_none_is_stored(h: Harness) -> None:
    """None is a value like any other: it is listed, though get() cannot tell it from missing."""
    await h.storage.put("k", None)
    assert await h.storage.list() == {"k": None}
    assert await h.storage.delete("k") is True


# --- limits ---------------------------------------------------------------------------------------

MAX_PAIRS_129 = r"^Maximum number of key value pairs is 128\. 129 pairs were provided\.$"


@pytest.mark.parametrize("backend", ["sqlite", "legacy_kv"])
async def test_batches_of_more_than_128_keys_are_refused(tmp_path: Path, backend: str) -> None:
    """get/put/delete with 129 keys raise production's RangeError; 128 is fine; nothing is written."""
    limits = StorageLimits.sqlite() if backend == "sqlite" else StorageLimits.legacy_kv()
    h = make_harness(tmp_path / "o.sqlite", limits=limits)
    keys = [f"k{i:03}" for i in range(129)]
    with pytest.raises(StorageLimitError, match=MAX_PAIRS_129):
        h.storage.put({k: 1 for k in keys})
    with pytest.raises(StorageLimitError, match=MAX_PAIRS_129):
        h.storage.get(keys)
    with pytest.raises(StorageLimitError, match=MAX_PAIRS_129):
        h.storage.delete(keys)
    assert h.host.wrote_calls == []
    assert not h.path.exists()
    await h.storage.put({k: 1 for k in keys[:128]})
    assert len(await h.storage.get(keys[:128])) == 128
    assert await h.storage.delete(keys[:128]) == 128


def encoded_bytes_of_size(size: int) -> bytes:
    """A bytes value whose encoded (msgpack bin 32) size is exactly ``size``."""
    assert size > 65536 + 5
    return b"x" * (size - 5)


async def test_sqlite_key_plus_value_limit(h: Harness) -> None:
    """SQLite backend: key + encoded value up to 2 MiB passes; one byte more is SQLITE_TOOBIG."""
    limit = 2 * 1024 * 1024
    await h.storage.put("k", encoded_bytes_of_size(limit - 1))
    h.db.commit()
    with pytest.raises(StorageLimitError, match=r"^string or blob too big: SQLITE_TOOBIG$"):
        h.storage.put("k", encoded_bytes_of_size(limit))
    with pytest.raises(StorageLimitError, match=r"SQLITE_TOOBIG"):
        h.storage.put({"small": 1, "kk": encoded_bytes_of_size(limit - 1)})
    with pytest.raises(StorageLimitError, match=r"SQLITE_TOOBIG"):
        h.storage.put("k" * (limit + 1), 1)
    assert not h.db.dirty
    assert await h.storage.get("small") is None
    assert isinstance(await h.storage.get("k"), bytes)


async def test_legacy_key_size_limit(legacy: Harness) -> None:
    """Legacy KV backend: keys up to 2048 UTF-8 bytes; over it, production's message."""
    await legacy.storage.put("é" * 1024, 1)  # 2048 bytes
    message = r"^Keys cannot be larger than 2048 bytes\. A key of size 2049 was provided\.$"
    with pytest.raises(StorageLimitError, match=message):
        legacy.storage.put("é" * 1024 + "a", 1)
    with pytest.raises(StorageLimitError, match=message):
        legacy.storage.put({"ok": 1, "é" * 1024 + "a": 1})
    with pytest.raises(StorageLimitError, match=message):
        legacy.storage.delete(["ok", "é" * 1024 + "a"])
    assert await legacy.storage.get("ok") is None


async def test_legacy_value_size_limit(legacy: Harness) -> None:
    """Legacy KV backend: values up to 131072 bytes (+34 cushion, as production); message names 131072."""
    await legacy.storage.put("k", encoded_bytes_of_size(131072 + 34))
    message = r"^Values cannot be larger than 131072 bytes\. A value of size 131107 was provided\.$"
    with pytest.raises(StorageLimitError, match=message):
        legacy.storage.put("k2", encoded_bytes_of_size(131107))
    with pytest.raises(StorageLimitError, match=message):
        legacy.storage.put({"a": 1, "k2": encoded_bytes_of_size(131107)})
    assert await legacy.storage.get("a") is None


def test_limits_instances() -> None:
    """One StorageLimits per backend, with production's numbers."""
    sqlite, kv = StorageLimits.sqlite(), StorageLimits.legacy_kv()
    assert (sqlite.max_batch_keys, sqlite.max_entry_bytes, sqlite.max_key_bytes) == (
        128,
        2 * 1024 * 1024,
        None,
    )
    assert (kv.max_key_bytes, kv.max_value_bytes, kv.enforced_value_bytes) == (2048, 131072, 131106)
    assert sqlite.sql_enabled
    assert not kv.sql_enabled


# --- transactions ---------------------------------------------------------------------------------


async def test_transaction_commits_together_and_closes_the_input_gate(h: Harness) -> None:
    """The closure runs with the input gate closed; its writes stay; its result is returned."""
    seen: list[object] = []

    async def closure(txn: DurableObjectTransaction) -> str:
        seen.append((h.host.gate_depth, h.db.can_commit))
        await txn.put("a", 1)
        h.storage.put("b", 2)  # ctx.storage itself is part of the transaction on SQLite
        await trio.lowlevel.checkpoint()  # awaiting something else inside keeps the gate closed
        assert await txn.get(["a", "b"]) == {"a": 1, "b": 2}
        return "done"

    assert await h.storage.transaction(closure) == "done"
    assert seen == [(1, False)]
    assert h.host.gate_events == ["close", "open"]
    assert h.db.can_commit
    assert await h.storage.get(["a", "b"]) == {"a": 1, "b": 2}


async def test_transaction_end_tells_the_host_to_commit(h: Harness) -> None:
    """The outermost transaction's end calls wrote(), even if the closure only read."""

    async def reader(txn: DurableObjectTransaction) -> object:
        return await txn.get("a")

    async def outer(txn: DurableObjectTransaction) -> None:
        await h.storage.transaction(reader)
        assert h.host.wrote_calls == []  # not for the nested one

    assert await h.storage.transaction(reader) is None
    assert h.host.wrote_calls == [True]
    await h.storage.sync()
    assert not h.db.dirty
    h.host.wrote_calls.clear()
    await h.storage.transaction(outer)
    assert h.host.wrote_calls == [True]


async def test_transaction_rolls_back_on_exception(h: Harness) -> None:
    """An exception undoes the closure's writes (txn and storage alike) and propagates."""
    h.storage.put("before", 0)

    async def closure(txn: DurableObjectTransaction) -> None:
        await txn.put("a", 1)
        await h.storage.setAlarm(99)
        h.storage.delete("before")
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await h.storage.transaction(closure)
    assert await h.storage.get(["a", "before"]) == {"before": 0}  # earlier batch writes stay
    assert await h.storage.getAlarm() is None
    assert h.host.gate_events == ["close", "open"]
    assert h.db.can_commit


async def test_txn_rollback_discards_and_returns_the_result(h: Harness) -> None:
    """txn.rollback() undoes the writes; the closure still returns; later txn calls raise."""

    async def closure(txn: DurableObjectTransaction) -> int:
        await txn.put("a", 1)
        txn.rollback()
        txn.rollback()  # a second call does nothing
        with pytest.raises(StorageError, match=r"^Cannot put on rolled back transaction$"):
            txn.put("b", 2)
        with pytest.raises(StorageError, match=r"^Cannot get on rolled back transaction$"):
            txn.get("a")
        return 7

    assert await h.storage.transaction(closure) == 7
    assert await h.storage.list() == {}


async def test_txn_used_after_the_closure_raises(h: Harness) -> None:
    """A txn kept past its closure refuses calls with production's message."""
    kept: list[DurableObjectTransaction] = []

    async def closure(txn: DurableObjectTransaction) -> None:
        kept.append(txn)

    await h.storage.transaction(closure)
    with pytest.raises(StorageError, match=r"^Cannot call get on transaction that has already committed"):
        kept[0].get("a")
    with pytest.raises(StorageError, match=r"did you move `txn` outside of the closure\?$"):
        kept[0].rollback()


async def test_delete_all_is_refused_inside_a_transaction(h: Harness) -> None:
    """txn.deleteAll() and storage.deleteAll() inside a transaction raise production's error."""

    async def closure(txn: DurableObjectTransaction) -> None:
        await txn.put("a", 1)
        with pytest.raises(StorageError, match=r"^Cannot call deleteAll\(\) within a transaction$"):
            txn.deleteAll()
        with pytest.raises(StorageError, match=r"^Cannot call deleteAll\(\) within a transaction$"):
            h.storage.deleteAll()

    await h.storage.transaction(closure)
    assert await h.storage.get("a") == 1


async def test_nested_transactions(h: Harness) -> None:
    """An inner transaction that fails rolls back alone."""

    async def inner(txn: DurableObjectTransaction) -> None:
        await txn.put("inner", 1)
        raise ValueError("inner fails")

    async def outer(txn: DurableObjectTransaction) -> None:
        await txn.put("outer", 1)
        with pytest.raises(ValueError, match="inner fails"):
            await h.storage.transaction(inner)
        assert h.host.gate_depth == 1

    await h.storage.transaction(outer)
    assert await h.storage.list() == {"outer": 1}
    assert h.host.gate_events == ["close", "close", "open", "open"]


async def test_transactions_from_two_tasks_of_one_event_do_not_interleave(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    """Two tasks' transactions run one after the other (production runs each in a critical section)."""
    log: list[str] = []

    def closure_for(name: str) -> Callable[[DurableObjectTransaction], Awaitable[None]]:
        async def closure(txn: DurableObjectTransaction) -> None:
            log.append(f"{name} in")
            await txn.put(name, 1)
            await trio.sleep(0.01)
            log.append(f"{name} out")

        return closure

    async def run(name: str) -> None:
        await h.storage.transaction(closure_for(name))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a")
            nursery.start_soon(run, "b")
    assert log in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    assert await h.storage.get(["a", "b"]) == {"a": 1, "b": 1}
    assert h.host.gate_depth == 0


async def test_transaction_in_a_child_task_of_a_transaction_nests(
    h: Harness, autojump_clock: trio.testing.MockClock
) -> None:
    """A task started inside a closure may open a nested transaction without deadlocking."""

    async def inner(txn: DurableObjectTransaction) -> None:
        await txn.put("inner", 1)

    async def outer(txn: DurableObjectTransaction) -> None:
        await txn.put("outer", 1)

        async def child() -> None:
            await h.storage.transaction(inner)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)

    with trio.fail_after(5):
        await h.storage.transaction(outer)
    assert await h.storage.list() == {"inner": 1, "outer": 1}


async def test_cancelled_transaction_rolls_back(h: Harness, autojump_clock: trio.testing.MockClock) -> None:
    """Cancellation inside the closure rolls back and reopens the gate."""

    async def closure(txn: DurableObjectTransaction) -> None:
        await txn.put("a", 1)
        await trio.sleep_forever()

    with trio.move_on_after(0.01):
        await h.storage.transaction(closure)
    assert await h.storage.list() == {}
    assert h.host.gate_depth == 0
    assert h.db.can_commit


async def test_transaction_accepts_a_synchronous_closure(h: Harness) -> None:
    """A closure that returns a plain value works, as a non-async callback does in production."""

    def closure(txn: DurableObjectTransaction) -> int:
        txn.put("a", 1)
        return 3

    assert await h.storage.transaction(closure) == 3  # type: ignore[arg-type]
    assert await h.storage.get("a") == 1


async def test_transaction_on_a_reset_object(h: Harness) -> None:
    """A transaction awaited after a reset raises before running the closure or closing the gate."""
    h.host.reset()

    async def closure(txn: DurableObjectTransaction) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ObjectResetError):
        await h.storage.transaction(closure)
    assert h.host.gate_events == []


def test_transaction_needs_a_callable(h: Harness) -> None:
    """A non-callable is refused at the call."""
    with pytest.raises(StorageTypeError, match=r"^transaction\(\) takes a function, got int$"):
        h.storage.transaction(5)  # type: ignore[arg-type]


async def test_crash_during_a_transaction(h: Harness) -> None:
    """A reset while the closure runs discards the batch; the closure's cleanup still works."""

    async def closure(txn: DurableObjectTransaction) -> None:
        await txn.put("a", 1)
        h.host.reset()  # the actor crashes the object
        txn.put("b", 2)

    with pytest.raises(ObjectResetError):
        await h.storage.transaction(closure)
    assert h.host.gate_depth == 0
    assert not h.db.dirty
    assert h.db.can_commit
    assert h.db.kv_get("a") is None


# --- deleteAll ------------------------------------------------------------------------------------


@pytest.mark.parametrize("deletes_alarm", [True, False])
async def test_delete_all(tmp_path: Path, deletes_alarm: bool) -> None:
    """deleteAll wipes KV and user SQL objects; the alarm goes only with the compat flag."""
    h = make_harness(tmp_path / "o.sqlite", delete_all_deletes_alarm=deletes_alarm)
    await h.storage.put({"a": 1, "b": 2})
    await h.storage.setAlarm(5_000)
    conn = h.db.write_connection()
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    h.db.commit()
    h.host.alarm_changes.clear()
    await h.storage.deleteAll()
    assert await h.storage.list() == {}
    assert await h.storage.getAlarm() == (None if deletes_alarm else 5_000)
    assert h.host.alarm_changes == ([None] if deletes_alarm else [])
    assert h.host.wrote_calls[-1] is True
    reader = h.db.read_connection()
    assert reader is not None
    assert reader.execute("SELECT name FROM sqlite_master WHERE name = 'users'").fetchall() == []
    h.db.rollback()  # deleteAll is part of the batch like any write
    assert await h.storage.list() == {"a": 1, "b": 2}


async def test_delete_all_on_an_empty_object_creates_no_file(h: Harness) -> None:
    """deleteAll of an object that never wrote is a write of nothing: no file appears."""
    await h.storage.deleteAll()
    await h.storage.deleteAlarm()
    await h.storage.delete(["a", "b"])
    assert not h.path.exists()
    assert h.host.wrote_calls == [True, True, True]


# --- alarms ---------------------------------------------------------------------------------------


async def test_set_get_delete_alarm(h: Harness) -> None:
    """setAlarm stores int ms in the batch and tells the host; deleteAlarm clears it."""
    await h.storage.setAlarm(1_700_000_000_123)
    assert await h.storage.getAlarm() == 1_700_000_000_123
    await h.storage.setAlarm(1_700_000_000_999.9)  # fractions of a ms are dropped
    assert await h.storage.getAlarm() == 1_700_000_000_999
    await h.storage.deleteAlarm()
    assert await h.storage.getAlarm() is None
    assert h.host.alarm_changes == [1_700_000_000_123, 1_700_000_000_999, None]
    assert h.host.wrote_calls == [True, True, True]


async def test_set_alarm_in_the_past_stores_now(tmp_path: Path) -> None:
    """With a clock, a past alarm time is stored as now (production's max(time, Date.now()))."""
    from runtime.storage import DurableObjectStorage

    h = make_harness(tmp_path / "o.sqlite")
    storage = DurableObjectStorage(
        h.db, h.host, StorageLimits.sqlite(), compat_delete_all_deletes_alarm=True, now_ms=lambda: 5_000.7
    )
    await storage.setAlarm(10)
    assert await storage.getAlarm() == 5_000
    await storage.setAlarm(9_000)
    assert await storage.getAlarm() == 9_000
    assert h.host.alarm_changes == [5_000, 9_000]


async def test_set_alarm_from_an_aware_datetime(h: Harness) -> None:
    """An aware datetime becomes ms since the epoch (microseconds truncated)."""
    when = dt.datetime(2026, 11, 24, 8, 0, 0, 123_999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    await h.storage.setAlarm(when)
    expected = int(when.timestamp() * 1000)
    assert await h.storage.getAlarm() == expected
    assert expected % 1000 == 123


@pytest.mark.parametrize(
    ("time", "message"),
    [
        (0, r"^setAlarm\(\) cannot be called with an alarm time <= 0$"),
        (-5, r"^setAlarm\(\) cannot be called with an alarm time <= 0$"),
        (0.5, r"^setAlarm\(\) cannot be called with an alarm time <= 0$"),
        (float("nan"), r"must be a finite number of milliseconds, got nan"),
        (float("inf"), r"must be a finite number of milliseconds, got inf"),
        (8_640_000_000_000_001, r"after the latest date a JavaScript Date can hold"),
        (dt.datetime(2026, 1, 1), r"naive datetime 2026-01-01 00:00:00; attach a timezone"),
        (True, r"takes milliseconds since the epoch \(int or float\) or a timezone-aware datetime, got bool"),
        ("1700000000000", r"got str$"),
        (dt.date(2026, 1, 1), r"got date$"),
        (None, r"got NoneType$"),
    ],
)
def test_set_alarm_refuses_bad_times(h: Harness, time: object, message: str) -> None:
    """Non-numbers, naive datetimes, non-positive and out-of-range times are TypeErrors."""
    with pytest.raises(StorageTypeError, match=message):
        h.storage.setAlarm(time)
    assert h.host.alarm_changes == []
    assert not h.path.exists()


async def test_alarm_commits_atomically_with_the_batch(h: Harness) -> None:
    """The alarm is lost with a rolled-back batch and kept with a committed one."""
    await h.storage.setAlarm(1000)
    h.storage.put("k", 1)
    h.db.rollback()
    assert await h.storage.getAlarm() is None
    await h.storage.setAlarm(2000)
    h.db.commit()
    h.db.close()
    assert await h.reopen().storage.getAlarm() == 2000


# --- sync and failed commits ------------------------------------------------------------------------


async def test_sync_waits_for_durability(h: Harness) -> None:
    """sync() awaits the host's wait_durable (which, in the fake, commits)."""
    h.storage.put("k", 1, {"allowUnconfirmed": True})
    await h.storage.sync()
    assert h.host.durable_waits == 1
    assert not h.db.dirty


async def test_failed_commit_surfaces_and_loses_the_batch(h: Harness) -> None:
    """A failed flush raises StorageError through sync() and the batch's writes are gone."""
    await h.storage.put("k", "old")
    await h.storage.sync()
    h.storage.put("k", "new")
    h.db.fail_next_commit()
    with pytest.raises(StorageError, match="fault injection"):
        await h.storage.sync()
    assert await h.storage.get("k") == "old"


async def test_connections_reopen_transparently_after_eviction(tmp_path: Path) -> None:
    """With a pool of one, objects take turns holding the connection without noticing."""
    from runtime.storage import ConnectionPool

    pool = ConnectionPool(max_open=1)
    a = make_harness(tmp_path / "a.sqlite", pool)
    b = make_harness(tmp_path / "b.sqlite", pool)
    await a.storage.put("k", "a")
    await a.storage.sync()
    await b.storage.put("k", "b")
    await b.storage.sync()
    assert await a.storage.get("k") == "a"
    assert await b.storage.get("k") == "b"
    stats = pool.statistics()
    assert stats.evicted_total >= 2
    assert stats.open == 1


# --- sync KV --------------------------------------------------------------------------------------


def test_sync_kv_api(h: Harness) -> None:
    """kv.get/put/delete/list act at once and return plain values; list yields (key, value) pairs."""
    kv = h.storage.kv
    kv.put("b", 2)
    kv.put("a", {"x": 1})
    kv.put("c", 3)
    assert kv.get("a") == {"x": 1}
    assert kv.get("zz") is None
    pairs = kv.list()
    assert not isinstance(pairs, list)
    assert list(pairs) == [("a", {"x": 1}), ("b", 2), ("c", 3)]
    assert list(kv.list({"reverse": True, "limit": 2})) == [("c", 3), ("b", 2)]
    assert list(kv.list({"prefix": "b"})) == [("b", 2)]
    assert list(kv.list({"startAfter": "a", "end": "c"})) == [("b", 2)]
    assert kv.delete("a") is True
    assert kv.delete("a") is False
    assert h.host.wrote_calls == [True, True, True, True, True]


def test_sync_kv_refuses_async_only_options(h: Harness) -> None:
    """kv.list takes only the range options."""
    with pytest.raises(StorageTypeError, match=r"^kv\.list\(\) got an unknown option 'noCache'"):
        h.storage.kv.list({"noCache": True})


def test_sync_kv_is_sqlite_only(legacy: Harness) -> None:
    """ctx.storage.kv on a KV-backed class raises."""
    with pytest.raises(StorageError, match=r"only available on SQLite-backed Durable Objects"):
        legacy.storage.kv  # noqa: B018


async def test_sync_and_async_apis_share_one_batch(h: Harness) -> None:
    """A kv.put is seen by storage.get in the same turn and vice versa."""
    h.storage.kv.put("a", 1)
    h.storage.put("b", 2)
    assert await h.storage.get("a") == 1
    assert h.storage.kv.get("b") == 2


# --- observability --------------------------------------------------------------------------------


async def test_statistics(h: Harness) -> None:
    """Counters for reads, writes, deletes, bytes and commits."""
    await h.storage.put({"ab": b"12345", "c": 1})
    await h.storage.get(["ab", "zz"])
    await h.storage.list()
    await h.storage.delete(["c", "zz"])
    await h.storage.sync()
    stats = h.storage.statistics()
    assert stats.writes == 2
    assert stats.reads == 2 + 2
    assert stats.deletes == 2
    # "ab" + bin8 header (2) + 5 bytes; "c" + one-byte int
    assert stats.bytes_written == (2 + 7) + (1 + 1)
    assert stats.bytes_read == (2 + 7) + (2 + 7) + (1 + 1)
    assert stats.commits == 1


async def test_failed_commit_is_logged(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Commit failures are logged on the shardsim.storage logger."""
    h.storage.put("k", 1)
    h.db.fail_next_commit("no space")
    with caplog.at_level("WARNING", logger="shardsim.storage"), pytest.raises(StorageError):
        h.db.commit()
    assert any("no space" in r.getMessage() for r in caplog.records)


def test_result_repr(h: Harness) -> None:
    """Awaitables say what they hold."""
    assert repr(h.storage.put("k", 1)) == "<StorageResult None>"
    assert repr(h.storage.sync()) == "<DeferredStorageCall sync() awaited=False>"


# --- list() against a model -----------------------------------------------------------------------

_SPECIAL = ["a", "b", "é", "\x00", "\x7f", "\ud7ff", "\ue000", "\uffff", "😀", "\U0010ffff"]
_key_text = st.text(
    alphabet=st.one_of(st.sampled_from(_SPECIAL), st.characters(exclude_categories=["Cs"])), max_size=4
)


def resolved(awaitable: object) -> object:
    """The value of a storage awaitable, proving that awaiting it never suspends."""
    gen = awaitable.__await__()  # type: ignore[attr-defined]
    try:
        next(gen)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("a storage await suspended")


def model_list(keys: set[str], options: dict[str, object]) -> list[str]:
    """What list() must return, computed on UTF-8 bytes independently of the engine."""

    def b(s: object) -> bytes:
        assert isinstance(s, str)
        return s.encode("utf-8")

    out = sorted(keys, key=b)
    if options.get("start") is not None:
        out = [k for k in out if b(k) >= b(options["start"])]
    if options.get("startAfter") is not None:
        out = [k for k in out if b(k) > b(options["startAfter"])]
    if options.get("end") is not None:
        out = [k for k in out if b(k) < b(options["end"])]
    if options.get("prefix") is not None:
        out = [k for k in out if b(k).startswith(b(options["prefix"]))]
    if options.get("reverse"):
        out.reverse()
    limit = options.get("limit")
    if isinstance(limit, int):
        out = out[:limit]
    return out


@pytest.fixture(scope="module")
def model_harness(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    """One database for every example of the model test (module-scoped: hypothesis reuses it)."""
    return make_harness(tmp_path_factory.mktemp("model") / "o.sqlite")


@settings(max_examples=300, deadline=None)
@given(
    keys=st.sets(_key_text, max_size=12),
    start=st.none() | _key_text,
    start_after=st.none() | _key_text,
    end=st.none() | _key_text,
    prefix=st.none() | _key_text,
    reverse=st.booleans(),
    limit=st.none() | st.integers(min_value=1, max_value=6),
)
def test_list_matches_a_model(
    model_harness: Harness,
    keys: set[str],
    start: str | None,
    start_after: str | None,
    end: str | None,
    prefix: str | None,
    reverse: bool,
    limit: int | None,
) -> None:
    """For any keys and options, list() and kv.list() return exactly the model's keys, in order."""
    if start is not None and start_after is not None:
        start_after = None
    options: dict[str, object] = {
        "start": start,
        "startAfter": start_after,
        "end": end,
        "prefix": prefix,
        "reverse": reverse,
        "limit": limit,
    }
    h = model_harness
    try:
        resolved(h.storage.put({k: k for k in keys}))
        expected = model_list(keys, options)
        listed = resolved(h.storage.list(options))
        assert isinstance(listed, dict)
        assert list(listed) == expected
        assert [k for k, _ in h.storage.kv.list(options)] == expected
        got = resolved(h.storage.get(sorted(keys)))
        assert isinstance(got, dict)
        assert list(got) == model_list(keys, {})
    finally:
        h.db.rollback()  # nothing is ever committed: each example starts empty
