"""The socket service: ctx's hibernation API, and events of hibernatable sockets.

Invariants:

* An object's hibernatable sockets live in its :class:`ObjectSockets`
  (``Actor.sockets``), not in the instance, so they survive hibernation and
  eviction; a reset (crash, abort, failed write) closes them with 1011, as a
  restart of production's host would. Sockets accepted with the standard
  ``accept()`` API die with the activation that accepted them, whatever
  ended it.
* An auto-response is answered here, without an event, so it never wakes or
  constructs the object; it records the time on the socket.
* A remote close reaches ``webSocketClose``; with the
  ``web_socket_auto_reply_to_close`` compatibility behaviour the runtime
  answers the close itself, otherwise the socket stays CLOSING until the
  object calls ``ws.close()``.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import logging
from typing import TYPE_CHECKING, Any

import trio

from runtime._core import Transition, handler_of

from ._websocket import (
    ACCEPT_TWICE,
    CLOSED,
    CLOSING,
    HIBERNATE_AFTER_ACCEPT,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_WEBSOCKETS_PER_OBJECT,
    NOT_HIBERNATABLE,
    OPEN,
    TAG_TOO_LONG,
    TOO_MANY_SOCKETS,
    TOO_MANY_TAGS,
    WebSocket,
    WebSocketRequestResponsePair,
    object_sockets,
)

if TYPE_CHECKING:
    from runtime._core import Activation, Actor, Core

__all__ = ["SocketManager"]

log = logging.getLogger("shardsim.sockets")

_HANDLERS = {"message": "webSocketMessage", "close": "webSocketClose", "error": "webSocketError"}


class SocketManager:
    """Implements ctx's hibernation API and delivers hibernatable sockets' events to objects."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self.auto_responses = 0

    # -- ctx API ---------------------------------------------------------------

    def accept(self, actor: Actor, ws: WebSocket, tags: Any) -> None:
        if not isinstance(ws, WebSocket):
            raise TypeError(f"acceptWebSocket() expects a WebSocket, got {type(ws).__name__}")
        if ws._standard:
            raise TypeError(HIBERNATE_AFTER_ACCEPT)
        if ws._accepted:
            raise TypeError(ACCEPT_TWICE)
        checked: list[str] = []
        if tags is not None:
            if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
                raise TypeError("acceptWebSocket() tags must be a list of strings")
            checked = list(tags)
            if len(checked) > MAX_TAGS:
                raise ValueError(TOO_MANY_TAGS)
            if any(len(t) > MAX_TAG_LENGTH for t in checked):
                raise ValueError(TAG_TOO_LONG)
        state = object_sockets(actor)
        live = [s for s in state.sockets if s.readyState != CLOSED]
        if len(live) >= MAX_WEBSOCKETS_PER_OBJECT:
            raise ValueError(TOO_MANY_SOCKETS)
        state.sockets = live
        ws._accepted = True
        ws._owner = actor
        ws._events = self
        ws._tags = tuple(checked)
        live.append(ws)
        ws._kick()

    def get_websockets(self, actor: Actor, tag: str | None) -> list[WebSocket]:
        state = actor.sockets
        if state is None:
            return []
        return [
            ws
            for ws in state.sockets
            if ws.readyState in (OPEN, CLOSING) and (tag is None or tag in ws._tags)
        ]

    def get_tags(self, actor: Actor, ws: WebSocket) -> list[str]:
        if not isinstance(ws, WebSocket) or ws._owner is not actor or ws._standard or not ws._accepted:
            raise TypeError(NOT_HIBERNATABLE)
        return list(ws._tags)

    def set_auto_response(self, actor: Actor, pair: WebSocketRequestResponsePair | None) -> None:
        if pair is not None and not isinstance(pair, WebSocketRequestResponsePair):
            raise TypeError("setWebSocketAutoResponse() expects a WebSocketRequestResponsePair or None")
        object_sockets(actor).auto_response = pair

    def get_auto_response(self, actor: Actor) -> WebSocketRequestResponsePair | None:
        state = actor.sockets
        return None if state is None else state.auto_response

    @staticmethod
    def auto_response_timestamp(ws: WebSocket) -> _dt.datetime | None:
        """When the runtime last auto-responded on ``ws``, or None."""
        return ws._auto_response_at

    def set_event_timeout(self, actor: Actor, timeout_ms: int | None) -> None:
        if timeout_ms is not None and (
            not isinstance(timeout_ms, int) or not 0 < timeout_ms <= 7 * 86_400_000
        ):
            raise ValueError(
                "setHibernatableWebSocketEventTimeout() takes milliseconds between 1 and 604800000, or None"
            )
        object_sockets(actor).event_timeout_ms = timeout_ms

    def get_event_timeout(self, actor: Actor) -> int | None:
        state = actor.sockets
        return None if state is None else state.event_timeout_ms

    def count(self, actor: Actor) -> int:
        """The object's open (or closing) hibernatable sockets."""
        return len(self.get_websockets(actor, None))

    # -- events ------------------------------------------------------------------

    async def deliver(self, actor: Actor, ws: WebSocket, kind: str, payload: Any) -> None:
        """Deliver one message/close/error that arrived on hibernatable ``ws`` (owned by ``actor``)."""
        state = actor.sockets
        core = self._core
        if kind == "message" and state is not None:
            auto = state.auto_response
            if auto is not None and payload == auto.request:
                # Answered by the runtime: the object is not woken.
                ws._auto_response_at = _dt.datetime.fromtimestamp(core.clock.now_ms() / 1000, _dt.UTC)
                self.auto_responses += 1
                ws._transmit(("message", auto.response))
                return
        if kind == "close" and core.config.web_socket_auto_reply_to_close:
            code, reason, _was_clean = payload
            if not ws._sent_close:
                ws._sent_close = True
                ws._transmit(("close", (code, reason)))
            ws._mark_closed()
        timeout_ms = state.event_timeout_ms if state is not None else None

        async def invoke(act: Activation) -> None:
            handler = handler_of(act.instance, _HANDLERS[kind])
            if handler is None:
                if kind == "message":
                    log.warning("%r received a websocket message but has no webSocketMessage()", actor)
                return
            args: tuple[Any, ...] = (ws, payload) if kind != "close" else (ws, *payload)
            with trio.fail_after(timeout_ms / 1000 if timeout_ms else float("inf")):
                result = handler(*args)
                if inspect.isawaitable(result):
                    await result

        await actor.deliver(invoke, visible_id=actor.id.for_object())
        if state is not None and (kind == "error" or (kind == "close" and ws.readyState == CLOSED)):
            state.sockets = [s for s in state.sockets if s is not ws]

    def activation_ended(self, actor: Actor, transition: Transition) -> None:
        """Sockets accepted with ``accept()`` die with their activation; a reset drops every socket."""
        state = actor.sockets
        if state is None:
            return
        standard, state.standard = state.standard, []
        for ws in standard:
            ws._reset_close()
        if transition is Transition.RESET:
            dropped, state.sockets = state.sockets, []
            for ws in dropped:
                ws._reset_close()
