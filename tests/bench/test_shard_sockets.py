"""bench/shard_sockets.py runs end to end at a tiny scale (figures are printed, never asserted on)."""

from __future__ import annotations

import json
import math

import pytest

from bench import shard_sockets


@pytest.mark.slow
async def test_the_suite_prints_every_figure_at_a_tiny_scale(capsys: pytest.CaptureFixture[str]) -> None:
    await shard_sockets.main(subscribers=5, seconds=0.5, rounds=1, wake_rounds=2, warmup=0.2)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    figures = {line["figure"]: line for line in lines}
    assert all(line["suite"] == "shard_sockets" for line in lines)
    assert all(math.isfinite(line["value"]) for line in lines)
    fan_out = [
        "frames_delivered_per_s",
        "tick_to_receive_p50",
        "tick_to_receive_p99",
        "server_cpu_share",
        "ticks_per_s",
        "connect_per_s",
        "frames_skipped_by_backpressure",
        "tick_lateness_p50",
        "tick_lateness_p99",
    ]
    wake = [
        f"wake_{strategy}_{action}_to_first_frame_{q}"
        for strategy in ("timer", "event")
        for action in ("input", "connect")
        for q in ("p50", "p99")
    ]
    assert sorted(figures) == sorted([f"fan_out_{name}" for name in fan_out] + wake)
    # Frames went through both servers to the client process.
    delivered = figures["fan_out_frames_delivered_per_s"]
    assert delivered["value"] > 0
    assert delivered["bare"] > 0
    assert delivered["subscribers"] == 5
