"""``shardsim dev``: serve a Wrangler project's Python Worker locally.

Errors in the project (config, module) are printed as ``file: problem`` and
exit with status 1; the first Ctrl-C shuts down cleanly (websockets closed
with 1001, pending writes committed, alarms saved).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import TYPE_CHECKING, TextIO

import trio

if TYPE_CHECKING:
    from runtime.devserver import DevServer

__all__ = ["add_parser", "run_dev"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``dev`` subcommand."""
    dev = sub.add_parser(
        "dev",
        help="serve a Wrangler project's Python Worker on 127.0.0.1 (like wrangler dev)",
        description="Serve a Wrangler project (wrangler.toml / wrangler.jsonc) with emulated Durable Objects.",
    )
    dev.add_argument("path", nargs="?", default=".", help="project directory or config file (default: .)")
    dev.add_argument("--port", type=int, default=8787, help="TCP port (default: 8787, as wrangler dev)")
    dev.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    state = dev.add_mutually_exclusive_group()
    state.add_argument(
        "--state-dir",
        default=".shardsim",
        help="where state persists, relative to the project (default: .shardsim)",
    )
    state.add_argument("--in-memory", action="store_true", help="keep no state after exit")
    dev.add_argument("--watch", action="store_true", help="reload the Worker when its files change")
    dev.add_argument(
        "--no-migrations",
        action="store_true",
        help="accept Durable Object classes that no migration declares (as SQLite-backed)",
    )
    dev.add_argument(
        "--skip-d1-migrations",
        action="store_true",
        help="do not apply pending D1 migrations on start (shardsim d1 migrations apply does it by hand)",
    )
    dev.add_argument(
        "--test-scheduled",
        action="store_true",
        help="serve /__scheduled?cron=... to run the Worker's scheduled handler (as wrangler dev)",
    )
    dev.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def run_dev(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the dev server until Ctrl-C; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    from runtime.devserver import ConfigError, DevServer, WorkerLoadError

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=err,
    )
    if not args.verbose:
        logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        server = DevServer(
            args.path,
            host=args.host,
            port=args.port,
            state_dir=None if args.in_memory else args.state_dir,
            watch=args.watch,
            require_migrations=not args.no_migrations,
            d1_migrations=not args.skip_d1_migrations,
            test_scheduled=args.test_scheduled,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return 1

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(server.run)
            except WorkerLoadError as exc:
                print(f"error: {exc}", file=err)
                return 1
            except OSError as exc:
                print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=err)
                return 1
            _banner(server, out)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    print("\nshutting down", file=out, flush=True)
                    break
            await server.shutdown()
        return 0

    try:
        return trio.run(main)
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


def _banner(server: DevServer, out: TextIO) -> None:
    cfg = server.config
    worker = server.worker
    print(f"shardsim dev: {cfg.path}", file=out)
    if worker is not None:
        print(f"  main: {cfg.main.name} -> {worker.entry_name}", file=out)
    rows = server.bindings()
    if rows:
        print("  bindings:", file=out)
        width = max(len(n) for n, _, _ in rows)
        kinds = max(len(k) for _, k, _ in rows)
        for name, kind, detail in rows:
            print(f"    env.{name:<{width}}  {kind:<{kinds}}  {detail}", file=out)
    for warning in cfg.warnings:
        print(f"  warning: {warning}", file=out)
    where = "in memory" if server.in_memory else str(server.state_root)
    print(f"  state: {where}", file=out)
    print(f"  admin: {server.url}/__shardsim/", file=out)
    if server.test_scheduled:
        print(f"  scheduled: {server.url}/__scheduled?cron=*+*+*+*+* runs the scheduled handler", file=out)
    if server.host not in ("127.0.0.1", "localhost", "::1"):
        print("  warning: not bound to loopback; the admin routes have no authentication", file=out)
    print(f"Ready on {server.url}", file=out, flush=True)
