"""The SDK's RPC conversions (``python_to_rpc`` / ``python_from_rpc``), one test per rule, and RPC through stubs.

Production's Python SDK converts every value that crosses Workers RPC (and
``ctx.storage``): :func:`python_from_rpc` on what arrives from JavaScript,
:func:`python_to_rpc` on what Python hands to it. An RPC method of a Python
Durable Object gets its arguments through the first and returns through the
second; a Python caller's stub does the reverse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from runtime import open_runtime
from runtime.pyworkers import JsProxy, to_javascript, to_python
from runtime.pyworkers._ffi import (
    JSArrayBuffer,
    JSError,
    JsException,
    JSFunction,
    JSMap,
    JSSet,
    JSUint8Array,
    PyProxy,
    jsnull,
)
from runtime.pyworkers._sdk import JsDict, Request, Response, python_from_rpc, python_to_rpc
from tests.runtime.conftest import config

from .helpers import worker_module


def from_js(js: Any) -> Any:
    """``python_from_rpc`` of a JavaScript value, as Pyodide hands it to Python."""
    return python_from_rpc(to_python(js))


def raw(value: Any) -> Any:
    """The JavaScript value ``python_to_rpc`` made of ``value``."""
    return to_javascript(python_to_rpc(value))


class Later:
    """An awaitable that is no coroutine (nothing to close when it is refused)."""

    def __await__(self) -> Iterator[None]:
        return iter(())


# -- python_to_rpc / python_from_rpc, rule by rule ---------------------------------------------


def test_none_is_null_and_null_or_undefined_is_none() -> None:
    assert python_to_rpc(None) is jsnull
    assert from_js(jsnull) is None
    assert from_js(None) is None  # undefined


@pytest.mark.parametrize("value", [True, False])
def test_a_bool_is_a_bool_both_ways(value: bool) -> None:
    assert python_to_rpc(value) is value
    assert from_js(value) is value


def test_an_int_is_a_number_and_an_integral_number_is_an_int() -> None:
    assert python_to_rpc(3) == 3
    assert from_js(3) == 3
    assert type(from_js(3.0)) is int
    assert from_js(-7.0) == -7


def test_a_float_is_a_number_and_reads_back_as_an_int_when_integral() -> None:
    assert python_to_rpc(2.5) == 2.5
    assert type(from_js(2.5)) is float
    # 5.0 is the JavaScript number 5: Python sees an int, as production does.
    five = python_to_rpc(5.0)
    assert five == 5
    assert type(five) is int


def test_a_str_is_a_string_both_ways() -> None:
    assert python_to_rpc("héllo") == "héllo"
    assert from_js("héllo") == "héllo"


def test_bytes_are_a_uint8array_and_buffers_arrive_as_memoryviews() -> None:
    js = python_to_rpc(b"\x00ab")
    assert isinstance(js, JsProxy)
    assert js.constructor.name == "Uint8Array"
    assert js.to_bytes() == b"\x00ab"
    assert type(raw(memoryview(b"mv"))) is JSUint8Array
    arrived = from_js(JSUint8Array(b"\x01\x02"))
    assert type(arrived) is memoryview
    assert bytes(arrived) == b"\x01\x02"
    assert bytes(from_js(JSArrayBuffer(b"ab"))) == b"ab"


def test_an_aware_datetime_is_a_date_at_the_same_instant() -> None:
    when = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    date = python_to_rpc(when)
    assert date.constructor.name == "Date"
    assert date.getTime() == when.timestamp() * 1000
    assert date.toISOString() == "2026-03-01T10:30:00.000Z"


def test_a_naive_datetime_is_a_date_in_local_time() -> None:
    # As the SDK's Date.new(obj.timestamp() * 1000): a naive datetime is local time.
    when = dt.datetime(2026, 3, 1, 12, 30)
    assert python_to_rpc(when).getTime() == when.timestamp() * 1000


def test_a_date_arrives_as_a_naive_local_datetime() -> None:
    when = dt.datetime(2026, 3, 1, 10, 30, 0, 250_000, tzinfo=dt.UTC)
    arrived = from_js(when)  # a JavaScript Date
    assert type(arrived) is dt.datetime
    assert arrived.tzinfo is None
    assert arrived == dt.datetime.fromtimestamp(when.timestamp())
    assert from_js([when]) == [dt.datetime.fromtimestamp(when.timestamp())]


def test_lists_are_arrays_with_none_as_null_at_any_depth() -> None:
    assert raw([1, None, [None, "x"]]) == [1, jsnull, [jsnull, "x"]]
    arrived = from_js([1, jsnull, [jsnull, None], "x"])
    assert arrived == [1, None, [None, None], "x"]
    assert type(arrived) is list


def test_dicts_are_plain_objects_with_none_as_null_at_any_depth() -> None:
    js = python_to_rpc({"a": {"b": None, "c": [None, {"d": 1}]}})
    assert js.constructor.name == "Object"  # not a Map: the SDK converts with Object.fromEntries
    assert to_javascript(js) == {"a": {"b": jsnull, "c": [jsnull, {"d": 1}]}}
    # Keys become strings, as Object.fromEntries makes them.
    assert raw({1: "one", "two": 2}) == {"1": "one", "two": 2}


def test_objects_and_maps_arrive_as_js_dicts_at_any_depth() -> None:
    arrived = from_js({"a": {"b": jsnull}, "list": [{"c": 1}], "map": JSMap({"k": jsnull})})
    assert arrived == {"a": {"b": None}, "list": [{"c": 1}], "map": {"k": None}}
    assert type(arrived) is JsDict
    assert type(arrived["a"]) is JsDict
    assert type(arrived["list"][0]) is JsDict
    assert type(arrived["map"]) is JsDict
    assert type(from_js(JSMap({"k": 1}))) is JsDict


def test_a_js_dict_reads_and_writes_its_keys_as_attributes() -> None:
    arrived = from_js({"user": {"name": "ada"}, "items": 3})
    assert arrived.user.name == "ada"
    arrived.user.name = "grace"
    assert arrived["user"] == {"name": "grace"}
    with pytest.raises(AttributeError, match=r"^missing$"):
        _ = arrived.missing
    # dict's own attributes win over keys of the same name (the SDK's trade-off).
    assert callable(arrived.items)
    assert arrived["items"] == 3


def test_a_round_trip_gives_the_value_back() -> None:
    value = {"n": 1, "f": 2.5, "s": "x", "none": None, "list": [True, None, {"deep": [1]}]}
    assert python_from_rpc(python_to_rpc(value)) == value


def test_other_javascript_values_pass_through_both_ways() -> None:
    js_fn = JSFunction("f", lambda: 1)
    fn = to_python(js_fn)
    assert isinstance(fn, JsProxy)
    assert from_js(js_fn) == fn
    assert from_js([js_fn]) == [fn]
    assert python_to_rpc(fn) == fn
    assert raw({"fn": fn})["fn"] is js_fn


def test_a_response_and_a_request_arrive_as_the_sdks_classes_and_go_back_as_they_came() -> None:
    js_response = Response("hi").js_object
    arrived = from_js(to_javascript(js_response))
    assert isinstance(arrived, Response)
    assert arrived.js_object == js_response
    assert python_to_rpc(arrived) == js_response
    request = Request("http://worker.test/")
    arrived_request = from_js(to_javascript(request.js_object))
    assert isinstance(arrived_request, Request)
    assert arrived_request.url == "http://worker.test/"
    assert python_to_rpc(request) == request.js_object


def test_an_exception_is_a_javascript_error() -> None:
    js = python_to_rpc(ValueError("bad input"))
    assert isinstance(js, JsException)
    assert (js.name, js.message) == ("Error", "bad input")
    nested = raw({"error": KeyError("k")})["error"]
    assert isinstance(nested, JSError)
    assert (nested.name, nested.message) == ("Error", "'k'")
    # A JsException is a JavaScript error already: it passes as the same error object.
    thrown = JsException("TypeError", "t")
    assert python_to_rpc(thrown) == thrown


def test_an_error_arrives_as_an_exception_and_other_errors_as_js_exceptions() -> None:
    arrived = from_js(JSError("Error", "boom"))
    assert type(arrived) is Exception
    assert arrived.args == ("Error: boom",)
    assert type(python_from_rpc(python_to_rpc(ValueError("bad")))) is Exception
    # The SDK converts only a plain Error (constructor.name == "Error"); a TypeError stays a JsException.
    type_error = from_js({"e": JSError("TypeError", "t")})["e"]
    assert isinstance(type_error, JsException)
    assert (type_error.name, type_error.message) == ("TypeError", "t")


def test_a_callable_becomes_a_persistent_proxy() -> None:
    def callback(x: int) -> int:
        return x + 1

    converted = python_to_rpc(callback)
    assert converted.unwrap() is callback
    kept: list[PyProxy] = []
    keep = to_python(JSFunction("keep", kept.append))
    keep(converted)
    # Not a borrowed proxy: JavaScript may call it after the call that got it returned.
    assert not kept[0].borrowed
    assert kept[0].call(1) == 2
    nested = raw([callback])[0]
    assert type(nested) is PyProxy
    assert not nested.borrowed
    assert nested.obj is callback


def test_a_set_is_a_javascript_set_not_refused() -> None:
    js = python_to_rpc({1, 2})
    assert js.constructor.name == "Set"
    assert sorted(to_javascript(js)) == [1, 2]
    assert from_js(JSSet([1, 2])) == {1, 2}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((1, 2), r"^<class 'tuple'> cannot be sent over RPC\.$"),
        (bytearray(b"x"), r"^<class 'bytearray'> cannot be sent over RPC\.$"),
        ([1, [(1, 2)]], r"^<class 'tuple'> cannot be sent over RPC\.$"),
        ({"a": {"b": bytearray()}}, r"^<class 'bytearray'> cannot be sent over RPC\.$"),
        ({(1, 2)}, r"^<class 'tuple'> cannot be sent over RPC\.$"),
        (
            Later(),
            r"^Awaitable <class 'tests\.runtime\.pyworkers\.test_rpc\.Later'> cannot be sent over RPC\.$",
        ),
        (
            [Later()],
            r"^Awaitable <class 'tests\.runtime\.pyworkers\.test_rpc\.Later'> cannot be sent over RPC\.$",
        ),
    ],
    ids=[
        "tuple",
        "bytearray",
        "nested tuple",
        "nested bytearray",
        "tuple in a set",
        "awaitable",
        "nested awaitable",
    ],
)
def test_what_the_sdk_refuses(value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        python_to_rpc(value)


def test_a_coroutine_is_refused_as_an_awaitable() -> None:
    async def work() -> None:
        pass  # pragma: no cover - never run

    coro = work()
    try:
        with pytest.raises(TypeError, match=r"^Awaitable <class 'coroutine'> cannot be sent over RPC\.$"):
            python_to_rpc(coro)
    finally:
        coro.close()


def test_cycles_exhaust_the_recursion_limit_as_in_the_sdk() -> None:
    # The SDK replaces None / null recursively before converting, with no cycle check: production
    # raises RecursionError both ways, and so does this.
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(RecursionError):
        python_to_rpc(looped)
    self_ref: dict[str, Any] = {}
    self_ref["self"] = self_ref
    with pytest.raises(RecursionError):
        python_to_rpc(self_ref)
    js_looped: list[Any] = []
    js_looped.append(js_looped)
    with pytest.raises(RecursionError):
        from_js(js_looped)


# -- RPC through stubs -------------------------------------------------------------------------

RPC_WORKER = """
import datetime

from workers import DurableObject


class Later:
    def __await__(self):
        return 1
        yield


def describe(value):
    if isinstance(value, memoryview):
        return ["memoryview", bytes(value)]
    if isinstance(value, datetime.datetime):
        return ["datetime", value.tzinfo is None, value.timestamp()]
    if isinstance(value, dict):
        return [type(value).__name__, {k: describe(v) for k, v in value.items()}]
    if isinstance(value, list):
        return ["list", [describe(v) for v in value]]
    return [type(value).__name__, value]


RESULTS = {
    "none": lambda: None,
    "bytes": lambda: b"ab",
    "memoryview": lambda: memoryview(b"mv"),
    "naive": lambda: datetime.datetime(2026, 3, 1, 12, 30),
    "aware": lambda: datetime.datetime(2026, 3, 1, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    "nested": lambda: {"a": [None, {"b": None}], "n": 5.0},
    "object": lambda: object(),
    "tuple": lambda: (1, 2),
    "awaitable": lambda: Later(),
}


class Callee(DurableObject):
    async def describe(self, *values):
        return [describe(v) for v in values]

    async def attributes(self, value):
        return [value.user.name, value.tags[0].label, type(value.tags[0]).__name__]

    async def give(self, what):
        return RESULTS[what]()


class Caller(DurableObject):
    async def send_all(self):
        callee = self.env.CALLEE.getByName("c")
        return await callee.describe(
            None, True, 3, 2.5, 5.0, "s", b"ab",
            datetime.datetime(2026, 3, 1, 10, 30, tzinfo=datetime.UTC),
            [1, None, [None]], {"a": {"b": None}},
        )

    async def receive(self, what):
        return describe(await self.env.CALLEE.getByName("c").give(what))

    async def receive_error(self, what):
        try:
            await self.env.CALLEE.getByName("c").give(what)
        except Exception as exc:
            return [type(exc).__name__, getattr(exc, "name", None), str(exc)]

    async def send_tuple(self):
        await self.env.CALLEE.getByName("c").describe((1, 2))

    async def keywords(self):
        await self.env.CALLEE.getByName("c").describe(1, tags=["x"], limit=2)
"""

WHEN = dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.UTC)


async def test_arguments_from_a_caller_arrive_through_python_from_rpc(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, RPC_WORKER) as mod:
        async with open_runtime(objects={"CALLEE": mod.Callee}, config=config()) as rt:
            got = await rt.env.CALLEE.getByName("c").describe(
                True, 3, 2.5, 5.0, "s", b"ab", WHEN, [1, None, [None]], {"a": {"b": None}}, [{"c": 1}]
            )
    assert got == [
        ["bool", True],
        ["int", 3],
        ["float", 2.5],
        ["int", 5],
        ["str", "s"],
        ["memoryview", b"ab"],
        ["datetime", True, WHEN.timestamp()],  # naive, local time: the same instant
        ["list", [["int", 1], ["NoneType", None], ["list", [["NoneType", None]]]]],
        ["JsDict", {"a": ["JsDict", {"b": ["NoneType", None]}]}],
        ["list", [["JsDict", {"c": ["int", 1]}]]],
    ]


async def test_dict_arguments_read_as_attributes(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, RPC_WORKER) as mod:
        async with open_runtime(objects={"CALLEE": mod.Callee}, config=config()) as rt:
            value = {"user": {"name": "ada"}, "tags": [{"label": "x"}]}
            assert await rt.env.CALLEE.getByName("c").attributes(value) == ["ada", "x", "JsDict"]


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("none", None),
        ("bytes", b"ab"),
        ("memoryview", b"mv"),
        ("naive", dt.datetime(2026, 3, 1, 12, 30).astimezone(dt.UTC)),
        ("aware", dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.UTC)),
        ("nested", {"a": [None, {"b": None}], "n": 5}),
    ],
)
async def test_results_leave_through_python_to_rpc(
    tmp_path, autojump_clock, what: str, expected: Any
) -> None:
    with worker_module(tmp_path, RPC_WORKER) as mod:
        async with open_runtime(objects={"CALLEE": mod.Callee}, config=config()) as rt:
            result = await rt.env.CALLEE.getByName("c").give(what)
    assert result == expected
    assert type(result) is type(expected)


async def test_a_python_caller_gets_what_both_conversions_make(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, RPC_WORKER) as mod:
        async with open_runtime(objects={"CALLEE": mod.Callee, "CALLER": mod.Caller}, config=config()) as rt:
            caller = rt.env.CALLER.getByName("x")
            assert await caller.send_all() == [
                ["NoneType", None],
                ["bool", True],
                ["int", 3],
                ["float", 2.5],
                ["int", 5],
                ["str", "s"],
                ["memoryview", b"ab"],
                ["datetime", True, WHEN.timestamp()],
                ["list", [["int", 1], ["NoneType", None], ["list", [["NoneType", None]]]]],
                ["JsDict", {"a": ["JsDict", {"b": ["NoneType", None]}]}],
            ]
            assert await caller.receive("none") == ["NoneType", None]
            assert await caller.receive("bytes") == ["memoryview", b"ab"]
            naive = dt.datetime(2026, 3, 1, 12, 30)
            assert await caller.receive("naive") == ["datetime", True, naive.timestamp()]
            assert await caller.receive("aware") == ["datetime", True, WHEN.timestamp()]
            assert await caller.receive("nested") == [
                "JsDict",
                {
                    "a": ["list", [["NoneType", None], ["JsDict", {"b": ["NoneType", None]}]]],
                    "n": ["int", 5],
                },
            ]


UNCLONEABLE = (
    r"^the handler's result: the value, a Python object, reaches JavaScript as a PyProxy \(Pyodide "
    r"converts only str, int, float, bool and None by itself\); structured clone cannot copy it "
    r"\(DataCloneError: could not be cloned\)\. "
)


async def test_a_result_production_cannot_serialize_is_refused(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, RPC_WORKER) as mod:
        async with open_runtime(objects={"CALLEE": mod.Callee, "CALLER": mod.Caller}, config=config()) as rt:
            callee = rt.env.CALLEE.getByName("c")
            with pytest.raises(TypeError, match=UNCLONEABLE):
                await callee.give("object")
            with pytest.raises(TypeError, match=r"^<class 'tuple'> cannot be sent over RPC\.$"):
                await callee.give("tuple")
            with pytest.raises(
                TypeError, match=r"^Awaitable <class 'worker_under_test\.Later'> cannot be sent over RPC\.$"
            ):
                await callee.give("awaitable")
            # A Python caller sees the refusal as the JavaScript TypeError its await throws.
            name, js_name, message = await rt.env.CALLER.getByName("x").receive_error("object")
            assert (name, js_name) == ("JsException", "TypeError")
            assert message.startswith("TypeError: the handler's result: the value, a Python object, ")


async def test_an_argument_the_sdk_refuses_is_refused_at_the_call(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, RPC_WORKER) as mod:
        async with open_runtime(objects={"CALLEE": mod.Callee, "CALLER": mod.Caller}, config=config()) as rt:
            with pytest.raises(TypeError, match=r"^<class 'tuple'> cannot be sent over RPC\.$"):
                await rt.env.CALLER.getByName("x").send_tuple()


async def test_rpc_keyword_arguments_are_refused_with_the_whole_explanation(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, RPC_WORKER) as mod:
        async with open_runtime(objects={"CALLEE": mod.Callee, "CALLER": mod.Caller}, config=config()) as rt:
            with pytest.raises(TypeError) as info:
                await rt.env.CALLER.getByName("x").keywords()
    assert str(info.value) == (
        "RPC method describe() got keyword arguments (limit, tags). Production's Python SDK would pass "
        "them to the remote method as one trailing object argument (a dict), which shardsim refuses on "
        "purpose: pass the values positionally, or one dict argument if you want names"
    )
