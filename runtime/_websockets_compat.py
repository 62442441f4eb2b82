"""Every reach into websockets' internals, in one place.

Owns the runtime's uses of websockets' trio connection and sans-I/O
protocol beyond their documented API: building a server connection over a
stream we already read from (websockets' ``serve()`` normally does that),
and writing frames into the protocol's outgoing buffer next to websockets'
own writes. Business modules call the small functions here and never touch
those names themselves. Checked against websockets 17.4 (the project pins
``websockets>=17,<18``); ``tests/runtime/test_websockets_compat.py`` pins
each name's shape and fails, naming it, when websockets changes it.

Invariants:

* Each function names the internals it touches and why no public call
  does the job.
* Frames appended here go out in order with websockets' own (pongs, the
  close frame): they enter the same outgoing buffer, which websockets only
  drains under the connection's send lock.
* Bottom of the runtime's layering: imports websockets, trio and the
  standard library only, nothing from ``runtime`` or ``shards``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
from websockets.http11 import Request, Response
from websockets.protocol import Protocol
from websockets.server import ServerProtocol
from websockets.trio.server import Server, ServerConnection

__all__ = [
    "ProcessResponse",
    "append_frame",
    "close_stream",
    "connection_error",
    "handshake",
    "parser_error",
    "send_lock",
    "server_connection",
    "start_keepalive",
    "stream_of",
    "writes_pending",
]

#: A hook that may edit (or replace) the handshake response, as ``serve(process_response=...)`` takes it.
ProcessResponse = Callable[
    [ServerConnection, Request, Response], Awaitable[Response | None] | Response | None
]


async def _no_handler(stream: trio.abc.Stream) -> None:  # pragma: no cover - never called
    """websockets' Server wants a handler; ours has no listeners, so this never runs."""


def server_connection(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    *,
    max_size: int | None,
    ping_interval: float | None,
    ping_timeout: float | None,
    close_timeout: float | None,
    logger: logging.Logger | None = None,
) -> ServerConnection:
    """A server connection over ``stream``, as ``serve()`` makes one for each accepted socket.

    ``stream`` must yield the client's opening handshake first: a caller
    whose HTTP layer already read the upgrade request hands in a stream
    that replays it. No extensions are negotiated (frames are plain).
    The connection's reader task starts in ``nursery``; follow with
    :func:`handshake`.

    Internal: ``ServerConnection(nursery, stream, protocol, server)`` and
    ``Server(listeners, handler)``, which websockets documents as made by
    ``serve()`` only. ``serve()`` wants to own the listening socket; our
    HTTP server owns it, so we make the connection (and a listener-less
    ``Server`` for it to belong to) ourselves.
    """
    protocol = ServerProtocol(extensions=None, max_size=max_size)
    server = Server([], _no_handler, logger=logger)
    return ServerConnection(
        nursery,
        stream,
        protocol,
        server,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
    )


async def handshake(conn: ServerConnection, process_response: ProcessResponse | None = None) -> None:
    """Read the opening handshake from ``conn``'s stream and answer it (101, or an error response).

    Sends no ``Server`` header. Afterwards ``conn.protocol.state`` is
    ``OPEN`` if the handshake succeeded. Internal: ``ServerConnection.handshake``,
    the step ``serve()`` runs for each connection.
    """
    await conn.handshake(None, process_response, server_header=None)


def start_keepalive(conn: ServerConnection) -> None:
    """Start keepalive pings (unless ``ping_interval`` is None), as ``serve()`` does once a connection opened.

    Internal: ``Connection.start_keepalive``.
    """
    conn.start_keepalive()


async def close_stream(conn: ServerConnection) -> None:
    """Close ``conn``'s stream and bring its protocol to CLOSED, without a close handshake.

    What ``serve()`` does after a failed handshake and what ends the
    connection's reader task in any case. Internal: ``Connection.close_stream``.
    """
    await conn.close_stream()


def append_frame(protocol: Protocol, frame: bytes) -> None:
    """Queue already-encoded bytes behind whatever ``protocol`` has queued to write.

    The next ``data_to_send()`` returns them in order with the protocol's
    own output, so a caller may encode a frame once and queue the same bytes
    on many connections. Internal: ``Protocol.writes``, the list
    ``data_to_send()`` drains; the protocol's ``send_*`` methods encode each
    frame anew and append it there.
    """
    protocol.writes.append(frame)


def writes_pending(conn: ServerConnection) -> bool:
    """Whether bytes wait ahead of a new write: queued in the protocol, or being written by websockets.

    When False, bytes written to the socket now cannot overtake any of
    websockets' output. Internal: ``Protocol.writes`` and
    ``Connection.send_lock`` (held around every write websockets makes).
    """
    # Called on every direct send: an if rather than bool(), a call that costs ~140 instructions more.
    if conn.protocol.writes:
        return True
    return conn.send_lock.locked()


def send_lock(conn: ServerConnection) -> trio.Lock:
    """The lock websockets holds around each write to ``conn``'s stream; hold it to write there too.

    Internal: ``Connection.send_lock``.
    """
    return conn.send_lock


def stream_of(conn: ServerConnection) -> trio.abc.Stream:
    """The stream ``conn`` was made over (see :func:`server_connection`).

    Internal: ``Connection.stream``.
    """
    return conn.stream


def connection_error(conn: ServerConnection) -> BaseException | None:
    """What broke ``conn``, if anything did (a ``UnicodeDecodeError`` for a text frame that is not UTF-8).

    Internal: ``Connection.connection_exc``, which websockets chains to the
    ``ConnectionClosed`` it raises; reading it here tells the error apart
    after the fact.
    """
    return conn.connection_exc


def parser_error(protocol: Protocol) -> Exception | None:
    """Why ``protocol`` stopped parsing the client's bytes, if it did (``EOFError`` at the end of the stream).

    Internal: ``Protocol.parser_exc``.
    """
    return protocol.parser_exc
