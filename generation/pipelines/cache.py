"""The process-wide LRU cache of loaded pipelines a GPU worker keeps.

Bounded by a count (constructor argument, else env PIPELINE_CACHE_SIZE, default 2) and optionally by the
parameter memory of the cached pipelines (constructor argument in bytes, else env PIPELINE_CACHE_MAX_MB).
Keys are (VariantSpec, device): the spec includes its LoRA set, so each LoRA combination is its own entry.
``loads`` counts pipelines loaded so far (the benchmark and the tests read it).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections import OrderedDict

from .types import GenerationError, OutOfMemory, VariantSpec

log = logging.getLogger(__name__)

DEFAULT_SIZE = 2


def _env_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise GenerationError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise GenerationError(f"{name} must be at least 1, got {value}")
    return value


class PipelineCache:
    def __init__(self, max_entries: int | None = None, max_bytes: int | None = None, loader=None):
        self.max_entries = max_entries if max_entries is not None else _env_int("PIPELINE_CACHE_SIZE", DEFAULT_SIZE)
        if max_bytes is None:
            mb = _env_int("PIPELINE_CACHE_MAX_MB", None)
            max_bytes = mb * 1024 * 1024 if mb else None
        self.max_bytes = max_bytes
        if self.max_entries < 1:
            raise GenerationError(f"pipeline cache size must be at least 1, got {self.max_entries}")
        self._loader = loader
        self._entries: OrderedDict[tuple[VariantSpec, str], object] = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0
        self.hits = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key) -> bool:
        return key in self._entries

    def keys(self) -> list[tuple[VariantSpec, str]]:
        return list(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(getattr(e, "nbytes", 0) for e in self._entries.values())

    def get(self, spec: VariantSpec, device: str):
        """The LoadedPipeline for (spec, device): from the cache, or loaded (evicting least recently used).

        A cached pipeline whose checkpoint or LoRA files changed on disk since it was loaded is reloaded.
        """
        key = (spec, device)
        fingerprint = files_fingerprint(spec)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and getattr(entry, "fingerprint", fingerprint) != fingerprint:
                log.info("pipeline cache: files of %s changed on disk; reloading", spec.key)
                del self._entries[key]
                self._free()
                entry = None
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            while len(self._entries) >= self.max_entries:
                self._evict_oldest()
            entry = self._load(spec, device)
            self.loads += 1
            try:
                entry.fingerprint = fingerprint
            except AttributeError:
                pass
            self._entries[key] = entry
            if self.max_bytes is not None:
                while self.nbytes > self.max_bytes and len(self._entries) > 1:
                    self._evict_oldest()
            return entry

    def _load(self, spec: VariantSpec, device: str):
        loader = self._loader
        if loader is None:
            from .loading import load_pipeline as loader
        try:
            return loader(spec, device)
        except OutOfMemory:
            if not self._entries:
                raise
            log.warning("out of memory loading %s: emptying the pipeline cache and retrying once", spec.key)
            self.clear()
            return loader(spec, device)

    def _evict_oldest(self) -> None:
        (spec, device), _ = self._entries.popitem(last=False)
        self.evictions += 1
        log.info("pipeline cache: evicted %s on %s", spec.key, device)
        self._free()

    @staticmethod
    def _free() -> None:
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def clear(self) -> None:
        """Drop every cached pipeline (``loads`` keeps counting)."""
        with self._lock:
            self._entries.clear()
            self._free()


def _stat(path: str) -> tuple:
    p = os.path.join(path, "model_index.json") if os.path.isdir(path) else path
    try:
        st = os.stat(p)
    except OSError:
        return (path, None)
    return (path, st.st_mtime_ns, st.st_size)


def files_fingerprint(spec: VariantSpec) -> tuple:
    """(path, mtime, size) of the checkpoint and each LoRA: a replaced file invalidates its cached pipeline."""
    return (_stat(spec.source_path),) + tuple(_stat(lora.path) for lora in spec.loras)


_CACHE: PipelineCache | None = None
_CACHE_LOCK = threading.Lock()


def pipeline_cache() -> PipelineCache:
    """The process-wide cache (created on first use from PIPELINE_CACHE_SIZE / PIPELINE_CACHE_MAX_MB)."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            _CACHE = PipelineCache()
        return _CACHE


def set_pipeline_cache(cache: PipelineCache | None) -> PipelineCache | None:
    """Replace the process-wide cache (tests, or a worker reconfiguring); returns the previous one."""
    global _CACHE
    with _CACHE_LOCK:
        previous, _CACHE = _CACHE, cache
        return previous
