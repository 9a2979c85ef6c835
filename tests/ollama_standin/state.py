"""Mutable state of one stand-in instance: installed models, loaded models, request log."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from starlette.concurrency import run_in_threadpool

from .brain import Brain
from .catalog import ModelInfo, ModelName, catalog_info, generic_info
from .config import StandinConfig
from .store import ModelImage, ModelStore, build_image

# Where blob paths point when there is no store directory (what Ollama's default would be).
DEFAULT_BLOBS_DIR = "/root/.ollama/models/blobs"


@dataclass
class RequestRecord:
    """One HTTP request the stand-in received (bodies are parsed JSON when they parse)."""

    method: str
    path: str
    query: str
    body: Any
    raw: bytes
    started_ns: int = field(default_factory=time.time_ns)
    status: int | None = None

    @property
    def json(self) -> Any:
        return self.body


@dataclass
class InstalledModel:
    name: ModelName
    image: ModelImage
    modified_ns: int

    @property
    def info(self) -> ModelInfo:
        return self.image.info


@dataclass
class LoadedModel:
    """An entry of /api/ps: a model the (imaginary) scheduler holds in memory."""

    model: InstalledModel
    context_length: int
    expires_ns: int
    active_requests: int = 0

    def memory_size(self) -> int:
        # Ollama's ps size is the memory estimate, not the file size: weights plus an
        # f16 KV cache for the loaded context. The cache term is the usual
        # 2 (K and V) * layers * ctx * kv_dim * 2 bytes.
        info = self.model.info
        kv_dim = info.embedding_length // max(1, info.head_count) * info.head_count_kv
        return self.model.image.size + 2 * info.block_count * self.context_length * kv_dim * 2


class StandinState:
    """Shared by all handlers; guarded by a lock because tests inspect it from other threads."""

    def __init__(self, config: StandinConfig, brain: Brain) -> None:
        self.config = config
        self.brain = brain
        self.lock = threading.RLock()
        self.started_ns = time.time_ns()
        self.installed: dict[str, InstalledModel] = {}
        self.loaded: dict[str, LoadedModel] = {}
        self.request_log: list[RequestRecord] = []
        self.store = ModelStore(config.store_dir) if config.store_dir is not None else None  # type: ignore[arg-type]
        # Without a store directory, blobs pushed to /api/blobs live here (digest -> bytes).
        self.uploads: dict[str, bytes] = {}
        self._bootstrap()

    # -- installed models ------------------------------------------------------------------

    def _bootstrap(self) -> None:
        if self.store is not None:
            for name, image, mtime_ns in self.store.scan():
                known = catalog_info(name, self.config.catalog)
                if image.info.created:
                    # Made with /api/create: its own layers say what it is, whatever its name.
                    image = self._with_base_metadata(image)
                elif known is not None:
                    # Trust the catalog for names it knows, but keep the stored manifest bytes
                    # so the digest matches the file on disk.
                    image = ModelImage(info=known, config=image.config, layers=image.layers, manifest=image.manifest)
                self.installed[name.key] = InstalledModel(name, image, mtime_ns)
        for raw in self.config.models:
            wanted = ModelName.parse(raw)
            if wanted is None:
                raise ValueError(f"invalid model name in config: {raw!r}")
            if wanted.key not in self.installed:
                self.install(wanted)

    def _with_base_metadata(self, image: ModelImage) -> ModelImage:
        """A model derived from placeholder weights gets the base model's shape back (the
        layer counts the KV-cache estimate of /api/ps uses are not in the config)."""
        info = image.info
        parent = ModelName.parse(info.parent_model) if info.parent_model else None
        base = catalog_info(parent, self.config.catalog) if parent else None
        if info.gguf_kv is not None or base is None or info.block_count:
            return image
        info = replace(
            info,
            parameter_count=info.parameter_count or base.parameter_count,
            file_type=info.file_type or base.file_type,
            block_count=base.block_count,
            head_count=base.head_count,
            head_count_kv=base.head_count_kv,
            context_length=info.context_length or base.context_length,
            embedding_length=info.embedding_length or base.embedding_length,
        )
        return ModelImage(info=info, config=image.config, layers=image.layers, manifest=image.manifest)

    def info_for(self, name: ModelName) -> ModelInfo:
        return catalog_info(name, self.config.catalog) or generic_info(name)

    def image_for(self, name: ModelName) -> ModelImage:
        return build_image(self.info_for(name))

    def install(self, name: ModelName, image: ModelImage | None = None) -> InstalledModel:
        image = image or self.image_for(name)
        modified_ns = time.time_ns()
        if self.store is not None:
            modified_ns = self.store.write(name, image)
        entry = InstalledModel(name, image, modified_ns)
        with self.lock:
            self.installed[name.key] = entry
        return entry

    def replace_model(self, name: ModelName, image: ModelImage) -> InstalledModel:
        """Install a created model; blobs only the previous version used are removed, as
        CreateHandler's oldManifest.RemoveLayers() does."""
        old = self.resolve(name)
        entry = self.install(name, image)
        if old is not None:
            self._prune([blob.digest for blob in old.image.blobs()])
        return entry

    def uninstall(self, entry: InstalledModel) -> None:
        with self.lock:
            self.installed.pop(entry.name.key, None)
        if self.store is not None:
            self.store.remove(entry.name)
        else:
            self._prune([blob.digest for blob in entry.image.blobs()])

    def _prune(self, digests: list[str]) -> None:
        if self.store is not None:
            self.store.prune(digests)
            return
        with self.lock:
            used = {blob.digest for m in self.installed.values() for blob in m.image.blobs()}
            for digest in digests:
                if digest not in used:
                    self.uploads.pop(digest, None)

    def resolve(self, name: ModelName) -> InstalledModel | None:
        with self.lock:
            return self.installed.get(name.key)

    # -- blobs -----------------------------------------------------------------------------

    @staticmethod
    def _blob_key(digest: str) -> str:
        """GetBlobsPath turns "sha256:x" and "sha256-x" into the same file name (case kept)."""
        return digest.replace("-", ":", 1)

    def has_blob(self, digest: str) -> bool:
        digest = self._blob_key(digest)
        if self.store is not None:
            return self.store.blob_path(digest).exists()
        with self.lock:
            if digest in self.uploads:
                return True
            return any(blob.digest == digest for m in self.installed.values() for blob in m.image.blobs())

    def blob_location(self, digest: str) -> str:
        """The blob's file path as Ollama would name it (errors and "from" fields show it)."""
        file_name = digest.replace(":", "-", 1)
        if self.store is not None:
            return str(self.store.blobs / file_name)
        return f"{DEFAULT_BLOBS_DIR}/{file_name}"

    def open_blob(self, digest: str) -> BinaryIO:
        """Read a blob; FileNotFoundError when there is none."""
        digest = self._blob_key(digest)
        if self.store is not None:
            return self.store.blob_path(digest).open("rb")
        with self.lock:
            data = self.uploads.get(digest)
            if data is None:
                data = next(
                    (b.content for m in self.installed.values() for b in m.image.blobs() if b.digest == digest), None
                )
        if data is None:
            raise FileNotFoundError(digest)
        return io.BytesIO(data)

    async def receive_blob(self, chunks: AsyncIterator[bytes]) -> str:
        """Store an uploaded body under its sha256 and return "sha256:<hex>" (NewLayer does
        this before CreateBlobHandler compares digests, so a mismatch still leaves the blob)."""
        sha = hashlib.sha256()
        if self.store is None:
            buffer = bytearray()
            async for chunk in chunks:
                sha.update(chunk)
                buffer += chunk
            digest = "sha256:" + sha.hexdigest()
            with self.lock:
                self.uploads.setdefault(digest, bytes(buffer))
            return digest
        handle, tmp = await run_in_threadpool(self._temp_blob)
        try:
            async for chunk in chunks:
                sha.update(chunk)
                await run_in_threadpool(handle.write, chunk)
            digest = "sha256:" + sha.hexdigest()
            await run_in_threadpool(self._commit_blob, handle, tmp, digest)
            return digest
        except BaseException:
            await run_in_threadpool(self._discard_blob, handle, tmp)
            raise

    def _temp_blob(self) -> tuple[BinaryIO, Path]:
        assert self.store is not None
        self.store.blobs.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.store.blobs, prefix="sha256-")  # NewLayer's temp name
        return os.fdopen(fd, "wb"), Path(tmp)

    def _commit_blob(self, handle: BinaryIO, tmp: Path, digest: str) -> None:
        assert self.store is not None
        handle.close()
        target = self.store.blob_path(digest)
        if target.exists():
            tmp.unlink()
        else:
            tmp.chmod(0o644)
            os.replace(tmp, target)

    @staticmethod
    def _discard_blob(handle: BinaryIO, tmp: Path) -> None:
        handle.close()
        tmp.unlink(missing_ok=True)

    def is_pullable(self, name: ModelName) -> bool:
        if self.resolve(name) is not None:
            return True  # what is installed came from the registry, so the registry has it
        wanted = {name.key}
        target = catalog_info(name, self.config.catalog)
        for raw in self.config.pullable:
            allowed = ModelName.parse(raw)
            if allowed is None:
                continue
            if allowed.key in wanted:
                return True
            if target is not None and catalog_info(allowed, self.config.catalog) is target:
                return True
        return False

    def list_installed(self) -> list[InstalledModel]:
        with self.lock:
            return sorted(self.installed.values(), key=lambda m: m.modified_ns, reverse=True)

    # -- loaded models (/api/ps) -----------------------------------------------------------

    def loaded_model(self, entry: InstalledModel) -> LoadedModel | None:
        with self.lock:
            return self.loaded.get(entry.name.key)

    def mark_loaded(self, entry: InstalledModel, context_length: int, keep_alive_ns: int) -> LoadedModel:
        with self.lock:
            loaded = LoadedModel(entry, context_length, time.time_ns() + keep_alive_ns)
            self.loaded[entry.name.key] = loaded
            return loaded

    def acquire(self, loaded: LoadedModel, keep_alive_ns: int) -> None:
        """A request starts using a loaded model; it cannot expire while in use."""
        with self.lock:
            loaded.active_requests += 1
            loaded.expires_ns = time.time_ns() + keep_alive_ns
            self.loaded[loaded.model.name.key] = loaded

    def release(self, loaded: LoadedModel, keep_alive_ns: int) -> None:
        """A request finished: the keep_alive timer starts now (0 unloads immediately)."""
        with self.lock:
            loaded.active_requests = max(0, loaded.active_requests - 1)
            if keep_alive_ns == 0 and loaded.active_requests == 0:
                self.loaded.pop(loaded.model.name.key, None)
            else:
                loaded.expires_ns = time.time_ns() + keep_alive_ns

    def unload(self, entry: InstalledModel) -> None:
        with self.lock:
            self.loaded.pop(entry.name.key, None)

    def running(self) -> list[LoadedModel]:
        now = time.time_ns()
        with self.lock:
            for key, loaded in list(self.loaded.items()):
                if loaded.expires_ns <= now and loaded.active_requests == 0:
                    del self.loaded[key]
            # PsHandler sorts by the time left, longest first.
            return sorted(self.loaded.values(), key=lambda m: m.expires_ns, reverse=True)

    # -- request log -----------------------------------------------------------------------

    def record(self, record: RequestRecord) -> None:
        with self.lock:
            self.request_log.append(record)

    def requests(self, path: str | None = None, method: str | None = None) -> list[RequestRecord]:
        with self.lock:
            records: Iterable[RequestRecord] = list(self.request_log)
        return [
            r for r in records if (path is None or r.path == path) and (method is None or r.method == method.upper())
        ]

    def clear_requests(self) -> None:
        with self.lock:
            self.request_log.clear()
