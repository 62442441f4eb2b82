"""A chat room per name: GET /room/<name> upgrades to a websocket joined to that room.

Every message a member sends is broadcast to the room. The room accepts
sockets with the hibernation API, so it sleeps while nobody talks and the
connections stay open; members' names live in socket attachments and the
last 50 messages in SQLite, so nothing is lost when it wakes.

Written as a deployed Python Worker must be: a value handed to a raw
JavaScript API (an attachment) is converted with ``to_js``, and sockets are
compared with ``==`` (each one reaches Python as a new proxy, so ``is``
would never match).
"""

import json
from urllib.parse import parse_qs, urlparse

from js import Object, WebSocketPair
from pyodide.ffi import to_js
from workers import DurableObject, Response, WorkerEntrypoint

HISTORY = 50


class ChatRoom(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        # Runs again after every hibernation: keep it cheap.
        self.sql = ctx.storage.sql
        self.sql.exec("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, who TEXT, text TEXT)")

    async def fetch(self, request):
        query = parse_qs(urlparse(request.url).query)
        who = query.get("name", ["anonymous"])[0][:32]
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        server.serializeAttachment(to_js({"name": who}, dict_converter=Object.fromEntries))
        rows = self.sql.exec("SELECT who, text FROM messages ORDER BY id DESC LIMIT ?", HISTORY).toArray()
        room = urlparse(request.url).path.rsplit("/", 1)[-1]
        server.send(
            json.dumps(
                {
                    "type": "welcome",
                    "text": f"{self.env.GREETING} {room}",
                    "history": [dict(r) for r in reversed(rows)],
                    "members": len(self.ctx.getWebSockets()),
                }
            )
        )
        self.broadcast({"type": "joined", "who": who}, skip=server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        if not isinstance(message, str):
            ws.send(json.dumps({"type": "error", "text": "send text"}))
            return
        who = ws.deserializeAttachment().name
        self.sql.exec("INSERT INTO messages (who, text) VALUES (?, ?)", who, message)
        self.sql.exec("DELETE FROM messages WHERE id <= (SELECT MAX(id) FROM messages) - ?", HISTORY)
        self.broadcast({"type": "message", "who": who, "text": message})

    async def webSocketClose(self, ws, code, reason, wasClean):
        attachment = ws.deserializeAttachment()
        who = attachment.name if attachment else "?"
        self.broadcast({"type": "left", "who": who}, skip=ws)

    def broadcast(self, event, skip=None):
        # One encoding for every member.
        frame = json.dumps(event)
        for ws in self.ctx.getWebSockets():
            if ws != skip:
                ws.send(frame)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        if path.startswith("/room/") and len(path) > len("/room/"):
            if request.headers.get("Upgrade") != "websocket":
                return Response("expected a websocket upgrade", status=426)
            name = path[len("/room/") :]
            return await self.env.ROOMS.getByName(name).fetch(request)
        return Response(
            "chat: connect a websocket to /room/<name>?name=<you>\n",
            headers={"content-type": "text/plain"},
        )
