"""examples/arena: served in-process by the dev server, real websocket clients over loopback.

Spawn points depend only on the player id (``spawn_point``): alice at
(21, 21), walter at (45, 28) (exactly 25 from alice: on the view radius),
grace at (13, 42) (22.5 from alice, 34.9 from walter), bob at (90, 27)
(far from everyone).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio

from runtime import open_runtime
from runtime.shard_objects import STATE_KEY
from shards import InvalidInput, Shard, ShardAuth, Unauthorized, decode_shard_state, restore_or_init
from tests.runtime.conftest import config as runtime_config
from tests.runtime.devserver.helpers import client, running
from tests.runtime.shard_objects.helpers import connect

from .helpers import (
    EXAMPLES,
    check_help_page,
    describe,
    force,
    malformed,
    module_fixture,
    refusal,
    stored_record,
    subscribe,
    wait_until,
)

ARENA = EXAMPLES / "arena"
arena = module_fixture(ARENA)  # the Worker module, for the model-alone tests

SPAWNS = {"alice": (21.0, 21.0), "walter": (45.0, 28.0), "grace": (13.0, 42.0), "bob": (90.0, 27.0)}


def at_rest(player: str) -> dict[str, object]:
    x, y = SPAWNS[player]
    return {"id": player, "x": x, "y": y, "vx": 0.0, "vy": 0.0}


async def test_frames_arrive_in_tick_order_and_steering_moves_the_avatar() -> None:
    with trio.fail_after(30):
        async with (
            running(ARENA) as server,
            subscribe(server, ARENA, "pit", "alice", via="subprotocol") as alice,
        ):
            _, view = await alice.frame()
            assert view["you"] == at_rest("alice")
            assert (view["near"], view["players"]) == ([], 1)

            await alice.send({"move": [1, 0]}, client_seq=1)
            ack = await alice.text()
            assert ack == {"ack": {"tick": alice.ticks[-1], "last_client_seq": 1}}  # after that tick's frame
            you = alice.last[1]["you"]
            assert (you["vx"], you["vy"]) == (10.0, 0.0)
            assert you["x"] > 21.0  # the tick that applied the input moved the avatar
            _, view = await alice.frame(lambda _t, v: v["you"]["x"] >= you["x"] + 1)
            assert view["you"]["y"] == 21.0

            await alice.send({"move": [0, -1]}, client_seq=2)
            ack = await alice.text()
            assert ack["ack"]["last_client_seq"] == 2
            turned = alice.last[1]["you"]
            assert (turned["vx"], turned["vy"]) == (0.0, -10.0)
            _, view = await alice.frame(lambda _t, v: v["you"]["y"] <= 20)
            assert view["you"]["x"] == turned["x"]

            first = alice.ticks[0]
            assert alice.ticks == list(range(first, first + len(alice.ticks)))  # every tick, none twice
            times = [s["time"] for s in alice.snapshots]
            assert times == sorted(times)


async def test_each_player_sees_only_the_avatars_within_the_view_radius() -> None:
    expected_near = {"alice": ["grace", "walter"], "walter": ["alice"], "grace": ["alice"], "bob": []}
    with trio.fail_after(30):
        async with (
            running(ARENA) as server,
            subscribe(server, ARENA, "aoi", "alice") as alice,
            subscribe(server, ARENA, "aoi", "walter") as walter,
            subscribe(server, ARENA, "aoi", "grace") as grace,
            subscribe(server, ARENA, "aoi", "bob") as bob,
        ):
            for sub in (alice, walter, grace, bob):
                _, view = await sub.frame(lambda _t, v: v["players"] == 4)
                assert view["you"] == at_rest(sub.sid)
                assert [p["id"] for p in view["near"]] == expected_near[sub.sid]
                assert view["near"] == [at_rest(p) for p in expected_near[sub.sid]]
                # The same rule, from the positions the players report.
                me = (view["you"]["x"], view["you"]["y"])
                within = sorted(p for p in SPAWNS if p != sub.sid and math.dist(me, SPAWNS[p]) <= 25)
                assert within == expected_near[sub.sid]


async def test_bad_inputs_get_error_frames_and_change_nothing() -> None:
    with trio.fail_after(30):
        async with (
            running(ARENA) as server,
            subscribe(server, ARENA, "pit", "alice") as alice,
            subscribe(server, ARENA, "pit", "walter") as walter,
        ):
            await alice.frame(lambda _t, v: v["players"] == 2)
            await walter.frame(lambda _t, v: v["players"] == 2)

            await alice.send_raw("north!")
            assert await alice.text() == malformed(
                "message is not JSON (Expecting value: line 1 column 1 (char 0))"
            )
            await alice.send_raw('{"input": {"move": [1, 0]}, "client_seq": 1, "speed": 99}')
            assert await alice.text() == malformed(
                "unknown key(s) 'speed'; expected 'input' and optional 'client_seq'"
            )
            # Not a steer: invalid, with what was expected.
            refused = [
                ({"move": [2, 0]}, "dx must be a number in [-1, 1], got 2"),
                ({"move": [0, -1.5]}, "dy must be a number in [-1, 1], got -1.5"),
                ({"move": "north"}, "move must be a list of two numbers [dx, dy], got 'north'"),
                ({"move": [1]}, "move must be a list of two numbers [dx, dy], got [1]"),
                ({"move": [True, 0]}, "dx must be a number in [-1, 1], got True"),
                ({"move": [1, 0], "boost": True}, """unknown key(s) 'boost'; expected {"move": [dx, dy]}"""),
                ({"jump": True}, """unknown key(s) 'jump'; expected {"move": [dx, dy]}"""),
                ({}, "missing key 'move'"),
                ([1, 0], 'expected {"move": [dx, dy]}, got [1, 0]'),
            ]
            for seq, (bad, message) in enumerate(refused, start=2):
                await alice.send(bad, client_seq=seq)
                assert await alice.text() == refusal(seq, "invalid", message)

            # A no-op steer: once it is applied, the state shows whether anything refused got in.
            await alice.send({"move": [0, 0]}, client_seq=100)
            ack = await alice.text()
            assert ack == {"ack": {"tick": alice.ticks[-1], "last_client_seq": 100}}
            assert alice.last[1]["you"] == at_rest("alice")
            assert alice.last[1]["near"] == [at_rest("walter")]

            _, view = await walter.frame(lambda t, _v: t >= ack["ack"]["tick"])
            assert view["you"] == at_rest("walter")
            assert view["near"] == [at_rest("alice")]
            assert walter.texts == []  # no error or ack reached the other player


async def test_after_hibernation_a_returning_player_continues_from_the_same_tick_and_state() -> None:
    with trio.fail_after(30):
        async with running(ARENA) as server, client(server) as admin:
            async with subscribe(server, ARENA, "pit", "alice") as alice:
                await alice.frame()
                await alice.send({"move": [1, 1]}, client_seq=1)
                await alice.frame(lambda _t, v: v["you"]["x"] >= 22)
                await alice.send({"move": [0, 0]}, client_seq=2)
                assert (await alice.text())["ack"]["last_client_seq"] == 1
                assert (await alice.text())["ack"]["last_client_seq"] == 2
                where = alice.last[1]["you"]
                assert where["x"] == where["y"] > 21.0
                assert (where["vx"], where["vy"]) == (0.0, 0.0)
                _, view = await alice.frame()
                assert view["you"] == where  # at rest
                last_seen = alice.ticks[-1]

            # Alice left: the arena's next tick finds it quiet, persists it and stops ticking
            # (the keep-alive alarm goes), so nothing keeps the object awake.
            await wait_until(admin, "ARENA", "pit", lambda o: o["websockets"] == 0 and o["alarm"] is None)
            assert (await force(admin, "ARENA", "pit", "hibernate"))["state"] == "hibernated"
            record = await stored_record(admin, "ARENA", "pit")
            assert record.tick >= last_seen
            assert round(record.sim_state["players"]["alice"]["x"], 3) == where["x"]

            async with subscribe(server, ARENA, "pit", "alice") as again:
                tick, view = await again.frame()
                assert tick == record.tick + 1  # the next tick after the record's
                assert view["you"] == where
                assert view["players"] == 1
                assert view["time"] > record.sim_state["clock"]
                described = await describe(admin, "ARENA", "pit")
                assert described["activations"] == 2  # the constructor ran again, from the record


async def test_plain_http_gets_the_help_page() -> None:
    await check_help_page(ARENA, b"/?shard=<arena>&sid=<you>")


# --------------------------------------------------------------------------- the model alone


def test_walls_stop_the_avatar_and_steering_is_at_most_full_speed(arena) -> None:
    shard = Shard("walls", arena.ArenaState.create("walls"), arena.Arena.config)
    shard.add_subscriber_authorized("alice", ShardAuth(user_id="alice"))  # joins at (21, 21)
    shard.push_input("alice", {"move": [-1, -1]})
    for i in range(40):
        shard.run_tick(i * 0.1)
    view = shard.sim.snapshot_for("alice")["you"]
    assert (view["x"], view["y"]) == (0.0, 0.0)
    assert view["vx"] == view["vy"] == -7.071  # [-1, -1] is scaled down to length 1
    sim: Any = shard.sim
    avatar = sim.players["alice"]
    assert math.hypot(avatar["vx"], avatar["vy"]) == pytest.approx(10.0)


def test_the_view_radius_includes_its_boundary_and_follows_movement(arena) -> None:
    sim = arena.ArenaState.create("aoi")
    for player in ("alice", "walter"):
        assert sim.authorize_subscribe(player, ShardAuth(user_id=player))
    assert not sim.authorize_subscribe("grace", ShardAuth(user_id="mallory"))  # not as someone else
    assert "grace" not in sim.players
    assert [p["id"] for p in sim.snapshot_for("alice")["near"]] == ["walter"]  # exactly 25 apart
    sim.apply_input("walter", {"move": [1, 0]}, 0.0)
    sim.tick(0.01)
    assert sim.snapshot_for("alice")["near"] == []
    assert sim.snapshot_for("walter")["near"] == []


def test_a_full_arena_refuses_newcomers_with_a_reason_and_lets_players_back(arena) -> None:
    sim = arena.ArenaState.create("full")
    for i in range(arena.MAX_PLAYERS):
        assert sim.authorize_subscribe(f"p{i}", ShardAuth(user_id=f"p{i}"))
    with pytest.raises(Unauthorized, match=rf"^the arena is full \({arena.MAX_PLAYERS} avatars\)$"):
        sim.authorize_subscribe("late", ShardAuth(user_id="late"))
    assert "late" not in sim.players
    assert sim.authorize_subscribe("p0", ShardAuth(user_id="p0"))  # a returning player keeps their avatar
    assert len(sim.players) == arena.MAX_PLAYERS


async def test_a_newcomer_to_a_full_arena_is_closed_with_the_reason(arena, autojump_clock) -> None:
    async with open_runtime(objects={"ARENA": arena.Arena}, config=runtime_config()) as rt:
        for i in range(arena.MAX_PLAYERS):  # each leaves an avatar behind
            player = await connect(rt, "ARENA", "full", f"p{i}")
            assert player.transport.closed is None
            await player.close()
        late = await connect(rt, "ARENA", "full", "late")
        assert late.transport.closed == (1008, f"the arena is full ({arena.MAX_PLAYERS} avatars)")
        back = await connect(rt, "ARENA", "full", "p0")
        await trio.sleep(0.12)
        assert back.transport.closed is None
        _, view = back.transport.frames()[-1]
        assert view["players"] == arena.MAX_PLAYERS


def test_a_malformed_steer_is_refused_by_the_hook_and_the_shard_carries_on(arena) -> None:
    shard = Shard("pit", arena.ArenaState.create("pit"), arena.Arena.config)
    alice = ShardAuth(user_id="alice")
    shard.add_subscriber_authorized("alice", alice)
    with pytest.raises(InvalidInput, match=r"^dy must be a number in \[-1, 1\], got 'up'$"):
        shard.push_input_authorized("alice", alice, {"move": [0, "up"]})
    shard.run_tick(0.0)
    assert not shard.failed
    assert shard.sim.snapshot_for("alice")["you"] == at_rest("alice")
    # push_input skips the hook; apply_input drops what it cannot read rather than raise.
    shard.push_input("alice", {"move": [0, "up"]})
    shard.run_tick(0.1)
    assert not shard.failed
    assert shard.sim.snapshot_for("alice")["you"] == at_rest("alice")


def test_a_record_restores_the_arena_and_its_index(arena) -> None:
    shard = Shard("pit", arena.ArenaState.create("pit"), arena.Arena.config)
    for player in ("alice", "grace"):
        shard.add_subscriber_authorized(player, ShardAuth(user_id=player))
    shard.push_input("alice", {"move": [0, 1]})
    shard.run_tick(0.0)
    restored = restore_or_init("pit", arena.ArenaState, arena.Arena.config, shard.persist_now())
    assert restored.tick == 1
    assert restored.sim.snapshot_for("alice") == shard.sim.snapshot_for("alice")
    assert restored.sim.snapshot_for("grace") == shard.sim.snapshot_for("grace")


async def test_the_arena_clock_resumes_one_period_after_the_quiet_tick(arena, autojump_clock) -> None:
    """Shard time cuts the quiet spell out: the first tick after it advances the clock by 1/20 s."""
    async with open_runtime(objects={"ARENA": arena.Arena}, config=runtime_config()) as rt:
        alice = await connect(rt, "ARENA", "pit", "alice")
        await trio.sleep(0.3)
        await alice.close()
        await trio.sleep(0.3)  # the next tick finds the arena quiet and persists it
        record = decode_shard_state(rt.dump_storage(rt.env.ARENA.getByName("pit"))["kv"][STATE_KEY])
        await trio.sleep(5)
        again = await connect(rt, "ARENA", "pit", "alice")
        await trio.sleep(0.12)
        tick, view = again.transport.frames()[0]
        assert tick == record.tick + 1
        assert view["time"] == round(record.sim_state["clock"] + 0.05, 3)
