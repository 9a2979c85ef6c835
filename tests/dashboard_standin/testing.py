"""pytest helper: run `python -m dashboard_standin` as a real subprocess on free ports.

    with run_process() as dashboard:                     # browser token + OTLP API key, both random
        exporter = OTLPSpanExporter(endpoint=dashboard.otlp_grpc_endpoint,
                                    headers={"x-otlp-api-key": dashboard.api_key}, insecure=True)
        ...
        spans = dashboard.wait_for(lambda t: len(t["spans"]) >= 2)["spans"]

    with run_process({"ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS": "true"}) as dashboard:
        ...                                              # token and api_key are None

`env` is laid over os.environ with the dashboard's own variable names. Unless it (or the inherited
environment) says otherwise, the process gets a random Dashboard:Frontend:BrowserToken and runs
OTLP in ApiKey mode with a random primary key, like a dashboard started by Aspire tooling.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from service_processes import stop_process, watch_process

from .config import (
    BROWSER_TOKEN,
    OTLP_AUTH_MODE,
    PRIMARY_API_KEY,
    Configuration,
    FrontendAuthMode,
    OtlpAuthMode,
    command_line_settings,
    load_configuration,
    resolve_settings,
)

TESTS_DIR = Path(__file__).resolve().parent.parent  # what must be on sys.path for `dashboard_standin`

_LISTENING = {
    "ui_url": re.compile(r"Now listening on: (http://\S+)"),
    "otlp_grpc_endpoint": re.compile(r"OTLP/gRPC listening on: (http://\S+)"),
    "otlp_http_endpoint": re.compile(r"OTLP/HTTP listening on: (http://\S+)"),
}


@dataclass
class RunningDashboard:
    """A running stand-in. Endpoints are base URLs such as "http://127.0.0.1:PORT"."""

    ui_url: str
    otlp_grpc_endpoint: str
    otlp_http_endpoint: str
    token: str | None  # the browser token; None when the frontend is unsecured
    api_key: str | None  # the primary OTLP API key; None when OTLP is unsecured
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)  # the process's log lines so far

    @property
    def otlp_headers(self) -> dict[str, str]:
        """Headers an OTLP exporter needs here: {"x-otlp-api-key": key}, or {} when unsecured."""
        return {"x-otlp-api-key": self.api_key} if self.api_key else {}

    def _api(self, method: str) -> httpx.Response:
        params = {"t": self.token} if self.token else {}
        response = httpx.request(method, f"{self.ui_url}/api/telemetry", params=params, timeout=10)
        response.raise_for_status()
        return response

    def telemetry(self) -> dict[str, Any]:
        """GET /api/telemetry: spans, traces, metrics, logs, accepted/rejected/dropped counts."""
        result: dict[str, Any] = self._api("GET").json()
        return result

    def clear(self) -> None:
        """Forget everything recorded so far (DELETE /api/telemetry)."""
        self._api("DELETE")

    def wait_for(self, condition: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """Poll telemetry() until `condition` holds; exporters send in the background."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.telemetry()
            if condition(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise AssertionError(f"telemetry did not reach the expected state within {timeout} s: {snapshot}")
            time.sleep(0.05)

    def log_text(self) -> str:
        return "\n".join(self.output)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> float:
        """Send `sig` and wait for the exit; returns the seconds it took (SIGKILL after `timeout`)."""
        return stop_process(self.process, sig, timeout)


def child_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """os.environ + env + random credentials where neither configures them."""
    child = {**os.environ, **(env or {})}
    child["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), child.get("PYTHONPATH", "")) if p)
    child.setdefault("PYTHONUNBUFFERED", "1")
    configured = Configuration([child])
    if not any(key in configured for key in BROWSER_TOKEN):
        child["Dashboard__Frontend__BrowserToken"] = secrets.token_hex(16)
    if OTLP_AUTH_MODE not in configured and PRIMARY_API_KEY not in configured:
        child["Dashboard__Otlp__AuthMode"] = "ApiKey"
        child["Dashboard__Otlp__PrimaryApiKey"] = secrets.token_hex(16)
    return child


def _wait_for_grpc(target: str, deadline: float) -> None:
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=max(0.1, deadline - time.monotonic()))


@contextmanager
def run_process(
    env: Mapping[str, str] | None = None,
    *,
    args: Sequence[str] = (),
    host: str = "127.0.0.1",
    timeout: float = 15.0,
) -> Iterator[RunningDashboard]:
    """Start the stand-in on free ports of `host`, wait until all three listeners answer, yield it.

    `args` go after the port options, e.g. ["--Dashboard:TelemetryLimits:MaxTraceCount=3"].
    On exit the process gets SIGTERM (SIGKILL after 5 s) and is gone before this returns.
    """
    child_env = child_environment(env)
    command_line = [
        f"--frontend-url=http://{host}:0",
        f"--otlp-grpc-url=http://{host}:0",
        f"--otlp-http-url=http://{host}:0",
    ]
    command_line += list(args)
    # Resolve the settings the way the child will, to learn its token and key without scraping.
    settings = resolve_settings(
        load_configuration(child_env, command_line_settings(command_line)), generate_token=False
    )
    command = [sys.executable, "-m", "dashboard_standin", *command_line]
    deadline = time.monotonic() + timeout
    with watch_process(command, env=child_env, ready=_LISTENING, name="the dashboard stand-in", timeout=timeout) as w:
        token = settings.browser_token
        if settings.frontend_auth_mode is FrontendAuthMode.BROWSER_TOKEN and not token:
            # No token configured: the process made one up and printed it, as the dashboard does.
            match = next((re.search(r"/login\?t=(\w+)", line) for line in w.lines if "/login?t=" in line), None)
            token = match.group(1) if match else None
        dashboard = RunningDashboard(
            ui_url=w.found["ui_url"].group(1),
            otlp_grpc_endpoint=w.found["otlp_grpc_endpoint"].group(1),
            otlp_http_endpoint=w.found["otlp_http_endpoint"].group(1),
            token=token,
            api_key=settings.primary_api_key if settings.otlp_auth_mode is OtlpAuthMode.API_KEY else None,
            process=w.process,
            output=w.lines,
        )
        # The lines are printed once the sockets listen; still, prove each one answers.
        httpx.get(f"{dashboard.ui_url}/health", timeout=5).raise_for_status()
        httpx.get(f"{dashboard.otlp_http_endpoint}/v1/traces", timeout=5)  # 405 (POST only) is an answer
        _wait_for_grpc(dashboard.otlp_grpc_endpoint.removeprefix("http://"), deadline)
        yield dashboard
