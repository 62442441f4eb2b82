"""Frames: what a subscriber receives each tick, and the delta format.

A frame is 8 bytes of big-endian tick number followed by the encoded
snapshot, in the subscriber's format: ``"json"`` (what pylon's clients
expect) or ``"msgpack"``.

Invariants:

* JSON is strict: compact separators, ``allow_nan=False``, UTF-8. NaN,
  infinities, lone surrogates and values JSON cannot carry raise
  :class:`~shards.SnapshotError` whose message names the offending place
  (``snapshot['players'][2]['x'] is NaN ...``); no bytes are produced.
  As with :func:`json.dumps`, dict keys that are ``int``, ``float``, ``bool``
  or ``None`` are written as strings; use ``str`` keys if the client must
  read back exactly what the simulation built.
* msgpack frames are plain msgpack (``use_bin_type=True``) with no extension
  types, so any msgpack client can read them.
* Nothing here reads a clock or keeps state; every function is pure.

Delta mode
----------

A subscriber in delta mode receives every frame as an *envelope*:

* ``{"full": snapshot}``: the whole snapshot. The first frame, and the first
  frame after :meth:`Shard.mark_dropped <shards.Shard.mark_dropped>`, is full.
* ``{"base": tick, "delta": d}``: ``d`` transforms the snapshot of frame
  ``base`` (the previous frame this subscriber was sent) into this one.
  A client whose last frame is not ``base`` has missed one and must
  resubscribe rather than apply ``d``.

A delta ``d`` is a dict, made by :func:`make_delta` and read by
:func:`apply_delta`, of one of three shapes:

* replace: ``{"value": v}`` (the new value is ``v``, whatever the old was);
* dict: ``{"set": {k: v}, "del": [k], "sub": {k: d}}`` when old and new are
  both dicts: keys added or replaced (``v`` may be ``null``), keys removed,
  and keys whose dict/list value changed inside (a nested delta). Each part
  is omitted when empty, so ``{}`` means "unchanged". A deleted key is in
  ``"del"``; a key set to null is in ``"set"``: the two never mix up;
* list: ``{"len": n, "set": {"i": v}, "sub": {"i": d}}`` when both are lists:
  the new length (truncating or extending), then items replaced or appended
  and items changed inside, keyed by their index as a decimal string (JSON
  object keys are strings). ``"len"`` is always present, which is how a list
  delta is told from a dict delta.

Values compare by type as well as value (``1``, ``1.0`` and ``True`` differ),
so a client sees the same types in a delta stream as in full frames. Tuples
are compared as the lists both formats turn them into.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeGuard

import msgpack

from ._errors import SnapshotCorrupt, SnapshotError

__all__ = [
    "FORMATS",
    "FRAME_HEADER_SIZE",
    "SnapshotFormat",
    "apply_delta",
    "decode_frame",
    "decode_snapshot",
    "encode_frame",
    "encode_snapshot",
    "make_delta",
]

#: A subscriber's snapshot format.
SnapshotFormat = Literal["json", "msgpack"]

#: The formats a subscriber may ask for.
FORMATS: Final[tuple[SnapshotFormat, ...]] = ("json", "msgpack")

#: Bytes of tick number in front of every frame.
FRAME_HEADER_SIZE: Final = 8

_HEADER: Final = struct.Struct(">Q")
_TICK_MAX: Final = 2**64 - 1

# Built once: json.dumps with non-default options builds a new encoder per call,
# which costs more than encoding a small snapshot.
_JSON: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def _json_refuse(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# JSONEncoder.encode still builds a C encoder per call (a third of the cost
# of encoding a small snapshot); this one is built once. Without the
# circular-reference markers a cycle is a RecursionError, which
# encode_snapshot reports like any other refusal.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_JSON_ONE_SHOT: Any = (
    _c_make_encoder(None, _json_refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    if _c_make_encoder is not None
    else None
)
# Likewise msgpack.packb builds a Packer per call (5x the cost of a small pack).
# Packer.pack discards a half-written buffer when it raises, and the shard
# model is single-threaded with no callbacks that could re-enter it.
_PACKER: Final = msgpack.Packer(use_bin_type=True)


def is_format(value: object) -> TypeGuard[SnapshotFormat]:
    """Return whether ``value`` names a supported snapshot format."""
    return value in FORMATS


# --------------------------------------------------------------------------
# Snapshot encoding


@dataclass(frozen=True, slots=True)
class _Refusals:
    """What one format cannot carry, as :func:`_describe_problem` reports it."""

    #: The format's name in messages.
    name: str
    #: NaN and infinities are refused (JSON has no literal for them).
    non_finite: bool
    #: Integers outside this many bits (signed low end, unsigned high end) are
    #: refused; None: any integer.
    int_bits: int | None
    #: ``bytes`` values are carried.
    carries_bytes: bool
    #: Dict keys must be of these types (or None); None: keys are checked as values.
    key_types: tuple[type, ...] | None
    #: End of the message for a value of a type the format lacks.
    carries: str


_REFUSALS: Final[dict[SnapshotFormat, _Refusals]] = {
    "json": _Refusals(
        name="JSON",
        non_finite=True,
        int_bits=None,
        carries_bytes=False,
        # What json.dumps writes as a string key.
        key_types=(str, int, float, bool),
        carries="JSON carries only dict, list, str, int, float, bool and None",
    ),
    "msgpack": _Refusals(
        name="msgpack",
        non_finite=False,
        int_bits=64,
        carries_bytes=True,
        key_types=None,
        carries="msgpack frames carry only dict, list, str, bytes, int, float, bool and None",
    ),
}


def _describe_problem(value: object, path: str, fmt: SnapshotFormat, depth: int = 0) -> str | None:
    """Find the first place in ``value`` that ``fmt`` refuses, for the error message.

    Only called after an encoder failed, so its cost never touches the fast
    path. None when it finds nothing (the caller then reports the encoder's own words).
    """
    if depth > 200:
        return f"{path} nests too deeply (or is a reference cycle)"
    refusals = _REFUSALS[fmt]
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if refusals.non_finite:
            if math.isnan(value):
                return f"{path} is NaN; {refusals.name} allows only finite numbers"
            if math.isinf(value):
                return f"{path} is {value}; {refusals.name} allows only finite numbers"
        return None
    if isinstance(value, int):
        bits = refusals.int_bits
        if bits is not None and not -(2 ** (bits - 1)) <= value < 2**bits:
            return f"{path} is an integer outside the {bits}-bit range"
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path} is a string with a lone surrogate; it is not valid UTF-8"
        return None
    if isinstance(value, bytes) and refusals.carries_bytes:
        return None
    if isinstance(value, dict):
        key_types = refusals.key_types
        for k, v in value.items():
            if key_types is None:
                found = _describe_problem(k, f"{path} key {k!r}", fmt, depth + 1)
            elif k is not None and not isinstance(k, key_types):
                return f"{path} has a key of type {type(k).__name__}; {refusals.name} object keys are strings"
            else:
                found = None
            found = found or _describe_problem(v, f"{path}[{k!r}]", fmt, depth + 1)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _describe_problem(v, f"{path}[{i}]", fmt, depth + 1)
            if found:
                return found
        return None
    return f"{path} is a {type(value).__name__}; {refusals.carries}"


def encode_snapshot(snapshot: object, fmt: SnapshotFormat) -> bytes:
    """Encode a snapshot (without the tick header) in ``fmt``.

    Args:
        snapshot: The value to encode.
        fmt: ``"json"`` (strict) or ``"msgpack"``.

    Returns:
        The encoded bytes.

    Raises:
        SnapshotError: ``snapshot`` cannot be encoded in ``fmt``; the message
            names the offending place.
        ValueError: ``fmt`` is not a supported format.
    """
    if fmt == "json":
        try:
            if _JSON_ONE_SHOT is not None:
                return "".join(_JSON_ONE_SHOT(snapshot, 0)).encode()
            return _JSON.encode(snapshot).encode()  # pragma: no cover - CPython has the C encoder
        except (ValueError, TypeError, RecursionError, UnicodeEncodeError) as exc:
            problem = _describe_problem(snapshot, "snapshot", "json") or str(exc)
            raise SnapshotError(f"cannot encode the snapshot as JSON: {problem}") from exc
    if fmt == "msgpack":
        try:
            return _PACKER.pack(snapshot)  # type: ignore[no-any-return]
        except (ValueError, TypeError, OverflowError, UnicodeEncodeError) as exc:
            problem = _describe_problem(snapshot, "snapshot", "msgpack") or str(exc)
            raise SnapshotError(f"cannot encode the snapshot as msgpack: {problem}") from exc
    raise ValueError(f"unknown snapshot format {fmt!r}; choose 'json' or 'msgpack'")


def decode_snapshot(data: bytes, fmt: SnapshotFormat) -> Any:
    """Decode a snapshot encoded by :func:`encode_snapshot`.

    Raises:
        SnapshotCorrupt: ``data`` is not a valid encoding in ``fmt``.
        ValueError: ``fmt`` is not a supported format.
    """
    if fmt == "json":
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SnapshotCorrupt(f"frame payload is not valid JSON: {exc}") from exc
    if fmt == "msgpack":
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise SnapshotCorrupt(f"frame payload is not valid msgpack: {exc}") from exc
    raise ValueError(f"unknown snapshot format {fmt!r}; choose 'json' or 'msgpack'")


def frame_header(tick: int) -> bytes:
    """Return the 8-byte big-endian tick header of a frame."""
    if not 0 <= tick <= _TICK_MAX:
        raise ValueError(f"tick {tick} does not fit in 8 bytes")
    return _HEADER.pack(tick)


def encode_frame(tick: int, snapshot: object, fmt: SnapshotFormat) -> bytes:
    """Build a frame: the 8-byte big-endian ``tick`` followed by the encoded ``snapshot``.

    Raises:
        SnapshotError: ``snapshot`` cannot be encoded in ``fmt``.
        ValueError: ``tick`` is negative or above 2**64 - 1, or ``fmt`` is unknown.
    """
    header = frame_header(tick)
    return header + encode_snapshot(snapshot, fmt)


def decode_frame(data: bytes, fmt: SnapshotFormat) -> tuple[int, Any]:
    """Split a frame into its tick number and decoded snapshot (or delta envelope).

    Raises:
        SnapshotCorrupt: ``data`` is shorter than the header or its payload
            does not decode.
        ValueError: ``fmt`` is unknown.
    """
    if len(data) < FRAME_HEADER_SIZE:
        raise SnapshotCorrupt(f"frame is {len(data)} bytes; a frame has at least {FRAME_HEADER_SIZE}")
    (tick,) = _HEADER.unpack_from(data)
    return tick, decode_snapshot(data[FRAME_HEADER_SIZE:], fmt)


# --------------------------------------------------------------------------
# Deltas


def _diff(old: object, new: object) -> dict[str, Any] | None:
    """Return the delta from ``old`` to ``new``, or None when they are the same.

    Values of different types always differ (1, 1.0 and True are equal in
    Python, not on the wire).
    """
    if old is new:
        return None
    if type(new) is tuple:
        new = list(new)
    if type(old) is dict and type(new) is dict:
        sets: dict[str, Any] = {}
        subs: dict[str, Any] = {}
        for k, v in new.items():
            if k not in old:
                sets[k] = v
                continue
            ov = old[k]
            tv = type(v)
            if tv is tuple:  # the client received a list; compare as one
                tv = list
                v = list(v)
            if tv is not type(ov):
                sets[k] = v
            elif tv is dict or tv is list:
                d = _diff(ov, v)
                if d is not None:
                    subs[k] = d
            elif ov != v:  # same scalar type: plain comparison is exact (and fast)
                sets[k] = v
        dels = [k for k in old if k not in new]
        if not (sets or subs or dels):
            return None
        out: dict[str, Any] = {}
        if sets:
            out["set"] = sets
        if dels:
            out["del"] = dels
        if subs:
            out["sub"] = subs
        return out
    if type(old) is list and type(new) is list:
        lsets: dict[str, Any] = {}
        lsubs: dict[str, Any] = {}
        for i, v in enumerate(new):
            if i >= len(old):
                lsets[str(i)] = v
                continue
            ov = old[i]
            tv = type(v)
            if tv is tuple:  # the client received a list; compare as one
                tv = list
                v = list(v)
            if tv is not type(ov):
                lsets[str(i)] = v
            elif tv is dict or tv is list:
                d = _diff(ov, v)
                if d is not None:
                    lsubs[str(i)] = d
            elif ov != v:
                lsets[str(i)] = v
        if not lsets and not lsubs and len(old) == len(new):
            return None
        lout: dict[str, Any] = {"len": len(new)}
        if lsets:
            lout["set"] = lsets
        if lsubs:
            lout["sub"] = lsubs
        return lout
    # Both dicts or both lists returned above; what is left are scalars or a type change.
    if type(old) is type(new) and old == new:
        return None
    return {"value": new}


def make_delta(old: object, new: object) -> dict[str, Any]:
    """Return a delta that turns ``old`` into ``new`` (format in the module docstring).

    ``apply_delta(old, make_delta(old, new)) == new`` for every pair of
    values built from dicts (with ``str`` keys), lists and scalars. The delta
    shares unchanged-by-reference values with ``new``; treat it as read-only.
    """
    d = _diff(old, new)
    if d is not None:
        return d
    if type(new) is dict:
        return {}
    if type(new) is list or type(new) is tuple:
        return {"len": len(new)}
    return {"value": new}


def _index(key: object, limit: int, where: str) -> int:
    if type(key) is not str or not key.isdigit() or (len(key) > 1 and key[0] == "0"):
        raise SnapshotCorrupt(f"delta for {where}: list index {key!r} is not a decimal string")
    i = int(key)
    if i >= limit:
        raise SnapshotCorrupt(f"delta for {where}: list index {i} is beyond the new length {limit}")
    return i


def _apply(previous: object, delta: object, where: str) -> Any:
    if type(delta) is not dict:
        raise SnapshotCorrupt(f"delta for {where} is a {type(delta).__name__}, not a dict")
    if "value" in delta:
        if len(delta) != 1:
            raise SnapshotCorrupt(f"delta for {where}: 'value' cannot be combined with other keys")
        return delta["value"]
    if "len" in delta:
        if not set(delta) <= {"len", "set", "sub"}:
            raise SnapshotCorrupt(
                f"delta for {where}: unexpected keys {sorted(set(delta) - {'len', 'set', 'sub'})}"
            )
        if type(previous) is not list:
            raise SnapshotCorrupt(
                f"delta for {where} is a list delta but the value is a {type(previous).__name__}"
            )
        n = delta["len"]
        if type(n) is not int or n < 0:
            raise SnapshotCorrupt(f"delta for {where}: 'len' must be a non-negative integer, got {n!r}")
        result = previous[:n]
        lsets = delta.get("set", {})
        lsubs = delta.get("sub", {})
        if type(lsets) is not dict or type(lsubs) is not dict:
            raise SnapshotCorrupt(f"delta for {where}: 'set' and 'sub' must be dicts")
        if len(result) < n:
            missing = [str(i) for i in range(len(result), n) if str(i) not in lsets]
            if missing:
                raise SnapshotCorrupt(
                    f"delta for {where}: list grows to {n} but gives no value for index {missing[0]}"
                )
            result.extend([None] * (n - len(result)))
        for k, v in lsets.items():
            result[_index(k, n, where)] = v
        for k, d in lsubs.items():
            i = _index(k, min(n, len(previous)), where)
            result[i] = _apply(previous[i], d, f"{where}[{i}]")
        return result
    if not set(delta) <= {"set", "del", "sub"}:
        raise SnapshotCorrupt(
            f"delta for {where}: unexpected keys {sorted(set(delta) - {'set', 'del', 'sub'})}"
        )
    if type(previous) is not dict:
        raise SnapshotCorrupt(
            f"delta for {where} is a dict delta but the value is a {type(previous).__name__}"
        )
    sets = delta.get("set", {})
    dels = delta.get("del", [])
    subs = delta.get("sub", {})
    if type(sets) is not dict or type(subs) is not dict or type(dels) is not list:
        raise SnapshotCorrupt(f"delta for {where}: 'set' and 'sub' must be dicts and 'del' a list")
    out = dict(previous)
    for k in dels:
        if k not in out:
            raise SnapshotCorrupt(f"delta for {where}: cannot delete missing key {k!r}")
        del out[k]
    for k, d in subs.items():
        if k not in previous:
            raise SnapshotCorrupt(f"delta for {where}: nested delta for missing key {k!r}")
        out[k] = _apply(previous[k], d, f"{where}[{k!r}]")
    out.update(sets)
    return out


def apply_delta(previous: object, delta: object) -> Any:
    """Apply a delta from :func:`make_delta` (or a frame's ``"delta"``) to ``previous``.

    ``previous`` is not modified: changed containers are copied, unchanged
    ones are shared between ``previous`` and the result.

    Raises:
        SnapshotCorrupt: ``delta`` is malformed or does not fit ``previous``.
    """
    return _apply(previous, delta, "value")
