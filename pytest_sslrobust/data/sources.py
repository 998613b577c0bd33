"""Datasets read from folders of images, released corruption benchmarks, and numpy arrays."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pytest_sslrobust.data.base import (
    DataError,
    Dataset,
    IndexedSource,
    Item,
    Source,
    as_rgb_uint8,
    deterministic_split,
    file_listing_digest,
    stable_hash,
)
from pytest_sslrobust.data.io import MASK_SUFFIXES, is_image_file, load_image, load_mask
from pytest_sslrobust.vocabulary import IN9_RELEASED, corruption_id

# The split must not move when the spec text changes (a path spelled differently, an option
# added), or results taken on "the same" data would silently use different test images.
SPLIT_SALT = "sslrobust-split"
TEST_FRACTION = 0.3

IMAGENET_LABEL_SPACE = "imagenet-1k"
_WNID = re.compile(r"n\d{8}")

IMAGENET_C_SEVERITIES = ("1", "2", "3", "4", "5")

IN9_ORIGINAL = "original"
IN9_MASKS = "fg_mask"
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})


class FileSource(Source):
    """Image files (and optional aligned mask files), decoded only when an item is loaded."""

    def __init__(
        self,
        paths: Sequence[Path],
        labels: Sequence[int] | np.ndarray,
        ids: Sequence[str],
        mask_paths: Sequence[Path] | None = None,
    ) -> None:
        self.paths = tuple(Path(p) for p in paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.ids = tuple(ids)
        self.mask_paths = None if mask_paths is None else tuple(Path(p) for p in mask_paths)
        _check_lengths(self.ids, self.labels, len(self.paths), "image files")
        if self.mask_paths is not None and len(self.mask_paths) != len(self.paths):
            raise DataError(f"{len(self.paths)} image files but {len(self.mask_paths)} mask files")

    def load(self, index: int) -> Item:
        image = load_image(self.paths[index])
        mask = None
        if self.mask_paths is not None:
            mask = load_mask(self.mask_paths[index], image.shape[:2])
        return Item(image, int(self.labels[index]), self.ids[index], mask)

    def encoded(self, index: int) -> bytes | None:
        """The file's bytes when it is a JPEG (to be decoded elsewhere, e.g. on a GPU);
        None for other formats, which :meth:`load` decodes."""
        path = self.paths[index]
        if path.suffix.lower() not in JPEG_SUFFIXES:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"image file {str(path)!r} does not exist") from None


class ArraySource(Source):
    """Rows of an array (in memory or a ``np.memmap``); a row is copied only when loaded."""

    def __init__(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        labels: Sequence[int] | np.ndarray,
        ids: Sequence[str],
        masks: np.ndarray | Sequence[np.ndarray] | None = None,
        what: str = "array",
    ) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.ids = tuple(ids)
        self.masks = masks
        self.what = what
        _check_lengths(self.ids, self.labels, len(images), "images")
        if masks is not None and len(masks) != len(images):
            raise DataError(f"{what}: {len(images)} images but {len(masks)} masks")

    def load(self, index: int) -> Item:
        # np.array copies just this row, so a memmap is read one image at a time.
        image = as_rgb_uint8(np.array(self.images[index]), f"{self.what} row {index}")
        mask = None
        if self.masks is not None:
            mask = np.asarray(self.masks[index]) > 0
            if mask.shape != image.shape[:2]:
                raise DataError(
                    f"{self.what}: mask {index} has shape {mask.shape} but its image is "
                    f"{image.shape[0]}x{image.shape[1]}; masks must be aligned with the images"
                )
        return Item(image, int(self.labels[index]), self.ids[index], mask)


def _check_lengths(ids: tuple[str, ...], labels: np.ndarray, n: int, what: str) -> None:
    if labels.ndim != 1 or len(labels) != n or len(ids) != n:
        raise DataError(f"{n} {what} but {len(labels)} labels and {len(ids)} ids")
    if len(set(ids)) != len(ids):
        raise DataError("item ids must be unique")


@functools.lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k synset ids in the order classifier heads use (timm's order)."""
    # timm is imported here so that reading plain folders never pays for importing it.
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo().label_names())


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (child for child in folder.iterdir() if child.is_dir() and not is_hidden(child.name)),
        key=lambda child: child.name,
    )


def _scan_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` at any depth, sorted by relative path, hidden ones skipped."""
    found: list[Path] = []
    seen: set[str] = set()
    # Datasets are often assembled from symlinked folders, so links are followed; the set of
    # real paths keeps a link back to an ancestor from looping forever.
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not is_hidden(d)]
        for name in filenames:
            path = Path(dirpath, name)
            if not is_hidden(name) and is_image_file(path):
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _class_files(split_dir: Path, layout: str) -> dict[str, list[Path]]:
    """Class folder name -> its image files; a class folder without images is an error."""
    classes = _subdirs(split_dir)
    if not classes:
        raise DataError(f"{split_dir} has no class sub-folders; lay the data out as {layout}")
    files: dict[str, list[Path]] = {}
    for class_dir in classes:
        images = _scan_images(class_dir)
        if not images:
            raise DataError(
                f"class folder {class_dir} has no images (accepted suffixes: "
                ".jpg .jpeg .png .bmp .gif .tif .tiff .webp); add images or remove the folder"
            )
        files[class_dir.name] = images
    return files


def _wnid_labels(names: Sequence[str], where: Path) -> dict[str, int]:
    """Map wnid folder names to their ImageNet-1k index, so labels match a classifier head.

    Indexing into the canonical list (not the folders present) is what keeps a subset of the
    classes from shifting every label after a missing folder.
    """
    index = {wnid: i for i, wnid in enumerate(imagenet_wnids())}
    unknown = [name for name in names if name not in index]
    if unknown:
        raise DataError(
            f"class folder(s) {', '.join(unknown[:5])} in {where} look like ImageNet synset ids "
            "but are not among the 1000 ImageNet-1k classes; rename or remove them"
        )
    return {name: index[name] for name in names}


def _find_masks(images: Sequence[Path], root: Path, mask_root: Path) -> list[Path | None]:
    """For ``root/rel/name.ext`` the file ``mask_root/rel/name`` + the first MASK_SUFFIXES."""
    # One listing per folder instead of a stat per candidate suffix per image.
    listings: dict[Path, dict[tuple[str, str], Path]] = {}
    found: list[Path | None] = []
    for image in images:
        rel = image.relative_to(root)
        folder = mask_root / rel.parent
        if folder not in listings:
            entries: dict[tuple[str, str], Path] = {}
            if folder.is_dir():
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    if entry.is_file() and not is_hidden(entry.name):
                        path = Path(entry.path)
                        entries.setdefault((path.stem, path.suffix.lower()), path)
            listings[folder] = entries
        entries = listings[folder]
        match = next(
            (entries[(image.stem, s)] for s in MASK_SUFFIXES if (image.stem, s) in entries), None
        )
        found.append(match)
    return found


def _split_sources(base: Source, test_fraction: float = TEST_FRACTION) -> dict[str, Source]:
    train, test = deterministic_split(base.labels, base.ids, test_fraction, SPLIT_SALT)
    return {
        "train": IndexedSource(base, train),
        "test": IndexedSource(base, test),
        "all": base,
    }


def require_dir(path: Path, what: str, layout: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        state = "does not exist" if not path.exists() else "is not a directory"
        raise DataError(f"{what} {str(path)!r} {state}; expected a folder laid out as {layout}")
    return path


def imagefolder(
    path: Path, masks: Path | None = None, spec: str = "", classes: str | None = None
) -> Dataset:
    """Images sorted into class folders: ``path/<class>/*`` or ``path/train/<class>/*`` with
    ``path/val/<class>/*`` and/or ``path/test/<class>/*``.

    With one folder of classes the train/test split is made by a hash of each file's relative
    path. Beside ``train/``, a lone ``val/`` or ``test/`` is the test split; with both,
    ``val/`` is the ``val`` split and ``test/`` the ``test`` split. Class folders named by
    ImageNet synset ids get ImageNet-1k label indices; with ``classes=present`` (ImageNet-R,
    ImageNet-A: 200 wnid folders) a 1000-way head predicts among the present classes only.
    """
    if classes not in (None, "present"):
        raise DataError(
            f"imagefolder option classes={classes!r}: the only value is 'present' (a 1000-way "
            "head predicts among the classes that have folders, as ImageNet-R/A are scored)"
        )
    layout = (
        "path/<class>/<image files> or path/train/<class>/... plus path/val/<class>/... "
        "and/or path/test/<class>/..."
    )
    path = require_dir(path, "imagefolder path", layout)
    mask_root = None
    if masks is not None:
        mask_root = require_dir(masks, "masks folder", "masks/<same relative paths as images>")

    train_dir = path / "train"
    held_out = [path / name for name in ("val", "test") if (path / name).is_dir()]
    if train_dir.is_dir() and held_out and _subdirs(train_dir):
        if len(held_out) == 2:  # train/, val/ and test/: each is its own split
            split_dirs = {"train": train_dir, "val": held_out[0], "test": held_out[1]}
        else:  # train/ and val/ (or test/): the held-out folder is the test split
            split_dirs = {"train": train_dir, "test": held_out[0]}
    else:
        split_dirs = {"all": path}

    # Every split is listed first so labels come from the union of their class folders.
    per_split = {name: _class_files(folder, layout) for name, folder in split_dirs.items()}
    names = sorted({cls for files in per_split.values() for cls in files})
    head_subset: tuple[int, ...] | None = None
    if all(_WNID.fullmatch(name) for name in names):
        label_of = _wnid_labels(names, path)
        class_names: tuple[str, ...] = imagenet_wnids()
        label_space: str | None = IMAGENET_LABEL_SPACE
        if classes == "present":
            head_subset = tuple(sorted(label_of[name] for name in names))
    elif classes == "present":
        raise DataError(
            f"imagefolder {path}: classes=present needs ImageNet wnid class folders "
            f"(n01440764, ...), but found {', '.join(names[:3])}"
        )
    else:
        label_of = {name: i for i, name in enumerate(names)}
        class_names = tuple(names)
        label_space = None

    all_images: list[Path] = []
    all_masks: list[Path] = []
    sources: dict[str, FileSource] = {}
    for split, files in per_split.items():
        images = [p for cls in sorted(files) for p in files[cls]]
        labels = [label_of[cls] for cls in sorted(files) for _ in files[cls]]
        ids = [p.relative_to(path).as_posix() for p in images]
        mask_paths: list[Path] | None = None
        if mask_root is not None:
            found = _find_masks(images, path, mask_root)
            missing = [i for i, m in zip(ids, found, strict=True) if m is None]
            if missing:
                raise DataError(
                    f"{len(missing)} image(s) in {path} have no mask in {mask_root} (e.g. "
                    f"{', '.join(missing[:5])}); add masks/<relative path without suffix> with "
                    f"one of {', '.join(MASK_SUFFIXES)}, or drop the masks option"
                )
            mask_paths = [m for m in found if m is not None]
            all_masks.extend(mask_paths)
        all_images.extend(images)
        sources[split] = FileSource(images, labels, ids, mask_paths)

    fingerprint = stable_hash(
        "imagefolder",
        file_listing_digest(all_images, path),
        file_listing_digest(all_masks, mask_root) if mask_root is not None else "",
    )
    if "all" in sources:
        splits: dict[str, Source] = _split_sources(sources["all"])
        how = f"split {round((1 - TEST_FRACTION) * 100)}/{round(TEST_FRACTION * 100)} by file hash"
    else:
        splits = dict(sources)
        how = " and ".join(f"{folder.name}/" for folder in split_dirs.values()) + " as given"
    return Dataset(
        spec=spec or f"imagefolder:{path}",
        classes=class_names,
        head_subset=head_subset,
        splits=splits,
        fingerprint=fingerprint,
        has_masks=mask_root is not None,
        label_space=label_space,
        description=(
            f"image folder {path}: {len(all_images)} images in {len(names)} classes, {how}"
            + (f", masks from {mask_root}" if mask_root is not None else "")
        ),
    )


def imagenet_c(path: Path, clean: Path, spec: str = "") -> Dataset:
    """ImageNet-C as released (``path/<corruption>/<1..5>/<wnid>/<file>``) plus clean images."""
    layout = "path/<corruption>/<severity 1..5>/<wnid>/<image files>"
    path = require_dir(path, "ImageNet-C path", layout)
    clean = require_dir(clean, "clean ImageNet validation folder", "clean/<wnid>/<image files>")

    clean_files = _class_files(clean, "clean/<wnid>/<image files>")
    not_wnid = [name for name in clean_files if not _WNID.fullmatch(name)]
    if not_wnid:
        raise DataError(
            f"clean folder {clean} has class folder(s) {', '.join(not_wnid[:5])} that are not "
            "ImageNet synset ids (n########); sort the validation images into wnid folders"
        )
    label_of = _wnid_labels(sorted(clean_files), clean)
    clean_images = [p for wnid in sorted(clean_files) for p in clean_files[wnid]]
    clean_ids = [p.relative_to(clean).as_posix() for p in clean_images]
    clean_labels = [label_of[wnid] for wnid in sorted(clean_files) for _ in clean_files[wnid]]
    clean_source = FileSource(clean_images, clean_labels, clean_ids)
    label_by_id = dict(zip(clean_ids, clean_labels, strict=True))

    corruptions = _subdirs(path)
    if not corruptions:
        raise DataError(f"ImageNet-C path {path} has no corruption folders; expected {layout}")
    released: dict[str, dict[str, Source]] = {}
    corrupted_files: list[Path] = []
    for corruption in corruptions:
        severities = _subdirs(corruption)
        if not severities:
            raise DataError(
                f"corruption folder {corruption} has no severity folders 1..5; expected {layout}"
            )
        for severity in sorted(severities, key=lambda d: d.name):
            if severity.name not in IMAGENET_C_SEVERITIES:
                raise DataError(
                    f"severity folder {severity} is not named 1..5; expected {layout} (is the "
                    "path one level too deep or too shallow?)"
                )
            files = _class_files(severity, layout)
            images = [p for wnid in sorted(files) for p in files[wnid]]
            ids = [p.relative_to(severity).as_posix() for p in images]
            orphans = [str(p) for p, i in zip(images, ids, strict=True) if i not in label_by_id]
            if orphans:
                raise DataError(
                    f"{len(orphans)} corrupted file(s) have no clean counterpart in {clean} "
                    f"(e.g. {', '.join(orphans[:5])}); the clean folder must hold the same "
                    "<wnid>/<file name> as the corrupted ones"
                )
            variant = corruption_id(corruption.name, int(severity.name))
            labels = [label_by_id[i] for i in ids]
            released[variant] = {"test": FileSource(images, labels, ids)}
            corrupted_files.extend(images)

    return Dataset(
        spec=spec or f"imagenet-c:{path},clean={clean}",
        classes=imagenet_wnids(),
        splits={"test": clean_source},
        fingerprint=stable_hash(
            "imagenet-c",
            file_listing_digest(corrupted_files, path),
            file_listing_digest(clean_images, clean),
        ),
        label_space=IMAGENET_LABEL_SPACE,
        released=released,
        description=(
            f"ImageNet-C {path}: {len(released)} released corruption/severity variants over "
            f"{len(clean_source)} clean images from {clean}"
        ),
    )


def open_npy(file: Path, mmap: bool = True) -> np.ndarray:
    try:
        # mmap_mode keeps the pixels on disk until a row is loaded.
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {str(file)!r} as a .npy array ({exc}); replace it") from None


def in9(path: Path, spec: str = "") -> Dataset:
    """ImageNet-9 backgrounds challenge: ``path/<variant>/val/<class>/*`` and ``fg_mask``.

    ``original/val`` is the ``test`` split that every released variant re-renders;
    ``original/train`` (IN-9L, the released training set), when present, is the ``train``
    split, with ids ``train/<class>/<file>`` so they never meet the test ids.
    """
    layout = "path/original/val/<class>/<image files>, path/<variant>/val/..., path/fg_mask/val/..."
    path = require_dir(path, "ImageNet-9 path", layout)
    original = path / IN9_ORIGINAL / "val"
    if not original.is_dir():
        raise DataError(f"{original} does not exist; ImageNet-9 needs {layout}")
    files = _class_files(original, layout)
    names = sorted(files)
    images = [p for cls in names for p in files[cls]]
    labels = [i for i, cls in enumerate(names) for _ in files[cls]]
    ids = [p.relative_to(original).as_posix() for p in images]
    label_by_id = dict(zip(ids, labels, strict=True))
    splits: dict[str, Source] = {}
    train_note = "no original/train (IN-9L)"
    train_images: list[Path] = []
    train_dir = path / IN9_ORIGINAL / "train"
    if train_dir.is_dir():
        train_files = _class_files(train_dir, "path/original/train/<class>/<image files>")
        unknown = sorted(set(train_files) - set(names))
        if unknown:
            raise DataError(
                f"{train_dir} has class folder(s) {', '.join(unknown[:5])} that "
                f"{original} lacks; IN-9L's train classes must be the same nine "
                f"({', '.join(names)})"
            )
        train_images = [p for cls in sorted(train_files) for p in train_files[cls]]
        splits["train"] = FileSource(
            train_images,
            [names.index(cls) for cls in sorted(train_files) for _ in train_files[cls]],
            [p.relative_to(path / IN9_ORIGINAL).as_posix() for p in train_images],
        )
        train_note = f"{len(train_images)} train images from original/train (IN-9L)"

    mask_paths: list[Path] | None = None
    mask_note = "no fg_mask folder"
    mask_root = path / IN9_MASKS / "val"
    if mask_root.is_dir():
        found = _find_masks(images, original, mask_root)
        missing = sum(m is None for m in found)
        if missing:
            # A partial mask set cannot score every image, so masks are left out entirely.
            mask_note = f"masks not used: {missing} of {len(images)} images have none"
        else:
            mask_paths = [m for m in found if m is not None]
            mask_note = f"foreground masks from {mask_root}"

    released: dict[str, dict[str, Source]] = {}
    listed: list[Path] = list(images) + list(mask_paths or []) + train_images
    for variant in IN9_RELEASED:
        if not (path / variant).is_dir():
            continue
        folder = path / variant / "val"
        if not folder.is_dir():
            raise DataError(f"{path / variant} has no val/ folder; expected {layout}")
        variant_files = _class_files(folder, layout)
        variant_images = [p for cls in sorted(variant_files) for p in variant_files[cls]]
        variant_ids = [p.relative_to(folder).as_posix() for p in variant_images]
        orphans = [
            str(p) for p, i in zip(variant_images, variant_ids, strict=True) if i not in label_by_id
        ]
        if orphans:
            raise DataError(
                f"{len(orphans)} file(s) of variant {variant} have no counterpart in {original} "
                f"(e.g. {', '.join(orphans[:5])}); each variant must reuse original's "
                "<class>/<file name>"
            )
        variant_labels = [label_by_id[i] for i in variant_ids]
        released[variant] = {"test": FileSource(variant_images, variant_labels, variant_ids)}
        listed.extend(variant_images)

    from pytest_sslrobust.classmaps import IMAGENET_9, IN9_SUPERCLASSES

    released_names = [f"{i:02d}_{name}" for i, (name, _) in enumerate(IN9_SUPERCLASSES)]
    return Dataset(
        spec=spec or f"in9:{path}",
        classes=tuple(names),
        # The released nine superclasses: a 1000-way ImageNet head maps onto them.
        label_space=IMAGENET_9 if names == released_names else None,
        splits={**splits, "test": FileSource(images, labels, ids, mask_paths)},
        fingerprint=stable_hash("in9", file_listing_digest(listed, path)),
        has_masks=mask_paths is not None,
        released=released,
        description=(
            f"ImageNet-9 {path}: {len(images)} original images in {len(names)} classes, "
            f"released variants {', '.join(released) or 'none'}; {mask_note}; {train_note}"
        ),
    )


def _check_image_shape(image: np.ndarray, index: int) -> None:
    ok = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 2, 3, 4))
    if not ok or image.size == 0:
        raise DataError(
            f"image {index} has shape {image.shape}; expected HxW, HxWx3 or HxWx4 pixels"
        )


def from_arrays(
    images: np.ndarray | Sequence[np.ndarray],
    labels: Sequence[int] | np.ndarray,
    *,
    ids: Sequence[str] | None = None,
    masks: np.ndarray | Sequence[np.ndarray] | None = None,
    classes: Sequence[str] | None = None,
    name: str = "arrays",
    test_fraction: float = TEST_FRACTION,
) -> Dataset:
    """A dataset over in-memory images (N x H x W x 3, or a list of any-size images).

    Splits ``train``/``test`` by a hash of each id, plus ``all``.
    """
    label_array = np.asarray(labels)
    if len(images) != len(label_array):
        raise DataError(f"{name}: {len(images)} images but {len(label_array)} labels")
    if len(images) == 0:
        raise DataError(f"{name}: no images")
    if label_array.ndim != 1 or not np.issubdtype(label_array.dtype, np.integer):
        raise DataError(
            f"{name}: labels must be a 1-D sequence of integers, got dtype {label_array.dtype} "
            f"shape {label_array.shape}"
        )
    if label_array.min() < 0:
        raise DataError(f"{name}: labels must be >= 0, got {int(label_array.min())}")
    label_array = label_array.astype(np.int64)
    item_ids = [f"{i:06d}" for i in range(len(images))] if ids is None else [str(i) for i in ids]
    if len(item_ids) != len(images):
        raise DataError(f"{name}: {len(images)} images but {len(item_ids)} ids")
    if len(set(item_ids)) != len(item_ids):
        raise DataError(f"{name}: ids must be unique")
    if classes is None:
        class_names = tuple(str(i) for i in range(int(label_array.max()) + 1))
    else:
        class_names = tuple(classes)
        if label_array.max() >= len(class_names):
            raise DataError(
                f"{name}: label {int(label_array.max())} has no name among {len(class_names)} "
                "classes"
            )
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"{name}: test_fraction must be between 0 and 1, got {test_fraction}")
    if masks is not None and len(masks) != len(images):
        raise DataError(f"{name}: {len(images)} images but {len(masks)} masks")

    # Arrays live in memory, so hashing their contents is cheap and catches any edit.
    digest = hashlib.sha256()
    for i in range(len(images)):
        image = np.asarray(images[i])
        _check_image_shape(image, i)
        digest.update(f"{image.shape}{image.dtype}".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        if masks is not None:
            mask = np.asarray(masks[i])
            if mask.shape != image.shape[:2]:
                raise DataError(
                    f"{name}: mask {i} has shape {mask.shape} but image {i} is "
                    f"{image.shape[0]}x{image.shape[1]}; masks must be HxW like their images"
                )
            digest.update(np.ascontiguousarray(mask > 0).tobytes())
    digest.update(label_array.tobytes())
    digest.update("\0".join(item_ids).encode())

    base = ArraySource(images, label_array, item_ids, masks, what=name)
    return Dataset(
        spec=f"arrays:{name}",
        classes=class_names,
        splits=_split_sources(base, test_fraction),
        fingerprint=stable_hash("arrays", name, digest.hexdigest()),
        has_masks=masks is not None,
        description=f"arrays {name!r}: {len(images)} images in {len(class_names)} classes",
    )


def __getattr__(name: str) -> object:
    # CIFAR-C moved to data/cifar.py; the old import path keeps working.
    if name in ("cifar_c", "CIFAR10_CLASSES", "CIFAR_SEVERITIES"):
        from pytest_sslrobust.data import cifar

        return getattr(cifar, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
