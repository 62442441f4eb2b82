"""examples/shard_client.py as a user runs it: a subprocess against a real dev server over loopback."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from runtime.shard_objects import make_token
from tests.runtime.devserver.helpers import client, running

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "examples" / "shard_client.py"

WORKER = """
from workers import Response, WorkerEntrypoint
from runtime.shard_objects import ShardObject
from shards import ShardConfig, SimState


class Score(SimState):
    def __init__(self):
        self.total = 0

    def authorize_input(self, subscriber_id, auth, input):
        return input >= 0

    def apply_input(self, subscriber_id, input, now):
        self.total += input

    def tick(self, dt):
        pass

    def snapshot(self):
        return {"total": self.total}

    def is_finished(self):
        return self.total >= 100


class Arena(ShardObject):
    sim = Score
    config = ShardConfig(tick_rate_hz=20)
    tick_strategy = "timer"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("not a shard")
"""

CONFIG = """
name = "score"
main = "worker.py"
compatibility_date = "2026-11-01"
compatibility_flags = ["python_workers"]

[[durable_objects.bindings]]
name = "ARENA"
class_name = "Arena"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Arena"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "wrangler.toml").write_text(CONFIG)
    (tmp_path / ".dev.vars").write_text("SHARDSIM_SECRET=dev-secret\n")
    return tmp_path


ALICE = make_token("dev-secret", "alice", now_ms=time.time() * 1000)


async def run_client(port: int, args: str) -> tuple[int, list[str]]:
    """Run the example client with ``args`` (split on spaces) to completion; its exit status and output lines."""
    argv = [sys.executable, str(CLIENT), f"ws://127.0.0.1:{port}", *args.split()]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    assert not done.stderr, done.stderr.decode()
    return done.returncode, done.stdout.decode().splitlines()


def frames(lines: list[str]) -> list[tuple[int, object]]:
    """The ``tick <n>: <snapshot>`` lines, parsed."""
    out = []
    for line in lines:
        if line.startswith("tick "):
            tick, _, snapshot = line[len("tick ") :].partition(": ")
            out.append((int(tick), json.loads(snapshot)))
    return out


async def test_prints_frames_in_tick_order_and_the_ack_for_its_inputs(project: Path) -> None:
    with trio.fail_after(30):
        async with running(project) as server:
            rc, lines = await run_client(
                server.port, f"match-1 alice --token {ALICE} --input 5 --input 2 --frames 10"
            )
    assert rc == 0
    got = frames(lines)
    assert len(got) == 10
    ticks = [tick for tick, _ in got]
    assert ticks == sorted(set(ticks))
    assert got[-1][1] == {"total": 7}
    # The last ack covers both inputs and follows the frame of the tick that applied them.
    [*_, ack_at] = (i for i, line in enumerate(lines) if line.startswith('{"ack"'))
    ack = json.loads(lines[ack_at])["ack"]
    assert ack["last_client_seq"] == 2
    assert lines.index(f"tick {ack['tick']}: {json.dumps({'total': 7})}") < ack_at


async def test_prints_error_frames_as_they_are(project: Path) -> None:
    with trio.fail_after(30):
        async with running(project) as server:
            rc, lines = await run_client(
                server.port, f"match-1 alice --token {ALICE} --input -1 --input 4 --frames 10"
            )
    assert rc == 0
    errors = [json.loads(line) for line in lines if line.startswith('{"error"')]
    assert [(e["error"]["code"], e["client_seq"]) for e in errors] == [("unauthorized", 1)]
    assert frames(lines)[-1][1] == {"total": 4}


@pytest.mark.parametrize(
    ("sid", "secret", "reason"),
    [
        ("alice", "not-the-secret", "unauthorized: "),  # a forged token
        ("bob", "dev-secret", "user 'alice' may not subscribe"),  # someone else's subscriber id
    ],
    ids=["forged", "other-sid"],
)
async def test_a_refused_subscription_prints_1008_and_fails(
    project: Path, sid: str, secret: str, reason: str
) -> None:
    forged = make_token(secret, "alice", now_ms=time.time() * 1000)
    with trio.fail_after(30):
        async with running(project) as server:
            rc, lines = await run_client(server.port, f"match-1 {sid} --token {forged} --frames 3")
    assert rc == 1
    [line] = lines
    assert line.startswith(f"closed 1008 {reason}")


async def test_exits_when_the_shard_finishes(project: Path) -> None:
    with trio.fail_after(30):
        async with running(project) as server:
            rc, lines = await run_client(server.port, f"m alice --token {ALICE} --input 100")
    assert rc == 0
    assert frames(lines)[-1][1] == {"total": 100}
    assert lines[-1].startswith("closed 1000")


async def test_a_token_from_the_cli_and_a_hibernation_in_between(project: Path) -> None:
    """The README's walk-through: `shardsim token`, connect, hibernate through the admin route, reconnect."""
    env = {k: v for k, v in os.environ.items() if k != "SHARDSIM_SECRET"}
    made = await trio.run_process(
        [sys.executable, "-m", "runtime.cli", "token", "alice"], cwd=project, env=env, capture_stdout=True
    )
    alice = made.stdout.decode().strip()
    with trio.fail_after(30):
        async with running(project) as server, client(server) as admin:
            rc, first = await run_client(server.port, f"m alice --token {alice} --input 3 --frames 5")
            assert rc == 0
            # Once nobody is connected the shard persists and stops ticking (alarm null);
            # hibernating it before that would drop the ticks since its last persist.
            dump: dict[str, Any] = {}
            while "shard/state" not in dump.get("kv", {}) or dump["alarm"] is not None:
                await trio.sleep(0.02)
                dump = (await admin.request("GET", "/__shardsim/objects/ARENA/m/storage")).json()
            reply = await admin.request("POST", "/__shardsim/objects/ARENA/m/hibernate")
            assert reply.json()["state"] == "hibernated"
            rc, second = await run_client(server.port, f"m alice --token {alice} --frames 3")
            assert rc == 0
            shard = (await admin.request("GET", "/__shardsim/objects/ARENA/m")).json()
    assert shard["activations"] == 2  # the constructor ran again
    last_tick, last = frames(first)[-1]
    next_tick, snapshot = frames(second)[0]
    assert last == snapshot == {"total": 3}
    assert next_tick > last_tick  # it went on from its persisted tick, not from tick 1
