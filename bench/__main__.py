"""Run benchmark suites: ``python -m bench [core] [runtime] ...`` (default: all)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: suite name -> module under bench/ exposing ``run() -> None``
SUITES: dict[str, str] = {
    "core": "bench.core",
    "runtime": "bench.runtime",
    "alarms": "bench.alarms",
    "storage": "bench.storage",
    "shards": "bench.shards",
    "d1": "bench.d1",
    "websockets": "bench.websockets",
    "shard_sockets": "bench.shard_sockets",
    "pyworkers": "bench.pyworkers",
}


def main(argv: Sequence[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}", file=sys.stderr)
        return 2
    for name in names:
        importlib.import_module(SUITES[name]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
