"""The ``shardsim`` command line: ``dev``, ``d1``, ``token``, ``bench``, ``--version``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from . import _d1, _dev

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
    _dev.add_parser(sub)
    _d1.add_parser(sub)
    bench = sub.add_parser("bench", help="run benchmarks (same as python -m bench)")
    bench.add_argument("suite", nargs="*", help="benchmark suites to run (default: all)")
    token = sub.add_parser("token", help="print a bearer token for the dev server's shard endpoint")
    token.add_argument("user", help="the user id the token authenticates")
    token.add_argument("--admin", action="store_true", help="may subscribe as any subscriber id")
    token.add_argument("--ttl", type=float, metavar="SECONDS", help="expire after SECONDS (default: never)")
    token.add_argument(
        "--secret-file",
        metavar="PATH",
        help="read the secret from PATH (default: SHARDSIM_SECRET from .dev.vars, [vars] or the "
        "environment, else .shardsim/secret)",
    )
    args = parser.parse_args(argv)
    if args.command == "dev":
        return _dev.run_dev(args)
    if args.command == "d1":
        return _d1.run_d1(args)
    if args.command == "bench":
        from bench.__main__ import main as bench_main

        return bench_main(args.suite)
    if args.command == "token":
        return _token(args.user, admin=args.admin, ttl=args.ttl, secret_file=args.secret_file)
    parser.print_help()
    return 0


def _project_vars(path: str) -> dict[str, Any] | None:
    """The vars the dev server would give the Worker here ([vars] and .dev.vars); None: no project.

    Raises:
        ConfigError: there is a Wrangler config, but the dev server could not load it either.
    """
    from runtime.devserver import ConfigError, find_config, load_config

    try:
        config_path = find_config(path)
    except ConfigError:
        return None
    return load_config(config_path, require_migrations=False).vars


def _token(user: str, *, admin: bool, ttl: float | None, secret_file: str | None) -> int:
    import time

    from runtime.devserver import ConfigError
    from runtime.shard_objects import load_secret, make_token

    try:
        project_vars = None if secret_file is not None else _project_vars(".")
        secret = load_secret(".", vars=project_vars, secret_file=secret_file)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"shardsim token: {exc}", file=sys.stderr)
        return 2
    if secret is None:
        print(
            "shardsim token: no token secret: set SHARDSIM_SECRET (.dev.vars, [vars] or the environment), "
            "or run `shardsim dev` once to create .shardsim/secret",
            file=sys.stderr,
        )
        return 2
    try:
        # The CLI runs outside any runtime: wall time is the right clock here.
        print(make_token(secret, user, admin=admin, ttl=ttl, now_ms=time.time() * 1000))
    except ValueError as exc:
        print(f"shardsim token: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
