"""Outbound HTTP from Worker code, and the SDK's Request / Response / FetchResponse classes.

Worker code reaches ``runtime/pyworkers/_fetch.py`` through three front
doors: ``workers.fetch`` (the SDK, a ``workers.Response``),
``pyodide.http.pyfetch`` (Pyodide's ``FetchResponse``) and ``js.fetch`` (a
promise of a JavaScript ``Response``). Each test serves the requests from a
small HTTP/1.1 server (trio + h11) bound to 127.0.0.1, and checks both what
the server received and what Worker code sees.

Socket tests run on the real clock, bounded by :data:`GUARD` seconds (the
autojump clock would jump to the fetch deadline while the kernel carries a
packet); the timeout tests use ``autojump_clock`` against a server that never
answers, so the deadline is the only thing that can end the wait.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from http import HTTPMethod, HTTPStatus
from typing import Any

import h11
import pytest
import trio

from runtime import ObjectResetError, RemoteError, open_runtime
from runtime.pyworkers import NotEmulatedError, _fetch, shim_module
from tests.runtime.conftest import EPOCH_MS, config

from .helpers import worker_module

workers: Any = shim_module("workers")
pyodide_http: Any = shim_module("pyodide.http")
ffi: Any = shim_module("pyodide.ffi")
js: Any = shim_module("js")

#: Real seconds a socket test may take before it fails instead of hanging.
GUARD = 10.0


# ---------------------------------------------------------------------------------------------
# A small HTTP/1.1 server


@dataclass
class Received:
    """A request as the server read it off the wire."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reason: str = ""


class Server:
    """Answers every request with :attr:`reply` and records it in :attr:`received`."""

    def __init__(self, reply: Reply, host: str) -> None:
        self.reply = reply
        self.host = host
        self.port = 0
        self.received: list[Received] = []

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    async def handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        assert request is not None
        self.received.append(
            Received(
                request.method.decode(),
                request.target.decode(),
                [(k.decode(), v.decode()) for k, v in request.headers],
                body,
            )
        )
        reply = self.reply
        headers = list(reply.headers)
        if reply.status not in (204, 304) and not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("content-length", str(len(reply.body))))
        data = conn.send(h11.Response(status_code=reply.status, reason=reply.reason, headers=headers))
        if reply.body:
            data += conn.send(h11.Data(data=reply.body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)


@asynccontextmanager
async def serving(
    reply: Reply | None = None,
    *,
    raw: Callable[[trio.SocketStream], Awaitable[None]] | None = None,
    host: str = "127.0.0.1",
    guard: float | None = GUARD,
) -> AsyncIterator[Server]:
    """Serve on ``host``, an ephemeral port; ``raw`` replaces the well-behaved handler."""
    server = Server(reply or Reply(), host)
    with trio.fail_after(guard) if guard is not None else nullcontext():
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, raw or server.handle, 0, host=host))
            server.port = listeners[0].socket.getsockname()[1]
            yield server
            nursery.cancel_scope.cancel()


def js_init(**options: Any) -> Any:
    """A fetch init object as Worker code makes one: to_js with Object.fromEntries."""
    return ffi.to_js(options, dict_converter=js.Object.fromEntries)


def header(received: Received, name: str) -> list[str]:
    return [v for k, v in received.headers if k == name]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


JSON_REPLY = Reply(
    status=201,
    reason="Made",
    headers=[
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("X-Dup", "one"),
        ("X-Dup", "two"),
    ],
    body=b'{"made": [1, 2]}',
)


# ---------------------------------------------------------------------------------------------
# workers.fetch


async def test_workers_fetch_sends_the_request_as_given() -> None:
    async with serving(JSON_REPLY) as server:
        url = server.url("/items/a b?q=1&r=%20x")
        await workers.fetch(url, method="POST", body="héllo", headers={"X-Token": "t1", "Accept": "*/*"})
    [got] = server.received
    assert got.method == "POST"
    assert got.target == "/items/a%20b?q=1&r=%20x"
    assert got.headers == [
        ("host", f"127.0.0.1:{server.port}"),
        ("accept", "*/*"),
        ("content-type", "text/plain;charset=UTF-8"),
        ("x-token", "t1"),
        ("connection", "close"),
        ("content-length", "6"),
    ]
    assert got.body == "héllo".encode()


async def test_workers_fetch_returns_the_sdks_response() -> None:
    async with serving(JSON_REPLY) as server:
        response = await workers.fetch(server.url("/x"))
    assert type(response) is workers.Response
    assert isinstance(response, workers.FetchResponse)
    assert isinstance(response, pyodide_http.FetchResponse)
    assert (response.status, response.status_text, response.ok) == (201, "Made", True)
    assert response.url == server.url("/x")
    assert isinstance(response.headers, http.client.HTTPMessage)
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-dup"] == "one, two"  # production's Headers join repeated values
    assert response.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert repr(response) == (
        f"Response(status=201, status_text='Made', content_type='application/json', url={server.url('/x')!r})"
    )
    assert await response.json() == {"made": [1, 2]}
    assert response.body_used
    with pytest.raises(pyodide_http.BodyUsedError, match=r"^Response body is already used$"):
        await response.text()


async def test_workers_fetch_takes_a_workers_request_and_an_http_method() -> None:
    async with serving(Reply(body=b"ok")) as server:
        request = workers.Request(server.url("/r"), method=HTTPMethod.PUT, body="put!")
        first = await workers.fetch(request)
        second = await workers.fetch(server.url("/d"), method=HTTPMethod.DELETE)
    assert await first.text() == "ok"
    assert await second.text() == "ok"
    assert [(r.method, r.target, r.body) for r in server.received] == [
        ("PUT", "/r", b"put!"),
        ("DELETE", "/d", b""),
    ]


async def test_bytes_cross_both_ways_unchanged() -> None:
    payload = bytes(range(256))
    async with serving(
        Reply(headers=[("content-type", "application/octet-stream")], body=payload[::-1])
    ) as s:
        response = await workers.fetch(s.url(), method="POST", body=payload)
        data = await response.bytes()
    assert s.received[0].body == payload
    assert header(s.received[0], "content-type") == []  # bytes carry no content type
    assert type(data) is bytes
    assert data == payload[::-1]


async def test_a_chunked_response_and_a_null_body_status_read_as_production() -> None:
    async def chunked(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )

    async with serving(raw=chunked) as server:
        response = await workers.fetch(server.url())
        assert await response.text() == "abcde"
    async with serving(Reply(status=204)) as server:
        response = await workers.fetch(server.url())
        assert (response.status, response.status_text) == (204, "No Content")
        assert await response.text() == ""
        assert not response.body_used  # a null body is never used


# ---------------------------------------------------------------------------------------------
# pyodide.http.pyfetch


async def test_pyfetch_passes_keyword_options_as_the_fetch_init() -> None:
    async with serving(JSON_REPLY) as server:
        await pyodide_http.pyfetch(
            server.url("/p?x=1"),
            method="PATCH",
            body='{"k": 1}',
            headers={"content-type": "application/json"},
        )
    [got] = server.received
    assert (got.method, got.target, got.body) == ("PATCH", "/p?x=1", b'{"k": 1}')
    assert header(got, "content-type") == ["application/json"]


async def test_pyfetch_returns_pyodides_fetch_response() -> None:
    async with serving(JSON_REPLY) as server:
        response = await pyodide_http.pyfetch(server.url("/a"))
    assert type(response) is pyodide_http.FetchResponse
    assert (response.status, response.status_text, response.ok) == (201, "Made", True)
    assert (response.type, response.redirected) == ("default", False)
    assert response.url == server.url("/a")
    # Object.fromEntries(headers.entries()): lower-case names, the last Set-Cookie wins.
    assert response.headers == {
        "connection": "close",
        "content-length": "16",
        "content-type": "application/json",
        "set-cookie": "b=2",
        "x-dup": "one, two",
    }
    copy = response.clone()
    assert type(copy) is pyodide_http.FetchResponse
    assert await response.text() == '{"made": [1, 2]}'
    assert await copy.json() == {"made": [1, 2]}
    for read in (response.text, response.json, response.bytes, response.buffer, response.memoryview):
        with pytest.raises(pyodide_http.BodyUsedError, match=r"^Response body is already used$"):
            await read()
    with pytest.raises(pyodide_http.BodyUsedError, match=r"^Response body is already used$"):
        response.clone()
    assert issubclass(pyodide_http.BodyUsedError, OSError)


async def test_pyfetch_reads_bytes_and_memoryviews() -> None:
    async with serving(Reply(body=b"\x00\x01\xff")) as server:
        response = await pyodide_http.pyfetch(server.url())
        copy = response.clone()
    assert await response.bytes() == b"\x00\x01\xff"
    view = await copy.memoryview()
    assert type(view) is memoryview
    assert view.tobytes() == b"\x00\x01\xff"


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (404, "Not Found", r"^404 Client Error: Not Found for url: {url}$"),
        (503, "Busy", r"^503 Server Error: Busy for url: {url}$"),
    ],
)
async def test_raise_for_status_raises_http_status_error(status: int, reason: str, message: str) -> None:
    async with serving(Reply(status=status, reason=reason)) as server:
        response = await pyodide_http.pyfetch(server.url("/missing?id=7"))
    assert not response.ok
    url = server.url("/missing?id=7")
    with pytest.raises(pyodide_http.HttpStatusError, match=message.format(url=re.escape(url))) as info:
        response.raise_for_status()
    assert (info.value.status, info.value.status_text, info.value.url) == (status, reason, url)
    assert isinstance(info.value, OSError)


@pytest.mark.parametrize("status", [200, 300, 399])
async def test_raise_for_status_passes_below_400(status: int) -> None:
    async with serving(Reply(status=status)) as server:
        response = await pyodide_http.pyfetch(server.url())
    assert response.status == status
    assert response.raise_for_status() is None


# ---------------------------------------------------------------------------------------------
# js.fetch


async def test_js_fetch_returns_a_promise_of_a_javascript_response() -> None:
    async with serving(JSON_REPLY) as server:
        promise = js.fetch(server.url("/j"), js_init(method="PUT", body="x", headers={"X-A": "1"}))
        assert isinstance(promise, ffi.JsPromise)
        response = await promise
        assert isinstance(response, ffi.JsProxy)
        assert (response.status, response.statusText, response.ok) == (201, "Made", True)
        assert response.url == server.url("/j")
        assert response.headers.get("content-type") == "application/json"
        assert response.headers.get("x-missing") is ffi.jsnull
        assert list(response.headers.getSetCookie()) == ["a=1", "b=2"]
        copy = response.clone()
        assert await response.text() == '{"made": [1, 2]}'
        assert response.bodyUsed
        assert (await copy.json()).to_py() == {"made": [1, 2]}
        again = await js.fetch(server.url("/k"))
        assert (await again.arrayBuffer()).to_bytes() == b'{"made": [1, 2]}'
    [put, *_] = server.received
    assert (put.method, put.target, put.body) == ("PUT", "/j", b"x")
    assert header(put, "x-a") == ["1"]


async def test_js_fetch_with_a_python_dict_init_is_refused() -> None:
    # A dict crosses as a PyProxy: workerd would not read its keys, so the request would go as a GET.
    with pytest.raises(
        ffi.JsException, match=r"^TypeError: new Request\(\): the init, a Python dict"
    ) as info:
        js.fetch("http://127.0.0.1:1/", {"method": "POST"})
    assert info.value.name == "TypeError"


# ---------------------------------------------------------------------------------------------
# Which hosts are fetched


async def test_localhost_is_fetched() -> None:
    async with serving(Reply(body=b"local")) as server:
        response = await workers.fetch(f"http://localhost:{server.port}/")
        assert await response.text() == "local"
    assert header(server.received[0], "host") == [f"localhost:{server.port}"]


@pytest.mark.parametrize("host", ["127.0.0.2", "::1"])
async def test_other_loopback_addresses_are_fetched(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as probe:
            probe.bind((host, 0))
    except OSError:
        pytest.skip(f"this machine cannot bind {host}")
    async with serving(Reply(body=b"loop"), host=host) as server:
        response = await pyodide_http.pyfetch(server.url("/z"))
        assert await response.text() == "loop"
    assert server.received[0].target == "/z"


REFUSED = (
    r"^fetch\({url}\): shardsim's fetch reaches only http:// URLs on this machine "
    r"\(localhost, 127\.0\.0\.1, ::1\); it does not call the internet on a Worker's behalf$"
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.com", "https://example.com/"),
        ("http://example.com:8080/a?b=1", "http://example.com:8080/a?b=1"),
        ("http://10.0.0.1/", "http://10.0.0.1/"),
        ("http://[::2]/", "http://[::2]/"),
        ("https://127.0.0.1/", "https://127.0.0.1/"),
        ("http://localhost.example.com/", "http://localhost.example.com/"),
    ],
)
@pytest.mark.parametrize("door", ["workers.fetch", "pyfetch", "js.fetch"])
async def test_urls_off_this_machine_are_refused_before_any_socket(
    monkeypatch: pytest.MonkeyPatch, url: str, shown: str, door: str
) -> None:
    opened: list[object] = []

    async def no_socket(*args: object, **kwargs: object) -> None:
        opened.append(args)
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(trio, "open_tcp_stream", no_socket)
    call = {"workers.fetch": workers.fetch, "pyfetch": pyodide_http.pyfetch, "js.fetch": js.fetch}[door]
    with pytest.raises(NotEmulatedError, match=REFUSED.format(url=re.escape(shown))):
        await call(url)
    assert opened == []


async def test_a_url_fetch_cannot_load_is_a_type_error() -> None:
    with pytest.raises(ffi.JsException, match=r"^TypeError: Fetch API cannot load: ftp://127\.0\.0\.1/$"):
        await js.fetch("ftp://127.0.0.1/")
    # pyfetch (and so workers.fetch) turns a failed JavaScript fetch into pyodide.http.AbortError.
    with pytest.raises(pyodide_http.AbortError, match=r"^Fetch API cannot load: ftp://127\.0\.0\.1/$"):
        await workers.fetch("ftp://127.0.0.1/")


# ---------------------------------------------------------------------------------------------
# Failures on the wire


async def test_a_refused_connection() -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/"
    message = rf"all attempts to connect to 127\.0\.0\.1:{port} failed"
    with trio.fail_after(GUARD):
        # The JavaScript fetch rejects with a plain Error carrying the connection failure.
        with pytest.raises(ffi.JsException, match=rf"^Error: {message}$") as js_info:
            await js.fetch(url)
        assert js_info.value.name == "Error"
        # Pyodide's pyfetch (and so workers.fetch) turns the rejection into an OSError.
        for call in (pyodide_http.pyfetch, workers.fetch):
            with pytest.raises(pyodide_http.AbortError, match=rf"^{message}$") as info:
                await call(url)
            assert isinstance(info.value, OSError)


async def test_a_response_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _fetch.MAX_RESPONSE_BYTES == 32 * 1024 * 1024
    monkeypatch.setattr(_fetch, "MAX_RESPONSE_BYTES", 1000)
    async with serving(Reply(body=b"x" * 1000)) as server:
        response = await workers.fetch(server.url("/fits"))
        assert len(await response.bytes()) == 1000
        server.reply = Reply(body=b"x" * 1001)
        url = server.url("/big")
        with pytest.raises(
            pyodide_http.AbortError, match=rf"^fetch\({re.escape(url)}\): the response is over 1000 bytes$"
        ):
            await workers.fetch(url)


async def test_a_server_that_closes_without_answering() -> None:
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.aclose()

    async with serving(raw=hang_up) as server:
        url = server.url()
        with pytest.raises(
            ffi.JsException,
            match=rf"^Error: fetch\({re.escape(url)}\): the server closed the connection without a response$",
        ):
            await js.fetch(url)


async def test_a_reply_that_is_not_http_is_refused() -> None:
    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"SSH-2.0-OpenSSH\r\n\r\n")

    async with serving(raw=garbage) as server:
        url = server.url()
        with pytest.raises(
            pyodide_http.AbortError,
            match=rf"^fetch\({re.escape(url)}\): the response is not valid HTTP/1\.1 \(illegal status line: ",
        ):
            await pyodide_http.pyfetch(url)


async def silent(stream: trio.SocketStream) -> None:
    await trio.sleep_forever()


async def test_a_server_that_never_answers_times_out(autojump_clock: trio.testing.MockClock) -> None:
    assert _fetch.FETCH_TIMEOUT == 30.0
    async with serving(raw=silent, guard=None) as server:
        url = server.url("/slow")
        start = trio.current_time()
        with pytest.raises(
            ffi.JsException,
            match=rf"^Error: fetch\({re.escape(url)}\): no complete response within 30 seconds$",
        ):
            await js.fetch(url)
        assert trio.current_time() - start == 30.0
        with pytest.raises(pyodide_http.AbortError, match=r"no complete response within 30 seconds$"):
            await workers.fetch(url)


# ---------------------------------------------------------------------------------------------
# Inside a Durable Object

CALLER_WORKER = """
from js import Date
from workers import DurableObject, fetch


class Caller(DurableObject):
    async def get(self, url):
        response = await fetch(url)
        return [response.status, await response.text()]

    async def write_then_get(self, url):
        self.ctx.storage.kv.put("written", True)
        response = await fetch(url)
        return response.status

    async def timed(self, url):
        start = Date.now()
        try:
            await fetch(url)
        except OSError as exc:
            return [type(exc).__name__, str(exc), Date.now() - start]
"""


async def test_fetch_from_an_object(tmp_path) -> None:
    with worker_module(tmp_path, CALLER_WORKER) as mod:
        async with (
            serving(Reply(body=b"from the server")) as server,
            open_runtime(objects={"CALLER": mod.Caller}, config=config()) as rt,
        ):
            stub = rt.env.CALLER.getByName("c")
            assert await stub.get(server.url("/o")) == [200, "from the server"]
            assert await stub.write_then_get(server.url("/w")) == 200
            assert rt.dump_storage(stub)["kv"] == {"written": True}
    assert [r.target for r in server.received] == ["/o", "/w"]


async def test_a_refused_url_reaches_an_objects_caller_by_name(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, CALLER_WORKER) as mod:
        async with open_runtime(objects={"CALLER": mod.Caller}, config=config()) as rt:
            with pytest.raises(
                RemoteError, match=REFUSED.format(url=re.escape("https://example.com/"))
            ) as info:
                await rt.env.CALLER.getByName("c").get("https://example.com")
            assert info.value.name == "NotEmulatedError"


async def test_fetch_from_an_object_waits_for_its_writes(tmp_path) -> None:
    """The output gate: a fetch after a write leaves only once the write is durable; a lost write stops it."""
    with worker_module(tmp_path, CALLER_WORKER) as mod:
        async with serving() as server, open_runtime(objects={"CALLER": mod.Caller}, config=config()) as rt:
            stub = rt.env.CALLER.getByName("c")
            await stub.get(server.url("/wake"))
            db = rt._actor_of(stub).db
            assert db is not None
            db.fail_next_commit("disk full")
            with pytest.raises(ObjectResetError, match=r"^Internal error in Durable Object storage"):
                await stub.write_then_get(server.url("/never"))
            assert rt.dump_storage(stub)["kv"] == {}
    assert [r.target for r in server.received] == ["/wake"]


async def test_fetch_from_an_object_times_out_on_the_runtime_clock(
    tmp_path, autojump_clock: trio.testing.MockClock
) -> None:
    with worker_module(tmp_path, CALLER_WORKER) as mod:
        async with (
            serving(raw=silent, guard=None) as server,
            open_runtime(objects={"CALLER": mod.Caller}, config=config()) as rt,
        ):
            url = server.url("/slow")
            assert await rt.env.CALLER.getByName("c").timed(url) == [
                "AbortError",
                f"fetch({url}): no complete response within 30 seconds",
                30_000,
            ]
            assert rt.clock.now_ms() >= EPOCH_MS + 30_000


# ---------------------------------------------------------------------------------------------
# workers.Response and workers.Request returned from a Durable Object's fetch

RESPONDER_WORKER = """
import json
from http import HTTPStatus

from js import Headers, Object, URL, WebSocketPair
from pyodide.ffi import to_js
from workers import DurableObject, Request, Response, fetch


class Responder(DurableObject):
    async def fetch(self, request):
        path = URL.new(request.url).pathname
        if path == "/text":
            return Response("text")
        if path == "/json":
            return Response.json({"a": [1, 2], "b": None})
        if path == "/json-created":
            return Response.json([1], status=HTTPStatus.CREATED, headers={"x-k": "v"})
        if path == "/bytes":
            return Response(b"\\x00\\xff", status=202, status_text="Taken", headers=[("x-a", "1"), ("x-a", "2")])
        if path == "/js-headers":
            headers = Headers.new(to_js({"content-type": "text/csv"}, dict_converter=Object.fromEntries))
            return Response("a,b", headers=headers)
        if path == "/empty":
            return Response(status=204)
        if path == "/redirect":
            return Response.redirect("http://127.0.0.1/next", 307)
        if path == "/socket":
            client, server = WebSocketPair.new().object_values()
            server.accept()
            return Response(None, status=101, web_socket=client)
        if path == "/echo":
            return Response.json(
                {
                    "url": request.url,
                    "method": str(request.method),
                    "type": type(request).__name__,
                    "headers": dict(request.headers.items()),
                    "text": await request.text(),
                    "used": request.body_used,
                }
            )
        if path == "/proxy":
            return await fetch(request.headers["x-upstream"])
        if path == "/not-a-response":
            return "hello"
        return Response("no such path", status=404)


class Front(DurableObject):
    async def relay(self, path):
        response = await self.env.RESPONDER.getByName("r").fetch("http://do" + path, method="POST", body="hi")
        return [
            type(response).__name__,
            response.status,
            response.headers["content-type"],
            await response.text(),
        ]
"""


@asynccontextmanager
async def responder(tmp_path) -> AsyncIterator[Any]:
    with worker_module(tmp_path, RESPONDER_WORKER) as mod:
        async with open_runtime(
            objects={"RESPONDER": mod.Responder, "FRONT": mod.Front}, config=config()
        ) as rt:
            yield rt


@pytest.mark.parametrize(
    ("path", "status", "status_text", "headers", "body"),
    [
        ("/text", 200, "OK", [("content-type", "text/plain;charset=UTF-8")], b"text"),
        ("/json", 200, "OK", [("content-type", "application/json")], b'{"a": [1, 2], "b": null}'),
        ("/json-created", 201, "Created", [("content-type", "application/json"), ("x-k", "v")], b"[1]"),
        ("/bytes", 202, "Taken", [("x-a", "1, 2")], b"\x00\xff"),
        ("/js-headers", 200, "OK", [("content-type", "text/csv")], b"a,b"),
        ("/empty", 204, "No Content", [], b""),
        ("/redirect", 307, "Temporary Redirect", [("location", "http://127.0.0.1/next")], b""),
        ("/missing", 404, "Not Found", [("content-type", "text/plain;charset=UTF-8")], b"no such path"),
    ],
)
async def test_what_the_caller_of_an_objects_fetch_receives(
    tmp_path, autojump_clock, path: str, status: int, status_text: str, headers: list[Any], body: bytes
) -> None:
    async with responder(tmp_path) as rt:
        response = await rt.env.RESPONDER.getByName("r").fetch("http://do" + path)
        assert (response.status, response.status_text) == (status, status_text)
        assert response.headers.entries() == headers
        assert await response.bytes() == body


async def test_a_websocket_response_reaches_the_caller(tmp_path, autojump_clock) -> None:
    async with responder(tmp_path) as rt:
        response = await rt.env.RESPONDER.getByName("r").fetch("http://do/socket")
        assert response.status == 101
        assert response.webSocket is not None


async def test_the_object_reads_the_request_through_workers_request(tmp_path, autojump_clock) -> None:
    async with responder(tmp_path) as rt:
        response = await rt.env.RESPONDER.getByName("r").fetch(
            "http://do/echo?x=1", method="PUT", headers={"X-Who": "ada"}, body="payload"
        )
        assert await response.json() == {
            "url": "http://do/echo?x=1",
            "method": "PUT",
            "type": "Request",
            "headers": {"content-type": "text/plain;charset=UTF-8", "x-who": "ada"},
            "text": "payload",
            "used": True,
        }


async def test_an_object_calling_another_objects_fetch_gets_a_workers_response(
    tmp_path, autojump_clock
) -> None:
    async with responder(tmp_path) as rt:
        front = rt.env.FRONT.getByName("f")
        assert await front.relay("/json") == ["Response", 200, "application/json", '{"a": [1, 2], "b": null}']
        assert await front.relay("/echo") == [
            "Response",
            200,
            "application/json",
            json.dumps(
                {
                    "url": "http://do/echo",
                    "method": "POST",
                    "type": "Request",
                    "headers": {"content-type": "text/plain;charset=UTF-8"},
                    "text": "hi",
                    "used": True,
                }
            ),
        ]


async def test_an_object_returns_a_fetched_response_as_it_came(tmp_path) -> None:
    async with serving(JSON_REPLY) as server, responder(tmp_path) as rt:
        response = await rt.env.RESPONDER.getByName("r").fetch(
            "http://do/proxy", headers={"x-upstream": server.url("/up")}
        )
        assert (response.status, response.status_text) == (201, "Made")
        assert response.headers.get("content-type") == "application/json"
        assert response.headers.getSetCookie() == ["a=1", "b=2"]
        assert await response.json() == {"made": [1, 2]}
    assert [r.target for r in server.received] == ["/up"]


async def test_a_fetch_handler_that_returns_no_response(tmp_path, autojump_clock) -> None:
    async with responder(tmp_path) as rt:
        with pytest.raises(TypeError, match=r"^fetch\(\) must return a Response, got str$"):
            await rt.env.RESPONDER.getByName("r").fetch("http://do/not-a-response")


# ---------------------------------------------------------------------------------------------
# workers.Response and workers.Request, constructed and read


async def test_response_from_text_json_and_bytes() -> None:
    text = workers.Response("héllo")
    assert (text.status, text.status_text, text.ok, text.url) == (200, "OK", True, "")
    assert text.headers["content-type"] == "text/plain;charset=UTF-8"
    assert await text.text() == "héllo"
    with pytest.raises(pyodide_http.BodyUsedError, match=r"^Response body is already used$"):
        await text.bytes()

    data = workers.Response.json({"k": [1, None]}, status=HTTPStatus.ACCEPTED, status_text="Queued")
    assert (data.status, data.status_text) == (202, "Queued")
    assert repr(data) == "Response(status=202, status_text='Queued', content_type='application/json')"
    assert data.headers["content-type"] == "application/json"
    assert await data.json() == {"k": [1, None]}

    own_type = workers.Response.from_json([1], headers={"Content-Type": "application/vnd.x+json"})
    assert own_type.headers.get_all("content-type") == ["application/vnd.x+json"]

    raw = workers.Response(b"\x00\x01", headers={"content-type": "application/octet-stream"})
    assert await raw.bytes() == b"\x00\x01"
    assert workers.Response(None).headers.items() == []
    assert await workers.Response(None).text() == ""


async def test_response_headers_as_a_dict_a_list_of_pairs_or_js_headers() -> None:
    by_dict = workers.Response("x", headers={"X-A": "1", "x-n": 5})
    assert by_dict.headers.items() == [
        ("content-type", "text/plain;charset=UTF-8"),
        ("x-a", "1"),
        ("x-n", "5"),
    ]
    by_pairs = workers.Response("x", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("x-d", "1")])
    assert by_pairs.headers.get_all("set-cookie") == ["a=1", "b=2"]
    js_headers = js.Headers.new(js_init(**{"x-h": "v"}))
    by_js = workers.Response("x", headers=js_headers)
    assert by_js.headers["x-h"] == "v"


async def test_a_workers_response_clone_is_pyodides_fetch_response() -> None:
    response = workers.Response("twice", status=201)
    copy = response.clone()
    assert type(copy) is pyodide_http.FetchResponse
    assert copy.status == 201
    assert await copy.text() == "twice"
    assert await response.text() == "twice"
    with pytest.raises(pyodide_http.BodyUsedError, match=r"^Response body is already used$"):
        response.clone()


async def test_a_workers_response_wraps_a_javascript_response() -> None:
    js_response = js.Response.new("inner", js_init(status=203))
    response = workers.Response(js_response)
    assert response.js_object is js_response
    assert response.status == 203
    assert await response.text() == "inner"
    replaced = workers.Response("old", status=206, headers={"x-k": "v"}).replace_body("new")
    assert (replaced.status, replaced.headers["x-k"]) == (206, "v")
    assert await replaced.text() == "new"


async def test_response_redirect_is_a_javascript_response() -> None:
    response = workers.Response.redirect("http://127.0.0.1/a b")
    assert isinstance(response, ffi.JsProxy)
    assert response.status == 302
    assert response.headers.get("location") == "http://127.0.0.1/a%20b"
    assert workers.Response.redirect("http://127.0.0.1/", HTTPStatus.PERMANENT_REDIRECT).status == 308


def test_the_response_keyword_web_socket_is_spelled_as_in_the_sdk() -> None:
    with pytest.raises(TypeError, match=r"^Response\(\) got an unexpected keyword argument 'webSocket'"):
        workers.Response(None, status=101, webSocket=None)
    client, _server = js.WebSocketPair.new().object_values()
    with pytest.raises(
        ffi.JsException, match=r"^RangeError: Responses with a WebSocket must have status code 101\.$"
    ):
        workers.Response(None, web_socket=client)
    assert workers.Response(None, status=101, web_socket=client).status == 101


STATUS_RANGE = r"Responses may only be constructed with status codes in the range 200 to 599, inclusive\."


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        # new Response() throws; the SDK's constructor lets the JsException through.
        (lambda: workers.Response("x", status=99), "RangeError", STATUS_RANGE),
        (lambda: workers.Response("x", status=600), "RangeError", STATUS_RANGE),
        (
            lambda: workers.Response("x", status=204),
            "TypeError",
            r"Response with null body status \(101, 204, 205, or 304\) cannot have a body\.",
        ),
        (lambda: workers.Response("x", headers={"x-a": "a\nb"}), "TypeError", r"Invalid header value\."),
        (lambda: workers.Response("x", headers={"bad name": "v"}), "TypeError", r"Invalid header name\."),
        (lambda: workers.Response("x", status_text="a\nb"), "TypeError", r"Invalid statusText"),
        (lambda: workers.Request("/relative"), "TypeError", r"Fetch API cannot load: /relative"),
        (
            lambda: workers.Request("http://127.0.0.1/", method="NOT A METHOD"),
            "TypeError",
            r"Invalid HTTP method string: NOT A METHOD",
        ),
        (
            lambda: workers.Request("http://127.0.0.1/", body="x"),
            "TypeError",
            r"Request with a GET or HEAD method cannot have a body\.",
        ),
        # Response.json builds its headers before the part the SDK guards: a JsException, too.
        (lambda: workers.Response.json([], headers={"x": "a\rb"}), "TypeError", r"Invalid header value\."),
    ],
)
def test_what_javascript_refuses_is_a_js_exception(make: Callable[[], Any], error: str, message: str) -> None:
    with pytest.raises(ffi.JsException, match=rf"^{error}: {message}$") as info:
        make()
    assert info.value.name == error


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        # The SDK's own checks.
        (lambda: workers.Response({"a": 1}), TypeError, r"Unsupported type in Response: dict"),
        (lambda: workers.Response(5), TypeError, r"Unsupported type in Response: int"),
        (lambda: workers.Response(bytearray(b"x")), TypeError, r"Unsupported type in Response: bytearray"),
        (lambda: workers.Response(memoryview(b"x")), TypeError, r"Unsupported type in Response: memoryview"),
        (lambda: workers.Response(js_init(a=1)), TypeError, r"Unsupported type in Response: Object"),
        (
            lambda: workers.Response(js.Response.new("x"), status=200),
            ValueError,
            r"Expected no options when constructing Response from a js\.Response",
        ),
        (
            lambda: workers.Response("x", headers=(("a", "b"),)),
            TypeError,
            r"Received unexpected type for headers argument",
        ),
        (
            lambda: workers.Response("x", headers="a: b"),
            TypeError,
            r"Received unexpected type for headers argument",
        ),
        (
            lambda: workers.Request("http://127.0.0.1/", headers=5),
            TypeError,
            r"Received unexpected type for headers argument",
        ),
        (
            lambda: workers.Request(js.Request.new("http://127.0.0.1/"), method="POST"),
            ValueError,
            r"Expected no options when constructing Request from a js\.Request",
        ),
        (lambda: workers.Response.json({1, 2}), TypeError, r"Object of type set is not JSON serializable"),
        # Response.redirect and Response.json turn a RangeError into ValueError, a TypeError into TypeError.
        (
            lambda: workers.Response.redirect("http://127.0.0.1/", 200),
            ValueError,
            r"200 is not a redirect status code\. It must be one of: 301, 302, 303, 307, or 308\.",
        ),
        (lambda: workers.Response.redirect("/relative"), TypeError, r"Unable to parse URL: /relative"),
        (lambda: workers.Response.json({"a": 1}, status=700), ValueError, STATUS_RANGE),
    ],
)
def test_what_the_sdk_refuses_is_a_python_error(
    make: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=rf"^{message}$") as info:
        make()
    assert type(info.value) is error


async def test_request_construction_and_reading() -> None:
    request = workers.Request(
        "http://127.0.0.1:8080/a b?q=1", method="post", headers=[("X-A", "1"), ("X-A", "2")], body='{"n": 1}'
    )
    assert repr(request) == "Request(method='POST', url='http://127.0.0.1:8080/a%20b?q=1')"
    assert request.url == "http://127.0.0.1:8080/a%20b?q=1"
    assert request.method is HTTPMethod.POST
    assert isinstance(request.headers, http.client.HTTPMessage)
    assert request.headers.items() == [("content-type", "text/plain;charset=UTF-8"), ("x-a", "1, 2")]
    assert (request.cf, request.redirect, request.body_used) == (None, "follow", False)
    copy = request.clone()
    assert await request.json() == {"n": 1}
    assert request.body_used
    with pytest.raises(OSError, match=r"^Body already used$"):
        await request.text()
    with pytest.raises(OSError, match=r"^Body already used$"):
        request.clone()
    assert await copy.text() == '{"n": 1}'

    raw = workers.Request("http://127.0.0.1/", method=HTTPMethod.PUT, body="é")
    assert await raw.bytes() == "é".encode()

    again = workers.Request(workers.Request("http://127.0.0.1/x", method="DELETE", body="d"))
    assert (again.method, again.url, await again.text()) == (HTTPMethod.DELETE, "http://127.0.0.1/x", "d")

    wrapped = workers.Request(js.Request.new("http://127.0.0.1/j"))
    assert (wrapped.method, wrapped.url) == (HTTPMethod.GET, "http://127.0.0.1/j")
    assert await wrapped.text() == ""
