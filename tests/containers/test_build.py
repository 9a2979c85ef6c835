"""Building the project's images where PyPI is reached through a TLS-inspecting proxy, and where it
is not reached at all: the site's CA bundle goes to the build stage only; a failing install says
what to do in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from containers.docker_host import clean_copy

pytestmark = pytest.mark.containers

# This machine's bundle trusts the proxy in front of PyPI; a stock one (the image's) does not.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
HINT = "error: pip could not install the requirements: behind a TLS-inspecting proxy, put the site's CA bundle"


def _build(context: Path, tag: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "build", "--build-arg", "WHEELS=online", *extra, "-f", "mcp_server/Dockerfile", "-t", tag, "."],
        cwd=context, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip


def _reaches_pypi() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def copy(container_host, tmp_path) -> Path:
    target = tmp_path / "offline-agents"
    clean_copy(target)
    return target


def test_an_online_build_with_the_site_ca_bundle_works_and_leaves_it_out_of_the_image(copy, container_host):
    if not (HOST_CA.is_file() and _reaches_pypi()):
        pytest.skip("needs PyPI and the host's CA bundle")
    (copy / "certs" / "ca-bundle.pem").write_bytes(HOST_CA.read_bytes())
    tag = f"oa-ca-test:{uuid.uuid4().hex[:8]}"
    python = ("--build-arg", f"PYTHON_IMAGE={container_host.env['PYTHON_IMAGE']}")
    try:
        done = _build(copy, tag, *python)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        found = subprocess.run(["docker", "run", "--rm", "--entrypoint", "sh", tag, "-c",
                                "find / -xdev -name ca-bundle.pem; ls /tmp/certs 2>/dev/null; true"],
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert found.stdout.strip() == "", found.stdout  # used by pip in the build stage, not shipped
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_an_online_build_that_cannot_reach_pypi_says_what_to_do(copy, container_host):
    tag = f"oa-ca-test:{uuid.uuid4().hex[:8]}"
    python = ("--build-arg", f"PYTHON_IMAGE={container_host.env['PYTHON_IMAGE']}")
    done = _build(copy, tag, "--network", "none", "--force-rm", *python)
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    assert done.returncode != 0
    assert HINT in done.stdout + done.stderr
    assert (
        "certs/ca-bundle.pem (certs/README.md); with no network, build with WHEELS=offline" in done.stdout + done.stderr
    )


def _host_python_with_pip() -> Path | None:
    """The first python3 on PATH outside this virtual environment that has pip: the user's."""
    venv = Path(sys.prefix)
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(entry) / "python3"
        if not entry or not candidate.is_file() or Path(entry).resolve().is_relative_to(venv.resolve()):
            continue
        if subprocess.run([str(candidate), "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return candidate
    return None


def test_the_wheelhouse_downloads_with_the_users_pip(tmp_path):
    """`make wheels` with the pip a user has (pip 23 on this machine), not only uv's newest: the
    exported lists are complete, so pip resolves nothing (an extra's open range broke it)."""
    python = _host_python_with_pip()
    if python is None or not _reaches_pypi():
        pytest.skip("needs a python3 with pip outside the project's environment, and PyPI")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["bash", "scripts/build-wheelhouse.sh", str(tmp_path / "wheels")], cwd=root, capture_output=True, text=True,
        timeout=1800, env={**os.environ, "PATH": f"{python.parent}:/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wheels in" in done.stderr
    assert any(p.name.startswith("fastmcp_slim-") for p in (tmp_path / "wheels").iterdir())
