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

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from shards._codec import decode, encode
from shards._errors import CodecError, DurableObjectError

from ._core import StubOrder, handler_of, method_of
from ._http import Request, Response
from ._ids import DurableObjectId, IdFactory
from ._object import RESERVED_NAMES

if TYPE_CHECKING:
    from ._core import Activation, Actor, Core

__all__ = ["DurableObjectNamespace", "DurableObjectStub", "stub_target"]

# workerd's text for a missing RPC method (TypeError).
_NO_METHOD = 'The RPC receiver does not implement the method "{name}".'
_NO_FETCH = "Handler does not export a fetch() function."


class DurableObjectNamespace:
    """``env.BINDING``: ids and stubs for one Durable Object class."""

    __slots__ = ("_binding", "_core", "_ids", "_object_class", "_stub_class")

    def __init__(self, core: Core, binding: str, object_class: type, ids: IdFactory) -> None:
        self._core = core
        self._binding = binding
        self._object_class = object_class
        self._ids = ids
        self._stub_class: type[DurableObjectStub] | None = None

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
        stub_class = self._stub_class
        if stub_class is None:
            stub_class = self._stub_class = _stub_class_for(self._object_class)
        return stub_class(self._core, self._binding, id)

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


# Values that cross unchanged: immutable, read back equal, and at most 9 bytes
# encoded. Ints go the long way outside a range every codec version accepts.
_PLAIN: Final = frozenset({type(None), bool, float})
_SMALL_INT: Final = 2**63


def _cross(value: Any, limit: int, what: str) -> Any:
    """Copy ``value`` across the RPC boundary, refusing what production refuses."""
    t = type(value)
    if (t in _PLAIN or (t is int and -_SMALL_INT <= value < _SMALL_INT)) and limit >= 9:
        return value  # what the codec would give back, without the round trip
    try:
        data = encode(value)
    except CodecError as exc:
        raise CodecError(f"RPC {what} cannot be serialized: {exc}", path=exc.path) from None
    if len(data) > limit:
        raise DurableObjectError(f"RPC {what} is {len(data)} bytes, over the {limit}-byte limit")
    return decode(data)


def _cross_args(args: tuple[Any, ...], limit: int) -> list[Any]:
    """Copy RPC arguments across the boundary (see :func:`_cross`)."""
    for arg in args:
        t = type(arg)
        if t is int:
            if not -_SMALL_INT <= arg < _SMALL_INT:
                break
        elif t not in _PLAIN:
            break
    else:
        if 9 * len(args) + 5 <= limit:  # a msgpack array header is at most 5 bytes
            return list(args)
    return _cross(list(args), limit, "arguments")  # type: ignore[no-any-return]


class DurableObjectStub:
    """A client for one object. ``await stub.method(*args)`` calls it; ``fetch`` sends a Request."""

    __slots__ = ("_actor", "_binding", "_core", "_order", "_visible_id", "id", "name")

    def __init__(self, core: Core, binding: str, object_id: DurableObjectId) -> None:
        self._core = core
        self._binding = binding
        self.id = object_id
        self.name = object_id.name
        # Call order, and the error that broke the stub (an object reset).
        self._order = StubOrder()
        # The actor and the id it sees, looked up on the first call (making a
        # stub must not touch the runtime's tables). Two slots, not a tuple:
        # nothing is allocated per stub on its first call.
        self._actor: Actor | None = None
        self._visible_id = object_id

    def __repr__(self) -> str:
        return f"<DurableObjectStub {self._binding} {self.id.toString()}>"

    def _target(self) -> tuple[Actor, DurableObjectId]:
        """The object's actor and the id it sees as ``ctx.id``."""
        actor = self._actor
        if actor is None:
            actor = self._actor = self._core.actor_for(self._binding, self.id)
            self._visible_id = self.id.for_object()
        return actor, self._visible_id

    def _call(
        self, invoke: Callable[[Activation], Any], finish: Callable[[Any], Any] | None = None
    ) -> Awaitable[Any]:
        """Deliver an event to the object; the returned coroutine runs it."""
        order = self._order
        if order.broken is not None:
            return self._fail(order.broken)
        actor = self._actor or self._target()[0]
        return actor.deliver(invoke, visible_id=self._visible_id, order=order, finish=finish)

    @staticmethod
    async def _fail(error: BaseException) -> Any:
        raise error

    async def fetch(
        self, input: str | Request, init: dict[str, Any] | None = None, **kwargs: Any
    ) -> Response:
        """Send a request to the object's ``fetch`` handler.

        Accepts a URL or a :class:`Request`, plus either an ``init`` dict or
        keywords (``method``, ``headers``, ``body``), as Python Workers do.
        """
        options = dict(init or {}, **kwargs)
        request = input if isinstance(input, Request) and not options else Request(input, **options)

        def invoke(act: Activation) -> Any:
            handler = handler_of(act.instance, "fetch")
            if handler is None:
                raise TypeError(_NO_FETCH)
            return handler(request)  # the actor awaits it if it is awaitable

        def finish(response: Any) -> Response:
            if not isinstance(response, Response):
                raise TypeError(f"fetch() must return a Response, got {type(response).__name__}")
            return response

        return await self._call(invoke, finish)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RpcMethod(self, name)


def stub_target(stub: object) -> tuple[Actor, DurableObjectId]:
    """The actor behind ``stub`` and the id its object sees as ``ctx.id`` (for the runtime's helpers).

    Raises:
        TypeError: ``stub`` is not a Durable Object stub.
    """
    if not isinstance(stub, DurableObjectStub):
        raise TypeError(f"expected a Durable Object stub, got {stub!r}")
    return stub._target()


class _RpcAttribute:
    """``stub.<method>`` for a method the object's class defines, without ``__getattr__``.

    Python reaches ``__getattr__`` only after a failed lookup, which costs
    more than the rest of building the call; a descriptor on the stub's
    class is found at once. It gives what ``__getattr__`` would.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, stub: DurableObjectStub | None, owner: type | None = None) -> Any:
        if stub is None:
            return self
        return _RpcMethod(stub, self._name)


def _stub_class_for(object_class: type) -> type[DurableObjectStub]:
    """A stub class for ``object_class``: one :class:`_RpcAttribute` per public method.

    Other names still go through ``DurableObjectStub.__getattr__`` (methods
    added later, mistakes, which fail when called, as in production).
    """
    names = sorted(
        name
        for name in dir(object_class)
        if not name.startswith("_")
        and not hasattr(DurableObjectStub, name)
        and callable(getattr(object_class, name, None))
    )
    namespace: dict[str, Any] = {"__slots__": (), "__module__": DurableObjectStub.__module__}
    namespace.update((name, _RpcAttribute(name)) for name in names)
    return type("DurableObjectStub", (DurableObjectStub,), namespace)


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
        stub = self._stub
        limit = stub._core.config.rpc_max_bytes
        # Serialize at the call, so the caller's later mutations cannot leak in.
        payload = _cross_args(args, limit)
        name = self._name

        def invoke(act: Activation) -> Any:
            method = None if name in RESERVED_NAMES else method_of(act.instance, name)
            if method is None or not callable(method):
                raise TypeError(_NO_METHOD.format(name=name))
            return method(*payload)  # the actor awaits it if it is awaitable

        def finish(result: Any) -> Any:
            return _cross(result, limit, "result")

        return stub._call(invoke, finish)
