"""Hibernatable websockets: the hibernation API, events, output gate, limits."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from runtime import (
    DurableObject,
    Response,
    WebSocketPair,
    WebSocketRequestResponsePair,
    open_runtime,
)
from runtime.sockets import CLOSED, WebSocket, attach
from tests.runtime.conftest import config
from tests.runtime.fakes import FakeTransport

CONSTRUCTED: list[int] = []


class Room(DurableObject):
    def __init__(self, ctx, env) -> None:
        super().__init__(ctx, env)
        CONSTRUCTED.append(1)
        ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request):
        pair = WebSocketPair()
        name = request.url.rsplit("/", 1)[-1]
        self.ctx.acceptWebSocket(pair.server, [name, "all"])
        pair.server.serializeAttachment({"name": name})
        return Response(None, status=101, web_socket=pair.client)

    async def webSocketMessage(self, ws, message) -> None:
        who = ws.deserializeAttachment()["name"]
        if message == "write":
            self.ctx.storage.put("last", who)
        for other in self.ctx.getWebSockets():
            other.send(f"{who}: {message}")

    async def webSocketClose(self, ws, code, reason, was_clean) -> None:
        for other in self.ctx.getWebSockets():
            if other is not ws:
                other.send(f"left {code}")

    async def tags(self, which: int) -> list[str]:
        return self.ctx.getTags(self.ctx.getWebSockets()[which])


@pytest.fixture(autouse=True)
def _clear() -> None:
    CONSTRUCTED.clear()


async def connect(rt, name: str) -> tuple[Any, FakeTransport]:
    resp = await rt.env.ROOM.getByName("lobby").fetch(f"http://room/{name}")
    assert resp.status == 101
    transport = FakeTransport()
    return attach(resp.webSocket, transport), transport


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_messages_reach_the_object_and_broadcasts_reach_every_socket(autojump_clock) -> None:
    async with open_runtime(objects={"ROOM": Room}, config=config()) as rt:
        alice, a = await connect(rt, "alice")
        _bob, b = await connect(rt, "bob")
        await alice.message("hi")
        await settle()
        assert a.sent == ["alice: hi"]
        assert b.sent == ["alice: hi"]
        assert await rt.env.ROOM.getByName("lobby").tags(1) == ["bob", "all"]


async def test_sockets_survive_hibernation_with_tags_and_attachments(autojump_clock) -> None:
    async with open_runtime(objects={"ROOM": Room}, config=config()) as rt:
        alice, a = await connect(rt, "alice")
        await trio.sleep(11)
        stub = rt.env.ROOM.getByName("lobby")
        assert rt.state_of(stub) == "hibernated"  # only hibernatable sockets: it sleeps
        assert len(CONSTRUCTED) == 1
        await alice.message("again")
        await settle()
        assert a.sent == ["alice: again"]  # same socket, attachment intact
        assert len(CONSTRUCTED) == 2  # the message re-ran the constructor
        assert rt.object_statistics(stub).websockets == 1


async def test_auto_response_does_not_wake_the_object(autojump_clock) -> None:
    async with open_runtime(objects={"ROOM": Room}, config=config()) as rt:
        alice, a = await connect(rt, "alice")
        ws = a  # the transport sees the answer
        await rt.hibernate(rt.env.ROOM.getByName("lobby"))
        await alice.message("ping")
        await settle()
        assert ws.sent == ["pong"]
        assert len(CONSTRUCTED) == 1
        assert rt.state_of(rt.env.ROOM.getByName("lobby")) == "hibernated"


async def test_sends_after_a_write_wait_for_the_commit_and_die_with_a_crash(autojump_clock) -> None:
    from runtime._core import reset_error

    async with open_runtime(objects={"ROOM": Room}, config=config()) as rt:
        alice, a = await connect(rt, "alice")
        stub = rt.env.ROOM.getByName("lobby")
        before = rt.statistics().commits
        await alice.message("write")
        await settle()
        assert a.sent == ["alice: write"]
        assert rt.statistics().commits == before + 1

        def write_send_crash(inst, ctx) -> None:
            ctx.storage.put("x", 1)
            ctx.getWebSockets()[0].send("held")
            rt._actor_of(stub).reset(reset_error("Network connection lost."), lose_writes=True)

        with pytest.raises(Exception, match="Network connection lost"):
            await rt.run_in_object(stub, write_send_crash)
        assert "held" not in a.sent
        assert a.closed == (1011, "Durable Object reset")  # a reset drops the connections


async def test_remote_close_reaches_web_socket_close_and_auto_replies(autojump_clock) -> None:
    async with open_runtime(objects={"ROOM": Room}, config=config()) as rt:
        _alice, a = await connect(rt, "alice")
        bob, b = await connect(rt, "bob")
        await bob.closed(1001, "going away", True)
        await settle()
        assert a.sent == ["left 1001"]
        assert b.closed == (1001, "going away")  # compat >= 2026-04-07: the runtime replies
        assert rt.object_statistics(rt.env.ROOM.getByName("lobby")).websockets == 1


async def test_standard_accept_pins_the_object_and_cannot_then_hibernate(autojump_clock) -> None:
    class Echo(DurableObject):
        async def fetch(self, request):
            client, server = WebSocketPair.new().object_values()
            server.accept()
            server.addEventListener("message", lambda event: server.send(event.data.upper()))
            return Response(None, status=101, web_socket=client)

    async with open_runtime(objects={"E": Echo}, config=config()) as rt:
        resp = await rt.env.E.getByName("e").fetch("http://e/")
        transport = FakeTransport()
        peer = attach(resp.webSocket, transport)
        await peer.message("hello")
        await settle()
        assert transport.sent == ["HELLO"]
        await trio.sleep(30)
        assert rt.state_of(rt.env.E.getByName("e")) == "idle"  # pinned: no hibernation
        await trio.sleep(120)
        assert rt.state_of(rt.env.E.getByName("e")) == "inactive"  # evicted after 70-140 s
        assert transport.closed == (1011, "Durable Object reset")


async def test_hibernation_api_errors_and_limits(autojump_clock) -> None:
    class Strict(DurableObject):
        async def check(self) -> list[str]:
            errors = []
            pair = WebSocketPair()
            pair.server.accept()
            for call in (
                lambda: self.ctx.acceptWebSocket(pair.server),
                lambda: self.ctx.getTags(pair.server),
                lambda: self.ctx.acceptWebSocket(WebSocketPair().server, [f"t{i}" for i in range(11)]),
                lambda: self.ctx.acceptWebSocket(WebSocketPair().server, ["x" * 257]),
                lambda: WebSocketPair().server.send("not accepted"),
                lambda: pair.server.serializeAttachment(b"x" * 20_000),
                lambda: pair.server.serializeAttachment((1, 2)),
            ):
                try:
                    call()
                except (TypeError, ValueError) as exc:
                    errors.append(str(exc))
            ok = WebSocketPair()
            self.ctx.acceptWebSocket(ok.server)
            try:
                self.ctx.acceptWebSocket(ok.server)
            except TypeError as exc:
                errors.append(str(exc))
            return errors

    async with open_runtime(objects={"S": Strict}, config=config()) as rt:
        errors = await rt.env.S.getByName("s").check()
    assert errors == [
        "acceptWebSocket() cannot take a WebSocket on which accept() was called: a socket is either hibernatable or not.",
        "getTags() was called on a WebSocket that was not accepted with acceptWebSocket().",
        "A WebSocket can have at most 10 tags.",
        "A WebSocket tag can be at most 256 characters long.",
        "You must call accept() on this WebSocket before sending messages.",
        "The WebSocket attachment is 20003 bytes, over the limit of 16384.",
        "serializeAttachment(): cannot encode value: tuples cannot cross (production's Python SDK refuses them); use a list",
        "acceptWebSocket() was called on a WebSocket that was already accepted.",
    ]


async def test_in_memory_pair_between_test_code_and_an_object(autojump_clock) -> None:
    """No transport: a test can hold the client end and listen on it."""
    async with open_runtime(objects={"ROOM": Room}, config=config()) as rt:
        resp = await rt.env.ROOM.getByName("lobby").fetch("http://room/carol")
        client: WebSocket = resp.webSocket
        got: list[str] = []
        client.accept()
        client.addEventListener("message", lambda event: got.append(event.data))
        client.send("hello")
        await settle()
        assert got == ["carol: hello"]
        client.close(1000, "bye")
        await settle()
        # the runtime answered the close (compat >= 2026-04-07)
        assert client.readyState == CLOSED
        assert rt.object_statistics(rt.env.ROOM.getByName("lobby")).websockets == 0


class Slow(Room):
    async def webSocketMessage(self, ws, message) -> None:
        await trio.sleep(3600)


async def test_closing_the_runtime_under_a_socket_event_logs_no_handler_error(autojump_clock, caplog) -> None:
    async with open_runtime(objects={"ROOM": Slow}, config=config()) as rt:
        alice, _ = await connect(rt, "alice")
        await alice.message("anything")
        await settle()  # the handler is asleep inside the event when the runtime closes
    await settle()
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


@pytest.mark.parametrize("end", ["hibernate", "evict"])
async def test_a_graceful_end_keeps_the_write_and_sends_the_frame_held_for_it(autojump_clock, end) -> None:
    async with open_runtime(objects={"ROOM": Room}, config=config()) as rt:
        _alice, a = await connect(rt, "alice")
        stub = rt.env.ROOM.getByName("lobby")

        def write_send_end(inst, ctx) -> None:
            ctx.storage.put("x", 1)
            ctx.getWebSockets()[0].send("held for the write")
            assert a.sent == []  # the output gate holds it
            getattr(rt._actor_of(stub), end)()

        with pytest.raises(Exception, match="Network connection lost"):
            await rt.run_in_object(stub, write_send_end)
        await settle()
        assert a.sent == ["held for the write"]  # the write committed, so the frame goes out
        assert rt.dump_storage(stub)["kv"]["x"] == 1
