"""What the websocket benchmarks share: their client process, an admin-route client, and the project they serve.

The clients of bench/websockets.py and bench/shard_sockets.py run in a
separate process (multiprocessing, spawn), so the server process measures
only the server; :class:`ClientProcess` starts one and reads its answers.
:class:`AdminClient` hibernates objects through the dev server's admin
routes, and :func:`write_project` writes the dev-server project a
benchmark serves.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio


class ClientProcess:
    """A client process running ``target(scenario, params, results)``, and the queue it answers on.

    ``target`` (a module-level function: the process is spawned) puts one
    dict or more on ``results``; a dict with an ``"error"`` key reports a
    failure, which :meth:`get` raises.
    """

    def __init__(
        self, target: Callable[[str, dict[str, Any], Any], None], scenario: str, **params: Any
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._results = ctx.Queue()
        self._proc = ctx.Process(target=target, args=(scenario, params, self._results), daemon=True)
        self._scenario = scenario

    async def __aenter__(self) -> ClientProcess:
        self._proc.start()
        return self

    async def get(self) -> dict[str, Any]:
        """The client's next answer (an error in the client raises here)."""
        result: dict[str, Any] = await trio.to_thread.run_sync(partial(self._results.get, timeout=600))
        if "error" in result:
            raise RuntimeError(f"client process failed in {self._scenario}: {result['error']}")
        return result

    async def __aexit__(self, *exc: object) -> None:
        await trio.to_thread.run_sync(self._proc.join, 30)
        if self._proc.is_alive():  # a stuck client
            self._proc.kill()
            await trio.to_thread.run_sync(self._proc.join)
        self._results.close()
        self._results.join_thread()


class AdminClient:
    """One keep-alive HTTP/1.1 connection for the dev server's admin routes."""

    def __init__(self, stream: trio.SocketStream) -> None:
        import h11

        self._h11 = h11
        self._stream = stream
        self._conn = h11.Connection(h11.CLIENT)

    async def request(self, method: str, path: str) -> Any:
        """The JSON body of the answer to ``method path`` (anything but a 200 raises)."""
        h11 = self._h11
        conn = self._conn
        if conn.our_state is h11.DONE:
            conn.start_next_cycle()
        data = conn.send(
            h11.Request(method=method, target=path, headers=[("host", "bench"), ("content-length", "0")])
        )
        await self._stream.send_all(data + conn.send(h11.EndOfMessage()))
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await self._stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if status != 200:
                    raise RuntimeError(f"{method} {path}: {status} {body!r}")
                return json.loads(body)

    async def hibernate(self, path: str) -> None:
        """Hibernate the object at ``path`` (``/__shardsim/objects/<binding>/<name>``, name quoted)."""
        state = (await self.request("POST", path + "/hibernate"))["state"]
        if state != "hibernated":
            raise RuntimeError(f"{path}: {state} after hibernating")


def write_project(
    root: Path,
    *,
    name: str,
    main: str,
    source: str,
    classes: dict[str, str],
    vars: dict[str, str] | None = None,
) -> Path:
    """Write a dev-server project in ``root``: ``source`` as ``main`` (a path below it), and a wrangler.toml.

    ``classes`` maps each binding to its Durable Object class, all
    SQLite-backed (migration v1); ``vars`` become the ``[vars]`` table.
    """
    lines = [
        f"name = {json.dumps(name)}",
        f"main = {json.dumps(main)}",
        'compatibility_date = "2026-11-01"',
        'compatibility_flags = ["python_workers"]',
    ]
    for binding, cls in classes.items():
        lines += [
            "",
            "[[durable_objects.bindings]]",
            f"name = {json.dumps(binding)}",
            f"class_name = {json.dumps(cls)}",
        ]
    lines += [
        "",
        "[[migrations]]",
        'tag = "v1"',
        f"new_sqlite_classes = {json.dumps(list(classes.values()))}",
    ]
    if vars:
        lines += ["", "[vars]", *(f"{key} = {json.dumps(value)}" for key, value in vars.items())]
    (root / main).parent.mkdir(parents=True, exist_ok=True)
    (root / main).write_text(source)
    (root / "wrangler.toml").write_text("\n".join(lines) + "\n")
    return root
