"""Two-tier feature cache: tensors in memory for the session, safetensors files on disk."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from pytest_sslrobust.features.cachedir import clear, mark

CACHE_FORMAT = "1"
Tensors = dict[str, torch.Tensor]


class SslRobustCacheWarning(UserWarning):
    """A cache entry was unreadable or inconsistent and has been recomputed."""


def cache_key(parts: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that changes the cached bytes."""
    text = json.dumps({"cache_format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        data = tensors[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}\0{data.dtype}\0{tuple(tensors[name].shape)}\0".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class ImageMemo:
    """Altered images of this process, by (variant set, item id), bounded in bytes (LRU).

    Two backbones that see images at the same geometry (same input size, crop and fill) get
    the same altered images: the second reuses what the first made instead of corrupting and
    measuring SSIM again. Memory only; the disk tier holds features, not pixels.
    """

    def __init__(
        self, limit: int = 1 * 2**30, stats: collections.Counter[str] | None = None
    ) -> None:
        self.limit = limit
        self.size = 0
        self.entries: collections.OrderedDict[tuple[str, str], tuple[Any, Any]] = (
            collections.OrderedDict()
        )
        self.lock = threading.Lock()
        self.stats: collections.Counter[str] = collections.Counter() if stats is None else stats

    def get(self, key: tuple[str, str]) -> tuple[Any, Any] | None:
        with self.lock:
            value = self.entries.get(key)
            if value is not None:
                self.entries.move_to_end(key)
                self.stats["image_memo_hits"] += 1
            return value

    def put(self, key: tuple[str, str], value: tuple[Any, Any]) -> None:
        nbytes = int(getattr(value[0], "nbytes", 0))
        if nbytes > self.limit:
            return
        with self.lock:
            if key in self.entries:
                return
            self.entries[key] = value
            self.size += nbytes
            while self.size > self.limit:
                _, (image, _) = self.entries.popitem(last=False)
                self.size -= int(getattr(image, "nbytes", 0))


class FeatureCache:
    """Get-or-compute for tensors by key, shared by tests, sessions and xdist workers.

    Memory first (tensors stay on the device they were computed on), then the disk entry
    ``<dir>/<key[:2]>/<key>.safetensors``. Disk writes go to a temporary file that is
    renamed into place, so a crash leaves either no entry or a whole one; a file lock per
    entry makes concurrent workers compute it once. Each entry stores a checksum of its
    tensors: an entry that fails to parse or to match is reported with a warning, removed
    and recomputed.

    With a disk tier, the memory tier holds at most ``memory_limit`` bytes and drops the
    least recently used sets beyond it (they are re-read from disk when asked for again), so
    a long corruption sweep does not fill device memory. Without a disk tier nothing is
    dropped: a dropped set would have to be recomputed.
    """

    def __init__(
        self,
        directory: Path | None,
        *,
        lock_timeout: float = 3600.0,
        memory_limit: int = 2 * 2**30,
    ) -> None:
        self.directory = directory
        self.lock_timeout = lock_timeout
        self.memory_limit = memory_limit
        self.memory: collections.OrderedDict[str, Tensors] = collections.OrderedDict()
        self.stats: collections.Counter[str] = collections.Counter()
        self.images = ImageMemo(stats=self.stats)

    def path(self, key: str) -> Path:
        if self.directory is None:
            raise RuntimeError("the disk cache is disabled")
        return self.directory / key[:2] / f"{key}.safetensors"

    def get(
        self,
        key: str,
        compute: Callable[[], Tensors],
        *,
        describe: Mapping[str, Any] | None = None,
        device: torch.device | None = None,
    ) -> Tensors:
        """The tensors stored under ``key``, computing and storing them on a miss."""
        if key in self.memory:
            self.stats["memory_hits"] += 1
            self.memory.move_to_end(key)
            return self.memory[key]
        if self.directory is None:
            tensors = self._compute(compute)
        else:
            tensors = self._read(key)
            if tensors is not None:
                self.stats["disk_hits"] += 1
            else:
                tensors = self._locked_get(key, compute, describe or {})
        if device is not None:
            tensors = {name: t.to(device) for name, t in tensors.items()}
        self.memory[key] = tensors
        self._evict()
        return tensors

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for ts in self.memory.values() for t in ts.values())

    def _evict(self) -> None:
        if self.directory is None:
            return
        while len(self.memory) > 1 and self.memory_bytes() > self.memory_limit:
            self.memory.popitem(last=False)
            self.stats["evicted"] += 1

    def _compute(self, compute: Callable[[], Tensors]) -> Tensors:
        self.stats["misses"] += 1
        return compute()

    def _locked_get(
        self, key: str, compute: Callable[[], Tensors], describe: Mapping[str, Any]
    ) -> Tensors:
        from filelock import FileLock

        path = self.path(key)
        mark(path.parent.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=self.lock_timeout):
            # Another worker may have written the entry while this one waited for the lock.
            tensors = self._read(key)
            if tensors is not None:
                self.stats["disk_hits"] += 1
                return tensors
            tensors = self._compute(compute)
            self._write(path, tensors, describe)
            return tensors

    def _read(self, key: str) -> Tensors | None:
        path = self.path(key)
        if not path.exists():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
            if metadata.get("checksum") != _checksum(tensors):
                raise ValueError("checksum mismatch")
        except Exception as exc:  # any parse failure means the same thing: recompute
            self.stats["corrupt"] += 1
            warnings.warn(
                SslRobustCacheWarning(
                    f"cache entry {path} is damaged ({exc}); it was removed and will be recomputed"
                ),
                stacklevel=3,
            )
            path.unlink(missing_ok=True)
            return None
        return tensors

    def _write(self, path: Path, tensors: Tensors, describe: Mapping[str, Any]) -> None:
        from safetensors.torch import save_file

        cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
        metadata = {
            "checksum": _checksum(cpu),
            "describe": json.dumps(describe, sort_keys=True, default=str),
            "cache_format": CACHE_FORMAT,
        }
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            save_file(cpu, str(temporary), metadata=metadata)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        self.stats["writes"] += 1

    def clear(self) -> None:
        """Forget the memory tier and delete the disk entries this cache wrote."""
        self.memory.clear()
        if self.directory is not None:
            clear(self.directory)
