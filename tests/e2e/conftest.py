"""Real processes on free ports: the Ollama stand-in, the MCP server, and main.py itself."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
from fastmcp import Client
from service_processes import ROOT, mcp_server, ollama_standin, stack_env

MISBEHAVIOURS = (
    "badjson",
    "notool",
    "loop",
    "empty",
    "crash",
    "parse500",
    "textcalls",
    "long",
    "repetitive",
    "syntax",
    "invent",
    "answers",
    "embellish",
    "turnaround",
    "hasty",
)
MODELS = "qwen2.5:7b,llama3.2:3b,gemma2:2b," + ",".join(f"misbehave-{kind}" for kind in MISBEHAVIOURS)


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    with ollama_standin(tmp_path_factory.mktemp("ollama"), "--models", MODELS) as service:
        yield service


@pytest.fixture(scope="session")
def tools(tmp_path_factory):
    with mcp_server(tmp_path_factory.mktemp("mcp")) as service:
        yield service


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


@pytest.fixture
def run_main(standin, tools, tmp_path):
    """Run `python main.py ARGS` against the stack; extra env overrides the defaults."""

    def run(*args: str, timeout: float = 120, **env: str | None) -> Run:
        done = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,  # no .env here: only what the test sets
            env=stack_env(standin, tools, **env),
            stdin=subprocess.DEVNULL,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
async def tool_client(tools):
    """Ask the tool server directly, to know what the plan should contain."""
    async with Client(tools.url) as client:

        async def call(name: str, **arguments):
            return (await client.call_tool(name, arguments)).structured_content

        yield call
