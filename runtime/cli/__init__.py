"""The ``shardsim`` command line: ``shardsim --version``, ``shardsim bench``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

__all__ = ["main"]


def _version() -> str:
    try:
        return version("shardsim")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``shardsim`` command; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="shardsim", description="Durable Objects emulator for shard servers."
    )
    parser.add_argument("--version", action="version", version=f"shardsim {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser("bench", help="run benchmarks (same as python -m bench)")
    bench.add_argument("suite", nargs="*", help="benchmark suites to run (default: all)")
    args = parser.parse_args(argv)
    if args.command == "bench":
        from bench.__main__ import main as bench_main

        return bench_main(args.suite)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
