"""The core on its own: actors, activations, commits and gates against a fake host (no runtime)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from runtime import ObjectResetError, RuntimeConfig
from runtime._core import Transition, current_activation, outbound_gate, reset_error
from shards import StorageError

from .fakes import FakeContext, open_core


class Counter:
    """A minimal object: a constructor count and one write per call."""

    constructed = 0

    def __init__(self, ctx: FakeContext) -> None:
        type(self).constructed += 1
        self.ctx = ctx

    def bump(self) -> int:
        n = (self.ctx.storage.kv.get("n") or 0) + 1
        self.ctx.storage.put("n", n)
        return n


async def test_the_first_event_constructs_and_later_ones_reuse_the_instance(tmp_path, autojump_clock) -> None:
    """Creating an actor activates nothing; the first event runs the constructor once."""
    Counter.constructed = 0
    async with open_core(tmp_path, Counter) as h:
        actor = h.actor("a")
        assert actor.act is None
        assert h.host.opened == 0
        assert await h.call(actor, lambda obj: obj.bump()) == 1
        assert await h.call(actor, lambda obj: obj.bump()) == 2
        assert Counter.constructed == 1
        assert actor.activations == 1
        assert actor.events == 2


async def test_a_reply_waits_for_the_commit_of_the_writes_before_it(tmp_path, autojump_clock) -> None:
    """The activation commits its own batch at the output gate: the reply finds it durable."""
    async with open_core(tmp_path, Counter) as h:
        actor = h.actor("a")
        await h.call(actor, lambda obj: obj.bump())
        act = actor.act
        assert act is not None
        assert act.committed_seq == act.write_seq == act.gate_seq == 1
        assert h.core.commits == 1
        assert h.core.committed_writes == 1
        assert actor.db is not None
        assert not actor.db.dirty


async def test_outputs_that_cannot_wait_are_held_until_the_commit(tmp_path, autojump_clock) -> None:
    """Activation.output sends at once with nothing unconfirmed, holds after a write, releases in order."""
    async with open_core(tmp_path, Counter) as h:
        actor = h.actor("a")
        sent: list[str] = []

        def write_then_send(obj: Counter) -> None:
            act = obj.ctx.act
            act.output(sent.append, "before")
            obj.bump()
            assert act.outputs_held
            act.output(sent.append, "after-1")
            act.output(sent.append, "after-2")
            assert sent == ["before"]  # held for the write

        await h.call(actor, write_then_send)
        assert sent == ["before", "after-1", "after-2"]


async def test_a_crash_drops_held_outputs_and_unconfirmed_writes(tmp_path, autojump_clock) -> None:
    """A reset with lost writes never releases what waited for them; the host hears of it once."""
    async with open_core(tmp_path, Counter) as h:
        actor = h.actor("a")
        await h.call(actor, lambda obj: obj.bump())
        sent: list[str] = []

        def write_hold_and_crash(obj: Counter) -> None:
            obj.bump()
            obj.ctx.act.output(sent.append, "frame")
            actor.reset(reset_error("Network connection lost.", retryable=True), lose_writes=True)

        with pytest.raises(ObjectResetError, match=r"^Network connection lost\.$"):
            await h.call(actor, write_hold_and_crash)
        assert sent == []
        assert h.host.ended == [("a", Transition.RESET)]
        assert await h.call(actor, lambda obj: obj.ctx.storage.kv.get("n")) == 1  # the second write is gone


async def test_a_failed_commit_resets_the_object_and_fails_the_waiting_reply(
    tmp_path, autojump_clock
) -> None:
    """Commit is owned by the activation: a storage failure becomes the reset error of every waiter."""
    async with open_core(tmp_path, Counter) as h:
        actor = h.actor("a")
        await h.call(actor, lambda obj: obj.bump())
        db = actor.db
        assert db is not None

        def failing_commit() -> None:
            raise StorageError("disk I/O error")

        def write(obj: Counter) -> int:
            db.commit = failing_commit  # type: ignore[method-assign]
            return obj.bump()

        with pytest.raises(ObjectResetError, match=r"reset; reference = .*disk I/O error"):
            await h.call(actor, write)
        assert actor.act is None
        assert h.host.ended == [("a", Transition.RESET)]


async def test_outbound_gate_commits_the_callers_writes_first(tmp_path, autojump_clock) -> None:
    """Outside an object there is no gate; inside one, an outbound call waits for its writes."""
    assert outbound_gate() is None
    async with open_core(tmp_path, Counter) as h:
        actor = h.actor("a")

        async def call_out(obj: Counter) -> tuple[int, int]:
            obj.bump()
            act = obj.ctx.act
            assert current_activation() is act
            before = act.committed_seq
            gate = outbound_gate()
            if gate is not None:
                await gate
            return before, act.committed_seq

        before, after = await h.call(actor, call_out)
        assert (before, after) == (0, 1)


async def test_a_pinned_object_is_evicted_later_an_unpinned_one_hibernates(tmp_path, autojump_clock) -> None:
    """pin() keeps the instance in memory past the hibernation delay; unpin() lets it hibernate."""
    config = RuntimeConfig(epoch_ms=0, hibernate_after=10.0, evict_after=(70.0, 70.0))
    async with open_core(tmp_path, Counter, config) as h:
        pinned, free = h.actor("pinned"), h.actor("free")
        await h.call(pinned, lambda obj: obj.ctx.act.pin())
        await h.call(free, lambda obj: obj.bump())
        await trio.sleep(11)
        assert free.state.value == "hibernated"
        assert pinned.state.value == "idle"
        await trio.sleep(60)
        assert pinned.state.value == "inactive"
        assert sorted(h.host.ended) == [("free", Transition.HIBERNATE), ("pinned", Transition.EVICT)]


async def test_unpin_lets_an_idle_object_hibernate(tmp_path, autojump_clock) -> None:
    """The last unpin of an idle object arms the hibernation timer."""
    config = RuntimeConfig(epoch_ms=0, hibernate_after=10.0, evict_after=(70.0, 70.0))
    async with open_core(tmp_path, Counter, config) as h:
        actor = h.actor("a")
        act: Any = await h.call(actor, lambda obj: (obj.ctx.act.pin(), obj.ctx.act)[1])
        await trio.sleep(20)
        assert actor.state.value == "idle"
        act.unpin()
        await trio.sleep(11)
        assert actor.state.value == "hibernated"


async def test_writes_no_output_waits_for_are_committed_by_the_flusher(tmp_path, autojump_clock) -> None:
    """A background write (no event in flight) reaches the flusher, which commits it."""
    async with open_core(tmp_path, Counter) as h:
        actor = h.actor("a")
        await h.call(actor, lambda obj: obj.bump())
        act = actor.act
        assert act is not None

        async def background() -> None:
            act.storage.put("bg", 1)  # type: ignore[union-attr]

        act.start_background(background, (), None)
        await trio.testing.wait_all_tasks_blocked()
        assert act.committed_seq == act.write_seq == 2


async def test_storage_reports_alarm_changes_to_the_host(tmp_path, autojump_clock) -> None:
    """setAlarm/deleteAlarm reach ActorHost.alarm_changed through the activation."""
    async with open_core(tmp_path, Counter) as h:
        actor = h.actor("a")

        def set_and_delete(obj: Counter) -> None:
            obj.ctx.storage.setAlarm(5_000)
            obj.ctx.storage.deleteAlarm()

        await h.call(actor, set_and_delete)
        assert h.host.alarm_changes == [5_000, None]


async def test_a_graceful_end_commits_and_releases_what_was_held(tmp_path, autojump_clock) -> None:
    """Hibernation commits the open batch and sends the outputs held for it."""
    async with open_core(tmp_path, Counter) as h:
        actor = h.actor("a")
        sent: list[str] = []

        def write_and_hold(obj: Counter) -> None:
            obj.bump()
            obj.ctx.act.output(sent.append, "frame")
            actor.hibernate()

        with pytest.raises(ObjectResetError):
            await h.call(actor, write_and_hold)  # the caller's object went away under it
        assert sent == ["frame"]
        assert h.host.ended == [("a", Transition.HIBERNATE)]
        assert await h.call(actor, lambda obj: obj.ctx.storage.kv.get("n")) == 1
