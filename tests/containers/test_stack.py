"""The compose stack for real: built images, service DNS, the seeding job, isolation, recovery."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pexpect
import pytest
from containers.compose_stack import make_stack
from containers.docker_host import ROOT, log

pytestmark = pytest.mark.containers

TRIP = "Plan 3 days in Lisbon in May, I fly from London with 500 GBP"
EXPECTED = {"aspire-dashboard", "mcp-server", "ollama", "ollama-seed", "orchestrator", "secrets"}


def test_cpu_profile_comes_up_healthy(stack):
    states = stack.states()
    assert set(states) == EXPECTED
    assert states["ollama"] == "healthy"  # the real healthcheck: `ollama list` inside the image
    assert states["mcp-server"] == "healthy"
    assert states["ollama-seed"] == "exited" and states["secrets"] == "exited"  # the one-shot jobs finished
    assert states["aspire-dashboard"] == "running" and states["orchestrator"] == "running"


def test_one_shot_plan_over_service_dns_uses_the_tools(stack):
    code, report, stderr = stack.plan(TRIP)
    assert code == 0, stderr
    assert report["model"] == "phi4-mini"
    names = [call["name"] for call in report["tool_calls"]]
    assert {"get_destination", "get_climate", "convert_currency"} <= set(names)
    assert all(call["ok"] for call in report["tool_calls"])
    assert "(EUR)" in report["plan"] and "Day 3 (Lisbon)" in report["plan"]


def test_the_dashboard_receives_one_trace_per_turn_over_service_dns(stack):
    code, report, stderr = stack.plan("2 days in Rome in May")
    assert code == 0, stderr
    url = f"http://127.0.0.1:{stack.env['DASHBOARD_PORT']}/api/telemetry?t={stack.env['DASHBOARD_TOKEN']}"
    deadline = time.monotonic() + 20
    while True:  # the tool server exports in batches, a moment after the orchestrator has exited
        telemetry = httpx.get(url, timeout=10).json()
        spans = [s for s in telemetry["spans"] if s["trace_id"] == report["trace_id"]]
        if {"orchestrator", "mcp-server"} <= {s["service"] for s in spans} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    by_id = {s["span_id"]: s for s in spans}
    names = {s["name"] for s in spans}
    assert {"travel_plan", "invoke_agent Researcher", "invoke_agent Weather", "invoke_agent Planner"} <= names
    assert "chat phi4-mini" in names and "execute_tool get_climate" in names
    climate = next(s for s in spans if s["service"] == "mcp-server" and s["name"] == "tools/call get_climate")
    assert by_id[climate["parent_span_id"]]["service"] == "orchestrator"
    assert telemetry["rejected"] == 0  # the services send the API key the dashboard requires


def test_doctor_in_the_orchestrator_image_finds_the_stack_healthy(stack):
    """`docker compose run --rm orchestrator doctor`: every service over service DNS, the OTLP key."""
    done = stack.run("run", "--rm", "-T", "orchestrator", "doctor", "--json", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = {f"{c['service']} {c['name']}": c for c in json.loads(done.stdout)["checks"]}
    assert {name: c["status"] for name, c in checks.items() if c["status"] != "PASS"} == {}
    assert checks["ollama reachable"]["detail"].startswith("Ollama 0.12.6 at http://ollama:11434")
    assert checks["ollama placement"]["status"] == "PASS"  # the stand-in image reports GPU memory
    assert checks["dashboard telemetry"]["data"]["endpoint"] == "http://aspire-dashboard:18889"
    # and the tool-calling matrix for the configured model, through the same network
    fitness = stack.run("run", "--rm", "-T", "orchestrator", "fitness", check=False)
    assert fitness.returncode == 0, fitness.stdout + fitness.stderr
    assert "fit for the agents: phi4-mini" in fitness.stdout


def test_benchmark_from_the_orchestrator_image_writes_its_report(stack, tmp_path):
    """The image's read-only root: the report goes to a mounted directory (named as the host calls
    it), and the chart is drawn on the host: the image carries no plotting library."""
    tmp_path.chmod(0o777)
    done = stack.run(
        "run", "--rm", "-T", "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{tmp_path}:/out", "orchestrator",
        "benchmark", "--sizes", "short", "--concurrency", "1,2", "--requests", "2", "--output", "/out",
        "--shown-dir", str(tmp_path), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (report_file,) = tmp_path.glob("benchmark-phi4-mini-*.json")
    report = json.loads(report_file.read_text())
    assert {row["mode"] for row in report["results"]} == {"direct", "pipeline"}
    assert all(row["errors"] == 0 for row in report["results"])
    assert f"report: {report_file}" in done.stdout + done.stderr and "/out/" not in done.stdout + done.stderr
    assert f"benchmark chart {report_file}" in done.stderr  # where to draw it
    assert not report_file.with_suffix(".png").exists()
    drawn = subprocess.run([sys.executable, "main.py", "benchmark", "chart", str(report_file)], cwd=ROOT,
                           capture_output=True, text=True)  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr
    assert report_file.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seeding_is_idempotent(stack):
    again = stack.run("run", "--rm", "ollama-seed")
    assert "all models present: phi4-mini" in again.stdout
    assert "pulling" not in again.stdout


def test_offline_seeding_names_what_is_missing(stack):
    missing = stack.run(
        "run", "--rm", "-e", "OFFLINE=1", "-e", "OLLAMA_EXTRA_MODELS=llama3.2:3b,qwen2.5:7b", "ollama-seed",
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "OFFLINE=1 and the model volume lacks: llama3.2:3b qwen2.5:7b" in missing.stderr
    assert "pulling" not in missing.stdout


def test_the_running_stack_has_no_route_out(stack):
    probe = (
        "import socket, sys\n"
        "try:\n socket.getaddrinfo('pypi.org', 443); print('resolved')\n"
        "except OSError: print('no-dns')\n"
        "try:\n socket.create_connection((sys.argv[1], 443), timeout=3); print('connected')\n"
        "except OSError: print('no-route')\n"
    )
    pypi = socket.gethostbyname("pypi.org")  # a host this machine may reach; the stack must not
    inside = stack.run("exec", "-T", "mcp-server", "python", "-c", probe, pypi).stdout.split()
    assert inside == ["no-dns", "no-route"]
    # while service names resolve on the internal network
    seen = stack.run("exec", "-T", "mcp-server", "python", "-c", "import socket; print(socket.gethostbyname('ollama'))")
    assert seen.stdout.strip().count(".") == 3


def test_the_dashboard_publishing_network_has_no_route_out_either(stack):
    # The UI port needs a non-internal network; without IP masquerading it leads nowhere.
    probe = (
        "import socket, sys\n"
        "try:\n socket.create_connection((sys.argv[1], 443), timeout=3); print('connected')\n"
        "except OSError: print('no-route')\n"
    )
    out = stack.run("exec", "-T", "aspire-dashboard", "python", "-c", probe, socket.gethostbyname("pypi.org"))
    assert out.stdout.strip() == "no-route"


def test_the_seeding_network_is_the_only_way_out(stack):
    # The same probe from the seeding job's network resolves: proof the check above can fail.
    out = stack.run("run", "--rm", "--entrypoint", "python3", "ollama-seed", "-c",
                    "import socket; socket.getaddrinfo('pypi.org', 443); print('resolved')", check=False)  # fmt: skip
    assert "resolved" in out.stdout, out.stderr


def _session(stack) -> pexpect.spawn:
    """`docker compose run --rm orchestrator` in a pseudo-terminal, at its first prompt."""
    command = [*stack.compose.compose_command_property, "run", "--rm",
               "-e", "PROMPT_TOOLKIT_NO_CPR=1", "-e", "NO_COLOR=1", "orchestrator", "--no-standby"]  # fmt: skip
    child = pexpect.spawn(command[0], command[1:], cwd=str(ROOT), encoding="utf-8", timeout=120,
                          env=dict(os.environ), dimensions=(50, 200))  # fmt: skip
    child.expect_exact("you>")
    return child


def _ask(child: pexpect.spawn, text: str, timeout: float = 120) -> str:
    child.sendline(text)
    child.expect_exact("\r\n")
    child.expect_exact("you>", timeout=timeout)
    return child.before


def test_interactive_session_prints_the_dashboard_address_and_keeps_history(stack):
    child = _session(stack)
    banner = child.before
    assert "model phi4-mini" in banner and "6 tools from http://mcp-server:8090/mcp" in banner
    assert "/login?t=" in banner  # where to see the traces
    _ask(child, "/help")
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    # the line history lives in its volume, written by the non-root user, for the next session
    history = stack.run("run", "--rm", "-T", "--entrypoint", "cat", "orchestrator",
                        "/home/app/.local/state/offline-agents/history")  # fmt: skip
    assert "/help" in history.stdout


def test_tool_server_down_then_back(stack):
    child = _session(stack)
    assert "Day 3 (Lisbon)" in _ask(child, TRIP)
    stack.run("stop", "mcp-server")
    screen = _ask(child, TRIP)
    assert "error: the tool server at http://mcp-server:8090/mcp is not reachable" in screen
    stack.run("start", "mcp-server")
    _wait_healthy(stack, "mcp-server")
    assert "Day 3 (Lisbon)" in _ask(child, TRIP)
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_ollama_down_mid_session_is_waited_for(stack):
    child = _session(stack)
    stack.run("stop", "ollama")
    child.sendline(TRIP)
    child.expect_exact("waiting for Ollama at http://ollama:11434")
    stack.run("start", "ollama")
    child.expect_exact("you>", timeout=120)
    assert "Day 3 (Lisbon)" in child.before
    child.sendline("/quit")
    child.expect(pexpect.EOF)


@pytest.mark.parametrize("service", ["mcp-server", "ollama"])
def test_a_crashed_service_is_restarted_and_the_stack_recovers(stack, service):
    before = _restarts(stack, service)
    stack.crash(service)
    _wait_healthy(stack, service, restarted_from=before)
    code, report, stderr = stack.plan(TRIP)
    assert code == 0, stderr
    assert "Day 3 (Lisbon)" in report["plan"]


def _restarts(stack, service: str) -> int:
    container = stack.container(service)
    out = subprocess.run(["docker", "inspect", "--format", "{{.RestartCount}}", container],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.strip())


def _wait_healthy(stack, service: str, restarted_from: int | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        restarted = restarted_from is None or _restarts(stack, service) > restarted_from
        if restarted and stack.states().get(service) == "healthy":
            return
        time.sleep(1)
    raise AssertionError(f"{service} was not healthy again within {timeout} s: {stack.states()}")


def test_overlay_files_bring_up_the_same_stack(container_host):
    overlay = make_stack(container_host.env_file, files=["docker-compose.yml", "docker-compose.cpu.yml"], profiles=[])
    try:
        seconds = overlay.up()
        log(f"overlay stack up in {seconds:.1f} s")
        states = overlay.states()
        assert set(states) == EXPECTED and states["ollama"] == "healthy"
        code, report, stderr = overlay.plan("2 days in Oslo in June")
        assert code == 0, stderr
        assert "Day 2 (Oslo)" in report["plan"]
    finally:
        overlay.down(volumes=True)


def test_models_survive_down_and_up(container_host):
    first = make_stack(container_host.env_file, files=["docker-compose.yml"], profiles=["cpu"])
    try:
        first.up()
        seeded = first.run("logs", "ollama-seed").stdout
        assert "pulling phi4-mini" in seeded
        down_s = first.down()  # keeps the volume
        log(f"down took {down_s:.1f} s")
        up_s = first.up()
        log(f"second up took {up_s:.1f} s")
        again = first.run("logs", "ollama-seed").stdout
        assert "all models present: phi4-mini" in again and "pulling" not in again
    finally:
        first.down(volumes=True)


def test_bad_required_setting_fails_loudly(container_host, tmp_path):
    broken = tmp_path / "broken.env"
    broken.write_text(container_host.env_file.read_text().replace("OLLAMA_MODEL=", "OLLAMA_MODEL_UNSET="))
    done = subprocess.run(
        ["docker", "compose", "--env-file", str(broken), "--profile", "cpu", "config"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode != 0
    assert "set OLLAMA_MODEL in .env" in done.stderr


def test_python_runs_as_3_13_in_the_images(stack):
    version = stack.run("exec", "-T", "mcp-server", "python", "--version").stdout
    assert version.startswith("Python 3.13"), version
    user = stack.run("exec", "-T", "mcp-server", "id", "-u").stdout.strip()
    assert user == "10001"  # not root


def test_the_planner_up_started_is_reached_with_attach_and_enter(stack):
    """What the standby line says: `docker compose attach orchestrator`, then Enter. Last in this
    module: /quit ends that container (exit 0, so it stays stopped)."""
    logs = stack.run("logs", "--no-log-prefix", "orchestrator").stdout
    assert "planner ready: `docker compose attach orchestrator` and press Enter" in logs, logs
    assert "you>" not in logs and "cursor position" not in logs  # nothing drawn for nobody
    command = [*stack.compose.compose_command_property, "attach", "orchestrator"]
    child = pexpect.spawn(command[0], command[1:], cwd=str(ROOT), encoding="utf-8", timeout=120,
                          env=dict(os.environ), dimensions=(50, 200))  # fmt: skip
    child.send("\r")
    child.expect_exact("you>")
    assert "model phi4-mini" in child.before
    child.sendline("/quit")
    child.expect(pexpect.EOF)


def test_the_orchestrator_image_carries_no_plotting_library(container_host, stack):
    """About 160 MB of matplotlib and numpy stayed out: the charts are drawn on the host."""
    over = (
        container_host.sizes_mb[container_host.env["ORCHESTRATOR_IMAGE"]]
        - container_host.sizes_mb["base " + container_host.env["PYTHON_IMAGE"]]
    )
    assert over <= 150, f"{over:.0f} MB over the base (scripts/benchmark.py --image-size-only reports it)"
    probe = stack.run("run", "--rm", "-T", "--no-deps", "--entrypoint", "python", "orchestrator", "-c",
                      "import importlib.util as u; print(u.find_spec('matplotlib'), u.find_spec('numpy'))")  # fmt: skip
    assert probe.stdout.split() == ["None", "None"], probe.stdout + probe.stderr
