"""The command a new user types first, exactly as typed, on a clean copy of the repository:
`docker compose --profile cpu up -d --wait`, with the committed .env untouched (no secrets step).

The images the .env names cannot be pulled here, so this session's builds and stand-ins are tagged
with those names first (what `docker load` of a bundle, or a pull, gives a user), then untagged.
Where .env pins a registry digest (name:tag@sha256:...), no local image can answer to it (a digest
names the registry's content), so the tag alone is tagged and given in the command's environment.
The project name comes from COMPOSE_PROJECT_NAME, so a user's own `offline-agents` stack and its
model volume are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import httpx
import pytest
from containers.conftest import IMAGES, read_env
from containers.docker_host import ROOT, clean_copy, log, sh
from service_processes import free_port

pytestmark = pytest.mark.containers


@pytest.fixture
def literal(container_host, tmp_path):
    """A clean copy, the .env's image names pointing at this session's images, and the command's
    environment: nothing but the project name (and a free port if 18888 is taken)."""
    copy = tmp_path / "offline-agents"
    clean_copy(copy)
    committed = read_env(copy / ".env")
    assert committed["DASHBOARD_TOKEN"] == "" and committed["OTLP_API_KEY"] == ""  # nothing made beforehand
    env = {**os.environ, "COMPOSE_PROJECT_NAME": f"oa-literal-{uuid.uuid4().hex[:8]}"}
    for name in ("DASHBOARD_TOKEN", "OTLP_API_KEY", "COMPOSE_FILE", "COMPOSE_PROFILES", *IMAGES, "PYTHON_IMAGE"):
        env.pop(name, None)
    tagged = []
    for variable, image in IMAGES.items():
        name = committed[variable]
        if "@" in name:
            name = env[variable] = name.partition("@")[0]
        if subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode != 0:
            sh("docker", "tag", image.tag, name)
            tagged.append(name)
    if "@" in committed["PYTHON_IMAGE"]:
        env["PYTHON_IMAGE"] = container_host.env["PYTHON_IMAGE"]  # the base made here, by its tag
    port = int(committed["DASHBOARD_PORT"])
    if not _port_free(port):
        env["DASHBOARD_PORT"] = str(port := free_port())

    def compose(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "compose", *args], cwd=copy, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip

    yield compose, port, copy
    done = compose("--profile", "cpu", "down", "-v", "--timeout", "10")
    log(f"literal: down -v exited {done.returncode}")
    for name in tagged:
        subprocess.run(["docker", "rmi", name], capture_output=True)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_the_literal_up_on_a_clean_copy_comes_up_and_keeps_the_dashboard_closed(literal):
    compose, port, copy = literal
    done = compose("--profile", "cpu", "up", "-d", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (copy / ".env").read_text() == (ROOT / ".env").read_text()  # nothing written into a tracked file

    # The job made the secrets and its log has the login address; the orchestrator says how to reach it.
    made = compose("logs", "--no-log-prefix", "secrets").stdout
    assert "dashboard-token made, otlp-api-key made" in made, made
    login = next(line.split(": ", 1)[1] for line in made.splitlines() if line.startswith("dashboard login: "))
    assert login.startswith(f"http://127.0.0.1:{port}/login?t=")
    token = login.rsplit("t=", 1)[1]
    standby = compose("logs", "--no-log-prefix", "orchestrator").stdout
    assert "`docker compose attach orchestrator` and press Enter" in standby, standby
    assert "cursor position" not in standby and "> " not in standby  # no prompt drawn for nobody
    assert token in standby  # its line carries the login address too

    # The UI: nothing without the token, in with it.
    ui = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{ui}/api/telemetry", timeout=10).status_code == 401
    closed = httpx.get(f"{ui}/", timeout=10)
    assert closed.status_code == 302 and closed.headers["location"].startswith("/login")
    assert httpx.get(f"{ui}/api/telemetry?t=wrong-token", timeout=10).status_code == 401
    assert httpx.get(f"{ui}/api/telemetry?t={token}", timeout=10).status_code == 200

    # OTLP (reached only inside the stack's network): refused without the key, taken with it.
    probe = (
        "import sys, urllib.request, urllib.error\n"
        "key = open('/secrets/otlp-api-key').read().strip()\n"
        "def post(headers):\n"
        "    request = urllib.request.Request('http://aspire-dashboard:18890/v1/traces', data=b'', method='POST',\n"
        "        headers={'Content-Type': 'application/x-protobuf', **headers})\n"
        "    try:\n"
        "        return urllib.request.urlopen(request, timeout=10).status\n"
        "    except urllib.error.HTTPError as error:\n"
        "        return error.code\n"
        "print(post({}), post({'x-otlp-api-key': 'wrong-key-123'}), post({'x-otlp-api-key': key}))\n"
    )
    answers = compose("exec", "-T", "mcp-server", "python", "-c", probe)
    assert answers.stdout.split() == ["401", "401", "200"], answers.stdout + answers.stderr

    # The services send the key they read from the volume: the doctor's telemetry check passes.
    doctor = compose("run", "--rm", "-T", "orchestrator", "doctor", "--json")
    checks = {f"{c['service']} {c['name']}": c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["dashboard telemetry"]["status"] == "PASS", checks["dashboard telemetry"]

    # A restart keeps the secrets; `down` (without -v) keeps them too.
    assert compose("--profile", "cpu", "down", "--timeout", "10").returncode == 0
    again = compose("--profile", "cpu", "up", "-d", "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
    kept = compose("logs", "--no-log-prefix", "secrets").stdout
    assert "dashboard-token kept, otlp-api-key kept" in kept and token in kept, kept
