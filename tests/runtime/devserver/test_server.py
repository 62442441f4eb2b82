"""The dev server's HTTP side: routing to the Worker, errors, and bad input that must not hurt it."""

from __future__ import annotations

import logging

import pytest
import trio

from .helpers import client, get, make_project, raw_exchange, running, wait_for


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


async def test_requests_reach_the_worker_with_method_body_and_headers(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server, client(server) as c:
            reply = await c.request("POST", "/echo", b"payload")
            assert (reply.status, reply.body, reply.headers["x-method"]) == (200, b"payload", "POST")
            # Same connection (keep-alive), another request.
            reply = await c.request("GET", "/headers", headers=[("X-Test", "yes")])
            assert (reply.status, reply.body, reply.headers["set-cookie"]) == (200, b"yes", "a=1")
            reply = await c.request("GET", "/nowhere")
            assert (reply.status, reply.body) == (404, b"not found")


async def test_head_gets_headers_without_a_body(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            reply = await get(server, "/var", "HEAD")
            assert reply.status == 200
            assert reply.body == b""


async def test_vars_and_dev_vars_secrets_are_on_env(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            assert (await get(server, "/var")).body == b"hello s3cret"


async def test_a_raising_fetch_is_a_500_and_the_server_keeps_serving(project, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="shardsim.devserver")
    with trio.fail_after(10):
        async with running(project) as server:
            reply = await get(server, "/raise")
            assert reply.status == 500
            assert b"ValueError: boom" in reply.body
            assert "ValueError: boom" in caplog.text
            assert (await get(server, "/echo", "POST", b"still here")).body == b"still here"
            assert server.statistics().errors == 1


async def test_fetch_returning_something_else_is_a_500(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            reply = await get(server, "/not-a-response")
            assert reply.status == 500
            assert b"fetch() must return a Response, got str" in reply.body


async def test_bindings_not_emulated_fail_clearly(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            reply = await get(server, "/kv")
            assert reply.status == 500
            assert b"NotEmulatedError: env.CACHE.get: KV namespace bindings are not emulated" in reply.body


@pytest.mark.parametrize(
    "data",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 300_000 + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    ],
    ids=["garbage", "no-host", "bad-length", "bad-header", "huge-head", "tls"],
)
async def test_malformed_http_gets_a_4xx_and_a_closed_connection(project, data) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            answer = await raw_exchange(server, data)
            assert answer.startswith((b"HTTP/1.1 4", b"")), answer[:80]
            if answer:
                assert answer.split(b" ")[1][:1] == b"4"
            await wait_for(lambda: server.statistics().http_connections == 0)
            assert (await get(server, "/echo", "POST", b"ok")).body == b"ok"


async def test_unknown_method_is_refused(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            answer = await raw_exchange(
                server, b"BREW /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 400 ")


async def test_oversized_body_is_413(project) -> None:
    with trio.fail_after(10):
        async with running(project, max_request_body=1000) as server:
            reply = await get(server, "/echo", "POST", b"x" * 1001)
            assert reply.status == 413
            # Chunked bodies are counted as they arrive.
            chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            chunked += b"3e8\r\n" + b"y" * 1000 + b"\r\n" + b"1\r\nz\r\n0\r\n\r\n"
            assert (await raw_exchange(server, chunked)).startswith(b"HTTP/1.1 413 ")
            await wait_for(lambda: server.statistics().http_connections == 0)


async def test_client_vanishing_mid_request_leaks_nothing(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            for partial in (
                b"GET /echo HT",
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
            ):
                stream = await trio.open_tcp_stream("127.0.0.1", server.port)
                await stream.send_all(partial)
                await stream.aclose()
            await wait_for(lambda: server.statistics().http_connections == 0)
            assert (await get(server, "/echo", "POST", b"ok")).body == b"ok"


async def test_silent_connections_time_out(project) -> None:
    with trio.fail_after(10):
        async with running(project, idle_timeout=0.2, request_timeout=0.3) as server:
            idle = await trio.open_tcp_stream("127.0.0.1", server.port)
            slow = await trio.open_tcp_stream("127.0.0.1", server.port)
            await slow.send_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n")  # never finishes the head
            await wait_for(lambda: server.statistics().http_connections == 0)
            assert await idle.receive_some(100) == b""
            assert (await slow.receive_some(1000)).startswith(b"HTTP/1.1 408 ")
            await idle.aclose()
            await slow.aclose()


async def test_expect_100_continue(project) -> None:
    with trio.fail_after(10):
        async with running(project) as server:
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            async with stream:
                await stream.send_all(
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
                )
                assert (await stream.receive_some(1000)).startswith(b"HTTP/1.1 100 ")
                await stream.send_all(b"hi")
                answer = b""
                while not answer.endswith(b"hi"):
                    answer += await stream.receive_some(1000)
                assert answer.startswith(b"HTTP/1.1 200 ")


async def test_returning_a_websocket_for_a_plain_request_is_a_500(tmp_path) -> None:
    entry = """
    from js import WebSocketPair
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            client, server = WebSocketPair.new().object_values()
            server.accept()
            return Response(None, status=101, web_socket=client)
    """
    toml = (
        'main = "src/entry.py"\ncompatibility_date = "2026-11-01"\ncompatibility_flags = ["python_workers"]\n'
    )
    with trio.fail_after(10):
        async with running(make_project(tmp_path, entry, toml)) as server:
            reply = await get(server, "/")
            assert reply.status == 500
            assert b'did not contain the header "Upgrade: websocket"' in reply.body


async def test_on_fetch_module_style(tmp_path) -> None:
    entry = """
    from workers import Response

    async def on_fetch(request, env):
        return Response(f"{request.method} {env.NAME}")
    """
    toml = 'main = "src/entry.py"\ncompatibility_date = "2026-11-01"\n[vars]\nNAME = "v"\n'
    with trio.fail_after(10):
        async with running(make_project(tmp_path, entry, toml, dev_vars=None)) as server:
            assert (await get(server, "/x")).body == b"GET v"


async def test_state_persists_under_the_state_dir_across_restarts(project) -> None:
    with trio.fail_after(10):
        async with running(project, state_dir=".shardsim") as server:
            rt = server.runtime
            rt.clock.install()
            await rt.run_in_object(rt.env.ECHO.getByName("kept"), lambda obj, ctx: ctx.storage.put("k", "v"))
        assert (project / ".shardsim" / "do" / "ECHO").is_dir()
        async with running(project, state_dir=".shardsim") as server, client(server) as c:
            dump = (await c.request("GET", "/__shardsim/objects/ECHO/kept/storage")).json()
            assert dump["kv"] == {"k": "v"}
