"""The runtime's side of hibernatable websockets: per-object socket sets and event delivery.

Invariants:

* An object's hibernatable sockets live in :class:`ObjectSockets`, owned by
  its :class:`~runtime._actor.Actor` (not by the instance), so they survive
  hibernation and eviction; a reset (crash, abort, failed write) closes them
  with 1011, as a restart of production's host would.
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
    CloseEvent,
    MessageEvent,
    WebSocket,
    WebSocketRequestResponsePair,
)

if TYPE_CHECKING:
    from runtime._actor import Activation, Actor
    from runtime._runtime import Runtime

__all__ = ["ObjectSockets", "SocketManager"]

log = logging.getLogger("shardsim.sockets")


class ObjectSockets:
    """One object's hibernatable sockets and hibernation settings."""

    __slots__ = ("auto_response", "event_timeout_ms", "sockets")

    def __init__(self) -> None:
        self.sockets: list[WebSocket] = []
        self.auto_response: WebSocketRequestResponsePair | None = None
        self.event_timeout_ms: int | None = None


class SocketManager:
    """Implements ctx's hibernation API and delivers socket events to objects."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self.auto_responses = 0

    def _state(self, actor: Actor) -> ObjectSockets:
        state: ObjectSockets | None = actor.sockets
        if state is None:
            state = actor.sockets = ObjectSockets()
        return state

    # -- ctx API ---------------------------------------------------------------

    def accept(self, act: Activation, ws: WebSocket, tags: Any) -> None:
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
        state = self._state(act.actor)
        live = [s for s in state.sockets if s.readyState != CLOSED]
        if len(live) >= MAX_WEBSOCKETS_PER_OBJECT:
            raise ValueError(TOO_MANY_SOCKETS)
        state.sockets = live
        ws._accepted = True
        ws._owner = act.actor
        ws._rt = self._rt
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
        self._state(actor).auto_response = pair

    def set_event_timeout(self, actor: Actor, timeout_ms: int | None) -> None:
        if timeout_ms is not None and (
            not isinstance(timeout_ms, int) or not 0 < timeout_ms <= 7 * 86_400_000
        ):
            raise ValueError(
                "setHibernatableWebSocketEventTimeout() takes milliseconds between 1 and 604800000, or None"
            )
        self._state(actor).event_timeout_ms = timeout_ms

    # -- events ------------------------------------------------------------------

    async def deliver(self, actor: Actor, ws: WebSocket, kind: str, payload: Any) -> None:
        """Deliver one message/close/error that arrived on ``ws`` (owned by ``actor``)."""
        state = actor.sockets
        if kind == "message" and not ws._standard and state is not None:
            auto = state.auto_response
            if auto is not None and payload == auto.request:
                # Answered by the runtime: the object is not woken.
                ws._auto_response_at = _dt.datetime.fromtimestamp(self._rt.clock.now_ms() / 1000, _dt.UTC)
                self.auto_responses += 1
                ws._transmit(("message", auto.response))
                return
        if kind == "close":
            code, reason, _was_clean = payload
            if ws._standard or self._rt.config.web_socket_auto_reply_to_close:
                if not ws._sent_close:
                    ws._sent_close = True
                    ws._transmit(("close", (code, reason)))
                ws.readyState = CLOSED
        timeout_ms = state.event_timeout_ms if state is not None else None

        async def invoke(act: Activation) -> None:
            instance = act.instance
            if ws._standard:
                event: Any
                if kind == "message":
                    event = MessageEvent(payload)
                elif kind == "close":
                    event = CloseEvent(*payload)
                else:
                    event = payload
                for listener in list(ws._listeners.get(kind, ())):
                    result = listener(event)
                    if inspect.isawaitable(result):
                        await result
                return
            name = {"message": "webSocketMessage", "close": "webSocketClose", "error": "webSocketError"}[kind]
            handler = getattr(instance, name, None)
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

    def activation_reset(self, actor: Actor, act: Activation) -> None:
        """A reset drops the object's connections (hibernatable and standard)."""
        for ws in act.standard_socket_list:
            self._drop(ws)
        state = actor.sockets
        if state is not None:
            for ws in state.sockets:
                self._drop(ws)
            state.sockets = []

    def activation_ended_gracefully(self, act: Activation) -> None:
        """Eviction: standard sockets pinned the instance and die with it."""
        for ws in act.standard_socket_list:
            self._drop(ws)

    @staticmethod
    def _drop(ws: WebSocket) -> None:
        if ws.readyState != CLOSED:
            ws._sent_close = True
            ws.readyState = CLOSED
            ws._transmit(("close", (1011, "Durable Object reset")))

    def count(self, actor: Actor) -> int:
        return len(self.get_websockets(actor, None))
