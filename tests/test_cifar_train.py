"""CIFAR-C with its training split: the released binary batches (plain bytes, never the
pickled python batches) or a .npy of training images, matched to the corrupted test set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_sslrobust.data.base import DataError
from pytest_sslrobust.data.cifar import BinaryBatchSource, cifar_c
from pytest_sslrobust.data.specs import load_dataset, validate_data_spec

N_TEST = 4


def write_cifar_c(root: Path, classes: int = 10) -> None:
    root.mkdir(parents=True)
    labels = (np.arange(N_TEST) * 33) % classes  # CIFAR-100's reach 99, as released
    np.save(root / "labels.npy", np.tile(labels, 5))
    rng = np.random.default_rng(0)
    np.save(root / "fog.npy", rng.integers(0, 255, size=(5 * N_TEST, 32, 32, 3), dtype=np.uint8))


def images_and_labels(n: int, seed: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, size=(n, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, classes, size=n)


def records(images: np.ndarray, *label_columns: np.ndarray) -> bytes:
    """The released binary layout: label byte(s), then the R, G and B planes row-major."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    labels = np.stack(label_columns, axis=1).astype(np.uint8)
    return np.concatenate([labels, planes], axis=1).tobytes()


def write_cifar10_bin(folder: Path, per_batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True)
    images, labels = images_and_labels(5 * per_batch, seed=1, classes=10)
    for b in range(5):
        part = slice(b * per_batch, (b + 1) * per_batch)
        (folder / f"data_batch_{b + 1}.bin").write_bytes(records(images[part], labels[part]))
    (folder / "test_batch.bin").write_bytes(records(images[:2], labels[:2]))
    return images, labels


def test_binary_batches_are_the_train_split_decoded_exactly(tmp_path: Path) -> None:
    write_cifar_c(tmp_path / "CIFAR-10-C")
    images, labels = write_cifar10_bin(tmp_path / "cifar-10-batches-bin")
    ds = cifar_c(tmp_path / "CIFAR-10-C", train=tmp_path / "cifar-10-batches-bin")
    train = ds.split("train")
    assert isinstance(train, BinaryBatchSource)
    assert len(train) == 15 and train.ids[0] == "train/00000"
    assert train.labels.tolist() == labels.tolist()
    for index in (0, 4, 14):  # first batch, a middle one, the last record
        item = train.load(index)
        assert item.image.shape == (32, 32, 3) and item.image.dtype == np.uint8
        assert np.array_equal(item.image, images[index])
        assert item.label == labels[index]
    assert "15 training images" in ds.description
    assert ds.fingerprint != cifar_c(tmp_path / "CIFAR-10-C").fingerprint


def test_cifar100_binary_uses_the_fine_label(tmp_path: Path) -> None:
    write_cifar_c(tmp_path / "CIFAR-100-C", classes=100)
    images, fine = images_and_labels(6, seed=2, classes=100)
    coarse = fine // 5
    (tmp_path / "cifar-100-binary").mkdir()
    (tmp_path / "cifar-100-binary" / "train.bin").write_bytes(records(images, coarse, fine))
    ds = cifar_c(tmp_path / "CIFAR-100-C", train=tmp_path / "cifar-100-binary")
    assert ds.split("train").labels.tolist() == fine.tolist()
    assert np.array_equal(ds.split("train").load(5).image, images[5])


def test_npy_train_images_with_their_labels_through_the_spec(tmp_path: Path) -> None:
    write_cifar_c(tmp_path / "c")
    images, labels = images_and_labels(8, seed=3, classes=10)
    np.save(tmp_path / "train_x.npy", images)
    np.save(tmp_path / "train_y.npy", labels)
    spec = f"cifar-c:{tmp_path / 'c'},train={tmp_path / 'train_x.npy'},train_labels={tmp_path / 'train_y.npy'}"
    assert validate_data_spec(spec) is None
    ds = load_dataset(spec)
    assert set(ds.splits) == {"train"}
    assert ds.split("train").labels.tolist() == labels.tolist()
    assert np.array_equal(ds.split("train").load(7).image, images[7])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "data_batch_1").write_bytes(b"x"), "pickled python version"),
        (lambda d: (d / "other.bin").write_bytes(b"x"), "neither data_batch_1..5.bin"),
    ],
)
def test_folder_without_binary_batches_is_refused(tmp_path: Path, make, message) -> None:
    write_cifar_c(tmp_path / "c")
    (tmp_path / "batches").mkdir()
    make(tmp_path / "batches")
    with pytest.raises(DataError, match=message):
        cifar_c(tmp_path / "c", train=tmp_path / "batches")


def test_truncated_batch_and_mismatched_label_space_are_refused(tmp_path: Path) -> None:
    write_cifar_c(tmp_path / "c")
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar10_bin(folder)
    with open(folder / "data_batch_3.bin", "ab") as handle:
        handle.write(b"\0" * 7)
    with pytest.raises(DataError, match=r"data_batch_3\.bin has \d+ bytes, not a whole number"):
        cifar_c(tmp_path / "c", train=folder)

    images, _ = images_and_labels(4, seed=4, classes=10)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", np.array([0, 3, 57, 99]))
    with pytest.raises(DataError, match=r"labels 0\.\.99.*10 classes \(CIFAR-10\)"):
        cifar_c(tmp_path / "c", train=tmp_path / "x.npy", train_labels=tmp_path / "y.npy")
    with pytest.raises(DataError, match="add train_labels="):
        cifar_c(tmp_path / "c", train=tmp_path / "x.npy")
    with pytest.raises(DataError, match="drop train_labels="):
        cifar_c(tmp_path / "c", train=folder, train_labels=tmp_path / "y.npy")
