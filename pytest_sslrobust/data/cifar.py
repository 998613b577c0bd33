"""CIFAR-10-C / CIFAR-100-C as released, and the CIFAR training images a probe is fitted on.

``cifar_c(path, clean=, train=, train_labels=)``: the corrupted test sets
(``path/<corruption>.npy``, 5 x N rows, and ``path/labels.npy``), memory-mapped; ``clean=``
the N clean test images; ``train=`` the training images, either the released binary batches
(``cifar-10-batches-bin``: ``data_batch_1..5.bin``, records of one label byte and 3,072 pixel
bytes; ``cifar-100-binary``: ``train.bin``, coarse and fine label bytes, the fine label used)
read as plain bytes, or an ``N x 32 x 32 x 3`` ``.npy`` with its labels in ``train_labels=``.
The pickled python batches are never read (unpickling runs code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pytest_sslrobust.data.base import (
    DataError,
    Dataset,
    Item,
    Source,
    file_listing_digest,
    stable_hash,
)
from pytest_sslrobust.data.sources import ArraySource, is_hidden, open_npy, require_dir
from pytest_sslrobust.vocabulary import corruption_id

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR_SEVERITIES = 5


def cifar_c(
    path: Path,
    clean: Path | None = None,
    spec: str = "",
    train: Path | None = None,
    train_labels: Path | None = None,
) -> Dataset:
    """CIFAR-10-C / CIFAR-100-C as released: ``path/<corruption>.npy`` plus ``labels.npy``;
    ``clean=`` the clean test images, ``train=`` (and ``train_labels=``) the training split."""
    layout = "path/<corruption>.npy (5*N rows, severity 1 first) and path/labels.npy"
    path = require_dir(path, "CIFAR-C path", layout)
    labels_file = path / "labels.npy"
    if not labels_file.is_file():
        raise DataError(f"{labels_file} does not exist; expected {layout}")
    labels = open_npy(labels_file, mmap=False)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
        raise DataError(
            f"{labels_file} must be a non-empty 1-D integer array, got shape {labels.shape} "
            f"dtype {labels.dtype}"
        )
    rows = len(labels)
    if rows % CIFAR_SEVERITIES:
        raise DataError(f"{labels_file} has {rows} labels, not a multiple of 5 (one per severity)")
    n = rows // CIFAR_SEVERITIES
    per_severity = labels.reshape(CIFAR_SEVERITIES, n)
    # Ids are shared by all severities and the clean images, so their labels must agree.
    if not (per_severity == per_severity[0]).all():
        raise DataError(f"{labels_file} does not repeat the same {n} labels for each severity")
    labels = per_severity[0].astype(np.int64)
    if labels.min() < 0 or labels.max() >= 100:
        raise DataError(f"{labels_file} has labels outside 0..99")
    train_source, train_files = (None, []) if train is None else cifar_train(train, train_labels)
    if train_source is None and train_labels is not None:
        raise DataError("train_labels= needs train=IMAGES.npy beside it")
    classes = CIFAR10_CLASSES if labels.max() < 10 else tuple(str(i) for i in range(100))
    if train_source is not None:
        low, high = int(train_source.labels.min()), int(train_source.labels.max())
        if low < 0 or high >= len(classes):
            raise DataError(
                f"train {str(train)!r} has labels {low}..{high}, but {labels_file} holds "
                f"{len(classes)} classes ({'CIFAR-10' if len(classes) == 10 else 'CIFAR-100'}): "
                "give the training set of the same CIFAR"
            )
    ids = [f"{i:05d}" for i in range(n)]

    files = sorted(
        (
            f
            for f in path.iterdir()
            if f.suffix == ".npy"
            and f.is_file()
            and f.name != labels_file.name
            and not is_hidden(f.name)
        ),
        key=lambda f: f.name,
    )
    if not files:
        raise DataError(f"{path} has no <corruption>.npy files besides labels.npy")
    released: dict[str, dict[str, Source]] = {}
    for file in files:
        images = open_npy(file)
        if images.ndim not in (3, 4) or len(images) != rows:
            raise DataError(
                f"{file} has shape {images.shape}; expected {rows} rows (5 severities x {n}, "
                "as many as labels.npy) of HxW or HxWxC images"
            )
        for s in range(1, CIFAR_SEVERITIES + 1):
            view = images[(s - 1) * n : s * n]
            released[corruption_id(file.stem, s)] = {
                "test": ArraySource(view, labels, ids, what=f"{file} severity {s}")
            }

    splits: dict[str, Source] = {} if train_source is None else {"train": train_source}
    clean_digest = ""
    if clean is not None:
        clean = Path(clean)
        if not clean.is_file() or clean.suffix != ".npy":
            raise DataError(
                f"clean {str(clean)!r} must be a .npy file of the {n} clean test images "
                "(N x H x W x 3 uint8, in the order of labels.npy)"
            )
        clean_images = open_npy(clean)
        if clean_images.ndim not in (3, 4) or len(clean_images) != n:
            raise DataError(
                f"{clean} has shape {clean_images.shape}; expected {n} rows, one per label of "
                "one severity in labels.npy"
            )
        splits["test"] = ArraySource(clean_images, labels, ids, what=str(clean))
        clean_digest = file_listing_digest([clean], clean.parent)

    description = f"CIFAR-C {path}: {len(files)} corruptions x 5 severities of {n} images"
    description += (
        f", clean images from {clean}"
        if clean is not None
        else "; clean images were not given (add clean=PATH.npy), so there is no clean split"
    )
    if train_source is not None:
        description += f"; {len(train_source)} training images from {train}"
    return Dataset(
        spec=spec or f"cifar-c:{path}",
        classes=classes,
        splits=splits,
        fingerprint=stable_hash(
            "cifar-c",
            file_listing_digest([labels_file, *files], path),
            clean_digest,
            *(file_listing_digest([file], file.parent) for file in train_files),
        ),
        released=released,
        description=description,
    )


CIFAR_SIDE = 32
_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE
# Binary layouts: (file names, label bytes per record, which label byte is the class).
_BINARY_LAYOUTS = (
    (tuple(f"data_batch_{i}.bin" for i in range(1, 6)), 1, 0),  # cifar-10-batches-bin
    (("train.bin",), 2, 1),  # cifar-100-binary: coarse, fine
)


class BinaryBatchSource(Source):
    """Records of the released CIFAR binary batches, memory-mapped; a record is decoded
    (channel planes to H x W x 3) only when its item is loaded."""

    def __init__(self, files: list[Path], label_bytes: int, label_at: int) -> None:
        record = label_bytes + _PIXELS
        self.files = tuple(files)
        self._rows: list[np.ndarray] = []
        for file in files:
            size = file.stat().st_size
            if size == 0 or size % record:
                raise DataError(
                    f"{file} has {size} bytes, not a whole number of {record}-byte CIFAR "
                    f"records ({label_bytes} label byte(s) + {_PIXELS} pixels); replace it"
                )
            self._rows.append(np.memmap(file, dtype=np.uint8, mode="r").reshape(-1, record))
        self._offsets = np.cumsum([0, *(len(rows) for rows in self._rows)])
        self._label_bytes = label_bytes
        self.labels = np.concatenate([rows[:, label_at] for rows in self._rows]).astype(np.int64)
        self.ids = tuple(f"train/{i:05d}" for i in range(len(self.labels)))

    def load(self, index: int) -> Item:
        which = int(np.searchsorted(self._offsets, index, side="right") - 1)
        row = self._rows[which][index - self._offsets[which]]
        planes = np.asarray(row[self._label_bytes :]).reshape(3, CIFAR_SIDE, CIFAR_SIDE)
        image = np.ascontiguousarray(planes.transpose(1, 2, 0))
        return Item(image, int(self.labels[index]), self.ids[index], None)


def cifar_train(train: Path, train_labels: Path | None = None) -> tuple[Source, list[Path]]:
    """The CIFAR training images of ``train=`` and the files they were read from."""
    train = Path(train)
    if train.is_dir():
        if train_labels is not None:
            raise DataError(
                f"train_labels= is for a .npy of training images; {train} is a folder of "
                "binary batches, which carry their labels: drop train_labels="
            )
        for names, label_bytes, label_at in _BINARY_LAYOUTS:
            files = [train / name for name in names]
            if all(f.is_file() for f in files):
                return BinaryBatchSource(files, label_bytes, label_at), files
        pickled = [n for n in ("data_batch_1", "train") if (train / n).is_file()]
        hint = (
            f" ({pickled[0]} without .bin is the pickled python version, which is not read: "
            "download the binary version)"
            if pickled
            else ""
        )
        raise DataError(
            f"train folder {train} has neither data_batch_1..5.bin (cifar-10-batches-bin) nor "
            f"train.bin (cifar-100-binary){hint}"
        )
    if train.suffix != ".npy" or not train.is_file():
        raise DataError(
            f"train {str(train)!r} must be the folder of CIFAR binary batches "
            "(cifar-10-batches-bin) or a .npy of N x 32 x 32 x 3 training images"
        )
    if train_labels is None:
        raise DataError(f"train {str(train)!r} is a .npy of images: add train_labels=LABELS.npy")
    images = open_npy(train)
    labels = open_npy(Path(train_labels), mmap=False)
    if images.ndim not in (3, 4) or labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{train} has shape {images.shape} and {train_labels} shape {labels.shape}; "
            "expected N images and N labels"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{train_labels} has dtype {labels.dtype}; expected integer labels")
    ids = [f"train/{i:05d}" for i in range(len(labels))]
    return ArraySource(images, labels, ids, what=str(train)), [train, Path(train_labels)]
