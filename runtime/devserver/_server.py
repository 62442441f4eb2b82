"""The dev server: HTTP/1.1 (h11) on trio, the Worker's fetch, websocket hand-off, admin routes, reload.

Each TCP connection is one task. h11 parses requests (sans-I/O); each
request becomes a :class:`runtime.Request` for the Worker's entry point,
except paths under ``/__shardsim/`` (admin routes). When the Worker answers
an upgrade request with ``101`` and ``web_socket=client``, the connection is
handed to websockets (see ``_handoff.py``) and stays in the same task.

Invariants:

* Nothing a client sends, and nothing the Worker raises, ends the server:
  a bad request gets its 4xx and the connection closes; a raising ``fetch``
  gets a 500 and the error is logged; every connection task closes its
  socket on the way out (``statistics()`` shows none left behind).
* Every connection has deadlines: the next request's head (``idle_timeout``),
  a request's body (``request_timeout``), a websocket handshake.
* The runtime lives in its own task; a reload (``--watch``) closes websockets
  with 1012, closes the runtime (pending writes committed, alarms saved) and
  opens a new one on the same state directory, so storage and alarms carry
  over exactly as across a production deploy. A Worker that fails to load
  keeps the previous one serving.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import h11
import trio
from websockets.trio.server import ServerConnection

from runtime import pyworkers
from runtime._clock import now_ms
from runtime._config import RuntimeConfig
from runtime._http import HttpError, Request, Response
from runtime._runtime import Runtime, open_runtime
from runtime.pyworkers import ExecutionContext, ScheduledController
from runtime.sockets import WebSocket
from shards._errors import D1Error

from ._admin import ADMIN_PREFIX, handle_admin
from ._d1 import apply_pending_migrations
from ._handoff import FrameCache, WebSocketOptions, run_websocket
from ._shards import ShardEndpoint, is_shard_upgrade
from ._worker import LoadedWorker, NotEmulated, load_worker
from ._wrangler import WranglerConfig, load_config

__all__ = ["DevServer", "DevServerStatistics", "UpgradeRoute"]

log = logging.getLogger("shardsim.devserver")
access_log = logging.getLogger("shardsim.devserver.access")

# Hop-by-hop headers (RFC 9110 7.6.1) and framing we compute ourselves.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
    }
)
_NO_BODY_STATUSES = frozenset({204, 304})
_UNWATCHED_DIRS = frozenset({"node_modules", "__pycache__", "venv", "env", "site-packages"})
_MAX_HEAD = 64 * 1024
_READ_SIZE = 64 * 1024
#: Production's text when a Worker returns a websocket for a request that did not ask for one.
WS_WITHOUT_UPGRADE = 'Worker tried to return a WebSocket in a response to a request which did not contain the header "Upgrade: websocket".'


#: ``async (request, runtime) -> Response | None``; see :attr:`DevServer.upgrade_routes`.
UpgradeRoute = Callable[[Request, Runtime], Awaitable[Response | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class DevServerStatistics:
    """What the server holds right now."""

    http_connections: int
    websockets: int
    requests: int
    errors: int
    reloads: int


class _Closed(Exception):
    """The client closed the connection or broke it."""


class DevServer:
    """Serve a Wrangler project's Python Worker on 127.0.0.1, as ``wrangler dev`` would.

    Args:
        project: The project directory or its config file.
        host: Interface to bind (default 127.0.0.1; only loopback is safe,
            there is no authentication on the admin routes).
        port: TCP port; 0 picks a free one (see :attr:`port`).
        state_dir: Where objects and D1 databases persist; relative paths
            are relative to the project. ``None``: in memory (a temporary
            directory removed on exit).
        watch: Reload the Worker when a ``.py`` file or the config changes.
        require_migrations: Refuse Durable Object classes no migration declares.
        runtime_config: Overrides of :class:`RuntimeConfig` fields (the
            compatibility settings come from the project's config).
        websocket: Limits and timeouts of websocket connections.
        max_request_body: Largest request body accepted (413 beyond).
        idle_timeout: Seconds a kept-alive connection may wait for its next request.
        request_timeout: Seconds a client has to send a whole request.
        seed: Seeds the runtime's randomness.
        test_scheduled: Serve ``/__scheduled?cron=<expr>&time=<ms>`` (and
            ``/cdn-cgi/handler/scheduled``), which runs the Worker's
            ``scheduled`` handler once, as ``wrangler dev --test-scheduled``
            does. Cron Triggers never fire by themselves here (nor under
            ``wrangler dev``).

    Raises:
        ConfigError: The project's config is wrong (from the constructor).
        WorkerLoadError: The Worker module fails to load (from :meth:`run`).
    """

    def __init__(
        self,
        project: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 8787,
        state_dir: str | os.PathLike[str] | None = ".shardsim",
        watch: bool = False,
        require_migrations: bool = True,
        d1_migrations: bool = True,
        runtime_config: dict[str, Any] | None = None,
        websocket: WebSocketOptions | None = None,
        max_request_body: int = 100 * 1024 * 1024,
        idle_timeout: float = 60.0,
        request_timeout: float = 30.0,
        seed: int | None = None,
        test_scheduled: bool = False,
    ) -> None:
        self._project = Path(project)
        self._require_migrations = require_migrations
        self.config: WranglerConfig = load_config(self._project, require_migrations=require_migrations)
        self.host = host
        self._requested_port = port
        self.port = port
        self._state_dir = None if state_dir is None else self.config.root / state_dir
        self.watch = watch
        self._runtime_overrides = dict(runtime_config or {})
        self.ws_options = websocket or WebSocketOptions()
        self.max_request_body = max_request_body
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self._seed = seed
        self.test_scheduled = test_scheduled
        self.worker: LoadedWorker | None = None
        self._rt: Runtime | None = None
        self._rt_ready = trio.Event()
        self._rt_stop: trio.Event | None = None
        self._rt_done: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self._state_root: Path | None = None
        self._http_connections = 0
        self._websockets: set[ServerConnection] = set()
        self._websockets_gone = trio.Event()
        self._frames = FrameCache()
        self._requests = 0
        self._errors = 0
        self._reloads = 0
        self._reload_lock = trio.Lock()
        #: Routes tried before the Worker for websocket upgrade requests: each
        #: returns a Response (usually a 101) or None to pass. This is where
        #: the shard endpoint (``?shard=``, runtime.devserver._shards) plugs in.
        self.upgrade_routes: list[UpgradeRoute] = [self._shard_route]
        self._d1_migrations = d1_migrations
        self._shard_endpoint: tuple[LoadedWorker, ShardEndpoint] | None = None

    # -- public ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def in_memory(self) -> bool:
        """Whether state is discarded on exit."""
        return self._state_dir is None

    @property
    def runtime(self) -> Runtime:
        """The runtime serving right now (replaced by each reload)."""
        if self._rt is None:
            raise RuntimeError("the dev server is not running")
        return self._rt

    @property
    def state_root(self) -> Path:
        """The directory holding the runtime's state."""
        if self._state_root is None:
            raise RuntimeError("the dev server is not running")
        return self._state_root

    def statistics(self) -> DevServerStatistics:
        """Open connections and counters."""
        return DevServerStatistics(
            http_connections=self._http_connections,
            websockets=len(self._websockets),
            requests=self._requests,
            errors=self._errors,
            reloads=self._reloads,
        )

    def bindings(self) -> list[tuple[str, str, str]]:
        """``(name, kind, detail)`` for every binding on ``env``, for the banner."""
        rows: list[tuple[str, str, str]] = []
        for b in self.config.durable_objects:
            if b.script_name is None:
                backend = self.config.migrated_classes.get(b.class_name, "sqlite")
                rows.append((b.name, "Durable Object", f"{b.class_name} ({backend})"))
            else:
                rows.append((b.name, "Durable Object", f"{b.class_name} in {b.script_name}: not emulated"))
        for d in self.config.d1_databases:
            rows.append((d.binding, "D1 database", d.database_name))
        for name, value in self.config.vars.items():
            if name in self.config.secrets:
                rows.append((name, "secret", "(.dev.vars)"))
            else:
                rows.append((name, "var", json.dumps(value)[:60]))
        for o in self.config.other_bindings:
            rows.append((o.name, o.kind, "not emulated"))
        return rows

    async def run(self, *, task_status: trio.TaskStatus[DevServer] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the Worker, open the runtime, listen, and serve until cancelled or :meth:`shutdown`.

        For ``nursery.start``: returns (started) once the port is bound.

        Raises:
            WorkerLoadError: The Worker module fails to load.
            OSError: The port cannot be bound.
        """
        # The Worker's modules (workers, js, pyodide) and the clock and asyncio they
        # see stay installed while the server runs, reloads included.
        pyworkers.install()
        try:
            await self._run(task_status)
        finally:
            pyworkers.uninstall()

    async def _run(self, task_status: trio.TaskStatus[DevServer]) -> None:
        worker = load_worker(self.config)
        tmp: str | None = None
        if self._state_dir is None:
            tmp = tempfile.mkdtemp(prefix="shardsim-dev-")
            self._state_root = Path(tmp)
        else:
            self._state_root = self._state_dir
        try:
            listeners = await trio.open_tcp_listeners(self._requested_port, host=self.host)
            self.port = listeners[0].socket.getsockname()[1]
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._shutdown_scope = nursery.cancel_scope
                await self._start_runtime(worker)
                await nursery.start(trio.serve_listeners, self._handle_connection, listeners)
                if self.watch:
                    nursery.start_soon(self._watch)
                task_status.started(self)
        finally:
            self._nursery = None
            if self.worker is not None:
                self.worker.unload()
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def _spawn_logged(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fn()`` as a task of the server (a Worker's ``ctx.waitUntil``); its failure is logged."""
        assert self._nursery is not None

        async def run() -> None:
            try:
                await fn()
            except Exception:
                log.exception("a waitUntil() task failed")

        self._nursery.start_soon(run)

    async def shutdown(self) -> None:
        """Close websockets (1001), close the runtime, stop listening; :meth:`run` returns."""
        await self._close_websockets(1001, "server shutting down")
        await self._stop_runtime()
        self._shutdown_scope.cancel()

    async def reload(self) -> bool:
        """Reload the config and the Worker; keep serving the old one if the new one fails.

        Returns:
            Whether the new Worker is serving.
        """
        async with self._reload_lock:
            try:
                config = load_config(self._project, require_migrations=self._require_migrations)
                old = self.worker
                if old is not None:
                    old.unload()
                saved_config, self.config = self.config, config
                try:
                    worker = load_worker(config)
                except Exception:
                    self.config = saved_config
                    if old is not None:
                        # Re-import the old code so its modules are importable again.
                        self.worker = load_worker(saved_config)
                    raise
            except Exception as exc:
                log.error("reload failed, still serving the previous Worker: %s", exc)
                return False
            await self._close_websockets(1012, "service restart")
            await self._stop_runtime()
            await self._start_runtime(worker)
            self._reloads += 1
            log.info("reloaded %s", config.main.name)
            return True

    # -- runtime lifetime ----------------------------------------------------------------

    def _runtime_config(self, config: WranglerConfig) -> RuntimeConfig:
        kwargs: dict[str, Any] = {
            "compatibility_flags": frozenset(config.compatibility_flags),
            "legacy_kv_bindings": frozenset(
                b.name
                for b in config.durable_objects
                if config.migrated_classes.get(b.class_name) == "kv" and b.script_name is None
            ),
        }
        if config.compatibility_date is not None:
            kwargs["compatibility_date"] = config.compatibility_date
        kwargs.update(self._runtime_overrides)
        return RuntimeConfig(**kwargs)

    async def _start_runtime(self, worker: LoadedWorker) -> None:
        assert self._nursery is not None
        config = self.config
        env_values: dict[str, Any] = dict(config.vars)
        for o in config.other_bindings:
            env_values[o.name] = NotEmulated(o.name, o.kind)
        for b in config.durable_objects:
            if b.script_name is not None:
                env_values[b.name] = NotEmulated(
                    b.name, f"Durable Object (class {b.class_name} of {b.script_name})"
                )
        self._rt_stop = trio.Event()
        self._rt_done = trio.Event()
        await self._nursery.start(self._host_runtime, worker, env_values, self._runtime_config(config))
        self.worker = worker

    async def _host_runtime(
        self,
        worker: LoadedWorker,
        env_values: dict[str, Any],
        config: RuntimeConfig,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        stop, done = self._rt_stop, self._rt_done
        assert stop is not None
        assert done is not None
        try:
            async with open_runtime(
                objects=worker.objects,
                d1={d.binding: d.database_name for d in self.config.d1_databases},
                # Vars may be any JSON value in wrangler's config; env carries them as given.
                vars=cast("dict[str, str]", env_values),
                state_dir=self._state_root,
                config=config,
                seed=self._seed,
            ) as rt:
                if self._d1_migrations:
                    await self._apply_d1_migrations(rt)
                self._rt = rt
                self._rt_ready.set()
                task_status.started()
                await stop.wait()
        finally:
            self._rt = None
            self._rt_ready = trio.Event()
            done.set()

    async def _apply_d1_migrations(self, rt: Runtime) -> None:
        """Apply pending D1 migrations on start, as ``shardsim d1 migrations apply`` would."""
        try:
            applied = await apply_pending_migrations(self.config, rt.env)
        except D1Error as exc:
            # The server still starts: the developer sees the problem and can fix the file.
            log.error("D1 migrations failed: %s", exc)
            return
        for database, names in applied.items():
            for name in names:
                log.info("D1 %s: applied migration %s", database, name)

    async def _shard_route(self, request: Request, rt: Runtime) -> Response | None:
        """``?shard=<id>&sid=<subscriber>`` upgrades go to the shard binding (README.md, "Connecting to a shard")."""
        if not is_shard_upgrade(request):
            return None
        worker = self.worker
        assert worker is not None
        assert self._state_root is not None
        cached = self._shard_endpoint
        if cached is None or cached[0] is not worker:  # rebuilt after a reload
            endpoint = ShardEndpoint(worker.objects, self.config.vars, self.config.root, self._state_root)
            self._shard_endpoint = cached = (worker, endpoint)
        if not cached[1].has_shards:
            return None  # no ShardObject binding: the Worker decides
        return await cached[1].handle(rt.env, request)

    async def _stop_runtime(self) -> None:
        if self._rt_stop is not None and self._rt_done is not None:
            self._rt_stop.set()
            await self._rt_done.wait()

    async def _close_websockets(self, code: int, reason: str) -> None:
        """Close every websocket and wait until each connection task has told its object."""
        conns = list(self._websockets)
        if not conns:
            return
        with trio.move_on_after(self.ws_options.close_timeout):
            async with trio.open_nursery() as nursery:
                for conn in conns:
                    nursery.start_soon(conn.aclose, code, reason)
            # The runtime must not close under a connection task still
            # delivering its close event (it would reactivate the object).
            while self._websockets:
                await self._websockets_gone.wait()

    async def _watch(self) -> None:
        """Poll the project's files (mtime) and reload on a change."""

        def snapshot() -> dict[Path, float]:
            files: dict[Path, float] = {}
            root = self.config.root
            candidates = [self.config.path, root / ".dev.vars"]
            for folder, dirs, names in os.walk(root):
                # Skip state, virtualenvs, caches and VCS folders: only the project's code.
                dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _UNWATCHED_DIRS]
                candidates += [Path(folder) / n for n in names if n.endswith(".py")]
            for p in candidates:
                with contextlib.suppress(OSError):
                    files[p] = p.stat().st_mtime
            return files

        seen = snapshot()
        while True:
            await trio.sleep(0.5)
            now = snapshot()
            if now != seen:
                seen = now
                # Editors write in several steps: let the burst settle.
                await trio.sleep(0.1)
                seen = snapshot()
                await self.reload()

    # -- HTTP ---------------------------------------------------------------------------

    async def _handle_connection(self, stream: trio.SocketStream) -> None:
        self._http_connections += 1
        try:
            await _HttpConnection(self, stream).serve()
        except Exception:
            # Safety net: a bug here must not end the server.
            log.exception("connection handler failed")
        finally:
            self._http_connections -= 1
            await trio.aclose_forcefully(stream)

    async def _current_runtime(self) -> Runtime:
        while self._rt is None:
            await self._rt_ready.wait()
        return self._rt

    async def dispatch(self, request: Request, peer_ip: str) -> Response:
        """Route one request to the admin routes or the Worker; never raises for Worker errors."""
        rt = await self._current_runtime()
        # Connection tasks do not descend from the task that opened the
        # runtime: make it this one's (its clock, what the Workers modules find).
        rt.install()
        worker = self.worker
        assert worker is not None
        assert self._nursery is not None
        assert self._state_root is not None
        path = urlsplit(request.url).path
        if path == ADMIN_PREFIX.rstrip("/"):
            path = ADMIN_PREFIX
        if path.startswith(ADMIN_PREFIX):
            status, body = await handle_admin(
                rt, self.config, self._state_root, list(worker.objects), request.method, path
            )
            return Response(
                json.dumps(body, allow_nan=False, indent=1),
                status,
                headers={"content-type": "application/json"},
            )
        if self.test_scheduled and path in SCHEDULED_PATHS:
            return await self._run_scheduled(request, rt, worker)
        try:
            if self.upgrade_routes and "websocket" in (request.headers.get("upgrade") or "").lower():
                for route in self.upgrade_routes:
                    routed = await route(request, rt)
                    if routed is not None:
                        return routed
            result = await worker.fetch(request, rt.env, ExecutionContext(self._spawn_logged))
            if not isinstance(result, Response):
                raise TypeError(f"fetch() must return a Response, got {type(result).__name__}")
            return result
        except Exception as exc:
            self._errors += 1
            log.error("Worker fetch raised on %s %s", request.method, request.url, exc_info=exc)
            return Response(
                f"Worker threw exception: {type(exc).__name__}: {exc}\n",
                500,
                headers={"content-type": "text/plain;charset=UTF-8"},
            )

    async def _run_scheduled(self, request: Request, rt: Runtime, worker: LoadedWorker) -> Response:
        """``/__scheduled?cron=...&time=...``: one run of the Worker's ``scheduled`` handler."""
        query = parse_qs(urlsplit(request.url).query)
        cron = query.get("cron", [""])[0]
        raw_time = query.get("time", [""])[0]
        try:
            when = float(raw_time) if raw_time else float(now_ms())
        except ValueError:
            return _text(f"time must be milliseconds since the epoch, got {raw_time!r}\n", 400)
        controller = ScheduledController(when, cron)
        try:
            await worker.scheduled(controller, rt.env, ExecutionContext(self._spawn_logged))
        except Exception as exc:
            self._errors += 1
            log.error("Worker scheduled() raised (cron %r)", cron, exc_info=exc)
            return _text(f"Worker threw exception: {type(exc).__name__}: {exc}\n", 500)
        log.info("scheduled event ran (cron %r)%s", cron, "" if controller.retry else ", noRetry()")
        return _text("Ran scheduled event\n", 200)


def _text(body: str, status: int) -> Response:
    return Response(body, status, headers={"content-type": "text/plain;charset=UTF-8"})


#: The paths ``wrangler dev --test-scheduled`` serves for running the scheduled handler.
SCHEDULED_PATHS = ("/__scheduled", "/cdn-cgi/handler/scheduled")


class _HttpConnection:
    """One client connection: requests in order over h11, maybe ending in a websocket."""

    def __init__(self, server: DevServer, stream: trio.SocketStream) -> None:
        self.server = server
        self.stream = stream
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            self.peer_ip = str(stream.socket.getpeername()[0])
        except OSError:
            self.peer_ip = "127.0.0.1"

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise _Closed from exc

    async def _next_event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive_some(_READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise _Closed from exc
                self.conn.receive_data(data)
                continue
            return event

    async def _simple(self, status: int, text: str, *, close: bool = True) -> None:
        """Send a plain-text response (an error the server itself produces)."""
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = text.encode()
        headers = [("content-type", "text/plain;charset=UTF-8"), ("content-length", str(len(body)))]
        if close:
            headers.append(("connection", "close"))
        try:
            await self._send(h11.Response(status_code=status, headers=headers))
            await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())
        except h11.LocalProtocolError:  # pragma: no cover - our own framing is always valid
            log.debug("could not send %d", status, exc_info=True)

    async def serve(self) -> None:
        server = self.server
        try:
            while True:
                first = self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]
                with trio.move_on_after(server.idle_timeout if first else server.request_timeout) as scope:
                    event = await self._next_event()
                if scope.cancelled_caught:
                    # Silence between requests just closes; a request left half-sent gets a 408.
                    if self.conn.their_state is not h11.IDLE or self.conn.trailing_data[0]:
                        await self._simple(408, "Request Timeout\n")
                    return
                if not isinstance(event, h11.Request):
                    return  # the client closed the connection
                await self._request(event)
                if self.handed_off or self.conn.our_state is h11.MUST_CLOSE:
                    return
                if self.conn.their_state is not h11.DONE or self.conn.our_state is not h11.DONE:
                    return
                self.conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            with trio.move_on_after(1):
                await self._simple(status, f"Bad request: {exc}\n")
            access_log.info("%s - - %d (malformed request: %s)", self.peer_ip, status, exc)
        except _Closed:
            return

    handed_off = False

    async def _request(self, event: h11.Request) -> None:
        server = self.server
        started = time.perf_counter()
        server._requests += 1
        method = event.method.decode("ascii")
        target = event.target.decode("ascii", "replace")
        headers = [(k.decode("ascii"), v.decode("latin-1")) for k, v in event.headers]
        with trio.move_on_after(server.request_timeout) as scope:
            body = await self._read_body(event, headers)
        if scope.cancelled_caught:
            await self._simple(408, "Request Timeout\n")
            self._log(method, target, 408, started)
            return
        if body is None:
            self._log(method, target, 413, started)
            return
        upgrade = next((v for k, v in headers if k.lower() == "upgrade"), "")
        wants_ws = "websocket" in upgrade.lower()
        host = next((v for k, v in headers if k.lower() == "host"), f"{server.host}:{server.port}")
        if target.startswith("/"):
            url = f"http://{host}{target}"
        elif target.startswith(("http://", "https://")):
            url = target
        else:  # "OPTIONS *" and authority-form
            url = f"http://{host}/"
        try:
            request = Request(
                url,
                method=method,
                headers=[*headers, ("cf-connecting-ip", self.peer_ip)],
                body=body if body and method not in ("GET", "HEAD") else None,
            )
        except HttpError as exc:
            await self._simple(400, f"Bad request: {exc}\n")
            self._log(method, target, 400, started)
            return
        response = await server.dispatch(request, self.peer_ip)
        ws = response.webSocket
        if ws is not None:
            if not wants_ws:
                server._errors += 1
                log.error("%s %s: %s", method, target, WS_WITHOUT_UPGRADE)
                await self._simple(500, WS_WITHOUT_UPGRADE + "\n")
                self._log(method, target, 500, started)
                return
            await self._hand_off(event, response, ws, method, target, started)
            return
        await self._respond(response, method)
        self._log(method, target, response.status, started)

    async def _read_body(self, event: h11.Request, headers: list[tuple[str, str]]) -> bytes | None:
        """Read the request body; None after answering 413."""
        limit = self.server.max_request_body
        length = next((v for k, v in headers if k.lower() == "content-length"), None)
        if length is not None and length.isdigit() and int(length) > limit:
            await self._simple(413, "Payload Too Large\n")
            return None
        if self.conn.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        chunks: list[bytes] = []
        size = 0
        while True:
            part = await self._next_event()
            if isinstance(part, h11.Data):
                size += len(part.data)
                if size > limit:
                    await self._simple(413, "Payload Too Large\n")
                    return None
                chunks.append(bytes(part.data))
            elif isinstance(part, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise _Closed

    async def _respond(self, response: Response, method: str) -> None:
        try:
            body = await response.bytes()
        except HttpError as exc:
            self.server._errors += 1
            log.error("cannot send the Worker's response: %s", exc)
            await self._simple(500, f"Worker returned an unusable response: {exc}\n")
            return
        status = response.status
        headers: list[tuple[bytes, bytes]] = [
            (k.encode("ascii"), v.encode("utf-8"))
            for k, v in response.headers.entries()
            if k not in _HOP_BY_HOP
        ]
        if status not in _NO_BODY_STATUSES:
            headers.append((b"content-length", str(len(body)).encode()))
        else:
            body = b""
        reason = response.status_text.encode("utf-8", "replace")
        await self._send(h11.Response(status_code=status, headers=headers, reason=reason))
        if body and method != "HEAD":
            await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())

    async def _hand_off(
        self, event: h11.Request, response: Response, ws: WebSocket, method: str, target: str, started: float
    ) -> None:
        self.handed_off = True
        server = self.server
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1")]
        head += [k + b": " + v + b"\r\n" for k, v in event.headers.raw_items()]
        request_bytes = b"".join(head) + b"\r\n" + self.conn.trailing_data[0]
        extra = [(k, v) for k, v in response.headers.entries()]

        def opened(conn: ServerConnection) -> None:
            server._websockets.add(conn)
            self._log(method, target, 101, started)

        def closed(conn: ServerConnection) -> None:
            server._websockets.discard(conn)
            if not server._websockets:
                server._websockets_gone.set()
                server._websockets_gone = trio.Event()

        ok = await run_websocket(
            self.stream,
            request_bytes,
            ws,
            extra,
            server.ws_options,
            on_open=opened,
            on_close=closed,
            frames=server._frames,
        )
        if not ok:
            self._log(method, target, 400, started, note="websocket handshake failed")

    def _log(self, method: str, target: str, status: int, started: float, note: str = "") -> None:
        ms = (time.perf_counter() - started) * 1000
        access_log.info("%s %s %d %.1fms%s", method, target, status, ms, f" ({note})" if note else "")
