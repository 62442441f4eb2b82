"""The HTTP -> websockets hand-off: a replayed upgrade request, the direct path, the overflow rule.

The websockets and trio internals the hand-off leans on are pinned in
tests/runtime/test_websockets_compat.py and tests/runtime/test_trio_compat.py;
these tests check what the dev server builds on them.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import OPEN
from websockets.trio.client import connect
from websockets.trio.server import ServerConnection
from websockets.uri import parse_uri

from runtime._trio_compat import raw_socket
from runtime._websockets_compat import close_stream, handshake, send_lock, server_connection
from runtime.devserver._handoff import (
    ConnectionTransport,
    ReplayStream,
    WebSocketOptions,
    run_websocket,
)
from runtime.sockets import WebSocketPair

from .helpers import wait_for


async def test_a_replayed_upgrade_request_completes_the_handshake() -> None:
    """Read the request ourselves (as h11 does), then let websockets finish on the same socket."""
    results: list[bool] = []
    received: list[object] = []

    class Recorder:
        def send_nowait(self, message: str | bytes) -> None:
            received.append(message)

        def close_nowait(self, code: int, reason: str) -> None:
            received.append(("close", code))

    async def handler(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(1)  # one byte at a time: nothing read past the head
        pair = WebSocketPair()
        pair.server.accept()
        pair.server.addEventListener("message", lambda event: pair.server.send(f"echo {event.data}"))
        results.append(await run_websocket(stream, head, pair.client, [("X-Extra", "1")], WebSocketOptions()))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                assert ws.response is not None
                assert ws.response.status_code == 101
                assert ws.response.headers["X-Extra"] == "1"
                await ws.send("hi")
                assert await ws.recv() == "echo hi"
            await wait_for(lambda: results)
            nursery.cancel_scope.cancel()
    assert results == [True]


def test_connection_transport_is_a_transport() -> None:
    """Typed check (mypy) that the dev server's transport satisfies runtime.sockets.Transport."""
    from runtime.sockets import Transport

    def as_transport(t: ConnectionTransport) -> Transport:
        return t

    assert callable(as_transport)


def test_a_broadcast_frame_is_encoded_once_and_matches_websockets() -> None:
    from websockets.frames import Frame, Opcode

    from runtime.devserver._handoff import FrameCache

    cache = FrameCache()
    text = "x" * 300  # a 2-byte extended length
    first = cache.encode(text)
    assert cache.encode(text) is first
    assert first == Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    assert cache.encode(b"\x00" * 70000) == Frame(Opcode.BINARY, b"\x00" * 70000).serialize(mask=False)


# --------------------------------------------------------------------------- the direct path
#
# ConnectionTransport writes a frame straight to the socket when nothing waits
# ahead of it, and queues only what the socket did not take. These tests use a
# socketpair: with a small send buffer and a client that does not read, a
# large frame is taken only in part, deterministically.

BIG = 200_000  # far more than a 4 KiB send buffer takes at once


class RawClient:
    """The client end of a socketpair, parsing what arrives with websockets' own client protocol."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.protocol = ClientProtocol(parse_uri("ws://test/"), max_size=None)
        self.events: list[Any] = []

    def request(self) -> bytes:
        self.protocol.send_request(self.protocol.connect())
        return b"".join(self.protocol.data_to_send())

    def read_available(self) -> int:
        """Feed everything the socket holds now to the protocol; the number of bytes read."""
        total = 0
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return total
            if not data:
                self.protocol.receive_eof()
                return total
            total += len(data)
            self.protocol.receive_data(data)
            self.events.extend(self.protocol.events_received())

    async def frames(self, count: int) -> list[Frame]:
        """Read until ``count`` frames arrived (the handshake response is not one); return them all."""
        while len(received := [e for e in self.events if isinstance(e, Frame)]) < count:
            if not self.read_available():
                await trio.lowlevel.wait_readable(self.sock)
        return received

    async def opened(self) -> None:
        """Read the handshake response."""
        while self.protocol.state is not OPEN:
            if not self.read_available():
                await trio.lowlevel.wait_readable(self.sock)

    def send(self, data: bytes) -> None:
        self.sock.send(data)


@asynccontextmanager
async def open_connection(
    *, sndbuf: int | None = None, max_buffer: int = 16 * 1024 * 1024, writer: bool = True
) -> AsyncIterator[tuple[trio.Nursery, ConnectionTransport, ServerConnection, RawClient]]:
    """A websocket connection over a socketpair, set up as run_websocket sets it up.

    Yields the nursery its tasks run in (cancelled on the way out).
    """
    server_sock, client_sock = socket.socketpair()
    if sndbuf is not None:
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    client = RawClient(client_sock)
    replay = ReplayStream(trio.SocketStream(trio.socket.from_stdlib_socket(server_sock)), client.request())
    with client_sock, trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            conn = server_connection(
                nursery, replay, max_size=None, ping_interval=None, ping_timeout=None, close_timeout=1
            )
            try:
                await handshake(conn)
                transport = ConnectionTransport(conn, max_buffer)
                replay.on_receive_end = transport.receive_ended
                if writer:
                    nursery.start_soon(transport.run_writer)
                await client.opened()
                yield nursery, transport, conn, client
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await close_stream(conn)


def test_the_direct_path_finds_the_socket_under_a_replay_stream() -> None:
    """A ReplayStream exposes its socket as a SocketStream does (raw_socket itself: test_trio_compat.py)."""
    a, b = socket.socketpair()
    with a, b:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(a))
        assert raw_socket(ReplayStream(stream, b"")) is a
    send, _receive = trio.testing.memory_stream_pair()
    assert raw_socket(ReplayStream(send, b"")) is None  # in-memory streams take the queued path


async def test_a_frame_goes_straight_to_the_socket_without_the_writer_task() -> None:
    async with open_connection(writer=False) as (_nursery, transport, _conn, client):
        transport.send_nowait(b"one")
        transport.send_nowait("two")
        assert transport.buffered_amount() == 0
        frames = await client.frames(2)
        assert [(f.opcode, f.data) for f in frames] == [(Opcode.BINARY, b"one"), (Opcode.TEXT, b"two")]


async def test_the_rest_of_a_partial_send_goes_out_before_later_frames() -> None:
    async with open_connection(sndbuf=4096, writer=False) as (nursery, transport, _conn, client):
        big = b"\x01" * BIG
        transport.send_nowait(big)
        # The socket took part of the frame; the whole message counts until it is written.
        assert client.read_available() > 0
        assert not [e for e in client.events if isinstance(e, Frame)]
        assert transport.buffered_amount() == BIG
        transport.send_nowait(b"two")  # queued behind the rest, not sent directly
        transport.send_nowait("three")
        assert transport.buffered_amount() == BIG + 3 + 5
        nursery.start_soon(transport.run_writer)
        frames = await client.frames(3)
        assert [f.data for f in frames] == [big, b"two", b"three"]
        await trio.testing.wait_all_tasks_blocked()
        assert transport.buffered_amount() == 0
        # Everything is written: the direct path again.
        transport.send_nowait(b"four")
        assert transport.buffered_amount() == 0
        assert (await client.frames(4))[-1].data == b"four"


async def test_frames_wait_while_websockets_holds_the_send_lock() -> None:
    """A write of websockets' own in progress (the send lock held): a frame queues behind it."""
    async with open_connection() as (nursery, transport, conn, client):
        release = trio.Event()

        async def websockets_writing() -> None:
            async with send_lock(conn):
                await release.wait()

        nursery.start_soon(websockets_writing)
        await trio.testing.wait_all_tasks_blocked()
        transport.send_nowait(b"queued")
        await trio.testing.wait_all_tasks_blocked()
        assert client.read_available() == 0
        assert transport.buffered_amount() == len(b"queued")
        release.set()
        assert [f.data for f in await client.frames(1)] == [b"queued"]


async def test_a_pong_goes_out_between_the_frames_sent_before_and_after_the_ping() -> None:
    async with open_connection(sndbuf=4096, writer=False) as (nursery, transport, _conn, client):
        big = b"\x02" * BIG
        transport.send_nowait(big)  # taken in part; the rest is queued
        client.protocol.send_ping(b"p")
        client.send(b"".join(client.protocol.data_to_send()))
        # websockets' reader queues the pong and flushes, stuck on the full socket.
        await trio.testing.wait_all_tasks_blocked()
        transport.send_nowait(b"after")
        nursery.start_soon(transport.run_writer)
        frames = await client.frames(3)
        assert [(f.opcode, f.data) for f in frames] == [
            (Opcode.BINARY, big),
            (Opcode.PONG, b"p"),
            (Opcode.BINARY, b"after"),
        ]


async def test_an_overflow_keeps_the_rest_of_a_partly_sent_frame_before_the_close() -> None:
    async with open_connection(sndbuf=4096, max_buffer=BIG + 1000, writer=False) as (
        nursery,
        transport,
        _conn,
        client,
    ):
        big = b"\x03" * BIG
        transport.send_nowait(big)  # taken in part
        transport.send_nowait(b"\x04" * 2000)  # over the limit: dropped, close with 1011
        assert transport.closed_by_overflow
        nursery.start_soon(transport.run_writer)
        frames = await client.frames(2)
        assert frames[0].data == big
        assert frames[1].opcode is Opcode.CLOSE
        assert Close.parse(frames[1].data).code == 1011


async def test_a_direct_send_to_a_dead_socket_does_not_raise() -> None:
    async with open_connection() as (_nursery, transport, conn, client):
        client.sock.close()
        for _ in range(3):
            transport.send_nowait(b"into the void")  # a broken pipe, not an exception
        await conn.wait_closed()  # the reader saw the connection end
        transport.send_nowait(b"after the end")
        assert transport.buffered_amount() == 0


async def test_a_queued_remainder_to_a_dead_socket_does_not_raise() -> None:
    async with open_connection(sndbuf=4096) as (_nursery, transport, conn, client):
        transport.send_nowait(b"\x05" * BIG)  # the writer task is stuck with the rest
        await trio.testing.wait_all_tasks_blocked()
        client.sock.close()
        transport.send_nowait(b"more")
        await conn.wait_closed()


async def test_a_client_that_drops_with_frames_queued_logs_no_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """websockets' reader would flush our queued frames into the dead socket and log an error."""
    server_sock, client_sock = socket.socketpair()
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client = RawClient(client_sock)
    pair = WebSocketPair()
    pair.server.accept()
    opened = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(
                    run_websocket,
                    trio.SocketStream(trio.socket.from_stdlib_socket(server_sock)),
                    client.request(),
                    pair.client,
                    [],
                    WebSocketOptions(ping_interval=None, close_timeout=1),
                    on_open=lambda conn: opened.set(),
                )
            )
            await opened.wait()
            await client.opened()
            for _ in range(20):
                pair.server.send(b"\x06" * 10_000)  # far more than the socket takes
            await trio.testing.wait_all_tasks_blocked()  # the writer task is stuck on the full socket
            for _ in range(5):
                pair.server.send(b"\x07" * 10_000)  # queued in websockets' protocol behind it
            client.sock.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
