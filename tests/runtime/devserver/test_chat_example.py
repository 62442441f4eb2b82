"""End to end: examples/chat served in-process, real websocket clients over loopback, a hibernation in between."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
from websockets.trio.client import connect

from .helpers import client, running

CHAT = Path(__file__).resolve().parents[3] / "examples" / "chat"


async def recv_json(ws) -> Any:
    return json.loads(await ws.recv())


async def test_chat_room_keeps_its_sockets_across_hibernation() -> None:
    with trio.fail_after(20):
        async with running(CHAT) as server, client(server) as admin:
            url = f"ws://127.0.0.1:{server.port}/room/lobby"
            async with connect(f"{url}?name=alice") as alice, connect(f"{url}?name=bob") as bob:
                welcome = await recv_json(alice)
                assert welcome == {"type": "welcome", "text": "welcome to lobby", "history": [], "members": 1}
                assert (await recv_json(bob))["members"] == 2
                assert await recv_json(alice) == {"type": "joined", "who": "bob"}

                await alice.send("hi")
                expected = {"type": "message", "who": "alice", "text": "hi"}
                assert await recv_json(alice) == expected
                assert await recv_json(bob) == expected

                room = (await admin.request("GET", "/__shardsim/objects/ROOMS/lobby")).json()
                assert (room["activations"], room["websockets"], room["state"]) == (1, 2, "idle")

                reply = await admin.request("POST", "/__shardsim/objects/ROOMS/lobby/hibernate")
                assert reply.status == 200
                assert reply.json()["state"] == "hibernated"
                assert reply.json()["websockets"] == 2  # the runtime kept both sockets open

                await bob.send("still there?")
                expected = {"type": "message", "who": "bob", "text": "still there?"}
                assert await recv_json(alice) == expected
                assert await recv_json(bob) == expected  # attachment (the name) survived

                room = (await admin.request("GET", "/__shardsim/objects/ROOMS/lobby")).json()
                assert room["activations"] == 2  # the constructor ran again
                assert room["websockets"] == 2

                dump = (await admin.request("GET", "/__shardsim/objects/ROOMS/lobby/storage")).json()
                assert [(m["who"], m["text"]) for m in dump["sql"]["messages"]] == [
                    ("alice", "hi"),
                    ("bob", "still there?"),
                ]

            listing = (await admin.request("GET", "/__shardsim/objects")).json()
            [namespace] = listing["namespaces"]
            assert (namespace["binding"], namespace["class"], namespace["backend"]) == (
                "ROOMS",
                "ChatRoom",
                "sqlite",
            )
            assert [o["id"] for o in namespace["objects"]] == [room["id"]]

            # A newcomer gets the history from SQLite.
            async with connect(f"{url}?name=carol") as carol:
                history = (await recv_json(carol))["history"]
                assert [m["text"] for m in history] == ["hi", "still there?"]


async def test_plain_http_to_the_example() -> None:
    with trio.fail_after(10):
        async with running(CHAT) as server, client(server) as c:
            reply = await c.request("GET", "/")
            assert reply.status == 200
            assert b"/room/<name>" in reply.body
            reply = await c.request("GET", "/room/lobby")
            assert reply.status == 426
