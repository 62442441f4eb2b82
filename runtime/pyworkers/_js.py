"""The ``js`` module: the JavaScript globals Python Worker code imports.

``from js import WebSocketPair, Object, JSON, Date, console, setTimeout`` and
the rest reach the JavaScript global scope in production; here each name is
a JavaScript value made by shardsim (a :class:`~._ffi.JSFunction`, or an
object of them) seen through Pyodide's rules. A name Worker code imports
that shardsim does not emulate raises an error naming what is available.

Invariants:

* Time is the runtime clock: ``Date.now()`` is what the runtime's alarms and
  storage see (virtual under ``trio.testing.MockClock``); outside a runtime
  it is the wall clock.
* ``setTimeout`` / ``setInterval`` run on the runtime's one scheduler. A
  pending timer made by an object's code pins the object (it cannot
  hibernate), as in production; its callback runs as that object's code,
  never while the object's input gate is closed, and never once the object
  was reset. A callback that returns a coroutine has it run as the
  object's background work.
* A callback must be a persistent proxy (``create_proxy``) or a JavaScript
  function: a plain Python function is a borrowed proxy production destroys
  when ``setTimeout`` returns, and is refused at the call.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import itertools
import json as _json
import logging
import math
import time
import weakref
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from runtime._core import Activation, current_activation, run_as
from runtime._http import Headers, Request, Response, _normalize_url
from runtime._runtime import Runtime, current_runtime
from runtime._scheduler import TimerHandle
from runtime.sockets import WebSocket, WebSocketPair, WebSocketRequestResponsePair

from ._errors import NotEmulatedError
from ._fetch import loopback_fetch
from ._ffi import (
    MAX_SAFE_INTEGER,
    JSArrayBuffer,
    JSError,
    JSFunction,
    JSMap,
    JSPromise,
    JSSet,
    JSUint8Array,
    PyProxy,
    jsnull,
    to_javascript,
    to_python,
)
from ._hosts import HostProxy, refuse_pyproxy, user_location

__all__ = ["GLOBALS", "now_ms"]

log = logging.getLogger("shardsim.js")

#: What ``console.*`` writes to, like wrangler dev's terminal.
_console_log = logging.getLogger("shardsim.console")


def now_ms() -> int:
    """``Date.now()``: whole milliseconds since the epoch on the current runtime's clock."""
    rt = current_runtime()
    if rt is not None:
        return int(rt.clock.now_ms())
    return int(time.time() * 1000)


def _js_string(value: Any) -> str:
    """JavaScript's String(value)."""
    if value is None:
        return "undefined"
    if value is jsnull:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        py = to_python(value)
        return str(py)
    if isinstance(value, int | str):
        return str(value)
    return str(to_python(value))


# ---------------------------------------------------------------------------------------------
# Object, JSON


def _entry_pair(entry: Any) -> tuple[str, Any]:
    """The ``[key, value]`` Object.fromEntries reads from one item (``item[0]``, ``item[1]``)."""
    if type(entry) is list:
        return _js_string(entry[0] if entry else None), entry[1] if len(entry) > 1 else None
    if type(entry) is PyProxy and isinstance(entry.obj, list | tuple):
        # A proxy of a Python sequence reads its items by index (Pyodide's PySequence).
        items = [to_javascript(v, borrowed=False) for v in entry.obj[:2]]
        return _js_string(items[0] if items else None), items[1] if len(items) > 1 else None
    if entry is None or entry is jsnull or isinstance(entry, str | int | float):
        raise TypeError(f"Iterator value {_js_string(entry)} is not an entry object")
    return "undefined", None  # any other object: its "0" and "1" are undefined


def _from_entries(entries: Any = None) -> dict[str, Any]:
    if type(entries) is JSMap:
        return {_js_string(k): v for k, v in entries.items()}
    if type(entries) is list or type(entries) is JSSet:
        return dict(_entry_pair(entry) for entry in entries)
    if type(entries) is PyProxy:
        obj = entries.get()
        if not isinstance(obj, dict) and hasattr(obj, "__iter__"):
            # Pyodide's proxy of a Python iterable is iterable: a list of pairs works in production.
            return dict(_entry_pair(to_javascript(item, borrowed=False)) for item in obj)
        refuse_pyproxy(
            "Object.fromEntries()",
            "the entries",
            entries,
            "JavaScript cannot read its items as [key, value] pairs",
            "Use to_js(d, dict_converter=js.Object.fromEntries) for a dict",
        )
    raise TypeError(f"{_js_string(entries)} is not iterable (cannot read property Symbol(Symbol.iterator))")


def _own_entries(obj: Any, api: str) -> list[list[Any]]:
    """``Object.entries(obj)``: the object's own enumerable properties, as JavaScript lists them."""
    if obj is None or obj is jsnull:
        raise TypeError("Cannot convert undefined or null to object")
    t = type(obj)
    if t is dict:
        return [[str(k), v] for k, v in obj.items()]
    if t is list or t is str or t is JSUint8Array:
        return [[str(i), v] for i, v in enumerate(obj)]
    if t is WebSocketPair:
        return [["0", obj.client], ["1", obj.server]]
    if t is PyProxy:
        refuse_pyproxy(
            api,
            "the object",
            obj,
            "JavaScript would see the Python object's attributes (as dir() lists them), not its items",
            "Convert it first: to_js(value, dict_converter=js.Object.fromEntries)",
        )
    return []  # a Map, a Set, a host object, a number: no own enumerable properties


def _object_assign(target: Any = None, *sources: Any) -> Any:
    if target is None or target is jsnull:
        raise TypeError("Cannot convert undefined or null to object")
    if type(target) is not dict:
        raise TypeError("Object.assign(): the target must be an object")
    for source in sources:
        if type(source) is PyProxy:
            refuse_pyproxy(
                "Object.assign()",
                "a source",
                source,
                "JavaScript would copy no keys",
                "Convert it with to_js first",
            )
        if source is not None and source is not jsnull:
            for key, value in _own_entries(source, "Object.assign()"):
                target[key] = value
    return target


OBJECT = JSFunction(
    "Object",
    lambda value=None: {} if value is None or value is jsnull else value,
    construct=lambda value=None: {} if value is None or value is jsnull else value,
    props={
        "fromEntries": JSFunction("fromEntries", _from_entries),
        "keys": JSFunction("keys", lambda obj=None: [k for k, _ in _own_entries(obj, "Object.keys()")]),
        "values": JSFunction("values", lambda obj=None: [v for _, v in _own_entries(obj, "Object.values()")]),
        "entries": JSFunction("entries", lambda obj=None: _own_entries(obj, "Object.entries()")),
        "assign": JSFunction("assign", _object_assign),
    },
)


def _to_json_value(js: Any) -> Any:
    """A JavaScript value as JSON.stringify sees it (undefined dropped, buffers as index objects)."""
    if js is jsnull:
        return None
    t = type(js)
    if t is dict:
        return {k: _to_json_value(v) for k, v in js.items() if v is not None and type(v) is not JSFunction}
    if t is list:
        return [None if v is None or type(v) is JSFunction else _to_json_value(v) for v in js]
    if t is JSMap or t is JSSet:
        return {}
    if t is JSUint8Array:
        return {str(i): b for i, b in enumerate(js)}
    if t is JSArrayBuffer:
        return {}
    if isinstance(js, _dt.datetime):
        return js.astimezone(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if t is URLValue:
        return js.href  # URL.prototype.toJSON
    if isinstance(js, float):
        if not math.isfinite(js):
            return None
        if js.is_integer() and abs(js) <= MAX_SAFE_INTEGER:
            return int(js)  # a JavaScript number: 2.0 and -0.0 are written 2 and 0
    if t is PyProxy:
        refuse_pyproxy(
            "JSON.stringify()",
            "the value",
            js,
            "JavaScript does not see its items and writes no data for it",
            "Use json.dumps(value) in Python, or convert it with to_js first",
        )
    if isinstance(js, HostProxy):  # pragma: no cover - values arrive unwrapped
        return {}
    if isinstance(js, str | int | float | bool):
        return js
    return {}


def _stringify(value: Any = None, replacer: Any = None, space: Any = None) -> Any:
    if value is None or type(value) is JSFunction:
        return None
    indent: int | str | None = None
    if isinstance(space, int | float) and not isinstance(space, bool) and space >= 1:
        indent = int(min(space, 10))
    elif isinstance(space, str) and space:
        indent = space[:10]
    data = _to_json_value(value)
    separators = (",", ":") if indent is None else (",", ": ")
    return _json.dumps(data, indent=indent, separators=separators, ensure_ascii=False)


def _from_json(value: Any) -> Any:
    if value is None:
        return jsnull
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _json_number(text: str) -> int | float:
    value = int(text)
    return value if abs(value) <= MAX_SAFE_INTEGER else float(text)  # a JavaScript number


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")  # Python's json reads NaN and Infinity; JSON has neither


def _parse(text: Any = None) -> Any:
    try:
        return _from_json(_json.loads(_js_string(text), parse_int=_json_number, parse_constant=_not_json))
    except ValueError as exc:
        raise JSError("SyntaxError", f"JSON.parse: {exc}") from None


JSON_OBJECT = {
    "stringify": JSFunction("stringify", _stringify),
    "parse": JSFunction("parse", _parse),
}


# ---------------------------------------------------------------------------------------------
# Date


def _date_from(*args: Any) -> _dt.datetime:
    if not args:
        return _dt.datetime.fromtimestamp(now_ms() / 1000, _dt.UTC)
    if len(args) == 1:
        arg = args[0]
        if isinstance(arg, _dt.datetime):
            return arg
        if isinstance(arg, int | float) and not isinstance(arg, bool):
            return _dt.datetime.fromtimestamp(arg / 1000, _dt.UTC)
        if isinstance(arg, str):
            text = arg.replace("Z", "+00:00")
            parsed = _dt.datetime.fromisoformat(text)
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_dt.UTC)
        raise TypeError("new Date(): unsupported argument")
    fields = [int(a) for a in args[:7]]
    year, month, day, hours, minutes, seconds, ms = fields + [1, 0, 0, 0, 0][len(fields) - 2 :]
    if 0 <= year <= 99:
        year += 1900  # JavaScript's two-digit years
    # Fields out of range carry over, as in JavaScript: new Date(2026, 12, 0) is 2026-12-31.
    year, month = year + month // 12, month % 12
    return _dt.datetime(year, month + 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(
        days=day - 1, hours=hours, minutes=minutes, seconds=seconds, milliseconds=ms
    )


def _date_parse(text: Any = None) -> float:
    try:
        return _date_from(_js_string(text)).timestamp() * 1000
    except ValueError:
        return math.nan  # Date.parse() of what it cannot read is NaN, not an error


def _date_utc(*fields: Any) -> float:
    if not fields:
        return math.nan
    # Date.UTC(year) is January of that year (a lone argument of new Date() would be a time value).
    return _date_from(*fields, *([0] if len(fields) == 1 else [])).timestamp() * 1000


DATE = JSFunction(
    "Date",
    lambda *args: _date_from().strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)"),
    construct=_date_from,
    props={
        "now": JSFunction("now", now_ms),
        "parse": JSFunction("parse", _date_parse),
        "UTC": JSFunction("UTC", _date_utc),
    },
)


# ---------------------------------------------------------------------------------------------
# console


def _console_line(args: tuple[Any, ...]) -> str:
    parts = []
    for arg in args:
        if isinstance(arg, str):
            parts.append(arg)
        elif type(arg) is PyProxy:
            parts.append(repr(arg.obj))
        elif type(arg) in (dict, list):
            try:
                parts.append(_stringify(arg, None, None))
            except TypeError:
                parts.append(repr(to_python(arg)))
        else:
            parts.append(_js_string(arg))
    return " ".join(parts)


def _console(level: int) -> JSFunction:
    def write(*args: Any) -> None:
        _console_log.log(level, "%s", _console_line(args))

    return JSFunction(logging.getLevelName(level).lower(), write)


CONSOLE = {
    "log": _console(logging.INFO),
    "info": _console(logging.INFO),
    "debug": _console(logging.DEBUG),
    "warn": _console(logging.WARNING),
    "error": _console(logging.ERROR),
}


# ---------------------------------------------------------------------------------------------
# Timers


#: Where a microtask is armed, relative to now: in the past, so before any timer that is due.
_MICROTASK_DELAY = -1e9


class _Timer:
    __slots__ = ("act", "args", "callback", "handle", "interval", "pinned")

    def __init__(
        self,
        callback: Any,
        args: tuple[Any, ...],
        act: Activation | None,
        interval: float | None,
    ) -> None:
        self.callback = callback
        self.args = args
        self.act = act
        self.interval = interval
        self.handle: TimerHandle | None = None
        self.pinned = False


class _Timers:
    """One runtime's ``setTimeout`` / ``setInterval`` timers, by id."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._timers: dict[int, _Timer] = {}
        self._ids = itertools.count(1)

    def start(
        self,
        callback: Any,
        delay: Any,
        args: tuple[Any, ...],
        *,
        repeat: bool,
        api: str,
        microtask: bool = False,
    ) -> int:
        fn = _timer_callback(callback, api)
        ms = delay if isinstance(delay, int | float) and not isinstance(delay, bool) and delay > 0 else 0
        if isinstance(ms, float) and not math.isfinite(ms):
            ms = 0
        seconds = max(float(ms), 0.0) / 1000.0
        act = current_activation()
        timer = _Timer(fn, args, act, seconds if repeat else None)
        timer_id = next(self._ids)
        self._timers[timer_id] = timer
        if act is not None and not act.dead:
            act.pin()  # a pending timer keeps the object in memory, as in production
            timer.pinned = True
        # A microtask runs before every timer due, as JavaScript drains its microtask queue first.
        self._arm(timer_id, timer, _MICROTASK_DELAY if microtask else seconds)
        return timer_id

    def _arm(self, timer_id: int, timer: _Timer, seconds: float) -> None:
        scheduler = self._rt.scheduler
        timer.handle = scheduler.call_at(trio_now(self._rt) + seconds, self._fire, timer_id)

    def clear(self, timer_id: Any) -> None:
        if not isinstance(timer_id, int) or isinstance(timer_id, bool):
            return
        timer = self._timers.pop(timer_id, None)
        if timer is None:
            return
        if timer.handle is not None:
            timer.handle.cancel()
        self._unpin(timer)

    def _unpin(self, timer: _Timer) -> None:
        if timer.pinned and timer.act is not None:
            timer.pinned = False
            timer.act.unpin()

    def _fire(self, timer_id: int) -> None:
        timer = self._timers.get(timer_id)
        if timer is None:
            return
        act = timer.act
        if act is not None:
            if act.dead:
                self._timers.pop(timer_id, None)
                return  # the object was reset: its timers are gone with it
            if act.gate_closers:
                # blockConcurrencyWhile holds the input gate: timers wait for it.
                self._arm(timer_id, timer, 0.001)
                return
        if timer.interval is None:
            self._timers.pop(timer_id, None)
        else:
            self._arm(timer_id, timer, timer.interval)
        try:
            if act is not None:
                result = run_as(act, timer.callback, *timer.args)
            else:
                result = timer.callback(*timer.args)
            if inspect.isawaitable(result):
                self._run_async(act, result)
        except Exception:
            # An uncaught error in a timer callback is logged, as production does.
            log.exception("setTimeout/setInterval callback failed")
        finally:
            if timer.interval is None:
                self._unpin(timer)

    def _run_async(self, act: Activation | None, awaitable: Any) -> None:
        async def run() -> None:
            await awaitable

        if act is not None and not act.dead:
            act.start_background(run, (), None)
        else:
            self._rt.spawn(_logged, run)


async def _logged(fn: Any) -> None:
    try:
        await fn()
    except Exception:
        log.exception("asynchronous timer callback failed")


def trio_now(rt: Runtime) -> float:
    """trio's clock, the scheduler's time base."""
    return rt.clock.now()


_TIMERS: weakref.WeakKeyDictionary[Runtime, _Timers] = weakref.WeakKeyDictionary()


def _timers(api: str) -> _Timers:
    rt = current_runtime()
    if rt is None:
        raise RuntimeError(
            f"{api} needs a running shardsim runtime (call it from a Worker or a Durable Object)"
        )
    timers = _TIMERS.get(rt)
    if timers is None:
        timers = _TIMERS[rt] = _Timers(rt)
    return timers


def _where() -> str:
    where = user_location()
    return f" [{where}]" if where else ""


def _timer_callback(js: Any, api: str) -> Any:
    if type(js) is JSFunction and js.fn is not None:
        return js.fn
    if type(js) is PyProxy:
        if js.borrowed:
            raise TypeError(
                f"{api}: the callback is {'a Python function' if callable(js.obj) else 'a Python ' + type(js.obj).__name__}, "
                "which Pyodide passes as a borrowed proxy and destroys when the call returns: the timer would "
                'fail when it fires in production ("This borrowed proxy was automatically destroyed at the '
                'end of a function call"). Wrap it: create_proxy(fn) or create_once_callable(fn) '
                "(from pyodide.ffi import create_proxy)" + _where()
            )
        proxy = js

        def call(*js_args: Any) -> Any:
            fn = proxy.get()
            if proxy.once:
                proxy.destroyed = True
            return fn(*[to_python(a) for a in js_args])

        return call
    raise TypeError(f"{api}: the callback must be a function")


def _set_timeout(callback: Any = None, delay: Any = None, *args: Any) -> int:
    return _timers("setTimeout()").start(callback, delay, args, repeat=False, api="setTimeout()")


def _set_interval(callback: Any = None, delay: Any = None, *args: Any) -> int:
    return _timers("setInterval()").start(callback, delay, args, repeat=True, api="setInterval()")


def _clear(timer_id: Any = None) -> None:
    rt = current_runtime()
    timers = _TIMERS.get(rt) if rt is not None else None
    if timers is not None:
        timers.clear(timer_id)


def _queue_microtask(callback: Any = None) -> None:
    _timers("queueMicrotask()").start(callback, 0, (), repeat=False, api="queueMicrotask()", microtask=True)


# ---------------------------------------------------------------------------------------------
# Constructors of the runtime's classes


def _body(js: Any, api: str) -> Any:
    if js is None or js is jsnull:
        return None
    if isinstance(js, str):
        return js
    t = type(js)
    if t is JSUint8Array or t is JSArrayBuffer:
        return bytes(js)
    if t is PyProxy:
        refuse_pyproxy(
            api,
            "the body",
            js,
            "workerd would send its text (for bytes, \"b'...'\") instead of its contents",
            "Pass a str, or to_js(data) for bytes",
        )
    return _js_string(js)


def _headers_init(js: Any, api: str) -> Any:
    if js is None:
        return None
    if isinstance(js, Headers):
        return js
    if type(js) is dict:
        return {k: _js_string(v) for k, v in js.items()}
    if type(js) is list:
        return [tuple(_js_string(x) for x in pair) for pair in js]
    if type(js) is JSMap:  # a Map is iterable: its entries are the pairs
        return [(_js_string(k), _js_string(v)) for k, v in js.items()]
    if type(js) is PyProxy and not isinstance(js.get(), dict | str | bytes) and hasattr(js.obj, "__iter__"):
        # Pyodide's proxy of a Python iterable is a sequence to workerd: the SDK itself passes
        # js.Headers.new([("a", "1")]) and js.Headers.new(d.items()).
        pairs = []
        for pair in js.obj:
            if isinstance(pair, str | bytes) or not hasattr(pair, "__iter__"):
                raise TypeError(f"{api}: the headers must be an object or an array of pairs")
            pairs.append(tuple(_js_string(to_javascript(x, borrowed=False)) for x in pair))
        return pairs
    if type(js) is PyProxy:
        refuse_pyproxy(
            api,
            "the headers",
            js,
            "workerd would not read its entries",
            "Convert them: to_js(headers, dict_converter=js.Object.fromEntries)",
        )
    raise TypeError(f"{api}: the headers must be an object or an array of pairs")


def _init_dict(js: Any, api: str) -> dict[str, Any]:
    if js is None:
        return {}
    if type(js) is dict:
        return js
    if type(js) is PyProxy:
        refuse_pyproxy(
            api, "the init", js, "workerd would not read its keys", "Pass the options as keyword arguments"
        )
    raise TypeError(f"{api}: the init must be an object")


def _new_response(body: Any = None, init: Any = None) -> Response:
    api = "new Response()"
    options = _init_dict(init, api)
    ws = options.get("webSocket")
    return Response(
        _body(body, api),
        status=options.get("status"),
        status_text=_js_string(options["statusText"]) if options.get("statusText") is not None else "",
        headers=_headers_init(options.get("headers"), api),
        web_socket=ws if isinstance(ws, WebSocket) else None,
    )


def _response_json(data: Any = None, init: Any = None) -> Response:
    api = "Response.json()"
    options = _init_dict(init, api)
    text = _stringify(data)  # JavaScript's JSON.stringify: compact, numbers as JavaScript writes them
    if text is None:
        raise TypeError(f"{api}: {_js_string(data)} cannot be serialized to JSON")
    headers = Headers(_headers_init(options.get("headers"), api))
    if not headers.has("content-type"):
        headers.set("content-type", "application/json")
    return Response(
        text,
        status=options.get("status"),
        status_text=_js_string(options["statusText"]) if options.get("statusText") is not None else "",
        headers=headers,
    )


def _new_request(input: Any = None, init: Any = None) -> Request:
    api = "new Request()"
    options = _init_dict(init, api)
    source = input if isinstance(input, Request) else _js_string(input)
    return Request(
        source,
        method=_js_string(options["method"]) if options.get("method") is not None else None,
        headers=_headers_init(options.get("headers"), api),
        body=_body(options.get("body"), api),
    )


def _new_headers(init: Any = None) -> Headers:
    return Headers(_headers_init(init, "new Headers()"))


def _to_index(value: Any, message: str) -> int:
    """JavaScript's ToIndex (a length argument): truncated; NaN is 0; RangeError when out of range."""
    if value is None or value is jsnull or (isinstance(value, float) and math.isnan(value)):
        return 0
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= MAX_SAFE_INTEGER:
        raise ValueError(message)
    return value


def _to_uint8(value: Any) -> int:
    """JavaScript's ToUint8: the number modulo 256 (NaN and infinities are 0)."""
    if isinstance(value, str):
        try:
            value = float(value.strip() or 0)
        except ValueError:
            return 0
    if isinstance(value, float):
        return int(value) & 0xFF if math.isfinite(value) else 0
    return int(value) & 0xFF if isinstance(value, int) else 0


def _new_uint8array(arg: Any = None, *_rest: Any) -> JSUint8Array:
    if arg is None:
        return JSUint8Array()
    if isinstance(arg, int | float) and not isinstance(arg, bool):
        return JSUint8Array(_to_index(arg, f"Invalid typed array length: {_js_string(arg)}"))
    if type(arg) is list or type(arg) is JSSet:
        return JSUint8Array(_to_uint8(x) for x in arg)
    if type(arg) is JSArrayBuffer or type(arg) is JSUint8Array:
        return JSUint8Array(arg)
    if type(arg) is PyProxy and not isinstance(arg.get(), dict) and hasattr(arg.obj, "__iter__"):
        # Pyodide's proxy of a Python iterable (bytes, a list of ints) is iterable: JavaScript reads its items.
        return JSUint8Array(_to_uint8(to_javascript(x, borrowed=False)) for x in arg.obj)
    if type(arg) is PyProxy:
        refuse_pyproxy(
            "new Uint8Array()",
            "the argument",
            arg,
            "JavaScript would make an empty array",
            "Pass to_js(data)",
        )
    raise TypeError("new Uint8Array(): unsupported argument")


#: Schemes whose URLs the WHATWG parser normalizes (as the http(s) one with the same default port).
_SPECIAL_SCHEMES: dict[str, str] = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class URLValue:
    """A JavaScript ``URL`` (what ``new URL(url, base)`` makes)."""

    __slots__ = ("href",)

    def __init__(self, url: str, base: str | None = None) -> None:
        full = urljoin(base, url) if base else url
        head, colon, rest = full.strip("".join(chr(c) for c in range(0x21))).partition(":")
        scheme = head.lower()
        if colon and scheme in _SPECIAL_SCHEMES:
            # The WHATWG parser's normalization: lowercase host, no default port, "/" for no path.
            as_http = _SPECIAL_SCHEMES[scheme]
            try:
                normalized = _normalize_url(f"{as_http}:{rest}")
            except TypeError:
                raise TypeError(f"Invalid URL string: {url}") from None
            self.href = scheme + normalized[len(as_http) :]
            return
        parts = urlsplit(full)
        if not parts.scheme or (parts.scheme in ("http", "https", "ws", "wss") and not parts.netloc):
            raise TypeError(f"Invalid URL string: {url}")
        path = parts.path or ("/" if parts.scheme in ("http", "https", "ws", "wss") else "")
        self.href = urlunsplit(
            (
                parts.scheme.lower(),
                parts.netloc,
                quote(path, safe="/%:@!$&'()*+,;=-._~"),
                parts.query,
                parts.fragment,
            )
        )


class JsURL(HostProxy):
    """A ``URL``: its parts, and ``searchParams``."""

    __slots__ = ()
    _js_name = "URL"

    def _parts(self) -> Any:
        return urlsplit(self._js.href)

    def prop_href(self) -> str:
        return str(self._js.href)

    def prop_protocol(self) -> str:
        return f"{self._parts().scheme}:"

    def prop_host(self) -> str:
        return str(self._parts().netloc.rpartition("@")[2])

    def prop_hostname(self) -> str:
        return str(self._parts().hostname or "")

    def prop_port(self) -> str:
        port = self._parts().port
        return "" if port is None else str(port)

    def prop_pathname(self) -> str:
        return str(self._parts().path)

    def prop_search(self) -> str:
        query = self._parts().query
        return f"?{query}" if query else ""

    def prop_hash(self) -> str:
        fragment = self._parts().fragment
        return f"#{fragment}" if fragment else ""

    def prop_origin(self) -> str:
        parts = self._parts()
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    def prop_searchParams(self) -> Any:
        return _SearchParams(self._js)

    def js_toString(self) -> str:
        return str(self._js.href)

    def js_toJSON(self) -> str:
        return str(self._js.href)

    def _js_to_string(self) -> str:
        return str(self._js.href)


class _SearchParams:
    """``url.searchParams`` (reads and writes the URL's query)."""

    __slots__ = ("url",)

    def __init__(self, url: URLValue) -> None:
        self.url = url


class JsSearchParams(HostProxy):
    """A ``URLSearchParams`` bound to its URL."""

    __slots__ = ()
    _js_name = "URLSearchParams"

    def _pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self._js.url.href).query, keep_blank_values=True)

    def _store(self, pairs: list[tuple[str, str]]) -> None:
        parts = urlsplit(self._js.url.href)
        self._js.url.href = urlunsplit(
            (parts.scheme, parts.netloc, parts.path, urlencode(pairs), parts.fragment)
        )

    def js_get(self, name: Any = None) -> Any:
        key = _js_string(name)
        for k, v in self._pairs():
            if k == key:
                return v
        return jsnull

    def js_getAll(self, name: Any = None) -> list[str]:
        key = _js_string(name)
        return [v for k, v in self._pairs() if k == key]

    def js_has(self, name: Any = None) -> bool:
        key = _js_string(name)
        return any(k == key for k, _ in self._pairs())

    def js_set(self, name: Any = None, value: Any = None) -> None:
        key = _js_string(name)
        pairs = [(k, v) for k, v in self._pairs() if k != key] + [(key, _js_string(value))]
        self._store(pairs)

    def js_append(self, name: Any = None, value: Any = None) -> None:
        self._store([*self._pairs(), (_js_string(name), _js_string(value))])

    def js_delete(self, name: Any = None) -> None:
        key = _js_string(name)
        self._store([(k, v) for k, v in self._pairs() if k != key])

    def js_toString(self) -> str:
        return urlencode(self._pairs())

    def __iter__(self) -> Any:
        for k, v in self._pairs():
            yield to_python([k, v])


def _new_url(url: Any = None, base: Any = None) -> URLValue:
    return URLValue(_js_string(url), None if base is None else _js_string(base))


def _register() -> None:
    from ._ffi import register_host

    register_host(URLValue, JsURL)
    register_host(_SearchParams, JsSearchParams)


_register()


def _new_array(*items: Any) -> list[Any]:
    """``Array(...)`` / ``new Array(...)``: one number is a length (of holes, read as undefined)."""
    if len(items) == 1 and isinstance(items[0], int | float) and not isinstance(items[0], bool):
        length = items[0]
        if not (isinstance(length, int) or length.is_integer()) or not 0 <= length < 2**32:
            raise ValueError("Invalid array length")
        return [None] * int(length)
    return list(items)


def _array_from(items: Any = None, map_fn: Any = None) -> list[Any]:
    if items is None or items is jsnull:
        raise TypeError(f"{_js_string(items)} is not iterable (cannot read property Symbol(Symbol.iterator))")
    t = type(items)
    values: list[Any]
    if t is list or t is JSSet or t is JSUint8Array or t is str:
        values = list(items)
    elif t is JSMap:
        values = [[k, v] for k, v in items.items()]
    elif t is PyProxy and hasattr(items.get(), "__iter__"):
        # Pyodide's proxy of a Python iterable is iterable; each item crosses as usual.
        values = [to_javascript(v, borrowed=False) for v in items.get()]
    else:
        values = []  # not iterable, and no length: an empty array
    if map_fn is None:
        return values
    if type(map_fn) is JSFunction and map_fn.fn is not None:
        fn = map_fn.fn
        return [fn(v, i) for i, v in enumerate(values)]
    if type(map_fn) is PyProxy:
        return [map_fn.call(v, i) for i, v in enumerate(values)]
    raise TypeError(f"{_js_string(map_fn)} is not a function")


def _pair_new() -> WebSocketPair:
    return WebSocketPair()


GLOBALS: dict[str, Any] = {
    "Object": OBJECT,
    "JSON": JSON_OBJECT,
    "Date": DATE,
    "console": CONSOLE,
    "setTimeout": JSFunction("setTimeout", _set_timeout),
    "clearTimeout": JSFunction("clearTimeout", _clear),
    "setInterval": JSFunction("setInterval", _set_interval),
    "clearInterval": JSFunction("clearInterval", _clear),
    "queueMicrotask": JSFunction("queueMicrotask", _queue_microtask),
    "WebSocketPair": JSFunction("WebSocketPair", None, construct=_pair_new),
    "WebSocketRequestResponsePair": JSFunction(
        "WebSocketRequestResponsePair",
        None,
        construct=lambda request=None, response=None: WebSocketRequestResponsePair(
            _js_string(request), _js_string(response)
        ),
    ),
    "Response": JSFunction(
        "Response",
        None,
        construct=_new_response,
        props={
            "json": JSFunction("json", _response_json),
            "redirect": JSFunction(
                "redirect", lambda url=None, status=302: Response.redirect(_js_string(url), int(status))
            ),
        },
    ),
    "Request": JSFunction("Request", None, construct=_new_request),
    "Headers": JSFunction("Headers", None, construct=_new_headers),
    "URL": JSFunction("URL", None, construct=_new_url),
    "Uint8Array": JSFunction("Uint8Array", None, construct=_new_uint8array),
    "ArrayBuffer": JSFunction(
        "ArrayBuffer",
        None,
        construct=lambda length=0: JSArrayBuffer(_to_index(length, "Invalid array buffer length")),
    ),
    "Array": JSFunction(
        "Array",
        _new_array,
        construct=_new_array,
        props={
            "isArray": JSFunction("isArray", lambda value=None: type(value) is list),
            "from": JSFunction("from", _array_from),
        },
    ),
    "Promise": JSFunction(
        "Promise",
        None,
        props={"resolve": JSFunction("resolve", lambda value=None: JSPromise(_resolved(value)))},
    ),
}


async def _resolved(value: Any) -> Any:
    if type(value) is JSPromise:
        return await value.settle()  # a promise adopts the state of a promise it resolves with
    return value


def _fetch(input: Any = None, init: Any = None) -> JSPromise:
    request = input if isinstance(input, Request) and init is None else _new_request(input, init)
    return JSPromise(loopback_fetch(request))


GLOBALS["fetch"] = JSFunction("fetch", _fetch)


def to_global(name: str) -> Any:
    """The ``js`` module's attribute ``name``, as Python sees it."""
    try:
        value = GLOBALS[name]
    except KeyError:
        available = ", ".join(sorted(GLOBALS))
        raise NotEmulatedError(
            f"js.{name} is not emulated by shardsim (it emulates: {available}); "
            "if production has it, test this code with wrangler dev"
        ) from None
    return to_python(value)
