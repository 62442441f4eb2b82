"""examples/d1_notes runs: a Worker whose Durable Objects write and read D1, schema from migrations."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import trio

from runtime import open_runtime, pyworkers
from runtime.d1 import apply_migrations, list_migrations
from tests.runtime.conftest import config
from tests.runtime.devserver.helpers import get, running

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "d1_notes"


@contextmanager
def example_module() -> Iterator[ModuleType]:
    """Import the example's Worker module the way a test imports Worker code: with the shims installed."""
    with pyworkers.installed():
        spec = importlib.util.spec_from_file_location("d1_notes_entry", EXAMPLE / "src" / "entry.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
            yield module
        finally:
            sys.modules.pop(spec.name, None)


async def test_the_example_under_the_dev_server(tmp_path: Path) -> None:
    """The README's requests: notes in, the latest out, an empty note refused, rows kept across hibernation."""
    with trio.fail_after(10):
        async with running(EXAMPLE, state_dir=tmp_path / "state") as server:
            note = json.dumps({"author": "ada", "text": "hello"}).encode()
            created = await get(server, "/rooms/lobby", "POST", note)
            assert (created.status, created.json()) == (201, {"id": 1})
            reply = json.dumps({"author": "bob", "text": "hi ada"}).encode()
            assert (await get(server, "/rooms/lobby", "POST", reply)).json() == {"id": 2}
            empty = await get(server, "/rooms/lobby", "POST", b'{"author": "ada", "text": ""}')
            assert empty.status == 400
            assert empty.json() == {
                "error": "D1_ERROR: CHECK constraint failed: length(text) BETWEEN 1 AND 500: SQLITE_CONSTRAINT"
            }
            listing = await get(server, "/rooms/lobby")
            assert listing.json() == {"notes": ["bob: hi ada", "ada: hello"], "count": 2}
            await server.runtime.hibernate(server.runtime.env.ROOMS.getByName("lobby"))
            assert (await get(server, "/rooms/lobby")).json()["count"] == 2  # D1 keeps the rows
            assert (await get(server, "/elsewhere")).status == 404
    assert (tmp_path / "state" / "d1" / "notes.sqlite").is_file()


async def test_the_example_class_in_a_tests_own_runtime() -> None:
    """The Worker's class works in a test's runtime: rooms are separate, a failed batch changes nothing."""
    with example_module() as notes:
        async with open_runtime(
            objects={"ROOMS": notes.NotesRoom}, d1={"DB": "notes"}, config=config()
        ) as rt:
            await apply_migrations(rt.env.DB, EXAMPLE / "migrations")
            assert all(m.applied for m in await list_migrations(rt.env.DB, EXAMPLE / "migrations"))
            a, b = rt.env.ROOMS.getByName("a"), rt.env.ROOMS.getByName("b")
            assert await a.post("x", "one") == 1
            assert await b.post("y", "two") == 2
            resp = await a.fetch("http://rooms/a")
            assert await resp.json() == {"notes": ["x: one"], "count": 1}
            bad = await a.fetch("http://rooms/a", method="POST", body='{"author": "x", "text": ""}')
            assert bad.status == 400
            assert await a.count() == 1  # the failed batch did not bump the counter
            assert await b.recent(5) == ["y: two"]
