"""``shardsim d1``: migrations and SQL against the dev state, as wrangler d1 --local."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runtime.cli import main

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "d1_notes"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "notes"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".shardsim", "__pycache__"))
    return dest


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_migrations_apply_in_order_and_are_idempotent(project: Path, capsys) -> None:
    code, out, _ = run("d1", "migrations", "list", "notes", "--config", str(project), capsys=capsys)
    assert code == 0
    assert out.splitlines() == ["pending  0001_create_notes.sql", "pending  0002_room_stats.sql"]
    code, out, _ = run("d1", "migrations", "apply", "DB", "--config", str(project), capsys=capsys)
    assert code == 0
    assert out.splitlines() == ["applied  0001_create_notes.sql", "applied  0002_room_stats.sql"]
    assert (project / ".shardsim" / "d1" / "notes.sqlite").exists()
    code, out, _ = run("d1", "migrations", "apply", "notes", "--config", str(project), capsys=capsys)
    assert out.splitlines() == ["no migrations to apply"]


def test_execute_a_command_and_a_file(project: Path, capsys, tmp_path: Path) -> None:
    run("d1", "migrations", "apply", "notes", "--config", str(project), capsys=capsys)
    code, out, _ = run(
        "d1",
        "execute",
        "notes",
        "--config",
        str(project),
        "--json",
        "--command",
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'notes'",
        capsys=capsys,
    )
    assert code == 0
    assert json.loads(out)[0]["results"] == [{"name": "notes"}]
    script = tmp_path / "bad.sql"
    script.write_text("CREATE TABLE t (x INTEGER);\nINSERT INTO nope VALUES (1);\n")
    code, _, err = run(
        "d1", "execute", "notes", "--config", str(project), "--file", str(script), capsys=capsys
    )
    assert code == 1
    assert err.startswith("D1_ERROR: no such table: nope")
    # the file ran as one transaction: the CREATE before the failure is gone
    code, out, _ = run(
        "d1",
        "execute",
        "notes",
        "--config",
        str(project),
        "--json",
        "--command",
        "SELECT count(*) AS n FROM sqlite_master WHERE name = 't'",
        capsys=capsys,
    )
    assert json.loads(out)[0]["results"] == [{"n": 0}]


def test_unknown_databases_and_missing_files_are_reported_not_raised(project: Path, capsys) -> None:
    code, _, err = run("d1", "migrations", "apply", "nope", "--config", str(project), capsys=capsys)
    assert code == 1
    assert "no D1 database named 'nope' in d1_databases (databases: notes (binding DB))" in err
    code, _, err = run(
        "d1", "execute", "notes", "--config", str(project), "--file", "missing.sql", capsys=capsys
    )
    assert code == 1
    assert err.startswith("error: missing.sql: ")
