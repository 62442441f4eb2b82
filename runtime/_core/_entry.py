"""How the runtime calls into an object's code: its handlers and its RPC methods.

By default a handler (``fetch``, ``alarm``, ``webSocketMessage``, ...) or an
RPC method is the instance's attribute of that name, called with the
runtime's values. A class may instead carry an :class:`EntryPoints` as
``__shardsim_entry__``: the Python Workers layer does, to call user code the
way production's Pyodide entry point does (relaxed calls for handlers,
values converted across the JavaScript boundary both ways).

Invariants: looking up an entry never runs user code beyond attribute
access; None means the instance has no such handler or method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["EntryPoints", "handler_of", "method_of"]


class EntryPoints(Protocol):
    """What a class's ``__shardsim_entry__`` provides."""

    def handler(self, instance: Any, name: str) -> Callable[..., Any] | None:
        """The callable the runtime calls for handler ``name`` (with the runtime's arguments)."""

    def method(self, instance: Any, name: str) -> Callable[..., Any] | None:
        """The callable the runtime calls for RPC method ``name`` (with the runtime's values)."""


def handler_of(instance: Any, name: str) -> Callable[..., Any] | None:
    """What the runtime calls for handler ``name`` of ``instance``, or None."""
    entry: EntryPoints | None = getattr(type(instance), "__shardsim_entry__", None)
    if entry is not None:
        return entry.handler(instance, name)
    return getattr(instance, name, None)


def method_of(instance: Any, name: str) -> Callable[..., Any] | None:
    """What the runtime calls for RPC method ``name`` of ``instance``, or None."""
    entry: EntryPoints | None = getattr(type(instance), "__shardsim_entry__", None)
    if entry is not None:
        return entry.method(instance, name)
    method = getattr(instance, name, None)
    return method if callable(method) else None
