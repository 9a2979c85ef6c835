"""Mutable state of one stand-in instance: installed models, loaded models, request log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .brain import Brain
from .catalog import ModelInfo, ModelName, catalog_info, generic_info
from .config import StandinConfig
from .store import ModelImage, ModelStore, build_image


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
        self._bootstrap()

    # -- installed models ------------------------------------------------------------------

    def _bootstrap(self) -> None:
        if self.store is not None:
            for name, image, mtime_ns in self.store.scan():
                known = catalog_info(name, self.config.catalog)
                if known is not None:
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

    def uninstall(self, entry: InstalledModel) -> None:
        with self.lock:
            self.installed.pop(entry.name.key, None)
        if self.store is not None:
            self.store.remove(entry.name)

    def resolve(self, name: ModelName) -> InstalledModel | None:
        with self.lock:
            return self.installed.get(name.key)

    def has_blob(self, digest: str) -> bool:
        if self.store is not None:
            return self.store.blob_path(digest).exists()
        with self.lock:
            return any(blob.digest == digest for m in self.installed.values() for blob in m.image.blobs())

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
