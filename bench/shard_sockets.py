"""Shard objects over real loopback websockets, through the dev server (issue #6, (b) and (c)).

Figures, one JSON line each (``python -m bench shard_sockets``):

* **Fan-out** (b): one shard object hosting bench.core's 50-entity ``Arena``
  at 20 Hz (timer strategy, JSON frames of ~3.4 KB) with N subscribers
  (default 1,000; ``SHARDSIM_BENCH_SUBSCRIBERS``) connected through the dev
  server's shard endpoint from a separate client process. Over a window of
  ``SHARDSIM_BENCH_SECONDS`` (default 5) after a 1 s warm-up: frames the
  clients received per second (offered: N x 20), tick-to-receive latency
  p50/p99 (receive time minus the time the tick started, joined by the
  tick number every frame carries), frames the slow-subscriber policy
  skipped, tick lateness, and the server process's CPU. The same client
  code, in the same run, against a bare websockets trio server that ticks
  the same simulation at 20 Hz and sends each tick's frame (encoded once)
  to every client with a plain ``await conn.send`` loop; ``ratio`` is
  shardsim / bare. Sides alternate for ``SHARDSIM_BENCH_ROUNDS`` rounds
  (default 2); each side reports its round with the most frames delivered
  (the machine is shared; the best round is the least disturbed one), and
  the load average at the end of that round. Connecting the subscribers is
  timed too, while the shard already ticks for those connected, and the
  client process's CPU is reported next to the server's.
  The fan-out client is the bench's own (``_FanOutClient``): one thread on
  epoll over plain non-blocking sockets, doing the opening handshake itself
  (``Sec-WebSocket-Key``/``Accept``, ``Authorization: Bearer``) and parsing
  server frames by hand; it answers pings and closes, and records (tick,
  receive time) of every binary frame. A task per socket running
  websockets' parser cost the client process about as much CPU as the
  server it measures, and the two share the machine. Both sides use it.
* **Wake** (c): hibernate -> wake -> first frame. A subscriber over
  loopback; the shard is hibernated through the admin route, then the time
  from the client's action to the first frame that shows it: an input on
  the socket that stayed open (the frame whose snapshot carries the
  input), or a new subscriber connecting (its first frame). For the timer
  strategy and event-driven (``tick_rate_hz = 0``), ``SHARDSIM_BENCH_WAKE_ROUNDS``
  rounds (default 100) each, next to the same action on an awake shard.
  A woken timer shard ticks first one period after it wakes, so its
  figures include up to 50 ms of waiting for the tick.

Clock: both processes read ``time.monotonic()`` (CLOCK_MONOTONIC, one clock
for the whole machine on Linux), so receive times in the client process
and tick times in the server process compare directly. Clients offer no
extensions (the wake clients pass ``compression=None``), as the dev server
uses none.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import random
import resource
import selectors
import socket
import statistics
import struct
import tempfile
import time
from array import array
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

from runtime.devserver import DevServer
from runtime.shard_objects import ShardObject, make_token
from shards import ShardConfig, encode_frame

from ._report import report
from ._wsclient import AdminClient, ClientProcess, write_project
from .core import Arena

SUITE = "shard_sockets"
SUBSCRIBERS = int(os.environ.get("SHARDSIM_BENCH_SUBSCRIBERS", "1000"))
SECONDS = float(os.environ.get("SHARDSIM_BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("SHARDSIM_BENCH_ROUNDS", "2"))
WAKE_ROUNDS = int(os.environ.get("SHARDSIM_BENCH_WAKE_ROUNDS", "100"))
RATE = 20
WARMUP = 1.0
SECRET = "bench-secret"
#: Opening handshakes the client process runs at once.
CONNECT_CONCURRENCY = 50

# Tick number -> time.monotonic() when that tick started, for the shard being measured.
TICK_TIMES: dict[int, float] = {}
# Tick lateness (seconds after the tick was due) of the shard being measured.
LATENESS: list[float] = []


# --------------------------------------------------------------------------- shard classes


class FanOutShard(ShardObject):
    """The fan-out shard: records when each tick starts and how late it is."""

    sim = Arena
    config = ShardConfig(tick_rate_hz=RATE, max_subscribers=32_768)
    tick_strategy = "timer"

    def _run_tick(self, due: float, *args: Any, **kwargs: Any) -> None:
        start = time.monotonic()
        LATENESS.append(self._runtime.clock.now() - due)  # timer strategy: trio seconds
        super()._run_tick(due, *args, **kwargs)
        TICK_TIMES[self.shard.tick] = start

    async def stats(self) -> dict[str, int]:
        s = self.statistics()
        return {
            "ticks": s.ticks,
            "sent": s.frames_sent,
            "skipped": s.frames_skipped,
            "slow": s.slow_disconnects,
        }


class WakeTimerShard(ShardObject):
    sim = Arena
    config = ShardConfig(tick_rate_hz=RATE)
    tick_strategy = "timer"


class WakeEventShard(ShardObject):
    sim = Arena
    config = ShardConfig(tick_rate_hz=0)


WORKER = """\
from workers import Response, WorkerEntrypoint

from bench.shard_sockets import {cls} as Arena


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("shard sockets bench: connect with ?shard=")
"""


def _project(root: Path, cls: type[ShardObject]) -> Path:
    root.mkdir()
    return write_project(
        root,
        name="shard-sockets-bench",
        main="worker.py",
        source=WORKER.format(cls=cls.__name__),
        classes={"ARENA": "Arena"},
        vars={"SHARDSIM_SECRET": SECRET},
    )


# --------------------------------------------------------------------------- client process


def _raise_nofile(need: int) -> None:
    """Raise the soft descriptor limit to at least ``need`` (within the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise RuntimeError(f"{need} file descriptors needed; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _client_main(scenario: str, params: dict[str, Any], results: Any) -> None:
    """Entry point of the client process: run one scenario, put its result(s) on ``results``."""
    try:
        _raise_nofile(params.get("subscribers", 0) + 256)
        if scenario == "fan_out":
            results.put(_fan_out_client(results, **params))
        else:
            results.put(trio.run(partial(_CLIENTS[scenario], results, **params)))
    except BaseException as exc:  # report, never hang the parent
        results.put({"error": repr(exc)})


def _connect(port: int, shard: str, sid: str, token: str) -> Any:
    from websockets.trio.client import connect

    return connect(
        f"ws://127.0.0.1:{port}/?shard={shard}&sid={sid}",
        additional_headers={"Authorization": f"Bearer {token}"},
        compression=None,
        proxy=None,
        ping_interval=None,
        max_size=None,
        open_timeout=60,
    )


# The fan-out client is one thread on epoll (selectors) over plain non-blocking
# sockets, with the opening handshake and the frame parsing written out by
# hand: at 20,000 frames/s a task per socket and websockets' parser cost the
# client process about as much CPU as the server it measures (and the two
# share the machine's two cores). Both sides of the comparison use it.

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_BINARY, _OP_CLOSE, _OP_PING = 0x2, 0x8, 0x9
_READ_SIZE = 262_144

# Subscriber states.
_CONNECTING, _HANDSHAKE, _OPEN, _CLOSING, _DONE = range(5)


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (FIN set) with a payload under 126 bytes (pongs and closes)."""
    if len(payload) > 125:
        raise ValueError("control frames carry at most 125 bytes")
    key = os.urandom(4)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + key + masked


class _Subscriber:
    """One socket of the fan-out client: its state, unparsed bytes and pending writes."""

    __slots__ = ("accept", "inbox", "outbox", "sock", "state")

    def __init__(self, sock: socket.socket, accept: bytes) -> None:
        self.sock = sock
        self.accept = accept  # the Sec-WebSocket-Accept value the server must answer
        self.state = _CONNECTING
        self.inbox = b""  # received bytes not parsed yet (a partial head or frame)
        self.outbox = b""  # bytes to send once the socket is writable


class _FanOutClient:
    """Connects ``subscribers`` sockets and records (tick, receive time) of every binary frame.

    Answers pings with pongs and close frames with a close; at the end it
    closes every connection with 1000. A malformed frame or a refused
    handshake raises (the bench must not measure a broken exchange).
    """

    def __init__(self, port: int, shard: str, token: str, subscribers: int) -> None:
        self.port = port
        self.shard = shard
        self.token = token
        self.subscribers = subscribers
        self.selector = selectors.DefaultSelector()
        self.ticks = array("q")
        self.times = array("d")
        #: Close codes of connections the server closed before we were done.
        self.closes: list[int | None] = []
        self.done = False
        self.opened = 0
        self.live = 0  # sockets not closed yet
        self._rbuf = bytearray(_READ_SIZE)
        self._rview = memoryview(self._rbuf)

    # ---- connecting

    def start(self, i: int) -> None:
        """Open subscriber ``i``'s TCP connection (non-blocking) and queue its upgrade request."""
        key = base64.b64encode(os.urandom(16))
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sub = _Subscriber(sock, accept)
        sub.outbox = (
            f"GET /?shard={self.shard}&sid=s{i} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {self.token}\r\n"
            "\r\n"
        ).encode()
        err = sock.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        self.live += 1
        self.selector.register(sock, selectors.EVENT_WRITE, sub)

    def _handshake(self, sub: _Subscriber, now: float) -> None:
        head_end = sub.inbox.find(b"\r\n\r\n")
        if head_end < 0:
            if len(sub.inbox) > 65_536:
                raise RuntimeError("handshake response head too long")
            return
        head, rest = sub.inbox[:head_end], sub.inbox[head_end + 4 :]
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or status[1] != b"101":
            raise RuntimeError(f"handshake refused: {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"sec-websocket-accept") != sub.accept:
            raise RuntimeError("handshake: wrong Sec-WebSocket-Accept")
        sub.state = _OPEN
        sub.inbox = b""
        self.opened += 1
        if rest:
            self._frames(sub, rest, now)

    # ---- frames

    def _frames(self, sub: _Subscriber, data: bytes | bytearray, now: float, end: int | None = None) -> None:
        """Parse the server frames in ``data[:end]``; keep a trailing partial frame in ``sub.inbox``."""
        if end is None:
            end = len(data)
        pos = 0
        unpack = struct.unpack_from
        while end - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            if b1 & 0x80:
                raise RuntimeError("the server sent a masked frame")
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                (length,) = unpack("!H", data, start)
                start += 2
            elif length == 127:
                if end - pos < 10:
                    break
                (length,) = unpack("!Q", data, start)
                start += 8
            if end - start < length:
                break
            pos = start + length
            opcode = b0 & 0x0F
            if opcode == _OP_BINARY:
                (tick,) = unpack("!Q", data, start)
                self.ticks.append(tick)
                self.times.append(now)
            elif opcode == _OP_PING:
                self._send(sub, _client_frame(0xA, bytes(data[start:pos])))
            elif opcode == _OP_CLOSE:
                self._closed_by_server(sub, bytes(data[start:pos]))
            # Text and continuation frames carry no tick; pongs answer nothing we sent.
        sub.inbox = bytes(data[pos:end]) if pos < end else b""

    def _closed_by_server(self, sub: _Subscriber, payload: bytes) -> None:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        if sub.state == _OPEN:
            if not self.done:
                self.closes.append(code)
            # Echo the code, as RFC 6455 asks; the server then ends the TCP connection.
            self._send(sub, _client_frame(_OP_CLOSE, payload[:2]))
        sub.state = _CLOSING

    def close_all(self) -> None:
        """Start the close handshake (1000) on every open connection."""
        self.done = True
        frame = struct.pack("!H", 1000) + b"bench over"
        for key in list(self.selector.get_map().values()):
            sub: _Subscriber = key.data
            if sub.state == _OPEN:
                sub.state = _CLOSING
                self._send(sub, _client_frame(_OP_CLOSE, frame))

    # ---- I/O

    def _send(self, sub: _Subscriber, data: bytes) -> None:
        if not sub.outbox:
            try:
                sent = sub.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                return  # the connection is gone; reading will tell
            data = data[sent:]
            if not data:
                return
            self.selector.modify(sub.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, sub)
        sub.outbox += data

    def _writable(self, sub: _Subscriber) -> None:
        if sub.state == _CONNECTING:
            err = sub.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"connect: {os.strerror(err)}")
            sub.state = _HANDSHAKE
        try:
            sent = sub.sock.send(sub.outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            if sub.state == _HANDSHAKE:
                raise
            sent = len(sub.outbox)  # the connection is gone; reading will tell
        sub.outbox = sub.outbox[sent:]
        if not sub.outbox:
            self.selector.modify(sub.sock, selectors.EVENT_READ, sub)

    def _readable(self, sub: _Subscriber) -> None:
        try:
            n = sub.sock.recv_into(self._rbuf)
        except BlockingIOError:
            return
        except OSError:
            n = 0  # reset: the same as an end of stream here
        now = time.monotonic()
        if n == 0:
            if sub.state == _HANDSHAKE:
                raise RuntimeError("the server closed the connection during the opening handshake")
            if sub.state == _OPEN and not self.done:
                self.closes.append(None)  # dropped without a close frame
            self._finish(sub)
            return
        if sub.state == _HANDSHAKE:
            sub.inbox += self._rbuf[:n]
            self._handshake(sub, now)
        elif sub.inbox:
            self._frames(sub, sub.inbox + self._rview[:n], now)
        else:
            self._frames(sub, self._rbuf, now, n)  # the common case: parse in place

    def _finish(self, sub: _Subscriber) -> None:
        self.selector.unregister(sub.sock)
        sub.sock.close()
        sub.state = _DONE
        self.live -= 1

    def poll(self, timeout: float) -> None:
        """Handle whatever is ready within ``timeout`` seconds."""
        for key, mask in self.selector.select(max(timeout, 0.0)):
            sub = key.data
            if mask & selectors.EVENT_WRITE:
                self._writable(sub)
            if mask & selectors.EVENT_READ and sub.state != _DONE:
                self._readable(sub)

    def run_until(self, deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            self.poll(left)


def _fan_out_client(
    results: Any, port: int, shard: str, token: str, subscribers: int, warmup: float, seconds: float
) -> dict[str, Any]:
    """Connect ``subscribers`` sockets, report ready, record (tick, receive time) of every frame."""
    client = _FanOutClient(port, shard, token, subscribers)
    start = time.monotonic()
    deadline = start + 600
    started = 0
    while client.opened < subscribers:
        # At most CONNECT_CONCURRENCY opening handshakes at once.
        while started < subscribers and started - client.opened < CONNECT_CONCURRENCY:
            client.start(started)
            started += 1
        if time.monotonic() > deadline:
            raise TimeoutError(f"{client.opened} of {subscribers} subscribers connected in 600 s")
        client.poll(1.0)
    ready = time.monotonic()
    results.put({"ready": ready, "connect_seconds": ready - start})
    # The client's own CPU over the parent's window (same nominal times).
    client.run_until(ready + warmup)
    cpu0, t0 = time.process_time(), time.monotonic()
    client.run_until(t0 + seconds)
    cpu = (time.process_time() - cpu0) / (time.monotonic() - t0)
    client.run_until(time.monotonic() + 0.5)  # the parent's window may close a little late
    client.close_all()
    closing = time.monotonic() + 10
    while client.live and time.monotonic() < closing:
        client.poll(closing - time.monotonic())
    return {"ticks": client.ticks, "times": client.times, "closes": client.closes, "client_cpu": cpu}


async def _hibernate_when_idle(admin: AdminClient, shard: str, sockets: int) -> None:
    """Hibernate ``shard`` once only ``sockets`` of its sockets are left open and no event runs.

    (The route cuts events in flight, which production never does.) A
    socket that closed just before may still have its close event to
    deliver, which wakes the object again: hibernate until it stays so.
    """
    path = f"/__shardsim/objects/ARENA/{shard}"

    def busy(obj: Any) -> bool:
        return bool(obj["websockets"] > sockets or obj["in_flight"])

    with trio.fail_after(10):
        while True:
            # The server has no event to wait on from another process: poll.
            while busy(await admin.request("GET", path)):  # noqa: ASYNC110
                await trio.sleep(0.001)
            if (await admin.request("POST", path + "/hibernate"))["state"] == "hibernated":
                return


async def _first_binary(ws: Any) -> None:
    while type(await ws.recv()) is not bytes:
        pass


async def _input_round(ws: Any, k: int, phase: float) -> float:
    """After ``phase`` seconds, send an input marking entity 0 with ``k``; seconds until a frame shows it."""
    from shards import decode_frame

    # We come here right after a frame: without a random phase, every input
    # to a ticking shard would wait a whole period for its tick.
    await trio.sleep(phase)
    start = time.monotonic()
    await ws.send(json.dumps({"input": {"id": 0, "vx": k, "vy": 0}, "client_seq": k}))
    while True:
        message = await ws.recv()
        if type(message) is bytes and decode_frame(message, "json")[1]["entities"][0]["vx"] == k:
            return time.monotonic() - start


async def _connect_round(port: int, shard: str, sid: str, token: str) -> float:
    """Seconds from starting to connect a new subscriber to its first frame."""
    start = time.monotonic()
    async with _connect(port, shard, sid, token) as ws:
        await _first_binary(ws)
        elapsed = time.monotonic() - start
    return elapsed


async def _wake_client(results: Any, port: int, token: str, rounds: int) -> dict[str, Any]:
    """Alternate awake and just-woken rounds, for an input and for a new subscriber."""
    out: dict[str, list[float]] = {
        "input_awake": [],
        "input_woken": [],
        "connect_awake": [],
        "connect_woken": [],
    }
    rng = random.Random(6)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        admin = AdminClient(stream)
        async with _connect(port, "wake-input", "w", token) as ws:
            await _first_binary(ws)
            for k in range(1, rounds + 1):
                out["input_awake"].append(await _input_round(ws, 2 * k, rng.uniform(0, 1 / RATE)))
                await _hibernate_when_idle(admin, "wake-input", sockets=1)
                out["input_woken"].append(await _input_round(ws, 2 * k + 1, rng.uniform(0, 1 / RATE)))
        await _connect_round(port, "wake-connect", "first", token)  # creates the shard
        for k in range(rounds):
            out["connect_awake"].append(await _connect_round(port, "wake-connect", f"a{k}", token))
            await _hibernate_when_idle(admin, "wake-connect", sockets=0)
            out["connect_woken"].append(await _connect_round(port, "wake-connect", f"w{k}", token))
    return out


_CLIENTS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "wake": _wake_client,
}


# --------------------------------------------------------------------------- fan-out servers


class _BareServer:
    """websockets' own trio server: every connection joins; one task ticks Arena and sends to all."""

    def __init__(self) -> None:
        self.conns: set[Any] = set()
        self.tick_times: dict[int, float] = {}
        self.ticks = 0
        self.sent = 0
        self.port = 0

    async def run(self, *, task_status: trio.TaskStatus[_BareServer] = trio.TASK_STATUS_IGNORED) -> None:
        from websockets.trio.server import serve

        async def handler(conn: Any) -> None:
            self.conns.add(conn)
            try:
                await conn.wait_closed()
            finally:
                self.conns.discard(conn)

        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(serve, handler, 0, host="127.0.0.1", compression=None, ping_interval=None)
            )
            self.port = server.listeners[0].socket.getsockname()[1]
            nursery.start_soon(self._tick_loop)
            task_status.started(self)

    async def _tick_loop(self) -> None:
        from websockets.exceptions import ConnectionClosed

        sim = Arena()
        period = 1 / RATE
        due = trio.current_time()
        while True:
            await trio.sleep_until(due)
            start = time.monotonic()
            self.ticks += 1
            sim.tick(period)
            conns = list(self.conns)
            if conns:  # nobody to measure otherwise: spare the machine the encoding
                frame = encode_frame(self.ticks, sim.snapshot(), "json")
                self.tick_times[self.ticks] = start
                for conn in conns:
                    try:
                        await conn.send(frame)
                        self.sent += 1
                    except ConnectionClosed:
                        pass
            due = max(due + period, trio.current_time())

    async def stats(self) -> dict[str, int]:
        await trio.lowlevel.checkpoint()
        return {"ticks": self.ticks, "sent": self.sent, "skipped": 0, "slow": 0}


def _quantiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 (one sample: itself; none: 0)."""
    if len(samples) < 2:
        return (samples[0], samples[0]) if samples else (0.0, 0.0)
    return statistics.median(samples), statistics.quantiles(samples, n=100)[98]


async def _fan_out_round(
    port: int,
    shard: str,
    stats: Callable[[], Awaitable[dict[str, int]]],
    tick_times: dict[int, float],
    subscribers: int,
    seconds: float,
    warmup: float,
) -> dict[str, float]:
    """One measured window against a server already listening on ``port`` that fills ``tick_times``."""
    tick_times.clear()
    token = make_token(SECRET, "bench", admin=True, now_ms=time.time() * 1000)
    params = {
        "port": port,
        "shard": shard,
        "token": token,
        "subscribers": subscribers,
        "warmup": warmup,
        "seconds": seconds,
    }
    async with ClientProcess(_client_main, "fan_out", **params) as client:
        ready = await client.get()
        await trio.sleep(max(0.0, ready["ready"] + warmup - time.monotonic()))
        before = await stats()
        LATENESS.clear()
        w0, cpu0 = time.monotonic(), time.process_time()
        await trio.sleep(seconds)
        w1, cpu1 = time.monotonic(), time.process_time()
        after = await stats()
        lateness = list(LATENESS)
        result = await client.get()
    wall = w1 - w0
    latencies: list[float] = []
    for tick, t in zip(result["ticks"], result["times"], strict=True):
        if w0 <= t <= w1:
            started = tick_times.get(tick)
            if started is not None:
                latencies.append(t - started)
    p50, p99 = _quantiles(latencies)
    late50, late99 = _quantiles(lateness)
    return {
        "delivered_per_s": len(latencies) / wall,
        "latency_p50_ms": p50 * 1000,
        "latency_p99_ms": p99 * 1000,
        "cpu_share": 100 * (cpu1 - cpu0) / wall,
        "client_cpu_share": 100 * result["client_cpu"],
        "ticks_per_s": (after["ticks"] - before["ticks"]) / wall,
        "sent_per_s": (after["sent"] - before["sent"]) / wall,
        "skipped": after["skipped"] - before["skipped"],
        "slow_disconnects": after["slow"] - before["slow"],
        "closed_early": len(result["closes"]),
        "lateness_p50_ms": late50 * 1000,
        "lateness_p99_ms": late99 * 1000,
        "connect_per_s": subscribers / ready["connect_seconds"],
        "loadavg_1m": os.getloadavg()[0],  # the machine is shared: how busy it was
    }


async def _fan_out(root: Path, subscribers: int, seconds: float, rounds: int, warmup: float) -> None:
    _raise_nofile(subscribers + 1024)
    dev = DevServer(_project(root / "fan-out", FanOutShard), port=0, state_dir=None)
    bare = _BareServer()
    best: dict[str, dict[str, float]] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(dev.run)
        await nursery.start(bare.run)
        stub = dev.runtime.env.ARENA
        for i in range(rounds):
            for side in ("bare", "shardsim"):
                if side == "bare":
                    r = await _fan_out_round(
                        bare.port, "arena", bare.stats, bare.tick_times, subscribers, seconds, warmup
                    )
                else:
                    shard = f"arena-{i}"  # a new shard each round
                    stats = stub.getByName(shard).stats
                    r = await _fan_out_round(dev.port, shard, stats, TICK_TIMES, subscribers, seconds, warmup)
                if side not in best or r["delivered_per_s"] > best[side]["delivered_per_s"]:
                    best[side] = r
        await dev.shutdown()
        nursery.cancel_scope.cancel()
    ours, theirs = best["shardsim"], best["bare"]
    common = {
        "subscribers": subscribers,
        "rate_hz": RATE,
        "seconds": seconds,
        "rounds": rounds,
    }

    def figure(name: str, unit: str, key: str, **extra: Any) -> None:
        ratio = ours[key] / theirs[key] if theirs[key] else 0.0
        report(
            SUITE, name, ours[key], unit, bare=round(theirs[key], 3), ratio=round(ratio, 3), **extra, **common
        )

    figure(
        "fan_out_frames_delivered_per_s",
        "frames/s",
        "delivered_per_s",
        offered=subscribers * RATE,
        client_cpu_share=round(ours["client_cpu_share"], 1),
        bare_client_cpu_share=round(theirs["client_cpu_share"], 1),
        loadavg_1m=round(ours["loadavg_1m"], 2),
        bare_loadavg_1m=round(theirs["loadavg_1m"], 2),
    )
    figure("fan_out_tick_to_receive_p50", "ms", "latency_p50_ms")
    figure("fan_out_tick_to_receive_p99", "ms", "latency_p99_ms", target=50)
    figure("fan_out_server_cpu_share", "% of one core", "cpu_share")
    figure("fan_out_ticks_per_s", "ticks/s", "ticks_per_s", offered=RATE)
    figure("fan_out_connect_per_s", "subscribers/s", "connect_per_s")
    report(
        SUITE,
        "fan_out_frames_skipped_by_backpressure",
        ours["skipped"],
        "frames",
        frames_sent_per_s=round(ours["sent_per_s"], 1),
        slow_disconnects=ours["slow_disconnects"],
        closed_early=ours["closed_early"],
        **common,
    )
    report(SUITE, "fan_out_tick_lateness_p50", ours["lateness_p50_ms"], "ms", **common)
    report(SUITE, "fan_out_tick_lateness_p99", ours["lateness_p99_ms"], "ms", **common)


# --------------------------------------------------------------------------- wake


async def _wake(root: Path, rounds: int) -> None:
    for strategy, cls in (("timer", WakeTimerShard), ("event", WakeEventShard)):
        dev = DevServer(_project(root / f"wake-{strategy}", cls), port=0, state_dir=None)
        async with trio.open_nursery() as nursery:
            await nursery.start(dev.run)
            token = make_token(SECRET, "bench", admin=True, now_ms=time.time() * 1000)
            params = {"port": dev.port, "token": token, "rounds": rounds}
            async with ClientProcess(_client_main, "wake", **params) as client:
                r = await client.get()
            await dev.shutdown()
            nursery.cancel_scope.cancel()
        for action in ("input", "connect"):
            woken = _quantiles(r[f"{action}_woken"])
            awake = _quantiles(r[f"{action}_awake"])
            for i, q in enumerate(("p50", "p99")):
                report(
                    SUITE,
                    f"wake_{strategy}_{action}_to_first_frame_{q}",
                    woken[i] * 1000,
                    "ms",
                    awake=round(awake[i] * 1000, 3),
                    rounds=rounds,
                    tick_rate_hz=RATE if strategy == "timer" else 0,
                )


async def main(
    subscribers: int = SUBSCRIBERS,
    seconds: float = SECONDS,
    rounds: int = ROUNDS,
    wake_rounds: int = WAKE_ROUNDS,
    warmup: float = WARMUP,
) -> None:
    """Run both parts with the given scale (the defaults come from the environment)."""
    import logging

    logging.getLogger("shardsim").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="shardsim-bench-") as tmp:
        await _fan_out(Path(tmp), subscribers, seconds, rounds, warmup)
        await _wake(Path(tmp), wake_rounds)


def run() -> None:
    """Run the shard-socket benchmarks and print their figures."""
    trio.run(main)


if __name__ == "__main__":
    run()
