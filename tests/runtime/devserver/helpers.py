"""Test projects (plain Workers and shard endpoints), an in-process dev server, and a small h11 client."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import h11
import trio

from runtime.devserver import DevServer


def wrangler_toml(name: str, main: str, classes: dict[str, str], more: str = "") -> str:
    """A Python Worker's wrangler.toml; ``classes`` maps bindings to SQLite-backed Durable Object classes.

    All the classes come in migration v1; ``more`` (TOML) follows the migration.
    """
    head = f'name = "{name}"\nmain = "{main}"\ncompatibility_date = "2026-11-01"\n'
    head += 'compatibility_flags = ["python_workers"]\n\n'
    for binding, cls in classes.items():
        head += f'[[durable_objects.bindings]]\nname = "{binding}"\nclass_name = "{cls}"\n\n'
    sqlite = ", ".join(f'"{cls}"' for cls in classes.values())
    return f'{head}[[migrations]]\ntag = "v1"\nnew_sqlite_classes = [{sqlite}]\n{more}'


TOML = wrangler_toml(
    "test",
    "src/entry.py",
    {"ECHO": "Echo"},
    '\n[[kv_namespaces]]\nbinding = "CACHE"\nid = "abc"\n\n[vars]\nGREETING = "hello "\n',
)

ENTRY = """
from urllib.parse import urlparse

from js import WebSocketPair
from workers import DurableObject, Response, WorkerEntrypoint

CONSTRUCTED = []


class Echo(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        CONSTRUCTED.append(1)

    async def fetch(self, request):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client, headers={"x-room": "e"})

    async def webSocketMessage(self, ws, message):
        ws.send(message)  # a str, or the ArrayBuffer a binary message arrives as

    async def webSocketClose(self, ws, code, reason, was_clean):
        await self.ctx.storage.put("closed", [code, reason, was_clean])

    async def webSocketError(self, ws, error):
        await self.ctx.storage.put("error", [type(error).__name__, error.name])

    async def constructed(self):
        return len(CONSTRUCTED)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path == "/echo":
            return Response(await request.bytes(), headers={"x-method": request.method})
        if path == "/raise":
            raise ValueError("boom")
        if path == "/not-a-response":
            return "oops"
        if path == "/kv":
            return Response(await self.env.CACHE.get("k"))
        if path == "/ws":
            return await self.env.ECHO.getByName("e").fetch(request)
        if path == "/var":
            return Response(self.env.GREETING + self.env.SECRET)
        if path == "/headers":
            return Response(request.headers.get("x-test") or "", headers={"set-cookie": "a=1"})
        return Response("not found", status=404)
"""


def make_project(
    root: Path, entry: str = ENTRY, toml: str = TOML, dev_vars: str | None = "SECRET=s3cret\n"
) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "wrangler.toml").write_text(toml)
    (root / "src" / "entry.py").write_text(textwrap.dedent(entry))
    if dev_vars is not None:
        (root / ".dev.vars").write_text(dev_vars)
    return root


#: The token secret of :func:`make_shard_project`'s projects.
SHARD_SECRET = "dev-secret"

#: A sim (source, for :func:`make_shard_project`) that adds up its inputs: snapshot ``{"total": n}``.
SCORE = """
class Score(SimState):
    def __init__(self):
        self.total = 0

    def apply_input(self, subscriber_id, input, now):
        self.total += input

    def tick(self, dt):
        pass

    def snapshot(self):
        return {"total": self.total}
"""

SHARD_WORKER = """\
from workers import Response, WorkerEntrypoint
from runtime.shard_objects import BackpressurePolicy, ShardObject
from shards import ShardConfig, SimState
{objects}

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("not a shard")
"""


def make_shard_project(
    root: Path, *objects: str, name: str, secret_in: Literal["[vars]", ".dev.vars"] = "[vars]"
) -> Path:
    """A project whose worker.py defines ``objects`` (sources) and serves nothing but the shard endpoint.

    The ``objects`` define the ShardObject class ``Arena``, bound as
    ``ARENA``; the module has imported ``BackpressurePolicy``,
    ``ShardObject``, ``ShardConfig`` and ``SimState`` for them. The token
    secret is :data:`SHARD_SECRET`, set in the wrangler.toml's ``[vars]`` or
    in ``.dev.vars``.
    """
    if secret_in == ".dev.vars":
        (root / ".dev.vars").write_text(f"SHARDSIM_SECRET={SHARD_SECRET}\n")
        settings = ""
    else:
        settings = f'\n[vars]\nSHARDSIM_SECRET = "{SHARD_SECRET}"\n'
    source = "\n\n".join(textwrap.dedent(o) for o in objects)
    (root / "worker.py").write_text(SHARD_WORKER.format(objects=source))
    (root / "wrangler.toml").write_text(wrangler_toml(name, "worker.py", {"ARENA": "Arena"}, settings))
    return root


@asynccontextmanager
async def running(project: Path, **kwargs: Any) -> AsyncIterator[DevServer]:
    kwargs.setdefault("state_dir", None)
    server = DevServer(project, port=0, **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        try:
            yield server
        finally:
            await server.shutdown()


class Reply:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = {k.decode().lower(): v.decode() for k, v in headers}
        self.body = body

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Client:
    """One HTTP/1.1 connection (keep-alive) to the dev server."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: list[tuple[str, str]] | None = None
    ) -> Reply:
        hdrs = [("host", "127.0.0.1"), *(headers or [])]
        if body or method in ("POST", "PUT"):
            hdrs.append(("content-length", str(len(body))))
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        data = self.conn.send(h11.Request(method=method, target=path, headers=hdrs))
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)
        status, rheaders, chunks = 0, [], []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status, rheaders = event.status_code, list(event.headers)
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Reply(status, rheaders, b"".join(chunks))
            else:
                raise AssertionError(f"unexpected {event!r}")


@asynccontextmanager
async def client(server: DevServer) -> AsyncIterator[Client]:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        yield Client(stream)


async def get(server: DevServer, path: str, method: str = "GET", body: bytes = b"") -> Reply:
    async with client(server) as c:
        return await c.request(method, path, body)


async def raw_exchange(server: DevServer, data: bytes) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        try:
            await stream.send_all(data)
        except trio.BrokenResourceError:
            return b""  # the server refused before reading it all (and reset the connection)
        chunks = []
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


async def wait_for(predicate: Any) -> None:
    """Poll ``predicate`` for up to 5 s (real sockets: nothing to wait on but time)."""
    with trio.fail_after(5):
        while not predicate():  # noqa: ASYNC110 - the server exposes no event for these counters
            await trio.sleep(0.01)
