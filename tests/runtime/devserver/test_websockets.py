"""Websockets through the dev server: the hand-off, close codes, and bad input on real sockets."""

from __future__ import annotations

import pytest
import trio
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.trio.client import connect
from websockets.typing import Subprotocol

from runtime.devserver import WebSocketOptions
from tests.wsclient import SAMPLE_KEY, handshake_request, read_response_head

from .helpers import get, make_project, raw_exchange, running, wait_for

HANDSHAKE = handshake_request("/ws", host="x")


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def storage(server):
    return server.runtime.dump_storage(server.runtime.env.ECHO.getByName("e"))["kv"]


async def test_echo_text_and_binary_and_worker_headers(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                assert ws.response is not None
                assert ws.response.headers["x-room"] == "e"
                await ws.send("text")
                assert await ws.recv() == "text"
                await ws.send(b"\x00\xffbinary")
                assert await ws.recv() == b"\x00\xffbinary"
                assert server.statistics().websockets == 1
            await wait_for(lambda: "closed" in storage(server))
            assert storage(server)["closed"] == [1000, "", True]
            await wait_for(lambda: server.statistics().websockets == 0)


async def test_upgrade_nobody_accepts_gets_the_worker_response(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"ws://127.0.0.1:{server.port}/nobody"):
                    pass
            assert info.value.response.status_code == 404
            assert info.value.response.body == b"not found"
            await wait_for(lambda: server.statistics().http_connections == 0)


async def test_invalid_utf8_in_a_text_frame_closes_1007(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.send(b"\xff\xfe not utf-8", text=True)
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 1007
            await wait_for(lambda: "error" in storage(server))
            assert (await get(server, "/echo", "POST", b"ok")).body == b"ok"
            await wait_for(lambda: server.statistics().websockets == 0)


async def test_oversized_message_closes_1009(project) -> None:
    options = WebSocketOptions(max_message_size=1000)
    with trio.fail_after(10):
        async with running(project, websocket=options) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.send("x" * 1000)
                assert await ws.recv() == "x" * 1000
                await ws.send("x" * 1001)
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 1009
            await wait_for(lambda: "error" in storage(server))
            assert storage(server)["error"] == [
                "JsException",
                "Error",
            ]  # a JavaScript Error, as production passes
            await wait_for(lambda: server.statistics().websockets == 0)


def test_the_default_message_limit_is_production_32_mib() -> None:
    assert WebSocketOptions().max_message_size == 32 * 1024 * 1024


async def test_client_vanishing_mid_handshake_leaks_nothing(project) -> None:
    with trio.fail_after(10):
        async with running(project, websocket=WebSocketOptions(handshake_timeout=0.5)) as server:
            # Half a handshake, then gone.
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(HANDSHAKE[:40])
            await stream.aclose()
            # A whole handshake, gone before reading the 101.
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(HANDSHAKE)
            await stream.aclose()
            # A handshake websockets refuses (no key): the Worker accepted, websockets answers 400.
            answer = await raw_exchange(
                server, HANDSHAKE.replace(f"Sec-WebSocket-Key: {SAMPLE_KEY}\r\n".encode(), b"")
            )
            assert answer.startswith(b"HTTP/1.1 400 ")
            await wait_for(lambda: server.statistics().http_connections == 0)
            assert server.statistics().websockets == 0
            # The object heard that its sockets went away.
            stub = server.runtime.env.ECHO.getByName("e")
            await wait_for(lambda: server.runtime.object_statistics(stub).websockets == 0)
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.send("still serving")
                assert await ws.recv() == "still serving"


async def test_abrupt_disconnect_is_1006(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(HANDSHAKE)
            answer = await read_response_head(stream)
            assert answer.startswith(b"HTTP/1.1 101 ")
            await stream.aclose()  # no close frame
            await wait_for(lambda: "closed" in storage(server))
            assert storage(server)["closed"] == [1006, "", False]
            await wait_for(lambda: server.statistics().websockets == 0)


async def test_slow_client_is_cut_when_the_outgoing_buffer_overflows(tmp_path) -> None:
    entry = """
    from js import WebSocketPair
    from workers import DurableObject, Response, WorkerEntrypoint

    class Echo(DurableObject):
        async def fetch(self, request):
            client, server = WebSocketPair.new().object_values()
            self.ctx.acceptWebSocket(server)
            return Response(None, status=101, web_socket=client)

        async def webSocketMessage(self, ws, message):
            for _ in range(200):
                ws.send("y" * 100_000)

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await self.env.ECHO.getByName("e").fetch(request)
    """
    options = WebSocketOptions(max_buffer=1_000_000)
    with trio.fail_after(10):
        async with running(make_project(tmp_path, entry), websocket=options) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as ws:
                await ws.send("flood")
                received = 0

                async def drain() -> None:
                    nonlocal received
                    while True:
                        await ws.recv()
                        received += 1

                with pytest.raises(ConnectionClosed) as info:
                    await drain()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 1011
                assert received < 200
            await wait_for(lambda: server.statistics().websockets == 0)


async def test_shutdown_closes_websockets_with_1001(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server, connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await server.shutdown()
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1001


async def test_upgrade_routes_come_before_the_worker_and_echo_a_subprotocol(project) -> None:
    """The hook the shard endpoint (?shard=) will use; a route's headers reach the 101."""
    from runtime import Response, WebSocketPair

    async def route(request, rt):
        if "?shard=" not in request.url:
            return None
        pair = WebSocketPair()
        pair.server.accept()
        pair.server.send("from the route")
        protocol = request.headers.get("sec-websocket-protocol")
        return Response(
            None, status=101, web_socket=pair.client, headers={"sec-websocket-protocol": protocol}
        )

    with trio.fail_after(10):
        async with running(project) as server:
            server.upgrade_routes.append(route)
            async with connect(
                f"ws://127.0.0.1:{server.port}/?shard=a", subprotocols=[Subprotocol("bearer.tok")]
            ) as ws:
                assert ws.subprotocol == "bearer.tok"
                assert await ws.recv() == "from the route"
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:  # not routed: the Worker
                await ws.send("echo")
                assert await ws.recv() == "echo"
