"""shards/ is pure: importing it loads no I/O or event-loop module."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ["trio", "sqlite3", "websockets", "socket", "asyncio", "runtime"]


def test_importing_shards_loads_no_io_modules() -> None:
    code = f"import sys, shards\nbad = [m for m in {FORBIDDEN!r} if m in sys.modules]\nprint(','.join(bad))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
