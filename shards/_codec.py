"""The value codec: msgpack plus one registry of extension types.

Everything that crosses a boundary (RPC arguments and results, storage values,
websocket attachments, persisted shard state) goes through :func:`encode` and
:func:`decode`, so a value that works here survives production's
serialization, and no object is shared by reference between two objects.

Invariants:

* ``decode(encode(v)) == v`` and has the same types, for every value
  :func:`encode` accepts. Anything that would not read back exactly is refused
  by :func:`encode` with :class:`~shards.CodecError` before any byte is
  produced: tuples and bytearrays (production's Python SDK refuses them on
  RPC), sets, dicts with non-string keys, naive datetimes, integers outside
  ``[-2**63, 2**64)``, subclasses of the built-in types (an ``IntEnum`` would
  come back as a plain ``int``), and anything else not listed below.
* Accepted: ``None``, ``bool``, ``int``, ``float`` (NaN and infinities too),
  ``str``, ``bytes``, ``list``, ``dict`` with ``str`` keys, and timezone-aware
  ``datetime`` (read back with a fixed-offset ``timezone`` equal to the
  original's offset at that instant; it compares equal to the original,
  except inside a DST fold, where PEP 495 makes cross-zone equality False).
* Extension codes are allocated here and only here (:data:`EXT_CODES`).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Final

import msgpack

from ._errors import CodecError

__all__ = ["EXT_CODES", "MAX_DEPTH", "copy", "decode", "encode"]

#: The project's one registry of msgpack extension codes.
EXT_CODES: Final[dict[str, int]] = {"datetime": 1}

#: Deepest nesting accepted; deeper values (and reference cycles) are refused.
MAX_DEPTH: Final = 128

_EXT_DATETIME: Final = EXT_CODES["datetime"]
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
# The class itself, captured at import: code that runs Worker modules may put
# a subclass in its place in the datetime module, and values keep this type.
_DATETIME: Final = _dt.datetime
_EPOCH: Final = _DATETIME(1970, 1, 1, tzinfo=_dt.UTC)

_REFUSED_HINTS: Final[dict[type, str]] = {
    tuple: "tuples cannot cross (production's Python SDK refuses them); use a list",
    bytearray: "bytearray cannot cross (production's Python SDK refuses it); use bytes",
    set: "sets cannot cross; use a list or a dict",
    frozenset: "frozensets cannot cross; use a list or a dict",
}


def _check(value: object, path: str, depth: int) -> None:
    # Exact type checks on purpose: subclasses would not read back as themselves.
    t = type(value)
    if value is None or t is bool or t is float or t is str or t is bytes:
        return
    if t is int:
        if not _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
            raise CodecError(
                f"cannot encode {path}: integer {value} is outside the 64-bit range [-2**63, 2**64)",
                path=path,
            )
        return
    if depth >= MAX_DEPTH:
        raise CodecError(
            f"cannot encode {path}: nesting deeper than {MAX_DEPTH} levels (or a reference cycle)",
            path=path,
        )
    if isinstance(value, list) and t is list:
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict) and t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise CodecError(
                    f"cannot encode {path}: dict key {k!r} is a {type(k).__name__}; only str keys read back",
                    path=path,
                )
            _check(v, f"{path}[{k!r}]", depth + 1)
        return
    if isinstance(value, _DATETIME) and t is _DATETIME:
        if value.utcoffset() is None:
            raise CodecError(
                f"cannot encode {path}: naive datetime {value!s}; attach a timezone (e.g. datetime.UTC)",
                path=path,
            )
        return
    hint = _REFUSED_HINTS.get(t)
    if hint is None:
        for base, base_hint in _REFUSED_HINTS.items():
            if isinstance(value, base):
                hint = base_hint
                break
    if hint is None:
        hint = f"type {t.__name__} is not supported (None, bool, int, float, str, bytes, list, dict with str keys, aware datetime)"
    raise CodecError(f"cannot encode {path}: {hint}", path=path)


_SCALARS: Final = frozenset({type(None), bool, float, str, bytes})


def _valid(value: object, depth: int) -> bool:
    """The fast check: True if :func:`_check` would accept ``value``.

    No paths are built here (formatting a path per element cost five times
    the packing itself); when this says no, :func:`_check` walks again to
    name the problem precisely.
    """
    t = type(value)
    if t in _SCALARS:
        return True
    if t is int:
        return _INT_MIN <= value <= _INT_MAX  # type: ignore[operator]
    if depth >= MAX_DEPTH:
        return False
    depth += 1
    if t is list:
        for item in value:  # type: ignore[attr-defined]  # noqa: SIM110 - a loop beats all() here (measured)
            if type(item) not in _SCALARS and not _valid(item, depth):
                return False
        return True
    if t is dict:
        for k, v in value.items():  # type: ignore[attr-defined]
            if type(k) is not str or (type(v) not in _SCALARS and not _valid(v, depth)):
                return False
        return True
    if t is _DATETIME:
        return value.utcoffset() is not None  # type: ignore[attr-defined]
    return False


def _default(value: object) -> msgpack.ExtType:
    if type(value) is _DATETIME:
        offset = value.utcoffset()
        assert offset is not None  # _check refused naive datetimes
        delta = value - _EPOCH
        payload = msgpack.packb(
            [delta.days * 86400 + delta.seconds, delta.microseconds, offset.days * 86400 + offset.seconds]
        )
        return msgpack.ExtType(_EXT_DATETIME, payload)
    raise AssertionError(f"unchecked type reached the packer: {type(value).__name__}; please file a bug")


def _ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_DATETIME:
        seconds, micros, offset = msgpack.unpackb(data)
        tz = _dt.UTC if offset == 0 else _dt.timezone(_dt.timedelta(seconds=offset))
        return (_EPOCH + _dt.timedelta(seconds=seconds, microseconds=micros)).astimezone(tz)
    raise CodecError(f"unknown msgpack extension code {code}")


def encode(value: object) -> bytes:
    """Encode ``value``; refuse (with :class:`CodecError`) anything that would not read back exactly."""
    if not _valid(value, 0):
        _check(value, "value", 0)  # raises CodecError naming where and why
        raise AssertionError("_valid and _check disagree; please file a bug")
    return msgpack.packb(value, default=_default, use_bin_type=True, datetime=False)  # type: ignore[no-any-return]


def decode(data: bytes) -> Any:
    """Decode bytes produced by :func:`encode`.

    Raises:
        CodecError: ``data`` is not a value this codec produced.
    """
    try:
        return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=True)
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CodecError(f"cannot decode value: {exc}") from exc


def copy(value: object) -> Any:
    """Return a deep copy of ``value`` as it would arrive on the other side of a boundary."""
    return decode(encode(value))
