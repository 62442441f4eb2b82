"""Shard: configuration, subscribers, inputs, ticks, frames, failure and stop."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from shards import (
    DuplicateSubscriber,
    InputQueueFull,
    InputTooLarge,
    InvalidInput,
    Shard,
    ShardAuth,
    ShardConfig,
    ShardFailed,
    ShardFull,
    ShardStopped,
    SimState,
    SnapshotError,
    SubscriberError,
    Unauthorized,
    UnknownSubscriber,
    apply_delta,
    decode_frame,
    decode_shard_state,
    encode_shard_state,
)


class Counter(SimState):
    """Records what the shard feeds it."""

    def __init__(self) -> None:
        self.count = 0
        self.applied: list[list[Any]] = []
        self.dts: list[float] = []
        self.finish_at = -1

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        self.applied.append([subscriber_id, input, now])

    def tick(self, dt: float) -> None:
        self.count += 1
        self.dts.append(dt)

    def snapshot(self) -> Any:
        return {"count": self.count}

    def is_finished(self) -> bool:
        return self.count == self.finish_at


class Mutating(Counter):
    """Mutates the input it is given and returns the same snapshot object every tick."""

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[str, Any] = {"count": 0, "items": []}

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        super().apply_input(subscriber_id, input, now)
        input["seen"] = True
        self.state["items"].append(input["v"])

    def tick(self, dt: float) -> None:
        super().tick(dt)
        self.state["count"] = self.count

    def snapshot(self) -> Any:
        return self.state


class Views(Counter):
    """Gives "solo" its own view; everyone else shares one object."""

    def __init__(self) -> None:
        super().__init__()
        self.shared: dict[str, Any] = {}

    def tick(self, dt: float) -> None:
        super().tick(dt)
        self.shared = {"count": self.count, "view": "shared"}

    def snapshot_for(self, subscriber_id: str) -> Any:
        if subscriber_id == "solo":
            return {"count": self.count, "view": "solo"}
        return self.shared


class Boom(RuntimeError):
    pass


class Failing(Counter):
    """Raises in the hook named by ``fail``."""

    def __init__(self, fail: str) -> None:
        super().__init__()
        self.fail = fail

    def _maybe(self, hook: str) -> None:
        if self.fail == hook:
            raise Boom(f"{hook} exploded")

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        self._maybe("apply_input")

    def tick(self, dt: float) -> None:
        self._maybe("tick")

    def is_finished(self) -> bool:
        self._maybe("is_finished")
        return False

    def snapshot(self) -> Any:
        self._maybe("snapshot")
        return {}

    def authorize_subscribe(self, subscriber_id: str, auth: ShardAuth) -> bool:
        self._maybe("authorize_subscribe")
        return True

    def authorize_input(self, subscriber_id: str, auth: ShardAuth, input: Any) -> bool:
        self._maybe("authorize_input")
        return True

    def to_state(self) -> Any:
        self._maybe("to_state")
        return {"count": self.count}


class FailingViews(Failing):
    def snapshot_for(self, subscriber_id: str) -> Any:
        self._maybe("snapshot_for")
        return {}


def make(sim: SimState | None = None, **config: Any) -> Shard:
    return Shard("s1", sim if sim is not None else Counter(), ShardConfig(**config))


def state(shard: Shard) -> tuple[Any, ...]:
    """Everything observable about a shard, to check that a refused call changed nothing."""
    return shard.statistics(), encode_shard_state(shard._to_record()), shard.subscriber_ids()


def frame(result: Any, sid: str, fmt: Any = "json") -> Any:
    tick, snap = decode_frame(result.frames[sid], fmt)
    assert tick == result.tick
    return snap


# --------------------------------------------------------------------------
# ShardConfig


def test_config_defaults() -> None:
    c = ShardConfig()
    assert (c.tick_rate_hz, c.max_subscribers, c.max_input_queue, c.max_input_bytes) == (
        20.0,
        64,
        1024,
        65536,
    )
    assert (c.snapshot_format, c.replay_log_ticks, c.event_driven) == ("json", 0, False)
    assert ShardConfig(tick_rate_hz=0).event_driven


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tick_rate_hz": -1}, "tick_rate_hz must be a finite number >= 0 (0 = event-driven), got -1"),
        ({"tick_rate_hz": math.nan}, "tick_rate_hz must be a finite number >= 0 (0 = event-driven), got nan"),
        ({"tick_rate_hz": math.inf}, "tick_rate_hz must be a finite number >= 0 (0 = event-driven), got inf"),
        ({"tick_rate_hz": "20"}, "tick_rate_hz must be a finite number >= 0 (0 = event-driven), got '20'"),
        ({"tick_rate_hz": True}, "tick_rate_hz must be a finite number >= 0 (0 = event-driven), got True"),
        ({"max_subscribers": 0}, "max_subscribers must be an integer >= 1, got 0"),
        ({"max_subscribers": 2.0}, "max_subscribers must be an integer >= 1, got 2.0"),
        ({"max_input_queue": 0}, "max_input_queue must be an integer >= 1, got 0"),
        ({"max_input_bytes": -5}, "max_input_bytes must be an integer >= 1, got -5"),
        ({"idle_ticks_before_shutdown": -1}, "idle_ticks_before_shutdown must be an integer >= 0, got -1"),
        ({"persist_every_ticks": None}, "persist_every_ticks must be an integer >= 0, got None"),
        ({"replay_log_ticks": -1}, "replay_log_ticks must be an integer >= 0, got -1"),
        ({"snapshot_format": "xml"}, "snapshot_format must be 'json' or 'msgpack', got 'xml'"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ShardConfig(**kwargs)


def test_shard_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"^shard_id must be a non-empty string, got ''$"):
        Shard("", Counter())
    with pytest.raises(TypeError, match=r"^sim must be a SimState instance, got dict$"):
        Shard("s", {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^config must be a ShardConfig, got dict$"):
        Shard("s", Counter(), {})  # type: ignore[arg-type]
    assert Shard("s", Counter()).config == ShardConfig()


# --------------------------------------------------------------------------
# Subscribers


def test_add_and_remove_subscribers() -> None:
    shard = make()
    assert shard.shard_id == "s1"
    shard.add_subscriber("a")
    shard.add_subscriber("b", format="msgpack", delta=True)
    assert shard.subscriber_ids() == ("a", "b")
    shard.remove_subscriber("a")
    assert shard.subscriber_ids() == ("b",)
    assert shard.statistics().subscribers == 1


@pytest.mark.parametrize(
    ("sid", "kwargs", "error", "message"),
    [
        ("a", {}, DuplicateSubscriber, "subscriber 'a' is already attached to shard 's1'"),
        ("", {}, SubscriberError, "subscriber id must be a non-empty string, got ''"),
        (7, {}, SubscriberError, "subscriber id must be a non-empty string, got 7"),
        (
            "c",
            {"format": "xml"},
            SubscriberError,
            "unknown snapshot format 'xml'; choose one of 'json', 'msgpack'",
        ),
        ("c", {"delta": 1}, SubscriberError, "delta must be a bool, got 1"),
    ],
)
def test_refused_subscriptions_change_nothing(
    sid: Any, kwargs: Any, error: type[Exception], message: str
) -> None:
    shard = make()
    shard.add_subscriber("a")
    before = state(shard)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        shard.add_subscriber(sid, **kwargs)
    assert state(shard) == before


def test_shard_full() -> None:
    shard = make(max_subscribers=2)
    shard.add_subscriber("a")
    shard.add_subscriber("b")
    before = state(shard)
    with pytest.raises(ShardFull, match=r"^shard 's1' is full \(2 subscribers\)$") as info:
        shard.add_subscriber("c")
    assert info.value.subscriber_id == "c"
    assert state(shard) == before
    shard.remove_subscriber("a")
    shard.add_subscriber("c")


def test_unknown_subscriber_is_refused_everywhere() -> None:
    shard = make()
    before = state(shard)
    message = r"^subscriber 'x' is not attached to shard 's1'$"
    with pytest.raises(UnknownSubscriber, match=message):
        shard.remove_subscriber("x")
    with pytest.raises(UnknownSubscriber, match=message):
        shard.mark_dropped("x")
    with pytest.raises(UnknownSubscriber, match=message):
        shard.last_client_seq("x")
    with pytest.raises(UnknownSubscriber, match=message):
        shard.push_input("x", 1)
    with pytest.raises(UnknownSubscriber, match=message):
        shard.push_input_authorized("x", ShardAuth(user_id="x"), 1)
    assert state(shard) == before


def test_authorized_subscribe_runs_the_hook() -> None:
    shard = make()
    shard.add_subscriber_authorized("alice", ShardAuth(user_id="alice"))
    shard.add_subscriber_authorized("bob", ShardAuth(user_id="root", admin=True), format="msgpack")
    before = state(shard)
    with pytest.raises(Unauthorized, match=r"^user 'mallory' may not subscribe to shard 's1' as 'carol'$"):
        shard.add_subscriber_authorized("carol", ShardAuth(user_id="mallory"))
    assert state(shard) == before
    assert shard.subscriber_ids() == ("alice", "bob")


def test_authorized_subscribe_checks_limits_before_the_hook() -> None:
    sim = Failing("authorize_subscribe")
    shard = make(sim, max_subscribers=1)
    shard.add_subscriber("a")
    with pytest.raises(ShardFull):
        shard.add_subscriber_authorized("b", ShardAuth(user_id="b"))
    assert not shard.failed


# --------------------------------------------------------------------------
# Inputs


def test_inputs_are_applied_fifo_with_server_sequence_numbers() -> None:
    sim = Counter()
    shard = make(sim)
    shard.add_subscriber("a")
    shard.add_subscriber("b")
    assert [shard.push_input("a", 1), shard.push_input("b", {"k": [2]}), shard.push_input("a", "3")] == [
        1,
        2,
        3,
    ]
    assert shard.statistics().inputs_queued == 3
    result = shard.run_tick(5.0)
    assert sim.applied == [["a", 1, 5.0], ["b", {"k": [2]}, 5.0], ["a", "3", 5.0]]
    assert result.inputs_applied == 3
    assert shard.push_input("b", None) == 4
    stats = shard.statistics()
    assert (stats.inputs_accepted, stats.inputs_applied, stats.inputs_queued) == (4, 3, 1)


def test_inputs_are_copied_at_push_time() -> None:
    sim = Mutating()
    shard = make(sim, replay_log_ticks=4)
    shard.add_subscriber("a")
    value = {"v": [1]}
    shard.push_input("a", value)
    value["v"].append(2)
    shard.run_tick(1.0)
    assert sim.applied == [["a", {"v": [1], "seen": True}, 1.0]]
    assert value == {"v": [1, 2]}
    log = shard.replay_log
    assert log is not None
    assert log.entries()[0].inputs == (("a", {"v": [1]}),)


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "message"),
    [
        (
            (1, 2),
            {},
            InvalidInput,
            "input from 'a' is not encodable: cannot encode value: tuples cannot cross "
            "(production's Python SDK refuses them); use a list",
        ),
        (
            {"k": object()},
            {},
            InvalidInput,
            "input from 'a' is not encodable: cannot encode value['k']: type object is not supported "
            "(None, bool, int, float, str, bytes, list, dict with str keys, aware datetime)",
        ),
        ("x" * 100, {}, InputTooLarge, "input from 'a' is 102 bytes encoded; the limit is 64"),
        (1, {"client_seq": -1}, InvalidInput, "client_seq must be None or an integer in [0, 2**63), got -1"),
        (
            1,
            {"client_seq": True},
            InvalidInput,
            "client_seq must be None or an integer in [0, 2**63), got True",
        ),
        (
            1,
            {"client_seq": 2**63},
            InvalidInput,
            f"client_seq must be None or an integer in [0, 2**63), got {2**63}",
        ),
    ],
    ids=["tuple", "object", "too-large", "negative-seq", "bool-seq", "huge-seq"],
)
def test_refused_inputs_change_nothing(value: Any, kwargs: Any, error: type[Exception], message: str) -> None:
    shard = make(max_input_bytes=64)
    shard.add_subscriber("a")
    shard.push_input("a", 0)
    before = state(shard)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        shard.push_input("a", value, **kwargs)
    assert state(shard) == before
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        shard.push_input_authorized("a", ShardAuth(user_id="a"), value, **kwargs)
    assert state(shard) == before
    assert shard.push_input("a", 1) == 2


def test_input_at_the_size_limit_is_accepted() -> None:
    shard = make(max_input_bytes=3)
    shard.add_subscriber("a")
    shard.push_input("a", "ab")  # 0xa2 'a' 'b'
    with pytest.raises(InputTooLarge):
        shard.push_input("a", "abc")


def test_input_queue_full() -> None:
    shard = make(max_input_queue=2)
    shard.add_subscriber("a")
    shard.push_input("a", 1)
    shard.push_input("a", 2)
    before = state(shard)
    with pytest.raises(InputQueueFull, match=r"^shard 's1' input queue is full \(2 inputs\)$"):
        shard.push_input("a", 3)
    assert state(shard) == before
    shard.run_tick(0.0)
    assert shard.push_input("a", 3) == 3


def test_authorized_input_runs_the_hook() -> None:
    class OnlyInts(Counter):
        def authorize_input(self, subscriber_id: str, auth: ShardAuth, input: Any) -> bool:
            return type(input) is int

    shard = make(OnlyInts())
    shard.add_subscriber("a")
    assert shard.push_input_authorized("a", ShardAuth(user_id="a"), 5, client_seq=1) == 1
    before = state(shard)
    with pytest.raises(Unauthorized, match=r"^user 'a' may not send this input as 'a'$"):
        shard.push_input_authorized("a", ShardAuth(user_id="a"), "no")
    assert state(shard) == before


def test_client_sequence_numbers_are_acknowledged_once_applied() -> None:
    shard = make()
    shard.add_subscriber("a")
    shard.add_subscriber("b")
    assert shard.last_client_seq("a") is None
    shard.push_input("a", 1, client_seq=10)
    shard.push_input("a", 2, client_seq=11)
    shard.push_input("b", 3)
    assert shard.last_client_seq("a") is None  # queued, not applied yet
    result = shard.run_tick(1.0)
    assert result.acks == {"a": 11}
    assert shard.last_client_seq("a") == 11
    assert shard.last_client_seq("b") is None
    shard.push_input("a", 4)  # no client_seq: the last one stands
    assert shard.run_tick(2.0).acks == {}
    assert shard.last_client_seq("a") == 11


def test_inputs_of_a_departed_subscriber_are_still_applied() -> None:
    sim = Counter()
    shard = make(sim)
    shard.add_subscriber("a")
    shard.push_input("a", "bye", client_seq=3)
    shard.remove_subscriber("a")
    result = shard.run_tick(1.0)
    assert sim.applied == [["a", "bye", 1.0]]
    assert result.acks == {}


# --------------------------------------------------------------------------
# Ticks and time


def test_dt_first_tick_uses_the_tick_rate_then_elapsed_time() -> None:
    sim = Counter()
    shard = make(sim, tick_rate_hz=10)
    results = [shard.run_tick(t) for t in (100.0, 100.25, 100.25, 101)]
    assert sim.dts == [0.1, 0.25, 0.0, 0.75]
    assert [r.tick for r in results] == [1, 2, 3, 4]
    assert results[-1].now == 101.0
    assert type(results[-1].now) is float
    assert shard.tick == 4


def test_event_driven_first_tick_has_zero_dt() -> None:
    sim = Counter()
    shard = make(sim, tick_rate_hz=0)
    shard.run_tick(7.0)
    shard.run_tick(9.5)
    assert sim.dts == [0.0, 2.5]


@pytest.mark.parametrize(
    ("now", "message"),
    [
        (math.nan, "now must be a finite number of seconds, got nan"),
        (math.inf, "now must be a finite number of seconds, got inf"),
        ("1", "now must be a finite number of seconds, got '1'"),
        (0.5, "time went backwards: now=0.5 is before the previous tick's 1.0"),
    ],
)
def test_bad_time_is_refused_and_changes_nothing(now: Any, message: str) -> None:
    shard = make()
    shard.add_subscriber("a")
    shard.run_tick(1.0)
    shard.push_input("a", 1)
    before = state(shard)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        shard.run_tick(now)
    assert state(shard) == before


def test_frames_carry_tick_and_snapshot_in_each_subscribers_format() -> None:
    shard = make(snapshot_format="msgpack")
    shard.add_subscriber("m")
    shard.add_subscriber("j", format="json")
    result = shard.run_tick(0.0)
    assert list(result.frames) == ["m", "j"]
    assert frame(result, "m", "msgpack") == {"count": 1}
    assert result.frames["j"] == b"\x00" * 7 + b'\x01{"count":1}'


def test_subscribers_seeing_the_same_snapshot_share_one_encoding_per_format() -> None:
    shard = make()
    for i in range(3):
        shard.add_subscriber(f"j{i}")
        shard.add_subscriber(f"m{i}", format="msgpack")
    result = shard.run_tick(0.0)
    assert result.frames["j0"] is result.frames["j2"]
    stats = shard.statistics()
    assert (stats.frames_built, stats.encodings) == (6, 2)
    assert stats.frame_bytes == sum(len(f) for f in result.frames.values())
    assert stats.bytes_encoded == len(result.frames["j0"]) + len(result.frames["m0"]) - 16


def test_snapshot_for_shares_by_identity() -> None:
    shard = make(Views())
    for sid in ("a", "b", "solo"):
        shard.add_subscriber(sid)
    result = shard.run_tick(0.0)
    assert frame(result, "a") == frame(result, "b") == {"count": 1, "view": "shared"}
    assert frame(result, "solo") == {"count": 1, "view": "solo"}
    assert shard.statistics().encodings == 2


def test_no_subscribers_no_frames() -> None:
    shard = make()
    assert shard.run_tick(0.0).frames == {}
    assert shard.statistics().frames_built == 0


# --------------------------------------------------------------------------
# Delta mode


def test_delta_subscriber_gets_full_then_deltas_and_full_after_a_drop() -> None:
    sim = Mutating()
    shard = make(sim)
    shard.add_subscriber("d", delta=True)
    shard.add_subscriber("p")
    shard.push_input("d", {"v": "x"})
    first = shard.run_tick(0.0)
    assert frame(first, "d") == {"full": {"count": 1, "items": ["x"]}}
    second = shard.run_tick(0.05)
    assert frame(second, "d") == {"base": 1, "delta": {"set": {"count": 2}}}
    shard.push_input("d", {"v": "y"})
    third = shard.run_tick(0.1)
    env = frame(third, "d")
    assert env == {"base": 2, "delta": {"set": {"count": 3}, "sub": {"items": {"len": 2, "set": {"1": "y"}}}}}
    client = apply_delta(apply_delta({"count": 1, "items": ["x"]}, frame(second, "d")["delta"]), env["delta"])
    assert client == frame(third, "p")
    shard.mark_dropped("d")
    shard.mark_dropped("p")  # no effect on a full-frame subscriber
    fourth = shard.run_tick(0.15)
    assert frame(fourth, "d") == {"full": {"count": 4, "items": ["x", "y"]}}
    assert frame(fourth, "p") == {"count": 4, "items": ["x", "y"]}
    stats = shard.statistics()
    assert (stats.frames_built, stats.delta_frames) == (8, 2)


def test_delta_subscribers_in_step_share_one_encoding() -> None:
    shard = make()
    shard.add_subscriber("a", delta=True)
    shard.add_subscriber("b", delta=True)
    shard.add_subscriber("c", delta=True, format="msgpack")
    shard.run_tick(0.0)
    assert shard.statistics().encodings == 2
    shard.add_subscriber("late", delta=True)
    result = shard.run_tick(1.0)
    assert frame(result, "late") == {"full": {"count": 2}}
    assert frame(result, "a") == {"base": 1, "delta": {"set": {"count": 2}}}
    assert shard.statistics().encodings == 5


# --------------------------------------------------------------------------
# Snapshot errors


def test_snapshot_error_fails_the_frames_cleanly() -> None:
    class Bad(Counter):
        def __init__(self) -> None:
            super().__init__()
            self.x = 1.0

        def snapshot(self) -> Any:
            return {"count": self.count, "x": self.x}

    sim = Bad()
    shard = make(sim, persist_every_ticks=2)
    shard.add_subscriber("d", delta=True)
    shard.run_tick(0.0)
    sim.x = math.nan
    frames_before = shard.statistics().frames_built
    message = (
        "shard 's1' tick 2, subscriber 'd': cannot encode the snapshot as JSON: "
        "snapshot['delta']['set']['x'] is NaN; JSON allows only finite numbers"
    )
    with pytest.raises(SnapshotError, match=f"^{re.escape(message)}$"):
        shard.run_tick(1.0)
    # The tick happened; the subscriber's frame state did not move and the shard is usable.
    assert shard.tick == 2
    assert not shard.failed
    assert shard.statistics().frames_built == frames_before
    sim.x = 2.0
    result = shard.run_tick(2.0)
    assert frame(result, "d") == {"base": 1, "delta": {"set": {"count": 3, "x": 2.0}}}
    assert result.persist is not None  # the record due at tick 2 comes now
    assert decode_shard_state(result.persist).tick == 3


def test_snapshot_error_on_the_shared_path() -> None:
    class Nan(Counter):
        def snapshot(self) -> Any:
            return {"v": math.nan}

    shard = make(Nan())
    shard.add_subscriber("m", format="msgpack")
    shard.add_subscriber("j")
    message = (
        "shard 's1' tick 1, subscriber 'j': cannot encode the snapshot as JSON: "
        "snapshot['v'] is NaN; JSON allows only finite numbers"
    )
    with pytest.raises(SnapshotError, match=f"^{re.escape(message)}$"):
        shard.run_tick(0.0)
    assert shard.statistics().frames_built == 0


def test_delta_base_copy_survives_values_msgpack_cannot_carry() -> None:
    class Big(Counter):
        def snapshot(self) -> Any:
            return {"big": 2**70 + self.count, "t": (1, self.count)}

    shard = make(Big())
    shard.add_subscriber("d", delta=True)
    assert frame(shard.run_tick(0.0), "d") == {"full": {"big": 2**70 + 1, "t": [1, 1]}}
    assert frame(shard.run_tick(1.0), "d") == {
        "base": 1,
        "delta": {"set": {"big": 2**70 + 2}, "sub": {"t": {"len": 2, "set": {"1": 2}}}},
    }


def test_unpersistable_state_raises_snapshot_error_and_keeps_frame_state() -> None:
    class Unstorable(Counter):
        def to_state(self) -> Any:
            return {"count": self.count, "bad": (1, 2) if self.count == 2 else None}

    shard = make(Unstorable(), persist_every_ticks=1)
    shard.add_subscriber("d", delta=True)
    assert shard.run_tick(0.0).persist is not None
    with pytest.raises(
        SnapshotError, match=r"^cannot persist shard 's1': cannot encode value\['sim'\]\['bad'\]: "
    ):
        shard.run_tick(1.0)
    result = shard.run_tick(2.0)
    assert frame(result, "d") == {"base": 1, "delta": {"set": {"count": 3}}}


# --------------------------------------------------------------------------
# Persistence policy, quiet, idle, finish, stop


def test_persist_every_n_ticks() -> None:
    shard = make(persist_every_ticks=3)
    shard.add_subscriber("a")
    persisted = [shard.run_tick(float(t)).persist is not None for t in range(7)]
    assert persisted == [False, False, True, False, False, True, False]
    assert shard.statistics().persists == 2


def test_quiet_shard_returns_a_record() -> None:
    shard = make(persist_every_ticks=0)
    shard.add_subscriber("a")
    shard.push_input("a", 1)
    busy = shard.run_tick(0.0)
    assert not busy.quiet
    assert busy.persist is None
    shard.remove_subscriber("a")
    assert shard.quiet
    quiet = shard.run_tick(1.0)
    assert quiet.quiet
    assert quiet.persist is not None
    assert decode_shard_state(quiet.persist).subscribers == ()


def test_queued_input_keeps_a_shard_from_being_quiet() -> None:
    shard = make(persist_every_ticks=0)
    shard.add_subscriber("a")
    shard.push_input("a", 1)
    shard.remove_subscriber("a")
    assert not shard.quiet
    assert shard.run_tick(0.0).quiet  # the input was applied; nothing left


def test_persist_now_for_the_host() -> None:
    shard = make()
    shard.add_subscriber("a", delta=True)
    shard.push_input("a", [1], client_seq=4)
    record = decode_shard_state(shard.persist_now())
    assert record.tick == 0
    assert record.last_now is None
    assert [(q.seq, q.subscriber_id, q.input, q.client_seq) for q in record.queue] == [(1, "a", [1], 4)]
    assert record.subscribers[0].delta
    assert shard.statistics().persists == 1


def test_idle_shutdown_after_n_idle_ticks() -> None:
    shard = make(idle_ticks_before_shutdown=3, persist_every_ticks=0)
    shard.add_subscriber("a")
    shard.run_tick(0.0)
    shard.remove_subscriber("a")
    flags = [shard.run_tick(float(t)).idle_shutdown for t in range(1, 5)]
    assert flags == [False, False, True, True]
    assert shard.statistics().idle_ticks == 4
    shard.add_subscriber("b")
    assert not shard.run_tick(9.0).idle_shutdown
    assert shard.statistics().idle_ticks == 0


def test_idle_shutdown_disabled_with_zero() -> None:
    shard = make(idle_ticks_before_shutdown=0)
    assert not any(shard.run_tick(float(t)).idle_shutdown for t in range(50))


def test_finish_persists_and_stops_the_shard() -> None:
    sim = Counter()
    sim.finish_at = 2
    shard = make(sim, persist_every_ticks=0)
    shard.add_subscriber("a")
    assert not shard.run_tick(0.0).finished
    last = shard.run_tick(1.0)
    assert last.finished
    assert last.persist is not None
    assert frame(last, "a") == {"count": 2}
    assert decode_shard_state(last.persist).finished
    assert shard.finished
    assert shard.stopped
    before = state(shard)
    for call in (
        lambda: shard.push_input("a", 1),
        lambda: shard.push_input_authorized("a", ShardAuth(user_id="a"), 1),
        lambda: shard.add_subscriber("b"),
        lambda: shard.add_subscriber_authorized("b", ShardAuth(user_id="b")),
    ):
        with pytest.raises(
            ShardStopped, match=r"^shard 's1' has finished; cannot (accept inputs|add a subscriber)$"
        ):
            call()
    with pytest.raises(ShardStopped, match=r"^shard 's1' has finished; cannot run a tick$"):
        shard.run_tick(2.0)
    assert state(shard) == before
    assert shard.statistics().state == "finished"
    shard.remove_subscriber("a")
    shard.persist_now()


def test_stop() -> None:
    shard = make()
    shard.add_subscriber("a")
    shard.stop()
    shard.stop()
    assert shard.stopped
    assert not shard.finished
    assert shard.statistics().state == "stopped"
    with pytest.raises(ShardStopped, match=r"^shard 's1' is stopped; cannot accept inputs$"):
        shard.push_input("a", 1)
    with pytest.raises(ShardStopped, match=r"^shard 's1' is stopped; cannot add a subscriber$"):
        shard.add_subscriber("b")
    with pytest.raises(ShardStopped, match=r"^shard 's1' is stopped; cannot run a tick$"):
        shard.run_tick(0.0)
    assert decode_shard_state(shard.persist_now()).stopped
    shard.remove_subscriber("a")


# --------------------------------------------------------------------------
# Failure


def _provoke(shard: Shard, hook: str) -> None:
    auth = ShardAuth(user_id="b")
    if hook == "authorize_subscribe":
        shard.add_subscriber_authorized("b", auth)
    elif hook == "authorize_input":
        shard.push_input_authorized("a", auth, 1)
    elif hook == "to_state":
        shard.persist_now()
    else:
        shard.run_tick(1.0)


@pytest.mark.parametrize(
    "hook",
    [
        "apply_input",
        "tick",
        "is_finished",
        "snapshot",
        "snapshot_for",
        "authorize_subscribe",
        "authorize_input",
        "to_state",
    ],
)
def test_a_raising_hook_fails_the_shard_for_good(hook: str) -> None:
    sim = FailingViews(hook) if hook == "snapshot_for" else Failing(hook)
    shard = make(sim, persist_every_ticks=0)
    shard.add_subscriber("a")
    shard.push_input("a", 1)
    message = f"^shard 's1' failed: {hook}\\(\\) raised Boom: {hook} exploded$"
    with pytest.raises(ShardFailed, match=message) as first:
        _provoke(shard, hook)
    cause = first.value.__cause__
    assert isinstance(cause, Boom)
    assert shard.failed
    assert shard.statistics().state == "failed"
    for call in (
        lambda: shard.run_tick(2.0),
        lambda: shard.push_input("a", 1),
        lambda: shard.add_subscriber("c"),
        lambda: shard.remove_subscriber("a"),
        lambda: shard.mark_dropped("a"),
        lambda: shard.last_client_seq("a"),
        shard.persist_now,
        shard.stop,
        shard.subscriber_ids,
    ):
        with pytest.raises(ShardFailed, match=message) as later:
            call()
        assert later.value.__cause__ is cause
