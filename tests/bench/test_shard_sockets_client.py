"""The fan-out bench's own websocket client: handshake and frame parsing, against websockets' server side.

The client (bench/shard_sockets.py, ``_FanOutClient``) parses frames by hand
for speed; these tests hold it to what websockets' sans-I/O server sends and
expects. Synchronous: the client is one thread on a selector.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterator

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from bench.shard_sockets import _OPEN, _FanOutClient, _Subscriber


def server_frame(opcode: Opcode, payload: bytes) -> bytes:
    return Frame(opcode, payload).serialize(mask=False)


def binary(tick: int, size: int) -> bytes:
    return server_frame(Opcode.BINARY, tick.to_bytes(8, "big") + b"x" * (size - 8))


def client_frames(data: bytes) -> list[Frame]:
    """Parse what the client sent (masked frames) as a server would."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


@pytest.fixture
def opened() -> Iterator[tuple[_FanOutClient, socket.socket]]:
    """A client with one open subscriber; the other end of its socketpair plays the server."""
    client = _FanOutClient(port=0, shard="s", token="t", subscribers=1)
    ours, server = socket.socketpair()
    ours.setblocking(False)
    sub = _Subscriber(ours, b"")
    sub.state = _OPEN
    client.selector.register(ours, selectors.EVENT_READ, sub)
    client.live = 1
    yield client, server
    server.close()
    if client.live:
        ours.close()


def drain(client: _FanOutClient) -> None:
    client.poll(0.0)


def poll_forever(client: _FanOutClient) -> None:
    while True:
        client.poll(1.0)


def test_binary_frames_of_every_length_form_are_recorded_across_reads(opened) -> None:
    client, server = opened
    stream = binary(1, 100) + binary(2, 300) + binary(3, 70_000)  # 7-, 16- and 64-bit lengths
    stream += server_frame(Opcode.TEXT, b"no tick here") + binary(4, 8)
    for cut in range(0, len(stream), 997):  # frames split at arbitrary places
        server.sendall(stream[cut : cut + 997])
        drain(client)
    assert list(client.ticks) == [1, 2, 3, 4]
    assert len(client.times) == 4
    assert client.closes == []


def test_a_ping_is_answered_with_a_masked_pong(opened) -> None:
    client, server = opened
    server.sendall(server_frame(Opcode.PING, b"abc") + binary(7, 20))
    drain(client)
    [pong] = client_frames(server.recv(1024))
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"abc")
    assert list(client.ticks) == [7]


def test_a_close_from_the_server_is_recorded_and_answered(opened) -> None:
    client, server = opened
    server.sendall(server_frame(Opcode.CLOSE, Close(1011, "too slow").serialize()))
    drain(client)
    [answer] = client_frames(server.recv(1024))
    assert answer.opcode is Opcode.CLOSE
    assert Close.parse(answer.data).code == 1011
    assert client.closes == [1011]
    server.shutdown(socket.SHUT_WR)  # the server ends the TCP connection
    drain(client)
    assert client.live == 0


def test_close_all_starts_the_close_handshake_and_a_late_close_is_not_an_early_one(opened) -> None:
    client, server = opened
    client.close_all()
    [close] = client_frames(server.recv(1024))
    assert Close.parse(close.data).code == 1000
    server.sendall(server_frame(Opcode.CLOSE, Close(1000, "").serialize()))
    server.shutdown(socket.SHUT_WR)
    drain(client)
    drain(client)
    assert client.closes == []
    assert client.live == 0


def test_the_opening_handshake_satisfies_websockets_server() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = _FanOutClient(port=port, shard="arena", token="tok", subscribers=1)
        client.start(0)
        conn, _ = listener.accept()
        with conn:
            drain(client)  # connected: the request goes out
            protocol = ServerProtocol()
            while not (events := protocol.events_received()):
                protocol.receive_data(conn.recv(4096))
            [request] = events
            assert isinstance(request, Request)
            assert request.path == "/?shard=arena&sid=s0"
            assert request.headers["Authorization"] == "Bearer tok"
            response = protocol.accept(request)
            protocol.send_response(response)
            assert protocol.handshake_exc is None
            conn.sendall(b"".join(protocol.data_to_send()) + binary(5, 40))
            while client.opened == 0 or not client.ticks:
                client.poll(1.0)
            assert list(client.ticks) == [5]
            client.close_all()
            drain(client)
        client.poll(1.0)  # our end closed: the client sees the connection end
        assert client.live == 0


def test_a_wrong_accept_key_fails_the_handshake() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = _FanOutClient(port=listener.getsockname()[1], shard="a", token="t", subscribers=1)
        client.start(0)
        conn, _ = listener.accept()
        with conn:
            drain(client)
            conn.recv(4096)
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: bm9wZQ==\r\n\r\n"
            )
            with pytest.raises(RuntimeError, match="Sec-WebSocket-Accept"):
                poll_forever(client)
        for key in list(client.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
