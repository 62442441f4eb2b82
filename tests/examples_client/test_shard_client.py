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
from tests.runtime.devserver.helpers import SCORE, SHARD_SECRET, client, make_shard_project, running

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "examples" / "shard_client.py"

ARENA = """
class Capped(Score):
    def authorize_input(self, subscriber_id, auth, input):
        return input >= 0

    def is_finished(self):
        return self.total >= 100


class Arena(ShardObject):
    sim = Capped
    config = ShardConfig(tick_rate_hz=20)
    tick_strategy = "timer"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_shard_project(tmp_path, SCORE, ARENA, name="score", secret_in=".dev.vars")


ALICE = make_token(SHARD_SECRET, "alice", now_ms=time.time() * 1000)


async def run_client(port: int, args: str) -> tuple[int, list[str]]:
    """Run the example client with ``args`` (split on spaces) to completion; its exit status and output lines."""
    argv = [sys.executable, str(CLIENT), f"ws://127.0.0.1:{port}", *args.split()]
    done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    assert not done.stderr, done.stderr.decode()
    return done.returncode, done.stdout.decode().splitlines()


async def serve_and_run_client(project: Path, args: str) -> tuple[int, list[str]]:
    """Serve ``project`` on a dev server and :func:`run_client` against it with ``args``."""
    with trio.fail_after(30):
        async with running(project) as server:
            return await run_client(server.port, args)


def frames(lines: list[str]) -> list[tuple[int, object]]:
    """The ``tick <n>: <snapshot>`` lines, parsed."""
    out = []
    for line in lines:
        if line.startswith("tick "):
            tick, _, snapshot = line[len("tick ") :].partition(": ")
            out.append((int(tick), json.loads(snapshot)))
    return out


async def test_prints_frames_in_tick_order_and_the_ack_for_its_inputs(project: Path) -> None:
    rc, lines = await serve_and_run_client(
        project, f"match-1 alice --token {ALICE} --input 5 --input 2 --frames 10"
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
    rc, lines = await serve_and_run_client(
        project, f"match-1 alice --token {ALICE} --input -1 --input 4 --frames 10"
    )
    assert rc == 0
    errors = [json.loads(line) for line in lines if line.startswith('{"error"')]
    assert [(e["error"]["code"], e["client_seq"]) for e in errors] == [("unauthorized", 1)]
    assert frames(lines)[-1][1] == {"total": 4}


@pytest.mark.parametrize(
    ("sid", "secret", "reason"),
    [
        ("alice", "not-the-secret", "unauthorized: "),  # a forged token
        ("bob", SHARD_SECRET, "user 'alice' may not subscribe"),  # someone else's subscriber id
    ],
    ids=["forged", "other-sid"],
)
async def test_a_refused_subscription_prints_1008_and_fails(
    project: Path, sid: str, secret: str, reason: str
) -> None:
    forged = make_token(secret, "alice", now_ms=time.time() * 1000)
    rc, lines = await serve_and_run_client(project, f"match-1 {sid} --token {forged} --frames 3")
    assert rc == 1
    [line] = lines
    assert line.startswith(f"closed 1008 {reason}")


async def test_exits_when_the_shard_finishes(project: Path) -> None:
    rc, lines = await serve_and_run_client(project, f"m alice --token {ALICE} --input 100")
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
