"""The dev server's JSON admin routes, under :data:`ADMIN_PREFIX`.

Routes (``<object>`` is a 64-hex-digit id, or else a name passed to ``idFromName``)::

    GET  /__shardsim/                                   bindings, and these routes
    GET  /__shardsim/objects                            every namespace and its objects
    GET  /__shardsim/objects/<binding>                  one namespace's objects
    GET  /__shardsim/objects/<binding>/<object>         one object
    GET  /__shardsim/objects/<binding>/<object>/storage its KV entries and SQL tables
    POST /__shardsim/objects/<binding>/<object>/hibernate
    POST /__shardsim/objects/<binding>/<object>/evict

Sans-I/O apart from the runtime calls: :func:`handle_admin` takes a method
and a path and returns a status and a JSON-ready value. Reading never wakes
an object (statistics and ``dump_storage`` read the database directly).
Values the codec stores that JSON cannot carry are shown, not refused:
bytes as ``{"$bytes": "<base64>"}``, anything else as ``{"$repr": "..."}``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from runtime._runtime import Runtime
    from runtime._stub import DurableObjectStub

    from ._wrangler import WranglerConfig

__all__ = ["ADMIN_PREFIX", "handle_admin", "jsonable"]

#: Paths under this prefix never reach the Worker.
ADMIN_PREFIX = "/__shardsim/"
_HEX_ID = re.compile(r"^[0-9a-f]{64}$")
_ROUTES = [
    "GET /__shardsim/objects",
    "GET /__shardsim/objects/<binding>",
    "GET /__shardsim/objects/<binding>/<id or name>",
    "GET /__shardsim/objects/<binding>/<id or name>/storage",
    "POST /__shardsim/objects/<binding>/<id or name>/hibernate",
    "POST /__shardsim/objects/<binding>/<id or name>/evict",
]


def jsonable(value: Any) -> Any:
    """A copy of ``value`` that strict JSON (``allow_nan=False``) can write."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$repr": repr(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    return {"$repr": repr(value)}


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC).isoformat().replace("+00:00", "Z")


def _storage_bytes(state_root: Path, binding: str, hex_id: str) -> int:
    base = state_root / "do" / binding / f"{hex_id}.sqlite"
    total = 0
    for path in (base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-journal")):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def _describe(rt: Runtime, stub: DurableObjectStub, binding: str, state_root: Path) -> dict[str, Any]:
    stats = rt.object_statistics(stub)
    return {
        "binding": binding,
        "id": stats.id,
        "name": stub.name,
        "state": stats.state,
        "websockets": stats.websockets,
        "storage_bytes": _storage_bytes(state_root, binding, stats.id),
        "alarm": _iso(stats.alarm_ms),
        "alarm_ms": stats.alarm_ms,
        "activations": stats.activations,
        "events_delivered": stats.events_delivered,
        "in_flight": stats.in_flight,
    }


def _namespace(rt: Runtime, binding: str, config: WranglerConfig, state_root: Path) -> dict[str, Any]:
    cls = next(b.class_name for b in config.durable_objects if b.name == binding)
    ns = getattr(rt.env, binding)
    return {
        "binding": binding,
        "class": cls,
        "backend": config.migrated_classes.get(cls, "sqlite"),
        "objects": [_describe(rt, ns.get(i), binding, state_root) for i in rt.list_ids(binding)],
    }


async def handle_admin(
    rt: Runtime, config: WranglerConfig, state_root: Path, bindings: list[str], method: str, path: str
) -> tuple[int, Any]:
    """Answer one admin request.

    Args:
        rt: The running runtime.
        config: The project's config (class names, backends, bindings).
        state_root: The runtime's state directory (for storage sizes).
        bindings: The Durable Object bindings the runtime serves.
        method: The HTTP method.
        path: The URL path, starting with :data:`ADMIN_PREFIX`.

    Returns:
        ``(status, body)``; the body is JSON-ready.
    """
    parts = [unquote(p) for p in path[len(ADMIN_PREFIX) :].split("/") if p]
    if not parts:
        if method != "GET":
            return 405, {"error": "use GET"}
        return 200, {
            "worker": config.name,
            "config": str(config.path),
            "durable_objects": {
                b.name: {"class": b.class_name, "backend": config.migrated_classes.get(b.class_name)}
                for b in config.durable_objects
                if b.name in bindings
            },
            "d1_databases": {d.binding: d.database_name for d in config.d1_databases},
            "vars": sorted(n for n in config.vars if n not in config.secrets),
            "secrets": sorted(config.secrets),
            "not_emulated": {o.name: o.kind for o in config.other_bindings},
            "routes": _ROUTES,
        }
    if parts[0] != "objects" or len(parts) > 4:
        return 404, {"error": f"no admin route {path}", "routes": _ROUTES}
    if len(parts) == 1:
        if method != "GET":
            return 405, {"error": "use GET"}
        return 200, {"namespaces": [_namespace(rt, b, config, state_root) for b in bindings]}
    binding = parts[1]
    if binding not in bindings:
        return 404, {"error": f"no Durable Object binding named {binding!r}", "bindings": bindings}
    if len(parts) == 2:
        if method != "GET":
            return 405, {"error": "use GET"}
        return 200, _namespace(rt, binding, config, state_root)
    ns = getattr(rt.env, binding)
    ref = parts[2]
    stub = ns.get(ns.idFromString(ref)) if _HEX_ID.match(ref) else ns.getByName(ref)
    action = parts[3] if len(parts) == 4 else None
    if action is None:
        if method != "GET":
            return 405, {"error": "use GET"}
        return 200, _describe(rt, stub, binding, state_root)
    if action == "storage":
        if method != "GET":
            return 405, {"error": "use GET"}
        dump = rt.dump_storage(stub)
        return 200, {"id": stub.id.toString(), "name": stub.name, **jsonable(dump)}
    if action in ("hibernate", "evict"):
        if method != "POST":
            return 405, {"error": "use POST"}
        if action == "hibernate":
            await rt.hibernate(stub)
        else:
            await rt.evict(stub)
        return 200, _describe(rt, stub, binding, state_root)
    return 404, {"error": f"no admin route {path}", "routes": _ROUTES}
