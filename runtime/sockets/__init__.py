"""WebSockets: WebSocketPair, the hibernation API's bookkeeping, and the transport seam.

Not named ``websockets``: that is the library the dev server uses.
"""

from __future__ import annotations

from ._transport import Transport as Transport
from ._websocket import (
    CLOSED as CLOSED,
    CLOSING as CLOSING,
    CONNECTING as CONNECTING,
    MAX_ATTACHMENT_BYTES as MAX_ATTACHMENT_BYTES,
    MAX_TAG_LENGTH as MAX_TAG_LENGTH,
    MAX_TAGS as MAX_TAGS,
    MAX_WEBSOCKETS_PER_OBJECT as MAX_WEBSOCKETS_PER_OBJECT,
    OPEN as OPEN,
    CloseEvent as CloseEvent,
    MessageEvent as MessageEvent,
    Peer as Peer,
    WebSocket as WebSocket,
    WebSocketPair as WebSocketPair,
    WebSocketRequestResponsePair as WebSocketRequestResponsePair,
    attach as attach,
)

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "MAX_ATTACHMENT_BYTES",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_WEBSOCKETS_PER_OBJECT",
    "OPEN",
    "CloseEvent",
    "MessageEvent",
    "Peer",
    "Transport",
    "WebSocket",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "attach",
]
