"""What user code subclasses and receives: DurableObject, WorkerEntrypoint, ctx.

Names are production's, as Python Workers code spells them (camelCase).
Handlers the runtime calls: ``fetch(request)``, ``alarm(alarm_info=None)``,
``webSocketMessage``, ``webSocketClose``, ``webSocketError``. Every other
public method is callable over RPC with positional arguments.

What a handler may await: its own storage (never suspends; see
runtime/storage), other objects' stubs, :func:`runtime.sleep` / trio's
sleeps, and background work started with ``ctx.waitUntil`` /
``ctx.start_soon``. asyncio primitives do not work here: handlers run on trio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

if TYPE_CHECKING:
    from ._actor import Activation
    from ._ids import DurableObjectId
    from .sockets import WebSocket, WebSocketRequestResponsePair
    from .storage import DurableObjectStorage

__all__ = ["DurableObject", "DurableObjectAbort", "DurableObjectState", "WorkerEntrypoint"]

T = TypeVar("T")

#: Names never callable over RPC: the handlers the runtime calls, and attributes.
RESERVED_NAMES = frozenset(
    {"fetch", "alarm", "webSocketMessage", "webSocketClose", "webSocketError", "ctx", "env", "preShutdown"}
)


class DurableObjectAbort(BaseException):
    """Raised by ``ctx.abort()`` in the calling handler.

    A ``BaseException``, as in production's Python SDK, so ``except Exception``
    cannot swallow it: the object is being reset.
    """


class Pending(Generic[T]):
    """The result of background work that may be awaited, or dropped safely.

    Awaiting creates the waiting coroutine only then, so a dropped ``Pending``
    never produces a "coroutine was never awaited" warning.
    """

    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def set_value(self, value: T) -> None:
        self._value = value
        self._event.set()

    def set_error(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    async def _wait(self) -> T:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def __await__(self) -> Generator[Any, None, T]:
        return self._wait().__await__()


class DurableObjectState:
    """``ctx``: the object's id, storage, and the concurrency controls."""

    __slots__ = ("_act", "id", "storage")

    def __init__(self, act: Activation, object_id: DurableObjectId, storage: DurableObjectStorage) -> None:
        self._act = act
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
        self._act.actor.runtime._sockets.accept(self._act, ws, tags)

    def getWebSockets(self, tag: str | None = None) -> list[WebSocket]:
        """The object's open (or closing) hibernatable sockets, optionally with ``tag``."""
        return self._act.actor.runtime._sockets.get_websockets(self._act.actor, tag)

    def getTags(self, ws: WebSocket) -> list[str]:
        """The tags ``ws`` was accepted with."""
        return self._act.actor.runtime._sockets.get_tags(self._act.actor, ws)

    def setWebSocketAutoResponse(self, pair: WebSocketRequestResponsePair | None = None) -> None:
        """Answer messages equal to ``pair.request`` with ``pair.response`` without waking the object."""
        self._act.actor.runtime._sockets.set_auto_response(self._act.actor, pair)

    def getWebSocketAutoResponse(self) -> WebSocketRequestResponsePair | None:
        state = self._act.actor.sockets
        return None if state is None else state.auto_response

    def getWebSocketAutoResponseTimestamp(self, ws: WebSocket) -> Any:
        """When the runtime last auto-responded on ``ws`` (a datetime), or None."""
        return ws._auto_response_at

    def setHibernatableWebSocketEventTimeout(self, timeoutMs: int | None = None) -> None:
        """Limit how long one websocket event handler may run (None: no limit)."""
        self._act.actor.runtime._sockets.set_event_timeout(self._act.actor, timeoutMs)

    def getHibernatableWebSocketEventTimeout(self) -> int | None:
        state = self._act.actor.sockets
        return None if state is None else state.event_timeout_ms

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
        raise DurableObjectAbort(reason if reason is not None else "Durable Object was aborted.")


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
