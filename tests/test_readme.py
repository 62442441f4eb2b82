"""Every Python example in README.md runs, and so does examples/counter.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_blocks_run(source: str, tmp_path: Path) -> None:
    # Each block is a complete script; run it in a fresh interpreter so
    # trio.run() is not nested inside pytest-trio's loop.
    script = tmp_path / "block.py"
    script.write_text(source)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0, out.stderr


def test_readme_opens_with_install_and_test_commands() -> None:
    first = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert first is not None
    lines = first.group(1).strip().splitlines()
    assert "pip install -e '.[test]'" in lines[0]
    assert lines[1] == "python -m pytest -q"


def test_counter_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "counter.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["rpc   -> 2", "fetch -> 3", "after hibernation -> 3"]
