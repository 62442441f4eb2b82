"""Each package curates its public API in ``__all__``."""

from __future__ import annotations

import importlib
import json
import types
from pathlib import Path

import pytest

PACKAGES = [
    "shards",
    "runtime",
    "runtime.sockets",
    "runtime.storage",
    "runtime.d1",
    "runtime.shard_objects",
    "runtime.devserver",
    "runtime.pyworkers",
]
#: The public names, pinned: a change here is a change to what users import.
PUBLIC_NAMES = Path(__file__).with_name("public_names.json")


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve(name: str) -> None:
    mod = importlib.import_module(name)
    for attr in mod.__all__:
        assert hasattr(mod, attr), f"{name}.__all__ lists {attr!r} but it is missing"


@pytest.mark.parametrize("name", PACKAGES)
def test_no_public_name_escapes_all(name: str) -> None:
    mod = importlib.import_module(name)
    public = {
        a
        for a, v in vars(mod).items()
        if not a.startswith("_") and not isinstance(v, types.ModuleType) and a != "annotations"
    }
    assert public <= set(mod.__all__), f"public but not in __all__: {sorted(public - set(mod.__all__))}"


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_unique(name: str) -> None:
    names = importlib.import_module(name).__all__
    assert len(names) == len(set(names))


def test_runtime_reexports_the_error_tree() -> None:
    import runtime
    import shards

    for err in ["ShardsError", "DurableObjectError", "CodecError"]:
        assert getattr(runtime, err) is getattr(shards, err)


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_are_the_pinned_ones(name: str) -> None:
    """Removing or renaming a public name is a deliberate act: update tests/public_names.json with it."""
    pinned = json.loads(PUBLIC_NAMES.read_text())[name]
    assert sorted(importlib.import_module(name).__all__) == pinned
