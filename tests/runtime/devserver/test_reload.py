"""--watch: a changed Worker is reloaded; storage and alarms carry over; a broken edit keeps the old one."""

from __future__ import annotations

import os

import pytest
import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import connect

from .helpers import ENTRY, get, make_project, running, wait_for

ALARM = """    async def arm(self):
        await self.ctx.storage.put("n", 41)
        await self.ctx.storage.setAlarm(Date.now() + 800)

    async def alarm(self, info=None):
        await self.ctx.storage.put("fired", VERSION)

    async def constructed(self):"""


def entry(version: str) -> str:
    source = ENTRY.replace('return Response("not found", status=404)', "return Response(VERSION)")
    source = source.replace("    async def constructed(self):", ALARM)
    return f"from js import Date\n\nVERSION = {version!r}\n" + source


def touch_later(path) -> None:
    # mtime resolution can be coarse: make the change visible.
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + 5))


@pytest.mark.slow
async def test_watch_reloads_and_keeps_storage_and_alarms(tmp_path) -> None:
    project = make_project(tmp_path, entry("v1"))
    with trio.fail_after(20):
        async with running(project, watch=True) as server:
            assert (await get(server, "/")).body == b"v1"
            server.runtime.install()  # this test task calls the object directly
            stub = server.runtime.env.ECHO.getByName("e")
            await stub.arm()
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                main = project / "src" / "entry.py"
                main.write_text(entry("v2"))
                touch_later(main)
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 1012  # service restart, as a deploy
            await wait_for(lambda: server.statistics().reloads == 1)
            assert (await get(server, "/")).body == b"v2"
            rt = server.runtime
            stub = rt.env.ECHO.getByName("e")
            await wait_for(lambda: "fired" in rt.dump_storage(stub)["kv"])
            kv = rt.dump_storage(stub)["kv"]
            assert (kv["n"], kv["fired"]) == (41, "v2")  # storage kept; the alarm fired in the new code
            assert kv["closed"] == [1012, "service restart", True]  # the object heard the restart


async def test_a_broken_edit_keeps_the_previous_worker(tmp_path, caplog) -> None:
    project = make_project(tmp_path, entry("v1"))
    with trio.fail_after(10):
        async with running(project) as server:
            (project / "src" / "entry.py").write_text("def (:\n")
            assert await server.reload() is False
            assert "reload failed" in caplog.text
            assert "entry.py:1: SyntaxError" in caplog.text
            assert (await get(server, "/")).body == b"v1"
            (project / "src" / "entry.py").write_text(entry("v3"))
            assert await server.reload() is True
            assert (await get(server, "/")).body == b"v3"
