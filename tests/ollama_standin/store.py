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
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import gguf
from .catalog import ModelInfo, ModelName, generic_info

MEDIA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_LICENSE = "application/vnd.ollama.image.license"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"

PLACEHOLDER_PREFIX = b"GGUF placeholder written by ollama-standin"
DEFAULT_TEMPLATE = "{{ .Prompt }}"  # template.DefaultTemplate: what a model without a template layer gets


@dataclass(frozen=True)
class Blob:
    media_type: str
    content: bytes
    size: int  # declared size; equals len(content) for every layer but the weights
    # Imported weights are not held in memory: their digest is known and the bytes stay in
    # the blob file (or the state's upload table when there is no store directory).
    known_digest: str | None = None
    origin: str = ""  # Layer.From: where /api/create took the layer from

    @property
    def digest(self) -> str:
        if self.known_digest is not None:
            return self.known_digest
        return "sha256:" + hashlib.sha256(self.content).hexdigest()

    def descriptor(self) -> dict[str, Any]:
        # Field order of Ollama's Layer struct: mediaType, digest, size, from (omitempty).
        descriptor: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.origin:
            descriptor["from"] = self.origin
        return descriptor


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


def config_fields(info: ModelInfo) -> dict[str, Any]:
    """The model fields of Ollama's model.ConfigV2, in its order. capabilities, context_length and
    embedding_length are real (optional) ConfigV2 fields; the stand-in stores them so models it
    does not know by name keep their metadata across restarts."""
    return {
        "model_format": "gguf",
        "model_family": info.family,
        "model_families": info.all_families,
        "model_type": info.parameter_size,
        "file_type": info.quantization_level,
        "capabilities": list(info.capabilities),
        "context_length": info.context_length,
        "embedding_length": info.embedding_length,
    }


def build_image(info: ModelInfo) -> ModelImage:
    """The deterministic image for a model: same metadata, same bytes, same digests."""
    small: list[Blob] = [Blob(MEDIA_TEMPLATE, info.template.encode(), len(info.template.encode()))]
    if info.license:
        small.append(Blob(MEDIA_LICENSE, info.license.encode(), len(info.license.encode())))
    if info.params:
        params = _compact(info.params)
        small.append(Blob(MEDIA_PARAMS, params, len(params)))
    weights_text = (
        PLACEHOLDER_PREFIX
        + (
            f": {info.family} {info.parameter_size} {info.quantization_level} ({info.size} bytes in the real model)\n"
        ).encode()
    )

    def config_blob(layers: list[Blob]) -> Blob:
        config = {
            **config_fields(info),
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
            if blob.known_digest is not None:
                continue  # weights that came in through /api/blobs are already in place
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
        weights: gguf.GGUFFile | None = None
        created = False
        for desc in layer_descs:
            path = self.blob_path(desc["digest"])
            origin = str(desc.get("from") or "")
            created = created or bool(origin)
            weights_file = desc["mediaType"] in (MEDIA_MODEL, MEDIA_ADAPTER, MEDIA_PROJECTOR)
            if weights_file and _starts_with_gguf(path):
                # A real GGUF (imported with /api/create): read its header, never the tensors.
                created = True
                if desc["mediaType"] == MEDIA_MODEL:
                    weights = _read_gguf(path)
                layers.append(Blob(desc["mediaType"], b"", int(desc["size"]), desc["digest"], origin))
                continue
            content = path.read_bytes() if path.exists() else b""
            layers.append(Blob(desc["mediaType"], content, int(desc["size"]), origin=origin))
            texts.setdefault(desc["mediaType"], content)
        config_blob = Blob(config_desc.get("mediaType", MEDIA_CONFIG), config_bytes, int(config_desc["size"]))
        if created:
            info = created_info(config, layers, config_blob, weights)
        else:
            info = known or _info_from_config(
                name, config, texts, sum(int(d["size"]) for d in layer_descs) + int(config_desc["size"])
            )
        return ModelImage(info=info, config=config_blob, layers=tuple(layers), manifest=manifest_bytes)

    def remove(self, name: ModelName) -> None:
        """Delete a manifest and those of its blobs no other manifest references.

        That is Ollama's Manifest.RemoveLayers: blobs that belong to no manifest at all (say,
        uploaded for an `ollama create` that has not run yet) are left alone.
        """
        path = self.manifest_path(name)
        try:
            data = json.loads(path.read_bytes())
            digests = [data["config"]["digest"], *(layer["digest"] for layer in data["layers"])]
        except (OSError, ValueError, KeyError, TypeError):
            digests = []
        path.unlink(missing_ok=True)
        for parent in path.parents:
            if parent == self.manifests or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()
        self.prune(digests)

    def referenced(self) -> set[str]:
        referenced: set[str] = set()
        for other in self.manifests.glob("*/*/*/*") if self.manifests.is_dir() else []:
            try:
                data = json.loads(other.read_bytes())
                referenced.add(data["config"]["digest"])
                referenced.update(layer["digest"] for layer in data["layers"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return referenced

    def prune(self, digests: list[str]) -> None:
        """Layer.Remove for each digest: delete the blob unless some manifest still uses it."""
        referenced = self.referenced()
        for digest in digests:
            if digest not in referenced:
                self.blob_path(digest).unlink(missing_ok=True)


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


def is_real_gguf(head: bytes) -> bool:
    """GGUF magic, and not the stand-in's own placeholder text (which starts with "GGUF")."""
    return gguf.is_gguf_magic(head) and not PLACEHOLDER_PREFIX.startswith(head[: len(PLACEHOLDER_PREFIX)])


def _starts_with_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return is_real_gguf(handle.read(len(PLACEHOLDER_PREFIX)))
    except OSError:
        return False


def _read_gguf(path: Path) -> gguf.GGUFFile | None:
    try:
        with path.open("rb") as handle:
            return gguf.decode(handle)
    except (OSError, gguf.GGUFError):
        return None


_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_FIELD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
_THINK_TAGS = re.compile(r"(<[^<>\s{}]+>)\s*\{\{-?\s*\.Thinking\s*-?\}\}\s*(</[^<>\s{}]+>)")


def template_vars(template: str) -> set[str]:
    """template.Vars(): the field names a template uses, lowercased (".Tools" -> "tools")."""
    names: set[str] = set()
    for action in _ACTION.findall(template):
        names.update(name.lower() for name in _FIELD.findall(action))
    return names


def capabilities_for(
    template: str, weights: gguf.GGUFFile | None, config: dict[str, Any], layers: list[Blob]
) -> tuple[str, ...]:
    """Model.Capabilities() (server/images.go): the GGUF header decides completion/embedding
    and vision, the template decides tools (.Tools), insert (.Suffix) and thinking."""
    caps: list[str] = []
    if weights is not None:
        caps.append("embedding" if weights.arch_value("pooling_type") is not None else "completion")
        if weights.arch_value("vision.block_count") is not None:
            caps.append("vision")
    elif config.get("capabilities"):
        # Weights the stand-in only has a placeholder for: keep what the base model could do
        # apart from what the template decides below.
        caps.extend(c for c in config["capabilities"] if c not in ("tools", "insert", "thinking"))
    names = template_vars(template)
    if "tools" in names:
        caps.append("tools")
    if "suffix" in names:
        caps.append("insert")
    if any(layer.media_type == MEDIA_PROJECTOR for layer in layers) and "vision" not in caps:
        caps.append("vision")
    family = str(config.get("model_family") or "")
    if "thinking" not in caps and (_THINK_TAGS.search(template) or family in ("gptoss", "gpt-oss")):
        caps.append("thinking")
    return tuple(caps)


def show_kv(weights: gguf.GGUFFile) -> dict[str, Any]:
    """getModelData(verbose=false): the header key/values, arrays emptied, name and template dropped."""
    kv: dict[str, Any] = {}
    for key, value in weights.kv.items():
        if key in ("general.name", "tokenizer.chat_template"):
            continue
        kv[key] = [] if isinstance(value, gguf.GGUFArray) else value
    return dict(sorted(kv.items()))


def created_info(
    config: dict[str, Any],
    layers: list[Blob],
    config_blob: Blob,
    weights: gguf.GGUFFile | None,
    base: ModelInfo | None = None,
) -> ModelInfo:
    """Metadata of a model made by /api/create, from its config, layers and GGUF header."""
    texts: dict[str, list[bytes]] = {}
    for layer in layers:
        texts.setdefault(layer.media_type, []).append(layer.content)
    template = texts[MEDIA_TEMPLATE][0].decode(errors="replace") if MEDIA_TEMPLATE in texts else DEFAULT_TEMPLATE
    params: dict[str, Any] = {}
    if MEDIA_PARAMS in texts:
        try:
            params = json.loads(texts[MEDIA_PARAMS][0])
        except ValueError:
            params = {}
    messages: tuple[dict[str, Any], ...] = ()
    if MEDIA_MESSAGES in texts:
        try:
            messages = tuple(json.loads(texts[MEDIA_MESSAGES][0]))
        except (ValueError, TypeError):
            messages = ()
    licenses = tuple(t.decode(errors="replace") for t in texts.get(MEDIA_LICENSE, []))
    model_layer = next((layer for layer in layers if layer.media_type == MEDIA_MODEL), None)

    def number(key: str, fallback: int) -> int:
        if weights is not None and weights.arch_int(key):
            return weights.arch_int(key)
        return int(config.get(key) or fallback)

    file_type = weights.kv.get("general.file_type") if weights is not None else None
    return ModelInfo(
        family=str(config.get("model_family") or ""),
        parameter_size=str(config.get("model_type") or ""),
        parameter_count=weights.parameters if weights is not None else (base.parameter_count if base else 0),
        quantization_level=str(config.get("file_type") or ""),
        file_type=int(file_type) if isinstance(file_type, int) else (base.file_type if base else 0),
        size=config_blob.size + sum(layer.size for layer in layers),
        capabilities=capabilities_for(template, weights, config, layers),
        context_length=number("context_length", base.context_length if base else 0),
        embedding_length=number("embedding_length", base.embedding_length if base else 0),
        block_count=number("block_count", base.block_count if base else 0),
        head_count=number("attention.head_count", base.head_count if base else 0),
        head_count_kv=number("attention.head_count_kv", base.head_count_kv if base else 0),
        template=template,
        params=params,
        license="\n".join(licenses),
        families=tuple(config.get("model_families") or ()),
        system=texts[MEDIA_SYSTEM][0].decode(errors="replace") if MEDIA_SYSTEM in texts else "",
        licenses=licenses,
        parent_model=model_layer.origin if model_layer else "",
        gguf_kv=show_kv(weights) if weights is not None else None,
        messages=messages,
        created=True,
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
