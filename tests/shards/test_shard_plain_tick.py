"""The plain tick (Shard.advance's fast path) must be indistinguishable from the general path."""

from __future__ import annotations

import math
from typing import Any

import pytest

from shards import Shard, ShardConfig, ShardsError, SimState, TickOutcome, TickResult, decode_frame


class General(Shard):
    """A shard that never takes the plain tick."""

    def _refresh_plain(self) -> None:
        self._plain_format = None


class ViaAdvance(Shard):
    """A shard whose run_tick is built from advance() as its documentation tells a host to."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.forms: list[type] = []

    def run_tick(self, now: float) -> TickResult:
        previous = self._last_now
        outcome = self.advance(now)
        self.forms.append(type(outcome))
        if isinstance(outcome, bytes):
            assert previous is not None
            return TickResult(
                tick=self.tick,
                now=now,
                dt=now - previous,
                inputs_applied=0,
                frames=dict.fromkeys(self.subscriber_ids(), outcome),
            )
        assert type(outcome) is TickOutcome
        return TickResult(**outcome._asdict())


class Counter(SimState):
    def __init__(
        self, finish_at: int = 0, bad_at: int = 0, fail_at: int = 0, snapshot_fails_at: int = 0
    ) -> None:
        self.n = 0
        self.finish_at = finish_at
        self.bad_at = bad_at
        self.fail_at = fail_at
        self.snapshot_fails_at = snapshot_fails_at

    def apply_input(self, subscriber_id: str, input: Any, now: float) -> None:
        self.n += int(input)

    def tick(self, dt: float) -> None:
        self.n += 1
        if self.fail_at and self.n == self.fail_at:
            raise RuntimeError("boom")

    def snapshot(self) -> Any:
        if self.snapshot_fails_at and self.n == self.snapshot_fails_at:
            raise RuntimeError("no snapshot")
        if self.bad_at and self.n == self.bad_at:
            return {"n": {1, 2}}  # a set: no format carries it
        return {"n": self.n, "b": True, "f": 0.5, "s": "x", "l": [1, None]}


class Finishing(Counter):
    def is_finished(self) -> bool:
        return bool(self.finish_at) and self.n >= self.finish_at


def outcome(shard: Shard, step: Any) -> Any:
    try:
        result = step(shard)
    except (ShardsError, ValueError) as exc:
        return type(exc).__name__, str(exc)
    if isinstance(result, TickResult):
        return result
    return result


def script(fmt: str) -> list[Any]:
    """Steps applied to both shards; each returns something comparable."""
    t = [100.0]

    def tick(dt: float = 0.05) -> Any:
        def step(shard: Shard) -> Any:
            return shard.run_tick(t[0] + dt)

        return step

    def advance(dt: float) -> Any:
        def step(shard: Shard) -> None:
            t[0] += dt

        return step

    steps: list[Any] = []
    for i in range(12):
        steps += [tick(), advance(0.05)]
        if i == 2:
            steps.append(lambda s: s.push_input("a", 2, client_seq=7))
        if i == 4:
            steps.append(lambda s: s.add_subscriber("b", format=fmt))
        if i == 5:
            steps.append(lambda s: s.add_subscriber("c", format="msgpack" if fmt == "json" else "json"))
        if i == 6:
            steps.append(lambda s: s.remove_subscriber("c"))
        if i == 7:
            steps.append(lambda s: s.add_subscriber("d", delta=True))
        if i == 8:
            steps.append(lambda s: s.remove_subscriber("d"))
    steps.append(tick(0.0))  # time standing still
    steps.append(tick(-1.0))  # time going backwards
    steps.append(lambda s: s.run_tick(math.nan))
    steps.append(lambda s: s.run_tick(math.inf))
    steps.append(lambda s: s.run_tick(10**9))  # an int
    steps.append(lambda s: s.remove_subscriber("a"))
    steps.append(lambda s: s.remove_subscriber("b"))
    steps.append(tick())  # quiet
    steps.append(lambda s: (s.statistics(), s.persist_now()))
    return steps


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize(
    ("sim", "persist_every"),
    [
        (lambda: Counter(), 0),
        (lambda: Counter(), 3),
        (lambda: Finishing(finish_at=12), 0),
        (lambda: Counter(bad_at=7), 0),
        (lambda: Counter(fail_at=8), 0),
        (lambda: Counter(snapshot_fails_at=3), 0),
    ],
    ids=["plain", "persist-every-3", "finishes", "unencodable", "fails", "snapshot-fails"],
)
def test_plain_and_general_ticks_agree_step_by_step(fmt: str, sim: Any, persist_every: int) -> None:
    config = ShardConfig(tick_rate_hz=20, persist_every_ticks=persist_every, snapshot_format=fmt)  # type: ignore[arg-type]
    fast = Shard("s", sim(), config)
    slow = General("s", sim(), config)
    for shard in (fast, slow):
        shard.add_subscriber("a")
    took_plain = 0
    for step in script(fmt):
        before = fast._plain_format is not None
        got, want = outcome(fast, step), outcome(slow, step)
        assert got == want
        took_plain += before and isinstance(got, TickResult)
        assert fast.statistics() == slow.statistics()
        assert (fast.tick, fast.quiet, fast.failed, fast.finished) == (
            slow.tick,
            slow.quiet,
            slow.failed,
            slow.finished,
        )
    assert took_plain > 0  # the fast path really ran


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize(
    ("sim", "persist_every"),
    [
        (lambda: Counter(), 0),
        (lambda: Counter(), 3),
        (lambda: Finishing(finish_at=12), 0),
        (lambda: Counter(bad_at=7), 0),
        (lambda: Counter(fail_at=8), 0),
        (lambda: Counter(snapshot_fails_at=3), 0),
    ],
    ids=["plain", "persist-every-3", "finishes", "unencodable", "fails", "snapshot-fails"],
)
def test_advance_reports_the_same_ticks_as_run_tick(fmt: str, sim: Any, persist_every: int) -> None:
    config = ShardConfig(tick_rate_hz=20, persist_every_ticks=persist_every, snapshot_format=fmt)  # type: ignore[arg-type]
    host = ViaAdvance("s", sim(), config)
    slow = General("s", sim(), config)
    for shard in (host, slow):
        shard.add_subscriber("a")
    for step in script(fmt):
        assert outcome(host, step) == outcome(slow, step)
        assert host.statistics() == slow.statistics()
    # Both forms were read.
    assert bytes in host.forms
    assert TickOutcome in host.forms


def test_a_general_tick_is_read_by_name() -> None:
    shard = Shard("s", Counter(), ShardConfig(tick_rate_hz=20, persist_every_ticks=0))
    shard.add_subscriber("a")
    shard.push_input("a", 2, client_seq=7)
    first = shard.advance(1.0)
    assert isinstance(first, TickOutcome)
    assert (first.tick, first.now, first.dt, first.inputs_applied) == (1, 1.0, 0.05, 1)
    assert first.acks == {"a": 7}
    assert list(first.frames) == ["a"]
    assert (first.persist, first.finished, first.idle_shutdown, first.quiet) == (None, False, False, False)
    second = shard.advance(1.05)
    assert isinstance(second, bytes)  # a plain tick: its frame, nothing else
    assert decode_frame(second, "json") == (2, Counter().snapshot() | {"n": 4})
    assert shard.tick == 2


def plain(shard: Shard) -> str | None:
    return shard._plain_format


def test_plain_tick_applies_only_when_every_subscriber_takes_the_same_full_frame() -> None:
    shard = Shard("s", Counter(), ShardConfig(tick_rate_hz=20))
    assert plain(shard) is None  # nobody to send to
    shard.add_subscriber("a")
    assert plain(shard) == "json"
    shard.add_subscriber("b", format="msgpack")
    assert plain(shard) is None
    shard.remove_subscriber("b")
    shard.add_subscriber("c", delta=True)
    assert plain(shard) is None
    shard.remove_subscriber("c")
    assert plain(shard) == "json"
    replaying = Shard("r", Counter(), ShardConfig(tick_rate_hz=20, replay_log_ticks=10))
    replaying.add_subscriber("a")
    assert plain(replaying) is None  # the replay log records every tick the general way
    shard.stop()
    assert plain(shard) is None
    failing = Shard("f", Counter(fail_at=2), ShardConfig(tick_rate_hz=20))
    failing.add_subscriber("a")
    failing.run_tick(1.0)
    with pytest.raises(ShardsError):
        failing.run_tick(1.05)
    assert plain(failing) is None
