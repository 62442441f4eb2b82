"""The wire protocol's parsers and builders, and the slow-subscriber policy (pure)."""

from __future__ import annotations

import json

import pytest

from runtime import Headers
from runtime.shard_objects import (
    BackpressurePolicy,
    Inbound,
    ProtocolError,
    SubscribeParams,
    ack_message,
    bearer_token,
    error_message,
    parse_inbound,
    parse_subscribe_query,
)
from runtime.shard_objects._backpressure import Backpressure, Decision


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"input": {"dx": 1}, "client_seq": 3}', Inbound({"dx": 1}, 3)),
        ('{"input": null}', Inbound(None, None)),
        (b'{"client_seq": 0, "input": [1, 2]}', Inbound([1, 2], 0)),
        ('{"input": "é", "client_seq": null}', Inbound("é", None)),
    ],
)
def test_parse_inbound_accepts_the_wire_format(message, expected) -> None:
    assert parse_inbound(message, max_bytes=1000) == expected


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ("1", "must be a JSON object"),
        ('{"input": 1, "seq": 2}', "unknown key"),
        ('{"client_seq": 2}', "missing key 'input'"),
        ('{"input": Infinity}', "Infinity is not valid JSON"),
        ('{"input": {"a": 1, "a": 2}}', "duplicate key 'a'"),
        ('{"input": 1, "client_seq": 1.0}', "client_seq must be an integer"),
        ('{"input": 1, "client_seq": 9007199254740992}', "client_seq must be an integer"),
        (b"\xc3\x28", "not UTF-8"),
        ('{"input": "' + "x" * 100 + '"}', "over the limit"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_parse_inbound_refuses_everything_else(message, match) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_inbound(message, max_bytes=100 if "x" in str(message) else 1_000_000)


def test_parse_inbound_refuses_non_messages() -> None:
    with pytest.raises(ProtocolError, match="text or binary"):
        parse_inbound(42, max_bytes=10)  # type: ignore[arg-type]


def test_text_frames() -> None:
    assert json.loads(ack_message(5, 2)) == {"ack": {"tick": 5, "last_client_seq": 2}}
    assert json.loads(error_message("malformed", "bad")) == {"error": {"code": "malformed", "message": "bad"}}
    assert json.loads(error_message("queue_full", "x", 4))["client_seq"] == 4
    with pytest.raises(ValueError, match="unknown error code"):
        error_message("oops", "x")


def test_subscribe_query() -> None:
    assert parse_subscribe_query("http://h/?shard=a%20b&sid=al%26ice") == SubscribeParams(
        shard="a b", sid="al&ice"
    )
    assert parse_subscribe_query("http://h/?shard=a&sid=b&format=msgpack&delta=1") == SubscribeParams(
        shard="a", sid="b", format="msgpack", delta=True
    )
    assert not parse_subscribe_query("http://h/?shard=a&sid=b&delta=0").delta
    for url, match in [
        ("http://h/?sid=b", "missing shard id"),
        ("http://h/?shard=a", "missing subscriber id"),
        ("http://h/?shard=a&sid=", "missing subscriber id"),
        ("http://h/?shard=a&sid=b&sid=c", "repeated"),
        ("http://h/?shard=a&sid=" + "x" * 257, "longer than 256"),
        ("http://h/?shard=" + "x" * 513 + "&sid=b", "longer than 512"),
    ]:
        with pytest.raises(ProtocolError, match=match):
            parse_subscribe_query(url)


def test_bearer_token_sources() -> None:
    assert bearer_token(Headers({"authorization": "Bearer abc"})) == ("abc", None)
    assert bearer_token(Headers({"authorization": "Basic abc"})) == (None, None)
    assert bearer_token(Headers({"sec-websocket-protocol": "chat, bearer.a%2Eb"})) == ("a.b", "bearer.a%2Eb")
    # the header wins; the offered protocol is still echoed
    assert bearer_token(Headers({"authorization": "Bearer h", "sec-websocket-protocol": "bearer.p"})) == (
        "h",
        "bearer.p",
    )
    assert bearer_token(Headers()) == (None, None)


def test_backpressure_policy() -> None:
    bp = Backpressure(BackpressurePolicy(high_water_bytes=10, stuck_after=1.0))
    assert bp.decide("a", None, 0.0) is Decision.SEND
    assert bp.decide("a", 10, 0.0) is Decision.SEND
    assert bp.decide("a", 11, 0.0) is Decision.SKIP
    assert bp.backed_up == 1
    assert bp.decide("a", 11, 0.5) is Decision.SKIP
    assert bp.decide("a", 0, 0.6) is Decision.SEND  # drained: the clock restarts
    assert bp.decide("a", 11, 0.7) is Decision.SKIP
    assert bp.decide("a", 11, 1.7) is Decision.DISCONNECT
    assert bp.backed_up == 0
    bp.decide("b", 11, 0.0)
    bp.forget("b")
    assert bp.backed_up == 0
    for bad in [{"high_water_bytes": -1}, {"stuck_after": -1}, {"stuck_after": float("nan")}]:
        with pytest.raises(ValueError, match="must be"):
            BackpressurePolicy(**bad)  # type: ignore[arg-type]
