"""Air-gapped operation, proven: make a bundle, wipe the machine, load the bundle, plan offline.

The connected machine is faithful: the three images the stack pulls come from a registry (a fake one
on loopback, serving this session's stand-ins and base behind real indexes), .env names them by tag
only, scripts/pin-images.py pins them by digest, and compose pulls them by digest. So the bundle is
made from images pulled by digest, as on a user's machine, and the offline side gets them by tag.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time

import pytest
from containers.compose_stack import make_stack
from containers.docker_host import ROOT, log, sh
from fake_registry import FakeRegistry

pytestmark = pytest.mark.containers

IMAGE_VARIABLES = ("OLLAMA_IMAGE", "DASHBOARD_IMAGE", "PYTHON_IMAGE", "ORCHESTRATOR_IMAGE", "MCP_SERVER_IMAGE")
PULLED = {"OLLAMA_IMAGE": "ollama/ollama:0.12.6", "DASHBOARD_IMAGE": "dotnet/aspire-dashboard:9.5",
          "PYTHON_IMAGE": "library/python:3.13.9-slim-trixie"}  # fmt: skip


def script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=900, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def registry(container_host, tmp_path_factory):
    """The pulled images as their registries serve them; yields the .env values that name them by tag."""
    work = tmp_path_factory.mktemp("registry")
    started = time.monotonic()
    with FakeRegistry() as registry:
        tags = {}
        for variable, path in PULLED.items():
            repository, _, tag = path.partition(":")
            sh("docker", "save", "-o", str(work / f"{variable}.tar"), container_host.env[variable])
            registry.content.add_saved_image(repository, tag, work / f"{variable}.tar", work / variable)
            (work / f"{variable}.tar").unlink()
            tags[variable] = f"{registry.host}/{path}"
        log(f"fake registry {registry.host} serves {len(tags)} images ({time.monotonic() - started:.1f} s)")
        yield registry, tags
    _restore_session_tags(container_host, tags)
    for tag in tags.values():  # the session's own names stay
        subprocess.run(["docker", "rmi", tag], capture_output=True)


def _restore_session_tags(container_host, tags: dict[str, str]) -> None:
    """The offline test wipes the images; later tests need this session's names for them back."""
    for variable, tag in tags.items():
        session = container_host.env[variable]
        if subprocess.run(["docker", "image", "inspect", session], capture_output=True).returncode != 0:
            subprocess.run(["docker", "tag", tag, session], capture_output=True)


@pytest.fixture(scope="module")
def bundle(container_host, registry, tmp_path_factory):
    """A bundle made from a seeded test stack, the way an operator makes one on a connected machine."""
    fake, tags = registry
    connected = tmp_path_factory.mktemp("connected")
    env_file = connected / ".env"
    text = container_host.env_file.read_text()
    for variable, tag in tags.items():
        text = re.sub(rf"^{variable}=.*$", f"{variable}={tag}", text, flags=re.M)
    env_file.write_text(text)
    none = str(connected / "no-kubernetes.yaml")  # the Kubernetes files are tested elsewhere
    pinned = script("pin-images.py", "--env-file", str(env_file), "--kustomization", none,
                    "--offline-component", none)  # fmt: skip
    assert pinned.returncode == 0, pinned.stderr
    refs = dict(re.findall(r"^(\w+_IMAGE)=(.*)$", env_file.read_text(), flags=re.M))
    for variable, tag in tags.items():
        assert refs[variable] == f"{tag}@{served(fake, variable)}"
        assert subprocess.run(["docker", "image", "inspect", refs[variable]], capture_output=True).returncode != 0
    # As the shipped .env has it: the dashboard by tag only (pulled by tag; the bundle records its digest).
    env_file.write_text(env_file.read_text().replace(refs["DASHBOARD_IMAGE"], tags["DASHBOARD_IMAGE"]))

    stack = make_stack(env_file, files=["docker-compose.yml"], profiles=["cpu"])
    stack.up()  # pulls the pinned images by digest from the registry
    out = tmp_path_factory.mktemp("bundle") / "offline-agents-bundle"
    started = time.monotonic()
    made = script("make-bundle.py", "--out", str(out), "--env-file", stack.compose.env_file[0],
                  "--volume", f"{stack.project}_ollama-models", "--wheels-from", str(ROOT / "wheels"))  # fmt: skip
    log(f"make-bundle took {time.monotonic() - started:.1f} s: {made.stdout.strip()}")
    stack.down(volumes=True)
    assert made.returncode == 0, made.stderr
    assert (
        f"note: DASHBOARD_IMAGE={tags['DASHBOARD_IMAGE']} is not pinned by digest (python3 scripts/pin-images.py "
        f"pins it); the bundle records the digest this machine pulled, {served(fake, 'DASHBOARD_IMAGE')}"
    ) in made.stderr
    yield out, stack.env


def served(fake: FakeRegistry, variable: str) -> str:
    """The index digest the registry serves for the variable's tag."""
    repository, _, tag = PULLED[variable].partition(":")
    return fake.content.tags[(repository, tag)]


def test_compose_pulled_the_pinned_images_by_digest(bundle, registry):
    _, env = bundle
    fake, tags = registry
    for variable in tags:
        digest = served(fake, variable)
        assert env[variable] == (tags[variable] if variable == "DASHBOARD_IMAGE" else f"{tags[variable]}@{digest}")
        pulled = subprocess.run(["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", env[variable]],
                                capture_output=True, text=True)  # fmt: skip
        assert f"{tags[variable].rpartition(':')[0]}@{digest}" in json.loads(pulled.stdout), variable
    asked = {path for method, path, _ in fake.content.requests if "/manifests/sha256:" in path}
    assert any("/ollama/ollama/manifests/" in path for path in asked)


def test_the_manifest_lists_every_file_image_and_model(bundle, registry):
    out, env = bundle
    manifest = json.loads((out / "manifest.json").read_text())
    assert {v: i["pinned"] for v, i in manifest["images"].items()} == {v: env[v] for v in IMAGE_VARIABLES}
    for variable, image in manifest["images"].items():
        # Pulled by digest, saved by tag (docker load gives back tags only); the digest is recorded.
        tag = env[variable].partition("@")[0]
        digest = served(registry[0], variable) if variable in PULLED else None  # pinned or not, the registry's
        assert image["ref"] == tag and image["digest"] == digest, variable
        assert image["layers"] and all(layer.startswith("sha256:") for layer in image["layers"])
    (model,) = manifest["models"]
    assert model["name"] == "phi4-mini" and model["digest"].startswith("sha256:")
    assert model["size"] > 2e9  # the size Ollama's manifest declares: what the real model weighs
    paths = {f["path"] for f in manifest["files"]}
    assert {"images/images.tar", "models/ollama-models.tar", "source/offline-agents.tar"} <= paths
    assert any(p.startswith("wheels/") and p.endswith(".whl") for p in paths)
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in manifest["files"])


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "missing"])
def test_a_damaged_bundle_is_refused_before_anything_is_loaded(bundle, tmp_path, damage):
    out, _ = bundle
    target = out / "models" / "ollama-models.tar"
    backup = tmp_path / "backup.tar"
    shutil.copy2(target, backup)
    volume = f"oa-test-refused-{damage}"
    try:
        if damage == "corrupt":
            with target.open("r+b") as handle:  # one byte, in the middle
                handle.seek(target.stat().st_size // 2)
                byte = handle.read(1)
                handle.seek(-1, os.SEEK_CUR)
                handle.write(bytes([byte[0] ^ 0xFF]))
        elif damage == "truncated":
            with target.open("r+b") as handle:
                handle.truncate(target.stat().st_size - 100)
        else:
            target.unlink()
        refused = script("load-bundle.py", str(out), "--volume", volume)
        assert refused.returncode == 1
        (line,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert "models/ollama-models.tar" in line and damage in line, line
        exists = subprocess.run(["docker", "volume", "inspect", volume], capture_output=True)
        assert exists.returncode != 0, "nothing may be loaded from a damaged bundle"
    finally:
        shutil.copy2(backup, target)


def test_an_offline_machine_loads_the_bundle_and_plans(container_host, registry, bundle, tmp_path):
    """docs/air-gapped.md, step 2, as written: the bundle's own loader, its source and offline.env."""
    out, env = bundle
    # The offline machine: none of the stack's images, by any name, no model volume.
    names = {name for v in IMAGE_VARIABLES for name in (env[v], env[v].partition("@")[0], container_host.env[v])}
    for name in names:
        subprocess.run(["docker", "rmi", "-f", name], capture_output=True)
    for name in names:
        assert subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode != 0, name

    site = tmp_path / "offline-agents"
    site.mkdir()
    subprocess.run(["tar", "-C", str(site), "-xf", str(out / "source" / "offline-agents.tar")], check=True)
    shutil.copy2(out / "offline.env", site / ".env")
    offline_env = (site / ".env").read_text()
    assert "OFFLINE=1" in offline_env and "WHEELS=offline" in offline_env
    for variable in PULLED:  # by tag, what docker load gives back; a pinned digest kept as a comment
        tag, _, digest = env[variable].partition("@")
        assert f"\n{variable}={tag}\n" in offline_env
        assert (f"# {tag}@{digest} where it was pulled" in offline_env) == bool(digest), variable
    stack = make_stack(site / ".env", files=["docker-compose.yml"], profiles=["cpu"], context=site)
    volume = f"{stack.project}_ollama-models"

    def load() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(out / "load-bundle.py"), str(out), "--volume", volume],
                              capture_output=True, text=True, timeout=900, cwd=tmp_path)  # fmt: skip

    started = time.monotonic()
    loaded = load()
    log(f"load-bundle took {time.monotonic() - started:.1f} s")
    assert loaded.returncode == 0, loaded.stderr
    assert "phi4-mini:latest" in loaded.stdout
    for variable in PULLED:
        assert f"{env[variable].partition('@')[0]} (registry digest {served(registry[0], variable)})" in loaded.stdout
    again = load()  # harmless the second time
    assert again.returncode == 0 and "images already loaded" in again.stderr
    try:
        stack.up()
        seeded = stack.run("logs", "ollama-seed").stdout
        assert "all models present: phi4-mini" in seeded and "pulling" not in seeded
        code, report, stderr = stack.plan("3 days in Lisbon in May")
        assert code == 0, stderr
        assert "Day 3 (Lisbon)" in report["plan"]
        _import_gguf(stack)
    finally:
        stack.down(volumes=True)


def _import_gguf(stack) -> None:
    """A site that receives weights as a file: a tiny but valid GGUF goes in through the command."""
    gguf = ROOT / ".cache" / "containers" / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))  # version 3, no tensors, no metadata
    modelfile = gguf.with_name("Modelfile")
    modelfile.write_text("FROM ./somewhere-else.gguf\nSYSTEM You plan trips.\nPARAMETER temperature 0.1\n")
    command = " ".join(stack.compose.compose_command_property)
    site_script = str(stack.compose.context / "scripts" / "import-gguf.sh")
    done = subprocess.run(["bash", site_script, "tiny-import:latest", str(gguf),
                           str(modelfile)], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "COMPOSE": command})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tiny-import:latest" in done.stdout  # `ollama list` after the import
    not_gguf = gguf.with_name("not.gguf")
    not_gguf.write_bytes(b"PK\x03\x04 a zip, not weights")
    env = {**os.environ, "COMPOSE": command}
    refused = subprocess.run(["bash", site_script, "bad", str(not_gguf)],
                             capture_output=True, text=True, cwd=ROOT, env=env)  # fmt: skip
    assert refused.returncode == 2 and "is not a GGUF file" in refused.stderr
