"""Worker projects written as Cloudflare's Python Workers docs write them, served end to end by the dev server.

Each project uses only what a deployed Python Worker has (``workers``,
``js``, ``pyodide``, the standard library) and converts values the way
Pyodide requires (``to_js`` for what JavaScript keeps, ``JsProxy`` for what
JavaScript hands back). The tests drive them over real HTTP and websocket
connections, as a browser or ``curl`` would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from websockets.trio.client import connect

from runtime.devserver import WorkerLoadError, load_config
from runtime.devserver._worker import load_worker

from .helpers import get, make_project, running, wait_for, wrangler_toml

# -- 1. A list per name, a Durable Object reached by RPC ---------------------------------------

LISTS_TOML = wrangler_toml("lists", "src/entry.py", {"LISTS": "Notebook"})

LISTS_ENTRY = """
from urllib.parse import unquote, urlparse

from pyodide.ffi import to_js
from workers import DurableObject, Response, WorkerEntrypoint


class Notebook(DurableObject):
    async def lines(self):
        stored = await self.ctx.storage.get("lines")
        return stored if stored else []

    async def write(self, line):
        lines = await self.lines()
        lines.append(line)
        # A Python list would reach storage.put as a PyProxy in production: to_js makes it an Array.
        await self.ctx.storage.put("lines", to_js(lines))
        return len(lines)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        parts = urlparse(request.url).path.strip("/").split("/")
        if not parts[0]:
            return Response("GET /<list>/add/<line> or /<list>/show", status=400)
        stub = self.env.LISTS.get(self.env.LISTS.idFromName(parts[0]))
        if len(parts) == 3 and parts[1] == "add":
            count = await stub.write(unquote(parts[2]))
            return Response.json({"count": count})
        if parts[1:] == ["show"]:
            lines = await stub.lines()
            return Response("\\n".join(lines) if lines else "(empty)")
        return Response("not found", status=404)
"""


async def test_a_list_object_stores_with_to_js_and_answers_over_rpc(tmp_path: Path) -> None:
    project = make_project(tmp_path, LISTS_ENTRY, LISTS_TOML, dev_vars=None)
    with trio.fail_after(10):
        async with running(project) as server:
            empty = await get(server, "/groceries/show")
            assert (empty.status, empty.body) == (200, b"(empty)")
            assert empty.headers["content-type"] == "text/plain;charset=UTF-8"
            first = await get(server, "/groceries/add/milk")
            assert first.status == 200
            assert first.headers["content-type"] == "application/json"
            assert first.json() == {"count": 1}
            assert (await get(server, "/groceries/add/two%20eggs")).json() == {"count": 2}
            assert (await get(server, "/chores/add/dishes")).json() == {"count": 1}
            shown = await get(server, "/groceries/show")
            assert shown.body == b"milk\ntwo eggs"
            # What production stores: a JavaScript array, read back by the SDK as a Python list.
            stub = server.runtime.env.LISTS.getByName("groceries")
            assert server.runtime.dump_storage(stub)["kv"] == {"lines": ["milk", "two eggs"]}
            assert (await get(server, "/")).status == 400


async def test_storing_a_python_list_without_to_js_works_through_the_sdk_wrapper(tmp_path: Path) -> None:
    # ctx.storage goes through the SDK's binding wrapper (python_to_rpc), so a plain list is converted:
    # the to_js above is what Cloudflare's example writes, not a requirement there.
    entry = LISTS_ENTRY.replace("to_js(lines)", "lines")
    project = make_project(tmp_path, entry, LISTS_TOML, dev_vars=None)
    with trio.fail_after(10):
        async with running(project) as server:
            assert (await get(server, "/l/add/x")).json() == {"count": 1}
            assert (await get(server, "/l/show")).body == b"x"


# -- 2. A websocket room with attachments and binary messages ----------------------------------

ROOM_TOML = wrangler_toml("rooms", "src/entry.py", {"ROOMS": "Room"})

ROOM_ENTRY = """
import json
from urllib.parse import parse_qs, urlparse

from js import Object, WebSocketPair
from pyodide.ffi import JsProxy, to_js
from workers import DurableObject, Response, WorkerEntrypoint


class Room(DurableObject):
    async def fetch(self, request):
        if request.headers.get("Upgrade") != "websocket":
            return Response("expected a websocket upgrade", status=426)
        name = parse_qs(urlparse(request.url).query).get("name", ["anon"])[0]
        client, server = WebSocketPair.new().object_values()
        # Tags and attachments cross into JavaScript: to_js, as production requires.
        self.ctx.acceptWebSocket(server, to_js([f"user:{name}"]))
        server.serializeAttachment(to_js({"name": name, "sent": 0}, dict_converter=Object.fromEntries))
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        seen = ws.deserializeAttachment().to_py()
        seen["sent"] += 1
        ws.serializeAttachment(to_js(seen, dict_converter=Object.fromEntries))
        if isinstance(message, str):
            line = json.dumps({"from": seen["name"], "text": message, "n": seen["sent"]})
            for peer in self.ctx.getWebSockets():
                peer.send(line)
        else:
            # A binary message arrives as an ArrayBuffer proxy; answer with its bytes reversed.
            assert isinstance(message, JsProxy)
            ws.send(to_js(message.to_bytes()[::-1]))

    async def webSocketClose(self, ws, code, reason, was_clean):
        ws.close(code, reason)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        room = parse_qs(urlparse(request.url).query).get("room", ["lobby"])[0]
        return await self.env.ROOMS.getByName(room).fetch(request)
"""


async def test_a_websocket_room_keeps_attachments_across_hibernation_and_echoes_binary(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, ROOM_ENTRY, ROOM_TOML, dev_vars=None)
    with trio.fail_after(10):
        async with running(project) as server:
            url = f"ws://127.0.0.1:{server.port}/?room=r1"
            async with connect(url + "&name=ada") as ada, connect(url + "&name=bob") as bob:
                await ada.send("hi")
                assert json.loads(await ada.recv()) == {"from": "ada", "text": "hi", "n": 1}
                assert json.loads(await bob.recv()) == {"from": "ada", "text": "hi", "n": 1}
                await bob.send(b"\x01\x02\xff")
                assert await bob.recv() == b"\xff\x02\x01"
                # The object goes; the sockets and their attachments stay (hibernation).
                stub = server.runtime.env.ROOMS.getByName("r1")
                await server.runtime.hibernate(stub)
                await ada.send("again")
                assert json.loads(await bob.recv()) == {"from": "ada", "text": "again", "n": 2}
                assert json.loads(await ada.recv())["n"] == 2
                await bob.send("me")
                assert json.loads(await ada.recv()) == {"from": "bob", "text": "me", "n": 2}
            await wait_for(lambda: server.statistics().websockets == 0)


async def test_a_room_that_forgets_to_js_fails_with_the_production_rule(tmp_path: Path) -> None:
    entry = ROOM_ENTRY.replace(
        'server.serializeAttachment(to_js({"name": name, "sent": 0}, dict_converter=Object.fromEntries))',
        'server.serializeAttachment({"name": name, "sent": 0})',
    )
    project = make_project(tmp_path, entry, ROOM_TOML, dev_vars=None)
    with trio.fail_after(10):
        async with running(project) as server:
            from websockets.exceptions import InvalidStatus

            with pytest.raises(InvalidStatus) as info:
                async with connect(f"ws://127.0.0.1:{server.port}/?room=r2"):
                    pass
            assert info.value.response.status_code == 500
            body = info.value.response.body.decode()
            assert "serializeAttachment()" in body
            assert "a Python dict, reaches JavaScript as a PyProxy" in body
            assert "to_js(" in body
            assert "entry.py:" in body
            assert "Room.fetch" in body


# -- 3. A D1 query Worker --------------------------------------------------------------------

QUOTES_TOML = """\
name = "quotes"
main = "src/entry.py"
compatibility_date = "2026-11-01"
compatibility_flags = ["python_workers"]

[[d1_databases]]
binding = "DB"
database_name = "quotes"
database_id = "local"
migrations_dir = "migrations"
"""

QUOTES_SCHEMA = """\
CREATE TABLE quotes (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE, author TEXT NOT NULL);
INSERT INTO quotes (text, author) VALUES ('Simplicity is prerequisite for reliability.', 'Dijkstra');
"""

QUOTES_ENTRY = """
from urllib.parse import parse_qs, urlparse

from pyodide.ffi import JsException
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if request.method == "POST":
            quote = await request.json()
            try:
                result = await self.env.DB.prepare(
                    "INSERT INTO quotes (text, author) VALUES (?, ?) RETURNING id"
                ).bind(quote["text"], quote["author"]).first()
            except JsException as exc:
                return Response.json({"error": exc.message}, status=409)
            return Response.json({"id": result.id}, status=201)
        if path == "/count":
            count = await self.env.DB.prepare("SELECT COUNT(*) AS n FROM quotes").first("n")
            return Response(str(count))
        author = parse_qs(urlparse(request.url).query).get("author", [None])[0]
        if author is None:
            rows = await self.env.DB.prepare("SELECT text, author FROM quotes ORDER BY id LIMIT 1").all()
        else:
            rows = await self.env.DB.prepare("SELECT text, author FROM quotes WHERE author = ?").bind(author).all()
        if not rows.results:
            return Response("no such author", status=404)
        # The row is a JavaScript object: Response.json takes it as it is.
        return Response.json(rows.results[0])
"""


def make_quotes(tmp_path: Path) -> Path:
    project = make_project(tmp_path, QUOTES_ENTRY, QUOTES_TOML, dev_vars=None)
    (project / "migrations").mkdir()
    (project / "migrations" / "0001_quotes.sql").write_text(QUOTES_SCHEMA)
    return project


async def test_a_d1_query_worker_reads_and_writes_through_env_db(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running(make_quotes(tmp_path)) as server:
            first = await get(server, "/")
            assert first.status == 200
            assert first.json() == {
                "text": "Simplicity is prerequisite for reliability.",
                "author": "Dijkstra",
            }
            body = json.dumps({"text": "Premature optimization is the root of all evil.", "author": "Knuth"})
            created = await get(server, "/", "POST", body.encode())
            assert (created.status, created.json()) == (201, {"id": 2})
            assert (await get(server, "/?author=Knuth")).json()["author"] == "Knuth"
            assert (await get(server, "/?author=Nobody")).status == 404
            assert (await get(server, "/count")).body == b"2"


async def test_a_d1_error_reaches_worker_code_as_a_jsexception_and_nothing_is_lost(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running(make_quotes(tmp_path)) as server:
            dup = json.dumps({"text": "Simplicity is prerequisite for reliability.", "author": "Someone"})
            refused = await get(server, "/", "POST", dup.encode())
            assert refused.status == 409
            assert "UNIQUE constraint failed: quotes.text" in refused.json()["error"]
            assert (await get(server, "/count")).body == b"1"


# -- Bad input: what a user gets when the module is wrong --------------------------------------


def test_a_handler_production_would_call_without_its_argument_is_refused_at_load(tmp_path: Path) -> None:
    entry = """
    from workers import DurableObject, WorkerEntrypoint

    class Room(DurableObject):
        async def webSocketMessage(self, ws, message, extra):
            pass

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            pass
    """
    project = make_project(tmp_path, entry, ROOM_TOML, dev_vars=None)
    with pytest.raises(WorkerLoadError) as info:
        load_worker(load_config(project))
    assert str(info.value).endswith(
        "entry.py:5: Room.webSocketMessage(self, ws, message, extra) needs 'extra', which production never "
        "passes: it calls webSocketMessage(ws, message)"
    )


def test_a_config_naming_a_class_the_module_lacks_names_both(tmp_path: Path) -> None:
    entry = "from workers import WorkerEntrypoint\nclass Default(WorkerEntrypoint):\n    async def fetch(self):\n        pass\n"
    project = make_project(tmp_path, entry, ROOM_TOML, dev_vars=None)
    with pytest.raises(
        WorkerLoadError, match=r"entry.py: durable object class 'Room' \(binding ROOMS\) is not defined"
    ):
        load_worker(load_config(project))


async def test_fetch_without_a_request_parameter_is_served(tmp_path: Path) -> None:
    entry = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self):
            return Response("no request needed")
    """
    project = make_project(tmp_path, entry, NO_BINDINGS_TOML, dev_vars=None)
    with trio.fail_after(10):
        async with running(project) as server:
            reply = await get(server, "/anything")
            assert (reply.status, reply.body) == (200, b"no request needed")


# -- Cron Triggers: the scheduled handler, run by /__scheduled as wrangler dev --test-scheduled does --

NO_BINDINGS_TOML = LISTS_TOML.split("[[durable_objects")[0]

CRON_ENTRY = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def scheduled(self, controller, env, ctx):
        # env and ctx arrive as the JavaScript objects; the class's own self.env is the wrapped one.
        runs = await self.env.LISTS.getByName("cron").write(f"{controller.cron}@{controller.scheduledTime}")
        if runs > 1:
            controller.noRetry()

    async def fetch(self, request):
        return Response("fetched")
"""


def cron_project(tmp_path: Path, entry: str = CRON_ENTRY) -> Path:
    return make_project(tmp_path, LISTS_ENTRY.split("class Default")[0] + entry, LISTS_TOML, dev_vars=None)


async def test_scheduled_runs_with_the_controller_production_passes(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running(cron_project(tmp_path), test_scheduled=True) as server:
            ran = await get(server, "/__scheduled?cron=*/5+*+*+*+*&time=1700000000000")
            assert (ran.status, ran.body) == (200, b"Ran scheduled event\n")
            assert (await get(server, "/cdn-cgi/handler/scheduled?cron=0+0+*+*+*&time=5")).status == 200
            stub = server.runtime.env.LISTS.getByName("cron")
            assert server.runtime.dump_storage(stub)["kv"] == {
                "lines": ["*/5 * * * *@1700000000000", "0 0 * * *@5"]
            }
            # Without a time, the runtime's clock; a time that is not a number is refused.
            assert (await get(server, "/__scheduled")).status == 200
            bad = await get(server, "/__scheduled?time=soon")
            assert (bad.status, bad.body) == (400, b"time must be milliseconds since the epoch, got 'soon'\n")
            assert (await get(server, "/other")).body == b"fetched"


async def test_without_test_scheduled_the_path_is_the_workers(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running(cron_project(tmp_path)) as server:
            assert (await get(server, "/__scheduled?cron=*+*+*+*+*")).body == b"fetched"


@pytest.mark.parametrize(
    "handler",
    [
        "async def on_scheduled(controller, env, ctx):\n    SEEN.append(controller.cron)\n",
        "async def on_scheduled(controller):\n    SEEN.append(controller.cron)\n",
        "class Default(WorkerEntrypoint):\n    async def scheduled(self):\n        SEEN.append('short')\n",
        "class Default(WorkerEntrypoint):\n    def scheduled(self, controller):\n        SEEN.append(controller.cron)\n",
    ],
    ids=["module-3", "module-1", "class-0", "class-1-sync"],
)
async def test_scheduled_handlers_are_called_relaxed(tmp_path: Path, handler: str) -> None:
    entry = "from workers import WorkerEntrypoint\nSEEN = []\n" + handler
    project = make_project(tmp_path, entry, NO_BINDINGS_TOML, dev_vars=None)
    with trio.fail_after(10):
        async with running(project, test_scheduled=True) as server:
            assert (await get(server, "/__scheduled?cron=1+2+3+4+5")).status == 200
            assert server.worker is not None
            assert server.worker.module.SEEN in (["1 2 3 4 5"], ["short"])
            # A cron-only Worker has no fetch: production's message.
            reply = await get(server, "/")
            assert reply.status == 500
            assert b"Handler does not export a fetch() function." in reply.body


async def test_a_failing_or_missing_scheduled_handler_is_a_500_with_the_reason(tmp_path: Path) -> None:
    failing = CRON_ENTRY.replace("runs = await", "raise ValueError('cron broke')\n        runs = await")
    with trio.fail_after(10):
        async with running(cron_project(tmp_path, failing), test_scheduled=True) as server:
            reply = await get(server, "/__scheduled")
            assert (reply.status, reply.body) == (500, b"Worker threw exception: ValueError: cron broke\n")
    plain = make_project(tmp_path / "plain", LISTS_ENTRY, LISTS_TOML, dev_vars=None)
    with trio.fail_after(10):
        async with running(plain, test_scheduled=True) as server:
            reply = await get(server, "/__scheduled")
            assert reply.status == 500
            assert (
                reply.body
                == b"Worker threw exception: TypeError: Handler does not export a scheduled() function.\n"
            )
