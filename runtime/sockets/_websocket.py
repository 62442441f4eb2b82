"""WebSocketPair, WebSocket, and the hibernation API's bookkeeping.

A pair is two connected ends. Worker code keeps the ``server`` end (an object
accepts it) and returns the ``client`` end in a 101 response; whoever owns the
real connection attaches a :class:`~runtime.sockets.Transport` to the client
end (:func:`attach`). Ends that no transport backs talk to each other in
memory, which is how tests drive objects without sockets.

Invariants:

* ``send`` and ``close`` are synchronous (as in production) and never block:
  frames for a transport go to its buffer; frames for an in-memory end or an
  object go to that end's inbox, drained in order by one short-lived task.
* Messages to a socket an object accepted with ``ctx.acceptWebSocket`` are
  delivered as ``webSocketMessage`` events through the actor (constructing
  the object if it sleeps), one at a time per socket, in arrival order.
  Messages matching the object's auto-response are answered without an event.
* A send from a handler obeys the output gate: it is held until the writes
  made before it are durable, and dropped if the object resets first.
* The runtime, not the object, holds hibernatable sockets: their tags and
  attachments survive hibernation. A socket accepted with ``ws.accept()``
  inside an object pins its activation until the socket is CLOSED (every
  change to CLOSED goes through ``WebSocket._mark_closed``), and is closed
  with 1011 when that activation ends.
* An object's socket state (:class:`ObjectSockets`) hangs off its actor
  (``Actor.sockets``), made on first use by this package; the core never
  reads it.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import trio

from runtime._core import current_activation
from shards._codec import decode, encode
from shards._errors import CodecError

from ._transport import Transport

if TYPE_CHECKING:
    from runtime._core import Activation, Actor

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "OPEN",
    "MAX_ATTACHMENT_BYTES",
    "CloseEvent",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_WEBSOCKETS_PER_OBJECT",
    "MessageEvent",
    "ObjectSockets",
    "Peer",
    "WebSocket",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "attach",
    "object_sockets",
]

log = logging.getLogger("shardsim.sockets")

CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3

# Production's limits (Cloudflare's Durable Objects websocket documentation and limits page).
MAX_ATTACHMENT_BYTES = 16_384
MAX_TAGS = 10
MAX_TAG_LENGTH = 256
MAX_WEBSOCKETS_PER_OBJECT = 32_768
#: Messages queued for one end before its sender (a transport) waits.
INBOX_HIGH_WATER = 1024

# Production's texts (workerd's api/web-socket.c++ as quoted by Miniflare's tests).
NOT_ACCEPTED = "You must call accept() on this WebSocket before sending messages."
SEND_AFTER_CLOSE = "Can't call WebSocket send() after close()."
ACCEPT_USED_IN_RESPONSE = "Can't accept() WebSocket that was already used in a response."
# Our own wording where production's exact text was not found.
ACCEPT_TWICE = "acceptWebSocket() was called on a WebSocket that was already accepted."
HIBERNATE_AFTER_ACCEPT = (
    "acceptWebSocket() cannot take a WebSocket on which accept() was called: "
    "a socket is either hibernatable or not."
)
NOT_HIBERNATABLE = "getTags() was called on a WebSocket that was not accepted with acceptWebSocket()."
TOO_MANY_TAGS = f"A WebSocket can have at most {MAX_TAGS} tags."
TAG_TOO_LONG = f"A WebSocket tag can be at most {MAX_TAG_LENGTH} characters long."
TOO_MANY_SOCKETS = f"A Durable Object can accept at most {MAX_WEBSOCKETS_PER_OBJECT} hibernatable WebSockets."
ATTACHMENT_TOO_LARGE = (
    "The WebSocket attachment is {size} bytes, over the limit of " + str(MAX_ATTACHMENT_BYTES) + "."
)


class MessageEvent:
    """What ``addEventListener("message", fn)`` listeners receive."""

    __slots__ = ("data", "type")

    def __init__(self, data: str | bytes) -> None:
        self.type = "message"
        self.data = data


class CloseEvent:
    __slots__ = ("code", "reason", "type", "wasClean")

    def __init__(self, code: int, reason: str, was_clean: bool) -> None:
        self.type = "close"
        self.code = code
        self.reason = reason
        self.wasClean = was_clean


class WebSocketRequestResponsePair:
    """An auto-response: a message equal to ``request`` is answered with ``response``."""

    __slots__ = ("request", "response")

    def __init__(self, request: str, response: str) -> None:
        if not isinstance(request, str) or not isinstance(response, str):
            raise TypeError("WebSocketRequestResponsePair(request, response) takes two strings")
        self.request = request
        self.response = response


class ObjectSockets:
    """One object's sockets and hibernation settings (``Actor.sockets``)."""

    __slots__ = ("auto_response", "event_timeout_ms", "sockets", "standard")

    def __init__(self) -> None:
        #: Accepted with ``ctx.acceptWebSocket``: they outlive activations.
        self.sockets: list[WebSocket] = []
        #: Accepted with ``ws.accept()`` by the current activation: they die with it.
        self.standard: list[WebSocket] = []
        self.auto_response: WebSocketRequestResponsePair | None = None
        self.event_timeout_ms: int | None = None


def object_sockets(actor: Actor) -> ObjectSockets:
    """The socket state of ``actor``, made on first use."""
    state: ObjectSockets | None = actor.sockets
    if state is None:
        state = actor.sockets = ObjectSockets()
    return state


class _EventTarget(Protocol):
    """Where a hibernatable socket's events go (the socket service, runtime.sockets._manager)."""

    async def deliver(self, actor: Actor, ws: WebSocket, kind: str, payload: Any) -> None: ...


class WebSocket:
    """One end of a :class:`WebSocketPair`."""

    CONNECTING = CONNECTING
    OPEN = OPEN
    CLOSING = CLOSING
    CLOSED = CLOSED

    def __init__(self) -> None:
        self._other: WebSocket | None = None
        self._transport: Transport | None = None
        self.readyState = OPEN
        self._accepted = False  # accept() or acceptWebSocket()
        self._standard = False  # accept(): not hibernatable
        self._used_in_response = False
        self._owner: Actor | None = None  # the object that accepted this end
        self._events: _EventTarget | None = None  # hibernatable: the socket service
        self._pinned: Activation | None = None  # standard: the activation it pins while open
        self._tags: tuple[str, ...] = ()
        self._attachment: bytes | None = None
        self._auto_response_at: _dt.datetime | None = None
        self._listeners: dict[str, list[Callable[[Any], Any]]] = {}
        self._inbox: deque[tuple[str, Any]] = deque()
        self._pumping = False
        self._drained = trio.lowlevel.ParkingLot()
        self._sent_close = False
        #: A place for the platform layer (runtime.pyworkers) to keep this socket's JavaScript face, so
        #: that Worker code crossing it again reuses it; the runtime itself never reads it.
        self.js_proxy: Any = None

    def __repr__(self) -> str:
        state = ("CONNECTING", "OPEN", "CLOSING", "CLOSED")[self.readyState]
        return f"<WebSocket {state} tags={list(self._tags)}>"

    # -- production API ------------------------------------------------------

    def accept(self) -> None:
        """Accept with the standard API: events go to listeners; pins the owning object."""
        if self._used_in_response:
            raise TypeError(ACCEPT_USED_IN_RESPONSE)
        if self._accepted:
            return
        self._accepted = True
        self._standard = True
        act = current_activation()
        if act is not None and not act.dead:
            self._owner = act.actor
            act.pin()
            self._pinned = act
            object_sockets(act.actor).standard.append(self)
        self._kick()

    def addEventListener(self, type: str, listener: Callable[[Any], Any]) -> None:
        """Listen for ``message``, ``close`` or ``error`` on a socket accepted with ``accept()``."""
        self._listeners.setdefault(type, []).append(listener)

    def send(self, message: str | bytes) -> None:
        """Send a frame to the other end: text for ``str``, binary for ``bytes``."""
        if not isinstance(message, str | bytes):
            raise TypeError(f"WebSocket.send() takes str or bytes, got {type(message).__name__}")
        if not self._accepted:
            raise TypeError(NOT_ACCEPTED)
        if self._sent_close or self.readyState == CLOSED:
            raise TypeError(SEND_AFTER_CLOSE)
        self._output(("message", message))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake."""
        if not isinstance(code, int) or not (code == 1000 or 3000 <= code <= 4999 or 1001 <= code <= 1014):
            raise TypeError(f"Invalid WebSocket close code: {code!r}")
        if len(reason.encode("utf-8")) > 123:
            raise TypeError("WebSocket close reason must be at most 123 bytes of UTF-8")
        if self._sent_close:
            return
        self._sent_close = True
        if self.readyState == OPEN:
            self.readyState = CLOSING
        else:
            self._mark_closed()
        self._output(("close", (code, reason)))

    def serializeAttachment(self, value: Any) -> None:
        """Keep ``value`` with the socket (survives hibernation; at most 16 KiB encoded)."""
        try:
            data = encode(value)
        except CodecError as exc:
            raise CodecError(f"serializeAttachment(): {exc}", path=exc.path) from None
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise ValueError(ATTACHMENT_TOO_LARGE.format(size=len(data)))
        self._attachment = data

    def deserializeAttachment(self) -> Any:
        """A fresh copy of the attachment, or None."""
        return None if self._attachment is None else decode(self._attachment)

    # -- delivery ------------------------------------------------------------------

    def _output(self, item: tuple[str, Any]) -> None:
        """Send ``item`` toward the other end, through the owner's output gate."""
        owner = self._owner
        act = owner.act if owner is not None else None
        if act is not None:
            act.output(self._transmit, item)
        else:
            self._transmit(item)

    def _transmit_message(self, payload: str | bytes) -> None:
        """``_transmit(("message", payload))`` for a caller that checked the output gate itself."""
        other = self._other
        if other is None:
            return
        transport = other._transport
        if transport is not None:
            transport.send_nowait(payload)
        else:
            other._enqueue("message", payload)

    def _transmit(self, item: tuple[str, Any]) -> None:
        other = self._other
        if other is None:
            return
        kind, payload = item
        transport = other._transport
        if transport is not None:
            if kind == "message":
                transport.send_nowait(payload)
            else:
                transport.close_nowait(*payload)
                other._remote_closed(payload[0], payload[1], True)
            return
        other._enqueue(kind, payload if kind == "message" else (*payload, True))

    def _enqueue(self, kind: str, payload: Any) -> None:
        if self.readyState == CLOSED and kind == "message":
            return
        if kind == "close" and self.readyState == OPEN:
            self.readyState = CLOSING
        self._inbox.append((kind, payload))
        self._kick()

    def _remote_closed(self, code: int, reason: str, was_clean: bool) -> None:
        self._mark_closed()

    def _mark_closed(self) -> None:
        """The socket is CLOSED now: a standard socket stops pinning its activation."""
        self.readyState = CLOSED
        act = self._pinned
        if act is not None:
            self._pinned = None
            state: ObjectSockets | None = act.actor.sockets
            if state is not None and self in state.standard:
                state.standard.remove(self)
            act.unpin()

    def _reset_close(self) -> None:
        """Close from our side because the object's activation ended (production: 1011)."""
        if self.readyState != CLOSED:
            self._sent_close = True
            self._mark_closed()
            self._transmit(("close", (1011, "Durable Object reset")))

    def _kick(self) -> None:
        """Start draining the inbox if something can consume it."""
        if self._pumping or not self._inbox or not self._accepted:
            return
        owner = self._owner
        if owner is None:
            # Accepted outside any object (a test's end): listeners are plain
            # callbacks, call them now.
            while self._inbox:
                self._dispatch_plain(*self._inbox.popleft())
            return
        self._pumping = True
        owner.core.spawn(self._pump)

    def _dispatch_plain(self, kind: str, payload: Any) -> None:
        if kind == "message":
            event: Any = MessageEvent(payload)
        else:
            self._mark_closed()
            event = CloseEvent(*payload)
        for listener in list(self._listeners.get(kind, ())):
            listener(event)

    async def _pump(self) -> None:
        try:
            while self._inbox:
                kind, payload = self._inbox.popleft()
                if len(self._inbox) < INBOX_HIGH_WATER:
                    self._drained.unpark_all()
                owner = self._owner
                if owner is None:
                    self._dispatch_plain(kind, payload)
                    continue
                if owner.core.closing:
                    self._inbox.clear()  # the runtime is going away; so is this socket
                    break
                try:
                    events = self._events
                    if events is not None:
                        await events.deliver(owner, self, kind, payload)
                    else:
                        await self._deliver_to_listeners(owner, kind, payload)
                except Exception:
                    if _runtime_closing(owner):
                        # The runtime closed under this event (its object was reset
                        # on the way out): not the handler's fault, nothing to report.
                        self._inbox.clear()
                        break
                    # The handler raised: production logs it; the socket stays open.
                    log.exception("websocket event handler of %r failed", owner)
        finally:
            self._pumping = False
            self._drained.unpark_all()

    async def _deliver_to_listeners(self, owner: Actor, kind: str, payload: Any) -> None:
        """One event of a socket accepted with ``accept()``: its listeners run inside the object."""
        if kind == "close":
            # The standard API answers a close itself.
            code, reason, _was_clean = payload
            if not self._sent_close:
                self._sent_close = True
                self._transmit(("close", (code, reason)))
            self._mark_closed()

        async def invoke(act: Activation) -> None:
            event: Any
            if kind == "message":
                event = MessageEvent(payload)
            elif kind == "close":
                event = CloseEvent(*payload)
            else:
                event = payload
            for listener in list(self._listeners.get(kind, ())):
                result = listener(event)
                if inspect.isawaitable(result):
                    await result

        await owner.deliver(invoke, visible_id=owner.id.for_object())

    async def _wait_room(self) -> None:
        while len(self._inbox) >= INBOX_HIGH_WATER:
            await self._drained.park()


def _runtime_closing(owner: Actor) -> bool:
    """Whether ``owner``'s runtime is closing (read fresh: an await may have passed)."""
    return owner.core.closing


class WebSocketPair:
    """Two connected WebSocket ends: ``client`` and ``server`` (also ``pair[0]``/``pair[1]``)."""

    def __init__(self) -> None:
        self.client = WebSocket()
        self.server = WebSocket()
        self.client._other = self.server
        self.server._other = self.client

    @classmethod
    def new(cls) -> WebSocketPair:
        """Python Workers spell it ``WebSocketPair.new()`` (a JS constructor)."""
        return cls()

    def object_values(self) -> tuple[WebSocket, WebSocket]:
        """``(client, server)``, as ``Object.values(new WebSocketPair())`` in Python Workers."""
        return self.client, self.server

    def __iter__(self) -> Iterator[WebSocket]:
        return iter((self.client, self.server))

    def __getitem__(self, index: int) -> WebSocket:
        return (self.client, self.server)[index]


class Peer:
    """Feeds what a real connection's remote peer does into a client end."""

    __slots__ = ("_done", "_ws")

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._done = False

    async def message(self, data: str | bytes) -> None:
        """The remote peer sent ``data``; returns once it is queued (may wait: backpressure)."""
        if self._done:
            return
        target = self._ws._other
        if target is None:  # pragma: no cover - pairs are always connected
            return
        await target._wait_room()
        target._enqueue("message", data)

    async def closed(self, code: int, reason: str, was_clean: bool) -> None:
        """The connection closed."""
        await self._finish("close", (code, reason, was_clean))

    async def error(self, exc: BaseException) -> None:
        """The connection failed."""
        await self._finish("error", exc)

    async def _finish(self, kind: str, payload: Any) -> None:
        if self._done:
            return
        self._done = True
        self._ws._mark_closed()
        target = self._ws._other
        if target is not None:
            target._enqueue(kind, payload)
        await trio.lowlevel.checkpoint()


def attach(client: WebSocket, transport: Transport) -> Peer:
    """Back ``client`` with a real connection; returns the :class:`Peer` to feed it."""
    if client._transport is not None:
        raise RuntimeError("this WebSocket already has a transport")
    client._transport = transport
    client._accepted = True
    client._used_in_response = True
    # Anything the object sent before the handshake completed goes out now.
    pending = list(client._inbox)
    client._inbox.clear()
    for kind, payload in pending:
        if kind == "message":
            transport.send_nowait(payload)
        elif kind == "close":
            transport.close_nowait(payload[0], payload[1])
    return Peer(client)
