#!/usr/bin/env python3
"""Pin the images the stack pulls to the digests their registries serve now (run on a connected machine).

    python3 scripts/pin-images.py            # refresh: .env and the Kubernetes base get tag@sha256
    python3 scripts/pin-images.py --check    # change nothing; exit 1 when a pin differs from the registry

For OLLAMA_IMAGE, DASHBOARD_IMAGE and PYTHON_IMAGE in .env it asks the image's registry (Docker Hub,
mcr.microsoft.com, any registry speaking the OCI distribution API) which digest the tag names now: the
multi-platform index, so one pin serves amd64 and arm64 hosts. It writes `name:tag@sha256:...` into
.env, the same tag and digest into deploy/kubernetes/base/kustomization.yaml, and the tag into the
offline component (imported images keep no registry digest); nothing else in those files changes.
With a pin, `docker compose` and Kubernetes pull exactly that content, even if the tag is
moved later. Change the tag in .env first to move to a new version, then run this.
Needs only Python 3. Proxies: HTTPS_PROXY as usual; a TLS-inspecting proxy's CA: certs/ca-bundle.pem
(or --ca-bundle). A site whose machines reach only a pull-through mirror: --mirror docker.io=URL.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bundle_format import read_env  # beside this script

ROOT = Path(__file__).resolve().parents[1]
PULLED = ("OLLAMA_IMAGE", "DASHBOARD_IMAGE", "PYTHON_IMAGE")  # the project's own images are built, not pulled
KUBERNETES_RUNS = ("OLLAMA_IMAGE", "DASHBOARD_IMAGE")  # the Python base is only built from
KUSTOMIZATION = ROOT / "deploy" / "kubernetes" / "base" / "kustomization.yaml"
# Air-gapped clusters import the bundle's images into their nodes, which keeps tags but not the
# registry's digests: this component runs the pulled images by tag (kept in step here).
OFFLINE_COMPONENT = ROOT / "deploy" / "kubernetes" / "components" / "offline" / "kustomization.yaml"
DOCKER_HUB = "docker.io"
# What the registry may answer with, the multi-platform kinds first: Docker Hub answers a client that
# does not list them with one platform's manifest, whose digest would pin amd64 only.
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])  # fmt: skip
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# [registry/]path[:tag][@sha256:...], as Docker reads an image reference.
REFERENCE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+(?=/))?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class PinError(Exception):
    """One line for the operator: what failed, and what to do."""


@dataclass(frozen=True)
class Reference:
    registry: str  # docker.io, mcr.microsoft.com, localhost:5000
    repository: str  # library/python, dotnet/aspire-dashboard
    name: str  # as written: python, mcr.microsoft.com/dotnet/aspire-dashboard
    tag: str
    digest: str | None

    def pinned(self, digest: str) -> str:
        return f"{self.name}:{self.tag}@{digest}"


def parse(variable: str, value: str) -> Reference:
    match = REFERENCE.match(value)
    if not match:
        raise PinError(f"{variable}={value} is not an image reference: write name:tag, e.g. ollama/ollama:0.12.6")
    name, tag = match["name"], match["tag"]
    if not tag:
        raise PinError(f"{variable}={value} has no tag: write the version too (name:tag), then pin it")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"  # Docker Hub's official images
    return Reference(registry, repository, name, tag, match["digest"])


def base_url(registry: str, mirrors: dict[str, str]) -> tuple[str, str]:
    """(scheme://host, path prefix) to ask for a registry; loopback registries speak plain HTTP, as Docker allows."""
    if registry in mirrors:
        parts = urllib.parse.urlsplit(mirrors[registry])
        return f"{parts.scheme}://{parts.netloc}", parts.path.strip("/")
    if registry == DOCKER_HUB:
        return "https://registry-1.docker.io", ""
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    loopback = host in ("localhost", "[::1]") or host.startswith("127.")
    return f"{'http' if loopback else 'https'}://{registry}", ""


class Registry:
    """The two requests of the distribution API this needs: an anonymous pull token, and HEAD on a manifest."""

    def __init__(self, mirrors: dict[str, str], ca_bundle: Path | None, timeout: float = 30) -> None:
        self.mirrors = mirrors
        self.timeout = timeout
        try:
            self.context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
        except (ssl.SSLError, OSError) as error:
            raise PinError(f"{ca_bundle} is not a CA bundle ({error}): put the PEM certificates of the site's "
                           "proxy in it, or remove it") from None  # fmt: skip

    def digest(self, ref: Reference) -> str:
        origin, prefix = base_url(ref.registry, self.mirrors)
        path = "/".join(filter(None, [prefix, ref.repository]))
        url = f"{origin}/v2/{path}/manifests/{urllib.parse.quote(ref.tag)}"
        headers = {"Accept": ACCEPT}
        status, answer, _ = self._fetch("HEAD", url, headers, ref, allow_401=True)
        if status == 401:
            headers["Authorization"] = "Bearer " + self._token(answer.get("WWW-Authenticate", ""), path, ref)
            status, answer, _ = self._fetch("HEAD", url, headers, ref)
        digest = answer.get("Docker-Content-Digest", "")
        if not DIGEST.fullmatch(digest):  # a registry may leave the header out: the digest of the body is the same
            _, _, body = self._fetch("GET", url, headers, ref)
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return digest

    def _token(self, challenge: str, path: str, ref: Reference) -> str:
        scheme, _, params = challenge.partition(" ")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if scheme.lower() != "bearer" or "realm" not in fields:
            raise PinError(f"{ref.registry} asks for a login ({challenge or 'no challenge'}): "
                           f"only images anyone may pull can be pinned here; pin {ref.name} by hand")  # fmt: skip
        query = {"service": fields.get("service", ""), "scope": fields.get("scope", f"repository:{path}:pull")}
        url = fields["realm"] + "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        try:
            token = json.loads(self._fetch("GET", url, {}, ref)[2])
            return token.get("token") or token["access_token"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise PinError(f"{ref.registry}'s token service answered something that is not a token") from None

    def _fetch(self, method: str, url: str, headers: dict[str, str], ref: Reference, allow_401: bool = False):
        """(status, headers, body) of one request; every way it can fail becomes one PinError line."""
        host = urllib.parse.urlsplit(url).netloc
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            if error.code == 401 and allow_401:
                return error.code, error.headers, b""
            if error.code == 404:
                raise PinError(
                    f"{ref.registry} has no {ref.name}:{ref.tag}: check the tag in .env "
                    f"(the versions are listed on the registry's page for {ref.name})"
                ) from None
            if error.code in (401, 403):
                raise PinError(f"{ref.registry} refused to show {ref.name}:{ref.tag} (HTTP {error.code}): "
                               f"it is private or the name is wrong; pin it by hand") from None  # fmt: skip
            raise PinError(
                f"{ref.registry} answered HTTP {error.code} for {ref.name}:{ref.tag}; try again later"
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise PinError(
                    f"{host}'s certificate is not trusted ({reason.verify_message}): behind a "
                    "TLS-inspecting proxy, put its CA in certs/ca-bundle.pem (or --ca-bundle)"
                ) from None
            raise PinError(f"cannot reach {host} ({reason}): run this on a connected machine; behind a proxy "
                           "set HTTPS_PROXY; with a mirror, --mirror") from None  # fmt: skip


def read_exact(path: Path) -> str:
    """The file's text with its line endings as they are (CRLF stays CRLF)."""
    with path.open(newline="") as handle:
        return handle.read()


def write_exact(path: Path, text: str) -> None:
    """Write atomically, keeping the file's mode and line endings."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", newline="") as handle:
            handle.write(text)
        os.chmod(partial, path.stat().st_mode & 0o7777)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise PinError(f"cannot write {path} ({error.strerror or error}): check its permissions") from None


def pin_env(text: str, pins: dict[str, str]) -> str:
    """Give each variable its pinned value, keeping quotes and a trailing comment; drop a `# Not pinned
    yet:` note (and the comment lines that continue it) right above the line."""
    for variable, value in pins.items():
        line = re.compile(
            rf"^(?:# Not pinned yet:[^\n]*\n(?:#[^\n]*\n)*?)?(?P<key>{re.escape(variable)}[ \t]*=[ \t]*)"
            r"(?P<quote>['\"]?)[^\s'\"#]*(?P=quote)(?P<rest>[^\r\n]*)",
            re.M,
        )
        text = line.sub(lambda m, v=value: m["key"] + m["quote"] + v + m["quote"] + m["rest"], text)
    return text


def pin_kustomization(text: str, images: dict[str, tuple[str, str | None]]) -> tuple[str, list[str]]:
    """Set newTag (and digest, where given) in the `images:` entry of each name; entries without one lose it.
    Returns the new text and the names that have no entry."""
    lines = text.splitlines(keepends=True)
    missing = []
    for name, (tag, digest) in images.items():
        entry = re.compile(rf"^(\s*)- name: ['\"]?{re.escape(name)}['\"]?\s*(?:#.*)?$")
        starts = [n for n, line in enumerate(lines) if entry.match(line)]
        if not starts:
            missing.append(name)
            continue
        first = starts[0]
        indent = entry.match(lines[first]).group(1) + "  "
        newline = "\r\n" if lines[first].endswith("\r\n") else "\n"
        end = first + 1
        while end < len(lines) and lines[end].startswith(indent) and not lines[end][len(indent) :].startswith(" "):
            end += 1
        own = [line for line in lines[first + 1 : end] if not line[len(indent) :].startswith(("newTag:", "digest:"))]
        pinned = [f'{indent}newTag: "{tag}"{newline}', *([f"{indent}digest: {digest}{newline}"] if digest else [])]
        lines[first + 1 : end] = [*own, *pinned]
    return "".join(lines), missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a pin is not current")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", help="the settings file to pin (.env)")
    parser.add_argument("--kustomization", type=Path, default=KUSTOMIZATION,
                        help="the Kubernetes base's kustomization.yaml to keep in step")  # fmt: skip
    parser.add_argument("--offline-component", type=Path, default=OFFLINE_COMPONENT,
                        help="the offline component's kustomization.yaml (tags only) to keep in step")  # fmt: skip
    parser.add_argument(
        "--ca-bundle", type=Path, help="CA certificates to trust (default: certs/ca-bundle.pem if present)"
    )
    parser.add_argument(
        "--mirror", action="append", default=[], metavar="REGISTRY=URL",
        help="ask URL instead of REGISTRY (repeatable), e.g. docker.io=https://mirror.example.org",
    )  # fmt: skip
    args = parser.parse_args(argv)
    ca_bundle = args.ca_bundle or (ROOT / "certs" / "ca-bundle.pem")
    try:
        mirrors = {}
        for mirror in args.mirror:
            registry_name, _, url = mirror.partition("=")
            if not registry_name or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise PinError(f"--mirror {mirror}: write REGISTRY=URL, e.g. docker.io=https://mirror.example.org")
            mirrors[registry_name] = url
        if args.ca_bundle and not args.ca_bundle.is_file():
            raise PinError(f"--ca-bundle {args.ca_bundle} does not exist")
        if not args.env_file.is_file():
            raise PinError(f"{args.env_file} does not exist: run this in the repository, or name it with --env-file")
        env = read_env(args.env_file)
        refs = {}
        for variable in PULLED:
            if not env.get(variable):
                raise PinError(f"{variable} is not set in {args.env_file}")
            refs[variable] = parse(variable, env[variable])
        registry = Registry(mirrors, ca_bundle if ca_bundle.is_file() and ca_bundle.stat().st_size else None)
        current = {}
        for variable, ref in refs.items():
            print(f"asking {ref.registry} for {ref.name}:{ref.tag}", file=sys.stderr)
            current[variable] = registry.digest(ref)
    except PinError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    stale = []
    for variable, ref in refs.items():
        digest = current[variable]
        state = "pinned, current" if ref.digest == digest else f"was {ref.digest}" if ref.digest else "was not pinned"
        if ref.digest != digest:
            stale.append(variable)
        print(f"{variable}={ref.pinned(digest)}  ({state})")
    if args.check:
        if stale:
            print(f"error: {', '.join(stale)} not pinned to what the registry serves now: "
                  "run python3 scripts/pin-images.py to refresh", file=sys.stderr)  # fmt: skip
            return 1
        return 0
    try:
        changed = write_all(args, refs, current)
    except PinError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"updated {', '.join(changed)}" if changed else "all pins current; nothing changed", file=sys.stderr)
    return 0


def write_all(args: argparse.Namespace, refs: dict[str, Reference], current: dict[str, str]) -> list[str]:
    """Work out every file's new text first, then write them: a problem found changes no file."""
    pins = {variable: ref.pinned(current[variable]) for variable, ref in refs.items()}
    texts = {args.env_file: pin_env(read_exact(args.env_file), pins)}
    for path, digests in ((args.kustomization, current), (args.offline_component, {})):
        if not path.is_file():
            continue
        images = {refs[v].name: (refs[v].tag, digests.get(v)) for v in refs}
        texts[path], missing = pin_kustomization(read_exact(path), images)
        unpinned = [refs[v].name for v in KUBERNETES_RUNS if refs[v].name in missing]
        if unpinned:
            raise PinError(f"{path} has no images entry named {', '.join(unpinned)}: name the image there as .env "
                           "does, or Kubernetes would run another version")  # fmt: skip
    changed = [path for path, text in texts.items() if text != read_exact(path)]
    for path in changed:
        write_exact(path, texts[path])
    return [str(path) for path in changed]


if __name__ == "__main__":
    raise SystemExit(main())
