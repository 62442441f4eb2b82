"""The pylon wire protocol between a shard object and its websocket subscribers.

Connecting: ``ws://host:port/?shard=<id>&sid=<subscriber>[&format=msgpack][&delta=1]``
with a bearer token (``Authorization: Bearer <token>`` or a
``bearer.<urlencoded token>`` subprotocol, echoed back in the handshake).

Server to client:

* **Binary frames** are snapshots and nothing else: 8-byte big-endian tick
  number followed by the snapshot encoded in the subscriber's format (JSON
  unless it asked for ``format=msgpack``; a delta subscriber gets the
  envelopes described in :mod:`shards._frames`). pylon's clients decode every
  binary frame this way.
* **Text frames** are JSON objects with exactly one of two keys:
  ``{"ack": {"tick": T, "last_client_seq": N}}`` after a tick applied the
  subscriber's input ``N``, or
  ``{"error": {"code": C, "message": M}, "client_seq": N}`` when a message
  was refused (``client_seq`` only when the refused message carried one).
  Error codes: :data:`ERROR_CODES`.
* **Close codes**: 1008 (policy: refused subscription, bad or missing token,
  missing or bad ``sid``/``shard``/``format``/``delta``), 1013 (the shard is
  full), 1000 (the shard finished, or the subscriber reconnected elsewhere),
  1011 (the simulation failed), 4001 (the subscriber could not keep up; see
  :mod:`runtime.shard_objects._backpressure`).

Client to server: one text or binary frame per input, UTF-8 JSON
``{"input": <any JSON value>, "client_seq": <int>}`` (``client_seq``
optional, an integer in ``[0, 2**53)``).

Invariants:

* Parsing is strict and total: anything else (other keys, duplicate keys,
  NaN or Infinity, a bool as ``client_seq``, invalid UTF-8, more than the
  size limit) raises :class:`~shards.ProtocolError` with a message naming the
  problem, and nothing is queued.
* Text frames never carry snapshots, and binary frames never carry anything
  else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

from shards import FORMATS, MAX_SEQ, SnapshotFormat
from shards._errors import ProtocolError

__all__ = [
    "BEARER_PROTOCOL_PREFIX",
    "CLOSE_FINISHED",
    "CLOSE_FULL",
    "CLOSE_INTERNAL",
    "CLOSE_REFUSED",
    "CLOSE_REPLACED",
    "CLOSE_TOO_SLOW",
    "ERROR_CODES",
    "MAX_SHARD_ID_LENGTH",
    "MAX_SID_LENGTH",
    "Inbound",
    "SubscribeParams",
    "ack_message",
    "bearer_token",
    "error_message",
    "message_too_large",
    "parse_inbound",
    "parse_subscribe_query",
]

#: A refused subscription, a bad or missing token, bad query parameters.
CLOSE_REFUSED: Final = 1008
#: The shard has ``max_subscribers`` subscribers already.
CLOSE_FULL: Final = 1013
#: The shard finished (after its last frame).
CLOSE_FINISHED: Final = 1000
#: The same subscriber id connected again; the old connection is closed.
CLOSE_REPLACED: Final = 1000
#: The simulation raised, or the object could not load the shard.
CLOSE_INTERNAL: Final = 1011
#: The subscriber's connection stayed backed up; it may reconnect.
CLOSE_TOO_SLOW: Final = 4001

#: ``error.code`` values of text error frames.
ERROR_CODES: Final = frozenset(
    {
        "malformed",  # not the wire format (ProtocolError)
        "too_large",  # over the size limit
        "invalid",  # the shard refused the value (not encodable, bad client_seq)
        "unauthorized",  # authorize_input said no
        "queue_full",  # the shard's input queue is full
        "not_subscribed",  # this socket's subscriber is not attached (any more)
        "stopped",  # the shard finished or was stopped
        "failed",  # the simulation failed
    }
)

_MESSAGE_KEYS: Final = frozenset({"input", "client_seq"})
#: Longest subscriber id: it is the socket's tag (production: 256 characters).
MAX_SID_LENGTH: Final = 256
#: Longest shard id accepted on the endpoint.
MAX_SHARD_ID_LENGTH: Final = 512


@dataclass(frozen=True, slots=True)
class Inbound:
    """One parsed input message: the input value and the optional client sequence number."""

    input: Any
    client_seq: int | None


def _refuse(message: str) -> NoReturn:
    raise ProtocolError(message)


def _no_constants(name: str) -> NoReturn:
    _refuse(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            _refuse(f"duplicate key {key!r}")
        out[key] = value
    return out


_DECODER: Final = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_no_duplicates)


def message_too_large(message: str | bytes, max_bytes: int) -> bool:
    """Whether ``message`` is over ``max_bytes`` (UTF-8 bytes for text)."""
    if isinstance(message, bytes):
        return len(message) > max_bytes
    # A character is at most 4 bytes of UTF-8: skip the encode when it cannot be over.
    return len(message) * 4 > max_bytes and len(message.encode("utf-8", "surrogatepass")) > max_bytes


def parse_inbound(message: str | bytes, *, max_bytes: int) -> Inbound:
    """Parse one websocket message from a subscriber, strictly.

    Args:
        message: The frame: ``str`` for text, ``bytes`` for binary.
        max_bytes: Largest message accepted, in bytes (UTF-8 for text).

    Returns:
        The input and its client sequence number.

    Raises:
        ProtocolError: the message is not ``{"input": ..., "client_seq": n}``
            as described in the module docstring; the message says why.
    """
    if isinstance(message, str | bytes) and message_too_large(message, max_bytes):
        _refuse(f"message is over the limit of {max_bytes} bytes")
    if isinstance(message, bytes):
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            _refuse("binary message is not UTF-8 JSON")
    elif isinstance(message, str):
        text = message
    else:
        _refuse(f"message must be text or binary, got {type(message).__name__}")
    try:
        value = _DECODER.decode(text)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        _refuse(f"message is not JSON ({exc})")
    if not isinstance(value, dict):
        _refuse(
            f'message must be a JSON object {{"input": ..., "client_seq": n}}, got {type(value).__name__}'
        )
    extra = sorted(set(value) - _MESSAGE_KEYS)
    if extra:
        _refuse(f"unknown key(s) {', '.join(map(repr, extra))}; expected 'input' and optional 'client_seq'")
    if "input" not in value:
        _refuse("missing key 'input'")
    seq = value.get("client_seq")
    if seq is not None and (type(seq) is not int or not 0 <= seq <= MAX_SEQ):
        _refuse(f"client_seq must be an integer in [0, {MAX_SEQ}], got {seq!r}")
    return Inbound(value["input"], seq)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def error_message(code: str, message: str, client_seq: int | None = None) -> str:
    """The text frame for a refused message (see the module docstring).

    Raises:
        ValueError: ``code`` is not one of :data:`ERROR_CODES` (a bug here).
    """
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}")
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if client_seq is not None:
        body["client_seq"] = client_seq
    return _dumps(body)


def ack_message(tick: int, last_client_seq: int) -> str:
    """The text frame acknowledging the subscriber's inputs up to ``last_client_seq`` as of ``tick``."""
    return _dumps({"ack": {"tick": tick, "last_client_seq": last_client_seq}})


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscribeParams:
    """What a connect URL asks for.

    Attributes:
        shard: The shard id (``?shard=``).
        sid: The subscriber id (``&sid=``).
        format: ``"json"`` or ``"msgpack"``; None means the shard's default.
        delta: Delta envelopes instead of full snapshots (``&delta=1``).
    """

    shard: str
    sid: str
    format: SnapshotFormat | None = None
    delta: bool = False


_TRUE: Final = frozenset({"1", "true", "yes"})
_FALSE: Final = frozenset({"0", "false", "no", ""})


def parse_subscribe_query(url: str) -> SubscribeParams:
    """Read ``shard``, ``sid``, ``format`` and ``delta`` from a connect URL.

    Raises:
        ProtocolError: a parameter is missing, repeated, empty, too long,
            unknown (``format``) or not a boolean (``delta``).
    """
    params: dict[str, str] = {}
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key in params:
            _refuse(f"query parameter {key!r} is repeated")
        params[key] = value
    shard = params.get("shard")
    if not shard:
        _refuse("missing shard id (?shard=)")
    if len(shard) > MAX_SHARD_ID_LENGTH:
        _refuse(f"shard id is longer than {MAX_SHARD_ID_LENGTH} characters")
    sid = params.get("sid")
    if not sid:
        _refuse("missing subscriber id (&sid=)")
    if len(sid) > MAX_SID_LENGTH:
        _refuse(f"subscriber id is longer than {MAX_SID_LENGTH} characters")
    fmt = params.get("format")
    if fmt is not None and fmt not in FORMATS:
        _refuse(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    delta_text = params.get("delta", "").lower()
    if delta_text not in _TRUE and delta_text not in _FALSE:
        _refuse(f"delta must be 1 or 0, got {params['delta']!r}")
    return SubscribeParams(shard=shard, sid=sid, format=fmt, delta=delta_text in _TRUE)


#: The subprotocol prefix that carries a token (browsers cannot set headers on websockets).
BEARER_PROTOCOL_PREFIX: Final = "bearer."


def bearer_token(headers: Mapping[str, str] | Any) -> tuple[str | None, str | None]:
    """Find the bearer token of a connect request.

    Args:
        headers: Anything with ``get(name) -> str | None`` and case-insensitive
            names (a :class:`~runtime.Headers`).

    Returns:
        ``(token, protocol)``: the token (None if there is none) and the
        subprotocol to echo in the 101 response (None unless the token came
        as a ``bearer.<urlencoded token>`` subprotocol). The ``Authorization``
        header wins when both are present; the subprotocol is still echoed.
    """
    token: str | None = None
    echo: str | None = None
    offered = headers.get("sec-websocket-protocol")
    if offered:
        for item in offered.split(","):
            item = item.strip()
            if item.lower().startswith(BEARER_PROTOCOL_PREFIX):
                echo = item
                token = unquote(item[len(BEARER_PROTOCOL_PREFIX) :]) or None
                break
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            token = value.strip()
    return token, echo
