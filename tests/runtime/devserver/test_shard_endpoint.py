"""The dev server's ?shard= endpoint: binding choice, token secret, upgrade routing."""

from __future__ import annotations

import trio
import trio.testing

from runtime import DurableObject, Request, open_runtime
from runtime.devserver._shards import SHARD_BINDING_VAR, ShardEndpoint, is_shard_upgrade
from runtime.shard_objects import make_token
from runtime.sockets import attach
from tests.runtime.conftest import EPOCH_MS, config
from tests.runtime.shard_objects.helpers import AlarmShard, FakeTransport, TimerShard


class Plain(DurableObject):
    pass


def upgrade(query: str, token: str | None = None) -> Request:
    headers = {"upgrade": "websocket", "connection": "Upgrade"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return Request(f"http://127.0.0.1:8787/?{query}", headers=headers)


def test_only_websocket_upgrades_with_a_shard_query_are_shard_upgrades() -> None:
    assert is_shard_upgrade(upgrade("shard=a&sid=b"))
    assert not is_shard_upgrade(upgrade("room=a"))
    assert not is_shard_upgrade(Request("http://127.0.0.1/?shard=a"))


def test_the_only_shard_binding_is_chosen_and_several_need_a_name(tmp_path) -> None:
    one = ShardEndpoint({"ARENA": AlarmShard, "P": Plain}, {}, tmp_path, tmp_path)
    assert (one.binding, one.problem) == ("ARENA", None)
    two = ShardEndpoint({"A": AlarmShard, "B": TimerShard}, {}, tmp_path, tmp_path)
    assert two.problem == (
        f"several bindings are ShardObjects (A, B): name one with the {SHARD_BINDING_VAR} var"
    )
    named = ShardEndpoint({"A": AlarmShard, "B": TimerShard}, {SHARD_BINDING_VAR: "B"}, tmp_path, tmp_path)
    assert (named.binding, named.problem) == ("B", None)
    wrong = ShardEndpoint({"A": AlarmShard, "P": Plain}, {SHARD_BINDING_VAR: "P"}, tmp_path, tmp_path)
    assert wrong.problem is not None
    assert "does not name a binding whose class is a ShardObject" in wrong.problem


def test_a_secret_is_created_in_the_state_dir_when_none_is_configured(tmp_path) -> None:
    ShardEndpoint({"ARENA": AlarmShard}, {}, tmp_path / "project", tmp_path / "state")
    assert (tmp_path / "state" / "secret").read_text().strip()


async def test_a_subscriber_with_a_token_gets_frames_and_one_without_is_closed_1008(
    tmp_path, autojump_clock
) -> None:
    endpoint = ShardEndpoint({"ARENA": AlarmShard}, {"SHARDSIM_SECRET": "s3cret"}, tmp_path, tmp_path)
    async with open_runtime(objects={"ARENA": AlarmShard}, config=config()) as rt:
        good = make_token("s3cret", "alice", now_ms=EPOCH_MS)
        resp = await endpoint.handle(rt.env, upgrade("shard=m1&sid=alice", good))
        assert resp.status == 101
        assert resp.webSocket is not None
        alice = FakeTransport()
        attach(resp.webSocket, alice)
        await trio.sleep(0.2)
        assert alice.frames()  # ticking frames arrive
        resp = await endpoint.handle(rt.env, upgrade("shard=m1&sid=bob"))
        mallory = FakeTransport()
        assert resp.webSocket is not None
        attach(resp.webSocket, mallory)
        await trio.testing.wait_all_tasks_blocked()
        assert mallory.closed is not None
        assert mallory.closed[0] == 1008


async def test_an_unavailable_endpoint_answers_404(tmp_path, autojump_clock) -> None:
    endpoint = ShardEndpoint({"P": Plain}, {}, tmp_path, tmp_path)
    async with open_runtime(objects={"P": Plain}, config=config()) as rt:
        resp = await endpoint.handle(rt.env, upgrade("shard=m1&sid=alice"))
        assert resp.status == 404
        assert (
            await resp.text()
            == "shard endpoint unavailable: no Durable Object binding's class is a ShardObject\n"
        )
