"""Air-gapped operation, proven: make a bundle, wipe the machine, load the bundle, plan offline."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest
from containers.compose_stack import make_stack
from containers.docker_host import ROOT, log

pytestmark = pytest.mark.containers

IMAGE_VARIABLES = ("OLLAMA_IMAGE", "DASHBOARD_IMAGE", "PYTHON_IMAGE", "ORCHESTRATOR_IMAGE", "MCP_SERVER_IMAGE")


def script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=900, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def bundle(container_host, tmp_path_factory):
    """A bundle made from a seeded test stack, the way an operator makes one on a connected machine."""
    stack = make_stack(container_host.env_file, files=["docker-compose.yml"], profiles=["cpu"])
    stack.up()
    out = tmp_path_factory.mktemp("bundle") / "offline-agents-bundle"
    started = time.monotonic()
    made = script("make-bundle.py", "--out", str(out), "--env-file", stack.compose.env_file[0],
                  "--volume", f"{stack.project}_ollama-models", "--wheels-from", str(ROOT / "wheels"))  # fmt: skip
    log(f"make-bundle took {time.monotonic() - started:.1f} s: {made.stdout.strip()}")
    stack.down(volumes=True)
    assert made.returncode == 0, made.stderr
    yield out, stack.env


def test_the_manifest_lists_every_file_image_and_model(bundle):
    out, env = bundle
    manifest = json.loads((out / "manifest.json").read_text())
    assert {v: i["ref"] for v, i in manifest["images"].items()} == {v: env[v] for v in IMAGE_VARIABLES}
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


def test_an_offline_machine_loads_the_bundle_and_plans(bundle, tmp_path):
    """docs/air-gapped.md, step 2, as written: the bundle's own loader, its source and offline.env."""
    out, env = bundle
    # The offline machine: none of the stack's images, no model volume.
    for variable in IMAGE_VARIABLES:
        subprocess.run(["docker", "rmi", "-f", env[variable]], capture_output=True)
    for variable in IMAGE_VARIABLES:
        gone = subprocess.run(["docker", "image", "inspect", env[variable]], capture_output=True)
        assert gone.returncode != 0, env[variable]

    site = tmp_path / "offline-agents"
    site.mkdir()
    subprocess.run(["tar", "-C", str(site), "-xf", str(out / "source" / "offline-agents.tar")], check=True)
    shutil.copy2(out / "offline.env", site / ".env")
    assert "OFFLINE=1" in (site / ".env").read_text() and "WHEELS=offline" in (site / ".env").read_text()
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
