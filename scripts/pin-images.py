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

ROOT = Path(__file__).resolve().parents[1]
PULLED = ("OLLAMA_IMAGE", "DASHBOARD_IMAGE", "PYTHON_IMAGE")  # the project's own images are built, not pulled
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
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
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
        registry, repository = DOCKER_HUB, name if rest else f"library/{name}"
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
        self.context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)

    def digest(self, ref: Reference) -> str:
        origin, prefix = base_url(ref.registry, self.mirrors)
        path = "/".join(filter(None, [prefix, ref.repository]))
        url = f"{origin}/v2/{path}/manifests/{urllib.parse.quote(ref.tag)}"
        headers = {"Accept": ACCEPT}
        response = self._request("HEAD", url, headers, ref, allow_401=True)
        if response.status == 401:
            headers["Authorization"] = "Bearer " + self._token(response.headers.get("WWW-Authenticate", ""), path, ref)
            response = self._request("HEAD", url, headers, ref)
        digest = response.headers.get("Docker-Content-Digest", "")
        if not DIGEST.fullmatch(digest):  # a registry may leave the header out: the digest of the body is the same
            body = self._request("GET", url, headers, ref).read()
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
            token = json.loads(self._request("GET", url, {}, ref).read())
            return token.get("token") or token["access_token"]
        except (ValueError, KeyError, TypeError):
            raise PinError(f"{ref.registry}'s token service answered something that is not a token") from None

    def _request(self, method: str, url: str, headers: dict[str, str], ref: Reference, allow_401: bool = False):
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout, context=self.context)
        except urllib.error.HTTPError as error:
            if error.code == 401 and allow_401:
                return error
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
        except ssl.SSLCertVerificationError as error:
            host = urllib.parse.urlsplit(url).netloc
            raise PinError(
                f"{host}'s certificate is not trusted ({error.verify_message}): "
                "behind a TLS-inspecting proxy, put its CA in certs/ca-bundle.pem"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise PinError(f"cannot reach {urllib.parse.urlsplit(url).netloc} ({reason}): run this on a connected "
                           "machine; behind a proxy set HTTPS_PROXY; with a mirror, --mirror") from None  # fmt: skip


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip().strip("'\"")
    return values


def rewrite(path: Path, replace) -> bool:
    """Apply replace(text) -> text; write atomically, keeping the file's mode. True when it changed."""
    text = path.read_text()
    new = replace(text)
    if new == text:
        return False
    partial = path.with_name(path.name + ".partial")
    partial.write_text(new)
    os.chmod(partial, path.stat().st_mode & 0o7777)
    partial.replace(path)
    return True


def pin_env(text: str, pins: dict[str, str]) -> str:
    for variable, value in pins.items():
        text = re.sub(rf"^({re.escape(variable)}\s*=\s*).*$", lambda m, v=value: m.group(1) + v, text, flags=re.M)
    return text


def pin_kustomization(text: str, images: dict[str, tuple[str, str | None]]) -> str:
    """Set newTag (and digest, where given) in the `images:` entry of each name; entries without one lose it."""
    lines = text.splitlines(keepends=True)
    for name, (tag, digest) in images.items():
        entry = re.compile(rf"^(\s*)- name: {re.escape(name)}\s*$")
        starts = [n for n, line in enumerate(lines) if entry.match(line)]
        if not starts:
            continue  # this file does not run the image (the Python base is only built from)
        first = starts[0]
        indent = entry.match(lines[first]).group(1) + "  "
        end = first + 1
        while end < len(lines) and lines[end].startswith(indent) and not lines[end][len(indent) :].startswith(" "):
            end += 1
        own = [line for line in lines[first + 1 : end] if not line[len(indent) :].startswith(("newTag:", "digest:"))]
        pinned = [f'{indent}newTag: "{tag}"\n', *([f"{indent}digest: {digest}\n"] if digest else [])]
        lines[first + 1 : end] = [*own, *pinned]
    return "".join(lines)


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
        mirrors = dict(m.split("=", 1) for m in args.mirror if "=" in m)
        if len(mirrors) != len(args.mirror):
            raise PinError("--mirror takes REGISTRY=URL, e.g. docker.io=https://mirror.example.org")
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
        registry = Registry(mirrors, ca_bundle if ca_bundle.is_file() else None)
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
    pins = {variable: refs[variable].pinned(current[variable]) for variable in refs}
    changed = [str(args.env_file)] if rewrite(args.env_file, lambda text: pin_env(text, pins)) else []
    tags = {ref.name: ref.tag for ref in refs.values()}
    for path, digests in ((args.kustomization, current), (args.offline_component, {})):
        images = {refs[v].name: (tags[refs[v].name], digests.get(v)) for v in refs}
        if path.is_file() and rewrite(path, lambda text, images=images: pin_kustomization(text, images)):
            changed.append(str(path))
    print(f"updated {', '.join(changed)}" if changed else "all pins current; nothing changed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
