"""examples/auction: served in-process by the dev server, real websocket clients over loopback."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio

from runtime import open_runtime
from runtime.shard_objects import STATE_KEY
from shards import InvalidInput, Shard, ShardAuth, Unauthorized, decode_shard_state
from tests.runtime.conftest import config as runtime_config
from tests.runtime.devserver.helpers import client, running
from tests.runtime.shard_objects.helpers import connect, token as shard_token
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

AUCTION = EXAMPLES / "auction"
auction = module_fixture(AUCTION)  # the Worker module, for the model-alone tests


#: The unknown-key and not-an-input messages end with what an input may be.
FORMS = '{"bid": amount} or {"open": {"start": price, "seconds": duration}}'


async def accepted(sub: Subscriber, input: Any, seq: int) -> dict[str, Any]:
    """Send an input and wait for its ack; the snapshot of the tick that applied it."""
    await sub.send(input, client_seq=seq)
    ack = await sub.text()
    assert ack == {"ack": {"tick": sub.ticks[-1], "last_client_seq": seq}}  # after that tick's frame
    snapshot: dict[str, Any] = sub.last[1]
    return snapshot


@pytest.mark.slow  # the lot runs for its 2 seconds
async def test_bids_raise_the_price_and_the_lot_sells_when_its_deadline_passes() -> None:
    with trio.fail_after(30):
        async with (
            running(AUCTION) as server,
            subscribe(server, AUCTION, "lamp", "auctioneer", user="sam", admin=True) as sam,
            subscribe(server, AUCTION, "lamp", "alice", via="subprotocol") as alice,
            subscribe(server, AUCTION, "lamp", "bob") as bob,
        ):
            _, lot = await alice.frame()
            assert lot == {
                "item": "lamp",
                "status": "waiting",
                "price": 0,
                "leader": None,
                "bids": [],
                "remaining": None,
            }
            lot = await accepted(sam, {"open": {"start": 10, "seconds": 2}}, 1)
            assert (lot["status"], lot["price"]) == ("open", 10)
            assert 1 < lot["remaining"] < 2  # the tick that opened it ran its dt

            lot = await accepted(alice, {"bid": 12}, 1)
            assert (lot["price"], lot["leader"]) == (12, "alice")
            lot = await accepted(bob, {"bid": 15}, 1)
            assert (lot["price"], lot["leader"]) == (15, "bob")
            await alice.send({"bid": 14}, client_seq=2)
            assert await alice.text() == refusal(
                2, "unauthorized", "bid 14 is not above the current price 15"
            )
            await alice.send({"bid": 15}, client_seq=3)  # equal is not above
            assert await alice.text() == refusal(
                3, "unauthorized", "bid 15 is not above the current price 15"
            )

            # The deadline passes in shard time: the last frame shows the sale, then the shard closes.
            for sub in (alice, bob, sam):
                assert await sub.closed() == (1000, "shard finished")
            final_tick, final = alice.last
            assert (final["status"], final["price"], final["leader"], final["remaining"]) == (
                "sold",
                15,
                "bob",
                0,
            )
            assert [(b["bidder"], b["amount"]) for b in final["bids"]] == [("alice", 12), ("bob", 15)]
            assert bob.last == sam.last == (final_tick, final)
            statuses = [status for status, _ in itertools.groupby(s["status"] for s in alice.snapshots)]
            assert statuses == ["waiting", "open", "sold"]
            assert bob.errors == []

            # A late viewer gets the final state, then the same close.
            async with subscribe(server, AUCTION, "lamp", "carol") as carol:
                assert await carol.frame() == (final_tick, final)
                assert await carol.closed() == (1000, "shard finished")


async def test_bids_that_are_low_early_or_malformed_are_refused_and_change_nothing() -> None:
    with trio.fail_after(30):
        async with (
            running(AUCTION) as server,
            subscribe(server, AUCTION, "vase", "auctioneer", user="sam", admin=True) as sam,
            subscribe(server, AUCTION, "vase", "alice") as alice,
            subscribe(server, AUCTION, "vase", "bob") as bob,
        ):
            await alice.frame()
            await alice.send({"bid": 11}, client_seq=1)
            assert await alice.text() == refusal(1, "unauthorized", "the lot is not open yet")
            await alice.send({"open": {"start": 0, "seconds": 5}}, client_seq=2)
            assert await alice.text() == refusal(2, "unauthorized", "only an admin may open the lot")
            await sam.send({"open": {"start": 10}}, client_seq=1)
            assert await sam.text() == refusal(
                1, "invalid", """open must be {"start": price, "seconds": duration}, got {'start': 10}"""
            )
            await sam.send({"open": {"start": 10, "seconds": 0}}, client_seq=2)
            assert await sam.text() == refusal(2, "invalid", "seconds must be a number in (0, 604800], got 0")

            lot = await accepted(sam, {"open": {"start": 10, "seconds": 60}}, 3)
            assert (lot["status"], lot["price"]) == ("open", 10)
            await sam.send({"open": {"start": 1, "seconds": 1}}, client_seq=4)
            assert await sam.text() == refusal(4, "unauthorized", "the lot was opened already")

            # Well-formed but not above the price: unauthorized. Malformed: invalid.
            refused = [
                ({"bid": 10}, "unauthorized", "bid 10 is not above the current price 10"),
                ({"bid": 9}, "unauthorized", "bid 9 is not above the current price 10"),
                ({"bid": "12"}, "invalid", "bid must be an integer in [1, 1000000000], got '12'"),
                ({"bid": 12.5}, "invalid", "bid must be an integer in [1, 1000000000], got 12.5"),
                ({"bid": True}, "invalid", "bid must be an integer in [1, 1000000000], got True"),
                (
                    {"bid": 2_000_000_000},
                    "invalid",
                    "bid must be an integer in [1, 1000000000], got 2000000000",
                ),
                ({"bid": 12, "proxy": 20}, "invalid", f"unknown key(s) 'proxy'; expected {FORMS}"),
                ({"offer": 12}, "invalid", f"unknown key(s) 'offer'; expected {FORMS}"),
                (12, "invalid", f"expected {FORMS}, got 12"),
            ]
            for seq, (bad, code, message) in enumerate(refused, start=3):
                await alice.send(bad, client_seq=seq)
                assert await alice.text() == refusal(seq, code, message)
            await alice.send_raw('{"input": {"bid": 12}, "client_seq": "13"}')
            assert await alice.text() == malformed(
                "client_seq must be an integer in [0, 9007199254740991], got '13'"
            )
            await alice.send_raw(b'{"input": {"bid": 12}')
            assert (await alice.text())["error"]["code"] == "malformed"

            lot = await accepted(alice, {"bid": 11}, 20)
            assert (lot["price"], lot["leader"]) == (11, "alice")
            assert [(b["bidder"], b["amount"]) for b in lot["bids"]] == [("alice", 11)]
            _, seen = await bob.frame(lambda t, _s: t >= alice.ticks[-1])
            assert (seen["price"], seen["leader"]) == (11, "alice")
            assert bob.texts == []  # nothing refused reached anyone else


async def test_every_tick_is_stored_so_hibernation_and_eviction_lose_nothing() -> None:
    with trio.fail_after(30):
        async with running(AUCTION) as server, client(server) as admin:
            async with (
                subscribe(server, AUCTION, "clock", "auctioneer", user="sam", admin=True) as sam,
                subscribe(server, AUCTION, "clock", "alice") as alice,
                subscribe(server, AUCTION, "clock", "bob") as bob,
            ):
                await accepted(sam, {"open": {"start": 10, "seconds": 60}}, 1)
                await accepted(alice, {"bid": 20}, 1)
                seen = alice.ticks[-1]
                # The record is written before the frames of its tick go out.
                assert (await stored_record(admin, "LOTS", "clock")).tick >= seen

                # Hibernation with everyone connected: the next alarm wakes the lot from its record.
                hibernated = await force(admin, "LOTS", "clock", "hibernate")
                assert (hibernated["state"], hibernated["websockets"]) == ("hibernated", 3)
                await wait_until(admin, "LOTS", "clock", lambda o: o["activations"] == 2)
                lot = await accepted(bob, {"bid": 25}, 1)  # applied by the new activation
                assert [(b["bidder"], b["amount"]) for b in lot["bids"]] == [("alice", 20), ("bob", 25)]
                assert (lot["price"], lot["leader"], lot["status"]) == (25, "bob", "open")
                # Strictly increasing ticks across the hibernation (the helper checks each
                # frame): the lot resumed after the last tick anyone saw, not before it.
                _, lot = await alice.frame(lambda t, _s: t >= bob.ticks[-1])
                assert (lot["price"], lot["leader"]) == (25, "bob")
                last_seen = max(s.ticks[-1] for s in (sam, alice, bob))

            # Everyone left: the next tick finds the lot quiet and stores it; no alarm is re-armed.
            await wait_until(admin, "LOTS", "clock", lambda o: o["websockets"] == 0 and o["alarm"] is None)
            assert (await force(admin, "LOTS", "clock", "evict"))["state"] == "inactive"
            record = await stored_record(admin, "LOTS", "clock")
            assert record.tick >= last_seen
            left = record.sim_state["closes_at"] - record.sim_state["clock"]

            async with subscribe(server, AUCTION, "clock", "carol") as carol:
                tick, lot = await carol.frame()
                assert tick == record.tick + 1
                assert (lot["price"], lot["leader"], lot["status"]) == (25, "bob", "open")
                assert [(b["bidder"], b["amount"]) for b in lot["bids"]] == [("alice", 20), ("bob", 25)]
                assert lot["remaining"] < left  # the countdown goes on from where it was
                assert (await describe(admin, "LOTS", "clock"))["activations"] == 3


async def test_the_countdown_stands_still_while_nobody_watches(auction, autojump_clock) -> None:
    """Shard time skips the spell during which the lot was quiet (in-memory runtime, virtual time)."""
    async with open_runtime(objects={"LOTS": auction.AuctionLot}, config=runtime_config()) as rt:
        stub = rt.env.LOTS.getByName("lamp")
        sam = await connect(rt, "LOTS", "lamp", "auctioneer", auth=shard_token("sam", admin=True))
        await sam.send({"open": {"start": 10, "seconds": 60}})
        await trio.sleep(1)
        await sam.close()
        await trio.sleep(1)  # the next tick finds the lot quiet and stores it
        record = decode_shard_state(rt.dump_storage(stub)["kv"][STATE_KEY])
        left = record.sim_state["closes_at"] - record.sim_state["clock"]
        assert 58 < left < 59.5
        await trio.sleep(3600)  # an hour with nobody connected
        assert rt.state_of(stub) == "hibernated"
        alice = await connect(rt, "LOTS", "lamp", "alice")
        await trio.sleep(0.5)
        tick, lot = alice.transport.frames()[0]
        assert tick == record.tick + 1
        # Resumed within a tick or two of where it stopped, not an hour later.
        assert left - 0.201 <= lot["remaining"] < left


async def test_plain_http_gets_the_help_page() -> None:
    await check_help_page(AUCTION, b"/?shard=<lot>&sid=<you>")


# --------------------------------------------------------------------------- the model alone


def test_bids_queued_for_the_same_tick_are_checked_again_when_applied(auction) -> None:
    shard = Shard("lamp", auction.LotState.create("lamp"), auction.AuctionLot.config)
    for sid in ("sam", "alice", "bob"):
        shard.add_subscriber(sid)
    shard.push_input_authorized(
        "sam", ShardAuth(user_id="sam", admin=True), {"open": {"start": 10, "seconds": 1}}
    )
    shard.run_tick(0.0)
    shard.push_input_authorized("alice", ShardAuth(user_id="alice"), {"bid": 30})
    shard.push_input_authorized("bob", ShardAuth(user_id="bob"), {"bid": 20})  # above 10 when sent
    shard.run_tick(0.1)
    lot = shard.sim.snapshot()
    assert (lot["price"], lot["leader"]) == (30, "alice")
    assert [b["bidder"] for b in lot["bids"]] == ["alice"]
    # Pushed now, the same bid is refused with the reason.
    with pytest.raises(Unauthorized, match=r"^bid 20 is not above the current price 30$"):
        shard.push_input_authorized("bob", ShardAuth(user_id="bob"), {"bid": 20})
    with pytest.raises(InvalidInput, match=r"^start must be an integer in \[0, 1000000000\], got -1$"):
        shard.push_input_authorized(
            "sam", ShardAuth(user_id="sam", admin=True), {"open": {"start": -1, "seconds": 1}}
        )
    assert not shard.failed


def test_an_unsold_lot_finishes_at_its_deadline_and_the_record_says_so(auction) -> None:
    shard = Shard("vase", auction.LotState.create("vase"), auction.AuctionLot.config)
    shard.add_subscriber("sam")
    shard.push_input_authorized(
        "sam", ShardAuth(user_id="sam", admin=True), {"open": {"start": 10, "seconds": 1}}
    )
    # Opened at clock 0, closing at 1.0; the first tick's dt is one period (0.1), then 0.25 each.
    results = [shard.run_tick(now) for now in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert [r.finished for r in results] == [False, False, False, False, True]
    assert all(r.persist is not None for r in results)  # a record on every tick
    assert shard.sim.snapshot()["status"] == "unsold"
