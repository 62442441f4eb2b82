"""Import a Worker module (written against workers / js / pyodide) the way tests should."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runtime import pyworkers


@contextmanager
def worker_module(tmp_path: Path, source: str, name: str = "worker_under_test") -> Iterator[types.ModuleType]:
    """Write ``source`` to a file, import it with the Workers modules installed, keep them installed."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    with pyworkers.installed():
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            yield module
        finally:
            sys.modules.pop(name, None)
