"""``fetch()`` from Worker code: HTTP/1.1 to loopback addresses, refused elsewhere.

A Worker under ``shardsim dev`` may call services running on the same
machine (another dev server, a local API); shardsim does not reach the
internet on its behalf, so a URL whose host is not a loopback address is
refused with an error that says so. The request and response are the
runtime's ``Request`` / ``Response`` (what JavaScript's ``fetch`` takes and
gives), over one connection per request.

Invariants:

* Only ``http:`` URLs whose host is ``localhost``, ``127.0.0.0/8`` or
  ``::1`` are fetched; anything else raises :class:`NotEmulatedError`
  before a socket is opened.
* Inside a Durable Object, a fetch is an outbound call: it passes the
  object's output gate first (it waits for the writes made before it).
* The whole exchange is bounded by :data:`FETCH_TIMEOUT` seconds of the
  runtime clock and by :data:`MAX_RESPONSE_BYTES`.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

import h11
import trio

from runtime._core import outbound_gate
from runtime._http import Request, Response

from ._errors import NotEmulatedError

__all__ = ["FETCH_TIMEOUT", "MAX_RESPONSE_BYTES", "loopback_fetch"]

FETCH_TIMEOUT: Final = 30.0
MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def loopback_fetch(request: Request) -> Response:
    """Send ``request`` to its loopback URL and return the response.

    Raises:
        NotEmulatedError: the URL is not ``http:`` to a loopback host.
        OSError: the connection failed or the response was malformed or too large.
        trio.TooSlowError: no complete response within :data:`FETCH_TIMEOUT`.
    """
    parts = urlsplit(request.url)
    host = parts.hostname or ""
    if parts.scheme != "http" or not _loopback(host):
        raise NotEmulatedError(
            f"fetch({request.url}): shardsim's fetch reaches only http:// URLs on this machine "
            "(localhost, 127.0.0.1, ::1); it does not call the internet on a Worker's behalf"
        )
    gate = outbound_gate()
    if gate is not None:
        await gate
    port = parts.port or 80
    body = await request.bytes() if not request.body_used else b""
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    headers = [(k, v) for k, v in request.headers.entries()]
    if not any(k.lower() == "host" for k, _ in headers):
        headers.append(("host", parts.netloc))
    headers.append(("connection", "close"))
    if body:
        headers.append(("content-length", str(len(body))))
    with trio.move_on_after(FETCH_TIMEOUT) as deadline:
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            data = conn.send(h11.Request(method=request.method, target=target, headers=headers))
            if body:
                data += conn.send(h11.Data(data=body))
            data += conn.send(h11.EndOfMessage())
            await stream.send_all(data)
            status = 0
            reason = ""
            response_headers: list[tuple[str, str]] = []
            chunks: list[bytes] = []
            size = 0
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    raise OSError(
                        f"fetch({request.url}): the response is not valid HTTP/1.1 ({exc})"
                    ) from exc
                if event is h11.NEED_DATA:
                    received = await stream.receive_some(65536)
                    if not received and not status:
                        raise OSError(
                            f"fetch({request.url}): the server closed the connection without a response"
                        )
                    conn.receive_data(received)
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    reason = event.reason.decode("latin-1")
                    response_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > MAX_RESPONSE_BYTES:
                        raise OSError(
                            f"fetch({request.url}): the response is over {MAX_RESPONSE_BYTES} bytes"
                        )
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
    if deadline.cancelled_caught:
        raise trio.TooSlowError(
            f"fetch({request.url}): no complete response within {FETCH_TIMEOUT:g} seconds"
        )
    content = b"".join(chunks)
    null_body = status in (101, 204, 205, 304)
    response = Response(
        None if null_body else content, status=status, status_text=reason, headers=response_headers
    )
    response._url = request.url  # what production's Response.url gives for a fetched response
    return response
