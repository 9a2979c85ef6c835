"""The command line: `--standby` (what compose's `up` and the Kubernetes Deployment run: one line on how to
reach the terminal, and no prompt until someone presses Enter there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DASHBOARD_"))}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], input=stdin, capture_output=True,
                          text=True, timeout=60, env={**environ, **env}, cwd=ROOT / "tests")  # fmt: skip


def test_standby_says_how_to_reach_the_terminal_and_draws_nothing(tmp_path):
    (tmp_path / "token").write_text("t0k3n-from-volume\n")
    # stdin closes before anyone pressed Enter (the container is stopped): a clean exit, nothing else
    done = run("--standby", DASHBOARD_URL="http://127.0.0.1:18888", DASHBOARD_TOKEN_FILE=str(tmp_path / "token"))
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("planner ready: `docker compose attach orchestrator` and press Enter")
    assert "`make chat`" in line and line.endswith("dashboard: http://127.0.0.1:18888/login?t=t0k3n-from-volume")
    assert "you>" not in done.stdout and done.stderr == ""


def test_standby_is_for_the_session_only():
    done = run("--standby", "--prompt", "3 days in Lisbon")
    assert done.returncode == 2 and "--standby is for the interactive session" in done.stderr


def test_a_request_given_without_prompt_is_not_repeated_back_and_says_how():
    done = run("Lisbon " * 8000)  # 56 KB pasted as plain words
    assert done.returncode == 2
    (last,) = [line for line in done.stderr.splitlines() if line.startswith("main.py: error:")]
    assert len(done.stderr) < 600 and last.endswith('give the request with --prompt "..."')
    assert "Lisbon Lisbon" in last and "..." in last
