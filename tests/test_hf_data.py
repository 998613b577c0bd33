"""``hf:`` data: Hugging Face datasets on local disk (save_to_disk and hub-style parquet), read
offline with the ``datasets`` library, images decoded per item."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_sslrobust.data.base import DataError
from pytest_sslrobust.data.specs import load_dataset, validate_data_spec

datasets = pytest.importorskip("datasets", reason="the hf extra (datasets) is not installed")

CLASSES = ["apple", "bear", "castle"]


def pictures(n: int, seed: int) -> tuple[list[Image.Image], np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    arrays = rng.integers(0, 255, size=(n, 12, 10, 3), dtype=np.uint8)
    labels = [int(v) for v in np.arange(n) % len(CLASSES)]
    return [Image.fromarray(a) for a in arrays], arrays, labels


def table(n: int, seed: int, **columns):
    images, arrays, labels = pictures(n, seed)
    features = datasets.Features(
        {
            "img": datasets.Image(),
            "fine_label": datasets.ClassLabel(names=CLASSES),
            "note": datasets.Value("string"),
        }
    )
    data = {"img": images, "fine_label": labels, "note": ["x"] * n, **columns}
    return datasets.Dataset.from_dict(data, features=features), arrays, labels


def test_save_to_disk_splits_classes_and_exact_pixels(tmp_path: Path) -> None:
    train, _, train_labels = table(9, seed=0)
    test, test_arrays, test_labels = table(6, seed=1)
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "ds"))
    spec = f"hf:{tmp_path / 'ds'}"
    assert validate_data_spec(spec) is None
    ds = load_dataset(spec)
    assert ds.classes == tuple(CLASSES)
    assert set(ds.splits) == {"train", "test"}
    assert ds.split("train").labels.tolist() == train_labels
    assert ds.split("test").ids[:2] == ("test/000000", "test/000001")
    item = ds.split("test").load(4)
    assert item.label == test_labels[4] and np.array_equal(item.image, test_arrays[4])
    assert "image 'img', label 'fine_label'" in ds.description
    # Nothing was decoded up front: the source holds the arrow table, not pixels.
    assert not any(
        isinstance(v, np.ndarray) and v.ndim == 4 for v in vars(ds.split("test")).values()
    )


def test_hub_parquet_layout_and_split_choice(tmp_path: Path) -> None:
    train, _, _ = table(9, seed=2)
    validation, val_arrays, _ = table(5, seed=3)
    (tmp_path / "hub" / "data").mkdir(parents=True)
    train.to_parquet(str(tmp_path / "hub" / "data" / "train-00000-of-00001.parquet"))
    validation.to_parquet(str(tmp_path / "hub" / "data" / "validation-00000-of-00001.parquet"))
    ds = load_dataset(f"hf:{tmp_path / 'hub'}")
    # validation is scored as test when there is no test split
    assert set(ds.splits) == {"train", "test"}
    assert len(ds.split("test")) == 5
    assert np.array_equal(ds.split("test").load(0).image, val_arrays[0])
    assert ds.classes == tuple(CLASSES)
    chosen = load_dataset(f"hf:{tmp_path / 'hub'},split=train")
    assert set(chosen.splits) == {"test", "validation"} and len(chosen.split("test")) == 9
    assert chosen.fingerprint != ds.fingerprint


def test_one_split_is_divided_and_plain_labels_become_classes(tmp_path: Path) -> None:
    images, _, _ = pictures(20, seed=4)
    plain = datasets.Dataset.from_dict(
        {"photo": images, "kind": [7, 3] * 10},
        features=datasets.Features({"photo": datasets.Image(), "kind": datasets.Value("int64")}),
    )
    plain.save_to_disk(str(tmp_path / "one"))
    ds = load_dataset(f"hf:{tmp_path / 'one'},image=photo,label=kind")
    assert ds.classes == ("3", "7")
    assert set(ds.splits) == {"train", "test"}
    assert len(ds.split("train")) + len(ds.split("test")) == 20
    assert set(ds.split("test").labels.tolist()) <= {0, 1}


def test_bad_hf_input_is_one_clear_error(tmp_path: Path) -> None:
    train, _, _ = table(4, seed=5)
    datasets.DatasetDict({"train": train, "extra": train}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(DataError, match=r"none is a test split: name the one to score with split="):
        load_dataset(f"hf:{tmp_path / 'ds'}")
    with pytest.raises(DataError, match=r"no split 'test2'; splits: train, extra"):
        load_dataset(f"hf:{tmp_path / 'ds'},split=test2")
    with pytest.raises(DataError, match=r"no column 'pixels'; columns: img, fine_label, note"):
        load_dataset(f"hf:{tmp_path / 'ds'},split=train,image=pixels")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no save_to_disk dataset"):
        load_dataset(f"hf:{tmp_path / 'empty'}")
    assert "unknown option 'masks'" in validate_data_spec(f"hf:{tmp_path},masks=x")


def test_missing_library_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    (tmp_path / "state.json").write_text("{}")
    with pytest.raises(DataError, match=r"pip install 'pytest-sslrobust\[hf\]'"):
        load_dataset(f"hf:{tmp_path}")
