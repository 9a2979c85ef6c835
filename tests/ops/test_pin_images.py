"""scripts/pin-images.py against a registry that asks for tokens and serves indexes as Docker Hub does.

The registry stands in for docker.io and mcr.microsoft.com through --mirror, so the real .env and the
real kustomization are what gets pinned (in copies).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_registry import FakeRegistry
from service_processes import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pin-images.py"
KUSTOMIZATION = ROOT / "deploy" / "kubernetes" / "base" / "kustomization.yaml"
OFFLINE_COMPONENT = ROOT / "deploy" / "kubernetes" / "components" / "offline" / "kustomization.yaml"
PULLED = ("OLLAMA_IMAGE", "DASHBOARD_IMAGE", "PYTHON_IMAGE")


def env_value(text: str, name: str) -> str:
    (value,) = re.findall(rf"^{name}=(.*)$", text, flags=re.M)
    return value


def unpinned(value: str) -> str:
    return value.partition("@")[0]


@pytest.fixture
def files(tmp_path):
    """Copies of .env, the base's kustomization and the offline component, as they are now."""
    shutil.copy2(ROOT / ".env", tmp_path / ".env")
    shutil.copy2(KUSTOMIZATION, tmp_path / "kustomization.yaml")
    shutil.copy2(OFFLINE_COMPONENT, tmp_path / "offline.yaml")
    return tmp_path / ".env", tmp_path / "kustomization.yaml", tmp_path / "offline.yaml"


@pytest.fixture
def registry(files):
    """Serves each pulled image's tag as .env names it, as the two real registries would."""
    text = files[0].read_text()
    with FakeRegistry() as registry:
        for variable in PULLED:
            name, _, tag = unpinned(env_value(text, variable)).rpartition(":")
            repository = name.removeprefix("mcr.microsoft.com/")
            repository = repository if "/" in repository else f"library/{repository}"
            registry.content.add_small_image(repository, tag, label=variable)
        yield registry


def pin(files, registry: FakeRegistry | str, *args: str) -> subprocess.CompletedProcess[str]:
    """The script on the copies, asking REGISTRY (or a base URL) in place of docker.io and mcr.microsoft.com."""
    env_file, kustomization, offline = files
    base = registry if isinstance(registry, str) else f"http://{registry.host}"
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--env-file", str(env_file), "--kustomization", str(kustomization),
         "--offline-component", str(offline), "--mirror", f"docker.io={base}",
         "--mirror", f"mcr.microsoft.com={base}", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def served(registry, env_text: str, variable: str) -> str:
    name, _, tag = unpinned(env_value(env_text, variable)).rpartition(":")
    repository = name.removeprefix("mcr.microsoft.com/")
    return registry.content.tags[(repository if "/" in repository else f"library/{repository}", tag)]


# No digest of aspire-dashboard:9.5 could be read or checked where .env was written (no registry);
# .env says so above the line. Pinning it is `python3 scripts/pin-images.py` on a connected machine.
NOT_YET_PINNED = {"DASHBOARD_IMAGE"}


def test_the_shipped_env_pins_the_pulled_images_by_tag_and_digest():
    text = (ROOT / ".env").read_text()
    for variable in PULLED:
        value = env_value(text, variable)
        noted = re.search(rf"# Not pinned yet:.*\n(?:#.*\n)*{variable}=", text)
        if "@" not in value:  # allowed only where the file says so, and where it was not checked
            assert variable in NOT_YET_PINNED and noted, f"{variable} is not pinned: python3 scripts/pin-images.py"
        else:
            assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}", value) and not noted, variable


def test_refresh_writes_the_index_digest_into_env_and_the_kustomization(files, registry):
    env_file, kustomization, offline = files
    before_offline = offline.read_text()
    env_file.write_text(re.sub(r"@sha256:[0-9a-f]{64}", "", env_file.read_text()))  # as before pinning
    before_env, before_kustomization = env_file.read_text(), kustomization.read_text()

    done = pin(files, registry)

    assert done.returncode == 0, done.stderr
    after = env_file.read_text()
    for variable in PULLED:
        digest = served(registry, before_env, variable)  # the index, not one platform's manifest
        assert env_value(after, variable) == f"{env_value(before_env, variable)}@{digest}"
        assert f"{variable}={env_value(after, variable)}  (was not pinned)" in done.stdout
    # Nothing else in .env changes (comments, order, the other settings), but for the note that an
    # image is not pinned yet, which goes with the pin.
    assert re.sub(r"@sha256:[0-9a-f]{64}", "", after) == re.sub(
        r"# Not pinned yet:.*\n(?:#.*\n)*?(?=\w)", "", before_env
    )
    assert "Not pinned yet" not in after
    # The Kubernetes base runs the Ollama and dashboard images: the same digests there.
    pinned_k = kustomization.read_text()
    for variable, name in (
        ("OLLAMA_IMAGE", "ollama/ollama"),
        ("DASHBOARD_IMAGE", "mcr.microsoft.com/dotnet/aspire-dashboard"),
    ):
        entry = re.search(rf"- name: {re.escape(name)}\n((?:    .*\n)+)", pinned_k)
        assert f"digest: {served(registry, before_env, variable)}" in entry.group(1)
    assert re.sub(r"\n    digest: sha256:[0-9a-f]{64}", "", pinned_k) == re.sub(
        r"\n    digest: sha256:[0-9a-f]{64}", "", before_kustomization
    )
    assert offline.read_text() == before_offline  # same tags; it never carries digests
    # Anonymous pull tokens, asked for each repository; every manifest request lists the index types.
    heads = [headers for method, path, headers in registry.content.requests if "/manifests/" in path]
    assert heads and all("application/vnd.oci.image.index.v1+json" in h["Accept"] for h in heads)


def test_a_second_refresh_changes_nothing_and_check_passes(files, registry):
    assert pin(files, registry).returncode == 0
    before = [path.read_text() for path in files]
    again = pin(files, registry)
    assert again.returncode == 0 and "all pins current; nothing changed" in again.stderr
    assert [path.read_text() for path in files] == before
    check = pin(files, registry, "--check")
    assert check.returncode == 0 and check.stdout.count("(pinned, current)") == 3


def test_check_reports_a_moved_tag_and_changes_nothing(files, registry):
    assert pin(files, registry).returncode == 0
    env_file = files[0]
    text = env_file.read_text()
    name, _, tag = unpinned(env_value(text, "OLLAMA_IMAGE")).rpartition(":")
    moved = registry.content.add_small_image(name, tag, label="rebuilt")  # the tag now names new content
    check = pin(files, registry, "--check")
    assert check.returncode == 1
    assert (
        f"OLLAMA_IMAGE={name}:{tag}@{moved}  (was {env_value(text, 'OLLAMA_IMAGE').partition('@')[2]})" in check.stdout
    )
    assert check.stderr.strip().endswith(
        "error: OLLAMA_IMAGE not pinned to what the registry serves now: run python3 scripts/pin-images.py to refresh"
    )
    assert env_file.read_text() == text


def test_a_new_tag_in_env_moves_the_tag_and_digest_everywhere(files, registry):
    """The upgrade procedure: change the tag in .env, run the script; Kubernetes follows."""
    env_file, kustomization, offline = files
    new = registry.content.add_small_image("ollama/ollama", "0.13.0", label="new version")
    env_file.write_text(
        re.sub(r"^OLLAMA_IMAGE=.*$", "OLLAMA_IMAGE=ollama/ollama:0.13.0", env_file.read_text(), flags=re.M)
    )
    done = pin(files, registry)
    assert done.returncode == 0, done.stderr
    assert env_value(env_file.read_text(), "OLLAMA_IMAGE") == f"ollama/ollama:0.13.0@{new}"
    assert f'- name: ollama/ollama\n    newTag: "0.13.0"\n    digest: {new}\n' in kustomization.read_text()
    assert '- name: ollama/ollama\n    newTag: "0.13.0"\n  - name' in offline.read_text()


def test_a_registry_without_the_digest_header_is_read_from_the_body(files):
    text = files[0].read_text()
    with FakeRegistry(digest_header=False) as registry:
        for variable in PULLED:
            name, _, tag = unpinned(env_value(text, variable)).rpartition(":")
            repository = name.removeprefix("mcr.microsoft.com/")
            registry.content.add_small_image(repository if "/" in repository else f"library/{repository}", tag, "x")
        assert pin(files, registry).returncode == 0
        assert env_value(files[0].read_text(), "PYTHON_IMAGE").endswith(served(registry, text, "PYTHON_IMAGE"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ollama/ollama:0.99.9", "error: docker.io has no ollama/ollama:0.99.9: check the tag in .env"),
        ("ollama/ollama", "error: OLLAMA_IMAGE=ollama/ollama has no tag: write the version too (name:tag)"),
        ("Ollama/Ollama:0.12.6", "error: OLLAMA_IMAGE=Ollama/Ollama:0.12.6 is not an image reference"),
        ("", "error: OLLAMA_IMAGE is not set in"),
    ],
)
def test_a_bad_image_setting_is_one_line_and_nothing_changes(files, registry, value, message):
    env_file = files[0]
    env_file.write_text(re.sub(r"^OLLAMA_IMAGE=.*$", f"OLLAMA_IMAGE={value}", env_file.read_text(), flags=re.M))
    before = [path.read_text() for path in files]
    done = pin(files, registry)
    assert done.returncode == 1
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(message), line
    assert "Traceback" not in done.stderr
    assert [path.read_text() for path in files] == before


def test_an_unreachable_registry_names_the_machine_and_the_proxy(files):
    port = free_port()
    done = pin(files, f"http://127.0.0.1:{port}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: cannot reach 127.0.0.1:{port} (")
    assert "run this on a connected machine; behind a proxy set HTTPS_PROXY" in line


def test_quotes_comments_and_crlf_line_endings_are_kept(files, registry):
    env_file = files[0]
    text = original = env_file.read_text()
    python = unpinned(env_value(text, "PYTHON_IMAGE"))
    text = re.sub(r"^PYTHON_IMAGE=.*$", f'PYTHON_IMAGE="{python}"', text, flags=re.M)
    text = re.sub(
        r"^OLLAMA_IMAGE=(.*)$", lambda m: f"OLLAMA_IMAGE={unpinned(m[1])}  # the model server", text, flags=re.M
    )
    env_file.write_bytes(text.replace("\n", "\r\n").encode())
    done = pin(files, registry)
    assert done.returncode == 0, done.stderr
    after = env_file.read_bytes().decode()
    assert "\n" not in after.replace("\r\n", "")  # still CRLF throughout
    assert f'PYTHON_IMAGE="{python}@{served(registry, original, "PYTHON_IMAGE")}"\r\n' in after
    assert f"@{served(registry, original, 'OLLAMA_IMAGE')}  # the model server\r\n" in after


def test_a_kustomization_without_the_image_changes_no_file(files, registry):
    kustomization = files[1]
    kustomization.write_text(
        kustomization.read_text().replace("- name: ollama/ollama", "- name: docker.io/ollama/ollama")
    )
    before = [path.read_text() for path in files]
    done = pin(files, registry)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        f"error: {kustomization} has no images entry named ollama/ollama: name the image there as .env does"
        in done.stderr
    )
    assert [path.read_text() for path in files] == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--mirror", "docker.io=mirror.example.org"],
            "error: --mirror docker.io=mirror.example.org: write REGISTRY=URL",
        ),
        (["--ca-bundle", "/nonexistent/ca.pem"], "error: --ca-bundle /nonexistent/ca.pem does not exist"),
    ],
)
def test_a_bad_option_is_one_line(files, registry, args, message):
    done = pin(files, registry, *args)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert message in done.stderr


def test_a_ca_bundle_that_is_not_pem_is_one_line(files, registry, tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    done = pin(files, registry, "--ca-bundle", str(bad))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"error: {bad} is not a CA bundle" in done.stderr


def test_an_untrusted_certificate_names_the_ca_bundle(files, tmp_path):
    """A TLS-inspecting proxy's certificate: the fix is the CA bundle, not HTTPS_PROXY."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = pin(files, f"https://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: 127.0.0.1:{server.server_port}'s certificate is not trusted (")
    assert "put its CA in certs/ca-bundle.pem (or --ca-bundle)" in line


@pytest.mark.parametrize(
    ("value", "registry", "repository"),
    [
        ("python:3", "docker.io", "library/python"),
        ("docker.io/python:3.12", "docker.io", "library/python"),
        ("index.docker.io/ollama/ollama:0.12.6", "docker.io", "ollama/ollama"),
        ("python:3.13.9-slim-trixie", "docker.io", "library/python"),
        ("ollama/ollama:0.12.6@sha256:" + "a" * 64, "docker.io", "ollama/ollama"),
        ("mcr.microsoft.com/dotnet/aspire-dashboard:9.5", "mcr.microsoft.com", "dotnet/aspire-dashboard"),
        ("localhost:5000/team/ollama:1", "localhost:5000", "team/ollama"),
    ],
)
def test_references_are_read_as_docker_reads_them(value, registry, repository):
    module = _load_script()
    ref = module.parse("X", value)
    assert (ref.registry, ref.repository) == (registry, repository)
    assert module.base_url("docker.io", {})[0] == "https://registry-1.docker.io"
    assert module.base_url("localhost:5000", {})[0] == "http://localhost:5000"
    assert module.base_url("mirror.example:443", {}) == ("https://mirror.example:443", "")


def _load_script():
    import importlib.util

    sys.path.insert(0, str(SCRIPT.parent))  # as when it runs: bundle_format.py beside it
    spec = importlib.util.spec_from_file_location("pin_images", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pin_images"] = module
    spec.loader.exec_module(module)
    return module
