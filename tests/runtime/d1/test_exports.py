"""runtime.d1 is the public home of D1: everything D1 raises is importable from it."""

from __future__ import annotations

import types

import runtime.d1 as d1
import shards


def test_every_d1_error_is_exported_by_runtime_d1() -> None:
    """The runtime package leaves D1 to runtime.d1, which re-exports shards' D1 errors."""
    errors = [name for name in shards.__all__ if name.startswith("D1") or name == "DataStoreError"]
    assert "D1Error" in errors
    for name in errors:
        assert name in d1.__all__, name
        assert getattr(d1, name) is getattr(shards, name)


def test_all_names_resolve_and_nothing_public_escapes_all() -> None:
    for name in d1.__all__:
        assert getattr(d1, name) is not None, name  # open_d1_asyncio loads on first use
    public = {
        a
        for a, v in vars(d1).items()
        if not a.startswith("_") and not isinstance(v, types.ModuleType) and a not in ("annotations", "Any")
    }
    assert public <= set(d1.__all__), sorted(public - set(d1.__all__))
    assert len(d1.__all__) == len(set(d1.__all__))
