"""The one error the platform shims raise of their own: something production has that shardsim lacks."""

from __future__ import annotations

from shards._errors import ShardsError

__all__ = ["NotEmulatedError"]


class NotEmulatedError(ShardsError):
    """Worker code used a production API shardsim does not emulate.

    Deliberately not an ``AttributeError``: ``from js import caches`` must
    report this message, not Python's generic "cannot import name".
    """
