"""Pyodide's conversion rules, one test per rule (runtime/pyworkers/_ffi.py)."""

from __future__ import annotations

import pytest

from runtime.pyworkers._ffi import (
    BORROWED_DESTROYED,
    MAX_SAFE_INTEGER,
    ConversionError,
    JsArray,
    JSArrayBuffer,
    JsBuffer,
    JsCallable,
    JsDoubleProxy,
    JsException,
    JSFunction,
    JSMap,
    JsMap,
    JSPromise,
    JsPromise,
    JsProxy,
    JSUint8Array,
    PyProxy,
    call_js,
    create_once_callable,
    create_proxy,
    jsnull,
    to_javascript,
    to_js,
    to_python,
)

# -- implicit conversions ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, -7, 1.5, "text", True, False, None])
def test_primitives_cross_into_javascript_unchanged(value) -> None:
    assert to_javascript(value) is value


def test_none_is_undefined_and_jsnull_is_null() -> None:
    assert to_javascript(None) is None
    assert to_javascript(jsnull) is jsnull
    assert to_python(jsnull) is jsnull
    assert not jsnull
    assert repr(jsnull) == "jsnull"


@pytest.mark.parametrize(
    "value", [{"a": 1}, [1, 2], (1, 2), b"bytes", {1, 2}, object(), lambda: None], ids=repr
)
def test_every_other_python_value_becomes_a_borrowed_pyproxy(value) -> None:
    js = to_javascript(value)
    assert type(js) is PyProxy
    assert js.obj is value
    assert js.borrowed


def test_a_jsproxy_crosses_back_as_the_javascript_value_it_proxies() -> None:
    js_obj: dict[str, int] = {"a": 1}
    proxy = to_python(js_obj)
    assert isinstance(proxy, JsProxy)
    assert to_javascript(proxy) is js_obj


def test_numbers_from_javascript_are_ints_when_integral_and_exact() -> None:
    assert to_python(5.0) == 5
    assert type(to_python(5.0)) is int
    assert type(to_python(5.5)) is float
    assert type(to_python(float(MAX_SAFE_INTEGER + 1))) is float
    assert type(to_python(2**60)) is int  # a BigInt


def test_a_pyproxy_crossing_back_into_python_is_the_original_object() -> None:
    value = {"a": 1}
    assert to_python(to_javascript(value)) is value


# -- proxies of JavaScript objects ---------------------------------------------------------------


def test_object_properties_read_as_attributes_not_items() -> None:
    obj = to_python({"name": "ada", "n": 2})
    assert obj.name == "ada"
    assert obj.n == 2
    with pytest.raises(AttributeError):
        _ = obj.missing
    with pytest.raises(TypeError):
        _ = obj["name"]
    assert obj.as_object_map()["name"] == "ada"
    assert list(obj.object_keys()) == ["name", "n"]
    assert obj.typeof == "object"
    assert obj.constructor.name == "Object"


def test_setting_a_property_converts_the_value() -> None:
    js: dict[str, object] = {}
    obj = to_python(js)
    obj.count = 3
    obj.data = [1]
    assert js["count"] == 3
    assert type(js["data"]) is PyProxy  # an implicit conversion: the list is proxied


def test_proxies_compare_by_javascript_identity() -> None:
    js: dict[str, int] = {}
    a, b = to_python(js), to_python(js)
    assert a is not b  # a new proxy per crossing, as in Pyodide
    assert a == b
    assert to_python({}) != a


def test_arrays_are_sequences() -> None:
    arr = to_python([1, "two", {"k": 3}])
    assert isinstance(arr, JsArray)
    assert len(arr) == 3
    assert arr[0] == 1
    assert arr[2].k == 3
    assert arr.length == 3
    arr.append(4)
    assert arr[-1] == 4
    assert [x for x in to_python([1, 2])] == [1, 2]
    assert not to_python([])


def test_maps_are_mappings() -> None:
    m = to_python(JSMap({"a": 1}))
    assert isinstance(m, JsMap)
    assert m["a"] == 1
    assert "a" in m
    assert m.size == 1
    assert m.get("b", 7) == 7
    m["b"] = 2
    assert dict(m.items()) == {"a": 1, "b": 2}


def test_buffers_give_their_bytes() -> None:
    buf = to_python(JSArrayBuffer(b"\x01\x02"))
    assert isinstance(buf, JsBuffer)
    assert buf.to_bytes() == b"\x01\x02"
    assert bytes(buf.to_py()) == b"\x01\x02"
    assert buf.byteLength == 2
    assert to_python(JSUint8Array(b"hi")).to_string() == "hi"


# -- explicit conversions ------------------------------------------------------------------------


def test_to_js_converts_deeply() -> None:
    js = to_js({"a": [1, (2, 3)], "b": b"\x00", "c": {4}})
    assert isinstance(js, JsMap)  # a dict becomes a Map by default
    raw = to_javascript(js)
    assert type(raw) is JSMap
    assert raw["a"] == [1, [2, 3]]
    assert type(raw["b"]) is JSUint8Array
    assert list(raw["c"]) == [4]


def test_to_js_with_object_from_entries_makes_a_plain_object() -> None:
    from_entries = to_python(JSFunction("fromEntries", lambda entries: {k: v for k, v in entries}))
    obj = to_js({"a": 1, "nested": {"b": 2}}, dict_converter=from_entries)
    assert obj.a == 1
    assert obj.nested.b == 2


def test_to_js_refuses_keys_javascript_would_compare_by_identity() -> None:
    with pytest.raises(ConversionError, match="identity"):
        to_js({(1, 2): "x"})


def test_to_js_makes_persistent_proxies_or_refuses_them() -> None:
    thing = object()
    collected: list[JsDoubleProxy] = []
    js = to_js([thing], pyproxies=collected)
    assert to_javascript(js)[0].obj is thing
    assert not to_javascript(js)[0].borrowed
    assert len(collected) == 1
    with pytest.raises(ConversionError):
        to_js([thing], create_pyproxies=False)


def test_to_js_depth_limits_the_conversion() -> None:
    raw = to_javascript(to_js([[1]], depth=1))
    assert type(raw[0]) is PyProxy


def test_to_py_converts_deeply_and_keeps_cycles() -> None:
    inner: dict[str, object] = {"x": 1}
    outer = [inner, inner, JSMap({"k": JSUint8Array(b"z")})]
    py = to_python(outer).to_py()
    assert py[0] == {"x": 1}
    assert py[0] is py[1]
    assert bytes(py[2]["k"]) == b"z"
    cyclic: list[object] = []
    cyclic.append(cyclic)
    converted = to_python(cyclic).to_py()
    assert converted[0] is converted


def test_to_py_default_converter_sees_what_it_cannot_convert() -> None:
    fn = JSFunction("f", lambda: None)
    seen: list[str] = []

    def default(value, convert, cache):
        seen.append(value.constructor.name)
        return "converted"

    assert to_python([fn]).to_py(default_converter=default) == ["converted"]
    assert seen == ["Function"]


# -- calls ---------------------------------------------------------------------------------------


def test_keyword_arguments_become_one_trailing_object() -> None:
    received: list[object] = []
    fn = to_python(JSFunction("f", lambda *args: received.extend(args)))
    fn(1, a=2, b="x")
    assert received == [1, {"a": 2, "b": "x"}]


def test_borrowed_proxies_are_destroyed_when_the_call_returns() -> None:
    kept: list[PyProxy] = []
    fn = to_python(JSFunction("keep", lambda cb: kept.append(cb)))
    fn(lambda: "hi")
    with pytest.raises(JsException, match="borrowed proxy was automatically destroyed"):
        kept[0].call()
    assert BORROWED_DESTROYED in str(JsException("Error", BORROWED_DESTROYED))


def test_borrowed_proxies_live_until_a_returned_promise_settles() -> None:
    kept: list[PyProxy] = []

    async def settle() -> int:
        return 1

    def later(cb: PyProxy) -> JSPromise:
        kept.append(cb)
        return JSPromise(settle())

    fn = to_python(JSFunction("later", later))
    promise = fn(lambda: "hi")
    assert isinstance(promise, JsPromise)
    assert kept[0].call() == "hi"
    promise._js.close()


def test_create_proxy_survives_the_call_and_can_be_destroyed() -> None:
    kept: list[PyProxy] = []
    fn = to_python(JSFunction("keep", lambda cb: kept.append(cb)))
    proxy = create_proxy(lambda: "hi")
    fn(proxy)
    assert kept[0].call() == "hi"
    proxy.destroy()
    with pytest.raises(JsException, match="already been destroyed"):
        kept[0].call()


def test_create_once_callable_works_once() -> None:
    once = create_once_callable(lambda: 1)
    js = to_javascript(once)
    assert js.call() == 1
    with pytest.raises(JsException):
        js.call()


def test_errors_thrown_by_javascript_are_jsexceptions() -> None:
    def throw() -> None:
        raise TypeError("bad argument")

    fn = to_python(JSFunction("throws", throw))
    with pytest.raises(JsException) as info:
        fn()
    assert info.value.name == "TypeError"
    assert info.value.message == "bad argument"
    assert isinstance(info.value.__cause__, TypeError)


def test_a_python_error_through_javascript_is_the_original_again() -> None:
    class Mine(Exception):
        pass

    def boom() -> None:
        raise Mine("from Python")

    calls = to_python(JSFunction("call", lambda cb: cb.call()))
    with pytest.raises(Mine, match=r"^from Python$"):
        calls(boom)


def test_calling_a_constructor_without_new_is_refused() -> None:
    cls = to_python(JSFunction("Thing", None, construct=lambda: {"made": True}))
    assert isinstance(cls, JsCallable)
    assert cls.new().made is True
    with pytest.raises(JsException, match="cannot be invoked without 'new'"):
        cls()


async def test_promises_are_awaitable_and_chain() -> None:
    async def value() -> float:
        return 41.0

    promise = to_python(JSPromise(value()))
    assert await promise.then(lambda v: v + 1) == 42

    async def fails() -> None:
        raise ValueError("no")

    with pytest.raises(JsException, match="RangeError: no"):
        await to_python(JSPromise(fails()))
    recovered = await to_python(JSPromise(fails())).catch(lambda exc: "caught")
    assert recovered == "caught"


def test_call_js_converts_results() -> None:
    assert type(call_js(lambda: 3.0, (), {})) is int
    assert call_js(lambda: jsnull, (), {}) is jsnull


def test_a_socket_is_seen_through_one_proxy_whose_methods_are_kept() -> None:
    import gc
    import weakref

    from runtime.sockets import WebSocketPair

    server = WebSocketPair().server
    first, second = to_python(server), to_python(server)
    assert first is second  # one face per socket (Pyodide makes two; nothing observable differs)
    assert first == second
    assert first.send is first.send  # the method is kept on the proxy
    assert first.readyState == 1  # properties are read each time, never kept
    gone = weakref.ref(server)
    del server, first, second
    gc.collect()
    assert gone() is None  # the socket and its proxy go together: no leak
