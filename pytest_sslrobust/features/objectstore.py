"""The feature cache's disk tier on an fsspec filesystem: S3 (s3fs), GCS, ``file://``, ``memory://``.

Same keys, checksums and layout as the local tier (``<prefix>/<key[:2]>/<key>.safetensors``,
a ``SSLROBUST-CACHE`` marker at the prefix), so an entry is the same bytes wherever it lives.
Object stores have no rename and no file locks, so:

* an entry is published with one conditional create (``pipe_file(mode="create")``: S3's
  ``If-None-Match: *``), so readers see no entry or a whole one and the first writer wins.
  Filesystems that cannot create conditionally (``file://`` and others: fsspec's fallback
  checks, then writes) get a unique temporary name moved into place instead;
* a controller that misses takes a lease, ``<key>.safetensors.lease`` (conditional create;
  its owner id, host, pid and time), before computing; another that finds a fresh lease polls
  for the entry (backoff, at most ``lock_timeout``), and takes over a lease older than
  ``lease_timeout``. The owner deletes its lease after publishing. Two controllers that
  take over one stale lease at once may both compute; both publish the same bytes and the
  conditional create keeps one, so the worst case is work done twice, never a wrong entry.
  A lease's age is by the clock of the controller that wrote it: the controllers' clocks
  must agree to well within ``lease_timeout``.

Errors of the store itself (no credentials, no bucket, access denied, unreachable endpoint)
disable the disk tier once with a warning, as an unusable local directory does; the run goes
on in memory. fsspec and the filesystem's package (s3fs for ``s3://``) are imported only
here, and only when a cache URL is used.

Storage options come from the environment: s3fs uses botocore's chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_REGION``, and
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for a custom endpoint), and fsspec reads
``FSSPEC_S3_<OPTION>`` variables such as ``FSSPEC_S3_ENDPOINT_URL`` when it is imported.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pytest_sslrobust.features.cache import (
    DiskTierError,
    FeatureCache,
    Tensors,
    check_entry,
    entry_metadata,
)
from pytest_sslrobust.features.cachedir import (
    ENTRY_NAME,
    MARKER,
    MARKER_TEXT,
    SHARD_NAME,
    TEMPORARY_NAME,
    CacheDirError,
)

INSTALL = 'pip install -c constraints.txt -e ".[test,ray]"'
# Filesystems whose pipe_file(mode="create") is one atomic conditional create.
ATOMIC_CREATE = frozenset({"s3", "s3a", "memory"})
DEFAULT_LEASE_TIMEOUT = 2 * 3600.0


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a cache location (one line), or None. Imports the filesystem's
    package, which is what fails when its extra is not installed; contacts nothing."""
    protocol, _, rest = url.partition("://")
    try:
        import fsspec
    except ImportError:
        return f"cache URL {url!r} needs fsspec: {INSTALL} (or pip install fsspec)"
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        return (
            f"cache URL {url!r}: fsspec has no {protocol!r} filesystem; use s3://BUCKET/PREFIX, "
            "gs://..., file:///ABSOLUTE/PATH, memory://NAME or a plain directory"
        )
    except ImportError as exc:
        package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}.get(protocol)
        fix = f"{INSTALL} (or pip install {package})" if package else f"install it ({exc})"
        return f"cache URL {url!r}: fsspec's {protocol!r} filesystem is not installed: {fix}"
    if not rest.strip("/") and protocol not in ("memory", "file", "local"):
        return f"cache URL {url!r} names no bucket: write {protocol}://BUCKET[/PREFIX]"
    return None


def _store_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the store failing (rather than an entry missing)."""
    return not isinstance(exc, (FileNotFoundError, FileExistsError))


class ObjectStoreCache(FeatureCache):
    """A :class:`FeatureCache` whose disk tier is the fsspec URL ``url``.

    The memory tier, ``get``, ``peek`` and ``disable_disk`` are the base class's; this class
    replaces how an entry is read, computed under a lease, published, swept and cleared.
    ``storage_options`` go to fsspec (beside what the environment sets).
    """

    unusable_hint = (
        "check the store's credentials, bucket, permissions and endpoint (AWS_* variables, "
        "AWS_ENDPOINT_URL or FSSPEC_S3_ENDPOINT_URL), or pass --sslrobust-no-cache"
    )

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = 3600.0,
        memory_limit: int = 2 * 2**30,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        poll_max: float = 2.0,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(None, lock_timeout=lock_timeout, memory_limit=memory_limit)
        self.url = url
        self.lease_timeout = lease_timeout
        self.poll_max = poll_max
        self.owner = uuid.uuid4().hex
        self._marked = False
        from fsspec.core import url_to_fs

        try:
            self.fs, root = url_to_fs(url, **dict(storage_options or {}))
        except Exception as exc:  # a bad FSSPEC_* setting, a filesystem that fails to start
            self.directory = url
            self.disable_disk(f"{type(exc).__name__}: {exc}")
            return
        self.root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.atomic_create = any(p in ATOMIC_CREATE for p in protocols)
        self.local = any(p in ("file", "local") for p in protocols)
        self.directory = url  # the disk tier is on; disable_disk sets it to None

    # -- names --------------------------------------------------------------------------

    def path(self, key: str) -> str:  # type: ignore[override]
        if self.directory is None:
            raise RuntimeError("the disk cache is disabled")
        return f"{self.root}/{key[:2]}/{key}.safetensors"

    def _exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def _remove(self, key: str) -> bool:
        try:
            self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            return False
        return True

    def _create(self, path: str, data: bytes) -> None:
        """Create ``path`` holding ``data`` unless it exists (FileExistsError then)."""
        if self.local:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(path, data, mode="create")

    # -- reading ------------------------------------------------------------------------

    def _read(self, key: str) -> Tensors | None:
        path = self.path(key)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # no credentials, no access, no endpoint
            raise DiskTierError(None) from exc
        from safetensors.torch import load

        try:
            tensors = load(data)
            check_entry(tensors, _metadata(data), key)
        except Exception as exc:  # any parse failure means the same thing: recompute
            self._damaged(self._url(path), exc, lambda: self.fs.rm_file(path))
            return None
        return tensors

    def _url(self, path: str) -> str:
        return self.fs.unstrip_protocol(path)

    # -- computing once across controllers ----------------------------------------------

    def _lease_bytes(self) -> bytes:
        record = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "time": time.time(),
        }
        return json.dumps(record, sort_keys=True).encode()

    def _lease_record(self, lease: str) -> dict[str, Any] | None:
        """The lease's record; None when there is no lease. Unparseable records (a
        half-written lease on a filesystem without conditional create) get the time the
        store gives the object."""
        try:
            data = self.fs.cat_file(lease)
        except FileNotFoundError:
            return None
        try:
            record = json.loads(data)
            if isinstance(record, dict) and isinstance(record.get("time"), (int, float)):
                return record
        except ValueError:
            pass
        try:
            return {"owner": None, "time": self.fs.modified(lease).timestamp()}
        except FileNotFoundError:
            return None
        except Exception:
            return {"owner": None, "time": time.time()}

    def _release(self, lease: str) -> None:
        """Delete ``lease`` if it is still this cache's (a taken-over one is not)."""
        try:
            record = self._lease_record(lease)
            if record is not None and record.get("owner") == self.owner:
                self.fs.rm_file(lease)
        except Exception:
            pass  # an orphaned lease goes stale and is swept; it never blocks for good

    def _locked_get(
        self, key: str, compute: Callable[[], Tensors], describe: Mapping[str, Any]
    ) -> Tensors:
        path = self.path(key)
        lease = f"{path}.lease"
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        waited = False
        held = False
        while not held:
            try:
                self._create(lease, self._lease_bytes())
                held = True
                break
            except FileExistsError:
                pass
            except Exception as exc:  # no bucket, no permission, no endpoint
                raise DiskTierError(None) from exc
            tensors = self._read(key)  # the lease holder may have published already
            if tensors is not None:
                self.stats["disk_hits"] += 1
                return tensors
            try:
                record = self._lease_record(lease)
            except Exception as exc:
                raise DiskTierError(None) from exc
            if record is None:
                continue  # released between the two calls: try to take it
            if time.time() - float(record["time"]) > self.lease_timeout:
                self.stats["leases_taken_over"] += 1
                try:
                    # Only the lease that was seen stale: a fresh one by a faster taker stays.
                    again = self._lease_record(lease)
                    if again is not None and again.get("owner") == record.get("owner"):
                        self.fs.rm_file(lease)
                except FileNotFoundError:
                    pass
                except Exception as exc:
                    raise DiskTierError(None) from exc
                continue
            if time.monotonic() > deadline:
                break  # waited long enough: compute; the conditional create keeps one entry
            if not waited:
                waited = True
                self.stats["lease_waits"] += 1
            time.sleep(delay)
            delay = min(delay * 1.5, self.poll_max)
        try:
            if held:  # another controller may have published between our read and our lease
                tensors = self._read(key)
                if tensors is not None:
                    self.stats["disk_hits"] += 1
                    return tensors
            tensors = self._compute(compute)
            try:
                self._write(path, tensors, key, describe)
            except Exception as exc:
                raise DiskTierError(tensors) from exc
            return tensors
        finally:
            if held:
                self._release(lease)

    # -- publishing ---------------------------------------------------------------------

    def _write(  # type: ignore[override]
        self, path: str, tensors: Tensors, key: str, describe: Mapping[str, Any]
    ) -> None:
        from safetensors.torch import save

        cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
        data = save(cpu, metadata=entry_metadata(cpu, key, describe))
        self._mark()
        if self.atomic_create:
            try:
                self._create(path, data)
            except FileExistsError:
                return  # another writer was first; its bytes are these (same key)
        else:
            folder, name = path.rsplit("/", 1)
            temporary = f"{folder}/.{name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
            try:
                if self.local:
                    self.fs.makedirs(folder, exist_ok=True)
                self.fs.pipe_file(temporary, data)
                self.fs.mv(temporary, path)
            finally:
                try:
                    self.fs.rm_file(temporary)
                except Exception:
                    pass  # moved (the usual case), or swept later
        self.stats["writes"] += 1

    def _mark(self) -> None:
        if self._marked:
            return
        try:
            self._create(f"{self.root}/{MARKER}", MARKER_TEXT.encode())
        except FileExistsError:
            pass
        self._marked = True

    # -- housekeeping -------------------------------------------------------------------

    def _ours(self) -> tuple[list[str], list[str], bool]:
        """(our objects, foreign objects, whether the marker is there) under the prefix."""
        self.fs.invalidate_cache(self.root)
        try:
            names = self.fs.find(self.root)
        except FileNotFoundError:
            names = []
        ours, foreign, marked = [], [], False
        for name in names:
            relative = name[len(self.root) :].lstrip("/")
            parts = relative.split("/")
            if relative == MARKER:
                marked = True
            elif len(parts) == 2 and SHARD_NAME.match(parts[0]) and ENTRY_NAME.match(parts[1]):
                ours.append(name)
            else:
                foreign.append(name)
        return ours, foreign, marked

    def sweep(self, older_than: float | None = None) -> int:
        """Remove leases older than ``older_than`` (default: ``lease_timeout``) and, where
        writes go through temporary names, temporaries as old; return how many went."""
        if self.directory is None:
            return 0
        limit = self.lease_timeout if older_than is None else older_than
        removed = 0
        try:
            ours, _, _ = self._ours()
            for name in ours:
                if name.endswith(".lease"):
                    record = self._lease_record(name)
                    old = record is not None and time.time() - float(record["time"]) > limit
                elif TEMPORARY_NAME.match(name.rsplit("/", 1)[1]):
                    old = time.time() - self.fs.modified(name).timestamp() > limit
                else:
                    continue
                if old:
                    try:
                        self.fs.rm_file(name)
                        removed += 1
                    except FileNotFoundError:
                        pass
        except Exception as exc:
            if _store_error(exc):
                self.disable_disk(str(exc))
                return removed
            raise
        self.stats["leases_swept"] += removed
        return removed

    def clear(self) -> None:
        """Forget the memory tier and delete the objects this cache wrote."""
        self.memory.clear()
        if self.directory is not None:
            self.clear_store()

    def clear_store(self) -> int:
        """Delete our entries and leases under the prefix; return how many went. A prefix
        without the marker is cleared only when everything under it is ours; objects that
        are not ours are never deleted."""
        ours, foreign, marked = self._ours()
        if foreign and not marked:
            raise CacheDirError(
                f"--sslrobust-cache-dir={self.url} is not a pytest-sslrobust cache (no {MARKER} "
                f"marker, and it holds {foreign[0].rsplit('/', 1)[-1]!r} among {len(foreign)} "
                "other objects); refusing to clear it: point the option at the cache prefix"
            )
        for name in ours:
            try:
                self.fs.rm_file(name)
            except FileNotFoundError:
                pass
        return len(ours)


def clear_url(url: str) -> int:
    """``--sslrobust-cache-clear`` for a cache URL; store errors are CacheDirErrors (one line)."""
    try:
        return ObjectStoreCache(url).clear_store()
    except CacheDirError:
        raise
    except Exception as exc:
        raise CacheDirError(
            f"--sslrobust-cache-clear: the cache at {url} cannot be listed or deleted "
            f"({type(exc).__name__}: {exc}); check the store's credentials and endpoint"
        ) from None


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (8-byte header length, then JSON)."""
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or size > len(data) - 8:
        raise ValueError("truncated safetensors header")
    header = json.loads(data[8 : 8 + size])
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("safetensors metadata is not a mapping")
    return metadata
