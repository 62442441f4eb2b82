"""A Durable Object per chat room that keeps its notes in D1.

Each room object writes through ``env.DB`` (D1): a note and the room's
counter go in one ``batch()``, so they commit together or not at all, and
reads use ``first()`` / ``all()`` as Python Workers code does. The schema
comes from ``migrations/`` (Wrangler's layout), applied with
:func:`runtime.d1.apply_migrations`.

Run: python examples/d1_notes/notes.py
"""

from __future__ import annotations

from pathlib import Path

import trio

from runtime import DurableObject, Request, Response, open_runtime
from runtime.d1 import D1ConstraintError, apply_migrations

MIGRATIONS = Path(__file__).with_name("migrations")


class NotesRoom(DurableObject):
    async def post(self, author: str, text: str) -> int:  # RPC: returns the new note's id
        room = self.ctx.id.name
        insert = self.env.DB.prepare(
            "INSERT INTO notes (room, author, text) VALUES (?, ?, ?) RETURNING id"
        ).bind(room, author, text)
        count = self.env.DB.prepare(
            "INSERT INTO room_stats (room, notes) VALUES (?, 1) "
            "ON CONFLICT (room) DO UPDATE SET notes = notes + 1"
        ).bind(room)
        inserted, _ = await self.env.DB.batch([insert, count])
        note_id: int = inserted.results[0].id
        return note_id

    async def recent(self, limit: int) -> list[str]:
        result = (
            await self.env.DB.prepare(
                "SELECT author, text FROM notes WHERE room = ? ORDER BY id DESC LIMIT ?"
            )
            .bind(self.ctx.id.name, limit)
            .all()
        )
        return [f"{row.author}: {row.text}" for row in result.results]

    async def count(self) -> int:
        n = (
            await self.env.DB.prepare("SELECT notes FROM room_stats WHERE room = ?")
            .bind(self.ctx.id.name)
            .first("notes")
        )
        return int(n or 0)

    async def fetch(self, request: Request) -> Response:  # POST a note as JSON, or GET the recent ones
        if request.method == "POST":
            body = await request.json()
            try:
                note_id = await self.post(body["author"], body["text"])
            except D1ConstraintError as exc:
                return Response.json({"error": str(exc)}, status=400)
            return Response.json({"id": note_id}, status=201)
        return Response.json({"notes": await self.recent(10), "count": await self.count()})


async def main(state_dir: str | None = ".shardsim/d1-notes-example") -> list[str]:
    """Apply the migrations, post a few notes through RPC and fetch; return what was printed."""
    lines: list[str] = []
    async with open_runtime(objects={"ROOMS": NotesRoom}, d1={"DB": "notes"}, state_dir=state_dir) as rt:
        applied = await apply_migrations(rt.env.DB, MIGRATIONS)
        lines.append(f"migrations applied: {len(applied)}")
        lobby = rt.env.ROOMS.getByName("lobby")
        await lobby.post("ada", "hello")
        await lobby.post("bob", "hi ada")
        resp = await lobby.fetch("http://rooms/lobby", method="POST", body='{"author": "ada", "text": ""}')
        lines.append(f"empty note -> {resp.status}")
        lines.append(f"lobby: {await lobby.recent(5)} ({await lobby.count()} notes)")
        await rt.hibernate(lobby)  # the instance goes; D1 keeps the rows
        lines.append(f"after hibernation: {await lobby.count()} notes")
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    trio.run(main)
