"""The shared value codec: exact round trips, refusals at encode time."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import pytest
from hypothesis import given, strategies as st

from shards import CodecError, copy, decode, encode

_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
# Fixed offsets: with zoneinfo zones, PEP 495 makes a datetime inside a DST
# fold unequal to the same instant in any other zone, so "equal" is undefined.
_offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
_aware = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=_offsets | st.just(dt.UTC)
)
_scalars = st.none() | st.booleans() | _ints | st.floats(allow_nan=False) | st.text() | st.binary() | _aware
_values = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, dt.datetime):
        return bool(a == b and a.utcoffset() == b.utcoffset())
    return bool(a == b)


@given(_values)
def test_round_trip_is_exact_including_types(value: Any) -> None:
    assert _same(decode(encode(value)), value)


def test_nan_and_infinity_round_trip() -> None:
    out = decode(encode([float("inf"), float("-inf")]))
    assert out == [float("inf"), float("-inf")]
    assert decode(encode(float("nan"))) != decode(encode(float("nan")))  # still NaN


def test_zoneinfo_datetimes_come_back_with_a_fixed_offset_for_the_same_instant() -> None:
    from zoneinfo import ZoneInfo

    original = dt.datetime(2026, 7, 1, 12, 30, tzinfo=ZoneInfo("Europe/Paris"))
    back = decode(encode(original))
    assert back == original
    assert back.utcoffset() == dt.timedelta(hours=2)
    assert back.tzinfo == dt.timezone(dt.timedelta(hours=2))


def test_copy_does_not_share_references() -> None:
    original = {"a": [1, 2]}
    copied = copy(original)
    copied["a"].append(3)
    assert original == {"a": [1, 2]}


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((1, 2), r"^cannot encode value: tuples cannot cross"),
        (bytearray(b"x"), r"^cannot encode value: bytearray cannot cross"),
        ({1: "a"}, r"^cannot encode value: dict key 1 is a int; only str keys read back$"),
        (dt.datetime(2020, 1, 1), r"^cannot encode value: naive datetime"),
        (2**64, r"^cannot encode value: integer 18446744073709551616 is outside the 64-bit range"),
        (-(2**63) - 1, r"outside the 64-bit range"),
        ({"a": [{"b": {1, 2}}]}, r"^cannot encode value\['a'\]\[0\]\['b'\]: sets cannot cross"),
        (Colour.RED, r"type Colour is not supported"),
        (object(), r"type object is not supported"),
    ],
    ids=[
        "tuple",
        "bytearray",
        "int-key",
        "naive-datetime",
        "big-int",
        "small-int",
        "nested-set",
        "intenum",
        "object",
    ],
)
def test_refuses_what_would_not_read_back(value: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        encode(value)


def test_codec_error_is_a_type_error_and_names_the_path() -> None:
    with pytest.raises(TypeError) as info:
        encode({"x": [(1,)]})
    assert isinstance(info.value, CodecError)
    assert info.value.path == "value['x'][0]"


def test_cycles_are_refused_not_recursed_forever() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CodecError, match="nesting deeper than"):
        encode(loop)


@pytest.mark.parametrize(
    "data", [b"\xc1", b"\x92\x01", b"\xd4\x63\x00"], ids=["reserved", "truncated", "unknown-ext"]
)
def test_decode_refuses_garbage(data: bytes) -> None:
    with pytest.raises(CodecError, match=r"decode|extension"):
        decode(data)


_anything = st.recursive(
    _scalars
    | st.tuples(st.integers())
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.datetimes()
    | st.sets(st.integers(), max_size=2),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4) | st.integers(), kids, max_size=4)
    ),
    max_leaves=20,
)


@given(_anything)
def test_fast_and_precise_checks_agree(value: Any) -> None:
    """encode() trusts a path-free fast walk and only re-walks to explain a refusal."""
    from shards._codec import _check, _valid

    try:
        _check(value, "value", 0)
        precise = True
    except CodecError:
        precise = False
    assert _valid(value, 0) is precise
