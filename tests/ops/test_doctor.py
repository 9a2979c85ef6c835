"""`main.py doctor` against real processes: the Ollama stand-in with scripted timings, the tool
server and the dashboard stand-in. Each failure a user can meet shows as FAIL with its fix."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from dashboard_standin.testing import run_process as run_dashboard
from service_processes import ROOT, free_port, ollama_standin, stack_env

from orchestrator.ops import doctor

# Scripted timings: 200 tokens/s after 0.05 s of prompt evaluation, on the "GPU".
FAST = ("--tokens-per-second", "200", "--first-token-delay", "0.05")
# A slow CPU box: first token after 1.2 s, then 4 tokens/s.
SLOW = ("--tokens-per-second", "4", "--first-token-delay", "1.2", "--processor", "cpu")


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    models = "qwen2.5:7b,phi4-mini,misbehave-notool"
    with ollama_standin(tmp_path_factory.mktemp("fast"), "--models", models, *FAST) as service:
        yield service


@pytest.fixture(scope="module")
def dashboard():
    with run_dashboard({"Dashboard__Otlp__AuthMode": "ApiKey", "Dashboard__Otlp__PrimaryApiKey": "k3y"}) as running:
        yield running


@pytest.fixture
def run_doctor(monkeypatch, tmp_path, capsys):
    """Run the command in-process, in a directory without .env, with exactly this environment."""

    def run(standin, tools, *args: str, **env: str | None) -> tuple[int, dict]:
        monkeypatch.chdir(tmp_path)
        for name in list(__import__("os").environ):
            if name.startswith(("OLLAMA_", "MCP_", "OTEL_", "DASHBOARD_")):
                monkeypatch.delenv(name)
        for name, value in stack_env(standin, tools, **env).items():
            if name.startswith(("OLLAMA_", "MCP_", "OTEL_", "DASHBOARD_")):
                monkeypatch.setenv(name, value)
        code = doctor.main(["--json", *args])
        return code, json.loads(capsys.readouterr().out)

    return run


def by_name(report: dict) -> dict[str, dict]:
    return {f"{c['service']} {c['name']}": c for c in report["checks"]}


def test_healthy_stack_passes_every_check_with_the_scripted_figures(run_doctor, fast, tools, dashboard):
    code, report = run_doctor(
        fast, tools,
        OTEL_EXPORTER_OTLP_ENDPOINT=dashboard.otlp_grpc_endpoint, OTEL_EXPORTER_OTLP_HEADERS="x-otlp-api-key=k3y",
        OLLAMA_EXTRA_MODELS="phi4-mini",
    )  # fmt: skip
    checks = by_name(report)
    assert code == 0 and report["ok"], report
    assert {c["status"] for c in report["checks"]} == {"PASS"}
    assert list(checks) == [
        "ollama reachable", "ollama model qwen2.5:7b", "ollama model phi4-mini", "ollama generation",
        "ollama first token", "ollama placement", "ollama speed", "mcp-server health", "mcp-server tools",
        "agents tool call", "dashboard telemetry",
    ]  # fmt: skip
    assert checks["ollama reachable"]["data"]["version"] == "0.12.6"
    # The stand-in paces 200 tokens/s after 0.05 s: the doctor reports what it was told.
    assert 170 <= checks["ollama speed"]["data"]["tokens_per_s"] <= 210
    assert 0.05 <= checks["ollama first token"]["data"]["first_token_s"] < 0.5
    assert checks["ollama placement"]["data"]["gpu_percent"] == 100
    assert checks["mcp-server tools"]["data"]["server"] == "travel-tools 0.1.0"
    assert len(checks["mcp-server tools"]["data"]["tools"]) == 6
    assert checks["agents tool call"]["data"]["called"] == ["get_destination"]


def test_slow_cpu_box_gets_warnings_with_fixes(run_doctor, tmp_path_factory, tools):
    with ollama_standin(tmp_path_factory.mktemp("slow"), "--models", "phi4-mini", *SLOW) as slow:
        code, report = run_doctor(slow, tools, "--expect-gpu", OLLAMA_MODEL="phi4-mini")
    checks = by_name(report)
    assert checks["ollama first token"]["status"] == "WARN"
    assert 1.2 <= checks["ollama first token"]["data"]["first_token_s"] < 2.0
    assert checks["ollama speed"]["status"] == "WARN"
    assert 3.0 <= checks["ollama speed"]["data"]["tokens_per_s"] <= 4.5
    assert "100% CPU" in checks["ollama placement"]["detail"]
    assert all(checks[name]["fix"] for name in ("ollama placement", "ollama first token", "ollama speed"))
    assert checks["dashboard telemetry"]["status"] == "WARN"  # export off: it says so
    # --expect-gpu: on a GPU server a CPU fallback is the failure to catch.
    assert code == 1 and checks["ollama placement"]["status"] == "FAIL"
    assert [c["name"] for c in report["checks"] if c["status"] == "FAIL"] == ["placement"]


def test_placement_finds_the_model_under_any_spelling_of_its_name(run_doctor, fast, tools):
    # /api/ps lists the short name whichever spelling the request used; Ollama names ignore case.
    for spelling in ("registry.ollama.ai/library/qwen2.5:7b", "library/Qwen2.5:7B"):
        _, report = run_doctor(fast, tools, OLLAMA_MODEL=spelling)
        placement = by_name(report)["ollama placement"]
        assert placement["status"] == "PASS" and "100% GPU" in placement["detail"], (spelling, placement)


def test_request_timeout_is_one_line_naming_the_setting(run_doctor, tmp_path_factory, tools):
    # A 7B model on a slow CPU: no reply within OLLAMA_REQUEST_TIMEOUT. The fix names the setting.
    with ollama_standin(tmp_path_factory.mktemp("slower"), "--models", "phi4-mini", *SLOW) as slow:
        code, report = run_doctor(slow, tools, OLLAMA_MODEL="phi4-mini", OLLAMA_REQUEST_TIMEOUT="0.4")
    generation = by_name(report)["ollama generation"]
    assert code == 1 and generation["status"] == "FAIL"
    assert "OLLAMA_REQUEST_TIMEOUT (0.4 s)" in generation["detail"], generation
    assert "raise OLLAMA_REQUEST_TIMEOUT" in generation["fix"]


def test_warnings_alone_do_not_fail(run_doctor, fast, tools):
    code, report = run_doctor(fast, tools)  # telemetry export off: a WARN
    assert code == 0 and report["ok"] and report["summary"]["WARN"] == 1 and report["summary"]["FAIL"] == 0


def test_dead_ollama_fails_fast_and_skips_what_depends_on_it(run_doctor, tools):
    class Gone:
        url = f"http://127.0.0.1:{free_port()}"

    code, report = run_doctor(Gone, tools)
    checks = by_name(report)
    assert code == 1
    assert checks["ollama reachable"]["status"] == "FAIL"
    assert "cannot reach Ollama" in checks["ollama reachable"]["detail"]
    assert "OLLAMA_HOST" in checks["ollama reachable"]["fix"]
    assert checks["ollama generation"]["status"] == "SKIP"
    assert checks["mcp-server tools"]["status"] == "PASS"  # the rest is still checked


def test_missing_model_names_the_pull(run_doctor, fast, tools):
    code, report = run_doctor(fast, tools, OLLAMA_MODEL="llama3.2:3b", OLLAMA_EXTRA_MODELS="mistral-nemo")
    checks = by_name(report)
    assert code == 1
    assert checks["ollama model llama3.2:3b"]["status"] == "FAIL"
    assert "ollama pull llama3.2:3b" in checks["ollama model llama3.2:3b"]["fix"]
    assert checks["ollama model mistral-nemo"]["status"] == "WARN"  # an extra model is not required
    assert checks["ollama generation"]["status"] == "SKIP"


def test_model_that_calls_the_wrong_tool_fails_the_tool_call_check(run_doctor, fast, tools):
    code, report = run_doctor(fast, tools, OLLAMA_MODEL="misbehave-notool")
    check = by_name(report)["agents tool call"]
    assert code == 1 and check["status"] == "FAIL"
    assert "wrong tool" in check["detail"] and "fitness" in check["fix"]


def test_dead_tool_server_and_wrong_otlp_key(run_doctor, fast, tmp_path, dashboard):
    class Gone:
        url = f"http://127.0.0.1:{free_port()}/mcp"

    code, report = run_doctor(
        fast, Gone,
        OTEL_EXPORTER_OTLP_ENDPOINT=dashboard.otlp_grpc_endpoint, OTEL_EXPORTER_OTLP_HEADERS="x-otlp-api-key=wrong",
    )  # fmt: skip
    checks = by_name(report)
    assert code == 1
    assert checks["mcp-server health"]["status"] == "FAIL" and "MCP_SERVER_URL" in checks["mcp-server health"]["fix"]
    assert checks["mcp-server tools"]["status"] == "SKIP"
    assert checks["agents tool call"]["status"] == "SKIP"
    assert checks["ollama generation"]["status"] == "PASS"
    assert checks["dashboard telemetry"]["status"] == "FAIL"
    assert "refused the OTLP API key" in checks["dashboard telemetry"]["detail"]


def test_otlp_over_http_is_checked_too(run_doctor, fast, tools, dashboard):
    env = dict(OTEL_EXPORTER_OTLP_ENDPOINT=dashboard.otlp_http_endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    assert (
        by_name(run_doctor(fast, tools, OTEL_EXPORTER_OTLP_HEADERS="x-otlp-api-key=k3y", **env)[1])[
            "dashboard telemetry"
        ]["status"]
        == "PASS"
    )
    assert (
        by_name(run_doctor(fast, tools, OTEL_EXPORTER_OTLP_HEADERS="x-otlp-api-key=nope", **env)[1])[
            "dashboard telemetry"
        ]["status"]
        == "FAIL"
    )


def test_the_cli_prints_a_table_with_fixes_and_exits_nonzero(fast, tools, tmp_path):
    """Through main.py, as `docker compose run --rm orchestrator doctor` runs it."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "doctor"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=stack_env(fast, tools, OLLAMA_MODEL="gemma2:2b"),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    row = next(line for line in lines if line.startswith("ollama") and "model gemma2:2b" in line)
    assert "FAIL" in row and "not available" in row
    fix = lines[lines.index(row) + 1]
    assert fix.strip().startswith("fix: ") and "ollama pull gemma2:2b" in fix
    assert "FAIL" in lines[-1] and "Traceback" not in done.stderr


def test_bad_setting_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "doctor"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**stack_env(type("S", (), {"url": "http://x"}), type("T", (), {"url": "http://y/mcp"})),
             "OLLAMA_HOST": "ftp://nowhere"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "OLLAMA_HOST" in done.stderr


def test_run_local_uses_loopback_settings_and_its_doctor_passes(fast, tmp_path):
    """scripts/run-local.sh in the checkout, with its .env (whose telemetry address is the compose
    network's): telemetry is off with a notice, and `doctor` passes against an Ollama on loopback."""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("OLLAMA_", "MCP_", "OTEL_"))}
    env.update(OLLAMA_HOST=fast.url, MCP_PORT=str(free_port()))
    done = subprocess.run(["bash", "scripts/run-local.sh", "doctor", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: telemetry is off" in done.stderr
    checks = by_name(json.loads(done.stdout))
    assert checks["dashboard telemetry"]["status"] == "WARN"  # off, not a failing export to aspire-dashboard
    assert {name: c["status"] for name, c in checks.items() if c["status"] == "FAIL"} == {}
    assert checks["ollama model phi4-mini"]["status"] == "PASS"  # .env's model, the one default everywhere


def test_credentials_in_the_tool_server_url_stay_out_of_every_operator_report(fast, tools, tmp_path):
    """doctor (text and JSON), fitness (JSON) and benchmark (table and report file) show the tool
    server's address with its user:password masked, reachable or not."""
    secret_url = tools.url.replace("http://", "http://agent:s3cret-pw@")
    dead_url = "http://agent:s3cret-pw@127.0.0.1:1/mcp"
    runs = []
    for url in (secret_url, dead_url):
        env = stack_env(fast, tools, MCP_SERVER_URL=url, OLLAMA_MODEL="phi4-mini")
        for command in (["doctor"], ["doctor", "--json"], ["fitness", "--json"]):
            runs.append(subprocess.run([sys.executable, str(ROOT / "main.py"), *command], cwd=tmp_path, env=env,
                                       capture_output=True, text=True, timeout=300))  # fmt: skip
    env = stack_env(fast, tools, MCP_SERVER_URL=secret_url, OLLAMA_MODEL="phi4-mini")
    runs.append(subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "benchmark", "--sizes", "short", "--concurrency", "1",
         "--requests", "1", "--output", str(tmp_path / "bench")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    ))  # fmt: skip
    shown = "".join(run.stdout + run.stderr for run in runs)
    shown += "".join(path.read_text() for path in (tmp_path / "bench").glob("*.json"))
    assert "s3cret-pw" not in shown
    assert "http://***@127.0.0.1" in shown  # the address is still there to read, masked
