"""The ``js`` module's globals, one test per behaviour, checked against production (workerd, Pyodide 0.28).

Covers runtime/pyworkers/_js.py (``console``, ``JSON``, ``Object``, ``Array``,
``Promise``, ``Uint8Array``/``ArrayBuffer``, ``Date``, ``URL``, ``Headers``,
``Response``, ``Request``, the timers, ``WebSocketPair``, and the names it does
not emulate) and the proxies Python code holds of them (_ffi.py, _hosts.py).
A value JavaScript would throw at reaches Python as a ``JsException`` whose
``name`` is the JavaScript error's.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

import pytest
import trio

from runtime import RemoteError, open_runtime
from runtime.pyworkers import NotEmulatedError, installed, shim_module
from runtime.pyworkers._ffi import (
    JsArray,
    JsBuffer,
    JsException,
    JsMap,
    JsProxy,
    create_proxy,
    jsnull,
    to_js,
)
from shards import ShardsError
from tests.runtime.conftest import EPOCH_MS, config

from .helpers import worker_module

js: Any = shim_module("js")

#: What every refusal of a Python value passed without conversion says.
PYPROXY = (
    r"reaches JavaScript as a PyProxy \(Pyodide converts only str, int, float, bool and None by itself\)"
)


def obj(value: dict[str, Any]) -> Any:
    """A plain JavaScript object, the way Worker code makes one."""
    return to_js(value, dict_converter=js.Object.fromEntries)


def raises_js(name: str, message: str) -> Any:
    """``pytest.raises`` for a JavaScript error: a JsException named ``name``, its message matching ``message``."""
    return pytest.raises(JsException, match=rf"^{name}: {message}")


# -- console ---------------------------------------------------------------------------------------


@pytest.fixture
def console_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="shardsim.console")
    return caplog


def console_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "shardsim.console"]


@pytest.mark.parametrize(
    ("method", "level"),
    [
        ("log", logging.INFO),
        ("info", logging.INFO),
        ("debug", logging.DEBUG),
        ("warn", logging.WARNING),
        ("error", logging.ERROR),
    ],
)
def test_each_console_method_writes_at_its_level(console_log, method: str, level: int) -> None:
    assert getattr(js.console, method)("hello", method) is None
    assert console_lines(console_log) == [(level, f"hello {method}")]


def test_console_writes_primitives_as_javascript_prints_them(console_log) -> None:
    js.console.log("text", 1, 1.5, 2.0, True, False, None, jsnull)
    js.console.log()
    assert console_lines(console_log) == [
        (logging.INFO, "text 1 1.5 2 true false undefined null"),
        (logging.INFO, ""),
    ]


def test_console_writes_javascript_objects_and_arrays_as_json(console_log) -> None:
    js.console.log(obj({"a": 1, "b": [1, 2.0]}), to_js([1, "x", None]), to_js({"a": 1}))
    js.console.log("with", kw=1)  # keyword arguments are one trailing object
    assert console_lines(console_log) == [
        (logging.INFO, '{"a":1,"b":[1,2]} [1,"x",null] [object Map]'),
        (logging.INFO, 'with {"kw":1}'),
    ]


def test_console_writes_python_values_passed_as_proxies_by_their_repr(console_log) -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    js.console.warn([1, 2], {"a": (1,)}, Thing(), create_proxy(Thing()))
    assert console_lines(console_log) == [(logging.WARNING, "[1, 2] {'a': (1,)} <thing> <thing>")]


# -- JSON ------------------------------------------------------------------------------------------


def test_json_round_trips_a_converted_object() -> None:
    data = {"s": "é", "n": 1, "f": 1.5, "t": True, "none": None, "list": [1, [2]], "nested": {"k": "v"}}
    text = js.JSON.stringify(obj(data))
    assert (
        text == '{"s":"é","n":1,"f":1.5,"t":true,"list":[1,[2]],"nested":{"k":"v"}}'
    )  # undefined is dropped
    assert js.JSON.parse(text).to_py() == {k: v for k, v in data.items() if v is not None}


def test_json_parse_gives_javascript_values() -> None:
    parsed = js.JSON.parse('{"a": [1, null, 2.5], "b": {"c": "d"}}')
    assert isinstance(parsed, JsProxy)
    assert parsed.constructor.name == "Object"
    assert isinstance(parsed.a, JsArray)
    assert parsed.a[1] is jsnull  # null is jsnull, not None
    assert parsed.b.c == "d"
    assert parsed.to_py() == {"a": [1, jsnull, 2.5], "b": {"c": "d"}}
    assert js.JSON.parse("3") == 3
    assert js.JSON.parse('"s"') == "s"
    assert js.JSON.parse("true") is True
    assert js.JSON.parse("null") is jsnull


def test_json_parse_reads_numbers_as_javascript_numbers() -> None:
    assert type(js.JSON.parse("2.0")) is int  # an integral number is an int in Python
    big = js.JSON.parse("12345678901234567890")
    assert type(big) is float  # beyond Number.MAX_SAFE_INTEGER: a double, not an exact int
    assert big == 12345678901234567890.0
    assert js.JSON.parse("[9007199254740991]").to_py() == [9007199254740991]


@pytest.mark.parametrize("text", ["{bad", "", "NaN", "Infinity", "-Infinity", "[1,]", None])
def test_json_parse_throws_a_syntax_error_for_what_is_not_json(text: str | None) -> None:
    with raises_js("SyntaxError", r"JSON\.parse: ") as info:
        js.JSON.parse(text)
    assert info.value.name == "SyntaxError"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (1.5, "1.5"),
        (math.nan, "null"),
        (math.inf, "null"),
        (2**53 - 1, "9007199254740991"),
    ],
    ids=repr,
)
def test_json_stringify_writes_numbers_as_javascript_does(value: float, expected: str) -> None:
    assert js.JSON.stringify(value) == expected
    assert js.JSON.stringify(to_js([value])) == f"[{expected}]"


def test_json_stringify_of_what_json_cannot_hold() -> None:
    assert js.JSON.stringify(None) is None  # undefined
    assert js.JSON.stringify(js.Date.now) is None  # a function
    assert js.JSON.stringify(jsnull) == "null"
    assert js.JSON.stringify(obj({"u": None, "f": js.Date.now, "k": 1})) == '{"k":1}'
    assert js.JSON.stringify(to_js([None, js.Date.now])) == "[null,null]"
    assert js.JSON.stringify(to_js({"a": 1})) == "{}"  # a Map has no own properties
    assert js.JSON.stringify(to_js({1, 2})) == "{}"
    assert js.JSON.stringify(to_js(b"ab")) == '{"0":97,"1":98}'
    assert js.JSON.stringify(js.Date.new(0)) == '"1970-01-01T00:00:00.000Z"'
    assert js.JSON.stringify(js.URL.new("https://e.com/a?b")) == '"https://e.com/a?b"'  # URL.toJSON
    assert js.JSON.stringify(js.Headers.new()) == "{}"


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        (2, '{\n  "a": [\n    1\n  ]\n}'),
        (2.9, '{\n  "a": [\n    1\n  ]\n}'),
        ("--", '{\n--"a": [\n----1\n--]\n}'),
        (0, '{"a":[1]}'),
        ("", '{"a":[1]}'),
        (None, '{"a":[1]}'),
        (20, '{\n          "a": [\n                    1\n          ]\n}'),
    ],
    ids=repr,
)
def test_json_stringify_indents_as_javascript_does(space: Any, expected: str) -> None:
    assert js.JSON.stringify(obj({"a": [1]}), None, space) == expected


@pytest.mark.parametrize("value", [{"a": 1}, [1], (1,), b"x"], ids=repr)
def test_json_stringify_refuses_a_python_value_passed_without_conversion(value: Any) -> None:
    kind = type(value).__name__
    with raises_js(
        "TypeError",
        rf"JSON\.stringify\(\): the value, a Python {kind}, {PYPROXY}; JavaScript does not see its items and "
        r"writes no data for it\. Use json\.dumps\(value\) in Python, or convert it with to_js first \[.*"
        r"test_js_globals\.py:\d+",
    ):
        js.JSON.stringify(value)


def test_json_stringify_refuses_a_python_object_inside_a_converted_one() -> None:
    with raises_js("TypeError", rf"JSON\.stringify\(\): the value, a Python object, {PYPROXY}"):
        js.JSON.stringify(to_js({"a": [object()]}, dict_converter=js.Object.fromEntries))


# -- Object ----------------------------------------------------------------------------------------


def test_object_from_entries_as_the_dict_converter_makes_plain_objects() -> None:
    made = obj({"a": 1, "nested": {"b": [1, 2]}})
    assert made.constructor.name == "Object"
    assert made.a == 1
    assert made.nested.constructor.name == "Object"
    assert list(made.nested.b) == [1, 2]
    assert not isinstance(made, JsMap)
    assert isinstance(to_js({"a": 1}), JsMap)  # without it a dict becomes a Map


@pytest.mark.parametrize(
    "entries",
    [
        to_js({"a": 1, "b": 2}),  # a Map
        to_js([["a", 1], ["b", 2]]),
        to_js([["a", 0], ["b", 2], ["a", 1]]),  # a later key wins, in the first key's place
        [("a", 1), ("b", 2)],  # a Python list of pairs: iterable and indexable from JavaScript
        {"a": 1, "b": 2}.items(),
    ],
    ids=["map", "array", "repeated-key", "python-list", "dict-items"],
)
def test_object_from_entries_reads_any_iterable_of_pairs(entries: Any) -> None:
    made = js.Object.fromEntries(entries)
    assert made.constructor.name == "Object"
    assert made.to_py() == {"a": 1, "b": 2}
    assert list(js.Object.keys(made)) == ["a", "b"]


def test_object_from_entries_refuses_a_python_dict() -> None:
    with raises_js(
        "TypeError",
        rf"Object\.fromEntries\(\): the entries, a Python dict, {PYPROXY}; JavaScript cannot read its items "
        r"as \[key, value\] pairs\. Use to_js\(d, dict_converter=js\.Object\.fromEntries\) for a dict",
    ):
        js.Object.fromEntries({"a": 1})


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (None, r"undefined is not iterable \(cannot read property Symbol\(Symbol\.iterator\)\)$"),
        (5, r"5 is not iterable \(cannot read property Symbol\(Symbol\.iterator\)\)$"),
        (to_js([5]), r"Iterator value 5 is not an entry object$"),
        (["ab"], r"Iterator value ab is not an entry object$"),
    ],
    ids=["undefined", "number", "number-entry", "string-entry"],
)
def test_object_from_entries_throws_for_what_is_not_entries(entries: Any, message: str) -> None:
    with raises_js("TypeError", message):
        js.Object.fromEntries(entries)


def test_object_keys_values_and_entries() -> None:
    made = obj({"a": 1, "b": "x"})
    assert list(js.Object.keys(made)) == ["a", "b"]
    assert list(js.Object.values(made)) == [1, "x"]
    assert [list(e) for e in js.Object.entries(made)] == [["a", 1], ["b", "x"]]
    array = to_js(["x", "y"])
    assert list(js.Object.keys(array)) == ["0", "1"]
    assert list(js.Object.values(array)) == ["x", "y"]
    assert [list(e) for e in js.Object.entries(array)] == [["0", "x"], ["1", "y"]]
    assert list(js.Object.keys("ab")) == ["0", "1"]
    assert list(js.Object.values(to_js(b"\x07"))) == [7]
    assert list(js.Object.keys(to_js({"a": 1}))) == []  # a Map's entries are not properties
    assert list(js.Object.keys(5)) == []


@pytest.mark.parametrize("method", ["keys", "values", "entries"])
@pytest.mark.parametrize("value", [None, jsnull], ids=["undefined", "null"])
def test_object_keys_values_and_entries_of_nothing_throw(method: str, value: Any) -> None:
    with raises_js("TypeError", r"Cannot convert undefined or null to object$"):
        getattr(js.Object, method)(value)


@pytest.mark.parametrize("method", ["keys", "values", "entries"])
def test_object_keys_values_and_entries_refuse_a_python_dict(method: str) -> None:
    with raises_js(
        "TypeError",
        rf"Object\.{method}\(\): the object, a Python dict, {PYPROXY}; JavaScript would see the Python "
        r"object's attributes \(as dir\(\) lists them\), not its items\. Convert it first: "
        r"to_js\(value, dict_converter=js\.Object\.fromEntries\)",
    ):
        getattr(js.Object, method)({"a": 1})


def test_object_assign_copies_into_the_target_and_returns_it() -> None:
    target = obj({"a": 1})
    result = js.Object.assign(target, obj({"b": 2}), None, jsnull, to_js(["z"]), obj({"a": 3}))
    assert result == target  # the same JavaScript object
    assert target.to_py() == {"a": 3, "b": 2, "0": "z"}  # null and undefined sources are skipped


def test_object_assign_throws_for_what_it_cannot_copy() -> None:
    with raises_js("TypeError", r"Cannot convert undefined or null to object$"):
        js.Object.assign(None, obj({}))
    with raises_js(
        "TypeError",
        rf"Object\.assign\(\): a source, a Python dict, {PYPROXY}; JavaScript would copy no keys\. "
        r"Convert it with to_js first",
    ):
        js.Object.assign(obj({}), {"a": 1})


def test_object_called_or_constructed_makes_an_empty_object() -> None:
    for made in (js.Object(), js.Object.new(), js.Object(jsnull)):
        assert made.constructor.name == "Object"
        assert list(js.Object.keys(made)) == []


# -- Array -----------------------------------------------------------------------------------------


def test_array_is_array_is_true_for_javascript_arrays_only() -> None:
    assert js.Array.isArray(to_js([1])) is True
    assert js.Array.isArray(to_js((1, 2))) is True  # to_js makes a tuple an array
    assert js.Array.isArray([1]) is False  # a Python list reaches JavaScript as a PyProxy
    assert js.Array.isArray(obj({"a": 1})) is False
    assert js.Array.isArray(5) is False
    assert js.Array.isArray() is False


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (to_js([1, 2]), [1, 2]),
        (to_js({3, 4}), [3, 4]),
        ("ab", ["a", "b"]),
        (to_js(b"\x01\x02"), [1, 2]),
        ([5, "x"], [5, "x"]),  # a Python list: JavaScript iterates the proxy
        (range(3), [0, 1, 2]),
        (5, []),  # not iterable, no length
        (obj({"a": 1}), []),
    ],
    ids=["array", "set", "string", "uint8array", "python-list", "python-range", "number", "object"],
)
def test_array_from_reads_any_iterable(items: Any, expected: list[Any]) -> None:
    made = js.Array.from_(items)
    assert isinstance(made, JsArray)
    assert list(made) == expected


def test_array_from_reads_a_map_as_entries_and_maps_with_a_function() -> None:
    assert [list(e) for e in js.Array.from_(to_js({"a": 1}))] == [["a", 1]]
    assert list(js.Array.from_(to_js([1, 2]), lambda v, i: v * 10 + i)) == [10, 21]
    with raises_js("TypeError", r"5 is not a function$"):
        js.Array.from_(to_js([1]), 5)


@pytest.mark.parametrize("value", [None, jsnull], ids=["undefined", "null"])
def test_array_from_nothing_throws(value: Any) -> None:
    name = "undefined" if value is None else "null"
    with raises_js(
        "TypeError", rf"{name} is not iterable \(cannot read property Symbol\(Symbol\.iterator\)\)$"
    ):
        js.Array.from_(value)


def test_array_called_or_constructed() -> None:
    assert list(js.Array.new(1, 2)) == [1, 2]
    assert list(js.Array(1, "2")) == [1, "2"]
    assert list(js.Array.new()) == []
    assert list(js.Array.new("3")) == ["3"]
    holes = js.Array.new(3)  # one number is a length
    assert holes.length == 3
    assert list(holes) == [None, None, None]
    assert js.Array.new(2.0).length == 2


@pytest.mark.parametrize("length", [-1, 1.5, math.nan, 2**32])
def test_array_of_an_invalid_length_throws_a_range_error(length: float) -> None:
    with raises_js("RangeError", r"Invalid array length$"):
        js.Array.new(length)


# -- Promise ---------------------------------------------------------------------------------------


async def test_promise_resolve_is_awaitable_and_adopts_a_promise() -> None:
    assert await js.Promise.resolve(5) == 5
    assert await js.Promise.resolve() is None
    assert await js.Promise.resolve(js.Promise.resolve("inner")) == "inner"
    assert await js.Promise.resolve(2).then(lambda v: v * 21) == 42
    array = await js.Promise.resolve(to_js([1]))
    assert isinstance(array, JsArray)


# -- Uint8Array, ArrayBuffer -----------------------------------------------------------------------


def test_uint8array_of_a_length_is_zeros() -> None:
    arr = js.Uint8Array.new(3)
    assert isinstance(arr, JsBuffer)
    assert arr.constructor.name == "Uint8Array"
    assert arr.to_bytes() == b"\x00\x00\x00"
    assert (len(arr), arr.length, arr.byteLength, arr[0]) == (3, 3, 3, 0)
    assert js.Uint8Array.new().to_bytes() == b""
    assert js.Uint8Array.new(2.7).to_bytes() == b"\x00\x00"  # ToIndex truncates


def test_uint8array_from_values_takes_each_modulo_256() -> None:
    assert js.Uint8Array.new(to_js([1, 2, 300, -1, 1.9, math.nan, "7"])).to_bytes() == bytes(
        [1, 2, 44, 255, 1, 0, 7]
    )
    assert js.Uint8Array.new(to_js({9})).to_bytes() == b"\x09"


def test_uint8array_from_a_python_iterable_reads_its_items() -> None:
    # A PyProxy of a Python iterable is iterable in JavaScript: the constructor reads it item by item.
    assert js.Uint8Array.new(b"ab").to_bytes() == b"ab"
    assert js.Uint8Array.new([1, 2, 256]).to_bytes() == b"\x01\x02\x00"


def test_uint8array_from_a_buffer_copies_its_bytes() -> None:
    buffer = js.ArrayBuffer.new(2)
    assert js.Uint8Array.new(buffer).to_bytes() == b"\x00\x00"
    assert js.Uint8Array.new(to_js(b"xy")).to_bytes() == b"xy"


def test_buffers_convert_to_python_bytes() -> None:
    arr = js.Uint8Array.new(to_js("é".encode()))
    view = arr.to_py()
    assert isinstance(view, memoryview)
    assert bytes(view) == "é".encode()
    assert arr.to_string() == "é"
    assert str(js.Uint8Array.new(to_js(b"\x01\x02"))) == "1,2"
    assert js.Uint8Array.new(to_js(b"ab")).buffer.to_bytes() == b"ab"


def test_array_buffer_of_a_length() -> None:
    buffer = js.ArrayBuffer.new(4)
    assert buffer.constructor.name == "ArrayBuffer"
    assert buffer.byteLength == 4
    assert buffer.to_bytes() == b"\x00" * 4
    assert bytes(buffer.to_py()) == b"\x00" * 4
    assert js.ArrayBuffer.new().byteLength == 0
    assert str(buffer) == "[object ArrayBuffer]"


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: js.Uint8Array.new(-1), r"RangeError: Invalid typed array length: -1$"),
        (lambda: js.Uint8Array.new(math.inf), r"RangeError: Invalid typed array length: Infinity$"),
        (lambda: js.ArrayBuffer.new(-1), r"RangeError: Invalid array buffer length$"),
        (
            lambda: js.Uint8Array.new({"a": 1}),
            rf"TypeError: new Uint8Array\(\): the argument, a Python dict, {PYPROXY}; JavaScript would make "
            r"an empty array\. Pass to_js\(data\)",
        ),
        (
            lambda: js.Uint8Array.new(object()),
            rf"TypeError: new Uint8Array\(\): the argument, a Python object, {PYPROXY}",
        ),
        (
            lambda: js.Uint8Array(3),
            r"TypeError: Class constructor Uint8Array cannot be invoked without 'new'$",
        ),
    ],
    ids=["negative", "infinite", "buffer-negative", "python-dict", "python-object", "without-new"],
)
def test_buffers_of_bad_arguments_throw(make: Any, error: str) -> None:
    with pytest.raises(JsException, match=rf"^{error}"):
        make()


# -- Date ------------------------------------------------------------------------------------------


def test_date_now_outside_a_runtime_is_the_wall_clock() -> None:
    before = int(time.time() * 1000)
    now = js.Date.now()
    after = int(time.time() * 1000)
    assert type(now) is int
    assert before <= now <= after + 1


CLOCK_WORKER = """
from js import Date
from workers import DurableObject


class Clock(DurableObject):
    async def read(self):
        return [Date.now(), Date.new().getTime()]
"""


async def test_date_now_follows_the_runtime_clock(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, CLOCK_WORKER) as mod:
        async with open_runtime(objects={"C": mod.Clock}, config=config()) as rt:
            stub = rt.env.C.getByName("c")
            assert await stub.read() == [EPOCH_MS, EPOCH_MS]
            await trio.sleep(90.5)
            assert await stub.read() == [EPOCH_MS + 90_500, EPOCH_MS + 90_500]
            assert js.Date.now() == EPOCH_MS + 90_500  # the test's own code is inside the runtime too


@pytest.mark.parametrize(
    ("args", "iso"),
    [
        ((0,), "1970-01-01T00:00:00.000Z"),
        ((EPOCH_MS + 1.5,), "2026-01-01T00:00:00.001Z"),
        (("2026-01-01T00:00:00Z",), "2026-01-01T00:00:00.000Z"),
        (("2026-01-02",), "2026-01-02T00:00:00.000Z"),  # a date alone is UTC
        (("2026-01-02T03:04:05+01:00",), "2026-01-02T02:04:05.000Z"),
        ((2026, 0), "2026-01-01T00:00:00.000Z"),  # months count from 0; workerd's time zone is UTC
        ((2026, 0, 1, 12, 30, 15, 250), "2026-01-01T12:30:15.250Z"),
        ((2026, 0, 0), "2025-12-31T00:00:00.000Z"),  # fields out of range carry over
        ((2026, 12, 1), "2027-01-01T00:00:00.000Z"),
        ((2026, 0, 1, 25), "2026-01-02T01:00:00.000Z"),
        ((2026, -1), "2025-12-01T00:00:00.000Z"),
        ((99, 0), "1999-01-01T00:00:00.000Z"),  # two-digit years are 19xx
    ],
    ids=repr,
)
def test_new_date(args: tuple[Any, ...], iso: str) -> None:
    date = js.Date.new(*args)
    assert date.constructor.name == "Date"
    assert date.toISOString() == iso


def test_a_date_reads_as_javascript_shows_it() -> None:
    date = js.Date.new(EPOCH_MS)
    assert date.getTime() == EPOCH_MS
    assert date.valueOf() == EPOCH_MS
    assert str(date) == "Thu Jan 01 2026 00:00:00 GMT+0000 (Coordinated Universal Time)"
    assert date.toString() == str(date)
    assert js.Date.new(js.Date.new(5)).getTime() == 5


def test_date_called_without_new_is_a_string_of_now() -> None:
    text = js.Date()
    assert re.fullmatch(
        r"\w{3} \w{3} \d\d \d{4} \d\d:\d\d:\d\d GMT\+0000 \(Coordinated Universal Time\)", text
    )


def test_date_parse_and_utc() -> None:
    assert js.Date.parse("2026-01-01T00:00:00.000Z") == EPOCH_MS
    assert js.Date.UTC(2026, 0, 1) == EPOCH_MS
    assert js.Date.UTC(2026, 0, 1, 0, 0, 1) == EPOCH_MS + 1000
    assert js.Date.UTC(2026) == EPOCH_MS  # a year alone is its January
    assert math.isnan(js.Date.UTC())
    assert math.isnan(js.Date.parse("garbage"))  # NaN, not an error
    assert math.isnan(js.Date.parse())


# -- URL -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("href", "https://example.com:8080/a/b?x=1&y=2#frag"),
        ("protocol", "https:"),
        ("host", "example.com:8080"),
        ("hostname", "example.com"),
        ("port", "8080"),
        ("pathname", "/a/b"),
        ("search", "?x=1&y=2"),
        ("hash", "#frag"),
        ("origin", "https://example.com:8080"),
    ],
)
def test_url_parts(prop: str, value: str) -> None:
    assert getattr(js.URL.new("https://example.com:8080/a/b?x=1&y=2#frag"), prop) == value


def test_url_without_port_query_or_fragment() -> None:
    url = js.URL.new("https://example.com")
    assert (url.href, url.pathname, url.port, url.search, url.hash) == (
        "https://example.com/",
        "/",
        "",
        "",
        "",
    )
    assert url.constructor.name == "URL"


@pytest.mark.parametrize(
    ("text", "href"),
    [
        ("HTTPS://Example.COM:443/a b", "https://example.com/a%20b"),
        ("http://e.com:80/", "http://e.com/"),
        ("http://e.com:8080", "http://e.com:8080/"),
        ("wss://E.com:443/chat", "wss://e.com/chat"),
        ("ws://e.com:80", "ws://e.com/"),
        ("  https://e.com/x  ", "https://e.com/x"),
    ],
)
def test_url_normalizes_as_the_whatwg_parser_does(text: str, href: str) -> None:
    url = js.URL.new(text)
    assert url.href == href
    assert url.hostname == url.hostname.lower()


def test_url_relative_to_a_base() -> None:
    assert js.URL.new("/p?q=1", "https://e.com/x/y").href == "https://e.com/p?q=1"
    assert js.URL.new("z", "https://e.com/x/y").href == "https://e.com/x/z"


def test_url_as_a_string() -> None:
    url = js.URL.new("https://e.com/a?b=1")
    assert str(url) == url.toString() == url.toJSON() == "https://e.com/a?b=1"


def test_url_search_params_read_and_write_the_query() -> None:
    url = js.URL.new("https://e.com/p?a=1&a=2&b=x+y%20z&empty=")
    params = url.searchParams
    assert params.get("a") == "1"
    assert params.get("b") == "x y z"
    assert params.get("empty") == ""
    assert params.get("missing") is jsnull
    assert list(params.getAll("a")) == ["1", "2"]
    assert params.has("a") is True
    assert params.has("missing") is False
    assert [list(pair) for pair in params] == [["a", "1"], ["a", "2"], ["b", "x y z"], ["empty", ""]]
    params.set("c", "d e")
    params.append("a", "3")
    params.delete("empty")
    assert url.href == "https://e.com/p?a=1&a=2&b=x+y+z&c=d+e&a=3"
    assert url.searchParams.toString() == "a=1&a=2&b=x+y+z&c=d+e&a=3"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("not a url",), r"Invalid URL string: not a url$"),
        (("/relative",), r"Invalid URL string: /relative$"),
        (("/relative", "not a base"), r"Invalid URL string: /relative$"),
        ((), r"Invalid URL string: undefined$"),
        (("https://",), r"Invalid URL string: https://$"),
    ],
)
def test_an_invalid_url_throws_a_type_error(args: tuple[Any, ...], message: str) -> None:
    with raises_js("TypeError", message):
        js.URL.new(*args)


def test_url_without_new_throws() -> None:
    with raises_js("TypeError", r"Class constructor URL cannot be invoked without 'new'$"):
        js.URL("https://e.com")


# -- Headers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_init",
    [
        lambda: obj({"Content-Type": "text/x", "A": "1"}),
        lambda: to_js([["Content-Type", "text/x"], ["A", "1"]]),
        lambda: to_js({"Content-Type": "text/x", "A": "1"}),  # a Map is iterable: its entries
        lambda: [("Content-Type", "text/x"), ("A", "1")],  # as the SDK passes them: a proxy of a list
        lambda: {"Content-Type": "text/x", "A": "1"}.items(),
        lambda: js.Headers.new(obj({"Content-Type": "text/x", "A": "1"})),
    ],
    ids=["object", "array", "map", "python-list", "python-dict-items", "headers"],
)
def test_headers_are_made_from_each_kind_of_init(make_init: Any) -> None:
    headers = js.Headers.new(make_init())
    assert headers.constructor.name == "Headers"
    assert [list(pair) for pair in headers] == [["a", "1"], ["content-type", "text/x"]]  # sorted, lowercase


def test_headers_read_case_insensitively_and_change() -> None:
    headers = js.Headers.new(obj({"Content-Type": "text/x", "X-Count": 1}))
    assert headers.get("CONTENT-TYPE") == "text/x"
    assert headers.get("x-count") == "1"  # values are strings
    assert headers.get("missing") is jsnull
    assert headers.has("Content-type") is True
    headers.append("X-Count", "2")
    assert headers.get("x-count") == "1, 2"
    headers.set("x-count", "3")
    headers.delete("Content-Type")
    assert list(headers.keys()) == ["x-count"]
    assert list(headers.values()) == ["3"]
    assert [list(e) for e in headers.entries()] == [["x-count", "3"]]
    headers.append("Set-Cookie", "a=1")
    headers.append("Set-Cookie", "b=2")
    assert list(headers.getSetCookie()) == ["a=1", "b=2"]
    assert js.Headers.new().get("a") is jsnull


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: js.Headers.new({"a": "1"}),
            rf"new Headers\(\): the headers, a Python dict, {PYPROXY}; workerd would not read its entries\. "
            r"Convert them: to_js\(headers, dict_converter=js\.Object\.fromEntries\)",
        ),
        (lambda: js.Headers.new(5), r"new Headers\(\): the headers must be an object or an array of pairs$"),
        (
            lambda: js.Headers.new([1]),
            r"new Headers\(\): the headers must be an object or an array of pairs$",
        ),
        (lambda: js.Headers.new(to_js([["bad name", "x"]])), r"Invalid header name\.$"),
        (lambda: js.Headers.new(to_js([["a", "x\ny"]])), r"Invalid header value\.$"),
        (
            lambda: js.Headers.new(to_js([["a"]])),
            r"To initialize a Headers object from a sequence, each inner sequence must have exactly two "
            r"elements\.$",
        ),
        (
            lambda: js.Headers.new().get(["a"]),
            rf"headers\.get\(\): the name, a Python list, {PYPROXY}; JavaScript would use its text instead\. "
            r"Pass a str",
        ),
        (lambda: js.Headers(), r"Class constructor Headers cannot be invoked without 'new'$"),
    ],
    ids=[
        "python-dict",
        "number",
        "python-list-of-numbers",
        "bad-name",
        "bad-value",
        "short-pair",
        "get-list",
        "no-new",
    ],
)
def test_headers_of_bad_arguments_throw_type_errors(make: Any, message: str) -> None:
    with raises_js("TypeError", message):
        make()


# -- Response --------------------------------------------------------------------------------------


async def test_response_of_text_is_utf8_plain_text() -> None:
    response = js.Response.new("text é")
    assert response.constructor.name == "Response"
    assert (response.status, response.statusText, response.ok) == (200, "OK", True)
    assert response.headers.get("content-type") == "text/plain;charset=UTF-8"
    assert response.bodyUsed is False
    assert await response.text() == "text é"
    assert response.bodyUsed is True


async def test_response_options_are_keyword_arguments() -> None:
    response = js.Response.new(
        "made", status=201, statusText="Made", headers=obj({"X-A": "b", "Content-Type": "text/html"})
    )
    assert (response.status, response.statusText) == (201, "Made")
    assert response.headers.get("x-a") == "b"
    assert response.headers.get("content-type") == "text/html"  # a content type given is kept
    listed = js.Response.new("x", status=404, headers=[("X-B", "c")])
    assert (listed.status, listed.ok, listed.headers.get("x-b")) == (404, False, "c")
    as_object = js.Response.new("x", obj({"status": 202}))
    assert as_object.status == 202


async def test_response_of_bytes_or_nothing_has_no_content_type() -> None:
    empty = js.Response.new()
    assert (empty.status, empty.headers.get("content-type")) == (200, jsnull)
    assert await empty.text() == ""
    binary = js.Response.new(to_js(b"\x00\x01"))
    assert binary.headers.get("content-type") is jsnull
    assert (await binary.arrayBuffer()).to_bytes() == b"\x00\x01"
    assert (await js.Response.new(js.ArrayBuffer.new(1)).bytes()).to_bytes() == b"\x00"


async def test_response_json_writes_compact_javascript_json() -> None:
    response = js.Response.json(obj({"a": 1, "b": [1.5, 2.0], "u": None}))
    assert (response.status, response.headers.get("content-type")) == (200, "application/json")
    assert await response.text() == '{"a":1,"b":[1.5,2]}'
    assert await js.Response.json("s").text() == '"s"'
    assert await js.Response.json(jsnull).text() == "null"
    parsed = await js.Response.json(to_js([1, {"k": "v"}], dict_converter=js.Object.fromEntries)).json()
    assert parsed.to_py() == [1, {"k": "v"}]


def test_response_json_options() -> None:
    response = js.Response.json(
        obj({}), status=201, statusText="Made", headers=obj({"Content-Type": "application/x+json", "X": "1"})
    )
    assert (response.status, response.statusText) == (201, "Made")
    assert response.headers.get("content-type") == "application/x+json"
    assert response.headers.get("x") == "1"


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (
            lambda: js.Response.json({"a": 1}),
            rf"TypeError: JSON\.stringify\(\): the value, a Python dict, {PYPROXY}",
        ),
        (
            lambda: js.Response.json(),
            r"TypeError: Response\.json\(\): undefined cannot be serialized to JSON$",
        ),
        (
            lambda: js.Response.new("x", status=99),
            r"RangeError: Responses may only be constructed with status codes in the range 200 to 599, "
            r"inclusive\.$",
        ),
        (
            lambda: js.Response.new("x", status=204),
            r"TypeError: Response with null body status \(101, 204, 205, or 304\) cannot have a body\.$",
        ),
        (
            lambda: js.Response.new(b"x"),
            rf"TypeError: new Response\(\): the body, a Python bytes, {PYPROXY}; workerd would send its text "
            r"\(for bytes, \"b'\.\.\.'\"\) instead of its contents\. Pass a str, or to_js\(data\) for bytes",
        ),
        (
            lambda: js.Response.new("x", {"status": 201}),
            rf"TypeError: new Response\(\): the init, a Python dict, {PYPROXY}; workerd would not read its "
            r"keys\. Pass the options as keyword arguments",
        ),
        (lambda: js.Response("x"), r"TypeError: Class constructor Response cannot be invoked without 'new'$"),
    ],
    ids=[
        "json-python-dict",
        "json-undefined",
        "status-range",
        "null-body-status",
        "python-bytes",
        "python-init",
        "no-new",
    ],
)
def test_response_of_bad_arguments_throws(make: Any, error: str) -> None:
    with pytest.raises(JsException, match=rf"^{error}"):
        make()


def test_response_redirect() -> None:
    found = js.Response.redirect("https://E.com/to")
    assert (found.status, found.headers.get("location")) == (302, "https://e.com/to")
    moved = js.Response.redirect("https://e.com/", 301)
    assert (moved.status, moved.statusText) == (301, "Moved Permanently")
    with raises_js(
        "RangeError", r"200 is not a redirect status code\. It must be one of: 301, 302, 303, 307, or 308\.$"
    ):
        js.Response.redirect("https://e.com/", 200)
    with raises_js("TypeError", r"Unable to parse URL: /relative$"):
        js.Response.redirect("/relative")


# -- Request ---------------------------------------------------------------------------------------


async def test_request_with_options() -> None:
    request = js.Request.new("https://E.com/a", method="post", headers=obj({"X-A": "1"}), body="hi")
    assert request.constructor.name == "Request"
    assert (request.url, request.method) == ("https://e.com/a", "POST")
    assert request.headers.get("x-a") == "1"
    assert request.headers.get("content-type") == "text/plain;charset=UTF-8"
    assert await request.text() == "hi"
    plain = js.Request.new("https://e.com")
    assert (plain.url, plain.method, plain.bodyUsed) == ("https://e.com/", "GET", False)


async def test_request_copied_from_a_request() -> None:
    original = js.Request.new("https://e.com/a", method="PUT", body="b")
    copy = js.Request.new(original)
    assert (copy.url, copy.method) == ("https://e.com/a", "PUT")
    assert await copy.text() == "b"
    changed = js.Request.new(js.Request.new("https://e.com/a"), method="DELETE")
    assert changed.method == "DELETE"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: js.Request.new("/relative"), r"Fetch API cannot load: /relative$"),
        (
            lambda: js.Request.new("https://e.com", body="x"),
            r"Request with a GET or HEAD method cannot have a body\.$",
        ),
        (
            lambda: js.Request.new("https://e.com", method="NOT A METHOD"),
            r"Invalid HTTP method string: NOT A METHOD$",
        ),
        (
            lambda: js.Request.new("https://e.com", {"method": "POST"}),
            rf"new Request\(\): the init, a Python dict, {PYPROXY}",
        ),
        (lambda: js.Request("https://e.com"), r"Class constructor Request cannot be invoked without 'new'$"),
    ],
    ids=["relative-url", "get-with-body", "bad-method", "python-init", "no-new"],
)
def test_request_of_bad_arguments_throws_a_type_error(make: Any, message: str) -> None:
    with raises_js("TypeError", message):
        make()


# -- timers ----------------------------------------------------------------------------------------

TIMERS_WORKER = """
from js import Date, clearInterval, clearTimeout, console, queueMicrotask, setInterval, setTimeout
from pyodide.ffi import create_once_callable, create_proxy
from workers import DurableObject


class Timers(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.log = []
        self.interval = None

    def note(self, what):
        return create_proxy(lambda *args: self.log.append([what, *args]))

    async def ordering(self):
        setTimeout(self.note("t10"), 10)
        setTimeout(self.note("t0"), 0)
        queueMicrotask(self.note("micro"))
        setTimeout(self.note("t5"), 5)
        setTimeout(self.note("t5-again"), 5)
        setTimeout(self.note("args"), 1, "x", 2)
        setTimeout(self.note("no-delay"))
        queueMicrotask(self.note("micro-again"))
        self.log.append(["sync"])

    async def cancel(self):
        kept = setTimeout(self.note("kept"), 10)
        dropped = setTimeout(self.note("dropped"), 10)
        by_interval = setTimeout(self.note("cleared by clearInterval"), 10)
        clearTimeout(dropped)
        clearInterval(by_interval)  # one pool of ids, as in JavaScript
        clearTimeout(dropped)  # twice: nothing
        clearTimeout(12345)  # unknown: nothing
        clearTimeout(None)
        return [type(kept).__name__, kept != dropped]

    async def start_interval(self, ms):
        self.interval = setInterval(create_proxy(lambda: self.log.append(Date.now())), ms)

    async def stop_interval(self):
        clearInterval(self.interval)

    async def self_stopping_interval(self):
        def tick():
            self.log.append(Date.now())
            if len(self.log) == 3:
                clearInterval(self.interval)
        self.interval = setInterval(create_proxy(tick), 100)

    async def once(self):
        setTimeout(create_once_callable(lambda: self.log.append("once")), 1)

    async def javascript_callback(self):
        setTimeout(console.log, 1, "logged", "by a timer")

    async def failing(self):
        def fail():
            raise ValueError("boom")
        setTimeout(create_proxy(fail), 1)

    async def destroyed(self):
        proxy = create_proxy(lambda: self.log.append("never"))
        setTimeout(proxy, 1)
        proxy.destroy()

    async def plain(self, api):
        {"setTimeout": setTimeout, "setInterval": setInterval, "queueMicrotask": queueMicrotask}[api](
            lambda: None
        )

    async def not_a_function(self):
        setTimeout("code as a string", 1)

    async def read(self):
        return self.log
"""


async def test_timers_fire_by_delay_then_call_order_after_microtasks(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, TIMERS_WORKER) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            stub = rt.env.T.getByName("t")
            await stub.ordering()
            await trio.sleep(1)
            assert await stub.read() == [
                ["sync"],
                ["micro"],
                ["micro-again"],
                ["t0"],
                ["no-delay"],
                ["args", "x", 2],
                ["t5"],
                ["t5-again"],
                ["t10"],
            ]


async def test_clear_timeout_cancels_a_pending_timer(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, TIMERS_WORKER) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            stub = rt.env.T.getByName("t")
            assert await stub.cancel() == ["int", True]  # a timer id is a number
            await trio.sleep(1)
            assert await stub.read() == [["kept"]]


async def test_set_interval_repeats_on_the_runtime_clock_until_cleared(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, TIMERS_WORKER) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            stub = rt.env.T.getByName("t")
            await stub.start_interval(1000)
            await trio.sleep(3.5)
            await stub.stop_interval()
            await trio.sleep(10)
            assert await stub.read() == [EPOCH_MS + 1000, EPOCH_MS + 2000, EPOCH_MS + 3000]


async def test_an_interval_cleared_by_its_own_callback_stops(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, TIMERS_WORKER) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            stub = rt.env.T.getByName("t")
            await stub.self_stopping_interval()
            await trio.sleep(5)
            assert await stub.read() == [EPOCH_MS + 100, EPOCH_MS + 200, EPOCH_MS + 300]


async def test_timers_take_once_callables_and_javascript_functions(
    tmp_path, autojump_clock, console_log
) -> None:
    with worker_module(tmp_path, TIMERS_WORKER) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            stub = rt.env.T.getByName("t")
            await stub.once()
            await stub.javascript_callback()
            await trio.sleep(1)
            assert await stub.read() == ["once"]
            assert console_lines(console_log) == [(logging.INFO, "logged by a timer")]


async def test_an_error_in_a_timer_callback_is_logged(tmp_path, autojump_clock, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="shardsim.js")
    with worker_module(tmp_path, TIMERS_WORKER) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            stub = rt.env.T.getByName("t")
            await stub.failing()
            await stub.destroyed()
            await trio.sleep(1)
            assert await stub.read() == []
            failures = [r for r in caplog.records if r.name == "shardsim.js"]
            assert [r.getMessage() for r in failures] == ["setTimeout/setInterval callback failed"] * 2
            errors = [r.exc_info[1] for r in failures if r.exc_info]
            assert isinstance(errors[0], ValueError)
            assert str(errors[0]) == "boom"
            assert isinstance(errors[1], JsException)
            assert str(errors[1]) == "Error: Object has already been destroyed"


@pytest.mark.parametrize("api", ["setTimeout", "setInterval", "queueMicrotask"])
async def test_a_plain_python_function_is_refused_as_a_timer_callback(tmp_path, autojump_clock, api) -> None:
    with worker_module(tmp_path, TIMERS_WORKER) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            with pytest.raises(
                RemoteError,
                match=rf"{api}\(\): the callback is a Python function, which Pyodide passes as a borrowed proxy "
                r"and destroys when the call returns: the timer would fail when it fires in production "
                r'\("This borrowed proxy was automatically destroyed at the end of a function call"\)\. '
                r"Wrap it: create_proxy\(fn\) or create_once_callable\(fn\) "
                r"\(from pyodide\.ffi import create_proxy\) \[.*worker_under_test\.py:\d+, in Timers\.plain\]",
            ) as info:
                await rt.env.T.getByName("t").plain(api)
            assert info.value.name == "TypeError"  # a JavaScript TypeError, carried by RPC by its name


async def test_a_timer_callback_that_is_not_a_function_is_refused(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, TIMERS_WORKER) as mod:
        async with open_runtime(objects={"T": mod.Timers}, config=config()) as rt:
            with pytest.raises(RemoteError, match=r"setTimeout\(\): the callback must be a function") as info:
                await rt.env.T.getByName("t").not_a_function()
            assert info.value.name == "TypeError"


@pytest.mark.parametrize("api", ["setTimeout", "setInterval", "queueMicrotask"])
def test_timers_need_a_running_runtime(api: str) -> None:
    with raises_js(
        "Error", rf"{api}\(\) needs a running shardsim runtime \(call it from a Worker or a Durable Object\)$"
    ):
        getattr(js, api)(create_proxy(lambda: None))


def test_clearing_a_timer_outside_a_runtime_does_nothing() -> None:
    assert js.clearTimeout(1) is None
    assert js.clearInterval(1) is None


# -- WebSocketPair ---------------------------------------------------------------------------------


def test_websocket_pair_gives_two_sockets_as_cloudflares_examples_take_them() -> None:
    pair = js.WebSocketPair.new()
    assert pair.constructor.name == "WebSocketPair"
    client, server = js.Object.values(pair)
    assert client.constructor.name == server.constructor.name == "WebSocket"
    assert client != server
    assert client == getattr(pair, "0")
    assert server == getattr(pair, "1")
    assert list(js.Object.keys(pair)) == ["0", "1"]
    again_client, again_server = pair.object_values()  # the chatroom example's spelling
    assert (again_client, again_server) == (client, server)
    assert [ws.readyState for ws in (client, server)] == [client.OPEN, server.OPEN]


def test_websocket_pair_without_new_throws() -> None:
    with raises_js("TypeError", r"Class constructor WebSocketPair cannot be invoked without 'new'$"):
        js.WebSocketPair()


# -- what shardsim does not emulate ----------------------------------------------------------------

#: Globals a Worker commonly uses that shardsim emulates: the refusal lists them all.
EMULATED = (
    "Array, ArrayBuffer, Date, Headers, JSON, Object, Promise, Request, Response, URL, Uint8Array, "
    "WebSocketPair, WebSocketRequestResponsePair, clearInterval, clearTimeout, console, fetch, "
    "queueMicrotask, setInterval, setTimeout"
)


def test_a_global_shardsim_does_not_emulate_raises_not_emulated_error() -> None:
    with pytest.raises(NotEmulatedError) as info:
        _ = js.caches
    assert str(info.value) == (
        f"js.caches is not emulated by shardsim (it emulates: {EMULATED}); "
        "if production has it, test this code with wrangler dev"
    )
    assert isinstance(info.value, ShardsError)
    assert not isinstance(info.value, AttributeError)  # so `from js import` shows this message


def test_importing_a_global_shardsim_does_not_emulate_raises_not_emulated_error() -> None:
    with installed():
        with pytest.raises(
            NotEmulatedError, match=r"^js\.caches is not emulated by shardsim \(it emulates: "
        ):
            exec("from js import caches", {})
        namespace: dict[str, Any] = {}
        exec("from js import Object, console", namespace)
        assert namespace["Object"].name == "Object"
