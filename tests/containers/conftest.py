"""The container tier: the real compose files, built images, a running stack.

Set-up (once per session) makes this machine able to run containers; see docker_host.py. Where it
cannot (no root, no Docker), the tier is skipped locally and fails under CI=true.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from containers.compose_stack import Stack, make_stack
from containers.docker_host import (
    ROOT,
    Image,
    Unavailable,
    build_offline,
    build_wheelhouse,
    ensure_base_image,
    ensure_compose,
    ensure_engine,
    image_exists,
    image_size_mb,
    log,
    stop_engine,
)
from service_processes import free_port

TAG = "test"
IMAGES = {
    "ORCHESTRATOR_IMAGE": Image("Dockerfile", f"offline-agents/orchestrator:{TAG}"),
    "MCP_SERVER_IMAGE": Image("mcp_server/Dockerfile", f"offline-agents/mcp-server:{TAG}"),
    # The two images that cannot be pulled here, replaced by stand-ins with the same interfaces.
    "OLLAMA_IMAGE": Image("tests/ollama_standin/Dockerfile", f"offline-agents/ollama-standin:{TAG}"),
    "DASHBOARD_IMAGE": Image("tests/dashboard_standin/Dockerfile", f"offline-agents/dashboard-standin:{TAG}"),
}


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@dataclass
class Host:
    """What the session set up: the env file every stack uses, and figures for the closing note."""

    env_file: Path
    env: dict[str, str]
    build_seconds: dict[str, float] = field(default_factory=dict)
    sizes_mb: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="session")
def container_host(tmp_path_factory) -> Host:
    cache = ROOT / ".cache" / "containers"
    cache.mkdir(parents=True, exist_ok=True)
    try:
        daemon = ensure_engine()
        ensure_compose(cache / "docker-config")
    except Unavailable as reason:
        if os.environ.get("CI"):
            pytest.fail(f"the container tier must run in CI: {reason}")
        pytest.skip(f"container tier skipped: {reason}")
    env = read_env(ROOT / ".env")
    # .env pins the base by tag and registry digest; the base made here (no registry) has the tag only.
    python_image = env["PYTHON_IMAGE"] = env["PYTHON_IMAGE"].partition("@")[0]
    ensure_base_image(python_image, cache)
    build_wheelhouse()
    host = Host(env_file=tmp_path_factory.mktemp("compose") / "test.env", env=env)
    for variable, image in IMAGES.items():
        host.build_seconds[image.tag] = build_offline(image, python_image)
        host.sizes_mb[image.tag] = image_size_mb(image.tag)
        env[variable] = image.tag
    host.sizes_mb["base " + python_image] = image_size_mb(python_image)
    env.update(
        DASHBOARD_TOKEN=secrets.token_hex(8),
        OTLP_API_KEY=secrets.token_hex(8),
        DASHBOARD_PORT=str(free_port()),
        OLLAMA_MODEL="phi4-mini",  # the stand-in's catalog has it (tools capable), as the real library does
        WHEELS="offline",
    )
    host.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    (cache / "figures.json").write_text(json.dumps({"build_s": host.build_seconds, "size_mb": host.sizes_mb}))
    log(f"images: {', '.join(f'{k} {v:.0f} MB' for k, v in host.sizes_mb.items())}")
    yield host
    stop_engine(daemon)


@pytest.fixture(scope="module")
def stack(container_host) -> Stack:
    """The CPU profile, up and healthy, for the tests of one module."""
    stack = make_stack(container_host.env_file, files=["docker-compose.yml"], profiles=["cpu"])
    seconds = stack.up()
    log(f"{stack.project}: up --wait took {seconds:.1f} s")
    yield stack
    log(f"{stack.project}: down took {stack.down(volumes=True):.1f} s")


@pytest.fixture(scope="session")
def image_tags(container_host) -> dict[str, str]:
    return {name: image.tag for name, image in IMAGES.items() if image_exists(image.tag)}
