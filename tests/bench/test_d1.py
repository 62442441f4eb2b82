"""bench/d1.py's per-rung breakdown runs at a tiny scale (figures are printed, never asserted on)."""

from __future__ import annotations

import math
from pathlib import Path

from bench import d1


def test_the_breakdown_measures_every_rung(tmp_path: Path) -> None:
    """Every rung runs against a populated database and gives a time per call; the baseline is like for like."""
    d1_path, raw_path = tmp_path / "d1.sqlite", tmp_path / "raw.sqlite"
    d1.d1_inserts(d1_path, 100)
    d1.raw_inserts(raw_path, 100)
    ladder = d1.breakdown(d1_path, raw_path, 100, 100)  # checks the raw side's settings first
    assert sorted(ladder) == sorted(
        [
            "select_raw_sqlite3",
            "select_raw_sqlite3_one_cursor",
            "select_d1_core",
            "select_d1_core_gates",
            "select_d1_core_gates_shaping",
            "select_d1_first_path",
            "select_d1_api",
            "insert_raw_sqlite3",
            "insert_d1_core",
            "insert_d1_core_gates",
            "insert_d1_core_gates_shaping",
            "insert_d1_api",
        ]
    )
    assert all(math.isfinite(us) and us > 0 for us in ladder.values())
