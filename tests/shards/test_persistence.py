"""Persisted shard state: the versioned record, refusals, and exact restore."""

from __future__ import annotations

import re
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from shards import (
    SHARD_STATE_VERSION,
    Shard,
    ShardConfig,
    SimState,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotVersionError,
    decode,
    decode_shard_state,
    encode,
    encode_shard_state,
    restore_or_init,
)
from shards._persistence import SHARD_STATE_MAGIC


class Tally(SimState):
    """Sums integer inputs per subscriber; finishes when the total reaches ``goal``."""

    def __init__(self, goal: int = 10**9) -> None:
        self.totals: dict[str, int] = {}
        self.time = 0.0
        self.goal = goal
        self.ticks = 0

    @classmethod
    def create(cls, shard_id: str) -> Tally:
        sim = cls()
        sim.totals = {"created-for": len(shard_id)}
        return sim

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        self.totals[subscriber_id] = self.totals.get(subscriber_id, 0) + int(input["n"])

    def tick(self, dt: float) -> None:
        self.time += dt
        self.ticks += 1

    def snapshot(self) -> Any:
        return {"totals": dict(self.totals), "t": self.time, "ticks": self.ticks}

    def is_finished(self) -> bool:
        return sum(self.totals.values()) >= self.goal


def _body(record: bytes) -> Any:
    return decode(record[6:])


def _with_body(body: Any) -> bytes:
    return SHARD_STATE_MAGIC + SHARD_STATE_VERSION.to_bytes(2, "big") + encode(body)


def _sample() -> bytes:
    shard = Shard("room", Tally(), ShardConfig(tick_rate_hz=10))
    shard.add_subscriber("a", delta=True)
    shard.add_subscriber("b", format="msgpack")
    shard.push_input("a", {"n": 1}, client_seq=7)
    shard.run_tick(3.0)
    shard.push_input("b", {"n": 2})
    return shard.persist_now()


def test_record_layout_and_fields() -> None:
    data = _sample()
    assert data[:6] == b"SHSM\x00\x01"
    rec = decode_shard_state(data)
    assert (rec.shard_id, rec.tick, rec.last_now, rec.next_seq, rec.idle_ticks) == ("room", 1, 3.0, 3, 0)
    assert (rec.finished, rec.stopped) == (False, False)
    assert rec.sim_state == {"totals": {"a": 1}, "time": 0.1, "goal": 10**9, "ticks": 1}
    assert [(q.seq, q.subscriber_id, q.input, q.client_seq) for q in rec.queue] == [(2, "b", {"n": 2}, None)]
    a, b = rec.subscribers
    assert (a.subscriber_id, a.format, a.delta, a.last_client_seq, a.sent_tick) == ("a", "json", True, 7, 1)
    assert a.sent_snapshot == {"totals": {"a": 1}, "t": 0.1, "ticks": 1}
    assert (b.subscriber_id, b.format, b.delta, b.last_client_seq, b.sent_tick) == (
        "b",
        "msgpack",
        False,
        None,
        None,
    )
    assert encode_shard_state(rec) == data


def test_encoding_is_deterministic() -> None:
    assert _sample() == _sample()


def test_unknown_version_is_refused() -> None:
    data = _sample()
    with pytest.raises(
        SnapshotVersionError, match=r"^shard record version 2 is not supported; this code reads version 1$"
    ):
        decode_shard_state(data[:4] + b"\x00\x02" + data[6:])


def _mutate(change: Any) -> bytes:
    body = _body(_sample())
    change(body)
    return _with_body(body)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "it does not start with b'SHSM' and a version"),
        (b"SHSM\x00", "it does not start with b'SHSM' and a version"),
        (b"XXXX\x00\x01\x80", "it does not start with b'SHSM' and a version"),
        (b"SHSM\x00\x01\xc1", "the body does not decode (cannot decode value: "),
        (_with_body([1]), "the body must be a dict with fields "),
        (_mutate(lambda b: b.pop("idle_ticks")), "the body must be a dict with fields "),
        (_mutate(lambda b: b.update(extra=1)), "the body must be a dict with fields "),
        (_mutate(lambda b: b.update(shard_id="")), "shard_id must be a non-empty string, got ''"),
        (_mutate(lambda b: b.update(tick=-1)), "tick must be an integer >= 0, got -1"),
        (_mutate(lambda b: b.update(tick=True)), "tick must be an integer >= 0, got True"),
        (_mutate(lambda b: b.update(last_now="x")), "last_now must be a finite float or None, got 'x'"),
        (
            _mutate(lambda b: b.update(last_now=float("nan"))),
            "last_now must be a finite float or None, got nan",
        ),
        (_mutate(lambda b: b.update(last_now=None)), "last_now None does not fit tick 1"),
        (_mutate(lambda b: b.update(next_seq=0)), "next_seq must be an integer >= 1, got 0"),
        (_mutate(lambda b: b.update(next_seq=2)), "queue[0] seq 2 is out of order (next_seq is 2)"),
        (_mutate(lambda b: b.update(finished=1)), "finished must be a bool, got 1"),
        (_mutate(lambda b: b.update(queue={})), "queue must be a list, got {}"),
        (_mutate(lambda b: b["queue"][0].pop()), "queue[0] must be a list of 4 items, got [2, 'b', "),
        (
            _mutate(lambda b: b["queue"][0].__setitem__(2, "x")),
            "queue[0] input must be encoded bytes, got str",
        ),
        (_mutate(lambda b: b["queue"][0].__setitem__(2, b"\xc1")), "queue[0] input does not decode ("),
        (
            _mutate(lambda b: b["queue"][0].__setitem__(3, -2)),
            "queue[0] client_seq must be an integer >= 0, got -2",
        ),
        (
            _mutate(lambda b: b["queue"].append(b["queue"][0])),
            "queue[1] seq 2 is out of order (next_seq is 3)",
        ),
        (
            _mutate(lambda b: b["subscribers"][1].__setitem__(1, "xml")),
            "subscribers[1] format must be 'json' or 'msgpack', got 'xml'",
        ),
        (_mutate(lambda b: b["subscribers"][1].__setitem__(0, "a")), "subscribers[1] id 'a' appears twice"),
        (
            _mutate(lambda b: b["subscribers"][0].__setitem__(2, None)),
            "subscribers[0] delta must be a bool, got None",
        ),
        (
            _mutate(lambda b: b["subscribers"][0].__setitem__(5, None)),
            "subscribers[0] has an inconsistent delta base",
        ),
        (_mutate(lambda b: b["subscribers"][0].__setitem__(5, 3)), "subscribers[0] base 3 is out of range"),
        (
            _mutate(lambda b: b["subscribers"][0].__setitem__(4, 9)),
            "subscribers[0] sent_tick 9 is after tick 1",
        ),
        (_mutate(lambda b: b["bases"].__setitem__(0, 5)), "bases[0] must be encoded bytes, got int"),
        (_mutate(lambda b: b["bases"].__setitem__(0, b"\xc1")), "bases[0] does not decode ("),
    ],
)
def test_garbage_is_refused_never_guessed(data: bytes, problem: str) -> None:
    with pytest.raises(SnapshotCorrupt, match=f"^shard record is corrupt: {re.escape(problem)}"):
        decode_shard_state(data)


def test_non_bytes_record_is_refused() -> None:
    with pytest.raises(SnapshotCorrupt, match=r"^shard record is corrupt: expected bytes, got str$"):
        decode_shard_state("SHSM")  # type: ignore[arg-type]


def test_restore_or_init_creates_a_new_shard_without_a_record() -> None:
    shard = restore_or_init("room-42", Tally, None, None)
    assert shard.tick == 0
    assert isinstance(shard.sim, Tally)
    assert shard.sim.totals == {"created-for": 7}
    assert shard.config == ShardConfig()


def test_restore_refuses_another_shards_record() -> None:
    with pytest.raises(SnapshotError, match=r"^the record belongs to shard 'room', not 'other'$"):
        restore_or_init("other", Tally, None, _sample())


def test_restore_wraps_hook_errors() -> None:
    class Broken(Tally):
        @classmethod
        def create(cls, shard_id: str) -> Broken:
            raise KeyError("nope")

        @classmethod
        def from_state(cls, value: Any) -> Broken:
            raise ValueError("bad state")

    with pytest.raises(
        SnapshotError, match=r"^cannot create shard 'room': Broken.create\(\) raised KeyError: 'nope'$"
    ) as info:
        restore_or_init("room", Broken, None, None)
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(
        SnapshotError,
        match=r"^cannot restore shard 'room': Broken.from_state\(\) raised ValueError: bad state$",
    ):
        restore_or_init("room", Broken, None, _sample())


def test_restored_shard_resumes_exactly() -> None:
    config = ShardConfig(tick_rate_hz=10, persist_every_ticks=2)
    restored = restore_or_init("room", Tally, config, _sample())
    assert restored.tick == 1
    assert restored.last_client_seq("a") == 7
    assert restored.subscriber_ids() == ("a", "b")
    result = restored.run_tick(3.5)
    assert result.dt == 0.5
    assert result.persist is not None
    assert decode_shard_state(result.persist).sim_state["totals"] == {"a": 1, "b": 2}


def test_restored_limits_apply_to_new_work_only() -> None:
    config = ShardConfig(max_input_queue=1, max_subscribers=1)
    shard = Shard("room", Tally(), ShardConfig())
    shard.add_subscriber("a")
    shard.add_subscriber("b")
    shard.push_input("a", {"n": 1})
    shard.push_input("a", {"n": 1})
    restored = restore_or_init("room", Tally, config, shard.persist_now())
    assert restored.statistics().inputs_queued == 2
    assert restored.subscriber_ids() == ("a", "b")


def test_finished_shard_restores_finished() -> None:
    shard = Shard("room", Tally(goal=1))
    shard.add_subscriber("a")
    shard.push_input("a", {"n": 1})
    result = shard.run_tick(0.0)
    assert result.finished
    assert result.persist is not None
    assert restore_or_init("room", Tally, None, result.persist).finished


def test_delta_subscribers_share_one_stored_base() -> None:
    shard = Shard("room", Tally())
    for sid in "abc":
        shard.add_subscriber(sid, delta=True)
    shard.run_tick(0.0)
    record = shard.persist_now()
    assert len(_body(record)["bases"]) == 1
    restored = restore_or_init("room", Tally, None, record)
    before = restored.statistics().encodings
    restored.run_tick(1.0)
    assert restored.statistics().encodings - before == 1


def test_a_base_the_codec_refuses_is_left_out() -> None:
    class IntKeys(Tally):
        def snapshot(self) -> Any:
            return {"by_id": {1: "a"}, "ticks": self.ticks}

    shard = Shard("room", IntKeys())
    shard.add_subscriber("m", format="msgpack", delta=True)
    shard.run_tick(0.0)
    record = shard.persist_now()
    assert _body(record)["bases"] == []
    assert decode_shard_state(record).subscribers[0].sent_tick is None
    restored = restore_or_init("room", IntKeys, None, record)
    envelope = msgpack.unpackb(restored.run_tick(1.0).frames["m"][8:], strict_map_key=False)
    assert envelope == {"full": {"by_id": {1: "a"}, "ticks": 2}}


# --------------------------------------------------------------------------
# Property: restore(persist(shard)) behaves exactly like shard.

_ids = st.sampled_from(["a", "b", "c", "d"])
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), _ids, st.sampled_from(["json", "msgpack"]), st.booleans()),
        st.tuples(st.just("remove"), _ids),
        st.tuples(st.just("push"), _ids, st.integers(-5, 5), st.none() | st.integers(0, 100)),
        st.tuples(st.just("tick"), st.floats(0, 2, allow_nan=False)),
        st.tuples(st.just("drop"), _ids),
    ),
    max_size=25,
)


def _run(shard: Shard, ops: list[Any], clock: list[float]) -> list[Any]:
    """Apply ops, ignoring refusals, and return what each produced."""
    out: list[Any] = []
    for op in ops:
        try:
            if op[0] == "add":
                shard.add_subscriber(op[1], format=op[2], delta=op[3])
            elif op[0] == "remove":
                shard.remove_subscriber(op[1])
            elif op[0] == "push":
                out.append(shard.push_input(op[1], {"n": op[2]}, client_seq=op[3]))
            elif op[0] == "tick":
                clock[0] += op[1]
                out.append(shard.run_tick(clock[0]))
            else:
                shard.mark_dropped(op[1])
        except (SnapshotError, ValueError):
            raise
        except Exception as exc:  # refusals are part of the behaviour we compare
            out.append(type(exc).__name__)
    return out


@settings(max_examples=60, deadline=None)
@given(_ops, _ops, st.sampled_from([0, 10]), st.integers(0, 3))
def test_restore_of_persist_behaves_identically(before: Any, after: Any, rate: int, every: int) -> None:
    config = ShardConfig(tick_rate_hz=rate, persist_every_ticks=every, max_subscribers=3, max_input_queue=4)
    original = Shard("room", Tally(goal=40), config)
    clock = [100.0]
    _run(original, before, clock)
    restored = restore_or_init("room", Tally, config, original.persist_now())
    assert restored.tick == original.tick
    assert _run(restored, after, [clock[0]]) == _run(original, after, [clock[0]])
    assert restored.persist_now() == original.persist_now()
