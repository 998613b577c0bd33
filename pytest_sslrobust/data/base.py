"""Dataset items, sources of items, and the deterministic subset of a split."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from pytest_sslrobust.vocabulary import DataError as DataError  # re-exported here


class SslRobustDataWarning(UserWarning):
    """Data a run can use, but whose numbers deserve a caveat: too few images for a metric
    or a readout, or images smaller than the model's input (upscaled)."""


# Fewer evaluated images than this make bootstrap intervals, CKA/CCA and probe accuracies
# too unstable to gate on; fewer training images per class than this leave a linear probe
# or kNN readout little to learn from.
MIN_EVALUATED = 30
MIN_TRAIN_PER_CLASS = 5

_WARNED: set[tuple[str, ...]] = set()


def warn_once(key: tuple[str, ...], message: str) -> None:
    """Warn ``message`` the first time ``key`` is seen in this process (once per dataset,
    not once per test)."""
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(SslRobustDataWarning(message), stacklevel=3)


@dataclasses.dataclass(frozen=True, eq=False)
class Item:
    """One image: uint8 HxWx3 pixels, integer label, stable id, optional foreground mask.

    ``mask`` is a bool HxW array, true on the object (foreground), when the source has one.
    """

    image: np.ndarray
    label: int
    id: str
    mask: np.ndarray | None = None


class Source:
    """An ordered list of items that are decoded only when asked for.

    Subclasses give ``ids`` (unique strings, stable across runs), ``labels`` (int64, one per
    id) and ``load(index)``. Nothing here holds decoded pixels, so a dataset of any size
    streams through extraction.
    """

    ids: tuple[str, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Item:
        raise NotImplementedError

    def index_of(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.ids)}


class FunctionSource(Source):
    """Items made by a function of their index (bundled data, arrays)."""

    def __init__(
        self, ids: Sequence[str], labels: Sequence[int], make: Callable[[int], Item]
    ) -> None:
        self.ids = tuple(ids)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.ids) != len(self.labels):
            raise DataError(f"{len(self.ids)} ids but {len(self.labels)} labels")
        if len(set(self.ids)) != len(self.ids):
            raise DataError("item ids must be unique")
        self._make = make

    def load(self, index: int) -> Item:
        return self._make(index)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A named set of splits, plus variants whose files were released ready-made.

    ``released`` maps a variant id (``gaussian_noise-s3``, ``mixed_rand``) to the split(s)
    whose items were altered by the data's authors; those are read as they are, never
    altered again. ``label_space`` is ``"imagenet-1k"`` when labels are ImageNet class
    indices, so a classifier head can be read out directly. ``head_subset`` (ImageNet-R and
    ImageNet-A: 200 of the 1000 classes) restricts a 1000-way head's prediction to those class
    indices, as those benchmarks are scored.
    """

    spec: str
    classes: tuple[str, ...]
    splits: Mapping[str, Source]
    fingerprint: str
    has_masks: bool = False
    label_space: str | None = None
    released: Mapping[str, Mapping[str, Source]] = dataclasses.field(default_factory=dict)
    description: str = ""
    head_subset: tuple[int, ...] | None = None

    def split(self, name: str) -> Source:
        try:
            return self.splits[name]
        except KeyError:
            raise DataError(
                f"dataset {self.spec!r} has no split {name!r}; it has {', '.join(self.splits)}"
            ) from None

    def released_split(self, variant: str, split: str) -> Source:
        try:
            return self.released[variant][split]
        except KeyError:
            raise DataError(
                f"dataset {self.spec!r} has no released files for variant {variant!r} in "
                f"split {split!r}"
            ) from None


def stable_hash(*parts: object) -> str:
    """A hex digest of the parts' text, the same in every process (unlike ``hash``)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def per_class_indices(
    labels: np.ndarray, ids: Sequence[str], per_class: int, seed: int
) -> np.ndarray:
    """Indices of at most ``per_class`` items of each class, in source order; within a class
    the items are ranked by the same hash of (seed, id) as ``subset_indices``."""
    labels = np.asarray(labels)
    chosen: list[int] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        ranked = sorted(members.tolist(), key=lambda i: stable_hash(seed, ids[i]))
        chosen.extend(ranked[:per_class])
    return np.asarray(sorted(chosen), dtype=np.int64)


def subset_indices(
    labels: np.ndarray, ids: Sequence[str], max_images: int | None, seed: int
) -> np.ndarray:
    """Indices of a class-stratified subset of at most ``max_images`` items, in source order.

    Each class gets a share proportional to its size (largest remainders first, at least one
    item per class while the budget allows); within a class the items are ranked by a hash
    of (seed, id), so the choice does not depend on order, process or platform.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if max_images is None or max_images >= n:
        return np.arange(n)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (max_images / n)
    quota = np.floor(exact).astype(int)
    if max_images >= len(classes):
        quota = np.maximum(quota, 1)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while quota.sum() < max_images:
        cls = order[i % len(order)]
        if quota[cls] < counts[cls]:
            quota[cls] += 1
        i += 1
    while quota.sum() > max_images:
        cls = int(np.argmax(quota))
        quota[cls] -= 1
    chosen: list[int] = []
    for cls, take in zip(classes, quota, strict=True):
        members = np.flatnonzero(labels == cls)
        ranked = sorted(members, key=lambda j: stable_hash(seed, ids[j]))
        chosen.extend(int(j) for j in ranked[:take])
    return np.sort(np.asarray(chosen, dtype=np.int64))


def deterministic_split(
    labels: np.ndarray, ids: Sequence[str], test_fraction: float, salt: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into train/test per class by a hash of each id (seed independent)."""
    labels = np.asarray(labels)
    train: list[int] = []
    test: list[int] = []
    for cls in np.unique(labels):
        members = sorted(np.flatnonzero(labels == cls), key=lambda j: stable_hash(salt, ids[j]))
        n_test = int(round(len(members) * test_fraction))
        if len(members) > 1:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.extend(int(j) for j in members[:n_test])
        train.extend(int(j) for j in members[n_test:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(test, dtype=np.int64))


class IndexedSource(Source):
    """A view of another source restricted to some of its indices."""

    def __init__(self, base: Source, indices: np.ndarray) -> None:
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)
        self.ids = tuple(base.ids[i] for i in self.indices)
        self.labels = np.asarray(base.labels)[self.indices]

    def load(self, index: int) -> Item:
        return self.base.load(int(self.indices[index]))

    def encoded(self, index: int) -> bytes | None:
        encoded = getattr(self.base, "encoded", None)
        return None if encoded is None else encoded(int(self.indices[index]))  # type: ignore[no-any-return]


def as_rgb_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """Convert grayscale, gray+alpha, RGBA or float-in-[0,1] pixels to uint8 HxWx3."""
    image = np.asarray(array)
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and image.size and image.max() <= 1.0:
            image = np.round(image * 255.0)
        if image.size and (image.min() < 0 or image.max() > 255):
            raise DataError(f"{what}: pixel values outside 0..255 (dtype {array.dtype})")
        image = image.astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 2:
        image = np.repeat(image[:, :, :1], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{what}: expected an HxW or HxWxC image, got shape {array.shape}")
    return np.ascontiguousarray(image)


# Content digests by (path, size, mtime): a speed-up only, so that unchanged files are not
# read again; a touched file is hashed again and, with the same bytes, gives the same digest.
_DIGESTS: dict[str, str] = {}
_DIGEST_MEMO: list[Path] = []


def use_digest_memo(path: Path | None) -> None:
    """Keep the content digests of data files in ``path`` (JSON) across sessions."""
    _DIGEST_MEMO[:] = [path] if path is not None else []
    if path is not None and path.is_file():
        try:
            _DIGESTS.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass  # an unreadable memo only costs re-hashing


def _save_digest_memo() -> None:
    if not _DIGEST_MEMO:
        return
    path = _DIGEST_MEMO[0]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(_DIGESTS, sort_keys=True))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)  # the memo is optional


def content_digest(path: Path) -> str:
    """sha256 of a file's bytes, memoised by path, size and modification time."""
    stat = path.stat()
    memo = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]


def file_listing_digest(paths: Sequence[Path], root: Path) -> str:
    """Fingerprint a file list by relative path and content (never by modification time:
    a fresh checkout touches every file and must still hit the cache)."""
    known = len(_DIGESTS)
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(root)}\0{content_digest(path)}\n".encode())
    if len(_DIGESTS) != known:
        _save_digest_memo()
    return digest.hexdigest()
