"""Persisted shard state: a versioned record and its codec.

A record is ``MAGIC`` (4 bytes), a big-endian 16-bit format version, then
one value encoded with the shared codec (:mod:`shards._codec`) holding
everything needed to resume the shard where it was: tick number, the time
of the last tick, the simulation's ``to_state()``, the queued inputs with
their sequence numbers, the next server sequence number, the subscriber
registry (format, delta mode, last client sequence number processed, and
the last snapshot sent to each delta subscriber), idle count and
finished/stopped flags.

Invariants:

* Decoding never guesses: an unknown version raises
  :class:`~shards.SnapshotVersionError`; anything else that is not exactly a
  record this module wrote raises :class:`~shards.SnapshotCorrupt`, naming
  the first field that is wrong.
* A shard restored from its record (:func:`~shards.restore_or_init`)
  behaves exactly like the shard that wrote it: the next ``run_tick(now)``
  of both returns equal results (frames, acks, record).
  Statistics and the replay log describe one incarnation and are not
  persisted; the configuration is code, not state, and is passed in again.
* Encoding is deterministic: equal shards give equal bytes.
* This module knows records, not shards: it imports nothing from
  :mod:`shards._shard` (which builds a shard from a record), so the
  dependency runs one way.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Final

from ._codec import decode, encode
from ._errors import CodecError, SnapshotCorrupt, SnapshotError, SnapshotVersionError
from ._frames import SnapshotFormat, is_format

__all__ = [
    "SHARD_STATE_MAGIC",
    "SHARD_STATE_VERSION",
    "QueuedInput",
    "ShardRecord",
    "SubscriberRecord",
    "decode_shard_state",
    "encode_shard_state",
]

#: First bytes of every persisted shard record.
SHARD_STATE_MAGIC: Final = b"SHSM"

#: The record format this code writes (and the only one it reads).
SHARD_STATE_VERSION: Final = 1

_VERSION: Final = struct.Struct(">H")
_HEADER_SIZE: Final = len(SHARD_STATE_MAGIC) + _VERSION.size
_SEQ_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedInput:
    """An input accepted by the shard and not applied yet.

    Attributes:
        seq: Server sequence number (1, 2, 3, ... per shard).
        subscriber_id: Who sent it.
        data: The input, encoded with the shared codec.
        client_seq: The client's own sequence number, if it sent one.
    """

    seq: int
    subscriber_id: str
    data: bytes
    client_seq: int | None

    @property
    def input(self) -> Any:
        """A fresh decoded copy of the input."""
        return decode(self.data)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberRecord:
    """One attached subscriber and its options.

    Attributes:
        subscriber_id: The subscriber id.
        format: ``"json"`` or ``"msgpack"``.
        delta: Whether frames are delta envelopes.
        last_client_seq: The client sequence number of its last applied input
            that carried one, or None.
        sent_tick: For a delta subscriber, the tick of the last frame built
            for it (the base of its next delta); None when its next frame is full.
        sent_snapshot: The snapshot that frame carried (meaningful only when
            ``sent_tick`` is not None).
    """

    subscriber_id: str
    format: SnapshotFormat
    delta: bool
    last_client_seq: int | None
    sent_tick: int | None = None
    sent_snapshot: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardRecord:
    """Everything a shard needs to resume; see the module docstring.

    Attributes:
        shard_id: The shard's id.
        tick: The last tick run (0 before the first).
        last_now: ``now`` of the last tick, or None before the first.
        next_seq: The server sequence number the next accepted input gets.
        idle_ticks: Consecutive ticks without subscribers or inputs so far.
        finished: Whether the simulation reported it was finished.
        stopped: Whether the host stopped the shard.
        sim_state: The simulation's ``to_state()``.
        queue: Accepted inputs not applied yet, oldest first.
        subscribers: Attached subscribers, in the order they were added.
    """

    shard_id: str
    tick: int
    last_now: float | None
    next_seq: int
    idle_ticks: int
    finished: bool
    stopped: bool
    sim_state: Any
    queue: tuple[QueuedInput, ...]
    subscribers: tuple[SubscriberRecord, ...]


def encode_shard_state(record: ShardRecord) -> bytes:
    """Encode a record: magic, version, then the codec-encoded body.

    Snapshots last sent to delta subscribers are stored once per distinct
    object (subscribers that shared one still share it after restore). A
    sent snapshot the codec cannot carry is left out, and that subscriber's
    next frame after a restore is full.

    Raises:
        SnapshotError: the simulation state (or another field) cannot be
            encoded with the shared codec; the message names where.
    """
    bases: list[bytes] = []
    base_index: dict[int, int | None] = {}
    subscribers: list[list[Any]] = []
    for sub in record.subscribers:
        index: int | None = None
        if sub.sent_tick is not None:
            key = id(sub.sent_snapshot)
            if key not in base_index:
                try:
                    bases.append(encode(sub.sent_snapshot))
                    base_index[key] = len(bases) - 1
                except CodecError:
                    # Not storable: the subscriber gets a full frame after restore.
                    base_index[key] = None
            index = base_index[key]
        subscribers.append(
            [
                sub.subscriber_id,
                sub.format,
                sub.delta,
                sub.last_client_seq,
                sub.sent_tick if index is not None else None,
                index,
            ]
        )
    body = {
        "shard_id": record.shard_id,
        "tick": record.tick,
        "last_now": record.last_now,
        "next_seq": record.next_seq,
        "idle_ticks": record.idle_ticks,
        "finished": record.finished,
        "stopped": record.stopped,
        "sim": record.sim_state,
        "queue": [[q.seq, q.subscriber_id, q.data, q.client_seq] for q in record.queue],
        "subscribers": subscribers,
        "bases": bases,
    }
    try:
        payload = encode(body)
    except CodecError as exc:
        raise SnapshotError(f"cannot persist shard {record.shard_id!r}: {exc}") from exc
    return SHARD_STATE_MAGIC + _VERSION.pack(SHARD_STATE_VERSION) + payload


# --------------------------------------------------------------------------
# Decoding: every field is checked; nothing is defaulted.


def _corrupt(what: str) -> SnapshotCorrupt:
    return SnapshotCorrupt(f"shard record is corrupt: {what}")


def _int(value: object, what: str, *, minimum: int = 0, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if type(value) is not int or not minimum <= value <= _SEQ_MAX:
        raise _corrupt(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise _corrupt(f"{what} must be a bool, got {value!r}")
    return value


def _str(value: object, what: str) -> str:
    if type(value) is not str or not value:
        raise _corrupt(f"{what} must be a non-empty string, got {value!r}")
    return value


def _list(value: object, what: str, length: int | None = None) -> list[Any]:
    if type(value) is not list or (length is not None and len(value) != length):
        shape = "a list" if length is None else f"a list of {length} items"
        raise _corrupt(f"{what} must be {shape}, got {value!r}")
    return value


_FIELDS: Final = frozenset(
    {
        "shard_id",
        "tick",
        "last_now",
        "next_seq",
        "idle_ticks",
        "finished",
        "stopped",
        "sim",
        "queue",
        "subscribers",
        "bases",
    }
)


def decode_shard_state(data: bytes) -> ShardRecord:
    """Decode a record written by :func:`encode_shard_state`.

    Raises:
        SnapshotVersionError: the record has a version this code does not read.
        SnapshotCorrupt: ``data`` is not such a record (wrong magic, truncated,
            undecodable, or a field with the wrong type or value).
    """
    if type(data) is not bytes:
        raise _corrupt(f"expected bytes, got {type(data).__name__}")
    if len(data) < _HEADER_SIZE or not data.startswith(SHARD_STATE_MAGIC):
        raise _corrupt(f"it does not start with {SHARD_STATE_MAGIC!r} and a version")
    (version,) = _VERSION.unpack_from(data, len(SHARD_STATE_MAGIC))
    if version != SHARD_STATE_VERSION:
        raise SnapshotVersionError(
            f"shard record version {version} is not supported; this code reads version {SHARD_STATE_VERSION}"
        )
    try:
        body = decode(data[_HEADER_SIZE:])
    except CodecError as exc:
        raise _corrupt(f"the body does not decode ({exc})") from exc
    if type(body) is not dict or set(body) != _FIELDS:
        got = sorted(body) if type(body) is dict else type(body).__name__
        raise _corrupt(f"the body must be a dict with fields {sorted(_FIELDS)}, got {got}")

    shard_id = _str(body["shard_id"], "shard_id")
    tick = _int(body["tick"], "tick")
    last_now = body["last_now"]
    if last_now is not None and (type(last_now) is not float or not math.isfinite(last_now)):
        raise _corrupt(f"last_now must be a finite float or None, got {last_now!r}")
    if (last_now is None) != (tick == 0):
        raise _corrupt(f"last_now {last_now!r} does not fit tick {tick}")
    next_seq = _int(body["next_seq"], "next_seq", minimum=1)

    queue: list[QueuedInput] = []
    for i, item in enumerate(_list(body["queue"], "queue")):
        where = f"queue[{i}]"
        seq, sid, blob, client_seq = _list(item, where, 4)
        seq = _int(seq, f"{where} seq", minimum=1)
        if seq >= next_seq or (queue and seq <= queue[-1].seq):
            raise _corrupt(f"{where} seq {seq} is out of order (next_seq is {next_seq})")
        if type(blob) is not bytes:
            raise _corrupt(f"{where} input must be encoded bytes, got {type(blob).__name__}")
        try:
            decode(blob)
        except CodecError as exc:
            raise _corrupt(f"{where} input does not decode ({exc})") from exc
        queue.append(
            QueuedInput(
                seq=seq,
                subscriber_id=_str(sid, f"{where} subscriber id"),
                data=blob,
                client_seq=_int(client_seq, f"{where} client_seq", optional=True),
            )
        )

    bases: list[Any] = []
    for i, blob in enumerate(_list(body["bases"], "bases")):
        if type(blob) is not bytes:
            raise _corrupt(f"bases[{i}] must be encoded bytes, got {type(blob).__name__}")
        try:
            bases.append(decode(blob))
        except CodecError as exc:
            raise _corrupt(f"bases[{i}] does not decode ({exc})") from exc

    subscribers: list[SubscriberRecord] = []
    seen: set[str] = set()
    for i, item in enumerate(_list(body["subscribers"], "subscribers")):
        where = f"subscribers[{i}]"
        sid, fmt, delta, client_seq, sent_tick, index = _list(item, where, 6)
        sid = _str(sid, f"{where} id")
        if sid in seen:
            raise _corrupt(f"{where} id {sid!r} appears twice")
        seen.add(sid)
        if not is_format(fmt):
            raise _corrupt(f"{where} format must be 'json' or 'msgpack', got {fmt!r}")
        delta = _bool(delta, f"{where} delta")
        sent_tick = _int(sent_tick, f"{where} sent_tick", optional=True)
        index = _int(index, f"{where} base", optional=True)
        if (sent_tick is None) != (index is None) or (sent_tick is not None and not delta):
            raise _corrupt(f"{where} has an inconsistent delta base")
        if index is not None and index >= len(bases):
            raise _corrupt(f"{where} base {index} is out of range")
        if sent_tick is not None and sent_tick > tick:
            raise _corrupt(f"{where} sent_tick {sent_tick} is after tick {tick}")
        subscribers.append(
            SubscriberRecord(
                subscriber_id=sid,
                format=fmt,
                delta=delta,
                last_client_seq=_int(client_seq, f"{where} client_seq", optional=True),
                sent_tick=sent_tick,
                sent_snapshot=bases[index] if index is not None else None,
            )
        )

    return ShardRecord(
        shard_id=shard_id,
        tick=tick,
        last_now=last_now,
        next_seq=next_seq,
        idle_ticks=_int(body["idle_ticks"], "idle_ticks"),
        finished=_bool(body["finished"], "finished"),
        stopped=_bool(body["stopped"], "stopped"),
        sim_state=body["sim"],
        queue=tuple(queue),
        subscribers=tuple(subscribers),
    )
