"""The dev server's shard endpoint: ``ws://host:port/?shard=<id>&sid=<subscriber>``.

Only websocket upgrades whose query has ``shard`` come here; everything else
goes to the Worker's ``fetch`` (the wire protocol is in README.md, "Connecting to a shard").

Which binding serves shards: the only binding whose class is a
:class:`~runtime.shard_objects.ShardObject`, or, when there are several, the
one named by the ``SHARDSIM_SHARD_BINDING`` var (``[vars]`` or ``.dev.vars``).
The token secret: ``SHARDSIM_SECRET`` from the project's vars (``.dev.vars``
over ``[vars]``), else the environment, else a random one the dev server
keeps in ``<state dir>/secret``; ``shardsim token`` looks in the same order
(:func:`~runtime.shard_objects.load_secret`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from runtime._http import Request, Response
from runtime.shard_objects import (
    HmacTokenResolver,
    ShardObject,
    TokenResolver,
    ensure_secret_file,
    handle_shard_upgrade,
    load_secret,
)

__all__ = ["SHARD_BINDING_VAR", "ShardEndpoint", "is_shard_upgrade"]

SHARD_BINDING_VAR = "SHARDSIM_SHARD_BINDING"


def is_shard_upgrade(request: Request) -> bool:
    """A websocket upgrade whose query names a shard."""
    if "websocket" not in (request.headers.get("upgrade") or "").lower():
        return False
    return "shard" in parse_qs(urlsplit(request.url).query, keep_blank_values=True)


class ShardEndpoint:
    """Routes shard upgrades to the shard binding, with the project's token secret.

    Args:
        objects: binding name -> Durable Object class, as the Worker exports them.
        vars: the project's vars (``[vars]`` plus ``.dev.vars``).
        project_dir: where ``.dev.vars`` lives.
        state_dir: the dev server's state directory (for the generated secret);
            None when state is in memory (a temporary secret is then made there).
        resolver: overrides the token resolver (pluggable token resolution).
    """

    def __init__(
        self,
        objects: Mapping[str, type],
        vars: Mapping[str, Any],
        project_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str],
        resolver: TokenResolver | None = None,
    ) -> None:
        shard_bindings = sorted(b for b, cls in objects.items() if issubclass(cls, ShardObject))
        #: Whether the project has any shard binding; without one, ``?shard=``
        #: upgrades are the Worker's business.
        self.has_shards = bool(shard_bindings)
        named = vars.get(SHARD_BINDING_VAR)
        self.binding: str | None
        self.problem: str | None = None
        if named is not None:
            self.binding = str(named)
            if self.binding not in shard_bindings:
                self.problem = (
                    f"{SHARD_BINDING_VAR}={self.binding!r} does not name a binding whose class is a ShardObject "
                    f"(shard bindings: {', '.join(shard_bindings) or 'none'})"
                )
        elif len(shard_bindings) == 1:
            self.binding = shard_bindings[0]
        else:
            self.binding = None
            self.problem = (
                "no Durable Object binding's class is a ShardObject"
                if not shard_bindings
                else f"several bindings are ShardObjects ({', '.join(shard_bindings)}): "
                f"name one with the {SHARD_BINDING_VAR} var"
            )
        if resolver is None:
            secret = load_secret(project_dir, vars=vars) or ensure_secret_file(Path(state_dir))
            resolver = HmacTokenResolver(str(secret))
        self.resolver = resolver

    async def handle(self, env: Any, request: Request) -> Response:
        """Answer one shard upgrade: a 101 carrying the subscriber's socket, or a 404 explaining why not."""
        if self.binding is None or self.problem is not None:
            return Response(f"shard endpoint unavailable: {self.problem}\n", 404)
        return await handle_shard_upgrade(getattr(env, self.binding), request, self.resolver)
