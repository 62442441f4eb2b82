"""The JavaScript surfaces of the runtime's objects, as Pyodide code reaches them.

In production, ``ctx``, a ``WebSocket``, a stub, ``env.DB`` and the rest are
JavaScript objects; Python code holds ``JsProxy`` objects of them and every
call crosses Pyodide's boundary (:mod:`runtime.pyworkers._ffi`). Here the
runtime's objects play those JavaScript objects, and each class below is the
``JsProxy`` of one of them: it names the JavaScript properties and methods
(``js_<name>`` methods take and return JavaScript values) and refuses, with
production's consequence and the fix, a value production would mis-convert.

Invariants:

* A ``js_`` method receives JavaScript values only (:func:`~._ffi.call_js`
  converted the Python arguments) and returns a JavaScript value; a method
  whose JavaScript counterpart returns a promise returns a :class:`JSPromise`.
* A borrowed PyProxy (a Python ``dict``, ``list``, ``bytes``, function...
  passed without ``to_js`` / ``create_proxy``) is refused wherever the
  JavaScript API could not use it, before anything happens; the message
  names the call, the argument, what production does with it, and the fix.
* Values stored or sent through the runtime cross as runtime values
  (:func:`runtime_value` / :func:`js_value`): a ``Uint8Array`` is ``bytes``,
  an ``Object`` or a ``Map`` a ``dict`` (a stored ``Map`` comes back as an
  ``Object``: shardsim's storage keeps no other distinction), ``null`` None.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json as _json
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import runtime
import shards
from runtime._alarms import AlarmInfo
from runtime._core import Pending
from runtime._http import Headers, Request, Response
from runtime._ids import DurableObjectId
from runtime._object import DurableObjectState
from runtime._runtime import Env
from runtime._stub import DurableObjectNamespace, DurableObjectStub
from runtime.d1 import D1Database, D1DatabaseSession, D1PreparedStatement, D1TypeError
from runtime.sockets import CloseEvent, MessageEvent, WebSocket, WebSocketPair, WebSocketRequestResponsePair
from runtime.storage import (
    DurableObjectStorage,
    DurableObjectTransaction,
    RawCursor,
    SqlStorage,
    SqlStorageCursor,
    SyncKV,
)

from ._ffi import (
    JSArrayBuffer,
    JSFunction,
    JSMap,
    JSPromise,
    JsProxy,
    JSSet,
    JSUint8Array,
    PyProxy,
    PythonError,
    jsnull,
    register_host,
    to_javascript,
    to_python,
)

__all__ = [
    "ExecutionContext",
    "ScheduledController",
    "HostProxy",
    "js_value",
    "refuse_pyproxy",
    "runtime_value",
]


def describe(value: Any) -> str:
    """A Python value as an error message names it."""
    if type(value) is PyProxy:
        value = value.obj
    return f"a Python {type(value).__name__}"


_OWN_DIRS: tuple[str, ...] = tuple(
    str(Path(p).resolve().parent) + os.sep for p in (runtime.__file__ or "", shards.__file__ or "")
)


def user_location() -> str:
    """Where the Worker code that made the current call is: ``file:line, in Class.method``."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            filename = frame.f_code.co_filename
            if (
                not filename.startswith(_OWN_DIRS)
                and "/site-packages/" not in filename
                and not filename.startswith("<")
            ):
                owner = frame.f_locals.get("self")
                name = frame.f_code.co_name
                where = f"{type(owner).__name__}.{name}" if owner is not None else name
                return f"{filename}:{frame.f_lineno}, in {where}"
            frame = frame.f_back
        return ""
    finally:
        del frame


def refuse_pyproxy(api: str, what: str, value: PyProxy, consequence: str, fix: str) -> NoReturn:
    """Refuse a borrowed PyProxy where production would mis-use it.

    Args:
        api: The call, as Worker code writes it (``ws.send()``).
        what: The argument (``the message``).
        value: The proxy.
        consequence: What production does with it.
        fix: How to write it instead.
    """
    where = user_location()
    raise TypeError(
        f"{api}: {what}, {describe(value)}, reaches JavaScript as a PyProxy (Pyodide converts only "
        f"str, int, float, bool and None by itself); {consequence}. {fix}" + (f" [{where}]" if where else "")
    )


_TO_JS_FIX = "Convert it first: to_js(value) (from pyodide.ffi import to_js)"
_TO_OBJECT_FIX = (
    "Convert it first: to_js(value, dict_converter=js.Object.fromEntries) "
    "(from pyodide.ffi import to_js; import js)"
)


def runtime_value(js: Any, api: str, what: str = "the value") -> Any:
    """A JavaScript value as the runtime stores or sends it (structured clone).

    Raises:
        TypeError: the value holds something structured clone refuses: a
            borrowed PyProxy (production: ``DataCloneError``), a function, a
            host object.
    """
    if js is None or js is jsnull:
        return None
    t = type(js)
    if t is str or t is bool or t is int or t is float:
        return js
    if t is dict:
        return {str(k): runtime_value(v, api, what) for k, v in js.items()}
    if t is JSMap:
        out: dict[str, Any] = {}
        for k, v in js.items():
            if not isinstance(k, str):
                raise TypeError(
                    f"{api}: {what} is a Map with a non-string key ({k!r}), which shardsim cannot store"
                )
            out[k] = runtime_value(v, api, what)
        return out
    if t is list or t is JSSet:
        return [runtime_value(v, api, what) for v in js]
    if t is JSUint8Array or t is JSArrayBuffer:
        return bytes(js)
    if isinstance(js, _dt.datetime):
        return js
    if t is PyProxy:
        refuse_pyproxy(
            api,
            what,
            js,
            "structured clone cannot copy it (DataCloneError: could not be cloned)",
            _TO_OBJECT_FIX,
        )
    raise TypeError(f"{api}: {what} holds {to_python(js)!r}, which cannot be cloned (DataCloneError)")


def js_value(value: Any) -> Any:
    """A runtime value as JavaScript sees it (the inverse of :func:`runtime_value`; None is ``null``)."""
    if value is None:
        return jsnull
    t = type(value)
    if t is str or t is bool or t is int or t is float:
        return value
    if t is dict:
        return {k: js_value(v) for k, v in value.items()}
    if t is list:
        return [js_value(v) for v in value]
    if t is bytes or t is bytearray or t is memoryview:
        return JSUint8Array(value)
    if isinstance(value, dict):
        return {k: js_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [js_value(v) for v in value]
    return value


def _string(js: Any, api: str, what: str) -> str:
    if isinstance(js, str):
        return js
    if type(js) is PyProxy:
        refuse_pyproxy(api, what, js, "JavaScript would use its text instead", "Pass a str")
    if js is None:
        return "undefined"
    if js is jsnull:
        return "null"
    if isinstance(js, bool):
        return "true" if js else "false"
    if isinstance(js, int | float):
        return str(to_python(js))
    raise TypeError(f"{api}: {what} must be a string")


def _options(js: Any, api: str) -> dict[str, Any] | None:
    """An options argument: a plain object (keyword arguments become one), or undefined."""
    if js is None:
        return None
    if type(js) is dict:
        return {k: runtime_value(v, api, f"option {k!r}") for k, v in js.items()}
    if type(js) is PyProxy:
        refuse_pyproxy(
            api,
            "the options",
            js,
            "workerd would not read its keys",
            "Pass the options as keyword arguments (Pyodide makes them an object), or "
            "to_js(options, dict_converter=js.Object.fromEntries)",
        )
    raise TypeError(f"{api}: the options must be an object")


def _promise(awaitable: Awaitable[Any], convert: Callable[[Any], Any] = js_value) -> JSPromise:
    return JSPromise(awaitable, convert=convert)


#: Per proxy class: JavaScript name -> (is a method, the ``js_``/``prop_`` function).
_MEMBERS: dict[type, dict[str, tuple[bool, Callable[..., Any]]]] = {}


def _members(cls: type) -> dict[str, tuple[bool, Callable[..., Any]]]:
    members = _MEMBERS.get(cls)
    if members is None:
        members = {}
        for attr in dir(cls):
            if attr.startswith("js_"):
                members[attr[3:]] = (True, getattr(cls, attr))
            elif attr.startswith("prop_"):
                members[attr[5:]] = (False, getattr(cls, attr))
        _MEMBERS[cls] = members
    return members


class HostProxy(JsProxy):
    """The ``JsProxy`` of a runtime object: ``prop_<name>`` properties and ``js_<name>`` methods.

    Speed (these run for every ``ws.send`` of a broadcast): a proxy keeps
    each method it handed out, so reading ``ws.send`` again is a plain
    attribute hit (a host object's methods never change); a class with
    ``_reuse`` set is shown through one proxy per runtime object, kept in
    the object's ``js_proxy`` attribute (its host type must have one), so
    the proxies ``ctx.getWebSockets()`` returns keep those methods between
    events. Pyodide makes a new proxy each time; nothing Worker code can
    observe depends on the difference (proxies compare by the object).
    """

    __slots__ = ()
    _js_name: ClassVar[str] = "Object"
    _reuse: ClassVar[bool] = False

    def __new__(cls, js: Any) -> Any:
        if not cls._reuse:
            return object.__new__(cls)
        proxy = js.js_proxy
        if type(proxy) is not cls:
            proxy = js.js_proxy = object.__new__(cls)
        return proxy

    def __getattr__(self, name: str) -> Any:
        member = _members(type(self)).get(name)
        if member is None or not member[0]:
            return super().__getattr__(name)
        method = to_python(JSFunction(name, member[1].__get__(self)))
        object.__setattr__(self, name, method)
        return method

    def _js_get(self, name: str) -> Any:
        member = _members(type(self)).get(name)
        if member is None:
            raise AttributeError(name)
        is_method, fn = member
        if is_method:
            return JSFunction(name, fn.__get__(self))
        return fn(self)

    def _js_keys(self) -> list[str]:
        return sorted(attr.split("_", 1)[1] for attr in dir(type(self)) if attr.startswith(("prop_", "js_")))

    def _js_type_name(self) -> str:
        return self._js_name


def _bind(host_type: type, proxy: type[HostProxy]) -> type[HostProxy]:
    register_host(host_type, proxy)
    return proxy


# ---------------------------------------------------------------------------------------------
# WebSocket


_SEND_CONSEQUENCE = "workerd would send its text (for bytes, \"b'...'\") instead of its contents"


class JsWebSocket(HostProxy):
    """A ``WebSocket`` (one end of a ``WebSocketPair``)."""

    __slots__ = ()
    _js_name = "WebSocket"
    _reuse = True

    def prop_readyState(self) -> int:
        return int(self._js.readyState)

    def prop_CONNECTING(self) -> int:
        return 0

    def prop_OPEN(self) -> int:
        return 1

    def prop_CLOSING(self) -> int:
        return 2

    def prop_CLOSED(self) -> int:
        return 3

    def js_accept(self) -> None:
        self._js.accept()

    def js_send(self, message: Any = None) -> None:
        t = type(message)
        if t is str:
            self._js.send(message)
        elif t is JSUint8Array or t is JSArrayBuffer:
            self._js.send(bytes(message))
        elif t is PyProxy:
            fix = (
                "Pass to_js(data) to send its bytes (from pyodide.ffi import to_js)"
                if isinstance(message.obj, bytes | bytearray | memoryview)
                else "Pass a str (json.dumps(value) for structured data), or to_js(data) for bytes"
            )
            refuse_pyproxy("ws.send()", "the message", message, _SEND_CONSEQUENCE, fix)
        else:
            self._js.send(_string(message, "ws.send()", "the message"))

    def js_close(self, code: Any = None, reason: Any = None) -> None:
        if code is None:
            self._js.close()
        else:
            self._js.close(code, "" if reason is None else _string(reason, "ws.close()", "the reason"))

    def js_serializeAttachment(self, value: Any = None) -> None:
        self._js.serializeAttachment(runtime_value(value, "ws.serializeAttachment()", "the attachment"))

    def js_deserializeAttachment(self) -> Any:
        return js_value(self._js.deserializeAttachment())

    def js_addEventListener(self, type: Any, listener: Any = None) -> None:
        event_type = _string(type, "ws.addEventListener()", "the event type")
        callback = _callback(listener, "ws.addEventListener()", "the listener")
        self._js.addEventListener(event_type, callback)


def _callback(js: Any, api: str, what: str) -> Callable[..., Any]:
    """A JavaScript callback that will be kept and called later, as a Python callable."""
    if type(js) is JSFunction and js.fn is not None:
        return js.fn
    if type(js) is PyProxy:
        if js.borrowed:
            raise TypeError(
                f"{api}: {what} is {describe(js)}, which Pyodide passes as a borrowed proxy and destroys "
                'when the call returns, so calling it later would fail in production ("This borrowed '
                'proxy was automatically destroyed at the end of a function call"). Wrap it: '
                "create_proxy(fn), or create_once_callable(fn) for a single call (from pyodide.ffi import ...)"
                + (f" [{user_location()}]" if user_location() else "")
            )
        proxy = js

        def call(*js_args: Any) -> Any:
            return proxy.call(*js_args)

        return call
    raise TypeError(f"{api}: {what} must be a function")


_bind(WebSocket, JsWebSocket)


class JsMessageEvent(HostProxy):
    """The event a ``message`` listener receives."""

    __slots__ = ()
    _js_name = "MessageEvent"

    def prop_type(self) -> str:
        return "message"

    def prop_data(self) -> Any:
        data = self._js.data
        return JSArrayBuffer(data) if isinstance(data, bytes | bytearray) else data


_bind(MessageEvent, JsMessageEvent)


class JsCloseEvent(HostProxy):
    """The event a ``close`` listener receives."""

    __slots__ = ()
    _js_name = "CloseEvent"

    def prop_type(self) -> str:
        return "close"

    def prop_code(self) -> int:
        return int(self._js.code)

    def prop_reason(self) -> str:
        return str(self._js.reason)

    def prop_wasClean(self) -> bool:
        return bool(self._js.wasClean)


_bind(CloseEvent, JsCloseEvent)


class JsWebSocketPair(HostProxy):
    """``new WebSocketPair()``: properties ``0`` (client) and ``1`` (server)."""

    __slots__ = ()
    _js_name = "WebSocketPair"

    def _js_get(self, name: str) -> Any:
        if name == "0":
            return self._js.client
        if name == "1":
            return self._js.server
        raise AttributeError(name)

    def _js_keys(self) -> list[str]:
        return ["0", "1"]


_bind(WebSocketPair, JsWebSocketPair)


class JsWebSocketRequestResponsePair(HostProxy):
    """``new WebSocketRequestResponsePair(request, response)``."""

    __slots__ = ()
    _js_name = "WebSocketRequestResponsePair"

    def prop_request(self) -> str:
        return str(self._js.request)

    def prop_response(self) -> str:
        return str(self._js.response)


_bind(WebSocketRequestResponsePair, JsWebSocketRequestResponsePair)


# ---------------------------------------------------------------------------------------------
# DurableObjectState (ctx)


class JsDurableObjectState(HostProxy):
    """``ctx``, the object's ``DurableObjectState``."""

    __slots__ = ()
    _js_name = "DurableObjectState"

    def prop_id(self) -> Any:
        return self._js.id

    def prop_storage(self) -> Any:
        return self._js.storage

    def js_acceptWebSocket(self, ws: Any = None, tags: Any = None) -> None:
        api = "ctx.acceptWebSocket()"
        if not isinstance(ws, WebSocket):
            if type(ws) is PyProxy:
                refuse_pyproxy(
                    api, "the socket", ws, "workerd expects a WebSocket", "Pass the WebSocket itself"
                )
            raise TypeError(f"{api}: the first argument must be a WebSocket")
        checked: list[str] | None = None
        if tags is not None:
            if type(tags) is PyProxy:
                refuse_pyproxy(
                    api,
                    "the tags",
                    tags,
                    "workerd expects an array of strings and throws a TypeError",
                    "Convert them: to_js(tags) (from pyodide.ffi import to_js)",
                )
            if type(tags) is not list:
                raise TypeError(f"{api}: the tags must be an array of strings")
            checked = [_string(t, api, "a tag") for t in tags]
        self._js.acceptWebSocket(ws, checked)

    def js_getWebSockets(self, tag: Any = None) -> list[Any]:
        return list(
            self._js.getWebSockets(None if tag is None else _string(tag, "ctx.getWebSockets()", "the tag"))
        )

    def js_getTags(self, ws: Any = None) -> list[Any]:
        return list(self._js.getTags(ws))

    def js_setWebSocketAutoResponse(self, pair: Any = None) -> None:
        self._js.setWebSocketAutoResponse(None if pair is None or pair is jsnull else pair)

    def js_getWebSocketAutoResponse(self) -> Any:
        pair = self._js.getWebSocketAutoResponse()
        return jsnull if pair is None else pair

    def js_getWebSocketAutoResponseTimestamp(self, ws: Any = None) -> Any:
        when = self._js.getWebSocketAutoResponseTimestamp(ws)
        return jsnull if when is None else when

    def js_setHibernatableWebSocketEventTimeout(self, timeoutMs: Any = None) -> None:
        self._js.setHibernatableWebSocketEventTimeout(None if timeoutMs is jsnull else timeoutMs)

    def js_getHibernatableWebSocketEventTimeout(self) -> Any:
        ms = self._js.getHibernatableWebSocketEventTimeout()
        return jsnull if ms is None else ms

    def js_blockConcurrencyWhile(self, callback: Any = None) -> JSPromise:
        api = "ctx.blockConcurrencyWhile()"
        fn = _async_callback(callback, api)
        pending: Pending[Any] = self._js.blockConcurrencyWhile(fn)
        return _promise(pending, lambda v: v)

    def js_waitUntil(self, promise: Any = None) -> None:
        self._js.waitUntil(_awaitable(promise, "ctx.waitUntil()"))

    def js_abort(self, reason: Any = None) -> None:
        self._js.abort(None if reason is None else _string(reason, "ctx.abort()", "the reason"))


def _async_callback(js: Any, api: str) -> Callable[[], Awaitable[Any]]:
    """A callback JavaScript calls once and whose promise it awaits (borrowed proxies live that long)."""
    if type(js) is PyProxy:
        proxy = js
        proxy.borrowed = False  # the promise keeps it alive; it is used once, now

        async def run() -> Any:
            result = proxy.get()()
            if inspect.isawaitable(result):
                result = await result
            return to_javascript(result, borrowed=False)

        return run
    if type(js) is JSFunction and js.fn is not None:
        fn = js.fn

        async def run_js() -> Any:
            result = fn()
            if type(result) is JSPromise:
                result = await result.settle()
            return result

        return run_js
    raise TypeError(f"{api}: the callback must be a function")


def _awaitable(js: Any, api: str) -> Awaitable[Any]:
    if type(js) is JSPromise:
        return js.settle()
    if type(js) is PyProxy and inspect.isawaitable(js.obj):
        return js.obj
    raise TypeError(f"{api}: the argument must be a promise (an awaitable)")


_bind(DurableObjectState, JsDurableObjectState)


class JsDurableObjectId(HostProxy):
    """A ``DurableObjectId``."""

    __slots__ = ()
    _js_name = "DurableObjectId"

    def prop_name(self) -> Any:
        return self._js.name

    def prop_jurisdiction(self) -> Any:
        return self._js.jurisdiction

    def js_toString(self) -> str:
        return str(self._js.toString())

    def js_equals(self, other: Any = None) -> bool:
        return isinstance(other, DurableObjectId) and bool(self._js.equals(other))

    def _js_to_string(self) -> str:
        return str(self._js.toString())


_bind(DurableObjectId, JsDurableObjectId)


class JsAlarmInfo(HostProxy):
    """What ``alarm(alarmInfo)`` receives: ``retryCount``, ``isRetry``."""

    __slots__ = ()

    def prop_retryCount(self) -> int:
        return int(self._js.retryCount)

    def prop_isRetry(self) -> bool:
        return bool(self._js.isRetry)


_bind(AlarmInfo, JsAlarmInfo)


# ---------------------------------------------------------------------------------------------
# Storage


def _keys(js: Any, api: str) -> Any:
    if type(js) is list:
        return [_string(k, api, "a key") for k in js]
    if type(js) is PyProxy:
        refuse_pyproxy(api, "the keys", js, "workerd expects a string or an array of strings", _TO_JS_FIX)
    return _string(js, api, "the key")


class JsStorage(HostProxy):
    """``ctx.storage`` (``DurableObjectStorage``)."""

    __slots__ = ()
    _js_name = "DurableObjectStorage"

    def prop_sql(self) -> Any:
        return self._js.sql

    def prop_kv(self) -> Any:
        return self._js.kv

    def js_get(self, keys: Any = None, options: Any = None) -> JSPromise:
        api = "storage.get()"
        checked = _keys(keys, api)
        result = self._js.get(checked, _options(options, api))
        if isinstance(checked, list):
            return _promise(result, lambda found: JSMap((k, js_value(v)) for k, v in found.items()))
        return _promise(result, lambda v: None if v is None else js_value(v))

    def js_list(self, options: Any = None) -> JSPromise:
        api = "storage.list()"
        return _promise(
            self._js.list(_options(options, api)),
            lambda found: JSMap((k, js_value(v)) for k, v in found.items()),
        )

    def js_put(self, key: Any = None, value: Any = None, options: Any = None, *rest: Any) -> JSPromise:
        api = "storage.put()"
        if type(key) is dict or type(key) is JSMap:
            entries = runtime_value(key, api, "the entries")
            return _promise(self._js.put(entries, None, _options(value, api)))
        if type(key) is PyProxy:
            refuse_pyproxy(
                api, "the key or entries", key, "workerd expects a string or an object", _TO_OBJECT_FIX
            )
        checked = _string(key, api, "the key")
        if value is None:
            raise TypeError("put() called with undefined value.")
        stored = runtime_value(value, api)
        return _promise(self._js.put(checked, stored, _options(options, api)))

    def js_delete(self, keys: Any = None, options: Any = None) -> JSPromise:
        api = "storage.delete()"
        return _promise(self._js.delete(_keys(keys, api), _options(options, api)))

    def js_deleteAll(self, options: Any = None) -> JSPromise:
        return _promise(self._js.deleteAll(_options(options, "storage.deleteAll()")))

    def js_getAlarm(self, options: Any = None) -> JSPromise:
        return _promise(self._js.getAlarm(_options(options, "storage.getAlarm()")))

    def js_setAlarm(self, scheduledTime: Any = None, options: Any = None) -> JSPromise:
        api = "storage.setAlarm()"
        if type(scheduledTime) is PyProxy:
            refuse_pyproxy(
                api,
                "the time",
                scheduledTime,
                "workerd expects a number or a Date",
                "Pass milliseconds since the epoch (an int), or a datetime converted with to_js",
            )
        when = to_python(scheduledTime) if isinstance(scheduledTime, float) else scheduledTime
        return _promise(self._js.setAlarm(when, _options(options, api)))

    def js_deleteAlarm(self, options: Any = None) -> JSPromise:
        return _promise(self._js.deleteAlarm(_options(options, "storage.deleteAlarm()")))

    def js_sync(self) -> JSPromise:
        return _promise(self._js.sync())

    def js_transaction(self, closure: Any = None) -> JSPromise:
        api = "storage.transaction()"
        if type(closure) is PyProxy:
            proxy = closure
            proxy.borrowed = False

            async def run(txn: Any) -> Any:
                # What the closure raises travels through JavaScript as a PythonError, which
                # the awaiting Python code receives as the original exception (Pyodide's rule).
                try:
                    result = proxy.get()(to_python(txn))
                    if inspect.isawaitable(result):
                        result = await result
                except Exception as exc:
                    raise PythonError(exc) from exc
                return to_javascript(result, borrowed=False)

            return _promise(self._js.transaction(run), lambda v: v)
        raise TypeError(f"{api}: the closure must be a function")

    def js_transactionSync(self, closure: Any = None) -> Any:
        if type(closure) is not PyProxy:
            raise TypeError("storage.transactionSync(): the closure must be a function")
        fn = closure.get()
        if inspect.iscoroutinefunction(fn):
            # The runtime refuses an async closure with production's message.
            return to_javascript(self._js.transactionSync(fn), borrowed=False)

        def run() -> Any:
            try:
                return fn()
            except Exception as exc:
                raise PythonError(exc) from exc  # the original again in Python (see js_transaction)

        return to_javascript(self._js.transactionSync(run), borrowed=False)


_bind(DurableObjectStorage, JsStorage)


class JsTransaction(JsStorage):
    """The ``txn`` of a ``storage.transaction()`` closure."""

    __slots__ = ()
    _js_name = "DurableObjectTransaction"

    def js_rollback(self) -> None:
        self._js.rollback()


_bind(DurableObjectTransaction, JsTransaction)


_BINDING_FIX = "Bind a str, a number, None or bytes (a BLOB); json.dumps(value) to store structured data"

#: JavaScript objects bound to ``sql.exec()``: (what it is, where it came from, its text). workerd's
#: binding type is ArrayBuffer(View) | string | number | null, so JSG binds any other object's String().
_BOUND_OBJECTS: dict[type, tuple[str, str, str]] = {
    list: ("an Array", "the SDK's conversion of a Python list", "its elements joined by commas"),
    dict: ("an Object", "the SDK's conversion of a Python dict", "'[object Object]'"),
    JSSet: ("a Set", "the SDK's conversion of a Python set", "'[object Set]'"),
    JSMap: ("a Map", "to_js() of a Python dict", "'[object Map]'"),
}


def _bindings(values: tuple[Any, ...], api: str) -> list[Any]:
    out: list[Any] = []
    for i, v in enumerate(values, 1):
        t = type(v)
        if v is None or v is jsnull:
            out.append(None)
        elif t is JSUint8Array or t is JSArrayBuffer:
            out.append(bytes(v))
        elif t is PyProxy:
            refuse_pyproxy(
                api,
                f"binding {i}",
                v,
                "workerd would bind its text (str(value)) instead of the value",
                _BINDING_FIX,
            )
        elif t in _BOUND_OBJECTS:
            kind, origin, text = _BOUND_OBJECTS[t]
            where = user_location()
            raise TypeError(
                f"{api}: binding {i} is {kind} ({origin}); workerd would bind its text ({text}) "
                f"instead of the value. {_BINDING_FIX}" + (f" [{where}]" if where else "")
            )
        else:
            out.append(v)
    return out


class JsSqlStorage(HostProxy):
    """``ctx.storage.sql``."""

    __slots__ = ()
    _js_name = "SqlStorage"

    def prop_databaseSize(self) -> int:
        return int(self._js.databaseSize)

    def js_exec(self, query: Any = None, *bindings: Any) -> Any:
        api = "sql.exec()"
        return self._js.exec(_string(query, api, "the query"), *_bindings(bindings, api))


_bind(SqlStorage, JsSqlStorage)


class JsSqlCursor(HostProxy):
    """The cursor ``sql.exec()`` returns: an iterator of row objects."""

    __slots__ = ()
    _js_name = "Cursor"

    def prop_columnNames(self) -> list[str]:
        return list(self._js.columnNames)

    def prop_rowsRead(self) -> int:
        return int(self._js.rowsRead)

    def prop_rowsWritten(self) -> int:
        return int(self._js.rowsWritten)

    def js_toArray(self) -> list[Any]:
        return [js_value(row) for row in self._js.toArray()]

    def js_one(self) -> Any:
        return js_value(self._js.one())

    def js_raw(self) -> Any:
        return self._js.raw()

    def js_next(self) -> Any:
        step = self._js.next()
        return {"done": step["done"], "value": None if step["done"] else js_value(step["value"])}

    def __iter__(self) -> Iterator[Any]:
        for row in self._js:
            yield to_python(js_value(row))


_bind(SqlStorageCursor, JsSqlCursor)


class JsSqlRawIterator(HostProxy):
    """What ``cursor.raw()`` returns: an iterator of rows as arrays of values (workerd's ``RawIterator``)."""

    __slots__ = ()
    _js_name = "RawIterator"

    def js_toArray(self) -> list[Any]:
        return [[js_value(v) for v in row] for row in self._js.toArray()]

    def js_next(self) -> Any:
        step = self._js.next()
        if step["done"]:
            return {"done": True, "value": None}
        return {"done": False, "value": [js_value(v) for v in step["value"]]}

    def __iter__(self) -> Iterator[Any]:
        for row in self._js:
            yield to_python([js_value(v) for v in row])


_bind(RawCursor, JsSqlRawIterator)


class JsSyncKV(HostProxy):
    """``ctx.storage.kv``: the synchronous KV API."""

    __slots__ = ()
    _js_name = "SyncKvStorage"

    def js_get(self, key: Any = None) -> Any:
        value = self._js.get(_string(key, "kv.get()", "the key"))
        return None if value is None else js_value(value)

    def js_put(self, key: Any = None, value: Any = None) -> None:
        api = "kv.put()"
        self._js.put(_string(key, api, "the key"), runtime_value(value, api))

    def js_delete(self, key: Any = None) -> bool:
        return bool(self._js.delete(_string(key, "kv.delete()", "the key")))

    def js_list(self, options: Any = None) -> Any:
        entries = [[k, js_value(v)] for k, v in self._js.list(_options(options, "kv.list()"))]
        return KvListIterator(iter(entries))


_bind(SyncKV, JsSyncKV)


class KvListIterator:
    """What ``kv.list()`` returns: an iterator of ``[key, value]`` arrays, not an array (workerd's)."""

    __slots__ = ("entries",)

    def __init__(self, entries: Iterator[list[Any]]) -> None:
        self.entries = entries


class JsKvListIterator(HostProxy):
    """``kv.list()``'s iterator: ``next()`` and iteration; no length, no indexing."""

    __slots__ = ()
    _js_name = "ListIterator"

    def js_next(self) -> Any:
        entry = next(self._js.entries, None)
        return {"done": True, "value": None} if entry is None else {"done": False, "value": entry}

    def __iter__(self) -> Iterator[Any]:
        for entry in self._js.entries:
            yield to_python(entry)


_bind(KvListIterator, JsKvListIterator)


# ---------------------------------------------------------------------------------------------
# Namespaces and stubs


class JsNamespace(HostProxy):
    """``env.BINDING``: a ``DurableObjectNamespace``."""

    __slots__ = ()
    _js_name = "DurableObjectNamespace"

    def js_idFromName(self, name: Any = None) -> Any:
        return self._js.idFromName(_string(name, "idFromName()", "the name"))

    def js_idFromString(self, id: Any = None) -> Any:
        return self._js.idFromString(_string(id, "idFromString()", "the id"))

    def js_newUniqueId(self, options: Any = None) -> Any:
        return self._js.newUniqueId(_options(options, "newUniqueId()"))

    def js_get(self, id: Any = None, options: Any = None) -> Any:
        if not isinstance(id, DurableObjectId):
            raise TypeError("get(): the first argument must be a DurableObjectId")
        return self._js.get(id, _options(options, "get()"))

    def js_getByName(self, name: Any = None, options: Any = None) -> Any:
        return self._js.getByName(_string(name, "getByName()", "the name"), _options(options, "getByName()"))

    def js_jurisdiction(self, jurisdiction: Any = None) -> Any:
        return self._js.jurisdiction(_string(jurisdiction, "jurisdiction()", "the jurisdiction"))


_bind(DurableObjectNamespace, JsNamespace)


class JsStub(HostProxy):
    """A ``DurableObjectStub``: ``fetch`` and any RPC method."""

    __slots__ = ()
    _js_name = "DurableObject"

    def prop_id(self) -> Any:
        return self._js.id

    def prop_name(self) -> Any:
        return self._js.name

    def js_fetch(self, input: Any = None, init: Any = None) -> JSPromise:
        return JSPromise(
            self._js.fetch(_request_input(input, "stub.fetch()"), **(_init(init, "stub.fetch()") or {}))
        )

    def _js_get(self, name: str) -> Any:
        if name in ("id", "name", "fetch"):
            return super()._js_get(name)
        stub = self._js

        def call(*js_args: Any) -> JSPromise:
            api = f"stub.{name}()"
            args = [runtime_value(a, api, f"argument {i}") for i, a in enumerate(js_args, 1)]
            return _promise(getattr(stub, name)(*args))

        return JSFunction(name, call)


_bind(DurableObjectStub, JsStub)


def _request_input(js: Any, api: str) -> Any:
    if isinstance(js, Request | str):
        return js
    if type(js) is PyProxy:
        refuse_pyproxy(
            api, "the request", js, "workerd reads its text as a URL", "Pass a URL string or a Request"
        )
    return _string(js, api, "the URL")


def _init(js: Any, api: str) -> dict[str, Any] | None:
    if js is None:
        return None
    if type(js) is dict:
        init: dict[str, Any] = {}
        for k, v in js.items():
            if k == "body" and (type(v) is JSUint8Array or type(v) is JSArrayBuffer):
                init[k] = bytes(v)
            elif k == "headers" and type(v) in (dict, list):
                init[k] = runtime_value(v, api, "the headers")
            else:
                init[k] = v
        return init
    if type(js) is PyProxy:
        refuse_pyproxy(api, "the init", js, "workerd would not read its keys", _TO_OBJECT_FIX)
    raise TypeError(f"{api}: the init must be an object")


# ---------------------------------------------------------------------------------------------
# D1


class JsD1Database(HostProxy):
    """``env.DB``: a ``D1Database``."""

    __slots__ = ()
    _js_name = "D1Database"

    def js_prepare(self, query: Any = None) -> Any:
        return self._js.prepare(_string(query, "prepare()", "the query"))

    def js_batch(self, statements: Any = None) -> JSPromise:
        if type(statements) is PyProxy:
            refuse_pyproxy("batch()", "the statements", statements, "workerd expects an array", _TO_JS_FIX)
        if type(statements) is not list:
            raise TypeError("batch(): the statements must be an array")
        return _promise(self._js.batch(list(statements)))

    def js_exec(self, query: Any = None) -> JSPromise:
        return _promise(self._js.exec(_string(query, "exec()", "the query")))

    def js_withSession(self, constraintOrBookmark: Any = None) -> Any:
        if constraintOrBookmark is None:
            return self._js.withSession()
        return self._js.withSession(_string(constraintOrBookmark, "withSession()", "the bookmark"))


_bind(D1Database, JsD1Database)


class JsD1Session(JsD1Database):
    """``db.withSession(...)``."""

    __slots__ = ()
    _js_name = "D1DatabaseSession"

    def js_getBookmark(self) -> Any:
        bookmark = self._js.getBookmark()
        return jsnull if bookmark is None else bookmark


_bind(D1DatabaseSession, JsD1Session)


class JsD1Statement(HostProxy):
    """A ``D1PreparedStatement``."""

    __slots__ = ()
    _js_name = "D1PreparedStatement"

    def js_bind(self, *values: Any) -> Any:
        api = "bind()"
        converted: list[Any] = []
        for i, v in enumerate(values, 1):
            if type(v) is JSUint8Array or type(v) is JSArrayBuffer:
                converted.append(bytes(v))
            elif v is jsnull:
                converted.append(None)
            elif v is None:
                converted.append(_UNDEFINED)
            elif type(v) is PyProxy:
                refuse_pyproxy(
                    api,
                    f"value {i}",
                    v,
                    "D1 cannot bind it (D1_TYPE_ERROR)",
                    "Bind a str, a number, a bool, None, or to_js(bytes)",
                )
            elif type(v) is JSSet or type(v) is JSMap:
                # D1 takes arrays of bytes and buffers; any other object fails with this (d1-api.ts).
                name = "Set" if type(v) is JSSet else "Map"
                detail = f"Type 'object' not supported for value '[object {name}]'"
                raise D1TypeError(f"D1_TYPE_ERROR: {detail}", detail=detail)
            else:
                converted.append(v)
        return self._js.bind(*[None if v is _UNDEFINED else v for v in converted])

    def js_first(self, column: Any = None) -> JSPromise:
        if column is None:
            return _promise(self._js.first())
        return _promise(self._js.first(_string(column, "first()", "the column")))

    def js_all(self) -> JSPromise:
        return _promise(self._js.all())

    def js_run(self) -> JSPromise:
        return _promise(self._js.run())

    def js_raw(self, options: Any = None) -> JSPromise:
        return _promise(self._js.raw(_options(options, "raw()")))


_UNDEFINED = object()

_bind(D1PreparedStatement, JsD1Statement)


# ---------------------------------------------------------------------------------------------
# Request, Response, Headers


class JsHeaders(HostProxy):
    """A ``Headers`` object."""

    __slots__ = ()
    _js_name = "Headers"

    def js_get(self, name: Any = None) -> Any:
        value = self._js.get(_string(name, "headers.get()", "the name"))
        return jsnull if value is None else value

    def js_has(self, name: Any = None) -> bool:
        return bool(self._js.has(_string(name, "headers.has()", "the name")))

    def js_set(self, name: Any = None, value: Any = None) -> None:
        self._js.set(_string(name, "headers.set()", "the name"), _string(value, "headers.set()", "the value"))

    def js_append(self, name: Any = None, value: Any = None) -> None:
        self._js.append(
            _string(name, "headers.append()", "the name"), _string(value, "headers.append()", "the value")
        )

    def js_delete(self, name: Any = None) -> None:
        self._js.delete(_string(name, "headers.delete()", "the name"))

    def js_getSetCookie(self) -> list[str]:
        return list(self._js.getSetCookie())

    def js_entries(self) -> list[Any]:
        return [[k, v] for k, v in self._js.entries()]

    def js_keys(self) -> list[str]:
        return list(self._js.keys())

    def js_values(self) -> list[str]:
        return list(self._js.values())

    def __iter__(self) -> Iterator[Any]:
        for k, v in self._js.entries():
            yield to_python([k, v])


_bind(Headers, JsHeaders)


class _JsBody(HostProxy):
    """What Request and Response share: the body readers."""

    __slots__ = ()

    def prop_headers(self) -> Any:
        return self._js.headers

    def prop_bodyUsed(self) -> bool:
        return bool(self._js.body_used)

    def prop_body(self) -> Any:
        return jsnull

    def js_text(self) -> JSPromise:
        return JSPromise(self._js.text())

    def js_json(self) -> JSPromise:
        return _promise(self._js.text(), lambda text: js_value(_json.loads(text)))

    def js_arrayBuffer(self) -> JSPromise:
        return _promise(self._js.arrayBuffer(), lambda data: JSArrayBuffer(data))

    def js_bytes(self) -> JSPromise:
        return _promise(self._js.arrayBuffer(), lambda data: JSUint8Array(data))

    def js_clone(self) -> Any:
        return self._js.clone()


class JsRequest(_JsBody):
    """A ``Request``."""

    __slots__ = ()
    _js_name = "Request"

    def prop_url(self) -> str:
        return str(self._js.url)

    def prop_method(self) -> str:
        return str(self._js.method)

    def prop_cf(self) -> Any:
        return None

    def prop_redirect(self) -> str:
        return "follow"


_bind(Request, JsRequest)


class JsResponse(_JsBody):
    """A ``Response``."""

    __slots__ = ()
    _js_name = "Response"

    def prop_status(self) -> int:
        return int(self._js.status)

    def prop_statusText(self) -> str:
        return str(self._js.status_text)

    def prop_ok(self) -> bool:
        return bool(self._js.ok)

    def prop_url(self) -> str:
        return str(self._js.url)

    def prop_type(self) -> str:
        return "default"

    def prop_redirected(self) -> bool:
        return False

    def prop_webSocket(self) -> Any:
        ws = self._js.webSocket
        return jsnull if ws is None else ws


_bind(Response, JsResponse)


# ---------------------------------------------------------------------------------------------
# env, and a Worker's ExecutionContext


class JsEnv(HostProxy):
    """``env``: one property per binding and var."""

    __slots__ = ()
    _js_name = "Object"

    def _js_get(self, name: str) -> Any:
        try:
            return vars(self._js)[name]
        except KeyError:
            raise AttributeError(name) from None

    def _js_keys(self) -> list[str]:
        return sorted(vars(self._js))


_bind(Env, JsEnv)


class ExecutionContext:
    """A Worker entry point's ``ctx``: ``waitUntil`` and ``passThroughOnException``.

    ``spawn`` starts a task that outlives the request (the runtime's).
    """

    __slots__ = ("spawn",)

    def __init__(self, spawn: Callable[..., Any]) -> None:
        self.spawn = spawn


class JsExecutionContext(HostProxy):
    """The JavaScript ``ExecutionContext`` a Worker's handlers receive."""

    __slots__ = ()
    _js_name = "ExecutionContext"

    def js_waitUntil(self, promise: Any = None) -> None:
        awaitable = _awaitable(promise, "ctx.waitUntil()")

        async def run() -> None:
            await awaitable

        self._js.spawn(run)

    def js_passThroughOnException(self) -> None:
        """No origin to fall back to locally: does nothing, as under ``wrangler dev``."""

    def prop_props(self) -> dict[str, Any]:
        return {}


_bind(ExecutionContext, JsExecutionContext)


class ScheduledController:
    """What a Cron Trigger hands a Worker's ``scheduled`` handler (JavaScript's ``ScheduledController``).

    ``retry`` turns False when the handler calls ``noRetry()``.
    """

    __slots__ = ("cron", "retry", "scheduled_time")

    def __init__(self, scheduled_time: float, cron: str) -> None:
        self.scheduled_time = scheduled_time
        self.cron = cron
        self.retry = True


class JsScheduledController(HostProxy):
    """``controller.scheduledTime`` (ms since the epoch), ``controller.cron``, ``controller.noRetry()``."""

    __slots__ = ()
    _js_name = "ScheduledController"

    def prop_scheduledTime(self) -> float:
        when: float = self._js.scheduled_time
        return when

    def prop_cron(self) -> str:
        cron: str = self._js.cron
        return cron

    def js_noRetry(self) -> None:
        self._js.retry = False


_bind(ScheduledController, JsScheduledController)
