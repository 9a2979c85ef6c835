"""The bundle's files, checked without running them: compose configs, schemas, linters, pins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from containers.docker_host import ROOT

BIN = Path(sys.executable).parent
VARIANTS = {
    "profile cpu": (["docker-compose.yml"], ["cpu"]),
    "profile gpu": (["docker-compose.yml"], ["gpu"]),
    "overlay cpu": (["docker-compose.yml", "docker-compose.cpu.yml"], []),
    "overlay gpu": (["docker-compose.yml", "docker-compose.gpu.yml"], []),
}


@pytest.fixture(scope="module")
def env_file() -> Path:
    """The committed .env as it is: nothing to fill in before the first start."""
    return ROOT / ".env"


def compose_config(env_file: Path, files: list[str], profiles: list[str]) -> dict:
    command = [str(BIN / "docker-compose"), "--env-file", str(env_file)]
    for name in files:
        command += ["-f", name]
    for profile in profiles:
        command += ["--profile", profile]
    done = subprocess.run([*command, "config", "--format", "json"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def configs(env_file) -> dict[str, dict]:
    return {name: compose_config(env_file, *variant) for name, variant in VARIANTS.items()}


def ollama_of(config: dict) -> tuple[str, dict]:
    (name,) = [n for n in config["services"] if n.startswith("ollama") and n != "ollama-seed"]
    return name, config["services"][name]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_is_a_complete_stack(configs, variant):
    config = configs[variant]
    assert set(config["services"]) - {"ollama", "ollama-gpu"} == {
        "secrets", "ollama-seed", "mcp-server", "aspire-dashboard", "orchestrator",
    }  # fmt: skip
    _, ollama = ollama_of(config)
    # one address for Ollama in every variant
    assert "ollama" in ollama["networks"]["backend"]["aliases"]
    assert ollama["healthcheck"]["test"] == ["CMD", "ollama", "list"]
    assert ollama["environment"]["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert config["services"]["orchestrator"]["environment"]["OLLAMA_HOST"] == "http://ollama:11434"
    assert ollama["depends_on"]["ollama-seed"]["condition"] == "service_completed_successfully"
    assert ollama["volumes"][0]["target"] == "/root/.ollama"


@pytest.mark.parametrize("variant", ["profile gpu", "overlay gpu"])
def test_gpu_variants_reserve_nvidia_gpus_and_are_tuned_for_them(configs, variant):
    _, ollama = ollama_of(configs[variant])
    (device,) = ollama["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    env = ollama["environment"]
    assert env["OLLAMA_FLASH_ATTENTION"] == "1" and env["OLLAMA_KV_CACHE_TYPE"] == "q8_0"
    assert int(env["OLLAMA_NUM_PARALLEL"]) > 1


@pytest.mark.parametrize("variant", ["profile cpu", "overlay cpu"])
def test_cpu_variants_have_no_gpu_and_are_tuned_for_cpu(configs, variant):
    _, ollama = ollama_of(configs[variant])
    assert "reservations" not in ollama.get("deploy", {}).get("resources", {})
    assert ollama["environment"]["OLLAMA_NUM_PARALLEL"] == "1"
    assert ollama["environment"]["OLLAMA_FLASH_ATTENTION"] == "0"


def test_the_overlays_patch_the_one_ollama_service(configs):
    assert ollama_of(configs["overlay cpu"])[0] == "ollama"
    assert ollama_of(configs["overlay gpu"])[0] == "ollama"


def test_only_the_dashboard_ui_is_published_on_loopback(configs):
    for config in configs.values():
        published = {name: s["ports"] for name, s in config["services"].items() if s.get("ports")}
        assert list(published) == ["aspire-dashboard"]
        (port,) = published["aspire-dashboard"]
        assert port["host_ip"] == "127.0.0.1" and port["target"] == 18888


def test_running_services_sit_on_the_internal_network_only(configs):
    config = configs["profile cpu"]
    assert config["networks"]["backend"]["internal"] is True
    for name in ("ollama", "mcp-server", "orchestrator"):
        assert list(config["services"][name]["networks"]) == ["backend"], name
    assert list(config["services"]["ollama-seed"]["networks"]) == ["egress"]
    assert config["services"]["secrets"]["network_mode"] == "none"
    assert set(config["services"]["aspire-dashboard"]["networks"]) == {"backend", "ui"}
    assert config["networks"]["ui"]["driver_opts"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_secrets_come_from_the_volume_the_job_fills_first(configs, variant):
    services = configs[variant]["services"]
    job = services["secrets"]
    assert job["command"] == ["secrets", "/secrets"] and job["restart"] == "no"
    assert job["environment"]["DASHBOARD_TOKEN"] == "" and job["environment"]["OTLP_API_KEY"] == ""  # .env may set them
    assert [(v["source"], v["target"], v.get("read_only", False)) for v in job["volumes"]] == [
        ("secrets", "/secrets", False)
    ]
    dashboard = services["aspire-dashboard"]
    env = dashboard["environment"]
    assert env["Dashboard__Frontend__AuthMode"] == "BrowserToken" and env["Dashboard__Otlp__AuthMode"] == "ApiKey"
    assert env["ASPIRE_DASHBOARD_CONFIG_FILE_PATH"] == "/secrets/dashboard.json"
    assert "Dashboard__Frontend__BrowserToken" not in env and "Dashboard__Otlp__PrimaryApiKey" not in env
    assert dashboard["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
    for name in ("aspire-dashboard", "mcp-server", "orchestrator"):
        service = services[name]
        assert ("secrets", "/secrets", True) in [(v["source"], v["target"], v.get("read_only")) for v in
                                                 service["volumes"]], name  # fmt: skip
        assert service["group_add"] == ["10001"], name  # the job's files are 0440, group 10001
        assert "OTEL_EXPORTER_OTLP_HEADERS" not in service["environment"], name
    for name in ("mcp-server", "orchestrator"):
        assert services[name]["environment"]["OTLP_API_KEY_FILE"] == "/secrets/otlp-api-key"
    orchestrator = services["orchestrator"]
    assert orchestrator["environment"]["DASHBOARD_TOKEN_FILE"] == "/secrets/dashboard-token"
    assert orchestrator["environment"]["DASHBOARD_URL"] == "http://127.0.0.1:18888"
    assert orchestrator["command"] == ["--standby"]  # `up` draws no prompt nobody can type into


def test_the_project_images_are_built_never_pulled(configs):
    for config in configs.values():
        for name in ("secrets", "mcp-server", "orchestrator"):
            service = config["services"][name]
            assert service["pull_policy"] == "never" and service["build"], name


def test_every_image_is_pinned(configs):
    for config in configs.values():
        for name, service in config["services"].items():
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"


def test_long_running_services_restart_and_run_under_init(configs):
    for name, service in configs["profile cpu"]["services"].items():
        if name in ("ollama-seed", "secrets"):
            assert service["restart"] == "no"
            continue
        assert service["restart"] in ("unless-stopped", "on-failure"), name
        if name != "aspire-dashboard":  # distroless: Docker's init cannot be added usefully
            assert service.get("init") is True, name
        assert service["deploy"]["resources"]["limits"]["memory"], name


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_service_runs_without_privileges(configs, variant):
    # As the Kubernetes base does: capabilities dropped, no privilege escalation, read-only root.
    for name, service in configs[variant]["services"].items():
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("read_only") is True, name
        assert not service.get("privileged") and not service.get("cap_add"), name
        assert "/tmp" in service.get("tmpfs", []), name  # the scratch space each one needs
    dashboard = configs[variant]["services"]["aspire-dashboard"]
    assert "/home/app:uid=1654,gid=1654,mode=0700" in dashboard["tmpfs"]  # its user's login keys


def test_missing_required_setting_fails_loudly(tmp_path):
    broken = tmp_path / ".env"
    broken.write_text((ROOT / ".env").read_text().replace("\nOLLAMA_MODEL=", "\nOLLAMA_MODEL_UNSET="))
    done = subprocess.run(
        [str(BIN / "docker-compose"), "--env-file", str(broken), "--profile", "cpu", "config"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode != 0
    assert "required variable OLLAMA_MODEL is missing a value: set OLLAMA_MODEL in .env" in done.stderr


def test_compose_files_match_the_compose_spec(configs, tmp_path):
    rendered = []
    for name, config in configs.items():
        path = tmp_path / f"{name.replace(' ', '-')}.json"
        path.write_text(json.dumps(config))
        rendered.append(str(path))
    done = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml", *rendered],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfiles_pass_hadolint():
    dockerfiles = ["Dockerfile", "mcp_server/Dockerfile", "tests/ollama_standin/Dockerfile",
                   "tests/dashboard_standin/Dockerfile"]  # fmt: skip
    done = subprocess.run([str(BIN / "hadolint"), *dockerfiles], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_shell_scripts_pass_shellcheck():
    scripts = [*sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scripts").glob("*.sh")), ".ci/run"]
    done = subprocess.run([str(BIN / "shellcheck"), *scripts], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_requirements_match_the_lockfile(tmp_path):
    """requirements/*.txt are what the images install; they must be exported from uv.lock as it is."""
    done = subprocess.run(["bash", "scripts/export-requirements.sh"], capture_output=True, text=True, cwd=ROOT,
                          env={**__import__("os").environ, "UV_OFFLINE": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    diff = subprocess.run(["git", "diff", "--stat", "--", "requirements/"], capture_output=True, text=True, cwd=ROOT)
    assert diff.stdout == "", f"run scripts/export-requirements.sh after `uv lock`:\n{diff.stdout}"


def test_each_image_requirement_has_one_version():
    """The wheelhouse is downloaded on the host, whose Python decides the lock's python markers: a
    package pinned at one version for 3.11 and another for 3.13 would be missing from it."""
    for requirements in (ROOT / "requirements").glob("*.txt"):
        names = [line.split("==")[0] for line in requirements.read_text().splitlines() if "==" in line]
        twice = sorted({name for name in names if names.count(name) > 1})
        assert not twice, f"{requirements.name} pins {twice} at several versions; keep fork-strategy = 'fewest'"


@pytest.mark.parametrize(
    ("compose_version", "expected"),
    [
        ("v2.40.3", None),
        ("2.24.0", None),
        ("2.20.2", "Docker Compose 2.24 or newer is needed; found 2.20.2; install the Compose plugin"),
        (None, "`docker compose` is not available here; install the Compose plugin"),
    ],
)
def test_make_names_a_missing_or_old_compose_in_one_line(tmp_path, compose_version, expected):
    """What `make up-cpu` says first where Docker has no Compose v2 plugin (instead of docker's own
    "unknown flag: --rm"), from a stand-in `docker` that answers `compose version --short`."""
    fake = tmp_path / "docker"
    answer = f'echo "{compose_version}"' if compose_version else 'echo "unknown flag: --short" >&2; exit 1'
    fake.write_text(f'#!/bin/sh\nif [ "$1 $2" = "compose version" ]; then {answer}; fi\n')
    fake.chmod(0o755)
    done = subprocess.run(["bash", "scripts/check-compose.sh"], capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin"})  # fmt: skip
    if expected is None:
        assert done.returncode == 0 and done.stderr == ""
    else:
        assert done.returncode == 2 and expected in done.stderr and done.stderr.count("\n") == 1


def test_make_chat_with_the_stack_down_says_how_to_start_it_at_once(tmp_path):
    """Before: `make chat` started the tool server and the dashboard, waited 78 s for an Ollama that
    `run` never starts, and named neither the cause nor `make up-cpu`."""
    fake = tmp_path / "docker"  # answers like a Docker with Compose and nothing running
    fake.write_text('#!/bin/sh\nif [ "$1 $2" = "compose version" ]; then echo 2.40.0; fi\nexit 0\n')
    fake.chmod(0o755)
    done = subprocess.run(["make", "--no-print-directory", "chat"], capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "error: the stack is not running (no Ollama): start it with make up-cpu or make up-gpu" in done.stderr
    assert "run --rm orchestrator" not in done.stdout  # nothing was started


def test_make_up_runs_the_seeding_job_once(tmp_path, configs):
    """Before: `make up-cpu` ran the seeding job in the terminal (for its progress), then `up` ran it
    again, as compose reruns one-shot services. Now `up`'s start of it is told, and says so."""
    calls = tmp_path / "calls"
    fake = tmp_path / "docker"
    fake.write_text('#!/bin/sh\nif [ "$1 $2" = "compose version" ]; then echo 2.40.0; exit 0; fi\n'
                    f'echo "OLLAMA_SEEDED=${{OLLAMA_SEEDED:-}} $*" >> {calls}\n')  # fmt: skip
    fake.chmod(0o755)
    done = subprocess.run(["make", "--no-print-directory", "up-cpu"], capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "OLLAMA_SEEDED= compose run --rm ollama-seed",
        "OLLAMA_SEEDED=1 compose --profile cpu up -d --wait",
    ]
    for config in configs.values():  # a plain `up` checks
        assert config["services"]["ollama-seed"]["environment"]["OLLAMA_SEEDED"] == "0"
    skipped = subprocess.run(["bash", "scripts/seed-models.sh"], capture_output=True, text=True, cwd=ROOT,
                             env={"PATH": "/usr/bin:/bin", "OLLAMA_MODEL": "phi4-mini", "OLLAMA_SEEDED": "1",
                                  "OLLAMA_EXTRA_MODELS": "qwen2.5:7b,llama3.2:3b"})  # fmt: skip
    assert skipped.returncode == 0 and skipped.stderr == ""
    assert skipped.stdout == "models seeded just before this start (make seed): phi4-mini qwen2.5:7b llama3.2:3b\n"
