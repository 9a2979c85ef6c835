"""Start the project's services as real processes on free ports, wait until they answer, stop them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Stop the process; returns how long it took to exit."""
        return stop_process(self.process, sig, timeout)


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
    """Send `sig` and wait for the exit (SIGKILL after `timeout`); returns the seconds it took."""
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return time.monotonic() - started


@dataclass
class Watched:
    """A process whose output is read line by line as it comes."""

    process: subprocess.Popen[str]
    lines: list[str]
    found: dict[str, re.Match[str]] = field(default_factory=dict)  # the first line each pattern matched


@contextmanager
def watch_process(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    ready: Mapping[str, re.Pattern[str]],
    name: str,
    timeout: float = 15.0,
    output: list[str] | None = None,
) -> Iterator[Watched]:
    """Start `command`, collect its output lines (into `output`, when given) on a thread, and yield
    once every `ready` pattern has matched a line. On exit: SIGTERM, SIGKILL after 5 s, reaped."""
    process = subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(env), text=True, bufsize=1
    )
    watched = Watched(process, output if output is not None else [])
    started = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            watched.lines.append(line.rstrip("\n"))
            for key, pattern in ready.items():
                if key not in watched.found and (match := pattern.search(line)):
                    watched.found[key] = match
            if len(watched.found) == len(ready):
                started.set()
        started.set()  # EOF: the process ended

    reader = threading.Thread(target=pump, name=f"{name}-output", daemon=True)
    reader.start()
    try:
        if not started.wait(timeout) or len(watched.found) < len(ready):
            raise RuntimeError(f"{name} did not start:\n" + "\n".join(watched.lines))
        yield watched
    finally:
        stop_process(process, timeout=5)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def wait_for_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{log.read_text()}")


@contextmanager
def run_service(
    name: str, args: list[str], health_url: str, tmp: Path, env: dict[str, str] | None = None
) -> Iterator[Service]:
    log = tmp / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=tmp,
        )
    service = Service(name, health_url.rsplit("/", 1)[0], process, log)
    try:
        wait_for_http(health_url, process, log)
        yield service
    finally:
        service.stop()


@contextmanager
def mcp_server(tmp: Path, port: int | None = None) -> Iterator[Service]:
    port = port or free_port()
    with run_service(
        "mcp-server",
        ["-m", "mcp_server"],
        f"http://127.0.0.1:{port}/health",
        tmp,
        env={"MCP_HOST": "127.0.0.1", "MCP_PORT": str(port), "MCP_LOG_LEVEL": "warning"},
    ) as service:
        service.url = f"http://127.0.0.1:{port}/mcp"
        yield service


@contextmanager
def ollama_standin(tmp: Path, *extra: str, port: int | None = None) -> Iterator[Service]:
    port = port or free_port()
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    with run_service(
        "ollama-standin",
        ["-m", "ollama_standin", "--host", "127.0.0.1", "--port", str(port), *extra],
        f"http://127.0.0.1:{port}/api/version",
        tmp,
        env=env,
    ) as service:
        service.url = f"http://127.0.0.1:{port}"
        yield service


def stack_env(standin, tools, **extra: str | None) -> dict[str, str]:
    """The environment main.py sees: the test stack, plus overrides (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "MCP_", "OTEL_", "AGENT_"))}
    env.update(
        OLLAMA_HOST=standin.url,
        OLLAMA_MODEL="qwen2.5:7b",
        MCP_SERVER_URL=tools.url,
        OLLAMA_CONNECT_WAIT="2",
        PYTHONUNBUFFERED="1",
    )
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_clear_line(stderr: str, *fragments: str) -> None:
    """main.py's own failure: one `error:` line holding every fragment, and no traceback."""
    assert "Traceback" not in stderr
    (line,) = error_lines(stderr)
    for fragment in fragments:
        assert fragment in line, line
