"""A registry that speaks the OCI distribution API as Docker Hub does, for tests: pull only.

It asks for an anonymous bearer token (401 with a `WWW-Authenticate: Bearer realm=...` challenge, as
registry-1.docker.io does), serves manifests by tag or digest and blobs by digest, and answers a
client that does not accept multi-platform indexes with one platform's manifest, as Docker Hub does.
`docker pull` works against it (a loopback registry is plain HTTP to Docker), so images saved from
this machine's engine can be served with `add_saved_image`, each behind a real index.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"  # uncompressed: its digest is the layer's diff ID


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Content:
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # digest -> (media type, body)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repository, tag) -> digest
    blobs: dict[str, Path | bytes] = field(default_factory=dict)  # digest -> file or bytes
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def add_manifest(self, media_type: str, body: dict) -> str:
        raw = json.dumps(body, indent=2).encode()
        digest = sha256(raw)
        self.manifests[digest] = (media_type, raw)
        return digest

    def add_image_manifest(self, config: bytes, layers: list[dict]) -> str:
        descriptor = {"mediaType": CONFIG, "digest": sha256(config), "size": len(config)}
        return self.add_manifest(MANIFEST, {"schemaVersion": 2, "mediaType": MANIFEST, "config": descriptor,
                                            "layers": layers})  # fmt: skip

    def add_index(self, repository: str, tag: str, platform_digests: dict[str, str]) -> str:
        """Tag an index over one manifest per 'os/arch'; return the index digest."""
        entries = []
        for platform, digest in platform_digests.items():
            system, _, arch = platform.partition("/")
            media_type, raw = self.manifests[digest]
            entries.append({"mediaType": media_type, "digest": digest, "size": len(raw),
                            "platform": {"os": system, "architecture": arch}})  # fmt: skip
        digest = self.add_manifest(INDEX, {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries})
        self.tags[(repository, tag)] = digest
        return digest

    def add_small_image(self, repository: str, tag: str, label: str) -> str:
        """An index over two tiny platform images (amd64, arm64); return the index digest."""
        platforms = {}
        for arch in ("amd64", "arm64"):
            config = json.dumps({"architecture": arch, "os": "linux", "config": {"Labels": {"made": label}},
                                 "rootfs": {"type": "layers", "diff_ids": []}}).encode()  # fmt: skip
            self.blobs[sha256(config)] = config
            platforms[f"linux/{arch}"] = self.add_image_manifest(config, [])
        return self.add_index(repository, tag, platforms)

    def add_saved_image(self, repository: str, tag: str, archive: Path, unpack_to: Path) -> str:
        """Serve an image from a `docker save` archive (one image): OCI manifest, uncompressed layers, an index."""
        unpack_to.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(unpack_to, filter="data")
        (saved,) = json.loads((unpack_to / "manifest.json").read_text())
        config = (unpack_to / saved["Config"]).read_bytes()
        self.blobs[sha256(config)] = config
        layers = []
        for layer in saved["Layers"]:
            path = unpack_to / layer
            with path.open("rb") as handle:
                digest = "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
            self.blobs[digest] = path
            layers.append({"mediaType": LAYER, "digest": digest, "size": path.stat().st_size})
        image = json.loads(config)
        manifest = self.add_image_manifest(config, layers)
        return self.add_index(repository, tag, {f"{image['os']}/{image['architecture']}": manifest})


class FakeRegistry:
    """Run with `with FakeRegistry() as registry:`; `registry.host` is 127.0.0.1:PORT."""

    def __init__(self, content: Content | None = None, digest_header: bool = True, log: bool = False) -> None:
        self.content = content or Content()
        self.log = log
        self.digest_header = digest_header
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                url = urlsplit(self.path)
                registry.content.requests.append((self.command, url.path, dict(self.headers)))
                if registry.log:
                    print(self.command, url.path, self.headers.get("Accept"), file=sys.stderr)
                if url.path == "/token":
                    scope = parse_qs(url.query).get("scope", [""])[0]
                    return self._send(200, "application/json", json.dumps({"token": f"t-{scope}"}).encode(), body)
                if url.path == "/v2/" or url.path == "/v2":
                    return self._challenge("")
                parts = url.path.removeprefix("/v2/").rsplit("/", 2)
                if len(parts) != 3 or parts[1] not in ("manifests", "blobs"):
                    return self._send(404, "application/json", b'{"errors":[{"code":"NAME_UNKNOWN"}]}', body)
                repository, kind, reference = parts
                if self.headers.get("Authorization") != f"Bearer t-repository:{repository}:pull":
                    return self._challenge(repository)
                if kind == "blobs":
                    blob = registry.content.blobs.get(reference)
                    if blob is None:
                        return self._send(404, "application/json", b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', body)
                    return self._send(200, "application/octet-stream", blob, body, reference)
                digest = registry.content.tags.get((repository, reference), reference)
                if digest not in registry.content.manifests:
                    return self._send(404, "application/json", b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', body)
                media_type, raw = registry.content.manifests[digest]
                accept = ", ".join(self.headers.get_all("Accept") or [])
                takes_lists = INDEX in accept or "manifest.list.v2+json" in accept
                if media_type == INDEX and not takes_lists and not reference.startswith("sha256:"):
                    # Docker Hub's answer to a client that takes no index: the amd64 manifest.
                    amd64 = next(m for m in json.loads(raw)["manifests"] if m["platform"]["architecture"] == "amd64")
                    digest = amd64["digest"]
                    media_type, raw = registry.content.manifests[digest]
                return self._send(200, media_type, raw, body, digest)

            def _challenge(self, repository: str) -> None:
                scope = f',scope="repository:{repository}:pull"' if repository else ""
                realm = f'Bearer realm="http://{registry.host}/token",service="fake-registry"{scope}'
                self.send_response(401)
                self.send_header("WWW-Authenticate", realm)
                self.send_header("Content-Type", "application/json")
                payload = b'{"errors":[{"code":"UNAUTHORIZED"}]}'
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _send(self, status: int, media_type: str, data: bytes | Path, body: bool, digest: str = "") -> None:
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                size = data.stat().st_size if isinstance(data, Path) else len(data)
                self.send_header("Content-Length", str(size))
                if digest and registry.digest_header:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if body and isinstance(data, Path):
                    with data.open("rb") as handle:
                        shutil.copyfileobj(handle, self.wfile, 1 << 20)
                elif body:
                    self.wfile.write(data)

        return Handler
