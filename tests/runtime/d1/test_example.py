"""examples/d1_notes runs: a Durable Object writing and reading D1 through env, schema from migrations."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from runtime import open_runtime
from runtime.d1 import apply_migrations, list_migrations
from tests.runtime.conftest import config

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "d1_notes" / "notes.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("d1_notes_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_example_main(tmp_path: Path):
    """main() applies both migrations, refuses an empty note and keeps notes across hibernation."""
    lines = await load().main(str(tmp_path))
    assert lines == [
        "migrations applied: 2",
        "empty note -> 400",
        "lobby: ['bob: hi ada', 'ada: hello'] (2 notes)",
        "after hibernation: 2 notes",
    ]
    assert (tmp_path / "d1" / "notes.sqlite").is_file()


async def test_example_object_through_open_runtime():
    """The example's class works in a test's own runtime: rooms are separate, a batch is atomic."""
    notes = load()
    async with open_runtime(objects={"ROOMS": notes.NotesRoom}, d1={"DB": "notes"}, config=config()) as rt:
        await apply_migrations(rt.env.DB, notes.MIGRATIONS)
        assert all(m.applied for m in await list_migrations(rt.env.DB, notes.MIGRATIONS))
        a, b = rt.env.ROOMS.getByName("a"), rt.env.ROOMS.getByName("b")
        assert await a.post("x", "one") == 1
        assert await b.post("y", "two") == 2
        resp = await a.fetch("http://rooms/a")
        assert await resp.json() == {"notes": ["x: one"], "count": 1}
        bad = await a.fetch("http://rooms/a", method="POST", body='{"author": "x", "text": ""}')
        assert bad.status == 400
        assert (await bad.json())[
            "error"
        ] == "D1_ERROR: CHECK constraint failed: length(text) BETWEEN 1 AND 500: SQLITE_CONSTRAINT"
        assert await a.count() == 1  # the failed batch did not bump the counter
