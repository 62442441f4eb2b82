"""Frames: header layout, strict JSON, msgpack, and the delta format."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, strategies as st

from shards import (
    FRAME_HEADER_SIZE,
    SnapshotCorrupt,
    SnapshotError,
    apply_delta,
    decode_frame,
    encode_frame,
    make_delta,
)
from shards._frames import decode_snapshot, encode_snapshot


def test_frame_is_big_endian_tick_then_compact_json() -> None:
    frame = encode_frame(258, {"a": [1, 2.5, None, True], "s": "é"}, "json")
    assert frame[:FRAME_HEADER_SIZE] == b"\x00\x00\x00\x00\x00\x00\x01\x02"
    assert frame[FRAME_HEADER_SIZE:] == '{"a":[1,2.5,null,true],"s":"é"}'.encode()


def test_frame_msgpack_payload_is_plain_msgpack() -> None:
    frame = encode_frame(1, {"b": b"\x00", "n": -3}, "msgpack")
    assert msgpack.unpackb(frame[8:]) == {"b": b"\x00", "n": -3}


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_frame_round_trip(fmt: Any) -> None:
    snap = {"players": [{"id": "a", "x": 1.5}], "t": 3}
    assert decode_frame(encode_frame(2**64 - 1, snap, fmt), fmt) == (2**64 - 1, snap)


@pytest.mark.parametrize(
    ("snapshot", "problem"),
    [
        ({"p": [{"x": math.nan}]}, r"snapshot\['p'\]\[0\]\['x'\] is NaN; JSON allows only finite numbers"),
        ([1, math.inf], r"snapshot\[1\] is inf; JSON allows only finite numbers"),
        ({"v": -math.inf}, r"snapshot\['v'\] is -inf; JSON allows only finite numbers"),
        (
            {"s": {1, 2}},
            r"snapshot\['s'\] is a set; JSON carries only dict, list, str, int, float, bool and None",
        ),
        (
            {"b": b"x"},
            r"snapshot\['b'\] is a bytes; JSON carries only dict, list, str, int, float, bool and None",
        ),
        ({"s": "\ud800"}, r"snapshot\['s'\] is a string with a lone surrogate; it is not valid UTF-8"),
        ({(1, 2): 0}, r"snapshot has a key of type tuple; JSON object keys are strings"),
    ],
    ids=["nan", "inf", "-inf", "set", "bytes", "surrogate", "tuple-key"],
)
def test_strict_json_names_the_problem(snapshot: object, problem: str) -> None:
    with pytest.raises(SnapshotError, match=rf"^cannot encode the snapshot as JSON: {problem}$"):
        encode_frame(1, snapshot, "json")


@pytest.mark.parametrize(
    ("snapshot", "problem"),
    [
        ({"s": {1}}, r"snapshot\['s'\] is a set; msgpack frames carry only .*"),
        ([2**64], r"snapshot\[0\] is an integer outside the 64-bit range"),
        (["\udc00"], r"snapshot\[0\] is a string with a lone surrogate; it is not valid UTF-8"),
    ],
    ids=["set", "bigint", "surrogate"],
)
def test_msgpack_refusals_name_the_problem(snapshot: object, problem: str) -> None:
    with pytest.raises(SnapshotError, match=rf"^cannot encode the snapshot as msgpack: {problem}$"):
        encode_frame(1, snapshot, "msgpack")


class _Level(enum.IntEnum):
    HIGH = 2


def test_the_problem_is_found_after_valid_values() -> None:
    ok: list[Any] = [None, True, 1, "s", 1.5, {"a": 1}, [1], (2,)]
    with pytest.raises(SnapshotError, match=r"^cannot encode the snapshot as JSON: snapshot\[9\] is NaN; "):
        encode_frame(1, [*ok, _Level.HIGH, math.nan], "json")
    with pytest.raises(
        SnapshotError, match=r"^cannot encode the snapshot as msgpack: snapshot\[9\] is a set; "
    ):
        encode_frame(1, [*ok, b"x", {1}], "msgpack")
    with pytest.raises(
        SnapshotError,
        match=r"^cannot encode the snapshot as msgpack: snapshot key frozenset\(\) is a frozenset; ",
    ):
        encode_frame(1, {frozenset(): 1}, "msgpack")


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_reference_cycles_are_named(fmt: Any) -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(
        SnapshotError, match=r"^cannot encode the snapshot as .*: snapshot(\[0\])+ nests too deeply"
    ):
        encode_frame(1, cycle, fmt)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_failed_encoding_leaves_no_residue(fmt: Any) -> None:
    with pytest.raises(SnapshotError):
        encode_frame(1, {"a": [1, 2, {3}]}, fmt)
    assert decode_frame(encode_frame(2, {"b": 1}, fmt), fmt) == (2, {"b": 1})


def test_msgpack_allows_nan() -> None:
    _, snap = decode_frame(encode_frame(1, [math.nan], "msgpack"), "msgpack")
    assert math.isnan(snap[0])


def test_unknown_format_and_bad_tick_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"^unknown snapshot format 'xml'; choose 'json' or 'msgpack'$"):
        encode_snapshot({}, "xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^unknown snapshot format 'xml'; choose 'json' or 'msgpack'$"):
        decode_snapshot(b"{}", "xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^tick -1 does not fit in 8 bytes$"):
        encode_frame(-1, {}, "json")
    with pytest.raises(ValueError, match=r"^tick 18446744073709551616 does not fit in 8 bytes$"):
        encode_frame(2**64, {}, "json")


def test_decode_frame_refuses_garbage() -> None:
    with pytest.raises(SnapshotCorrupt, match=r"^frame is 3 bytes; a frame has at least 8$"):
        decode_frame(b"abc", "json")
    with pytest.raises(SnapshotCorrupt, match=r"^frame payload is not valid JSON: "):
        decode_frame(b"\x00" * 8 + b"{nope", "json")
    with pytest.raises(SnapshotCorrupt, match=r"^frame payload is not valid msgpack: "):
        decode_frame(b"\x00" * 8 + b"\xc1", "msgpack")


# --------------------------------------------------------------------------
# Deltas


def test_delta_distinguishes_deleted_from_null() -> None:
    d = make_delta({"a": 1, "b": 2, "c": 3}, {"a": None, "c": 3})
    assert d == {"set": {"a": None}, "del": ["b"]}
    assert apply_delta({"a": 1, "b": 2, "c": 3}, d) == {"a": None, "c": 3}


def test_delta_nested_and_lists() -> None:
    old = {"p": [{"x": 1, "y": 2}, {"x": 5}], "t": 1}
    new = {"p": [{"x": 1, "y": 3}], "t": 1}
    d = make_delta(old, new)
    assert d == {"sub": {"p": {"len": 1, "sub": {"0": {"set": {"y": 3}}}}}}
    assert apply_delta(old, d) == new
    grown = {"p": [{"x": 1, "y": 2}, {"x": 5}, 7], "t": 1}
    assert make_delta(old, grown) == {"sub": {"p": {"len": 3, "set": {"2": 7}}}}


def test_delta_of_equal_values_is_empty_and_json_friendly() -> None:
    assert make_delta({"a": [1]}, {"a": [1]}) == {}
    assert make_delta([1, 2], [1, 2]) == {"len": 2}
    assert make_delta(3, 3) == {"value": 3}
    big = int("7" * 30)
    assert make_delta(int("7" * 30), big) == {"value": big}
    assert make_delta(3, "x") == {"value": "x"}
    assert make_delta({"a": 1}, [1]) == {"value": [1]}
    json.dumps(make_delta({"l": [1, 2]}, {"l": [1, 3, 4]}))


def test_tuples_diff_as_lists() -> None:
    assert make_delta({"t": [1, 2]}, {"t": (1, 3)}) == {"sub": {"t": {"len": 2, "set": {"1": 3}}}}
    assert make_delta([[1]], ((1,),)) == {"len": 1}
    assert make_delta([1], (1,)) == {"len": 1}


def test_delta_of_the_same_object() -> None:
    value = {"a": [1, {"b": 2}]}
    assert make_delta(value, value) == {}
    assert make_delta({"x": value}, {"x": value}) == {}


def test_delta_compares_types() -> None:
    """1, 1.0 and True are equal in Python but not on the wire."""
    assert make_delta({"a": 1}, {"a": 1.0}) == {"set": {"a": 1.0}}
    assert make_delta([1], [True]) == {"len": 1, "set": {"0": True}}


def test_apply_delta_does_not_mutate_previous() -> None:
    old = {"a": {"b": [1, 2]}, "c": 1}
    snapshot = json.dumps(old)
    apply_delta(old, make_delta(old, {"a": {"b": [2]}, "d": 1}))
    assert json.dumps(old) == snapshot


@pytest.mark.parametrize(
    ("previous", "delta", "message"),
    [
        ({}, [], r"delta for value is a list, not a dict"),
        ({}, {"value": 1, "set": {}}, r"delta for value: 'value' cannot be combined with other keys"),
        ({}, {"len": 1}, r"delta for value is a list delta but the value is a dict"),
        ([], {"len": -1}, r"delta for value: 'len' must be a non-negative integer, got -1"),
        ([], {"len": 1, "x": 1}, r"delta for value: unexpected keys \['x'\]"),
        ([], {"len": 2, "set": {"0": 1}}, r"delta for value: list grows to 2 but gives no value for index 1"),
        ([1], {"len": 1, "set": {"01": 1}}, r"delta for value: list index '01' is not a decimal string"),
        ([1], {"len": 1, "set": {"5": 1}}, r"delta for value: list index 5 is beyond the new length 1"),
        ([1], {"len": 1, "set": []}, r"delta for value: 'set' and 'sub' must be dicts"),
        ([], {"set": {}}, r"delta for value is a dict delta but the value is a list"),
        ({}, {"bogus": 1}, r"delta for value: unexpected keys \['bogus'\]"),
        ({}, {"del": "a"}, r"delta for value: 'set' and 'sub' must be dicts and 'del' a list"),
        ({}, {"del": ["a"]}, r"delta for value: cannot delete missing key 'a'"),
        ({}, {"sub": {"a": {}}}, r"delta for value: nested delta for missing key 'a'"),
        (
            {"a": [1]},
            {"sub": {"a": {"set": {}}}},
            r"delta for value\['a'\] is a dict delta but the value is a list",
        ),
    ],
)
def test_apply_delta_refuses_malformed_deltas(previous: object, delta: object, message: str) -> None:
    with pytest.raises(SnapshotCorrupt, match=rf"^{message}$"):
        apply_delta(previous, delta)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
)
_values = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=3), kids, max_size=4),
    max_leaves=25,
)


def _strict(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_strict(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_strict(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@given(_values, _values)
def test_apply_make_delta_gives_new(old: Any, new: Any) -> None:
    result = apply_delta(old, make_delta(old, new))
    assert result == new
    assert _strict(result, new)


@given(_values, _values)
def test_delta_survives_json_and_msgpack(old: Any, new: Any) -> None:
    d = make_delta(old, new)
    assert apply_delta(old, json.loads(json.dumps(d))) == json.loads(json.dumps(new))
    assert apply_delta(old, msgpack.unpackb(msgpack.packb(d))) == new
