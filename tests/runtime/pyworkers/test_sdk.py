"""Durable Objects written against the Python Workers SDK, run by the runtime with production's conversions."""

from __future__ import annotations

import pytest
import trio

from runtime import RemoteError, open_runtime
from tests.runtime.conftest import config

from .helpers import worker_module

LIST_WORKER = """
from pyodide.ffi import to_js
from workers import DurableObject


class List(DurableObject):
    # Cloudflare's Durable Object example (python-workers-examples, 07-durable-objects).
    async def get_messages(self):
        messages = await self.ctx.storage.get("messages")
        return messages if messages else []

    async def add_message(self, message):
        messages = await self.get_messages()
        messages.append(message)
        await self.ctx.storage.put("messages", to_js(messages))

    async def put_plain(self, value):
        await self.ctx.storage.put("plain", value)

    async def options(self):
        await self.ctx.storage.put("a1", 1, allowUnconfirmed=True)
        await self.ctx.storage.put("a2", {"deep": {"x": None}})
        got = await self.ctx.storage.get("a2", allowConcurrency=True)
        listed = await self.ctx.storage.list(prefix="a")
        return [got.deep.x, sorted(listed.keys()), listed.a1]

    async def rpc_types(self, value):
        return [type(value).__name__, value]

    async def floats(self):
        await self.ctx.storage.put("f", 5.0)
        return await self.ctx.storage.get("f")

    async def fetch(self):
        return None
"""


async def test_cloudflares_durable_object_list_example_runs(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, LIST_WORKER) as mod:
        async with open_runtime(objects={"LISTS": mod.List}, config=config()) as rt:
            stub = rt.env.LISTS.getByName("groceries")
            assert await stub.get_messages() == []
            await stub.add_message("milk")
            await stub.add_message("eggs")
            assert await stub.get_messages() == ["milk", "eggs"]
            await rt.hibernate(stub)
            assert await stub.get_messages() == ["milk", "eggs"]


async def test_keyword_options_become_the_options_object(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, LIST_WORKER) as mod:
        async with open_runtime(objects={"LISTS": mod.List}, config=config()) as rt:
            assert await rt.env.LISTS.getByName("x").options() == [None, ["a1", "a2"], 1]


async def test_a_plain_python_list_is_stored_through_the_sdk_wrapper(tmp_path, autojump_clock) -> None:
    # ctx.storage goes through python_to_rpc: a list converts without to_js.
    with worker_module(tmp_path, LIST_WORKER) as mod:
        async with open_runtime(objects={"LISTS": mod.List}, config=config()) as rt:
            stub = rt.env.LISTS.getByName("x")
            await stub.put_plain([1, 2])
            assert rt.dump_storage(stub)["kv"]["plain"] == [1, 2]


async def test_an_integral_float_reads_back_as_an_int_as_a_javascript_number(
    tmp_path, autojump_clock
) -> None:
    with worker_module(tmp_path, LIST_WORKER) as mod:
        async with open_runtime(objects={"LISTS": mod.List}, config=config()) as rt:
            assert await rt.env.LISTS.getByName("x").floats() == 5


async def test_rpc_arguments_arrive_converted_by_python_from_rpc(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, LIST_WORKER) as mod:
        async with open_runtime(objects={"LISTS": mod.List}, config=config()) as rt:
            stub = rt.env.LISTS.getByName("x")
            assert await stub.rpc_types({"a": 1}) == ["JsDict", {"a": 1}]
            assert await stub.rpc_types(None) == ["NoneType", None]
            assert await stub.rpc_types(b"\x01") == ["memoryview", b"\x01"]


WEBSOCKET_WORKER = """
import json

from js import Object, WebSocketPair
from pyodide.ffi import to_js
from workers import DurableObject, Response


class Room(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server, to_js(["member"]))
        server.serializeAttachment(to_js({"who": "ada"}, dict_converter=Object.fromEntries))
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        who = ws.deserializeAttachment().who
        if isinstance(message, str):
            ws.send(json.dumps({"who": who, "text": message}))
        else:
            data = message.to_bytes()
            ws.send(to_js(data[::-1]))

    async def webSocketClose(self, ws):
        pass

    async def bad_send(self):
        [ws] = self.ctx.getWebSockets()
        ws.send(b"raw bytes")

    async def bad_attachment(self):
        [ws] = self.ctx.getWebSockets()
        ws.serializeAttachment({"a": 1})

    async def bad_tags(self):
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server, ["t"])
"""


async def test_websocket_attachments_and_binary_messages_cross_as_in_production(
    tmp_path, autojump_clock
) -> None:
    from runtime.sockets import attach
    from tests.runtime.fakes import FakeTransport

    with worker_module(tmp_path, WEBSOCKET_WORKER) as mod:
        async with open_runtime(objects={"ROOMS": mod.Room}, config=config()) as rt:
            stub = rt.env.ROOMS.getByName("r")
            response = await stub.fetch("http://do/")
            assert response.status == 101
            transport = FakeTransport()
            peer = attach(response.webSocket, transport)
            await peer.message("hello")
            await trio.testing.wait_all_tasks_blocked()
            await peer.message(b"\x01\x02")
            await trio.testing.wait_all_tasks_blocked()
            assert transport.sent == ['{"who": "ada", "text": "hello"}', b"\x02\x01"]
            await peer.closed(1000, "bye", True)


@pytest.mark.parametrize(
    ("method", "match"),
    [
        (
            "bad_send",
            r"ws\.send\(\): the message, a Python bytes, reaches JavaScript as a PyProxy.*to_js\(data\)",
        ),
        ("bad_attachment", r"serializeAttachment\(\): the attachment, a Python dict.*DataCloneError"),
        ("bad_tags", r"acceptWebSocket\(\): the tags, a Python list.*to_js\(tags\)"),
    ],
)
async def test_values_production_would_mis_convert_are_refused(
    tmp_path, autojump_clock, method, match
) -> None:
    from runtime.sockets import attach
    from tests.runtime.fakes import FakeTransport

    with worker_module(tmp_path, WEBSOCKET_WORKER) as mod:
        async with open_runtime(objects={"ROOMS": mod.Room}, config=config()) as rt:
            stub = rt.env.ROOMS.getByName("r")
            response = await stub.fetch("http://do/")
            attach(response.webSocket, FakeTransport())
            # Thrown by the JavaScript API: a JavaScript TypeError, which RPC carries by its name.
            with pytest.raises(RemoteError, match=match) as info:
                await getattr(stub, method)()
            assert info.value.name == "TypeError"
            assert "worker_under_test.py:" in str(info.value)  # the Worker's own line


HANDLERS_WORKER = """
from workers import DurableObject, Response


class Handlers(DurableObject):
    async def fetch(self):
        self.ctx.storage.kv.put("fetched", True)
        await self.ctx.storage.setAlarm(1)
        return Response("no request parameter")

    async def alarm(self):
        self.ctx.storage.kv.put("alarmed", True)
"""


async def test_handlers_are_called_relaxed(tmp_path, autojump_clock) -> None:
    with worker_module(tmp_path, HANDLERS_WORKER) as mod:
        async with open_runtime(objects={"H": mod.Handlers}, config=config()) as rt:
            stub = rt.env.H.getByName("h")
            response = await stub.fetch("http://do/")
            assert await response.text() == "no request parameter"
            assert response.headers.get("content-type") == "text/plain;charset=UTF-8"
            await trio.sleep(1)
            assert rt.dump_storage(stub)["kv"] == {"fetched": True, "alarmed": True}


async def test_rpc_keyword_arguments_are_refused_on_purpose(tmp_path, autojump_clock) -> None:
    source = """
from workers import DurableObject, WorkerEntrypoint


class Callee(DurableObject):
    async def hello(self, name):
        return f"hello {name}"


class Caller(DurableObject):
    async def call(self):
        stub = self.env.CALLEE.getByName("x")
        ok = await stub.hello("ada")
        try:
            await stub.hello(name="ada")
        except TypeError as exc:
            return [ok, str(exc)]
"""
    with worker_module(tmp_path, source) as mod:
        async with open_runtime(objects={"CALLEE": mod.Callee, "CALLER": mod.Caller}, config=config()) as rt:
            ok, message = await rt.env.CALLER.getByName("c").call()
            assert ok == "hello ada"
            assert "keyword arguments (name)" in message
            assert "one trailing object argument" in message


async def test_python_to_rpc_refuses_what_the_sdk_refuses(tmp_path, autojump_clock) -> None:
    source = """
from workers import DurableObject


class T(DurableObject):
    async def tuple_put(self):
        await self.ctx.storage.put("t", (1, 2))
"""
    with worker_module(tmp_path, source) as mod:
        async with open_runtime(objects={"T": mod.T}, config=config()) as rt:
            with pytest.raises(TypeError, match=r"^<class 'tuple'> cannot be sent over RPC\.$"):
                await rt.env.T.getByName("t").tuple_put()
