"""The websocket test client: subscribers to the dev server's shard endpoint, and handshakes by hand.

A :class:`Subscriber` checks, as each binary frame arrives, that its tick is
above the previous frame's on that connection, so a test that reads frames
through one checks "snapshots arrive in tick order" for every frame it
reads. Nothing here sleeps to wait for something: it waits for frames,
text frames or a close.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from shards import decode_frame

#: How a subscriber presents its token: an ``Authorization: Bearer`` header,
#: or (as a browser must) a ``bearer.<token>`` subprotocol.
Via = Literal["header", "subprotocol"]

#: The sample ``Sec-WebSocket-Key`` of RFC 6455, for handshakes written by hand.
SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def bearer_subprotocol(token: str) -> Subprotocol:
    """The subprotocol that carries ``token`` where a browser cannot set a header."""
    return Subprotocol("bearer." + urllib.parse.quote(token, safe=""))


def open_shard(port: int, shard: str, sid: str, token: str | None = None, *, via: Via = "header") -> connect:
    """Connect to ``?shard=<shard>&sid=<sid>`` on the dev server at ``port`` (``async with`` it).

    With a ``token``, presented ``via`` a bearer header or a bearer
    subprotocol; without one, the connection offers no credentials.
    """
    url = f"ws://127.0.0.1:{port}/?{urllib.parse.urlencode({'shard': shard, 'sid': sid})}"
    if token is None:
        return connect(url)
    if via == "header":
        return connect(url, additional_headers={"Authorization": f"Bearer {token}"})
    return connect(url, subprotocols=[bearer_subprotocol(token)])


async def next_frame(ws: ClientConnection) -> tuple[int, Any]:
    """Receive until a binary frame arrives (text frames are passed over): its tick and JSON snapshot."""
    while True:
        message = await ws.recv()
        if isinstance(message, bytes):
            return decode_frame(message, "json")


async def closed(receive: Callable[[], Awaitable[object]]) -> tuple[int, str]:
    """Call ``receive`` until the server closes the connection; its close code and reason."""
    try:
        while True:
            await receive()
    except ConnectionClosed as exc:
        close = exc.rcvd
    assert close is not None, "the connection ended without a close frame"
    return close.code, close.reason


class Subscriber:
    """One subscriber's connection: what it received, in order, with the tick order checked."""

    def __init__(self, ws: ClientConnection, sid: str) -> None:
        self.ws = ws
        self.sid = sid
        #: Ticks of the binary frames received, in order.
        self.ticks: list[int] = []
        #: Decoded snapshots, parallel to ``ticks``.
        self.snapshots: list[Any] = []
        #: Decoded text frames (acks and errors), in order.
        self.texts: list[dict[str, Any]] = []
        self._texts_read = 0

    @property
    def last(self) -> tuple[int, Any]:
        """The last frame received: ``(tick, snapshot)``."""
        return self.ticks[-1], self.snapshots[-1]

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The error text frames received so far."""
        return [t for t in self.texts if "error" in t]

    async def _receive(self) -> Literal["frame", "text"]:
        message = await self.ws.recv()
        if isinstance(message, bytes):
            tick, snapshot = decode_frame(message, "json")
            if self.ticks:
                assert tick > self.ticks[-1], f"{self.sid}: tick {tick} arrived after tick {self.ticks[-1]}"
            self.ticks.append(tick)
            self.snapshots.append(snapshot)
            return "frame"
        body = json.loads(message)
        assert isinstance(body, dict), body
        assert len(set(body) - {"client_seq"}) == 1, body  # exactly one of "ack" and "error"
        self.texts.append(body)
        return "text"

    async def frame(self, until: Callable[[int, Any], bool] | None = None) -> tuple[int, Any]:
        """Receive until a binary frame (satisfying ``until(tick, snapshot)``, if given) arrives."""
        while True:
            if await self._receive() == "frame" and (until is None or until(*self.last)):
                return self.last

    async def text(self) -> dict[str, Any]:
        """The next text frame not returned yet, receiving until it arrives (frames are recorded on the way)."""
        while len(self.texts) == self._texts_read:
            await self._receive()
        self._texts_read += 1
        return self.texts[self._texts_read - 1]

    async def send(self, input: Any, client_seq: int | None = None) -> None:
        """Send one input in the wire format."""
        message: dict[str, Any] = {"input": input}
        if client_seq is not None:
            message["client_seq"] = client_seq
        await self.ws.send(json.dumps(message))

    async def send_raw(self, message: str | bytes) -> None:
        await self.ws.send(message)

    async def closed(self) -> tuple[int, str]:
        """Receive until the server closes the connection; its close code and reason."""
        return await closed(self._receive)


@asynccontextmanager
async def subscribe(
    port: int, shard: str, sid: str, token: str, *, via: Via = "header"
) -> AsyncIterator[Subscriber]:
    """A :class:`Subscriber` to ``?shard=<shard>&sid=<sid>``, presenting ``token`` as :func:`open_shard` does."""
    async with open_shard(port, shard, sid, token, via=via) as ws:
        # A bearer subprotocol is echoed, as browsers require; a header gets none.
        assert ws.subprotocol == (bearer_subprotocol(token) if via == "subprotocol" else None)
        yield Subscriber(ws, sid)


# --------------------------------------------------------------------------- by hand


def handshake_request(path: str, *, host: str = "127.0.0.1", token: str | None = None) -> bytes:
    """An opening handshake written out by hand, with a bearer header when ``token`` is given."""
    auth = "" if token is None else f"Authorization: Bearer {token}\r\n"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
    ).encode()


async def read_response_head(stream: trio.abc.ReceiveStream) -> bytes:
    """Read the handshake response up to its blank line, a byte at a time: nothing after it is read."""
    head = b""
    while b"\r\n\r\n" not in head:
        byte = await stream.receive_some(1)
        if not byte:
            raise AssertionError(f"the connection ended in the response head: {head!r}")
        head += byte
    return head
