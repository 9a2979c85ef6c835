"""Compose and the manifests agree: setting names, values, image versions, ports, probes, limits.

Each check returns the differences it finds; the negative tests change one thing on one side and
expect the matching difference to be reported.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from kubernetes import parity
from kubernetes.manifests import DEPLOY, ROOT, find, read_env_file

VARIANTS = ["cpu", "gpu"]


@pytest.fixture(scope="module")
def compose() -> dict:
    # Both profiles: the cpu service `ollama` and the gpu service `ollama-gpu` side by side.
    return parity.compose_model("cpu", "gpu")


@pytest.fixture(scope="module")
def kustomization() -> dict:
    return yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())


def make_inputs(compose: dict, docs: list[dict], variant: str) -> parity.Inputs:
    dockerfile = (ROOT / "mcp_server" / "Dockerfile").read_text()
    return parity.Inputs(
        compose=copy.deepcopy(compose),
        env=read_env_file(ROOT / ".env"),
        docs=copy.deepcopy(docs),
        variant=variant,
        dockerfile_healthcheck=parity.parse_healthcheck(dockerfile),
        mcp_port=int(parity.dockerfile_env(dockerfile, "MCP_PORT")),
        seed_script=(ROOT / "scripts" / "seed-models.sh").read_text(),
        secret_names=parity.secret_names(parity.SECRET_NAMES_SOURCE.read_text()),
    )


@pytest.fixture
def inputs(compose, rendered):
    return {variant: make_inputs(compose, rendered.docs[variant], variant) for variant in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
def test_compose_and_kubernetes_agree(inputs, kustomization, variant):
    assert parity.all_checks(inputs[variant], kustomization) == []


def test_the_parity_inputs_are_what_they_claim(inputs):
    """Guard the guards: the parsed facts are the ones in the files, so the checks compare something."""
    cpu = inputs["cpu"]
    assert cpu.secret_names == {"DASHBOARD_TOKEN", "OTLP_API_KEY"}
    assert cpu.mcp_port == 8090
    assert cpu.dockerfile_healthcheck == {
        "interval": 5, "timeout": 3, "start-period": 20, "retries": 3, "cmd": cpu.dockerfile_healthcheck["cmd"],
    }  # fmt: skip
    assert "/health" in cpu.dockerfile_healthcheck["cmd"]
    assert cpu.service("ollama")["healthcheck"]["test"] == ["CMD", "ollama", "list"]
    assert parity.compose_env(cpu.service("secrets"))["OTLP_API_KEY"] == "{OTLP_API_KEY}"
    assert parity.compose_env(cpu.service("orchestrator"))["OTLP_API_KEY_FILE"] == "/secrets/otlp-api-key"
    assert parity.memory_bytes("12g") == parity.memory_bytes("12Gi") == 12 * 2**30
    assert parity.memory_bytes("512m") == parity.memory_bytes("512Mi")


def test_the_seeding_script_is_the_one_compose_runs():
    assert (DEPLOY / "base" / "seed-models.sh").read_text() == (ROOT / "scripts" / "seed-models.sh").read_text(), (
        "cp scripts/seed-models.sh deploy/kubernetes/base/seed-models.sh"
    )


# --- negative tests: each changes one side and expects the difference to be named ----------------


def _container(docs: list[dict], kind: str, name: str) -> dict:
    return find(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def test_a_changed_service_port_is_reported(inputs):
    i = inputs["cpu"]
    service = find(i.docs, "Service", "mcp-server")
    service["spec"]["ports"][0]["port"] = 8091
    assert any("Service mcp-server does not expose 8090" in p for p in parity.check_ports(i))


def test_a_changed_container_port_is_reported(inputs):
    i = inputs["cpu"]
    _container(i.docs, "Deployment", "ollama")["ports"][0]["containerPort"] = 11435
    assert any("Service ollama:11434 reaches Deployment/ollama on [11435]" in p for p in parity.check_ports(i))


def test_an_image_version_that_differs_from_env_is_reported(inputs, kustomization):
    i = inputs["gpu"]
    pinned = i.env["OLLAMA_IMAGE"]
    assert pinned.startswith("ollama/ollama:0.12.6@sha256:")
    i.env["OLLAMA_IMAGE"] = "ollama/ollama:0.13.0"
    problems = parity.check_images(i, kustomization)
    assert any(f"kustomization pins {pinned}, .env OLLAMA_IMAGE=ollama/ollama:0.13.0" in p for p in problems)
    assert any(f"Deployment/ollama runs {pinned}" in p for p in problems)


def test_a_digest_that_differs_from_env_is_reported(inputs, kustomization):
    """The same tag with another digest is other content: the two must agree on both."""
    i = inputs["cpu"]
    tag = i.env["OLLAMA_IMAGE"].partition("@")[0]
    i.env["OLLAMA_IMAGE"] = f"{tag}@sha256:{'0' * 64}"
    problems = parity.check_images(i, kustomization)
    assert any(f".env OLLAMA_IMAGE={tag}@sha256:{'0' * 64}" in p and "kustomization pins" in p for p in problems)


def test_a_setting_compose_gains_is_reported(inputs):
    i = inputs["cpu"]
    i.service("orchestrator")["environment"]["AGENT_TURN_TIMEOUT"] = "${AGENT_TURN_TIMEOUT:-900}"
    problems = parity.check_environment(i)
    assert any("Deployment/orchestrator" in p and "lacks ['AGENT_TURN_TIMEOUT']" in p for p in problems)
    assert any(
        "settings: ConfigMap" in p and "lacks ['AGENT_TURN_TIMEOUT']" in p for p in parity.check_settings_source(i)
    )


def test_a_setting_read_from_another_name_is_reported(inputs):
    i = inputs["gpu"]
    env = _container(i.docs, "Deployment", "ollama")["env"]
    (var,) = [v for v in env if v["name"] == "OLLAMA_NUM_PARALLEL"]
    var["valueFrom"]["configMapKeyRef"]["key"] = "CPU_OLLAMA_NUM_PARALLEL"
    assert parity.check_environment(i) == [
        "env: Deployment/ollama OLLAMA_NUM_PARALLEL='{CPU_OLLAMA_NUM_PARALLEL}', "
        "compose ollama-gpu OLLAMA_NUM_PARALLEL='{GPU_OLLAMA_NUM_PARALLEL}'"
    ]


def test_a_config_value_that_differs_from_env_is_reported(inputs):
    i = inputs["cpu"]
    i.env["OLLAMA_NUM_CTX"] = "16384"
    assert "settings: ConfigMap OLLAMA_NUM_CTX='8192', .env OLLAMA_NUM_CTX='16384'" in parity.check_settings_source(i)


def test_a_missing_configmap_key_is_reported(inputs):
    i = inputs["cpu"]
    del find(i.docs, "ConfigMap", parity.CONFIG_MAP, prefix=True)["data"]["OLLAMA_MAX_QUEUE"]
    problems = parity.check_settings_source(i)
    assert any("Deployment/ollama OLLAMA_MAX_QUEUE reads missing key OLLAMA_MAX_QUEUE" in p for p in problems)


def test_a_changed_probe_is_reported(inputs):
    i = inputs["cpu"]
    container = _container(i.docs, "Deployment", "ollama")
    container["readinessProbe"]["periodSeconds"] = 30
    container["livenessProbe"]["exec"]["command"] = ["ollama", "ps"]
    problems = parity.check_probes(i)
    assert "probes: Ollama readiness every 30 s x 5, compose every 5 s x 5" in problems
    assert any("livenessProbe runs ['ollama', 'ps']" in p for p in problems)


def test_a_changed_healthcheck_in_compose_is_reported(inputs):
    i = inputs["cpu"]
    i.service("ollama")["healthcheck"]["timeout"] = "10s"
    assert any("timeout differs from compose's 10s" in p for p in parity.check_probes(i))
    i.dockerfile_healthcheck["cmd"] = i.dockerfile_healthcheck["cmd"].replace("/health'", "/ready'")
    assert any("mcp-server readinessProbe asks /health:8090" in p for p in parity.check_probes(i))


def test_a_changed_memory_limit_is_reported(inputs):
    i = inputs["cpu"]
    i.env["CPU_OLLAMA_MEMORY"] = "24g"
    assert parity.check_resources(i) == ["resources: Deployment/ollama memory limit 12Gi, compose's ollama 24g"]


def test_a_gpu_on_the_cpu_variant_is_reported(inputs):
    i = inputs["cpu"]
    _container(i.docs, "Deployment", "ollama")["resources"]["limits"]["nvidia.com/gpu"] = 1
    assert "resources: Deployment/ollama asks for GPUs, compose's ollama has none" in parity.check_resources(i)


def test_a_drifted_seeding_script_is_reported(inputs):
    i = inputs["cpu"]
    i.seed_script += "\necho changed\n"
    assert any("differs from scripts/seed-models.sh" in p for p in parity.check_storage_and_process(i))


def test_a_moved_volume_and_writable_root_are_reported(inputs):
    i = inputs["cpu"]
    container = _container(i.docs, "Deployment", "orchestrator")
    container["volumeMounts"][0]["mountPath"] = "/home/app/history"
    container["securityContext"]["readOnlyRootFilesystem"] = False
    problems = parity.check_storage_and_process(i)
    assert (
        "storage: Deployment/orchestrator mounts nothing at /home/app/.local/state (compose's orchestrator does)"
        in (problems)
    )
    assert any("Deployment/orchestrator root filesystem is writable" in p for p in problems)
