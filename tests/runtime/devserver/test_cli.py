"""``shardsim dev``: the banner, errors as file: problem with exit status 1, clean Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from runtime.cli import main

from .helpers import TOML, make_project

ROOT = Path(__file__).resolve().parents[3]


def test_config_error_is_one_line_and_exit_1(tmp_path, capsys) -> None:
    make_project(tmp_path, toml=TOML.replace('"2026-11-01"', '"soon"'))
    assert main(["dev", str(tmp_path), "--port", "0", "--in-memory"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'wrangler.toml'}: compatibility_date must be YYYY-MM-DD, got 'soon'\n"


def test_module_error_is_file_line_and_exit_1(tmp_path, capsys) -> None:
    make_project(tmp_path, entry="import nowhere_to_be_found\n")
    assert main(["dev", str(tmp_path), "--port", "0", "--in-memory"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "entry.py:1: ModuleNotFoundError: No module named 'nowhere_to_be_found'" in err
    assert "Traceback" not in err


def test_serves_prints_bindings_and_stops_cleanly_on_ctrl_c(tmp_path) -> None:
    make_project(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "dev", str(tmp_path), "--port", "0", "--test-scheduled"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while True:
            line = proc.stdout.readline()
            assert line, f"server exited: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
            if line.startswith("Ready on "):
                break
        url = line.split()[-1]
        banner = "".join(lines)
        assert "env.ECHO" in banner
        assert "Durable Object" in banner
        assert "Echo (sqlite)" in banner
        assert "env.CACHE" in banner
        assert "not emulated" in banner
        assert "env.SECRET" in banner
        assert "s3cret" not in banner  # secrets are never printed
        assert "/__scheduled?cron=*+*+*+*+* runs the scheduled handler" in banner
        with urllib.request.urlopen(f"{url}/echo", data=b"hi", timeout=10) as resp:
            assert resp.read() == b"hi"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "shutting down" in out
        assert "POST /echo 200" in err  # the request log
        assert (tmp_path / ".shardsim" / "do" / "ECHO").is_dir()  # state persisted in the project
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
