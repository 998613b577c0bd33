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

# 2: the checksum covers the entry's key, so an entry file served under another key is caught.
CACHE_FORMAT = "2"
Tensors = dict[str, torch.Tensor]


class SslRobustCacheWarning(UserWarning):
    """A cache entry was unreadable or inconsistent and has been recomputed."""


def cache_key(parts: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that changes the cached bytes."""
    text = json.dumps({"cache_format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _checksum(tensors: Mapping[str, torch.Tensor], key: str) -> str:
    digest = hashlib.sha256(f"{key}\0".encode())
    for name in sorted(tensors):
        data = tensors[name].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}\0{data.dtype}\0{tuple(tensors[name].shape)}\0".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def entry_metadata(cpu: Tensors, key: str, describe: Mapping[str, Any]) -> dict[str, str]:
    """The safetensors metadata of an entry: its checksum (covering ``key``), what it holds."""
    return {
        "checksum": _checksum(cpu, key),
        "describe": json.dumps(describe, sort_keys=True, default=str),
        "cache_format": CACHE_FORMAT,
    }


def check_entry(tensors: Tensors, metadata: Mapping[str, str], key: str) -> None:
    """Raise ``ValueError`` unless ``metadata``'s checksum matches ``tensors`` under ``key``."""
    if metadata.get("checksum") != _checksum(tensors, key):
        raise ValueError("checksum mismatch: damaged, or the entry of another key")


class DiskTierError(Exception):
    """The disk tier failed (its cause says why); ``tensors`` were computed before it did."""

    def __init__(self, tensors: Tensors | None) -> None:
        super().__init__("disk tier failed")
        self.tensors = tensors


def _copies(tensors: Tensors) -> Tensors:
    """What callers get: copies, so that one test's in-place change never reaches the next
    (torch has no read-only tensors; a copy of a 50,000 x 768 float32 set costs ~80 ms on
    a 2-core CPU, see docs/performance.md)."""
    return {name: tensor.clone() for name, tensor in tensors.items()}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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

    # What the warning of ``disable_disk`` tells the user to do.
    unusable_hint = (
        "set --sslrobust-cache-dir to a writable directory, or pass --sslrobust-no-cache"
    )

    def __init__(
        self,
        directory: Path | None,
        *,
        lock_timeout: float = 3600.0,
        memory_limit: int = 2 * 2**30,
    ) -> None:
        # None: no disk tier (never had one, or disabled). A URL string in ObjectStoreCache.
        self.directory: Path | str | None = directory
        self.lock_timeout = lock_timeout
        self.memory_limit = memory_limit
        self.memory: collections.OrderedDict[str, Tensors] = collections.OrderedDict()
        self.stats: collections.Counter[str] = collections.Counter()
        self.images = ImageMemo(stats=self.stats)

    def path(self, key: str) -> Path:
        if self.directory is None:
            raise RuntimeError("the disk cache is disabled")
        return Path(self.directory) / key[:2] / f"{key}.safetensors"

    def sweep(self, older_than: float = 6 * 3600) -> int:
        """Remove temp files that killed writes left behind (old, and whose entry is not
        locked by a live writer); return how many went."""
        from filelock import FileLock, Timeout

        from pytest_sslrobust.features.cachedir import stale_temporaries

        if self.directory is None:
            return 0
        removed = 0
        for temporary, entry in stale_temporaries(Path(self.directory), older_than):
            try:
                with FileLock(str(entry) + ".lock", timeout=0):
                    temporary.unlink(missing_ok=True)
                    removed += 1
            except (Timeout, OSError):
                continue  # a writer holds it, or the directory is not ours to change
        self.stats["temporaries_swept"] += removed
        return removed

    def disable_disk(self, reason: str) -> None:
        """Run on without the disk tier, saying so once; nothing half-written stays."""
        if self.directory is None:
            return
        directory, self.directory = self.directory, None
        self.stats["disk_disabled"] += 1
        warnings.warn(
            SslRobustCacheWarning(
                f"cache directory {directory} cannot be used ({reason}); this run goes on "
                f"without the disk cache ({self.unusable_hint})"
            ),
            stacklevel=3,
        )

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
            return _copies(self.memory[key])
        if self.directory is None:
            tensors = self._compute(compute)
        else:
            try:  # a disk tier on a store may fail on reading too (ObjectStoreCache)
                tensors = self._read(key)
                if tensors is not None:
                    self.stats["disk_hits"] += 1
                else:
                    tensors = self._locked_get(key, compute, describe or {})
            except DiskTierError as exc:
                self.disable_disk(str(exc.__cause__ or exc))
                tensors = exc.tensors if exc.tensors is not None else self._compute(compute)
        if device is not None:
            tensors = {name: t.to(device) for name, t in tensors.items()}
        self.memory[key] = tensors
        self._evict()
        return _copies(tensors)

    def peek(self, key: str) -> Tensors | None:
        """The tensors stored under ``key`` if this process or the disk has them; computes
        nothing, stores nothing (a baseline comparison reading an earlier run's features)."""
        if key in self.memory:
            return _copies(self.memory[key])
        if self.directory is None:
            return None
        try:
            return self._read(key)
        except DiskTierError as exc:
            self.disable_disk(str(exc.__cause__ or exc))
            return None

    def contains(self, key: str) -> bool:
        """Whether ``key`` is in memory or has an entry on the disk tier (not read, so not
        checked: a damaged entry is found, and recomputed, when it is read)."""
        if key in self.memory:
            return True
        if self.directory is None:
            return False
        try:
            return self._exists(key)
        except OSError:
            return False

    def _exists(self, key: str) -> bool:
        return self.path(key).exists()

    def discard(self, key: str) -> bool:
        """Forget ``key``: its memory copy and its disk entry, an entry of the cache's own
        naming (the Ray executor drops the units of a set once the set is stored). Returns
        whether a disk entry went; a failure to remove it is not an error."""
        self.memory.pop(key, None)
        if self.directory is None:
            return False
        try:
            return self._remove(key)
        except OSError:
            return False

    def _remove(self, key: str) -> bool:
        path = self.path(key)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

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
        try:
            mark(path.parent.parent)
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path) + ".lock", timeout=self.lock_timeout)
            lock.acquire()
        except OSError as exc:  # read-only, missing permissions, no space
            raise DiskTierError(None) from exc
        try:
            # Another worker may have written the entry while this one waited for the lock.
            tensors = self._read(key)
            if tensors is not None:
                self.stats["disk_hits"] += 1
                return tensors
            if path.exists():  # there but not readable by this user: not ours to replace
                return self._compute(compute)
            tensors = self._compute(compute)
            try:
                self._write(path, tensors, key, describe)
            except OSError as exc:
                raise DiskTierError(tensors) from exc
            return tensors
        finally:
            lock.release()

    def _read(self, key: str) -> Tensors | None:
        path = self.path(key)
        if not path.exists():
            return None
        if not os.access(path, os.R_OK):  # another user's entry: not ours, not damaged
            self.stats["unreadable"] += 1
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
            check_entry(tensors, metadata, key)
        except Exception as exc:  # any parse failure means the same thing: recompute
            self._damaged(str(path), exc, lambda: path.unlink(missing_ok=True))
            return None
        return tensors

    def _damaged(self, where: str, exc: Exception, remove: Callable[[], object]) -> None:
        """Count a damaged entry, remove it with ``remove`` and say so once, with whether
        the removal worked (an entry already gone counts as removed)."""
        self.stats["corrupt"] += 1
        try:
            remove()
            what = "it was removed and will be recomputed"
        except FileNotFoundError:
            what = "it was removed and will be recomputed"
        except Exception as error:
            reason = getattr(error, "strerror", None) or error
            what = f"it could not be removed ({reason}) and is recomputed in memory"
        warnings.warn(
            SslRobustCacheWarning(f"cache entry {where} is damaged ({exc}); {what}"),
            stacklevel=4,
        )

    def _write(self, path: Path, tensors: Tensors, key: str, describe: Mapping[str, Any]) -> None:
        from safetensors.torch import save_file

        cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
        metadata = entry_metadata(cpu, key, describe)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            try:
                save_file(cpu, str(temporary), metadata=metadata)
            except OSError:
                raise
            except Exception as exc:  # safetensors reports I/O failures (ENOSPC) as its own
                raise OSError(f"could not write {temporary}: {exc}") from exc
            os.chmod(temporary, 0o666 & ~_umask())  # a cache shared by a group stays readable
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
            clear(Path(self.directory))


def open_cache(location: str | Path | None) -> FeatureCache:
    """The cache of a ``--sslrobust-cache-dir`` value: a directory, an fsspec URL (the
    object-store tier), or None for memory only."""
    from pytest_sslrobust.paths import is_url

    if location is not None and is_url(location):
        from pytest_sslrobust.features.objectstore import ObjectStoreCache

        return ObjectStoreCache(str(location))
    return FeatureCache(None if location is None else Path(location))
