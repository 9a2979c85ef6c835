"""Every command README.md and docs/ show works as written: each one's --help runs, and the Python
ones run in the project's environment (`uv run ...`) unless they run inside an image."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "kubernetes" / "README.md"]
# python main.py [SUBCOMMAND], python -m MODULE, python scripts/NAME.py, with what precedes them.
PYTHON = re.compile(
    r"(?P<before>[^`\n]*?)\bpython3? (?P<what>main\.py(?: (?P<sub>[a-z]+))?|-m [a-z_]+|scripts/[\w-]+\.py)"
)
# Python entry points that need nothing but the standard library: made for a machine without the
# project's environment (the offline site), so `python3 scripts/...` is right for them.
STDLIB_ONLY = {"scripts/make-bundle.py", "scripts/load-bundle.py", "scripts/pin-images.py"}
IN_AN_IMAGE = ("kubectl", "docker", "exec", "pod", "image", "container")


def _mentions() -> list[tuple[str, str, str | None, str]]:
    found = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for match in PYTHON.finditer(line):
                found.append(
                    (f"{doc.relative_to(ROOT)}:{number}", match["what"], match["sub"], line[: match.start("what")])
                )
    return found


MENTIONS = _mentions()


def test_the_docs_mention_commands_at_all():
    assert len(MENTIONS) > 20


@pytest.mark.parametrize(("where", "what", "before"), [(w, c, b) for w, c, _, b in MENTIONS], ids=lambda x: x)
def test_python_commands_name_the_environment_they_need(where, what, before):
    doc, number = where.rsplit(":", 1)
    previous = (ROOT / doc).read_text().splitlines()[int(number) - 2] if int(number) > 1 else ""
    if what in STDLIB_ONLY or any(word in (previous + before).lower() for word in IN_AN_IMAGE):
        return
    assert re.search(r"uv run(?: --\S+(?: \S+)?)* python3? (?:-m )?$", before) or (
        "PYTHONPATH=" in before and "uv run" in before
    ), f"{where}: `python {what}` needs the project's environment: write `uv run python {what}`"


def _help_commands() -> list[list[str]]:
    from orchestrator.ops import COMMANDS

    commands = {("main.py",)}
    for _, what, sub, _ in MENTIONS:
        if what.startswith("main.py") and sub in COMMANDS:
            commands.add(("main.py", sub))
        elif what.startswith("-m "):
            commands.add(("-m", what.split()[1]))
        elif what.startswith("scripts/"):
            commands.add((what,))
    return [list(c) for c in sorted(commands)]


@pytest.mark.parametrize("command", _help_commands(), ids=" ".join)
def test_each_documented_python_command_answers_help(command):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "usage:" in done.stdout.lower(), done.stdout


def test_each_documented_make_target_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    named = set()
    for doc in DOCS:
        named |= set(re.findall(r"`make ([a-z][a-z-]*)", doc.read_text()))
    assert named and named <= targets, f"documented but not in the Makefile: {sorted(named - targets)}"


def test_each_documented_script_exists_and_shell_ones_are_executable():
    named = set()
    for doc in DOCS:
        named |= set(re.findall(r"\bscripts/[\w-]+\.(?:sh|py)\b", doc.read_text()))
    assert named
    for name in sorted(named):
        path = ROOT / name
        assert path.is_file(), f"documented but missing: {name}"
        if name.endswith(".sh"):
            assert os.access(path, os.X_OK), f"{name} is documented as a command: chmod +x"
