"""Fixtures for the D1 tests: one contract runner over both drivers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from runtime.d1 import D1Database, D1Limits, close_d1, close_d1_asyncio, open_d1, open_d1_asyncio

Body = Callable[[D1Database], Awaitable[Any]]


class Runner:
    """Runs an ``async def body(db)`` against a fresh (or given) database with one driver.

    The contract bodies only await D1 calls, so the same body runs under
    trio and under asyncio. Both run from sync tests: pytest-trio runs every
    async test under trio, which aiosqlite cannot use.
    """

    def __init__(self, driver: str, tmp_path: Path) -> None:
        self.driver = driver
        self.path = str(tmp_path / "db.sqlite")

    def __call__(self, body: Body, *, path: str | None = None, limits: D1Limits | None = None) -> Any:
        target = path or self.path
        if self.driver == "trio":

            async def main() -> Any:
                db = open_d1(target, limits=limits)
                try:
                    return await body(db)
                finally:
                    close_d1(db)

            return trio.run(main)

        async def amain() -> Any:
            db = await open_d1_asyncio(target, limits=limits)
            try:
                return await body(db)
            finally:
                await close_d1_asyncio(db)

        return asyncio.run(amain())


@pytest.fixture(params=["trio", "asyncio"])
def run_d1(request: pytest.FixtureRequest, tmp_path: Path) -> Runner:
    """The contract runner, once per driver."""
    return Runner(request.param, tmp_path)
