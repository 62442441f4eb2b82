"""The seam between a WebSocketPair's client end and a real connection.

Worker code returns ``Response(None, status=101, web_socket=client)``; whoever
owns the real connection (the dev server's websockets connection, or a test's
in-memory peer) attaches a :class:`Transport` to that client end with
:func:`attach` and feeds what the remote peer does into the returned
:class:`Peer`.

Invariants:

* The runtime calls ``Transport.send_nowait`` / ``close_nowait``
  synchronously (``ws.send`` is synchronous in production); a transport
  buffers and never blocks. What it does when its buffer overflows is its
  own documented policy (the dev server closes the connection with 1009/1011).
* ``Peer.message`` returns once the message is queued for the object (it
  may wait: that is backpressure toward the remote peer).
* After ``Peer.closed`` or ``Peer.error`` the peer accepts nothing more.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Transport"]


class Transport(Protocol):
    """What the runtime needs from the real connection behind a client end.

    A transport may also have an optional method, left out of the Protocol so
    that transports without it still type-check:

    ``buffered_amount() -> int``
        Bytes (characters for text) queued for the remote peer that the
        connection has not written yet, like a browser's
        ``WebSocket.bufferedAmount``. A shard's slow-subscriber policy
        (:mod:`runtime.shard_objects._backpressure`) reads it before each
        frame; a transport without it is never considered slow. The dev
        server's transport has it.
    """

    def send_nowait(self, message: str | bytes) -> None:
        """Queue a frame for the remote peer (text for str, binary for bytes)."""

    def close_nowait(self, code: int, reason: str) -> None:
        """Start a close handshake with the remote peer."""
