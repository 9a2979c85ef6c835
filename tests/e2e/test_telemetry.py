"""Observability end to end: what the dashboard receives from one turn, across both processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pexpect
import pytest
from dashboard_standin.testing import run_process as run_dashboard
from fastmcp import Client
from service_processes import ROOT, free_port, ollama_standin, run_service, stack_env

pytestmark = pytest.mark.e2e

TRIP = "3 days in Lisbon in May"
# Short export intervals so a test does not wait a minute for a metrics batch.
FAST_EXPORT = {
    "OTEL_METRIC_EXPORT_INTERVAL": "500",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
}


@pytest.fixture(scope="module")
def dashboard():
    with run_dashboard() as running:
        yield running


def otel_env(dashboard, *, protocol: str = "grpc", key: str | None = None) -> dict[str, str]:
    endpoint = dashboard.otlp_grpc_endpoint if protocol == "grpc" else dashboard.otlp_http_endpoint
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-otlp-api-key={key or dashboard.api_key}",
        **FAST_EXPORT,
    }


@contextmanager
def tool_server(dashboard, workdir, **extra: str):
    port = free_port()
    env = {"MCP_HOST": "127.0.0.1", "MCP_PORT": str(port), "MCP_LOG_LEVEL": "warning", **otel_env(dashboard), **extra}
    with run_service("mcp-server", ["-m", "mcp_server"], f"http://127.0.0.1:{port}/health", workdir, env) as service:
        service.url = f"http://127.0.0.1:{port}/mcp"
        yield service


@pytest.fixture(scope="module")
def traced_tools(dashboard, tmp_path_factory):
    with tool_server(dashboard, tmp_path_factory.mktemp("mcp")) as service:
        yield service


@pytest.fixture
def traced_run(standin, traced_tools, dashboard, tmp_path):
    dashboard.clear()

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        full = stack_env(standin, traced_tools, **{**otel_env(dashboard), **env})
        return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                              env=full, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip

    return run


def spans_of(dashboard, trace_id: str, services: set[str], timeout: float = 15) -> list[dict]:
    """The trace's spans, once every named service's spans have arrived."""

    def mine(telemetry: dict) -> list[dict]:
        return [s for s in telemetry["spans"] if s["trace_id"] == trace_id]

    return mine(dashboard.wait_for(lambda t: services <= {s["service"] for s in mine(t)}, timeout))


def test_one_turn_is_one_trace_across_both_processes(traced_run, dashboard):
    run = traced_run("--prompt", TRIP, "--json")
    assert run.returncode == 0, run.stderr
    trace_id = json.loads(run.stdout)["trace_id"]
    assert trace_id and len(trace_id) == 32
    spans = spans_of(dashboard, trace_id, {"orchestrator", "mcp-server"})
    by_id = {s["span_id"]: s for s in spans}
    (root,) = [s for s in spans if not s["parent_span_id"]]
    assert root["name"] == "travel_plan" and root["service"] == "orchestrator"
    names = {s["name"] for s in spans}
    assert {"invoke_agent Researcher", "invoke_agent Weather", "invoke_agent Planner"} <= names
    assert {"execute_tool get_destination", "execute_tool get_climate"} <= names
    # every model call: which model, and what it cost in tokens
    chats = [s for s in spans if s["name"] == "chat qwen2.5:7b"]
    assert len(chats) >= 5
    for chat in chats:
        assert chat["attributes"]["gen_ai.request.model"] == "qwen2.5:7b"
        assert chat["attributes"]["gen_ai.usage.input_tokens"] > 0
        assert chat["attributes"]["gen_ai.usage.output_tokens"] > 0
    # the tool server's own span sits under the orchestrator's call of that tool
    climate = next(s for s in spans if s["service"] == "mcp-server" and s["name"] == "tools/call get_climate")
    parent = by_id[climate["parent_span_id"]]
    assert parent["service"] == "orchestrator" and "get_climate" in parent["name"]
    assert climate["attributes"]["travel.months"] == 1  # a count; what was asked stays out by default
    # prompts and replies stay out of telemetry by default
    assert not any("Lisbon in May" in str(s["attributes"]) for s in spans if s["service"] == "orchestrator")


def test_metrics_for_model_and_tool_calls(traced_run, dashboard):
    assert traced_run("--prompt", TRIP).returncode == 0

    wanted = {
        ("orchestrator", "gen_ai.client.token.usage"),
        ("orchestrator", "gen_ai.client.operation.duration"),
        ("mcp-server", "mcp_server.tool.calls"),
        ("mcp-server", "mcp_server.tool.duration"),
    }
    dashboard.wait_for(lambda t: wanted <= {(m["service"], m["name"]) for m in t["metrics"]}, 15)


def test_logs_carry_the_turns_trace_id(traced_run, dashboard):
    run = traced_run("--prompt", TRIP, "--json")
    trace_id = json.loads(run.stdout)["trace_id"]

    def both_logged(telemetry: dict) -> bool:
        mine = [(e["service"], str(e["body"])) for e in telemetry["logs"] if e["trace_id"] == trace_id]
        tool_log = any(service == "mcp-server" and body.startswith("get_climate") for service, body in mine)
        turn_log = any(service == "orchestrator" and body.startswith("turn finished") for service, body in mine)
        return tool_log and turn_log

    dashboard.wait_for(both_logged, 15)


def test_http_protobuf_to_the_http_port(traced_run, dashboard):
    run = traced_run("--prompt", TRIP, "--json", **otel_env(dashboard, protocol="http/protobuf"))
    assert run.returncode == 0, run.stderr
    spans = spans_of(dashboard, json.loads(run.stdout)["trace_id"], {"orchestrator"})
    assert any(s["name"] == "travel_plan" for s in spans)


def test_a_wrong_api_key_is_refused_and_reported_once(traced_run, dashboard):
    run = traced_run("--prompt", TRIP, "--json", OTEL_EXPORTER_OTLP_HEADERS="x-otlp-api-key=wrong")
    assert run.returncode == 0, run.stderr  # the answer is unaffected
    warnings = [line for line in run.stderr.splitlines() if "telemetry export" in line]
    assert len(warnings) == 1 and "OTLP_API_KEY" in warnings[0], run.stderr
    telemetry = dashboard.telemetry()
    assert telemetry["rejected"] > 0
    assert not [s for s in telemetry["spans"] if s["service"] == "orchestrator"]


def test_dashboard_down_costs_one_line_and_little_time(traced_run):
    started = time.monotonic()
    baseline = traced_run("--prompt", TRIP, OTEL_EXPORTER_OTLP_ENDPOINT="")
    baseline_s = time.monotonic() - started
    started = time.monotonic()
    run = traced_run("--prompt", TRIP, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    down_s = time.monotonic() - started
    assert run.returncode == 0 and run.stdout == baseline.stdout  # the same plan
    assert len([line for line in run.stderr.splitlines() if "telemetry export" in line]) <= 1
    assert down_s < baseline_s + 8, "export and the final flush are bounded"


def test_the_terminal_shows_each_turns_trace(standin, traced_tools, dashboard, tmp_path):
    env = stack_env(standin, traced_tools, XDG_STATE_HOME=str(tmp_path), PROMPT_TOOLKIT_NO_CPR="1", NO_COLOR="1",
                    DASHBOARD_URL="http://127.0.0.1:18888/login?t=abc", **otel_env(dashboard))  # fmt: skip
    child = pexpect.spawn(sys.executable, [str(ROOT / "main.py")], env=env, cwd=str(tmp_path), encoding="utf-8",
                          timeout=60, dimensions=(50, 200))  # fmt: skip
    child.expect_exact("you>")
    child.sendline(TRIP)
    child.expect(r"trace ([0-9a-f]{32}): http://127\.0\.0\.1:18888/traces/detail/([0-9a-f]{32})")
    trace_id = child.match.group(1)
    assert child.match.group(2) == trace_id
    child.expect_exact("you>")
    child.sendline("/trace")
    child.expect_exact(f"trace {trace_id}")
    child.expect_exact("you>")
    child.sendcontrol("d")  # leaving flushes what is buffered
    child.expect(pexpect.EOF)
    assert spans_of(dashboard, trace_id, {"orchestrator"})


def test_the_tool_server_flushes_on_sigterm(standin, dashboard, tmp_path):
    port = free_port()
    env = {
        "MCP_HOST": "127.0.0.1",
        "MCP_PORT": str(port),
        **otel_env(dashboard),
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
    }  # fmt: skip  (metrics only leave at shutdown)
    with run_service("mcp-flush", ["-m", "mcp_server"], f"http://127.0.0.1:{port}/health", tmp_path, env) as tools:
        tools.url = f"http://127.0.0.1:{port}/mcp"
        dashboard.clear()
        run = subprocess.run([sys.executable, str(ROOT / "main.py"), "--prompt", TRIP], capture_output=True,
                             text=True, env=stack_env(standin, tools), cwd=tmp_path, timeout=120)  # fmt: skip
        assert run.returncode == 0
        assert tools.stop(signal.SIGTERM) < 8
    calls = [m for m in dashboard.telemetry()["metrics"] if m["name"] == "mcp_server.tool.calls"]
    assert calls, "metrics buffered in the tool server were flushed when it stopped"


def test_a_traceparent_http_header_is_honoured(traced_tools, dashboard):
    """A client that puts the W3C trace context only in the HTTP header, not in `_meta`."""
    import httpx

    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"Accept": "application/json, text/event-stream", "traceparent": f"00-{trace_id}-{parent_id}-01"}
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    url = traced_tools.url
    with httpx.Client(headers=headers, timeout=10) as client:
        session = client.post(url, json=rpc).headers.get("mcp-session-id")
        session_headers = {"mcp-session-id": session} if session else {}
        client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session_headers)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "get_destination", "arguments": {"city": "Accra"}}}  # fmt: skip
        assert client.post(url, json=call, headers=session_headers).status_code == 200

    def calls(telemetry: dict) -> list[dict]:
        return [
            s for s in telemetry["spans"] if s["trace_id"] == trace_id and s["name"] == "tools/call get_destination"
        ]

    (span,) = calls(dashboard.wait_for(calls, 15))
    assert span["parent_span_id"] == parent_id
    assert "travel.city" not in span["attributes"]


async def ask_the_tools(url: str) -> None:
    """Two calls whose arguments must not leave: one answered, one refused with a ToolError."""
    async with Client(url) as client:
        await client.call_tool("get_climate", {"city": "Tromsø", "month": 2})
        refused = await client.call_tool("get_destination", {"city": "Peking-Xq"}, raise_on_error=False)
        assert refused.is_error


def mcp_telemetry(dashboard, *, logs: int, service: str) -> tuple[list[dict], list[dict]]:
    """A tool server's two tools/call spans (and `logs` log records), once they have arrived. Each
    test's server has a service name of its own: another server's batch that arrives late (the
    module's shared one exports every few seconds) is not counted."""

    def mine(t: dict) -> tuple[list[dict], list[dict]]:
        spans = [s for s in t["spans"] if s["service"] == service and s["name"].startswith("tools/call")]
        return spans, [e for e in t["logs"] if e["service"] == service and "ms" in str(e["body"])]

    telemetry = dashboard.wait_for(lambda t: len(mine(t)[0]) >= 2 and len(mine(t)[1]) >= logs, 15)
    return mine(telemetry)


async def test_no_tool_argument_leaves_the_tool_server_by_default(dashboard, tmp_path):
    with tool_server(dashboard, tmp_path, OTEL_SERVICE_NAME="mcp-server-private") as tools:
        dashboard.clear()
        await ask_the_tools(tools.url)
        spans, logs = mcp_telemetry(dashboard, logs=2, service="mcp-server-private")
    everything = json.dumps(dashboard.wait_for(lambda t: True), ensure_ascii=False)
    for asked in ("Tromsø", "Troms", "Peking", '"month"', "travel.city", 'travel.month"'):
        assert asked not in everything, asked
    # what is left is still useful: which tool, how it went, how long
    assert sorted(str(e["body"]).split(":")[0] for e in logs) == ["get_climate", "get_destination"]
    refused = next(s for s in spans if s["name"] == "tools/call get_destination")
    assert refused["status"]["code"] == "error" and refused["status"]["message"] == "tool_error"
    assert [e["attributes"] for e in refused["events"] if e["name"] == "exception"] == [
        {"exception.type": "fastmcp.exceptions.ToolError"}
    ]


async def test_the_sensitive_data_switch_lets_tool_arguments_in(dashboard, tmp_path):
    with tool_server(dashboard, tmp_path, ENABLE_SENSITIVE_DATA="true", OTEL_SERVICE_NAME="mcp-server-open") as tools:
        dashboard.clear()
        await ask_the_tools(tools.url)
        spans, logs = mcp_telemetry(dashboard, logs=2, service="mcp-server-open")
    climate = next(s for s in spans if s["name"] == "tools/call get_climate")
    assert climate["attributes"]["travel.city"] == "Tromsø" and climate["attributes"]["travel.month"] == 2
    assert any("Peking-Xq" in str(e["body"]) for e in logs)


def test_the_sensitive_data_switch_puts_prompts_in(traced_run, dashboard):
    run = traced_run("--prompt", TRIP, "--json", ENABLE_SENSITIVE_DATA="true")
    spans = spans_of(dashboard, json.loads(run.stdout)["trace_id"], {"orchestrator"})
    assert any("Lisbon in May" in json.dumps(s["attributes"]) + json.dumps(s["events"]) for s in spans)


def test_sigterm_during_a_one_shot_plan_still_flushes_its_trace(traced_tools, dashboard, tmp_path):
    # `docker stop` of a running `--prompt`: the turn is cut short, its spans still reach the dashboard.
    with ollama_standin(tmp_path, "--models", "qwen2.5:7b", "--tokens-per-second", "5") as slow:
        dashboard.clear()
        env = stack_env(slow, traced_tools, **otel_env(dashboard))
        child = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--prompt", TRIP], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(6)  # well into the Researcher's slow reply
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=15) == 143
    dashboard.wait_for(lambda t: any(s["name"] == "travel_plan" for s in t["spans"]), 15)


def test_a_recovered_text_tool_call_is_marked_on_its_span(traced_run, dashboard):
    run = traced_run("--prompt", TRIP, "--json", "--model", "misbehave-textcalls")
    assert run.returncode == 0, run.stderr
    spans = spans_of(dashboard, json.loads(run.stdout)["trace_id"], {"orchestrator", "mcp-server"})
    marked = [s for s in spans if s["attributes"].get("travel.tool_calls_recovered")]
    assert marked, sorted({s["name"] for s in spans})
    assert {s["name"] for s in marked} <= {"chat misbehave-textcalls", "invoke_agent Researcher",
                                            "invoke_agent Weather", "invoke_agent Planner", "travel_plan"}  # fmt: skip
    # the tool calls made from text are real tool calls in the trace, answered by the tool server
    assert any(s["service"] == "mcp-server" and s["name"] == "tools/call get_destination" for s in spans)
