"""Model images (manifest + blobs) and their on-disk layout.

The layout mirrors Ollama's OLLAMA_MODELS directory so a mounted volume behaves like the
real one:

    DIR/manifests/registry.ollama.ai/library/<model>/<tag>   manifest JSON (schemaVersion 2)
    DIR/blobs/sha256-<hex>                                    content-addressed blobs

Every digest in a manifest is the real sha256 of the blob file next to it. The one liberty:
the weights blob is a few bytes of placeholder while its manifest entry keeps the size of
the real GGUF, so /api/tags reports realistic sizes (an integrity check should compare
digests, not sizes, for the application/vnd.ollama.image.model layer).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .catalog import ModelInfo, ModelName, generic_info

MEDIA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_LICENSE = "application/vnd.ollama.image.license"
MEDIA_PARAMS = "application/vnd.ollama.image.params"


@dataclass(frozen=True)
class Blob:
    media_type: str
    content: bytes
    size: int  # declared size; equals len(content) for every layer but the weights

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.content).hexdigest()

    def descriptor(self) -> dict[str, Any]:
        # Field order of Ollama's Layer struct: mediaType, digest, size.
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class ModelImage:
    """One installed (or pullable) model as Ollama stores it."""

    info: ModelInfo
    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes

    @property
    def digest(self) -> str:
        """What /api/tags and /api/ps call `digest`: sha256 of the manifest file, bare hex."""
        return hashlib.sha256(self.manifest).hexdigest()

    @property
    def size(self) -> int:
        """Manifest.Size(): every layer plus the config blob."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def blobs(self) -> list[Blob]:
        return [*self.layers, self.config]


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def build_image(info: ModelInfo) -> ModelImage:
    """The deterministic image for a model: same metadata, same bytes, same digests."""
    small: list[Blob] = [Blob(MEDIA_TEMPLATE, info.template.encode(), len(info.template.encode()))]
    if info.license:
        small.append(Blob(MEDIA_LICENSE, info.license.encode(), len(info.license.encode())))
    if info.params:
        params = _compact(info.params)
        small.append(Blob(MEDIA_PARAMS, params, len(params)))
    weights_text = (
        f"GGUF placeholder written by ollama-standin: {info.family} {info.parameter_size} "
        f"{info.quantization_level} ({info.size} bytes in the real model)\n"
    ).encode()

    def config_blob(layers: list[Blob]) -> Blob:
        # Fields of Ollama's model.ConfigV2, in its order. capabilities/context_length/
        # embedding_length are real (optional) ConfigV2 fields; the stand-in stores them so
        # models it does not know by name keep their metadata across restarts.
        config = {
            "model_format": "gguf",
            "model_family": info.family,
            "model_families": info.all_families,
            "model_type": info.parameter_size,
            "file_type": info.quantization_level,
            "capabilities": list(info.capabilities),
            "context_length": info.context_length,
            "embedding_length": info.embedding_length,
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        }
        data = _compact(config)
        return Blob(MEDIA_CONFIG, data, len(data))

    # The weights layer's declared size makes the manifest total equal info.size. The config
    # blob lists layer digests, not sizes, so it can be built before that size is known.
    weights = Blob(MEDIA_MODEL, weights_text, 1)
    config = config_blob([weights, *small])
    weights = replace(weights, size=max(1, info.size - config.size - sum(b.size for b in small)))
    layers = (weights, *small)
    manifest = _compact(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
        }
    )
    return ModelImage(info=info, config=config, layers=layers, manifest=manifest)


class ModelStore:
    """Reads and writes images under an OLLAMA_MODELS-style directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifests = root / "manifests"
        self.blobs = root / "blobs"

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests / name.host / name.namespace / name.model / name.tag

    def blob_path(self, digest: str) -> Path:
        # Blob files use "-" where the digest has ":" (Ollama's GetBlobsPath).
        return self.blobs / digest.replace(":", "-")

    def write(self, name: ModelName, image: ModelImage) -> int:
        """Write blobs then the manifest (as Ollama's pull does); returns the manifest mtime (ns)."""
        for blob in image.blobs():
            path = self.blob_path(blob.digest)
            if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != blob.digest[7:]:
                _atomic_write(path, blob.content)
        path = self.manifest_path(name)
        _atomic_write(path, image.manifest)
        return path.stat().st_mtime_ns

    def scan(self) -> list[tuple[ModelName, ModelImage, int]]:
        """Every readable manifest in the store, loaded into an image."""
        found: list[tuple[ModelName, ModelImage, int]] = []
        if not self.manifests.is_dir():
            return found
        for path in sorted(self.manifests.glob("*/*/*/*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            host, namespace, model, tag = path.relative_to(self.manifests).parts
            name = ModelName.parse(f"{host}/{namespace}/{model}:{tag}")
            if name is None:
                continue
            image = self.load(name, path.read_bytes())
            if image is not None:
                found.append((name, image, path.stat().st_mtime_ns))
        return found

    def load(self, name: ModelName, manifest_bytes: bytes, known: ModelInfo | None = None) -> ModelImage | None:
        """Rebuild an image from manifest bytes and the blobs they reference."""
        try:
            manifest = json.loads(manifest_bytes)
            config_desc = manifest["config"]
            layer_descs = manifest["layers"]
            config_bytes = self.blob_path(config_desc["digest"]).read_bytes()
            config = json.loads(config_bytes)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        layers: list[Blob] = []
        texts: dict[str, bytes] = {}
        for desc in layer_descs:
            path = self.blob_path(desc["digest"])
            content = path.read_bytes() if path.exists() else b""
            layers.append(Blob(desc["mediaType"], content, int(desc["size"])))
            texts[desc["mediaType"]] = content
        info = known or _info_from_config(
            name, config, texts, sum(int(d["size"]) for d in layer_descs) + int(config_desc["size"])
        )
        return ModelImage(
            info=info,
            config=Blob(config_desc.get("mediaType", MEDIA_CONFIG), config_bytes, int(config_desc["size"])),
            layers=tuple(layers),
            manifest=manifest_bytes,
        )

    def remove(self, name: ModelName) -> None:
        """Delete a manifest and every blob no other manifest references (Ollama prunes too)."""
        path = self.manifest_path(name)
        path.unlink(missing_ok=True)
        for parent in path.parents:
            if parent == self.manifests or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()
        referenced: set[str] = set()
        for other in self.manifests.glob("*/*/*/*") if self.manifests.is_dir() else []:
            try:
                data = json.loads(other.read_bytes())
                referenced.add(data["config"]["digest"])
                referenced.update(layer["digest"] for layer in data["layers"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if self.blobs.is_dir():
            for blob in self.blobs.glob("sha256-*"):
                if blob.name.replace("-", ":", 1) not in referenced:
                    blob.unlink(missing_ok=True)


def _info_from_config(name: ModelName, config: dict[str, Any], texts: dict[str, bytes], size: int) -> ModelInfo:
    """Metadata for a stored model the catalog does not know, from its config and layers."""
    base = generic_info(name)
    params: dict[str, Any] = {}
    if MEDIA_PARAMS in texts:
        try:
            params = json.loads(texts[MEDIA_PARAMS])
        except ValueError:
            params = {}
    return replace(
        base,
        family=str(config.get("model_family") or base.family),
        families=tuple(config.get("model_families") or ()),
        parameter_size=str(config.get("model_type") or base.parameter_size),
        quantization_level=str(config.get("file_type") or base.quantization_level),
        capabilities=tuple(config.get("capabilities") or base.capabilities),
        context_length=int(config.get("context_length") or base.context_length),
        embedding_length=int(config.get("embedding_length") or base.embedding_length),
        size=size,
        template=texts.get(MEDIA_TEMPLATE, base.template.encode()).decode(errors="replace"),
        license=texts.get(MEDIA_LICENSE, b"").decode(errors="replace"),
        params=params,
    )


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
