"""The shard endpoint's entry point: turn a websocket upgrade into a subscriber.

Contract for the dev server (and for a Worker that routes shard connections
itself)::

    response = await handle_shard_upgrade(namespace, request, resolver)

* ``namespace``: the :class:`~runtime.DurableObjectNamespace` of the shard
  binding (``env.<BINDING>``) whose class is a :class:`ShardObject`: the one
  named in the project's config, or the only one there is.
* ``request``: a :class:`~runtime.Request` for the upgrade, built from the
  handshake: its URL carries the query
  (``http://host:port/?shard=<id>&sid=<subscriber>[&format=msgpack][&delta=1]``;
  scheme and host do not matter), its headers the handshake's headers
  (``Authorization``, ``Sec-WebSocket-Protocol``). Call this only for
  websocket upgrades whose query has ``shard``; everything else goes to the
  Worker.
* ``resolver``: a :class:`TokenResolver`, by default
  ``HmacTokenResolver(secret)`` with the secret from :func:`load_secret`.

It always returns a ``101`` :class:`~runtime.Response` whose ``webSocket``
is the client end of a pair; it raises only for bugs. The caller completes
the handshake, selecting the subprotocol named in the response's
``sec-websocket-protocol`` header when there is one (the ``bearer.<token>``
protocol the client offered, echoed, as browsers require), then backs the
client end with its connection: ``peer = runtime.sockets.attach(response.webSocket,
transport)`` and feeds ``peer.message`` / ``peer.closed`` / ``peer.error``.
Frames the object sent before the attach (a refusal's close, a first
frame) go out at the attach, in order.

A refused connection still completes the handshake and is then closed by
the server (browsers show no close code for a failed handshake): 1008 for a
missing/bad ``shard``, ``sid``, ``format`` or ``delta``, a missing, forged or
expired token, or a subscription ``authorize_subscribe`` refused; 1013 when
the shard is full; 1011 when the object cannot load its shard. Shards are
created on first connect, as any Durable Object is on first use.

Invariant: the authenticated identity reaches the object only through
:data:`~runtime.shard_objects._object.PENDING_SUBSCRIPTION` (set here, read
by the object's ``fetch`` in the same task), never through a header or the
URL, so nothing a client sends can forge it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from runtime._http import Request, Response
from runtime.sockets import WebSocketPair
from shards import ShardAuth
from shards._errors import ProtocolError, Unauthorized

from ._object import PENDING_SUBSCRIPTION, Subscription
from ._protocol import CLOSE_FULL, CLOSE_INTERNAL, CLOSE_REFUSED, bearer_token, parse_subscribe_query

if TYPE_CHECKING:
    from runtime._stub import DurableObjectNamespace

    from ._tokens import TokenResolver

__all__ = ["closed_upgrade", "handle_shard_upgrade"]

log = logging.getLogger("shardsim.shard_objects")

_INTERNAL_URL = "http://shard.internal/subscribe"


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8; cut at a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= 123:
        return text
    return data[:120].decode("utf-8", "ignore") + "..."


def closed_upgrade(code: int, reason: str, protocol: str | None = None) -> Response:
    """A 101 response whose websocket the server closes with ``code`` right after the handshake.

    Args:
        code: The close code (1008, 1011, 1013, ...).
        reason: Why (cut to 123 bytes of UTF-8).
        protocol: The subprotocol to echo, if the client offered a bearer one.
    """
    pair = WebSocketPair()
    # No object owns this pair: the close waits in the client end until the
    # caller attaches its transport, then goes out first.
    pair.server.close(code, _reason(reason))
    headers = {"sec-websocket-protocol": protocol} if protocol else None
    return Response(None, status=101, headers=headers, web_socket=pair.client)


async def handle_shard_upgrade(
    namespace: DurableObjectNamespace, request: Request, resolver: TokenResolver
) -> Response:
    """Authenticate a shard connection and hand it to the shard's object.

    See the module docstring for the full contract.

    Args:
        namespace: The shard binding's namespace (``env.<BINDING>``).
        request: The upgrade request (URL with the query, handshake headers).
        resolver: Turns the bearer token into a :class:`~shards.ShardAuth`.

    Returns:
        A 101 response carrying the client end (open, or about to be closed
        with 1008/1011/1013), with ``sec-websocket-protocol`` echoed when the
        token came as a subprotocol.
    """
    token, protocol = bearer_token(request.headers)
    try:
        params = parse_subscribe_query(request.url)
    except ProtocolError as exc:
        return closed_upgrade(CLOSE_REFUSED, str(exc), protocol)
    try:
        auth = await resolver.resolve(token)
    except Unauthorized as exc:
        return closed_upgrade(CLOSE_REFUSED, f"unauthorized: {exc}", protocol)
    except Exception:
        log.exception("token resolver %r failed", resolver)
        return closed_upgrade(CLOSE_INTERNAL, "cannot check the token", protocol)
    if not isinstance(auth, ShardAuth):
        raise TypeError(f"{type(resolver).__name__}.resolve() must return a ShardAuth, got {auth!r}")
    stub = namespace.getByName(params.shard)
    handoff = PENDING_SUBSCRIPTION.set(Subscription(params, auth))
    try:
        response = await stub.fetch(Request(_INTERNAL_URL, headers={"upgrade": "websocket"}))
    except Exception as exc:
        log.warning("shard %r could not take subscriber %r: %s", params.shard, params.sid, exc)
        return closed_upgrade(CLOSE_INTERNAL, "the shard is unavailable", protocol)
    finally:
        PENDING_SUBSCRIPTION.reset(handoff)
    if response.status == 101 and response.webSocket is not None:
        if protocol:
            response.headers.set("sec-websocket-protocol", protocol)
        return response
    try:
        body = await response.json()
        reason = str(body["reason"])
    except Exception:
        reason = f"refused ({response.status})"
    if response.status == 503:
        return closed_upgrade(CLOSE_FULL, reason, protocol)
    if response.status in (400, 403):
        return closed_upgrade(CLOSE_REFUSED, reason, protocol)
    return closed_upgrade(CLOSE_INTERNAL, reason, protocol)
