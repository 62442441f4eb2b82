"""Websocket benchmarks: the dev server against a bare websockets server, in the same run.

Figures, one JSON line each (``ratio`` = dev server / bare; target >= 0.8):

* Echo through one object: messages/s, 10 sockets on one Durable Object
  whose ``webSocketMessage`` sends each message back, against a bare
  websockets trio server doing ``await conn.send(message)``.
* Broadcast from one object to 100 and to 1,000 sockets: deliveries/s.
  "burst": one message makes the object send many frames to every socket
  with ``ws.send``; "one_frame_per_event": each message makes it send one
  frame to every socket (a chat line). The bare server runs the plain
  ``for frame: for conn: await conn.send(frame)`` loop for the same frames.
  The dev server writes each socket's queued frames with one ``send_all``;
  the bare loop makes one per frame, which is why bursts favour us.
* Hibernate -> wake latency with a socket attached: the object is
  hibernated through the admin route, then a message is echoed (the
  constructor runs again); p50/p99, next to the round trip of an awake object.

Clients run in a separate process (multiprocessing, spawn) so the server
process measures only the server; both servers use ``compression=None``.
Run with ``python -m bench websockets``. ``SHARDSIM_BENCH_SCALE`` (default
1.0) scales message counts.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trio.testing

from ._report import report
from ._wsclient import AdminClient, ClientProcess, write_project

SUITE = "websockets"
SCALE = float(os.environ.get("SHARDSIM_BENCH_SCALE", "1.0"))
FRAME = '{"type":"message","who":"alice","text":"hello everyone, this is a chat line"}'
ECHO_SOCKETS = 10
#: Alternating bare/dev rounds per figure; each side reports its best (the
#: machine is shared, so the best round is the least disturbed one).
ROUNDS = 3

ENTRY = f"""
from urllib.parse import urlparse

from js import WebSocketPair
from workers import DurableObject, Response, WorkerEntrypoint

FRAME = {FRAME!r}


class Echo(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        ws.send(message)


class Hub(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        server.send("ready")
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        sockets = self.ctx.getWebSockets()
        for _ in range(int(message.split()[1])):
            for s in sockets:
                s.send(FRAME)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        ns = self.env.ECHO if path.startswith("/echo") else self.env.HUB
        return await ns.getByName(path).fetch(request)
"""


def _n(base: int) -> int:
    return max(10, int(base * SCALE))


# --------------------------------------------------------------------------- client process


def _client_main(scenario: str, params: dict[str, Any], results: Any) -> None:
    """Entry point of the client process: run one scenario, put its result on ``results``."""
    try:
        results.put(trio.run(partial(_CLIENTS[scenario], **params)))
    except BaseException as exc:  # report, never hang the parent
        results.put({"error": repr(exc)})


async def _client_echo(port: int, path: str, sockets: int, messages: int) -> dict[str, Any]:
    from websockets.trio.client import connect

    async with AsyncExitStack() as stack:
        conns = [
            await stack.enter_async_context(connect(f"ws://127.0.0.1:{port}{path}", compression=None))
            for _ in range(sockets)
        ]
        return await _echo(conns, messages)


async def _echo(conns: list[Any], messages: int) -> dict[str, Any]:
    # Warm up each connection (and the object).
    for c in conns:
        await c.send(FRAME)
        await c.recv()
    start = time.perf_counter()

    async def one(conn: Any) -> None:
        async def sender() -> None:
            for _ in range(messages):
                await conn.send(FRAME)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            for _ in range(messages):
                await conn.recv()

    async with trio.open_nursery() as nursery:
        for c in conns:
            nursery.start_soon(one, c)
    elapsed = time.perf_counter() - start
    return {"messages": len(conns) * messages, "elapsed": elapsed}


async def _client_broadcast(port: int, path: str, sockets: int, frames: int, rounds: int) -> dict[str, Any]:
    from websockets.trio.client import connect

    async with AsyncExitStack() as stack:
        conns: list[Any] = []
        for _ in range(sockets):
            url = f"ws://127.0.0.1:{port}{path}"
            conn = await stack.enter_async_context(connect(url, compression=None, max_queue=None))
            conns.append(conn)
            assert await conn.recv() == "ready"
        return await _broadcast(conns, frames, rounds)


async def _broadcast(conns: list[Any], frames: int, rounds: int) -> dict[str, Any]:
    done: list[float] = []

    async def receive(conn: Any) -> None:
        for _ in range(frames * rounds):
            await conn.recv()
        done.append(time.perf_counter())

    async with trio.open_nursery() as nursery:
        for c in conns:
            nursery.start_soon(receive, c)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for _ in range(rounds):
            await conns[0].send(f"go {frames}")
    elapsed = max(done) - start
    return {"deliveries": len(conns) * frames * rounds, "elapsed": elapsed}


async def _client_wake(port: int, rounds: int) -> dict[str, Any]:
    from websockets.trio.client import connect

    stream = await trio.open_tcp_stream("127.0.0.1", port)
    admin = AdminClient(stream)
    async with stream, connect(f"ws://127.0.0.1:{port}/echo-wake", compression=None) as ws:
        awake: list[float] = []
        woken: list[float] = []
        for _ in range(rounds):
            start = time.perf_counter()
            await ws.send("ping")
            await ws.recv()
            awake.append(time.perf_counter() - start)
            await admin.hibernate("/__shardsim/objects/ECHO/%2Fecho-wake")
            start = time.perf_counter()
            await ws.send("ping")
            await ws.recv()
            woken.append(time.perf_counter() - start)
    return {"awake": awake, "woken": woken}


_CLIENTS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "echo": _client_echo,
    "broadcast": _client_broadcast,
    "wake": _client_wake,
}


# --------------------------------------------------------------------------- server side


async def _run_client(scenario: str, port: int, **params: Any) -> dict[str, Any]:
    async with ClientProcess(_client_main, scenario, port=port, **params) as client:
        return await client.get()


async def _bare_server(nursery: trio.Nursery) -> Any:
    """websockets' own trio server: echo on /echo*, the plain broadcast loop otherwise."""
    from websockets.trio.server import serve

    hubs: dict[str, list[Any]] = {}

    async def handler(conn: Any) -> None:
        path = conn.request.path
        if path.startswith("/echo"):
            async for message in conn:
                await conn.send(message)
            return
        members = hubs.setdefault(path, [])
        members.append(conn)
        await conn.send("ready")
        try:
            async for message in conn:
                for _ in range(int(message.split()[1])):
                    for member in members:
                        await member.send(FRAME)
        finally:
            members.remove(conn)

    return await nursery.start(
        partial(
            serve, handler, 0, host="127.0.0.1", compression=None, max_size=32 * 1024 * 1024, max_queue=None
        )
    )


async def _dev_server(nursery: trio.Nursery, root: Path) -> Any:
    from runtime.devserver import DevServer

    classes = {"ECHO": "Echo", "HUB": "Hub"}
    write_project(root, name="bench", main="src/entry.py", source=textwrap.dedent(ENTRY), classes=classes)
    server = DevServer(root, port=0, state_dir=None, runtime_config={"hibernate_after": 3600.0})
    await nursery.start(server.run)
    return server


def _figure(name: str, unit: str, ours: float, bare: float, **extra: Any) -> None:
    report(SUITE, name, ours, unit, bare=round(bare, 1), ratio=round(ours / bare, 3), **extra)


async def _main() -> None:
    import logging

    logging.getLogger("shardsim").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        async with trio.open_nursery() as nursery:
            dev = await _dev_server(nursery, Path(tmp))
            bare = await _bare_server(nursery)
            bare_port = bare.listeners[0].socket.getsockname()[1]

            messages = _n(2000)
            rates: dict[str, list[float]] = {}
            for label, port in ROUNDS * (("bare", bare_port), ("dev", dev.port)):
                r = await _run_client("echo", port, path="/echo", sockets=ECHO_SOCKETS, messages=messages)
                rates.setdefault(label, []).append(r["messages"] / r["elapsed"])
            _figure(
                "echo_one_object",
                "messages/s",
                max(rates["dev"]),
                max(rates["bare"]),
                sockets=ECHO_SOCKETS,
                messages=ECHO_SOCKETS * messages,
            )

            # frames per event x events: a burst from one handler, then one frame per event (a chat line).
            for sockets, frames, rounds in (
                (100, _n(200), 1),
                (1000, _n(20), 1),
                (100, 1, _n(200)),
                (1000, 1, _n(20)),
            ):
                rates = {}
                for i, (label, port) in enumerate(ROUNDS * (("bare", bare_port), ("dev", dev.port))):
                    r = await _run_client(
                        "broadcast",
                        port,
                        path=f"/hub-{sockets}-{frames}-{i}",
                        sockets=sockets,
                        frames=frames,
                        rounds=rounds,
                    )
                    rates.setdefault(label, []).append(r["deliveries"] / r["elapsed"])
                shape = "burst" if frames > 1 else "one_frame_per_event"
                _figure(
                    f"broadcast_{sockets}_sockets_{shape}",
                    "deliveries/s",
                    max(rates["dev"]),
                    max(rates["bare"]),
                    frames_per_event=frames,
                    events=rounds,
                )

            r = await _run_client("wake", dev.port, rounds=_n(200))
            awake = sorted(r["awake"])
            woken = sorted(r["woken"])
            for label, values in (("awake_round_trip", awake), ("hibernate_wake_round_trip", woken)):
                report(
                    SUITE,
                    f"{label}_p50",
                    statistics.median(values) * 1000,
                    "ms",
                    p99=round(values[int(len(values) * 0.99) - 1] * 1000, 3),
                    rounds=len(values),
                )
            await dev.shutdown()
            await bare.aclose()
            nursery.cancel_scope.cancel()


def run() -> None:
    """Run the websocket benchmarks and print their figures."""
    trio.run(_main)
