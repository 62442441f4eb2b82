"""The HTTP -> websockets hand-off leans on websockets internals: this fails first if they change.

``ServerConnection(nursery, stream, protocol, server)`` must accept a stream
that replays the upgrade request the HTTP layer already read (DESIGN.md,
"Dev server"; pinned to websockets>=17,<18).
"""

from __future__ import annotations

import inspect
from functools import partial

import trio
import websockets
from websockets.trio.client import connect
from websockets.trio.server import ServerConnection

from runtime.devserver._handoff import WebSocketOptions, run_websocket
from runtime.sockets import WebSocketPair

from .helpers import wait_for


def test_websockets_is_the_pinned_major_version() -> None:
    assert websockets.version.version.split(".")[0] == "17"


def test_server_connection_signature_is_what_the_hand_off_calls() -> None:
    params = list(inspect.signature(ServerConnection.__init__).parameters)
    assert params[:5] == ["self", "nursery", "stream", "protocol", "server"]
    assert {"ping_interval", "ping_timeout", "close_timeout"} <= set(params)


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
    from runtime.devserver._handoff import ConnectionTransport
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
