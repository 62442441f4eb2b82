"""Namespaces and stubs: how Worker code reaches objects.

Invariants:

* Creating an id or a stub never activates an object; only a delivered
  event does.
* Calls through one stub start in issue order; two stubs have no mutual order.
* RPC arguments and results cross by value through the shared codec, with
  production's refusals (keyword arguments, tuples, bytearrays, ...), so
  mutation on one side never shows on the other.
* An error that reset the object breaks the stub: later calls through it
  fail with the same error, as in production; make a new stub.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from shards._codec import decode, encode
from shards._errors import CodecError, DurableObjectError

from ._actor import Activation, StubOrder
from ._http import Request, Response
from ._ids import DurableObjectId, IdFactory
from ._object import RESERVED_NAMES

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["DurableObjectNamespace", "DurableObjectStub"]

# workerd's text for a missing RPC method (TypeError).
_NO_METHOD = 'The RPC receiver does not implement the method "{name}".'
_NO_FETCH = "Handler does not export a fetch() function."


class DurableObjectNamespace:
    """``env.BINDING``: ids and stubs for one Durable Object class."""

    __slots__ = ("_binding", "_ids", "_runtime")

    def __init__(self, runtime: Runtime, binding: str, ids: IdFactory) -> None:
        self._runtime = runtime
        self._binding = binding
        self._ids = ids

    def __repr__(self) -> str:
        return f"<DurableObjectNamespace {self._binding}>"

    def idFromName(self, name: str) -> DurableObjectId:
        return self._ids.idFromName(name)

    def newUniqueId(self, options: dict[str, Any] | None = None) -> DurableObjectId:
        return self._ids.newUniqueId(options)

    def idFromString(self, id: str) -> DurableObjectId:
        return self._ids.idFromString(id)

    def get(self, id: DurableObjectId, options: dict[str, Any] | None = None) -> DurableObjectStub:
        """A stub for ``id`` (``options={"locationHint": ...}`` is accepted and changes nothing)."""
        if not isinstance(id, DurableObjectId):
            raise TypeError(f"get() expects a DurableObjectId, got {type(id).__name__}")
        # An id from another namespace is refused, as production does.
        self._ids.idFromString(id.toString())
        _check_options(options, {"locationHint"}, "get")
        return DurableObjectStub(self._runtime, self._binding, id)

    def getByName(self, name: str, options: dict[str, Any] | None = None) -> DurableObjectStub:
        """Shorthand for ``get(idFromName(name))``."""
        return self.get(self.idFromName(name), options)

    def jurisdiction(self, jurisdiction: str) -> DurableObjectNamespace:
        """A sub-namespace pinned to a jurisdiction; locally the same namespace."""
        if not isinstance(jurisdiction, str) or not jurisdiction:
            raise TypeError("jurisdiction() expects a non-empty string")
        return self


def _check_options(options: dict[str, Any] | None, allowed: set[str], where: str) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise TypeError(f"{where}() options must be a dict, got {type(options).__name__}")
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"{where}() got unknown option(s): {', '.join(sorted(unknown))}")


def _cross(value: Any, limit: int, what: str) -> Any:
    """Copy ``value`` across the RPC boundary, refusing what production refuses."""
    try:
        data = encode(value)
    except CodecError as exc:
        raise CodecError(f"RPC {what} cannot be serialized: {exc}", path=exc.path) from None
    if len(data) > limit:
        raise DurableObjectError(f"RPC {what} is {len(data)} bytes, over the {limit}-byte limit")
    return decode(data)


class DurableObjectStub:
    """A client for one object. ``await stub.method(*args)`` calls it; ``fetch`` sends a Request."""

    __slots__ = ("_binding", "_broken", "_order", "_runtime", "id", "name")

    def __init__(self, runtime: Runtime, binding: str, object_id: DurableObjectId) -> None:
        self._runtime = runtime
        self._binding = binding
        self.id = object_id
        self.name = object_id.name
        self._order = StubOrder()
        self._broken: BaseException | None = None

    def __repr__(self) -> str:
        return f"<DurableObjectStub {self._binding} {self.id.toString()}>"

    async def _call(self, invoke: Callable[[Activation], Awaitable[Any]]) -> Any:
        if self._broken is not None:
            raise self._broken
        actor = self._runtime._actor_for(self._binding, self.id)
        try:
            return await actor.deliver(invoke, visible_id=self.id.for_object(), order=self._order)
        except DurableObjectError as exc:
            if exc.durableObjectReset:
                self._broken = exc
            raise
        except BaseException as exc:
            if getattr(exc, "durableObjectReset", False):
                self._broken = exc
            raise

    async def fetch(
        self, input: str | Request, init: dict[str, Any] | None = None, **kwargs: Any
    ) -> Response:
        """Send a request to the object's ``fetch`` handler.

        Accepts a URL or a :class:`Request`, plus either an ``init`` dict or
        keywords (``method``, ``headers``, ``body``), as Python Workers do.
        """
        options = dict(init or {}, **kwargs)
        request = input if isinstance(input, Request) and not options else Request(input, **options)

        async def invoke(act: Activation) -> Response:
            handler = getattr(act.instance, "fetch", None)
            if handler is None:
                raise TypeError(_NO_FETCH)
            response = handler(request)
            if inspect.isawaitable(response):
                response = await response
            if not isinstance(response, Response):
                raise TypeError(f"fetch() must return a Response, got {type(response).__name__}")
            return response

        return await self._call(invoke)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RpcMethod(self, name)


class _RpcMethod:
    __slots__ = ("_name", "_stub")

    def __init__(self, stub: DurableObjectStub, name: str) -> None:
        self._stub = stub
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        if kwargs:
            raise TypeError(
                f"RPC method {self._name}() got keyword arguments ({', '.join(sorted(kwargs))}); "
                "RPC calls take positional arguments only"
            )
        limit = self._stub._runtime.config.rpc_max_bytes
        # Serialize at the call, so the caller's later mutations cannot leak in.
        payload = _cross(list(args), limit, "arguments")
        return self._invoke(payload, limit)

    async def _invoke(self, payload: list[Any], limit: int) -> Any:
        name = self._name

        async def invoke(act: Activation) -> Any:
            method = None if name in RESERVED_NAMES else getattr(act.instance, name, None)
            if method is None or not callable(method):
                raise TypeError(_NO_METHOD.format(name=name))
            result = method(*payload)
            if inspect.isawaitable(result):
                result = await result
            return _cross(result, limit, "result")

        return await self._stub._call(invoke)
