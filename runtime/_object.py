"""What user code subclasses and receives: DurableObject, WorkerEntrypoint, ctx.

Names are production's, as Python Workers code spells them (camelCase).
Handlers the runtime calls: ``fetch(request)``, ``alarm(alarm_info=None)``,
``webSocketMessage``, ``webSocketClose``, ``webSocketError``. Every other
public method is callable over RPC with positional arguments.

What a handler may await: its own storage (never suspends; see
runtime/storage), other objects' stubs, trio's sleeps, D1, and background
work started with ``ctx.waitUntil`` / ``ctx.start_soon``. asyncio primitives
do not work here: handlers run on trio.

Invariants: ``ctx`` (:class:`DurableObjectState`) is a facade; it holds no
state of its own beyond its id and storage, and forwards to the activation
(concurrency controls, pins) and to the socket service (the hibernation API).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._core import ABORTED_MESSAGE, DurableObjectAbort, Pending

if TYPE_CHECKING:
    from ._core import Activation
    from ._ids import DurableObjectId
    from .sockets import WebSocket, WebSocketRequestResponsePair
    from .sockets._manager import SocketManager
    from .storage import DurableObjectStorage

__all__ = ["DurableObject", "DurableObjectAbort", "DurableObjectState", "WorkerEntrypoint"]

T = TypeVar("T")

#: Names never callable over RPC: the handlers the runtime calls, and attributes.
RESERVED_NAMES = frozenset(
    {"fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError", "ctx", "env", "preShutdown"}
)


class DurableObjectState:
    """``ctx``: the object's id, storage, and the concurrency controls."""

    __slots__ = ("_act", "_sockets", "id", "storage")

    def __init__(
        self,
        act: Activation,
        object_id: DurableObjectId,
        storage: DurableObjectStorage,
        sockets: SocketManager,
    ) -> None:
        self._act = act
        self._sockets = sockets
        self.id = object_id
        self.storage = storage

    def blockConcurrencyWhile(self, callback: Callable[[], Awaitable[T]]) -> Pending[T]:
        """Run ``callback`` with no other event delivered until it settles (30 s limit).

        Callable without ``await`` from a synchronous constructor. If the
        callback raises or times out, the object is reset.
        """
        return self._act.block_concurrency_while(callback)

    def waitUntil(self, awaitable: Awaitable[Any]) -> None:
        """Keep the object in memory until ``awaitable`` settles (at most 15 minutes)."""
        self._act.wait_until(awaitable)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start a background task (shardsim's trio-style stand-in for ``asyncio.create_task``).

        Like a pending ``setTimeout`` in production, a running background task
        pins the object in memory (it cannot hibernate); the task is cancelled
        when the object hibernates, is evicted or is reset.
        """
        self._act.start_background(fn, args, limit=None)

    # -- hibernatable websockets ------------------------------------------------

    def acceptWebSocket(self, ws: WebSocket, tags: list[str] | None = None) -> None:
        """Accept ``ws`` as hibernatable: the runtime holds it while the object sleeps.

        Messages arrive as ``webSocketMessage(ws, message)`` events. At most 10
        tags of at most 256 characters; at most 32,768 sockets per object.
        """
        self._act.check_alive()
        self._sockets.accept(self._act.actor, ws, tags)

    def getWebSockets(self, tag: str | None = None) -> list[WebSocket]:
        """The object's open (or closing) hibernatable sockets, optionally with ``tag``."""
        return self._sockets.get_websockets(self._act.actor, tag)

    def getTags(self, ws: WebSocket) -> list[str]:
        """The tags ``ws`` was accepted with."""
        return self._sockets.get_tags(self._act.actor, ws)

    def setWebSocketAutoResponse(self, pair: WebSocketRequestResponsePair | None = None) -> None:
        """Answer messages equal to ``pair.request`` with ``pair.response`` without waking the object."""
        self._sockets.set_auto_response(self._act.actor, pair)

    def getWebSocketAutoResponse(self) -> WebSocketRequestResponsePair | None:
        return self._sockets.get_auto_response(self._act.actor)

    def getWebSocketAutoResponseTimestamp(self, ws: WebSocket) -> Any:
        """When the runtime last auto-responded on ``ws`` (a datetime), or None."""
        return self._sockets.auto_response_timestamp(ws)

    def setHibernatableWebSocketEventTimeout(self, timeoutMs: int | None = None) -> None:
        """Limit how long one websocket event handler may run (None: no limit)."""
        self._sockets.set_event_timeout(self._act.actor, timeoutMs)

    def getHibernatableWebSocketEventTimeout(self) -> int | None:
        return self._sockets.get_event_timeout(self._act.actor)

    def abort(self, reason: str | None = None, options: dict[str, Any] | None = None) -> None:
        """Reset the object now; raises :class:`DurableObjectAbort` in the caller.

        ``options={"retryAlarm": False}`` stops an interrupted alarm from being retried.
        """
        retry_alarm = True
        if options is not None:
            unknown = set(options) - {"retryAlarm"}
            if unknown:
                raise TypeError(f"abort() got unknown option(s): {', '.join(sorted(unknown))}")
            retry_alarm = bool(options.get("retryAlarm", True))
        self._act.abort(reason, retry_alarm=retry_alarm)
        raise DurableObjectAbort(reason if reason is not None else ABORTED_MESSAGE)


class DurableObject:
    """Base class for Durable Objects: subclass it and keep ``__init__(self, ctx, env)``."""

    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        self.ctx = ctx
        self.env = env


class WorkerEntrypoint:
    """Base class of a Worker's entry point: ``async def fetch(self, request)`` with ``self.env``."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env
