"""Hugging Face datasets on local disk: ``hf:PATH[,split=NAME,image=COLUMN,label=COLUMN]``.

``PATH`` is a folder written by ``save_to_disk`` (a ``DatasetDict`` or one ``Dataset``), a
folder of parquet files as the hub stores them (``data/<split>-00000-of-00001.parquet`` or
``<split>/*.parquet``), or one ``.parquet`` file. It is read with the ``datasets`` library
(the ``hf`` extra), offline: arrow files are memory-mapped and an image is decoded only when
its item is loaded, so a dataset of any size streams through extraction.

Splits keep their names (``train``, ``validation``, ...); ``split=NAME`` is the one scored as
``test`` (default: ``test``, else ``validation``); a dataset with a single split and no
``split=`` is divided 70/30 into ``train``/``test`` by a hash of each id, as ``imagefolder:``
does. Classes come from the label column's ``ClassLabel`` names, else the sorted label values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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

IMAGE_COLUMNS = ("image", "img", "pixel_values", "picture")
LABEL_COLUMNS = ("label", "labels", "fine_label", "target", "class")
HELD_OUT = ("test", "validation", "valid", "val")
_SALT = "sslrobust-split"
_TEST_FRACTION = 0.3


def _datasets() -> Any:
    # Offline unless the user said otherwise: a local path must never reach the hub.
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError:
        raise DataError(
            "hf: data needs the datasets library: pip install 'pytest-sslrobust[hf]'"
        ) from None
    return datasets


class HFSource(Source):
    """Rows of a ``datasets.Dataset``; a row's image is decoded only when it is loaded."""

    def __init__(self, table: Any, image: str, label: str, ids: list[str], labels: Any) -> None:
        self.table = table
        self.image = image
        self.label = label
        self.ids = tuple(ids)
        self.labels = np.asarray(labels, dtype=np.int64)

    def load(self, index: int) -> Item:
        row = self.table[int(index)]
        picture = row[self.image]
        if picture is None:
            raise DataError(f"hf: row {index} ({self.ids[index]}) has no {self.image!r} value")
        image = as_rgb_uint8(np.asarray(_rgb(picture)), f"hf row {self.ids[index]}")
        return Item(image, int(self.labels[index]), self.ids[index], None)


def _rgb(picture: Any) -> Any:
    """A PIL image as RGB (palette, greyscale and alpha images converted); arrays as given."""
    mode = getattr(picture, "mode", None)
    if mode is not None and mode not in ("RGB", "L"):
        return picture.convert("RGB")
    return picture


def _open(path: Path) -> tuple[Mapping[str, Any], list[Path]]:
    """The dataset's splits and the files they are read from."""
    datasets = _datasets()
    if path.is_file() and path.suffix == ".parquet":
        return {"train": _parquet(datasets, [path])}, [path]
    if not path.is_dir():
        raise DataError(
            f"hf: {str(path)!r} is neither a folder (save_to_disk or parquet files) nor a "
            ".parquet file"
        )
    if any((path / name).is_file() for name in ("dataset_dict.json", "state.json")):
        try:
            loaded = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as exc:
            raise DataError(f"hf: cannot read {path} with load_from_disk ({exc})") from None
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if isinstance(loaded, datasets.DatasetDict):
            return dict(loaded), files
        return {"train": loaded}, files
    parquet = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not parquet:
        raise DataError(
            f"hf: {path} holds no save_to_disk dataset (dataset_dict.json or state.json) and "
            "no .parquet files"
        )
    by_split: dict[str, list[Path]] = {}
    for file in parquet:
        by_split.setdefault(_split_of(file, path), []).append(file)
    return {name: _parquet(datasets, files) for name, files in by_split.items()}, parquet


def _split_of(file: Path, root: Path) -> str:
    """The hub's naming: ``<split>-00000-of-00003.parquet`` or ``<split>/<anything>.parquet``."""
    stem = file.name.split("-", 1)[0].split(".", 1)[0]
    parent = file.parent.relative_to(root).parts
    if parent and parent[-1] not in ("data", "") and not file.name.startswith(parent[-1]):
        return parent[-1]
    return stem


def _parquet(datasets: Any, files: list[Path]) -> Any:
    try:
        return datasets.Dataset.from_parquet([str(f) for f in files], keep_in_memory=False)
    except Exception as exc:  # pyarrow raises its own types for damaged files
        raise DataError(
            f"hf: cannot read parquet {files[0]} ({type(exc).__name__}: {exc})"
        ) from None


def _column(table: Any, wanted: str | None, candidates: tuple[str, ...], kind: str) -> str:
    names = list(table.column_names)
    if wanted is not None:
        if wanted not in names:
            raise DataError(f"hf: no column {wanted!r}; columns: {', '.join(names)}")
        return wanted
    features = getattr(table, "features", {}) or {}
    feature_type = {"image": "Image", "label": "ClassLabel"}[kind]
    typed = [n for n in names if type(features.get(n)).__name__ == feature_type]
    for name in [*typed, *candidates]:
        if name in names:
            return name
    raise DataError(
        f"hf: no {kind} column found among {', '.join(names)}; name it with {kind}=COLUMN"
    )


def hf_dataset(
    path: Path,
    split: str | None = None,
    image: str | None = None,
    label: str | None = None,
    spec: str = "",
) -> Dataset:
    """The dataset at ``path`` (see the module docstring)."""
    path = Path(path)
    tables, files = _open(path)
    if split is not None and split not in tables:
        raise DataError(f"hf: {path} has no split {split!r}; splits: {', '.join(tables)}")
    first = next(iter(tables.values()))
    image_col = _column(first, image, IMAGE_COLUMNS, "image")
    label_col = _column(first, label, LABEL_COLUMNS, "label")
    feature = (getattr(first, "features", {}) or {}).get(label_col)
    names = getattr(feature, "names", None)
    raw = {name: np.asarray(table[label_col]) for name, table in tables.items()}
    if names:
        classes = tuple(str(n) for n in names)
        value_to_label = None
    else:
        values = sorted({v.item() for labels in raw.values() for v in np.unique(labels)})
        classes = tuple(str(v) for v in values)
        value_to_label = {v: i for i, v in enumerate(values)}
    sources: dict[str, Source] = {}
    for name, table in tables.items():
        labels = raw[name]
        if labels.ndim != 1 or (names and not np.issubdtype(labels.dtype, np.integer)):
            raise DataError(
                f"hf: split {name!r} column {label_col!r} is not one integer class per row"
            )
        if value_to_label is not None:
            labels = np.asarray([value_to_label[v.item()] for v in labels], dtype=np.int64)
        ids = [f"{name}/{i:06d}" for i in range(len(labels))]
        sources[name] = HFSource(table, image_col, label_col, ids, labels)
    test = split or next((n for n in HELD_OUT if n in sources), None)
    if test is None and len(sources) == 1:
        base = next(iter(sources.values()))
        train_idx, test_idx = deterministic_split(base.labels, base.ids, _TEST_FRACTION, _SALT)
        sources = {"train": IndexedSource(base, train_idx), "test": IndexedSource(base, test_idx)}
        how = "one split, divided 70/30 by a hash of each id"
    elif test is None:
        raise DataError(
            f"hf: {path} has splits {', '.join(sources)} and none is a test split: name the one "
            "to score with split=NAME"
        )
    else:
        sources = {("test" if n == test else n): s for n, s in sources.items()}
        how = f"{test!r} scored as test"
    sizes = ", ".join(f"{n} {len(s)}" for n, s in sources.items())
    return Dataset(
        spec=spec or f"hf:{path}",
        classes=classes,
        splits=sources,
        fingerprint=stable_hash(
            "hf", file_listing_digest(files, path if path.is_dir() else path.parent), test
        ),
        description=(
            f"Hugging Face dataset {path}: {sizes} images in {len(classes)} classes "
            f"(image {image_col!r}, label {label_col!r}); {how}"
        ),
    )
