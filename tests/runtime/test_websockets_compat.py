"""runtime._websockets_compat: each reach into websockets' internals, pinned, and what each function does.

The pins fail first, naming what changed, when a websockets release moves
a name we use (checked against websockets 17.4; the project pins
``websockets>=17,<18``). The behaviour tests drive a connection made by
:func:`server_connection` from a sans-I/O client over an in-memory stream.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
import websockets
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import CLOSED, OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.trio.connection import Connection
from websockets.trio.server import Server, ServerConnection
from websockets.uri import parse_uri

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

WHERE = f"websockets {websockets.version.version}"


def params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# --------------------------------------------------------------------------- pins


def test_websockets_is_the_pinned_major_version() -> None:
    assert websockets.version.version.split(".")[0] == "17", (
        f"{WHERE}: runtime/_websockets_compat.py was checked against 17.x; re-check every pin in this file"
    )


def test_server_connection_and_server_take_what_server_connection_passes() -> None:
    got = params(ServerConnection.__init__)
    assert got[:5] == ["self", "nursery", "stream", "protocol", "server"], (
        f"{WHERE}: ServerConnection{inspect.signature(ServerConnection.__init__)}"
    )
    assert {"ping_interval", "ping_timeout", "close_timeout"} <= set(got), f"{WHERE}: ServerConnection{got}"
    got = params(Server.__init__)
    assert got[:3] == ["self", "listeners", "handler"], f"{WHERE}: Server{got}"
    assert "logger" in got, f"{WHERE}: Server{got}"


def test_the_connection_steps_serve_runs_are_still_there() -> None:
    assert inspect.iscoroutinefunction(ServerConnection.handshake), f"{WHERE}: ServerConnection.handshake"
    assert params(ServerConnection.handshake)[1:] == [
        "process_request",
        "process_response",
        "server_header",
    ], f"{WHERE}: ServerConnection.handshake{inspect.signature(ServerConnection.handshake)}"
    assert callable(getattr(Connection, "start_keepalive", None)), (
        f"{WHERE}: Connection.start_keepalive is gone"
    )
    assert inspect.iscoroutinefunction(getattr(Connection, "close_stream", None)), (
        f"{WHERE}: Connection.close_stream is gone or no longer a coroutine function"
    )


def test_the_protocol_queues_its_output_in_writes_and_records_parser_exc() -> None:
    protocol = ServerProtocol()
    writes = getattr(protocol, "writes", None)
    assert isinstance(writes, list), (
        f"{WHERE}: Protocol.writes is {writes!r}, not the list data_to_send drains"
    )
    assert hasattr(protocol, "parser_exc"), f"{WHERE}: Protocol.parser_exc is gone"
    assert protocol.parser_exc is None


async def test_a_connection_has_the_send_lock_stream_and_connection_exc_we_read() -> None:
    async with served() as (conn, _client, stream):
        lock = getattr(conn, "send_lock", None)
        assert isinstance(lock, trio.Lock), f"{WHERE}: Connection.send_lock is {lock!r}, not a trio.Lock"
        assert getattr(conn, "stream", None) is stream, (
            f"{WHERE}: Connection.stream is not the stream passed in"
        )
        assert hasattr(conn, "connection_exc"), f"{WHERE}: Connection.connection_exc is gone"
        assert conn.connection_exc is None


# --------------------------------------------------------------------------- a connection to drive


class Client:
    """websockets' sans-I/O client on one end of an in-memory stream pair."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.protocol = ClientProtocol(parse_uri("ws://test/"), max_size=None)
        self.events: list[Any] = []

    async def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                await self.stream.send_all(data)

    async def read(self) -> None:
        data = await self.stream.receive_some()
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        self.events.extend(self.protocol.events_received())

    async def opened(self) -> Response:
        while self.protocol.state is not OPEN:
            await self.read()
        response = self.events[0]
        assert isinstance(response, Response)
        return response

    async def frames(self, count: int) -> list[Frame]:
        while len(received := [e for e in self.events if isinstance(e, Frame)]) < count:
            await self.read()
        return received


@asynccontextmanager
async def served(
    *, ping_interval: float | None = None, process_response: Any = None
) -> AsyncIterator[tuple[ServerConnection, Client, trio.abc.Stream]]:
    """A connection made by server_connection over a memory stream, its handshake done."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    client = Client(client_stream)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            conn = server_connection(
                nursery,
                server_stream,
                max_size=None,
                ping_interval=ping_interval,
                ping_timeout=ping_interval,
                close_timeout=1,
            )
            try:
                client.protocol.send_request(client.protocol.connect())
                await client.flush()
                await handshake(conn, process_response)
                assert conn.protocol.state is OPEN
                yield conn, client, server_stream
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await close_stream(conn)


# --------------------------------------------------------------------------- behaviour


async def test_a_connection_made_here_completes_the_handshake_with_our_headers() -> None:
    def add_header(_conn: ServerConnection, _request: Request, response: Response) -> None:
        response.headers["X-Extra"] = "1"

    async with served(process_response=add_header) as (conn, client, _stream):
        response = await client.opened()
        assert response.status_code == 101
        assert response.headers["X-Extra"] == "1"
        assert "Server" not in response.headers  # handshake() sends no Server header
        assert conn.protocol.extensions == []  # frames are plain
        client.protocol.send_text(b"hi")
        await client.flush()
        assert await conn.recv() == "hi"


async def test_a_handshake_that_fails_leaves_the_connection_not_open_and_close_stream_ends_it() -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    answer = b""

    async def client_reads_the_answer_and_hangs_up() -> None:
        nonlocal answer
        while b"\r\n\r\n" not in answer:
            answer += await client_stream.receive_some()
        await client_stream.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            conn = server_connection(
                nursery, server_stream, max_size=None, ping_interval=None, ping_timeout=None, close_timeout=1
            )
            nursery.start_soon(client_reads_the_answer_and_hangs_up)
            await client_stream.send_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")  # no upgrade headers
            await handshake(conn)
            assert conn.protocol.state is not OPEN
            await close_stream(conn)
            assert conn.protocol.state is CLOSED
    assert answer.startswith(b"HTTP/1.1 426 ")


async def test_an_appended_frame_goes_out_in_order_with_websockets_own_writes() -> None:
    async with served() as (conn, client, _stream):
        await client.opened()
        assert not writes_pending(conn)
        append_frame(conn.protocol, Frame(Opcode.TEXT, b"first").serialize(mask=False))
        assert writes_pending(conn)
        await conn.send("second")  # websockets drains its outgoing buffer, ours first
        assert not writes_pending(conn)
        frames = await client.frames(2)
        assert [(f.opcode, f.data) for f in frames] == [(Opcode.TEXT, b"first"), (Opcode.TEXT, b"second")]


async def test_writes_are_pending_while_websockets_holds_its_send_lock() -> None:
    async with served() as (conn, client, stream):
        await client.opened()
        lock = send_lock(conn)
        assert lock is conn.send_lock
        assert stream_of(conn) is stream
        async with lock:
            assert writes_pending(conn)
        assert not writes_pending(conn)


async def test_start_keepalive_sends_pings(autojump_clock: trio.testing.MockClock) -> None:
    async with served(ping_interval=5) as (conn, client, _stream):
        await client.opened()
        start = trio.current_time()
        start_keepalive(conn)
        frames = await client.frames(1)
        assert frames[0].opcode is Opcode.PING
        assert trio.current_time() - start >= 5


async def test_connection_error_is_what_broke_the_connection(autojump_clock: trio.testing.MockClock) -> None:
    async with served() as (conn, client, _stream):
        await client.opened()
        client.protocol.send_text(b"\xff not utf-8")
        await client.flush()
        with pytest.raises(ConnectionClosed):
            await conn.recv()
        assert isinstance(connection_error(conn), UnicodeDecodeError)


def test_parser_error_is_why_the_protocol_stopped_parsing() -> None:
    protocol: Protocol = ServerProtocol(state=OPEN)
    assert parser_error(protocol) is None
    protocol.receive_data(Frame(Opcode.TEXT, b"hi").serialize(mask=False))  # a client must mask
    assert isinstance(parser_error(protocol), ProtocolError)
    ended: Protocol = ServerProtocol(state=OPEN)
    ended.receive_eof()
    assert isinstance(parser_error(ended), EOFError)
