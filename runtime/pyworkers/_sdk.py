"""The Python Workers SDK (``workers``) and ``pyodide.http``, over shardsim's JavaScript.

Production's SDK (the ``workers-runtime-sdk`` package Cloudflare ships with
Python Workers) is Python code on top of Pyodide: it wraps ``ctx.storage``
and ``env``'s bindings so that their calls convert values both ways
(:func:`python_to_rpc` / :func:`python_from_rpc`), gives Python classes for
``Request`` and ``Response``, and wraps entry point classes so that their
constructor gets a wrapped ``ctx`` and ``env``. This module re-implements
that logic on :mod:`._ffi` (Pyodide's rules) and :mod:`._hosts` (the
runtime's objects seen from Pyodide), so Worker code meets the same
conversions here as there. Each rule below names the SDK behaviour it
follows.

Invariants:

* Only ``ctx.storage`` (and what it returns), ``env``'s bindings (Durable
  Object namespaces and stubs, D1) and RPC cross through the SDK's
  conversions; everything else on ``ctx``, a ``WebSocket``, ``js.*`` is a
  raw Pyodide call (:mod:`._hosts` refuses what production would
  mis-convert there).
* What the SDK converts from JavaScript: ``null`` to None, objects and maps
  to :class:`JsDict` (a dict with attribute access), arrays to lists,
  buffers to memoryviews, numbers to ints when integral, ``Date`` to a naive
  local ``datetime``, a ``Response`` / ``Request`` to the classes here.
* What it converts to JavaScript: None to ``null``, dicts to plain objects,
  lists to arrays, ``bytes`` to ``Uint8Array``, ``datetime`` to ``Date``;
  tuples, bytearrays and awaitables are refused with the SDK's messages.
* Keyword arguments on a wrapped call become one trailing options object
  (``storage.put(k, v, allowUnconfirmed=True)``), as Pyodide passes them;
  on Durable Object RPC they are refused (see :class:`_StubWrapper`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import http.client
import inspect
import json as _json
import types
import weakref
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPMethod, HTTPStatus
from typing import Any

from runtime._core import DurableObjectAbort, Mapped
from runtime._http import Request as _JsRequestValue, Response as _JsResponseValue
from runtime._object import DurableObject as _RuntimeDurableObject, WorkerEntrypoint as _RuntimeEntrypoint
from runtime._runtime import current_runtime

from ._asyncio import explain
from ._ffi import (
    JSError,
    JsException,
    JsPromise,
    JsProxy,
    create_proxy,
    jsnull,
    to_javascript,
    to_js,
    to_python,
)
from ._hosts import HostProxy, js_value, runtime_value
from ._js import GLOBALS

__all__ = [
    "AbortError",
    "BodyUsedError",
    "DurableObject",
    "DurableObjectAbort",
    "DurableObjectContext",
    "FetchResponse",
    "HttpStatusError",
    "JsDict",
    "PYODIDE_ENTRY",
    "PyodideFetchResponse",
    "Request",
    "Response",
    "WorkerEntrypoint",
    "WorkflowEntrypoint",
    "fetch",
    "handler",
    "import_from_javascript",
    "patch_env",
    "pyfetch",
    "python_from_rpc",
    "python_to_rpc",
    "relaxed_call",
]

_OBJECT = to_python(GLOBALS["Object"])


# ---------------------------------------------------------------------------------------------
# Conversions (the SDK's python_to_rpc / python_from_rpc)


class JsDict(dict[str, Any]):
    """A dict whose keys also read as attributes: what a JavaScript object becomes through the SDK."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _constructor_name(value: Any) -> str | None:
    """``value.constructor.name`` of a JavaScript value (None for a Python one)."""
    if not isinstance(value, JsProxy):
        return None
    # What x.constructor.name reads, without making the constructor's proxy (this is on every wrapped call).
    return value._js_type_name()


def _from_rpc_default(value: Any, convert: Callable[[Any], Any], cache: Callable[[Any, Any], None]) -> Any:
    if value is jsnull:
        return None
    name = _constructor_name(value)
    if name is None:
        return value
    if name == "Response":
        return Response(value)
    if name == "Request":
        return Request(value)
    if name == "Date":
        # As the SDK does: a naive datetime in the local time zone.
        return _dt.datetime.fromtimestamp(value.getTime() / 1000)
    if name == "Error":
        # Only a plain Error, as the SDK checks constructor.name: a TypeError stays a JsException.
        return Exception(str(value))
    return value


def _jsnull_to_none(obj: Any) -> Any:
    if obj is jsnull:
        return None
    if type(obj) is dict or type(obj) is JsDict:
        return JsDict({k: _jsnull_to_none(v) for k, v in obj.items()})
    if type(obj) is list:
        return [_jsnull_to_none(v) for v in obj]
    return obj


def python_from_rpc(obj: Any) -> Any:
    """A JavaScript value (as Pyodide hands it over) converted the SDK's way (see the module docstring)."""
    if obj is jsnull:
        return None
    if not isinstance(obj, JsProxy):
        return obj
    if isinstance(obj, HostProxy):
        # A runtime object (a cursor, a stub, a Response): to_py would hand it to the default
        # converter as it is; skip the walk (this is on every wrapped call that returns one).
        return (
            None if obj._js_type_name() == "TestController" else _from_rpc_default(obj, _identity, _no_cache)
        )
    if _constructor_name(obj) == "TestController":
        return None
    return _jsnull_to_none(obj.to_py(default_converter=_from_rpc_default))


def _no_cache(value: Any, result: Any) -> None:
    pass


def _refuse_disabled(value: Any) -> None:
    """The SDK's refusals for values RPC cannot carry."""
    if isinstance(value, _BindingWrapper):
        return
    if callable(value) and not isinstance(value, type):
        return
    if isinstance(value, tuple | bytearray):
        raise TypeError(f"{type(value)} cannot be sent over RPC.")
    if inspect.isawaitable(value) and not isinstance(value, JsProxy):
        raise TypeError(f"Awaitable {type(value)} cannot be sent over RPC.")
    if isinstance(value, dict):
        for v in value.values():
            _refuse_disabled(v)
    elif isinstance(value, list | set | frozenset):
        for v in value:
            _refuse_disabled(v)


def _to_rpc_default(obj: Any, convert: Callable[[Any], Any], cache: Callable[[Any, Any], None]) -> Any:
    if obj is None:
        return jsnull
    if isinstance(obj, _BindingWrapper):
        return obj._binding
    js_object = getattr(obj, "js_object", None)
    if js_object is not None:
        return js_object
    if isinstance(obj, _dt.datetime):
        return to_python(_as_utc(obj))
    if isinstance(obj, Exception):
        return to_python(JSError("Error", str(obj)))
    if callable(obj) and not isinstance(obj, type):
        return create_proxy(obj)
    _refuse_disabled(obj)
    return obj


def _as_utc(when: _dt.datetime) -> _dt.datetime:
    """A datetime as the JavaScript ``Date`` the SDK makes of it (naive: local time)."""
    return when.astimezone(_dt.UTC)


def _none_to_jsnull(value: Any) -> Any:
    if value is None:
        return jsnull
    if isinstance(value, dict):
        return {k: _none_to_jsnull(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_none_to_jsnull(v) for v in value]
    return value


def python_to_rpc(value: Any) -> Any:
    """A Python value converted for JavaScript the SDK's way (see the module docstring)."""
    t = type(value)
    if t is str or t is int or t is bool:
        return value  # what to_js does with a primitive, without its machinery (every wrapped call)
    if t is float:
        return to_python(value)  # a JavaScript number: integral ones come back as int
    if value is None:
        return jsnull
    if isinstance(value, _BindingWrapper):
        return value._binding
    value = _none_to_jsnull(value)
    _refuse_disabled(value)
    return to_js(value, default_converter=_to_rpc_default, dict_converter=_OBJECT.fromEntries)


# ---------------------------------------------------------------------------------------------
# Binding wrappers


#: JavaScript types the SDK never wraps (their Python users read them directly).
_PASSTHROUGH = frozenset(
    {
        "ArrayBuffer",
        "Uint8Array",
        "Blob",
        "FormData",
        "ReadableStream",
        "URLSearchParams",
        "Response",
        "Headers",
    }
)


class _BindingWrapper:
    """A JavaScript binding whose calls convert arguments and results (the SDK's ``_BindingWrapper``)."""

    def __new__(cls, binding: Any) -> Any:
        if isinstance(binding, cls):
            return binding
        return object.__new__(cls)

    def __init__(self, binding: Any) -> None:
        if binding is self:
            return
        object.__setattr__(self, "_binding", binding)

    def _real_name(self) -> str:
        return _constructor_name(self._binding) or type(self).__name__

    def _wrap(self, value: Any) -> Any:
        if not isinstance(value, JsProxy):
            return value
        name = _constructor_name(value)
        if not name or name in _PASSTHROUGH:
            return value
        if callable(value):
            return _RpcStubWrapper(value)
        return _BindingWrapper(value)

    def _convert_result(self, result: Any) -> Any:
        converted = python_from_rpc(result)
        if isinstance(converted, list):
            return [self._wrap(item) for item in converted]
        return self._wrap(converted)

    @staticmethod
    def _convert_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        js_kwargs = {k: python_to_rpc(v) for k, v in kwargs.items()} if kwargs else kwargs
        return [python_to_rpc(a) for a in args], js_kwargs

    def _invoke(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        js_args, js_kwargs = self._convert_args(args, kwargs)
        result = fn(*js_args, **js_kwargs)
        # Only promises are thenable among JavaScript values here; a Python object may be too.
        if type(result) is JsPromise or (
            not isinstance(result, JsProxy) and callable(getattr(result, "then", None))
        ):

            async def await_and_convert() -> Any:
                return self._convert_result(await result)

            return await_and_convert()
        return self._convert_result(result)

    def _attribute(self, name: str) -> Any:
        attr = getattr(self._binding, name)
        if not callable(attr):
            return self._convert_result(attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._invoke(attr, args, kwargs)

        call.__name__ = name
        return call

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        result = self._attribute(name)
        object.__setattr__(self, name, result)
        return result

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return self._convert_result(self._binding[key])
        return self._convert_result(getattr(self._binding, key))

    def __iter__(self) -> Iterator[Any]:
        binding = self._binding
        if not hasattr(binding, "__iter__"):
            raise TypeError(f"'{self._real_name()}' object is not iterable")
        for item in binding:
            yield self._convert_result(item)

    def __bool__(self) -> bool:
        return self._binding is not None

    def __len__(self) -> int:
        length = getattr(self._binding, "length", None)
        if not isinstance(length, int):
            raise TypeError(f"'{self._real_name()}' object has no len()")
        return length

    def __repr__(self) -> str:
        return f"<{self._real_name()} (wrapped by the Python Workers SDK)>"


class _RpcStubWrapper(_BindingWrapper):
    """A function received over RPC: calling it calls across."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke(self._binding, args, kwargs)


_RPC_KWARGS = (
    "RPC method {name}() got keyword arguments ({names}). Production's Python SDK would pass them "
    "to the remote method as one trailing object argument (a dict), which shardsim refuses on "
    "purpose: pass the values positionally, or one dict argument if you want names"
)


class _StubWrapper(_BindingWrapper):
    """A Durable Object stub: RPC through the SDK's conversions, ``fetch`` through :func:`fetch`."""

    def _attribute(self, name: str) -> Any:
        if name in ("id", "name"):
            return getattr(self._binding, name)
        attr = getattr(self._binding, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if kwargs:
                raise TypeError(_RPC_KWARGS.format(name=name, names=", ".join(sorted(kwargs))))
            return self._invoke(attr, args, {})

        call.__name__ = name
        return call

    def fetch(self, *args: Any, **kwargs: Any) -> Awaitable[Response]:
        return fetch(*args, fetcher=self._binding.fetch, **kwargs)


class _NamespaceWrapper:
    """``env.BINDING`` for a Durable Object namespace: stubs come back wrapped."""

    def __init__(self, binding: Any) -> None:
        self._binding = binding

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._binding, name)

    def get(self, *args: Any, **kwargs: Any) -> _StubWrapper:
        return _StubWrapper(self._binding.get(*args, **kwargs))

    def getByName(self, *args: Any, **kwargs: Any) -> _StubWrapper:
        return _StubWrapper(self._binding.getByName(*args, **kwargs))

    def jurisdiction(self, *args: Any, **kwargs: Any) -> _NamespaceWrapper:
        return _NamespaceWrapper(self._binding.jurisdiction(*args, **kwargs))

    def __repr__(self) -> str:
        return "<DurableObjectNamespace (wrapped by the Python Workers SDK)>"


#: Bindings the SDK wraps in a _BindingWrapper (the ones shardsim emulates, and the others it names).
_WRAPPED_BINDINGS = frozenset(
    {
        "D1Database",
        "KvNamespace",
        "R2Bucket",
        "WorkerQueue",
        "Ai",
        "VectorizeIndexImpl",
        "AnalyticsEngineDataset",
    }
)


class _EnvWrapper:
    """``env`` as the SDK hands it to a class's constructor: bindings wrapped, vars as they are."""

    def __new__(cls, env: Any) -> Any:
        if isinstance(env, cls):
            return env
        return object.__new__(cls)

    def __init__(self, env: Any) -> None:
        if env is self:
            return
        object.__setattr__(self, "_env", env)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        binding = getattr(self._env, name)
        kind = _constructor_name(binding)
        result: Any = binding
        if kind == "DurableObjectNamespace":
            result = _NamespaceWrapper(binding)
        elif kind in _WRAPPED_BINDINGS:
            result = _BindingWrapper(binding)
        object.__setattr__(self, name, result)
        return result

    def __dir__(self) -> list[str]:
        return dir(self._env)

    def __repr__(self) -> str:
        return f"<Env {', '.join(dir(self._env))}>"


class DurableObjectContext:
    """``self.ctx`` of a Durable Object: the JavaScript ``DurableObjectState``, with its storage wrapped."""

    def __new__(cls, ctx: Any) -> Any:
        if isinstance(ctx, cls):
            return ctx
        return object.__new__(cls)

    def __init__(self, ctx: Any) -> None:
        if ctx is self:
            return
        object.__setattr__(self, "_ctx", ctx)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        result = getattr(self._ctx, name)
        if _constructor_name(result) == "DurableObjectStorage":
            result = _BindingWrapper(result)
        object.__setattr__(self, name, result)
        return result

    def abort(self, reason: str | None = None) -> None:
        """Reset the object now; raises ``DurableObjectAbort`` (a BaseException) in the caller."""
        self._ctx.abort(reason)  # resets the object and raises DurableObjectAbort


# ---------------------------------------------------------------------------------------------
# Request, Response, FetchResponse (pyodide.http and the SDK's)


class HttpStatusError(OSError):
    """``raise_for_status()`` on a 4xx or 5xx response (``pyodide.http.HttpStatusError``)."""

    def __init__(self, status: int, status_text: str, url: str) -> None:
        self.status = status
        self.status_text = status_text
        self.url = url
        if 400 <= status < 500:
            super().__init__(f"{status} Client Error: {status_text} for url: {url}")
        elif 500 <= status < 600:
            super().__init__(f"{status} Server Error: {status_text} for url: {url}")
        else:
            super().__init__(
                f"{status} Invalid error code not between 400 and 599: {status_text} for url: {url}"
            )


class BodyUsedError(OSError):
    """The body was read already (``pyodide.http.BodyUsedError``)."""

    def __init__(self, *args: Any) -> None:
        super().__init__("Response body is already used")


class AbortError(OSError):
    """``pyodide.http.AbortError``: what ``pyfetch`` raises when the JavaScript ``fetch`` rejects.

    Pyodide 0.28's ``pyfetch`` turns the ``JsException`` into this ``OSError``
    with the JavaScript error's message (``workers.fetch`` goes through it too).
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason.message)


def _python_exception(exc: JsException) -> Exception:
    """The SDK's ``_to_python_exception``: a JavaScript RangeError is a ValueError, a TypeError a TypeError."""
    if exc.name == "RangeError":
        return ValueError(exc.message)
    if exc.name == "TypeError":
        return TypeError(exc.message)
    return exc


def _http_message(js_headers: Any) -> http.client.HTTPMessage:
    """JavaScript ``Headers`` as the SDK shows them: an ``http.client.HTTPMessage``."""
    message = http.client.HTTPMessage()
    for pair in js_headers:
        key, value = pair[0], pair[1]
        if key.lower() == "set-cookie":
            continue
        message[key] = value.strip()
    for cookie in js_headers.getSetCookie():
        message["Set-Cookie"] = cookie.strip()
    return message


class PyodideFetchResponse:
    """``pyodide.http.FetchResponse``: a JavaScript ``Response`` with Python readers."""

    def __init__(
        self, url: str, js_response: Any, abort_controller: Any = None, abort_signal: Any = None
    ) -> None:
        self._url = url
        self.js_response = js_response
        self.abort_controller = abort_controller
        self.abort_signal = abort_signal

    @property
    def body_used(self) -> bool:
        return bool(self.js_response.bodyUsed)

    @property
    def headers(self) -> Any:
        return {k: v for k, v in (tuple(p) for p in self.js_response.headers)}

    @property
    def ok(self) -> bool:
        return bool(self.js_response.ok)

    @property
    def redirected(self) -> bool:
        return bool(self.js_response.redirected)

    @property
    def status(self) -> int:
        return int(self.js_response.status)

    @property
    def status_text(self) -> str:
        return str(self.js_response.statusText)

    @property
    def type(self) -> str:
        return str(self.js_response.type)

    @property
    def url(self) -> str:
        return str(self.js_response.url)

    def _raise_if_failed(self) -> None:
        if self.js_response.bodyUsed:
            raise BodyUsedError

    def raise_for_status(self) -> None:
        if 400 <= self.status < 600:
            raise HttpStatusError(self.status, self.status_text, self.url)

    def clone(self) -> PyodideFetchResponse:
        if self.js_response.bodyUsed:
            raise BodyUsedError
        # Pyodide's class even for the SDK's subclasses (workers.Response.clone() included), as in production.
        return PyodideFetchResponse(
            self._url, self.js_response.clone(), self.abort_controller, self.abort_signal
        )

    async def buffer(self) -> Any:
        self._raise_if_failed()
        return await self.js_response.arrayBuffer()

    async def text(self) -> str:
        self._raise_if_failed()
        return str(await self.js_response.text())

    async def string(self) -> str:
        return await self.text()

    async def json(self, **kwargs: Any) -> Any:
        self._raise_if_failed()
        return _json.loads(await self.string(), **kwargs)

    async def memoryview(self) -> memoryview:
        self._raise_if_failed()
        return (await self.buffer()).to_memoryview()  # type: ignore[no-any-return]

    async def bytes(self) -> bytes:
        self._raise_if_failed()
        return (await self.buffer()).to_bytes()  # type: ignore[no-any-return]


_RESPONSE_BODY_TYPES = frozenset(
    {"ArrayBuffer", "Uint8Array", "FormData", "ReadableStream", "URLSearchParams", "Response", "Blob"}
)


def _to_js_headers(headers: Any) -> Any:
    """The SDK's header argument (a dict, a list of pairs or a JavaScript ``Headers``) as ``Headers``."""
    js_headers = to_python(GLOBALS["Headers"])
    if isinstance(headers, list):
        return js_headers.new(to_js(headers))
    if isinstance(headers, dict):
        return js_headers.new(to_js(list(headers.items())))
    if _constructor_name(headers) == "Headers":
        return headers
    raise TypeError("Received unexpected type for headers argument")


class FetchResponse(PyodideFetchResponse):
    """The SDK's ``FetchResponse``: headers as ``http.client.HTTPMessage``, and the SDK's helpers."""

    @property
    def body(self) -> Any:
        body = self.js_response.body
        return None if body is jsnull else body

    @property
    def js_object(self) -> Any:
        return self.js_response

    @property
    def headers(self) -> http.client.HTTPMessage:
        return _http_message(self.js_object.headers)

    def replace_body(self, body: Any) -> Response:
        """A new Response with this one's status and headers and ``body``."""
        return Response(
            body, status=self.status, status_text=self.status_text, headers=self.js_object.headers
        )

    @staticmethod
    def redirect(url: str, status: HTTPStatus | int = HTTPStatus.FOUND) -> Any:
        code = status.value if isinstance(status, HTTPStatus) else status
        try:
            return to_python(GLOBALS["Response"]).redirect(url, code)
        except JsException as exc:
            raise _python_exception(exc) from exc

    @staticmethod
    def from_json(
        data: Any,
        status: HTTPStatus | int = HTTPStatus.OK,
        status_text: str = "",
        headers: Any = None,
    ) -> Response:
        """A JSON response: ``json.dumps(data)`` with ``content-type: application/json``."""
        options = Response._create_options(status, status_text, headers)
        try:
            if isinstance(data, JsProxy):
                js_resp = to_python(GLOBALS["Response"]).json(data, **options)
            else:
                if "headers" not in options:
                    options["headers"] = _to_js_headers({"content-type": "application/json"})
                elif not options["headers"].has("content-type"):
                    options["headers"].set("content-type", "application/json")
                js_resp = to_python(GLOBALS["Response"]).new(_json.dumps(data), **options)
        except JsException as exc:
            raise _python_exception(exc) from exc
        return Response(js_resp)

    def json(self, *args: Any, **kwargs: Any) -> Any:
        # Called on an instance: read the body as JSON. Called as Response.json(data): build one.
        if isinstance(self, Response):
            return super().json(**kwargs)
        return Response.from_json(self, *args, **kwargs)


class Response(FetchResponse):
    """``workers.Response``: ``Response(body, status, status_text, headers, web_socket)``."""

    def __init__(
        self,
        body: Any = None,
        status: HTTPStatus | int | None = None,
        status_text: str = "",
        headers: Any = None,
        web_socket: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            if "webSocket" in kwargs:
                raise TypeError(
                    "Response() got an unexpected keyword argument 'webSocket': the Python SDK spells it "
                    "web_socket (Response(None, status=101, web_socket=client))"
                )
            raise TypeError(f"Response() got an unexpected keyword argument {next(iter(kwargs))!r}")
        kind = _constructor_name(body)
        if kind:
            if kind not in _RESPONSE_BODY_TYPES:
                raise TypeError(f"Unsupported type in Response: {kind}")
        elif not isinstance(body, str | bytes) and body is not None:
            raise TypeError(f"Unsupported type in Response: {type(body).__name__}")
        if kind == "Response":
            if status is not None or status_text or headers is not None:
                raise ValueError("Expected no options when constructing Response from a js.Response")
            super().__init__(str(body.url), body)
            return
        options = self._create_options(status, status_text, headers, web_socket)
        js_body = to_js(body) if isinstance(body, bytes) else body
        js_resp = to_python(GLOBALS["Response"]).new(js_body, **options)
        super().__init__(str(js_resp.url), js_resp)

    def __repr__(self) -> str:
        parts = [f"status={self.status}"]
        if self.js_object.statusText:
            parts.append(f"status_text={self.status_text!r}")
        if "content-type" in self.headers:
            parts.append(f"content_type={self.headers['content-type']!r}")
        if self.js_object.url:
            parts.append(f"url={self.js_object.url!r}")
        if self.js_object.type != "default":
            parts.append(f"type={self.js_object.type!r}")
        return f"Response({', '.join(parts)})"

    @staticmethod
    def _create_options(
        status: HTTPStatus | int | None = HTTPStatus.OK,
        status_text: str = "",
        headers: Any = None,
        web_socket: Any = None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if status:
            options["status"] = status.value if isinstance(status, HTTPStatus) else status
        if status_text:
            options["statusText"] = status_text
        if headers:
            options["headers"] = _to_js_headers(headers)
        if web_socket:
            options["webSocket"] = web_socket
        return options


class Request:
    """``workers.Request``: a JavaScript ``Request`` with Python readers."""

    def __init__(self, input: Any, **other_options: Any) -> None:
        if _constructor_name(input) == "Request":
            if other_options:
                raise ValueError("Expected no options when constructing Request from a js.Request")
            self._js_request = input
            return
        if isinstance(other_options.get("method"), HTTPMethod):
            other_options["method"] = other_options["method"].value
        if "headers" in other_options:
            other_options["headers"] = _to_js_headers(other_options["headers"])
        if isinstance(other_options.get("body"), bytes):
            other_options["body"] = to_js(other_options["body"])
        source = input._js_request if isinstance(input, Request) else input
        self._js_request = to_python(GLOBALS["Request"]).new(source, **other_options)

    def __repr__(self) -> str:
        return f"Request(method={self._js_request.method!r}, url={self._js_request.url!r})"

    @property
    def js_object(self) -> Any:
        return self._js_request

    @property
    def body(self) -> Any:
        return self.js_object.body

    @property
    def body_used(self) -> bool:
        return bool(self.js_object.bodyUsed)

    @property
    def cf(self) -> Any:
        cf = self.js_object.cf
        return None if cf is jsnull else cf

    @property
    def headers(self) -> http.client.HTTPMessage:
        return _http_message(self.js_object.headers)

    @property
    def method(self) -> HTTPMethod:
        return HTTPMethod[str(self.js_object.method)]

    @property
    def redirect(self) -> str:
        return str(self.js_object.redirect)

    @property
    def url(self) -> str:
        return str(self.js_object.url)

    def _raise_if_failed(self) -> None:
        if self.body_used:
            raise OSError("Body already used")

    async def buffer(self) -> Any:
        self._raise_if_failed()
        return await self.js_object.arrayBuffer()

    async def bytes(self) -> bytes:
        self._raise_if_failed()
        return (await self.buffer()).to_bytes()  # type: ignore[no-any-return]

    def clone(self) -> Request:
        if self.body_used:
            raise OSError("Body already used")
        return Request(self.js_object.clone())

    async def json(self, **kwargs: Any) -> Any:
        self._raise_if_failed()
        return _json.loads(await self.text(), **kwargs)

    async def text(self) -> str:
        self._raise_if_failed()
        return str(await self.js_object.text())


async def pyfetch(
    url: Any, /, *, signal: Any = None, fetcher: Any = None, **kwargs: Any
) -> PyodideFetchResponse:
    """``pyodide.http.pyfetch``: fetch ``url`` with JavaScript's ``fetch`` (or ``fetcher``)."""
    fetch_fn = fetcher if fetcher is not None else to_python(GLOBALS["fetch"]) if "fetch" in GLOBALS else None
    if fetch_fn is None:  # pragma: no cover - GLOBALS always has fetch
        raise RuntimeError("fetch is not available")
    try:
        js_response = await fetch_fn(url, to_js(kwargs, dict_converter=_OBJECT.fromEntries))
    except JsException as exc:
        raise AbortError(exc) from None  # as Pyodide 0.28's pyfetch
    return PyodideFetchResponse(str(url), js_response)


async def fetch(resource: Any, **other_options: Any) -> Response:
    """``workers.fetch``: fetch a URL (loopback only, locally) or call a stub's ``fetch``."""
    if isinstance(resource, Request):
        resource = resource.js_object
    if isinstance(other_options.get("method"), HTTPMethod):
        other_options["method"] = other_options["method"].value
    response = await pyfetch(resource, **other_options)
    return Response(response.js_response)


# ---------------------------------------------------------------------------------------------
# Entry point classes


def _wrap_init(cls: type) -> None:
    """Give ``cls`` a constructor that wraps ``ctx`` and ``env`` the way the SDK's ``_wrap_class`` does."""
    original = cls.__dict__.get("__init__")
    if original is None or getattr(original, "__shardsim_wrapped__", False):
        return
    is_object = issubclass(cls, DurableObject)

    @functools.wraps(original)
    def wrapped_init(self: Any, *args: Any, **kwargs: Any) -> None:
        args_list = list(args)
        if args_list:
            ctx = args_list[0]
            if not isinstance(ctx, JsProxy | DurableObjectContext) and not isinstance(
                ctx, _ExecutionContextProxy
            ):
                ctx = to_python(ctx)
            args_list[0] = DurableObjectContext(ctx) if is_object else ctx
        if len(args_list) > 1:
            env = args_list[1]
            if not isinstance(env, JsProxy | _EnvWrapper):
                env = to_python(env)
            args_list[1] = _EnvWrapper(env)
        original(self, *args_list, **kwargs)

    wrapped_init.__shardsim_wrapped__ = True  # type: ignore[attr-defined]
    cls.__init__ = wrapped_init  # type: ignore[misc]


class _ExecutionContextProxy:  # pragma: no cover - a marker type; the ctx proxy is a JsProxy
    pass


def relaxed_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn`` with as many of ``args`` as it takes (``pyodide.code.relaxed_call``)."""
    count = _positional_count(fn)
    return fn(*args) if count is None else fn(*args[:count])


#: function -> how many positional arguments it takes (None: any number); every handler call asks.
_POSITIONAL: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()


def _positional_count(fn: Callable[..., Any]) -> int | None:
    # A bound method's count does not depend on the instance: cache it on the function.
    key = fn.__func__ if isinstance(fn, types.MethodType) else fn
    try:
        return _POSITIONAL[key]
    except (KeyError, TypeError):  # TypeError: not weak-referenceable (a builtin); not cached
        pass
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        count: int | None = None
    else:
        count = 0
        for p in params:
            if p.kind is p.VAR_POSITIONAL:
                count = None
                break
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                count += 1
    with contextlib.suppress(TypeError):
        _POSITIONAL[key] = count
    return count


def _to_runtime_result(value: Any) -> Any:
    """A Python handler result as the runtime takes it (a JavaScript value, unwrapped)."""
    js = to_javascript(python_to_rpc(value), borrowed=False)
    if isinstance(js, _JsResponseValue):
        return js
    return runtime_value(js, "the handler's result")


def _fetch_result(value: Any) -> Any:
    js = to_javascript(python_to_rpc(value), borrowed=False)
    if isinstance(js, _JsResponseValue):
        return js
    # Not a Response: the runtime reports it with production's message.
    return value


def _converting(result: Any, convert: Callable[[Any], Any]) -> Any:
    if inspect.isawaitable(result):
        return Mapped(result, convert, explain)
    return convert(result)


def _explaining(result: Any) -> Any:
    """A handler's result, with asyncio's failures explained (see :func:`._asyncio.explain`)."""
    if inspect.iscoroutine(result):
        return Mapped(result, _identity, explain)
    return result


def _identity(value: Any) -> Any:
    return value


class _PyodideEntry:
    """How production's Pyodide entry point calls a Python class's handlers and RPC methods.

    Handlers (``fetch``, ``alarm``, ``webSocket*``, ``scheduled``) are called
    *relaxed*: arguments the method does not take are dropped, so
    ``async def fetch(self)`` and ``async def alarm(self)`` work. ``fetch``
    gets a :class:`Request` and its result is converted back; the other
    handlers get their JavaScript arguments as Pyodide converts them (a
    ``WebSocket`` proxy, a ``str``, an ``ArrayBuffer`` proxy for a binary
    message). RPC methods are called strictly, their arguments converted
    with :func:`python_from_rpc` and their result with :func:`python_to_rpc`.
    """

    def handler(self, instance: Any, name: str) -> Callable[..., Any] | None:
        method = getattr(instance, name, None)
        if method is None or not callable(method):
            return None
        if name == "fetch":

            def fetch_handler(request: Any, *rest: Any) -> Any:
                py_request = Request(to_python(request)) if isinstance(request, _JsRequestValue) else request
                return _converting(
                    relaxed_call(method, py_request, *[to_python(r) for r in rest]), _fetch_result
                )

            return fetch_handler

        def relaxed_handler(*args: Any) -> Any:
            return _explaining(relaxed_call(method, *[_handler_arg(a) for a in args]))

        return relaxed_handler

    def method(self, instance: Any, name: str) -> Callable[..., Any] | None:
        method = getattr(instance, name, None)
        if method is None or not callable(method):
            return None

        def rpc(*args: Any) -> Any:
            py_args = [python_from_rpc(to_python(js_value(a))) for a in args]
            return _converting(method(*py_args), _to_runtime_result)

        return rpc


def _handler_arg(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        from ._ffi import JSArrayBuffer

        return to_python(JSArrayBuffer(value))
    if isinstance(value, BaseException):
        return to_python(JSError("Error", str(value)))
    return to_python(value)


PYODIDE_ENTRY = _PyodideEntry()


class DurableObject(_RuntimeDurableObject):
    """``workers.DurableObject``: subclass it; ``self.ctx`` and ``self.env`` are wrapped as in production."""

    __shardsim_entry__ = PYODIDE_ENTRY

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _wrap_init(cls)


class WorkerEntrypoint(_RuntimeEntrypoint):
    """``workers.WorkerEntrypoint``: a Worker's entry point class (``self.env`` wrapped)."""

    __shardsim_entry__ = PYODIDE_ENTRY

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _wrap_init(cls)


_wrap_init(DurableObject)
_wrap_init(WorkerEntrypoint)


class WorkflowEntrypoint:
    """``workers.WorkflowEntrypoint``: importable; shardsim does not run Workflows."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


def handler(func: Callable[..., Any]) -> Callable[..., Any]:
    """``@handler`` on a module-level ``on_fetch``: the request becomes a :class:`Request`, ``env`` is wrapped."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if args and _constructor_name(args[0]) == "Request":
            args = (Request(args[0]), *args[1:])
        if len(args) > 1:
            args = (args[0], _EnvWrapper(args[1]), *args[2:])
        return func(*args, **kwargs)

    return wrapper


class _CloudflareWorkers:
    """``import_from_javascript("cloudflare:workers")``: the module's ``env`` and ``waitUntil``."""

    @property
    def env(self) -> Any:
        rt = current_runtime()
        if rt is None:
            raise RuntimeError("cloudflare:workers env is only available inside a running shardsim runtime")
        return to_python(rt.env)

    @property
    def waitUntil(self) -> Any:
        def wait_until(awaitable: Any) -> None:
            rt = current_runtime()
            if rt is None:
                raise RuntimeError("waitUntil() needs a running shardsim runtime")

            async def run() -> None:
                await awaitable

            rt.spawn(run)

        return wait_until


def import_from_javascript(module_name: str) -> Any:
    """Import a JavaScript module: ``cloudflare:workers`` is emulated; others are refused clearly."""
    if module_name == "cloudflare:workers":
        return _CloudflareWorkers()
    raise ImportError(
        f"Failed to import '{module_name}': shardsim emulates only 'cloudflare:workers' (env, waitUntil)"
    )


@contextlib.contextmanager
def patch_env(d: Any = None, **kwds: Any) -> Iterator[None]:
    """Set attributes of the current runtime's ``env`` for the duration (the SDK's ``patch_env``)."""
    rt = current_runtime()
    if rt is None:
        raise RuntimeError("patch_env() needs a running shardsim runtime")
    values = (dict(d) if d else {}) | kwds
    env = rt.env
    saved = {k: env.__dict__.get(k, _UNSET) for k in values}
    env.__dict__.update(
        {k: runtime_value(to_javascript(v, borrowed=False), "patch_env()") for k, v in values.items()}
    )
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is _UNSET:
                env.__dict__.pop(k, None)
            else:
                env.__dict__[k] = v


_UNSET = object()
