"""POST /api/create as Ollama 0.12 runs it (server/create.go CreateHandler and createModel).

A run yields the same progress statuses, in the same order, as the real server:

    {"status":"parsing GGUF"}
    {"status":"using existing layer sha256:<gguf>"}
    {"status":"creating new layer sha256:<template>"}     (or "using existing layer ...")
    {"status":"writing manifest"}
    {"status":"success"}

and fails with the real error texts and HTTP statuses (CreateError.status; 500 when the Go
code attaches none). What it cannot do: convert safetensors, quantize, or map a GGUF's
tokenizer.chat_template to one of Ollama's built-in templates.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from starlette.concurrency import run_in_threadpool

from . import gguf
from .catalog import ModelInfo, ModelName
from .state import StandinState
from .store import (
    MEDIA_ADAPTER,
    MEDIA_CONFIG,
    MEDIA_LICENSE,
    MEDIA_MANIFEST,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    PLACEHOLDER_PREFIX,
    Blob,
    ModelImage,
    config_fields,
    created_info,
    is_real_gguf,
)
from .wire import go_json

DIGEST = re.compile(r"^sha256[:-][0-9a-fA-F]{64}$")  # GetBlobsPath's check
WEIGHTS = (MEDIA_MODEL, MEDIA_ADAPTER, MEDIA_PROJECTOR)

# create.go error values.
ERR_NO_FILES = "no files provided to convert"
ERR_ONE_ADAPTER = "only one adapter is currently supported"
ERR_ONLY_GGUF = "supplied file was not in GGUF format"
ERR_UNKNOWN_TYPE = "unknown type"
ERR_NEITHER = "neither 'from' or 'files' was specified"
ERR_FILE_PATH = "file path must be relative"
ERR_INVALID_NAME = "invalid model name"  # errtypes.InvalidModelNameErrMsg
ERR_INVALID_DIGEST = "invalid digest format"  # ErrInvalidDigestFormat


class CreateError(Exception):
    """A gin.H{"error": ..., "status": ...} the create goroutine sends (status 500 if none)."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Layer:
    blob: Blob
    status: str = ""
    weights: gguf.GGUFFile | None = None  # the decoded header, for model/adapter/projector layers


PullEvents = Callable[[ModelName], AsyncIterator[dict[str, Any]]]


def valid_fs_path(name: str) -> bool:
    """io/fs.ValidPath: unrooted, slash-separated, no empty, "." or ".." elements."""
    if name == ".":
        return True
    return bool(name) and all(part not in ("", ".", "..") for part in name.split("/"))


def check_template(template: str) -> str | None:
    """A cheap stand-in for text/template's parser: catches unclosed actions and blocks."""
    stack: list[str] = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            break
        line = template.count("\n", 0, start) + 1
        end = template.find("}}", start + 2)
        if end < 0:
            return f"template: :{line}: unclosed action"
        action = template[start + 2 : end].strip("- \t\r\n")
        pos = end + 2
        if action.startswith("/*"):
            continue
        keyword = action.split(None, 1)[0] if action else ""
        if keyword in ("if", "range", "with", "block", "define"):
            stack.append(keyword)
        elif keyword in ("end", "else") and not stack:
            return f"template: :{line}: unexpected {{{{{keyword}}}}}"
        elif keyword == "end":
            stack.pop()
    if stack:
        return f"template: :{template.count(chr(10)) + 1}: unexpected EOF"
    return None


def _go_value(value: Any) -> Any:
    """Values decoded into map[string]any and encoded again: Go sorts keys, 2.0 prints as 2."""
    if isinstance(value, dict):
        return {k: _go_value(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_go_value(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


class Creation:
    """One /api/create request. `events()` yields progress, raises CreateError on failure."""

    def __init__(self, state: StandinState, request: dict[str, Any], name: ModelName, pull: PullEvents) -> None:
        self.state = state
        self.request = request
        self.name = name
        self.pull = pull
        self.new_digests: set[str] = set()

    # -- layers ----------------------------------------------------------------------------

    def _new_layer(self, content: bytes, media_type: str) -> Layer:
        """NewLayer: "creating new layer" unless a blob with that digest already exists."""
        blob = Blob(media_type, content, len(content))
        exists = blob.digest in self.new_digests or self.state.has_blob(blob.digest)
        self.new_digests.add(blob.digest)
        return Layer(blob, f"{'using existing layer' if exists else 'creating new layer'} {blob.digest}")

    async def _weights(self, blob: Blob) -> gguf.GGUFFile | None:
        def read() -> gguf.GGUFFile | None:
            try:
                with self.state.open_blob(blob.digest) as handle:
                    if not is_real_gguf(handle.read(len(PLACEHOLDER_PREFIX))):
                        return None
                    handle.seek(0)
                    return gguf.decode(handle)
            except (OSError, gguf.GGUFError):
                return None

        if blob.known_digest is None and not is_real_gguf(blob.content[: len(PLACEHOLDER_PREFIX)]):
            return None  # the stand-in's placeholder weights
        return await run_in_threadpool(read)

    async def _gguf_layers(self, digest: str) -> AsyncIterator[dict[str, Any] | Layer]:
        """ggufLayers(digest)."""
        yield {"status": "parsing GGUF"}
        if not DIGEST.match(digest):
            raise CreateError(ERR_INVALID_DIGEST)
        location = self.state.blob_location(digest)

        def read() -> tuple[str, gguf.GGUFFile | None, int]:
            with self.state.open_blob(digest) as handle:
                kind = gguf.detect_content_type(handle.read(512))
                if kind != "gguf":
                    return kind, None, 0
                handle.seek(0)
                weights = gguf.decode(handle)
                handle.seek(0, 2)
                return kind, weights, handle.tell()

        try:
            _, weights, size = await run_in_threadpool(read)
        except FileNotFoundError:
            raise CreateError(f"open {location}: no such file or directory") from None
        except gguf.GGUFError as exc:
            raise CreateError(str(exc)) from None
        if weights is None:
            raise CreateError(ERR_ONLY_GGUF, 400)
        media_type = MEDIA_MODEL
        if weights.kind == "adapter":
            media_type = MEDIA_ADAPTER
        elif (weights.arch_int("block_count") == 0 and weights.arch_int("vision.block_count") > 0) or (
            weights.kind == "projector"
        ):
            media_type = MEDIA_PROJECTOR
        blob = Blob(media_type, b"", size, known_digest=digest, origin=location)
        yield Layer(blob, f"using existing layer {digest}", weights)

    def _model_type(self, files: dict[str, str]) -> str:
        """detectModelTypeFromFiles."""
        for filename, digest in files.items():
            if filename.endswith(".safetensors"):
                return "safetensors"
            if filename.endswith(".gguf"):
                return "gguf"
            if not DIGEST.match(str(digest)):
                return ""
            try:
                with self.state.open_blob(digest) as handle:
                    head = handle.read(4)
            except OSError:
                return ""
            if not head:
                return ""
            if gguf.detect_content_type(head.ljust(4, b"\0")) == "gguf":
                return "gguf"
        return ""

    async def _from_files(self, files: dict[str, str], adapter: bool) -> AsyncIterator[dict[str, Any] | Layer]:
        """convertModelFromFiles."""
        kind = self._model_type(files)
        if kind == "safetensors":
            raise CreateError("safetensors import is not implemented by the ollama stand-in", 501)
        if kind != "gguf":
            raise CreateError(ERR_UNKNOWN_TYPE, 400)
        if not files:
            raise CreateError(ERR_NO_FILES, 400)
        if adapter and len(files) > 1:
            raise CreateError(ERR_ONE_ADAPTER, 400)
        for digest in files.values():
            async for item in self._gguf_layers(str(digest)):
                yield item

    async def _from_model(self, from_name: ModelName) -> AsyncIterator[dict[str, Any] | Layer]:
        """parseFromModel: every layer of the installed model, pulled first if missing."""
        entry = self.state.resolve(from_name)
        if entry is None:
            async for event in self.pull(from_name):
                if "error" in event:
                    raise CreateError(str(event["error"]))
                yield event
            entry = self.state.resolve(from_name)
            if entry is None:
                raise CreateError("pull model manifest: file does not exist")
        self.base_info = entry.info
        for blob in entry.image.layers:
            weights = await self._weights(blob) if blob.media_type in WEIGHTS else None
            origin = replace(blob, origin=from_name.short)
            yield Layer(origin, f"using existing layer {blob.digest}", weights)

    # -- the run ---------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        request = self.request
        self.base_info: ModelInfo | None = None
        base: list[Layer] = []
        if request.get("from"):
            from_name = ModelName.parse(str(request["from"]))
            if from_name is None:
                raise CreateError(ERR_INVALID_NAME, 400)
            if request.get("remote_host"):
                raise CreateError("remote models are not supported by the ollama stand-in", 501)
            source = self._from_model(from_name)
        elif request.get("files") is not None:
            source = self._from_files(request["files"], adapter=False)
        else:
            raise CreateError(ERR_NEITHER, 400)
        async for item in source:
            if isinstance(item, Layer):
                base.append(item)
            else:
                yield item
        if request.get("adapters") is not None:
            try:
                async for item in self._from_files(request["adapters"], adapter=True):
                    if isinstance(item, Layer):
                        base.append(item)
                    else:
                        yield item
            except CreateError as exc:
                raise CreateError(exc.message, 400) from None  # every adapter error is a 400
        async for event in self._create_model(base):
            yield event

    def _base_config(self) -> dict[str, Any]:
        """Config fields for a base model the stand-in only has placeholder weights for.

        Real Ollama decodes the base GGUF and gets the same values; the stand-in copies them
        from the base model's metadata, with its capabilities so a restart keeps them.
        """
        return {} if self.base_info is None else config_fields(self.base_info)

    async def _create_model(self, base: list[Layer]) -> AsyncIterator[dict[str, Any]]:
        """createModel."""
        request = self.request
        fields: dict[str, Any] = {}
        families: list[str] | None = None
        quantize = str(request.get("quantize") or request.get("quantization") or "").upper()
        layers: list[Layer] = []
        model_weights: gguf.GGUFFile | None = None
        for layer in base:
            weights = layer.weights
            if weights is not None:
                if quantize and layer.blob.media_type == MEDIA_MODEL:
                    if quantize not in gguf.FILE_TYPES or quantize == "unknown":
                        raise CreateError(f"unknown fileType: {quantize}")
                    if weights.file_type not in ("F16", "F32"):
                        raise CreateError("quantization is only supported for F16 and F32 models")
                    if weights.file_type != quantize:
                        raise CreateError("quantization is not implemented by the ollama stand-in", 501)
                fields.setdefault("model_format", "gguf")
                fields.setdefault("model_family", weights.architecture)
                fields.setdefault("model_type", gguf.human_number(weights.parameters))
                fields.setdefault("file_type", weights.file_type)
                families = [*(families or []), weights.architecture]
                if layer.blob.media_type == MEDIA_MODEL and model_weights is None:
                    model_weights = weights
            layers.append(layer)
        extras: dict[str, Any] = {}
        if not fields and self.base_info is not None:
            placeholder = self._base_config()
            fields = {k: placeholder[k] for k in ("model_format", "model_family", "model_type", "file_type")}
            families = placeholder["model_families"]
            extras = {k: placeholder[k] for k in ("capabilities", "context_length", "embedding_length")}

        def without(media_type: str) -> None:
            layers[:] = [layer for layer in layers if layer.blob.media_type != media_type]

        template = request.get("template")
        if template:
            problem = check_template(str(template))
            if problem:
                raise CreateError(f"template error: {problem}", 400)
            without(MEDIA_TEMPLATE)
            layers.append(self._new_layer(str(template).encode(), MEDIA_TEMPLATE))
        system = request.get("system")
        if system:
            without(MEDIA_SYSTEM)
            layers.append(self._new_layer(str(system).encode(), MEDIA_SYSTEM))
        license_ = request.get("license")
        if isinstance(license_, str):
            if license_:
                layers.append(self._new_layer(license_.encode(), MEDIA_LICENSE))
        elif license_ is not None:
            items = license_ if isinstance(license_, list) else [license_]
            for item in items:
                if not isinstance(item, str):
                    kind = {bool: "bool", dict: "object", list: "array"}.get(type(item), "number")
                    raise CreateError(f"json: cannot unmarshal {kind} into Go value of type string")
                layers.append(self._new_layer(item.encode(), MEDIA_LICENSE))
        params = dict(request.get("parameters") or {})
        for layer in [layer for layer in layers if layer.blob.media_type == MEDIA_PARAMS]:
            existing = await run_in_threadpool(self._read_json, layer.blob)
            for key, value in (existing or {}).items():
                params.setdefault(key, value)
        if params:
            without(MEDIA_PARAMS)
            layers.append(self._new_layer(go_json(_go_value(params)) + b"\n", MEDIA_PARAMS))
        messages = request.get("messages") or []
        if messages:
            without(MEDIA_MESSAGES)
            layers.append(self._new_layer(go_json(_go_value(messages)) + b"\n", MEDIA_MESSAGES))

        config: dict[str, Any] = {
            "model_format": fields.get("model_format", ""),
            "model_family": fields.get("model_family", ""),
            "model_families": families,
            "model_type": fields.get("model_type", ""),
            "file_type": fields.get("file_type", ""),
        }
        for key in ("renderer", "parser", "requires"):
            if request.get(key):
                config[key] = request[key]
        config.update({k: v for k, v in extras.items() if v})
        config["architecture"] = "amd64"
        config["os"] = "linux"
        config["rootfs"] = {"type": "layers", "diff_ids": [layer.blob.digest for layer in layers]}
        config_bytes = go_json(config) + b"\n"  # json.NewEncoder(...).Encode adds the newline
        config_blob = Blob(MEDIA_CONFIG, config_bytes, len(config_bytes))

        for layer in layers:
            if layer.status:
                yield {"status": layer.status}
        yield {"status": "writing manifest"}
        blobs = [layer.blob for layer in layers]
        manifest = go_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": config_blob.descriptor(),
                "layers": [blob.descriptor() for blob in blobs],
            }
        )
        info = created_info(config, blobs, config_blob, model_weights, self.base_info)
        image = ModelImage(info=info, config=config_blob, layers=tuple(blobs), manifest=manifest + b"\n")
        await run_in_threadpool(self.state.replace_model, self.name, image)
        yield {"status": "success"}

    @staticmethod
    def _read_json(blob: Blob) -> Any:
        try:
            return json.loads(blob.content)
        except ValueError:
            return None
