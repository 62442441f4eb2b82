"""Notes per room: a Durable Object per room that keeps its notes in D1.

``POST /rooms/<name>`` with ``{"author": ..., "text": ...}`` adds a note;
``GET /rooms/<name>`` returns the room's latest notes and its count. Each
room object writes through ``env.DB``: the note and the room's counter go
in one ``batch()``, so they commit together or not at all. The schema
comes from ``migrations/`` (Wrangler's layout); ``shardsim dev`` applies it
on start, as ``wrangler d1 migrations apply --local`` would.

Only what a deployed Python Worker has is used: ``workers``, ``pyodide``
and the standard library.
"""

from urllib.parse import urlparse

from pyodide.ffi import JsException
from workers import DurableObject, Response, WorkerEntrypoint


class NotesRoom(DurableObject):
    async def post(self, author, text):
        """RPC: add a note; returns its id."""
        room = self.ctx.id.name
        insert = self.env.DB.prepare(
            "INSERT INTO notes (room, author, text) VALUES (?, ?, ?) RETURNING id"
        ).bind(room, author, text)
        count = self.env.DB.prepare(
            "INSERT INTO room_stats (room, notes) VALUES (?, 1) "
            "ON CONFLICT (room) DO UPDATE SET notes = notes + 1"
        ).bind(room)
        inserted, _ = await self.env.DB.batch([insert, count])
        return inserted.results[0].id

    async def recent(self, limit):
        """RPC: the latest ``limit`` notes, newest first, as ``author: text``."""
        result = (
            await self.env.DB.prepare(
                "SELECT author, text FROM notes WHERE room = ? ORDER BY id DESC LIMIT ?"
            )
            .bind(self.ctx.id.name, limit)
            .all()
        )
        return [f"{row.author}: {row.text}" for row in result.results]

    async def count(self):
        """RPC: how many notes the room has."""
        n = (
            await self.env.DB.prepare("SELECT notes FROM room_stats WHERE room = ?")
            .bind(self.ctx.id.name)
            .first("notes")
        )
        return n or 0

    async def fetch(self, request):
        if request.method == "POST":
            body = await request.json()
            try:
                note_id = await self.post(body["author"], body["text"])
            except JsException as exc:  # D1's errors reach Python as JavaScript errors
                return Response.json({"error": exc.message}, status=400)
            return Response.json({"id": note_id}, status=201)
        return Response.json({"notes": await self.recent(10), "count": await self.count()})


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        parts = urlparse(request.url).path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "rooms" or not parts[1]:
            return Response("POST or GET /rooms/<name>", status=404)
        return await self.env.ROOMS.getByName(parts[1]).fetch(request)
