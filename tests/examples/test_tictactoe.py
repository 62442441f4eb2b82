"""examples/tictactoe: served in-process by the dev server, real websocket clients over loopback."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import trio

from shards import InvalidInput, Shard, ShardAuth, ShardStopped, Unauthorized
from tests.runtime.devserver.helpers import client, running
from tests.wsclient import Subscriber

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

GAME = EXAMPLES / "tictactoe"
game = module_fixture(GAME)  # the Worker module, for the model-alone tests

EMPTY = [["", "", ""], ["", "", ""], ["", "", ""]]


def board(*marks: tuple[int, int, str]) -> list[list[str]]:
    rows = [list(r) for r in EMPTY]
    for row, col, mark in marks:
        rows[row][col] = mark
    return rows


async def move(mover: Subscriber, row: int, col: int, seq: int, *watchers: Subscriber) -> dict[str, Any]:
    """Play a move; wait for its ack and for the frame of its tick on every connection."""
    before = mover.ticks[-1]
    await mover.send({"move": [row, col]}, client_seq=seq)
    ack = await mover.text()
    assert ack == {"ack": {"tick": before + 1, "last_client_seq": seq}}
    assert mover.ticks[-1] == before + 1  # one tick per move, its frame before the ack
    snapshot: dict[str, Any] = mover.last[1]
    for w in watchers:
        assert await w.frame() == (before + 1, snapshot)
    return snapshot


async def test_a_game_is_played_to_a_win_and_the_finished_shard_closes_everyone() -> None:
    with trio.fail_after(30):
        async with (
            running(GAME) as server,
            subscribe(server, GAME, "g1", "alice", via="subprotocol") as alice,
            subscribe(server, GAME, "g1", "bob") as bob,
            subscribe(server, GAME, "g1", "carol") as carol,
        ):
            for sub in (alice, bob, carol):
                # Event-driven: nothing ticks until a move, so each newcomer gets the board at once.
                tick, snap = await sub.frame()
                assert tick == 0
                assert snap == {
                    "board": EMPTY,
                    "players": {"X": None, "O": None},
                    "turn": "X",
                    "winner": None,
                    "line": [],
                    "moves": 0,
                }

            snap = await move(alice, 1, 1, 1, bob, carol)
            assert (snap["board"], snap["players"], snap["turn"]) == (
                board((1, 1, "X")),
                {"X": "alice", "O": None},
                "O",
            )
            snap = await move(bob, 0, 0, 1, alice, carol)
            assert snap["players"] == {"X": "alice", "O": "bob"}
            await move(alice, 0, 2, 2, bob, carol)
            await move(bob, 1, 0, 2, alice, carol)
            final = await move(alice, 2, 0, 3, bob, carol)
            assert final == {
                "board": board((1, 1, "X"), (0, 0, "O"), (0, 2, "X"), (1, 0, "O"), (2, 0, "X")),
                "players": {"X": "alice", "O": "bob"},
                "turn": None,
                "winner": "X",
                "line": [[0, 2], [1, 1], [2, 0]],
                "moves": 5,
            }
            for sub in (alice, bob, carol):
                assert await sub.closed() == (1000, "shard finished")
                assert sub.ticks == [0, 1, 2, 3, 4, 5]
                assert sub.errors == []

            # A late viewer gets the final board, then the same close.
            async with subscribe(server, GAME, "g1", "dave") as dave:
                assert await dave.frame() == (5, final)
                assert await dave.closed() == (1000, "shard finished")


async def test_moves_out_of_turn_from_spectators_and_malformed_are_refused_and_change_nothing() -> None:
    with trio.fail_after(30):
        async with (
            running(GAME) as server,
            subscribe(server, GAME, "g2", "alice") as alice,
            subscribe(server, GAME, "g2", "bob") as bob,
            subscribe(server, GAME, "g2", "carol") as carol,
        ):
            for sub in (alice, bob, carol):
                await sub.frame()
            await move(alice, 1, 1, 1, bob, carol)  # alice plays X

            await alice.send({"move": [0, 0]}, client_seq=2)  # out of turn, and O is not hers to take
            assert await alice.text() == refusal(2, "unauthorized", "it is O's turn")
            await bob.send({"move": [1, 1]}, client_seq=1)  # taken
            assert await bob.text() == refusal(1, "unauthorized", "cell (1, 1) is taken")
            await move(bob, 0, 0, 2, alice, carol)  # bob plays O

            await carol.send({"move": [2, 2]}, client_seq=1)  # both seats are taken: a spectator
            assert await carol.text() == refusal(
                1,
                "unauthorized",
                "both seats are taken ('alice' plays X, 'bob' plays O): spectators cannot move",
            )
            await bob.send({"move": [2, 2]}, client_seq=3)  # out of turn
            assert await bob.text() == refusal(3, "unauthorized", "it is X's turn")
            await alice.send_raw("[1, 1")
            assert await alice.text() == malformed(
                "message is not JSON (Expecting ',' delimiter: line 1 column 6 (char 5))"
            )
            await alice.send_raw('{"move": [2, 2]}')  # not in the envelope
            assert await alice.text() == malformed(
                "unknown key(s) 'move'; expected 'input' and optional 'client_seq'"
            )
            # Not a move, whatever the board: invalid, with what was expected.
            for seq, (bad, message) in enumerate(
                [
                    ({"move": [3, 0]}, "row must be an integer in [0, 2], got 3"),
                    ({"move": [1, "1"]}, "col must be an integer in [0, 2], got '1'"),
                    ({"move": [True, 0]}, "row must be an integer in [0, 2], got True"),
                    ({"move": [0]}, "move must be a list of two integers [row, col], got [0]"),
                    ({"place": [0, 1]}, """unknown key(s) 'place'; expected {"move": [row, col]}"""),
                    ({}, "missing key 'move'"),
                    (4, 'expected {"move": [row, col]}, got 4'),
                ],
                start=3,
            ):
                await alice.send(bad, client_seq=seq)
                assert await alice.text() == refusal(seq, "invalid", message)

            # The next legal move is the next tick, on the board as it was.
            snap = await move(alice, 0, 1, 10, bob, carol)
            assert snap["board"] == board((1, 1, "X"), (0, 0, "O"), (0, 1, "X"))
            assert (snap["moves"], snap["turn"]) == (3, "O")
            for sub in (alice, bob, carol):
                assert sub.ticks == [0, 1, 2, 3]
            # Each refusal reached the mover alone.
            assert [e["client_seq"] for e in bob.errors] == [1, 3]
            assert [e["client_seq"] for e in carol.errors] == [1]


async def test_a_game_continues_from_the_same_tick_and_board_after_hibernation_and_eviction() -> None:
    with trio.fail_after(30):
        async with running(GAME) as server, client(server) as admin:
            async with (
                subscribe(server, GAME, "g3", "alice") as alice,
                subscribe(server, GAME, "g3", "bob") as bob,
            ):
                await alice.frame()
                await bob.frame()
                await move(alice, 1, 1, 1, bob)
                await move(bob, 0, 0, 1, alice)

                # Hibernation keeps both sockets; the next move wakes the game from its record.
                hibernated = await force(admin, "GAMES", "g3", "hibernate")
                assert (hibernated["state"], hibernated["websockets"]) == ("hibernated", 2)
                snap = await move(alice, 0, 2, 2, bob)
                assert snap["board"] == board((1, 1, "X"), (0, 0, "O"), (0, 2, "X"))
                assert (await describe(admin, "GAMES", "g3"))["activations"] == 2
                last = alice.last

            # Both players leave; the game is evicted; they come back.
            await wait_until(admin, "GAMES", "g3", lambda o: o["websockets"] == 0)
            assert (await force(admin, "GAMES", "g3", "evict"))["state"] == "inactive"
            assert (await stored_record(admin, "GAMES", "g3")).tick == 3  # every move is stored

            async with (
                subscribe(server, GAME, "g3", "alice") as alice,
                subscribe(server, GAME, "g3", "bob") as bob,
            ):
                assert await alice.frame() == last  # the same tick, the same board
                assert await bob.frame() == last
                snap = await move(bob, 1, 0, 2, alice)
                assert snap["board"] == board((1, 1, "X"), (0, 0, "O"), (0, 2, "X"), (1, 0, "O"))
                assert alice.ticks == [3, 4]
                assert (await describe(admin, "GAMES", "g3"))["activations"] == 3


async def test_plain_http_gets_the_help_page() -> None:
    await check_help_page(GAME, b"/?shard=<game>&sid=<you>")


# --------------------------------------------------------------------------- the model alone


def new_shard(game: ModuleType, *players: str) -> Shard:
    shard = Shard("g", game.TicTacToeState.create("g"), game.TicTacToe.config)
    for p in players:
        shard.add_subscriber(p)
    return shard


def play(shard: Shard, player: str, row: int, col: int) -> None:
    shard.push_input_authorized(player, ShardAuth(user_id=player), {"move": [row, col]})


def test_moves_queued_for_the_same_tick_are_checked_again_when_applied(game) -> None:
    shard = new_shard(game, "alice", "bob")
    play(shard, "alice", 0, 0)
    play(shard, "alice", 1, 1)  # both legal on the empty board: alice cannot take both seats
    play(shard, "bob", 0, 0)  # nor bob a cell alice took in this tick
    play(shard, "bob", 2, 2)
    shard.run_tick(0.0)
    snap = shard.sim.snapshot()
    assert snap["board"] == board((0, 0, "X"), (2, 2, "O"))
    assert snap["players"] == {"X": "alice", "O": "bob"}
    assert snap["moves"] == 2


def test_a_full_board_without_a_line_is_a_draw_and_finishes_the_shard(game) -> None:
    shard = new_shard(game, "alice", "bob")
    # X O X / X O O / O X X
    for i, (row, col) in enumerate([(0, 0), (0, 1), (0, 2), (1, 1), (1, 0), (1, 2), (2, 1), (2, 0), (2, 2)]):
        play(shard, "alice" if i % 2 == 0 else "bob", row, col)
        result = shard.run_tick(float(i))
    assert result.finished
    assert result.persist is not None
    snap = shard.sim.snapshot()
    assert (snap["winner"], snap["turn"], snap["line"]) == ("draw", None, [])
    with pytest.raises(ShardStopped):
        play(shard, "alice", 0, 0)
    # The hook itself says why, should a move reach it after the end.
    with pytest.raises(Unauthorized, match=r"^the game is over \(a draw\)$"):
        shard.sim.authorize_input("alice", ShardAuth(user_id="alice"), {"move": [0, 0]})


def test_refusals_raised_by_the_hook_reach_the_sender_and_leave_the_shard_running(game) -> None:
    shard = new_shard(game, "alice", "bob")
    with pytest.raises(InvalidInput, match=r"^col must be an integer in \[0, 2\], got -1$"):
        play(shard, "alice", 0, -1)
    play(shard, "alice", 0, 0)
    shard.run_tick(0.0)
    with pytest.raises(Unauthorized, match=r"^cell \(0, 0\) is taken$"):
        play(shard, "bob", 0, 0)
    with pytest.raises(Unauthorized, match=r"^it is O's turn$"):
        play(shard, "alice", 1, 1)
    assert not shard.failed
    assert shard.sim.snapshot()["board"] == board((0, 0, "X"))
