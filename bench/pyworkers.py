"""What the Python Workers boundary costs: Worker code (workers/js/pyodide) against the runtime's own classes.

Worker code reaches storage and other objects through the SDK's wrappers and
Pyodide's conversions (``runtime.pyworkers``); the runtime's native classes
call the runtime directly. Same work, side by side in one run, sides
alternated (``ROUNDS`` rounds each, best of each side reported):

* RPC round trips/s to one object that increments a stored counter
  (``ratio`` = Worker code / native).
* Storage operations/s inside one handler: ``get`` + ``put`` pairs on one key.
* SQL: ``exec`` of a one-row INSERT inside one handler, rows/s.
* A ``webSocketMessage`` handler that echoes with ``ws.send``: messages/s
  through the runtime's sockets (no network), text and binary.
* One handler sending 100 frames to each of 100 sockets from
  ``ctx.getWebSockets()`` (a broadcast): deliveries/s.

Run with ``python -m bench pyworkers``; ``SHARDSIM_BENCH_SCALE`` (default 1.0)
scales the iteration counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from runtime import DurableObject, RuntimeConfig, open_runtime, pyworkers
from runtime.sockets import WebSocketPair as NativePair, attach

from ._report import report

SUITE = "pyworkers"
SCALE = float(os.environ.get("SHARDSIM_BENCH_SCALE", "1.0"))
ROUNDS = 3
FRAME = '{"type":"message","who":"alice","text":"hello everyone, this is a chat line"}'
BROADCAST_SOCKETS = 100
BROADCAST_FRAMES = 100

with pyworkers.installed():
    from js import WebSocketPair  # type: ignore[import-not-found]
    from workers import DurableObject as WorkerObject, Response  # type: ignore[import-not-found]


def _n(base: int) -> int:
    return max(10, int(base * SCALE))


class NativeCounter(DurableObject):
    async def increment(self, by: int) -> int:
        n = (await self.ctx.storage.get("n") or 0) + by
        self.ctx.storage.put("n", n)
        return n

    async def storage_ops(self, count: int) -> int:
        storage = self.ctx.storage
        for i in range(count):
            await storage.get("k")
            storage.put("k", i)
        return count

    async def sql_rows(self, count: int) -> int:
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS t (a INTEGER, b TEXT)")
        for i in range(count):
            sql.exec("INSERT INTO t VALUES (?, ?)", i, "row")
        return count

    async def fetch(self, request: Any) -> Any:
        from runtime import Response as NativeResponse

        pair = NativePair()
        self.ctx.acceptWebSocket(pair.server)
        return NativeResponse(None, status=101, web_socket=pair.client)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:
        if message == "broadcast":
            sockets = self.ctx.getWebSockets()
            for _ in range(BROADCAST_FRAMES):
                for s in sockets:
                    s.send(FRAME)
            return
        ws.send(message)


class WorkerCounter(WorkerObject):  # type: ignore[misc]
    async def increment(self, by):
        n = (await self.ctx.storage.get("n") or 0) + by
        await self.ctx.storage.put("n", n)
        return n

    async def storage_ops(self, count):
        storage = self.ctx.storage
        for i in range(count):
            await storage.get("k")
            await storage.put("k", i)
        return count

    async def sql_rows(self, count):
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS t (a INTEGER, b TEXT)")
        for i in range(count):
            sql.exec("INSERT INTO t VALUES (?, ?)", i, "row")
        return count

    async def fetch(self, request):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        if message == "broadcast":
            sockets = self.ctx.getWebSockets()
            for _ in range(BROADCAST_FRAMES):
                for s in sockets:
                    s.send(FRAME)
            return
        # A binary message arrives as an ArrayBuffer proxy, which ws.send takes back as it is.
        ws.send(message)


class _Sink:
    """A transport that takes every frame and counts it (what the dev server's connection would send)."""

    def __init__(self) -> None:
        self.frames = 0
        self.done = trio.Event()
        self.expect = 0

    def send_nowait(self, message: str | bytes) -> None:
        self.frames += 1
        if self.frames >= self.expect:
            self.done.set()

    def close_nowait(self, code: int, reason: str) -> None:
        pass


async def _alternate(name: str, unit: str, measure: Callable[[str], Awaitable[float]], **extra: Any) -> None:
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for side in ("native", "workers"):
            best[side] = max(best.get(side, 0.0), await measure(side))
    report(
        SUITE,
        name,
        best["workers"],
        unit,
        native=round(best["native"], 1),
        ratio=round(best["workers"] / best["native"], 3),
        **extra,
    )


async def _main() -> None:
    cfg = RuntimeConfig(hibernate_after=3600)
    async with open_runtime(objects={"N": NativeCounter, "W": WorkerCounter}, config=cfg, seed=1) as rt:
        stubs = {"native": rt.env.N.getByName("one"), "workers": rt.env.W.getByName("one")}
        for stub in stubs.values():
            await stub.increment(1)

        async def rpc(side: str) -> float:
            stub = stubs[side]
            n = _n(3000)
            start = time.perf_counter()
            for _ in range(n):
                await stub.increment(1)
            return n / (time.perf_counter() - start)

        await _alternate("rpc_increment_sequential_one_object", "calls/s", rpc)

        async def storage(side: str) -> float:
            n = _n(20000)
            start = time.perf_counter()
            await stubs[side].storage_ops(n)
            return n / (time.perf_counter() - start)

        await _alternate("storage_get_put_pairs_in_one_handler", "pairs/s", storage)

        async def sql(side: str) -> float:
            n = _n(20000)
            start = time.perf_counter()
            await stubs[side].sql_rows(n)
            return n / (time.perf_counter() - start)

        await _alternate("sql_insert_in_one_handler", "rows/s", sql)

        for kind, message in (("text", "x" * 64), ("binary", b"x" * 64)):

            async def echo(side: str, message: str | bytes = message) -> float:
                response = await stubs[side].fetch("http://do/ws")
                sink = _Sink()
                client = attach(response.webSocket, sink)
                n = _n(10000)
                sink.expect = n
                start = time.perf_counter()
                for _ in range(n):
                    await client.message(message)
                await sink.done.wait()
                elapsed = time.perf_counter() - start
                await client.closed(1000, "", True)
                return n / elapsed

            await _alternate(f"websocket_echo_{kind}", "messages/s", echo)

        async def broadcast(side: str) -> float:
            stub = rt.env.N.getByName("hub") if side == "native" else rt.env.W.getByName("hub")
            sinks, clients = [], []
            for _ in range(BROADCAST_SOCKETS):
                response = await stub.fetch("http://do/ws")
                sink = _Sink()
                sink.expect = BROADCAST_FRAMES
                clients.append(attach(response.webSocket, sink))
                sinks.append(sink)
            start = time.perf_counter()
            await clients[0].message("broadcast")
            for sink in sinks:
                await sink.done.wait()
            elapsed = time.perf_counter() - start
            for client in clients:
                await client.closed(1000, "", True)
            return BROADCAST_SOCKETS * BROADCAST_FRAMES / elapsed

        await _alternate(
            "websocket_broadcast_from_one_handler",
            "deliveries/s",
            broadcast,
            sockets=BROADCAST_SOCKETS,
            frames_per_socket=BROADCAST_FRAMES,
        )


def run() -> None:
    """Run the Python Workers boundary benchmarks and print their figures."""
    trio.run(_main)
