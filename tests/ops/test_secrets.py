"""`main.py secrets DIR` (compose's secrets job) and the services reading what it makes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def secrets(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DASHBOARD_TOKEN", "OTLP_API_KEY", "DASHBOARD_URL")}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "secrets", str(directory)],
                          capture_output=True, text=True, env={**environ, **env}, timeout=60)  # fmt: skip


def test_first_run_makes_them_later_runs_keep_them_and_env_wins(tmp_path):
    first = secrets(tmp_path, DASHBOARD_URL="http://127.0.0.1:18888")
    assert first.returncode == 0, first.stderr
    token = (tmp_path / "dashboard-token").read_text().strip()
    key = (tmp_path / "otlp-api-key").read_text().strip()
    assert len(token) == len(key) == 32 and token != key
    assert "dashboard-token made, otlp-api-key made" in first.stdout
    assert f"dashboard login: http://127.0.0.1:18888/login?t={token}" in first.stdout
    config = json.loads((tmp_path / "dashboard.json").read_text())["Dashboard"]
    assert config["Frontend"] == {"AuthMode": "BrowserToken", "BrowserToken": token}
    assert config["Otlp"] == {"AuthMode": "ApiKey", "PrimaryApiKey": key}
    for name in ("dashboard-token", "otlp-api-key", "dashboard.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o440, name  # owner and group only

    again = secrets(tmp_path)
    assert "dashboard-token kept, otlp-api-key kept" in again.stdout
    assert (tmp_path / "dashboard-token").read_text().strip() == token

    given = secrets(tmp_path, OTLP_API_KEY="site-chosen-key-1")
    assert "otlp-api-key from .env" in given.stdout
    assert (tmp_path / "otlp-api-key").read_text().strip() == "site-chosen-key-1"
    assert json.loads((tmp_path / "dashboard.json").read_text())["Dashboard"]["Otlp"]["PrimaryApiKey"] == (
        "site-chosen-key-1"
    )


@pytest.mark.parametrize("value", ["short", "has space in it", "a,b,c,d,e,f,g"])
def test_an_unusable_value_in_env_is_one_line_and_changes_nothing(tmp_path, value):
    secrets(tmp_path)
    before = (tmp_path / "otlp-api-key").read_text()
    done = secrets(tmp_path, OTLP_API_KEY=value)
    assert done.returncode == 2
    assert done.stderr.startswith("error: OTLP_API_KEY in .env is not usable") and done.stderr.count("\n") == 1
    assert value not in done.stderr  # never repeat a secret
    assert (tmp_path / "otlp-api-key").read_text() == before


def test_a_damaged_kept_value_is_remade(tmp_path):
    secrets(tmp_path)
    target = tmp_path / "dashboard-token"
    target.chmod(0o600)
    target.write_text("\n")
    done = secrets(tmp_path)
    assert "dashboard-token remade (the kept one was damaged)" in done.stdout
    assert len(target.read_text().strip()) == 32


def test_a_volume_it_cannot_write_is_one_line_with_the_fix(tmp_path):
    (tmp_path / "dashboard-token").mkdir()  # what the job cannot replace (as root too, unlike a mode)
    done = secrets(tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: cannot ")
    assert "docker volume rm offline-agents_secrets" in done.stderr


def test_a_missing_directory_names_the_mount(tmp_path):
    done = secrets(tmp_path / "nowhere")
    assert done.returncode == 2 and "mount the secrets volume there" in done.stderr


# --- the readers: the orchestrator's settings ------------------------------------------------------


@pytest.fixture
def clean(monkeypatch, tmp_path):
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP_API_KEY_FILE", "DASHBOARD_URL",
                 "DASHBOARD_TOKEN_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_orchestrator_sends_the_key_and_prints_the_login_from_the_files(clean, monkeypatch, tmp_path):
    (tmp_path / "s").mkdir()
    secrets(tmp_path / "s")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://aspire-dashboard:18889")
    monkeypatch.setenv("OTLP_API_KEY_FILE", str(tmp_path / "s" / "otlp-api-key"))
    monkeypatch.setenv("DASHBOARD_URL", "http://127.0.0.1:18888")
    monkeypatch.setenv("DASHBOARD_TOKEN_FILE", str(tmp_path / "s" / "dashboard-token"))
    settings = load_settings()
    key = (tmp_path / "s" / "otlp-api-key").read_text().strip()
    token = (tmp_path / "s" / "dashboard-token").read_text().strip()
    assert settings.otel_exporter_otlp_headers == f"x-otlp-api-key={key}"
    assert settings.dashboard_url == f"http://127.0.0.1:18888/login?t={token}"
    assert settings.warnings == []


def test_unreadable_files_turn_export_off_with_one_warning_and_the_planner_still_starts(clean, monkeypatch, tmp_path):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://aspire-dashboard:18889")
    monkeypatch.setenv("OTLP_API_KEY_FILE", str(tmp_path / "missing-key"))
    monkeypatch.setenv("DASHBOARD_URL", "http://127.0.0.1:18888")
    monkeypatch.setenv("DASHBOARD_TOKEN_FILE", str(tmp_path))  # a directory: cannot be read as a file
    settings = load_settings()
    assert settings.otel_exporter_otlp_endpoint is None  # export off, not a refused key on every batch
    assert settings.dashboard_url == "http://127.0.0.1:18888"
    first, second = settings.warnings
    assert first.startswith("telemetry export is off: OTLP_API_KEY_FILE") and "does not exist" in first
    assert "docker compose up" in first
    assert (
        "DASHBOARD_TOKEN_FILE" in second and "cannot be read" in second and "docker compose run --rm secrets" in second
    )


def test_the_tool_server_reads_the_key_file_or_warns_and_serves_without_export(tmp_path):
    probe = (
        "import os, sys\n"
        "from mcp_server import telemetry\n"
        "stop = telemetry.configure()\n"
        "print('HEADERS=' + os.environ.get('OTEL_EXPORTER_OTLP_HEADERS', ''))\n"
        "stop()\n"
    )
    (tmp_path / "key").write_text("k3y-from-volume\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
    ok = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                        env={**base, "OTLP_API_KEY_FILE": str(tmp_path / "key")})  # fmt: skip
    assert "HEADERS=x-otlp-api-key=k3y-from-volume" in ok.stdout, ok.stderr
    broken = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            env={**base, "OTLP_API_KEY_FILE": str(tmp_path / "nope")})  # fmt: skip
    assert broken.returncode == 0 and "HEADERS=\n" in broken.stdout
    (warning,) = [line for line in broken.stderr.splitlines() if line.strip()]
    assert (
        warning.startswith("warning: telemetry export is off: OTLP_API_KEY_FILE") and "Traceback" not in broken.stderr
    )


# --- Kubernetes: the Job creates the Secret through the API unless it exists -----------------------


class _FakeApi:
    """The two calls the Job makes, as the Kubernetes API answers them, with its token check."""

    def __init__(self, existing: dict | None = None, refuse: int | None = None) -> None:
        import http.server
        import threading

        api = self
        self.secrets = dict(existing or {})
        self.requests: list[tuple[str, str]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                api.requests.append(("GET", self.path))
                if self.headers.get("Authorization") != "Bearer sa-token":
                    return self._answer(401, {"kind": "Status", "code": 401})
                if refuse:
                    return self._answer(refuse, {"kind": "Status", "code": refuse})
                name = self.path.rsplit("/", 1)[1]
                if name in api.secrets:
                    return self._answer(200, api.secrets[name])
                return self._answer(404, {"kind": "Status", "code": 404})

            def do_POST(self):
                api.requests.append(("POST", self.path))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.secrets[body["metadata"]["name"]] = body
                return self._answer(201, body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def account(tmp_path):
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("offline-agents")
    return tmp_path


def test_the_job_creates_the_secret_once_with_the_three_files(account):
    from orchestrator.ops.secrets import ensure_in_cluster

    api = _FakeApi()
    assert ensure_in_cluster("offline-agents-secrets", api=api.url, account=account, environ={}) == "made"
    made = api.secrets["offline-agents-secrets"]
    files = made["stringData"]
    assert set(files) == {"dashboard-token", "otlp-api-key", "dashboard.json"}
    config = json.loads(files["dashboard.json"])["Dashboard"]
    assert config["Frontend"]["BrowserToken"] == files["dashboard-token"].strip()
    assert config["Otlp"]["PrimaryApiKey"] == files["otlp-api-key"].strip()
    assert api.requests == [("GET", "/api/v1/namespaces/offline-agents/secrets/offline-agents-secrets"),
                            ("POST", "/api/v1/namespaces/offline-agents/secrets")]  # fmt: skip
    # the next apply runs the Job again: the Secret, made or the site's own, is kept as it is
    assert ensure_in_cluster("offline-agents-secrets", api=api.url, account=account, environ={}) == "kept"
    assert api.secrets["offline-agents-secrets"] is made


def test_the_job_names_missing_rights_and_an_unreachable_api(account):
    from orchestrator.ops.secrets import SecretsError, ensure_in_cluster

    with pytest.raises(
        SecretsError, match="answered 403 to reading Secret s; the Job's ServiceAccount needs get and create"
    ):
        ensure_in_cluster("s", api=_FakeApi(refuse=403).url, account=account, environ={})
    with pytest.raises(SecretsError, match=r"cannot reach the Kubernetes API .* NetworkPolicy secrets-api-egress"):
        ensure_in_cluster("s", api="http://127.0.0.1:9", account=account, environ={})
    with pytest.raises(SecretsError, match="no service account token"):
        ensure_in_cluster("s", api="http://127.0.0.1:9", account=account / "nowhere", environ={})
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "secrets"], capture_output=True, text=True)
    assert done.returncode == 2 and "give a directory, or --kubernetes NAME" in done.stderr
