"""Hand an upgraded HTTP connection to websockets, and join it to a WebSocketPair's client end.

The HTTP layer (h11) has already read the upgrade request when the Worker
decides to accept it, and websockets' server reads the handshake from its
stream. So we give websockets' trio ``ServerConnection`` a stream that first
replays the request bytes and then reads the socket: websockets parses the
handshake, validates it, writes the 101 and owns every frame after that.
Making that connection, and writing frames next to websockets' own, needs
websockets' internals; the direct path needs trio's. Those reaches live in
:mod:`runtime._websockets_compat` and :mod:`runtime._trio_compat`, whose
tests pin them; this module calls their functions and touches no foreign
private name itself.

Invariants:

* One task per connection reads frames and feeds them to the :class:`Peer`
  (``await peer.message``: the object's inbox pushes back on the socket).
* The runtime writes through :class:`ConnectionTransport`, which never
  blocks. A message sent to many sockets is encoded once (:class:`FrameCache`).
  Direct path: when nothing waits to be written on that connection (websockets'
  protocol queue is empty, no write is in progress and its send lock is free),
  the frame is written straight to the socket with one non-blocking ``send``;
  only what the kernel did not take (a partial send, or none) is queued.
  Queued path: otherwise frames go into websockets' sans-I/O protocol's
  queue, behind whatever is already there, and a writer task flushes
  everything queued with one ``send_all``. Either way the bytes leave in the
  order they were sent, interleaved correctly with websockets' own writes
  (pongs, the close frame), which always go through that queue under the
  send lock. A failed direct send (reset, broken pipe) drops the frame and
  never raises into the sender: the reader task sees the connection end.
  The direct path needs the stdlib socket under the stream (a trio
  ``SocketStream``, possibly inside :class:`ReplayStream`); other streams
  (in-memory ones in tests) always take the queued path.
  Overflow rule: when more than ``max_buffer`` bytes wait to be written, the
  client is too slow; the connection is closed with 1011 and the queued
  frames are dropped (production closes such sockets too; it never blocks ``send``),
  except the rest of a frame the socket already took in part, which goes
  out before the close frame so the stream stays well-formed.
  ``buffered_amount()`` tells senders (a shard's slow-subscriber policy)
  how much is waiting, so they can skip frames long before that.
* When the client's side of the connection ends (EOF or a receive error),
  whatever still waits to be written is dropped before websockets' reader
  writes its last bytes: it would write them into a dead socket (and log an
  "unexpected internal error" when that fails). A client that half-closes
  without a close frame is a lost connection (1006) either way.
* The Peer hears exactly one ending: ``closed`` (a close handshake or a lost
  connection, 1006) or ``error`` (the client broke the protocol: bad UTF-8,
  an oversized message, a malformed frame).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

import trio
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request as WsRequest, Response as WsResponse
from websockets.protocol import CLOSED, OPEN
from websockets.trio.server import ServerConnection

from runtime._trio_compat import raw_socket
from runtime._websockets_compat import (
    append_frame,
    close_stream,
    connection_error,
    handshake,
    parser_error,
    send_lock,
    server_connection,
    start_keepalive,
    stream_of,
    writes_pending,
)
from runtime.sockets import Peer, WebSocket, attach

__all__ = [
    "ConnectionTransport",
    "FrameCache",
    "ReplayStream",
    "WebSocketOptions",
    "run_websocket",
]

log = logging.getLogger("shardsim.devserver")

# Handshake headers websockets computes itself; a Worker's copies are ignored.
_HANDSHAKE_HEADERS = frozenset(
    {"upgrade", "connection", "sec-websocket-accept", "sec-websocket-extensions", "content-length"}
)
# Close codes RFC 6455 reserves for reporting, never sent in a close frame.
_UNSENDABLE_CODES = frozenset({1004, 1005, 1006, 1015})
# A direct send to a reset socket must not raise SIGPIPE (Python ignores it,
# but an embedding program may not).
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)


class ReplayStream(trio.abc.HalfCloseableStream):
    """A stream that returns ``replay`` first, then whatever ``inner`` receives.

    Sends, EOF and close go straight to ``inner``. When ``inner`` reports
    the end of what it receives (EOF or an error), ``on_receive_end`` is
    called first, synchronously, before the caller (websockets' reader) sees it.
    """

    def __init__(self, inner: trio.abc.HalfCloseableStream, replay: bytes) -> None:
        self._inner = inner
        self._replay = replay
        # The inner stream's trio socket, exposed as a trio SocketStream exposes it:
        # the direct path finds the stdlib socket under it (see ConnectionTransport).
        self.socket: Any = getattr(inner, "socket", None)
        self.on_receive_end: Callable[[], None] | None = None

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._replay:
            await trio.lowlevel.checkpoint()
            n = len(self._replay) if max_bytes is None else max_bytes
            data, self._replay = self._replay[:n], self._replay[n:]
            return data
        try:
            data = bytes(await self._inner.receive_some(max_bytes))
        except Exception:
            self._receive_ended()
            raise
        if not data:
            self._receive_ended()
        return data

    def _receive_ended(self) -> None:
        if self.on_receive_end is not None:
            self.on_receive_end()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


class WebSocketOptions:
    """Limits and timeouts of the dev server's websocket connections."""

    __slots__ = ("close_timeout", "handshake_timeout", "max_buffer", "max_message_size", "ping_interval")

    def __init__(
        self,
        *,
        max_message_size: int = 32 * 1024 * 1024,
        max_buffer: int = 16 * 1024 * 1024,
        handshake_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        close_timeout: float = 10.0,
    ) -> None:
        #: Largest message accepted from a client (production: 32 MiB).
        self.max_message_size = max_message_size
        #: Bytes (characters for text) waiting to be written before a slow client is cut (1011).
        self.max_buffer = max_buffer
        #: Seconds a client has to complete the opening handshake.
        self.handshake_timeout = handshake_timeout
        #: Keepalive pings (None: off); they find clients that vanished without a FIN.
        self.ping_interval = ping_interval
        #: Seconds to wait for the client's close frame before dropping the TCP connection.
        self.close_timeout = close_timeout


class ConnectionTransport:
    """:class:`runtime.sockets.Transport` over a websockets ``ServerConnection``."""

    __slots__ = (
        "_buffered",
        "_close",
        "_conn",
        "_direct",
        "_frames",
        "_lot",
        "_max",
        "_partial",
        "_sending",
        "_writing",
        "closed_by_overflow",
    )

    def __init__(self, conn: ServerConnection, max_buffer: int, frames: FrameCache | None = None) -> None:
        self._conn = conn
        self._frames = frames or FrameCache()
        self._max = max_buffer
        self._buffered = 0  # queued, not yet handed to the writer
        self._writing = 0  # handed to the send_all in progress
        self._close: tuple[int, str] | None = None
        self._lot = trio.lowlevel.ParkingLot()
        self._sending = False
        # The rest of a frame the socket took in part (and its message's size),
        # while it may still be queued: an overflow must not cut it.
        self._partial: tuple[bytes, int] | None = None
        # The socket for direct sends (None: every frame takes the queued path).
        self._direct = raw_socket(stream_of(conn))
        self.closed_by_overflow = False

    def send_nowait(self, message: str | bytes) -> None:
        """Send one frame now if the socket takes it, else queue it; never blocks or raises.

        See the module's direct path and overflow rule.
        """
        conn = self._conn
        protocol = conn.protocol
        if self._close is not None or protocol.state is not OPEN:
            return  # the connection is closing: frames after the close are dropped
        size = len(message)
        if self._buffered + size > self._max:
            self.closed_by_overflow = True
            log.warning("websocket client too slow: %d bytes queued; closing with 1011", self._buffered)
            # Drop what is queued: the socket is going away anyway. The rest of
            # a frame the socket took in part stays (the close frame follows it).
            dropped = protocol.data_to_send()
            self._buffered = 0
            partial = self._partial
            if partial is not None and dropped and dropped[0] is partial[0]:
                append_frame(protocol, partial[0])
                self._buffered = partial[1]
            self.close_nowait(CloseCode.INTERNAL_ERROR, "outgoing buffer full (client too slow)")
            return
        # Queueing into the sans-I/O protocol now keeps frame order exact;
        # the writer task only flushes bytes.
        if protocol.extensions:
            if isinstance(message, str):
                protocol.send_text(message.encode())
            else:
                protocol.send_binary(message)
        else:
            # Without extensions a server frame depends only on the message:
            # a broadcast encodes it once and sends the same bytes everywhere.
            frame = self._frames.encode(message)
            sock = self._direct
            if sock is not None and not self._sending and not writes_pending(conn):
                # Nothing waits ahead of this frame: the direct path.
                try:
                    sent = sock.send(frame, _SEND_FLAGS)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    # Reset or broken pipe: the frame is lost with the connection,
                    # which the reader task is about to see end.
                    return
                if sent == len(frame):
                    return
                if sent:
                    frame = frame[sent:]  # the writer task sends the rest
                    self._partial = (frame, size)
            append_frame(protocol, frame)
        # A frame counts in full until the socket has taken all of it.
        self._buffered += size
        if not self._sending:
            self._lot.unpark()

    def receive_ended(self) -> None:
        """The client's side ended (EOF or error): drop every byte still waiting to be written.

        websockets' reader is about to flush the protocol's queue into a
        socket that is closing or dead; only its end of stream (written
        after this) still matters.
        """
        self._conn.protocol.data_to_send()
        self._buffered = 0

    def buffered_amount(self) -> int:
        """Bytes (characters for text) queued for the client that the socket has not taken yet.

        What was queued since the last write, plus the write in progress,
        counted in full until the socket has taken all of it (a frame the
        direct path sent in part counts in full too). Bytes already in the
        kernel's socket buffer are not counted, so a frame the socket took
        whole adds nothing.
        """
        return self._buffered + self._writing

    async def _flush(self) -> None:
        """Write every queued frame with one ``send_all`` (websockets' ``send_data`` writes one per frame).

        Holds websockets' send lock, as ``send_data`` does, so pongs and the
        close frame interleave correctly. An empty chunk is websockets asking
        for EOF (after a close): half-close, as ``send_data`` would.
        """
        conn = self._conn
        stream = stream_of(conn)
        async with send_lock(conn):
            pending: list[bytes] = []
            self._partial = None  # taken below, if it was queued
            for chunk in conn.protocol.data_to_send():
                if chunk:
                    pending.append(chunk)
                    continue
                if pending:
                    await stream.send_all(b"".join(pending))
                    pending = []
                with contextlib.suppress(Exception):
                    await stream.send_eof()  # type: ignore[attr-defined]
            if pending:
                await stream.send_all(pending[0] if len(pending) == 1 else b"".join(pending))

    def close_nowait(self, code: int, reason: str) -> None:
        """Start the close handshake once the queued frames are written."""
        if self._close is None:
            self._close = (code, reason)
            self._lot.unpark()

    async def run_writer(self) -> None:
        """Flush queued frames until the connection closes; then send the close if asked."""
        conn = self._conn
        while True:
            if conn.protocol.state is CLOSED:
                return
            if self._buffered == 0 and self._close is None:
                await self._lot.park()
                continue
            if self._buffered:
                self._sending = True
                self._writing, self._buffered = self._buffered, 0
                try:
                    await self._flush()
                except Exception:  # the socket broke; the reader sees it and ends the connection
                    return
                finally:
                    self._sending = False
                    self._writing = 0
                continue
            if self._close is not None:
                code, reason = self._close
                if code in _UNSENDABLE_CODES:
                    # Reserved codes never go on the wire: send a close frame without a code.
                    code, reason = CloseCode.NO_STATUS_RCVD, ""
                try:
                    await conn.aclose(code, reason)
                except Exception:  # pragma: no cover - aclose swallows ConnectionClosed itself
                    log.debug("close failed", exc_info=True)
                return


class FrameCache:
    """Encodes server frames, reusing the last one when the same message object comes again.

    Without extensions a server frame depends only on the message, so a
    broadcast (one ``str`` sent to every socket) is encoded once. One cache
    serves every connection of a dev server.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[str | bytes, bytes] | None = None

    def encode(self, message: str | bytes) -> bytes:
        """The unmasked frame for ``message`` (text for ``str``, binary for ``bytes``)."""
        last = self._last
        if last is not None and last[0] is message:
            return last[1]
        if isinstance(message, str):
            frame = Frame(Opcode.TEXT, message.encode()).serialize(mask=False)
        else:
            frame = Frame(Opcode.BINARY, message).serialize(mask=False)
        self._last = (message, frame)
        return frame


def _ending(conn: ServerConnection) -> tuple[str, tuple[Any, ...]]:
    """How the connection ended, as the Peer hears it: ("error", (exc,)) or ("closed", (code, reason, clean))."""
    protocol = conn.protocol
    broken = connection_error(conn)
    if isinstance(broken, UnicodeDecodeError):  # websockets decodes text in recv()
        return "error", (broken,)
    # The parser also records an EOF; that is a lost connection (1006), not an error.
    failed = parser_error(protocol)
    if failed is not None and not isinstance(failed, EOFError):
        return "error", (failed,)
    rcvd, sent = protocol.close_rcvd, protocol.close_sent
    if rcvd is None:
        return "closed", (int(CloseCode.ABNORMAL_CLOSURE), "", False)
    return "closed", (int(rcvd.code), rcvd.reason, sent is not None)


async def run_websocket(
    stream: trio.abc.HalfCloseableStream,
    request_bytes: bytes,
    client: WebSocket,
    extra_headers: Sequence[tuple[str, str]],
    options: WebSocketOptions,
    *,
    on_open: Callable[[ServerConnection], None] = lambda conn: None,
    on_close: Callable[[ServerConnection], None] = lambda conn: None,
    frames: FrameCache | None = None,
) -> bool:
    """Complete the opening handshake on ``stream`` and serve the connection until it ends.

    Args:
        stream: The client's TCP stream, positioned after the upgrade request.
        request_bytes: The upgrade request as received (replayed to websockets),
            plus any bytes that followed it.
        client: The client end of the Worker's WebSocketPair.
        extra_headers: Headers of the Worker's 101 response to pass on
            (for example ``Sec-WebSocket-Protocol``).
        options: Limits and timeouts.
        on_open: Called once the handshake succeeded.
        on_close: Called when the connection is over.
        frames: The frame cache shared by the server's connections.

    Returns:
        Whether the handshake succeeded.
    """

    def add_headers(_conn: ServerConnection, _req: WsRequest, response: WsResponse) -> None:
        if response.status_code == 101:
            for name, value in extra_headers:
                if name.lower() not in _HANDSHAKE_HEADERS:
                    response.headers[name] = value

    opened = False
    async with trio.open_nursery() as nursery:
        replay = ReplayStream(stream, request_bytes)
        conn = server_connection(
            nursery,
            replay,
            max_size=options.max_message_size,
            ping_interval=options.ping_interval,
            ping_timeout=options.ping_interval,
            close_timeout=options.close_timeout,
            logger=log,
        )
        try:
            with trio.move_on_after(options.handshake_timeout):
                await handshake(conn, add_headers)
            opened = conn.protocol.state is OPEN
            transport = ConnectionTransport(conn, options.max_buffer, frames)
            replay.on_receive_end = transport.receive_ended
            peer = attach(client, transport)
            if not opened:
                # The client vanished, timed out or sent a bad handshake; the
                # object already accepted its end, so tell it the socket is gone.
                await close_stream(conn)
                await peer.closed(int(CloseCode.ABNORMAL_CLOSURE), "", False)
                return False
            on_open(conn)
            if options.ping_interval is not None:
                start_keepalive(conn)
            nursery.start_soon(transport.run_writer)
            await _pump(conn, peer)
        finally:
            on_close(conn)
            with trio.CancelScope(shield=True):
                await close_stream(conn)
            nursery.cancel_scope.cancel()
    return opened


async def _pump(conn: ServerConnection, peer: Peer) -> None:
    """Feed every received message to ``peer``, then how the connection ended."""
    try:
        while True:
            message = await conn.recv()
            await peer.message(message)
    except ConnectionClosed:
        pass
    # recv() raises as soon as the close frame arrives; wait for the TCP
    # close so close_sent and was_clean are final.
    with trio.move_on_after(conn.close_timeout or 10.0):
        await conn.wait_closed()
    kind, args = _ending(conn)
    if kind == "error":
        await peer.error(args[0])
    else:
        await peer.closed(*args)
