"""The actor: activation, input and output gates, concurrency controls, lifecycle.

Each test names the production behaviour it pins down, as Cloudflare
documents it or as workerd behaves.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from runtime import (
    DurableObject,
    DurableObjectError,
    DurableObjectStub,
    ObjectResetError,
    RemoteError,
    Response,
    open_runtime,
)
from tests.runtime.conftest import config

CONSTRUCTED: list[str] = []


class Counter(DurableObject):
    def __init__(self, ctx, env) -> None:
        super().__init__(ctx, env)
        CONSTRUCTED.append(ctx.id.toString())
        self.memory = 0

    async def increment(self, by: int) -> int:
        n = (await self.ctx.storage.get("n") or 0) + by
        self.ctx.storage.put("n", n)  # not awaited, as production code often does
        self.memory += by
        return n

    async def get_memory(self) -> int:
        return self.memory

    async def read(self, key: str) -> Any:
        return await self.ctx.storage.get(key)

    async def put_two(self) -> None:
        self.ctx.storage.put("a", 1)
        self.ctx.storage.put("b", 2)

    async def fail(self, message: str) -> None:
        raise ValueError(message)

    async def fail_custom(self) -> None:
        class GameOver(Exception):
            pass

        raise GameOver("you lost")

    async def echo(self, value: Any) -> Any:
        return value

    async def mutate(self, value: list[int]) -> list[int]:
        value.append(99)
        return value

    async def fetch(self, request):
        return Response(f"{request.method} {request.url}")


@pytest.fixture(autouse=True)
def _clear() -> None:
    CONSTRUCTED.clear()


async def test_ids_and_stubs_never_construct_an_object(autojump_clock) -> None:
    """Gotcha 1: get()/getByName() and id creation are side-effect free."""
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        ns = rt.env.COUNTER
        stub = ns.get(ns.idFromName("a"))
        ns.getByName("b")
        ns.get(ns.newUniqueId())
        assert CONSTRUCTED == []
        assert rt.state_of(stub) == "inactive"
        assert await stub.increment(2) == 2
        assert len(CONSTRUCTED) == 1
        assert rt.state_of(stub) == "idle"


async def test_rpc_and_fetch_round_trip(autojump_clock) -> None:
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("room-1")
        assert await stub.increment(2) == 2
        assert await stub.increment(3) == 5
        resp = await stub.fetch("http://do/anything", method="POST")
        assert resp.status == 200
        assert await resp.text() == "POST http://do/anything"


async def test_constructor_reruns_after_hibernation_and_memory_is_lost(autojump_clock) -> None:
    """Gotcha 1/20/21: after 10 idle seconds the instance is dropped; storage survives."""
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        await stub.increment(5)
        assert await stub.get_memory() == 5
        await trio.sleep(9.9)
        assert rt.state_of(stub) == "idle"
        await trio.sleep(0.2)
        assert rt.state_of(stub) == "hibernated"
        assert await stub.get_memory() == 0  # in-memory field reset by the new constructor
        assert await stub.increment(1) == 6  # storage intact
        assert len(CONSTRUCTED) == 2


async def test_background_task_pins_the_object_until_eviction(autojump_clock) -> None:
    """Gotcha 20: a pending timer keeps the object in memory; evicted after 70-140 s idle."""

    class Pinned(DurableObject):
        async def start(self) -> None:
            self.ctx.start_soon(trio.sleep_forever)

    async with open_runtime(objects={"P": Pinned}, config=config(), seed=1) as rt:
        stub = rt.env.P.getByName("x")
        await stub.start()
        await trio.sleep(60)
        assert rt.state_of(stub) == "idle"
        await trio.sleep(81)
        assert rt.state_of(stub) == "inactive"


async def test_background_task_that_ends_lets_the_object_hibernate(autojump_clock) -> None:
    class Brief(DurableObject):
        async def start(self) -> None:
            self.ctx.start_soon(trio.sleep, 30)

    async with open_runtime(objects={"B": Brief}, config=config()) as rt:
        stub = rt.env.B.getByName("x")
        await stub.start()
        await trio.sleep(29)
        assert rt.state_of(stub) == "idle"
        await trio.sleep(1.5)
        assert rt.state_of(stub) == "hibernated"


async def test_input_gate_holds_other_events_during_storage_but_not_during_other_io(autojump_clock) -> None:
    """Gotcha 3: the input gate covers storage only."""
    order: list[str] = []

    class Gate(DurableObject):
        async def slow_remote(self) -> None:
            order.append("remote:start")
            await self.env.OTHER.getByName("o").nap()  # non-storage I/O opens the gate
            order.append("remote:end")

        async def storage_only(self) -> None:
            order.append("storage:start")
            await self.ctx.storage.get("x")
            self.ctx.storage.put("x", 1)
            await self.ctx.storage.get("x")
            order.append("storage:end")

        async def quick(self) -> None:
            order.append("quick")

    class Other(DurableObject):
        async def nap(self) -> None:
            await trio.sleep(1)

    async with open_runtime(objects={"G": Gate, "OTHER": Other}, config=config()) as rt:
        g = rt.env.G.getByName("g")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(g.slow_remote)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(rt.env.G.getByName("g").quick)
        assert order == ["remote:start", "quick", "remote:end"]
        order.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(g.storage_only)
            nursery.start_soon(rt.env.G.getByName("g").quick)
        # storage never suspends, so each handler ran to completion in one turn
        assert order in (["storage:start", "storage:end", "quick"], ["quick", "storage:start", "storage:end"])


async def test_calls_through_one_stub_start_in_issue_order(autojump_clock) -> None:
    """Gotcha 27: E-order per stub."""
    seen: list[int] = []

    class Log(DurableObject):
        async def add(self, i: int) -> None:
            seen.append(i)

    async with open_runtime(objects={"L": Log}, config=config(), seed=3) as rt:
        stub = rt.env.L.getByName("l")
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(stub.add, i)
                await trio.lowlevel.checkpoint()  # issue them one after another
        assert seen == list(range(50))


async def test_get_after_unawaited_put_sees_it_and_writes_commit_together(autojump_clock) -> None:
    """Gotchas 6 and 7."""
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        await stub.increment(1)
        await stub.increment(1)
        assert await stub.read("n") == 2
        before = rt.statistics().commits
        await stub.put_two()
        assert rt.statistics().commits == before + 1
        assert await stub.read("a") == 1
        assert await stub.read("b") == 2


async def test_output_gate_holds_the_response_until_the_write_is_durable(autojump_clock) -> None:
    """Gotcha 5: the reply to a call that wrote arrives only after the write committed."""
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        before = rt.statistics().commits
        assert await stub.increment(1) == 1
        assert rt.statistics().commits == before + 1
        # A reply that follows no write does not wait for a commit.
        assert await stub.get_memory() == 1
        assert rt.statistics().commits == before + 1


async def test_crash_after_the_write_before_the_flush_loses_only_that_write(autojump_clock) -> None:
    """A power cut mid-event: the unacknowledged write is gone, acknowledged ones stay."""
    from runtime._core import reset_error

    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        assert await stub.increment(1) == 1

        def write_then_crash(inst, ctx) -> None:
            ctx.storage.put("n", 1000)
            rt._actor_of(stub).reset(
                reset_error("Network connection lost.", retryable=True), lose_writes=True
            )

        with pytest.raises(ObjectResetError, match=r"^Network connection lost\.$"):
            await rt.run_in_object(stub, write_then_crash)
        assert await rt.env.COUNTER.getByName("a").read("n") == 1


async def test_failed_commit_turns_held_outputs_into_errors_and_resets(autojump_clock) -> None:
    """Gotcha 5: a failed write replaces held messages with errors and restarts the object."""
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        assert await stub.increment(1) == 1
        actor = rt._actor_of(stub)
        assert actor.db is not None
        actor.db.fail_next_commit("disk I/O error")
        with pytest.raises(ObjectResetError, match=r"^Internal error in Durable Object storage") as info:
            await stub.increment(1)
        assert info.value.durableObjectReset
        # The stub is broken now, as in production; a new stub works.
        with pytest.raises(ObjectResetError):
            await stub.increment(1)
        assert await rt.env.COUNTER.getByName("a").increment(1) == 2


async def test_errors_keep_type_name_and_message_and_carry_remote(autojump_clock) -> None:
    """Gotcha 26."""
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        with pytest.raises(ValueError, match=r"^bad move$") as info:
            await stub.fail("bad move")
        assert info.value.remote is True  # type: ignore[attr-defined]
        assert info.value.retryable is False  # type: ignore[attr-defined]
        with pytest.raises(RemoteError, match=r"^you lost$") as custom:
            await stub.fail_custom()
        assert custom.value.name == "GameOver"
        assert custom.value.remote
        # A plain handler error does not break the stub.
        assert await stub.increment(1) == 1


async def test_missing_rpc_method_gets_productions_type_error(autojump_clock) -> None:
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        with pytest.raises(TypeError, match=r'^The RPC receiver does not implement the method "nope"\.$'):
            await stub.nope()
        with pytest.raises(TypeError, match=r'does not implement the method "alarm"'):
            await stub.alarm()


async def test_rpc_passes_values_by_copy_and_refuses_what_production_refuses(autojump_clock) -> None:
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        with pytest.raises(TypeError, match=r"^RPC method echo\(\) got keyword arguments \(value\)"):
            stub.echo(value=1)
        with pytest.raises(
            TypeError, match=r"RPC arguments cannot be serialized: cannot encode value\[0\]: tuples"
        ):
            stub.echo((1, 2))
        with pytest.raises(TypeError, match=r"bytearray"):
            stub.echo(bytearray(b"x"))
        assert CONSTRUCTED == []  # refused before anything was delivered
        mine = [1, 2]
        assert await stub.mutate(mine) == [1, 2, 99]
        assert mine == [1, 2]


async def test_constructor_that_raises_fails_the_event_and_retries_next_time(autojump_clock) -> None:
    attempts: list[int] = []

    class Flaky(DurableObject):
        def __init__(self, ctx, env) -> None:
            super().__init__(ctx, env)
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("config missing")

        async def ping(self) -> str:
            return "pong"

    async with open_runtime(objects={"F": Flaky}, config=config()) as rt:
        stub = rt.env.F.getByName("f")
        with pytest.raises(RuntimeError, match=r"^config missing$"):
            await stub.ping()
        assert rt.state_of(stub) == "inactive"
        assert await stub.ping() == "pong"
        assert len(attempts) == 2


async def test_block_concurrency_while_from_a_sync_constructor_holds_events(autojump_clock) -> None:
    """Gotcha 19: events wait until the callback settles."""

    class Init(DurableObject):
        def __init__(self, ctx, env) -> None:
            super().__init__(ctx, env)
            self.ready = False
            ctx.blockConcurrencyWhile(self._load)  # no await: a sync constructor

        async def _load(self) -> None:
            await trio.sleep(5)
            self.ready = True

        async def is_ready(self) -> bool:
            return self.ready

    async with open_runtime(objects={"I": Init}, config=config()) as rt:
        t0 = trio.current_time()
        assert await rt.env.I.getByName("i").is_ready() is True
        assert trio.current_time() - t0 == pytest.approx(5)


async def test_block_concurrency_while_that_raises_resets_the_object(autojump_clock) -> None:
    class Boom(DurableObject):
        def __init__(self, ctx, env) -> None:
            super().__init__(ctx, env)
            self.value = "fresh"

        async def explode(self) -> None:
            async def bad() -> None:
                raise KeyError("missing")

            self.value = "dirty"
            await self.ctx.blockConcurrencyWhile(bad)

        async def get(self) -> str:
            return self.value

    async with open_runtime(objects={"B": Boom}, config=config()) as rt:
        with pytest.raises(KeyError) as info:
            await rt.env.B.getByName("b").explode()
        assert info.value.durableObjectReset  # type: ignore[attr-defined]
        assert await rt.env.B.getByName("b").get() == "fresh"


async def test_block_concurrency_while_timeout_resets_with_productions_message(autojump_clock) -> None:
    class Stuck(DurableObject):
        async def hang(self) -> None:
            await self.ctx.blockConcurrencyWhile(trio.sleep_forever)

    async with open_runtime(objects={"S": Stuck}, config=config()) as rt:
        t0 = trio.current_time()
        with pytest.raises(
            ObjectResetError,
            match=r"^A call to blockConcurrencyWhile\(\) in a Durable Object waited for too long\.",
        ):
            await rt.env.S.getByName("s").hang()
        assert trio.current_time() - t0 == pytest.approx(30)


async def test_abort_resets_and_the_caller_sees_the_reason(autojump_clock) -> None:
    class Abortable(DurableObject):
        def __init__(self, ctx, env) -> None:
            super().__init__(ctx, env)
            self.n = 0

        async def bump(self) -> int:
            self.n += 1
            return self.n

        async def stop(self) -> None:
            try:
                self.ctx.abort("maintenance")
            except Exception:  # pragma: no cover - must not be catchable
                pytest.fail("abort() was swallowed by except Exception")

    async with open_runtime(objects={"A": Abortable}, config=config()) as rt:
        assert await rt.env.A.getByName("a").bump() == 1
        with pytest.raises(ObjectResetError, match=r"^maintenance$"):
            await rt.env.A.getByName("a").stop()
        assert await rt.env.A.getByName("a").bump() == 1


async def test_wait_until_does_not_delay_the_reply_and_pins_the_object(autojump_clock) -> None:
    done: list[float] = []

    class Later(DurableObject):
        async def go(self) -> str:
            async def work() -> None:
                await trio.sleep(20)
                done.append(trio.current_time())

            self.ctx.waitUntil(work())
            return "replied"

    async with open_runtime(objects={"L": Later}, config=config()) as rt:
        t0 = trio.current_time()
        stub = rt.env.L.getByName("l")
        assert await stub.go() == "replied"
        assert trio.current_time() == t0
        await trio.sleep(15)
        assert rt.state_of(stub) == "idle"  # pinned: no hibernation at 10 s
        await trio.sleep(20)
        assert done
        assert done[0] - t0 == pytest.approx(20)
        assert rt.state_of(stub) == "hibernated"


async def test_group_commit_many_concurrent_callers_share_commits(autojump_clock) -> None:
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        await stub.increment(0)
        before = rt.statistics()
        async with trio.open_nursery() as nursery:
            for _ in range(64):
                nursery.start_soon(rt.env.COUNTER.getByName("a").increment, 1)
        after = rt.statistics()
        assert await stub.read("n") == 64
        assert after.committed_writes - before.committed_writes == 64
        # 64 events that write at the same moment share a commit or two, not 64.
        assert after.commits - before.commits <= 2


async def test_group_commit_concurrent_sequential_callers_share_every_commit(autojump_clock) -> None:
    """Two tasks each writing in a loop: their events keep meeting in one commit."""
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        for _ in range(5):
            await stub.increment(0)  # this task has been writing alone so far
        before = rt.statistics()

        async def caller() -> None:
            mine = rt.env.COUNTER.getByName("a")
            for _ in range(20):
                await mine.increment(1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            nursery.start_soon(caller)
        after = rt.statistics()
        assert await stub.read("n") == 40
        assert after.committed_writes - before.committed_writes == 40
        assert after.commits - before.commits <= 21


async def test_a_lone_writer_commits_each_event_at_once_and_lets_other_tasks_run(autojump_clock) -> None:
    """Without company, each reply commits its own write; a loop still yields now and then."""
    from runtime._core import SOLO_COMMITS

    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        await stub.increment(0)
        steps = 0

        async def ticker() -> None:
            nonlocal steps
            while True:
                await trio.lowlevel.checkpoint()
                steps += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.lowlevel.checkpoint()
            start = steps
            before = rt.statistics().commits
            # A scheduling step in every SOLO_COMMITS + 1 events: five of them
            # (the other task may not have run in the last one's yet).
            for i in range(1, 5 * (SOLO_COMMITS + 1) + 1):
                assert await stub.increment(1) == i
                assert rt.statistics().commits == before + i  # durable before the reply
            assert steps - start >= 4
            nursery.cancel_scope.cancel()


async def test_stubs_reach_methods_their_class_did_not_have_when_made(autojump_clock) -> None:
    class Late(DurableObject):
        async def early(self) -> str:
            return "early"

    async with open_runtime(objects={"L": Late}, config=config()) as rt:
        stub = rt.env.L.getByName("l")
        assert isinstance(stub, DurableObjectStub)
        assert await stub.early() == "early"

        async def late(self) -> str:
            return "late"

        Late.late = late  # type: ignore[attr-defined]
        assert await stub.late() == "late"
        assert await rt.env.L.getByName("l").late() == "late"


class Patient(DurableObject):
    """Handlers that suspend, with and without a cancel scope of their own open."""

    async def slow(self, key: str) -> str:
        await trio.sleep(5)
        self.ctx.storage.put(key, "done")
        return "done"

    async def slow_in_scope(self, key: str) -> str:
        with trio.move_on_after(100):
            await trio.sleep(5)
            self.ctx.storage.put(key, "done")
        return "done"

    async def slow_in_nursery(self, key: str) -> str:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 1)
            await trio.sleep(5)
            self.ctx.storage.put(key, "done")
        return "done"

    async def read(self, key: str) -> Any:
        return await self.ctx.storage.get(key)


SUSPENDING = ["slow", "slow_in_scope", "slow_in_nursery"]


@pytest.mark.parametrize("method", SUSPENDING)
async def test_a_caller_that_gives_up_never_cuts_the_handler(method: str, autojump_clock) -> None:
    """The handler runs in the caller's task but outside its cancellation."""
    async with open_runtime(objects={"P": Patient}, config=config()) as rt:
        stub = rt.env.P.getByName("p")
        with trio.move_on_after(1):
            await getattr(stub, method)("k")
        assert await stub.read("k") == "done"


@pytest.mark.parametrize("method", SUSPENDING)
async def test_a_reset_cuts_a_suspended_handler(method: str, autojump_clock) -> None:
    async with open_runtime(objects={"P": Patient}, config=config()) as rt:
        stub = rt.env.P.getByName("p")
        result: list[Any] = []

        async def call() -> None:
            try:
                result.append(await getattr(stub, method)("k"))
            except DurableObjectError as exc:
                result.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await trio.sleep(2)
            await rt.crash(stub)
        assert isinstance(result[0], ObjectResetError)
        assert await rt.env.P.getByName("p").read("k") is None


async def test_state_dir_survives_reopen_and_list_ids(tmp_path, autojump_clock) -> None:
    async with open_runtime(objects={"COUNTER": Counter}, state_dir=tmp_path, config=config(), seed=7) as rt:
        await rt.env.COUNTER.getByName("a").increment(41)
        first_unique = rt.env.COUNTER.newUniqueId()
    assert (tmp_path / "do" / "COUNTER").is_dir()
    async with open_runtime(objects={"COUNTER": Counter}, state_dir=tmp_path, config=config(), seed=7) as rt:
        assert await rt.env.COUNTER.getByName("a").increment(1) == 42
        ids = rt.list_ids("COUNTER")
        assert [i.toString() for i in ids] == [rt.env.COUNTER.idFromName("a").toString()]
        assert not rt.env.COUNTER.newUniqueId().equals(first_unique)


async def test_a_state_dir_serves_one_runtime_at_a_time(tmp_path, autojump_clock) -> None:
    """Object databases take no SQLite file locks: the state directory's lock keeps runtimes apart."""
    import sys

    from shards import StorageError

    async with open_runtime(objects={"COUNTER": Counter}, state_dir=tmp_path, config=config()) as rt:
        await rt.env.COUNTER.getByName("a").increment(1)
        with pytest.raises(StorageError, match=r"is in use by another runtime"):
            async with open_runtime(objects={"COUNTER": Counter}, state_dir=tmp_path, config=config()):
                pass
        # Another process is kept out as well.
        probe = (
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)"
        )
        held = await trio.run_process(
            [sys.executable, "-c", probe, str(tmp_path / "runtime.lock")], check=False
        )
        assert held.returncode == 3
        assert await rt.env.COUNTER.getByName("a").increment(1) == 2  # the refused open changed nothing
    async with open_runtime(objects={"COUNTER": Counter}, state_dir=tmp_path, config=config()) as rt:
        assert await rt.env.COUNTER.getByName("a").increment(1) == 3


async def test_ctx_id_name_follows_how_the_caller_addressed_the_object(autojump_clock) -> None:
    """Gotcha 28."""

    class Named(DurableObject):
        async def my_name(self) -> str | None:
            return self.ctx.id.name

    async with open_runtime(objects={"N": Named}, config=config()) as rt:
        ns = rt.env.N
        assert await ns.getByName("lobby").my_name() == "lobby"
        await rt.hibernate(ns.getByName("lobby"))
        hex_id = ns.idFromName("lobby").toString()
        assert await ns.get(ns.idFromString(hex_id)).my_name() is None
        assert await ns.get(ns.newUniqueId()).my_name() is None


async def test_errors_from_the_runtime_body_are_not_wrapped_in_exception_groups() -> None:
    with pytest.raises(KeyError, match="plain"):
        async with open_runtime(objects={"COUNTER": Counter}, config=config()):
            raise KeyError("plain")


async def test_statistics_per_object_and_runtime(autojump_clock) -> None:
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        await stub.increment(1)
        stats = rt.object_statistics(stub)
        assert stats.events_delivered == 1
        assert stats.state == "idle"
        assert stats.storage_writes == 1
        total = rt.statistics()
        assert total.objects == 1
        assert total.live == 1
        assert total.events_delivered == 1


async def test_crash_while_a_request_is_in_flight_fails_it_with_reset(autojump_clock) -> None:
    class Slow(DurableObject):
        async def work(self) -> str:
            await trio.sleep(5)
            return "done"

    async with open_runtime(objects={"S": Slow}, config=config()) as rt:
        stub = rt.env.S.getByName("s")
        result: list[Any] = []

        async def call() -> None:
            try:
                result.append(await stub.work())
            except DurableObjectError as exc:
                result.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await trio.sleep(1)
            await rt.crash(stub)
        assert isinstance(result[0], ObjectResetError)
        assert result[0].retryable


async def test_too_many_queued_events_get_productions_overload_error(autojump_clock) -> None:
    """Gotcha 40: a full queue fails fast with .overloaded instead of unbounded latency."""

    class Busy(DurableObject):
        def __init__(self, ctx, env) -> None:
            super().__init__(ctx, env)
            ctx.blockConcurrencyWhile(self._warm_up)

        async def _warm_up(self) -> None:
            await trio.sleep(5)

        async def ping(self) -> str:
            return "pong"

    async with open_runtime(objects={"B": Busy}, config=config(max_queued_events=2)) as rt:
        results: list[Any] = []

        async def call() -> None:
            try:
                results.append(await rt.env.B.getByName("b").ping())
            except DurableObjectError as exc:
                results.append(exc)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(call)
                await trio.testing.wait_all_tasks_blocked()
        errors = [r for r in results if isinstance(r, DurableObjectError)]
        assert results.count("pong") == 2
        assert len(errors) == 1
        assert str(errors[0]) == "Durable Object is overloaded. Too many requests queued."
        assert errors[0].overloaded


async def test_jurisdiction_and_location_hint_are_accepted_and_change_nothing(autojump_clock) -> None:
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        ns = rt.env.COUNTER
        eu = ns.jurisdiction("eu")
        stub = eu.get(eu.idFromName("a"), {"locationHint": "weur"})
        assert await stub.increment(1) == 1
        assert await ns.getByName("a").increment(1) == 2
        with pytest.raises(TypeError, match=r"^get\(\) got unknown option\(s\): colour$"):
            ns.get(ns.idFromName("a"), {"colour": "blue"})


async def test_ids_of_another_namespace_are_refused(autojump_clock) -> None:
    from runtime import InvalidIdError

    class Other(DurableObject):
        pass

    async with open_runtime(objects={"COUNTER": Counter, "OTHER": Other}, config=config()) as rt:
        foreign = rt.env.OTHER.idFromName("a")
        with pytest.raises(InvalidIdError, match=r"^Durable Object ID is not valid for this namespace\.$"):
            rt.env.COUNTER.get(foreign)
        with pytest.raises(InvalidIdError, match=r"^Invalid Durable Object ID: must be 64 hex digits$"):
            rt.env.COUNTER.idFromString("zz")
        assert CONSTRUCTED == []


async def test_an_unawaited_block_concurrency_while_pins_the_object_until_it_ends(autojump_clock) -> None:
    class Slow(DurableObject):
        async def start(self) -> None:
            self.ctx.blockConcurrencyWhile(self._work)  # not awaited: runs on after the reply

        async def _work(self) -> None:
            await trio.sleep(20)
            self.ctx.storage.put("done", True)

        async def done(self) -> bool:
            return bool(await self.ctx.storage.get("done"))

    async with open_runtime(objects={"S": Slow}, config=config()) as rt:
        stub = rt.env.S.getByName("s")
        await stub.start()
        await trio.sleep(15)
        assert rt.state_of(stub) == "idle"  # not hibernated in the middle of the callback
        assert await stub.done() is True  # this call waited for the gate


async def test_no_event_is_delivered_once_the_runtime_is_closing(autojump_clock) -> None:
    """Closing must not reactivate objects (their files would stay locked)."""
    async with open_runtime(objects={"COUNTER": Counter}, config=config()) as rt:
        stub = rt.env.COUNTER.getByName("a")
        await stub.increment(1)
        rt._core.closing = True
        with pytest.raises(
            ObjectResetError, match=r"^The Durable Objects runtime is shutting down\.$"
        ) as info:
            await stub.increment(1)
        assert info.value.retryable
        rt._core.closing = False


class Syncer(DurableObject):
    async def write_and_sync(self) -> int:
        self.ctx.storage.put("k", 1)
        await self.ctx.storage.sync()  # resolves once the write is durable, before the reply
        value: int = self.ctx.storage.kv.get("k")
        return value


async def test_storage_sync_in_a_handler_commits_the_events_writes(autojump_clock) -> None:
    """sync() resolves when pending writes are durable; it must not wait for the reply it precedes."""
    async with open_runtime(objects={"S": Syncer}, config=config()) as rt:
        stub = rt.env.S.getByName("s")
        with trio.fail_after(5):
            assert await stub.write_and_sync() == 1
        assert rt.dump_storage(stub)["kv"] == {"k": 1}
