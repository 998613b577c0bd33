"""Tests for the dataset readers in pytest_sslrobust.data.sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_sslrobust.data.base import DataError, Dataset, Source
from pytest_sslrobust.data.sources import (
    ArraySource,
    FileSource,
    cifar_c,
    from_arrays,
    imagefolder,
    imagenet_c,
    in9,
)


def write_image(
    path: Path, value: int = 0, size: tuple[int, int] = (8, 6), mode: str = "RGB"
) -> Path:
    """A flat image of ``value`` in every channel, ``size`` as (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fill: int | tuple[int, ...] = value if mode == "L" else (value,) * len(mode)
    Image.new(mode, size, fill).save(path)
    return path


def all_items(source: Source) -> list:
    return [source.load(i) for i in range(len(source))]


@pytest.fixture
def folder_a(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for c, cls in enumerate(["cat", "dog"]):
        for i in range(10):
            write_image(root / cls / f"{i:03d}.png", value=10 * c + i)
    # Not images, or hidden: all must be skipped.
    (root / "cat" / "notes.txt").write_text("not an image")
    write_image(root / "cat" / ".hidden.png")
    write_image(root / ".cache" / "x.png")
    return root


def test_imagefolder_layout_a_classes_ids_and_labels(folder_a: Path) -> None:
    ds = imagefolder(folder_a, spec="imagefolder:x")
    assert isinstance(ds, Dataset)
    assert ds.spec == "imagefolder:x"
    assert ds.classes == ("cat", "dog")
    assert ds.label_space is None
    assert not ds.has_masks
    everything = ds.split("all")
    assert len(everything) == 20
    assert everything.ids[:2] == ("cat/000.png", "cat/001.png")
    assert everything.ids[10] == "dog/000.png"
    for item_id, label in zip(everything.ids, everything.labels, strict=True):
        assert label == (0 if item_id.startswith("cat/") else 1)
    item = everything.load(12)
    assert item.id == "dog/002.png"
    assert item.label == 1
    assert item.image.dtype == np.uint8
    assert item.image.shape == (6, 8, 3)
    assert (item.image == 12).all()
    assert item.mask is None


def test_imagefolder_layout_a_splits_deterministic_disjoint_stratified(folder_a: Path) -> None:
    ds = imagefolder(folder_a)
    again = imagefolder(folder_a, spec="a different spec text")
    train, test = ds.split("train"), ds.split("test")
    assert set(train.ids).isdisjoint(test.ids)
    assert set(train.ids) | set(test.ids) == set(ds.split("all").ids)
    assert train.ids == again.split("train").ids
    assert test.ids == again.split("test").ids
    # 30% of each class of 10 is held out.
    assert np.bincount(test.labels).tolist() == [3, 3]
    assert np.bincount(train.labels).tolist() == [7, 7]
    item = test.load(0)
    assert item.id == test.ids[0]
    assert item.label == test.labels[0]
    assert ds.fingerprint == again.fingerprint


def test_imagefolder_fingerprint_follows_files(folder_a: Path) -> None:
    before = imagefolder(folder_a).fingerprint
    write_image(folder_a / "dog" / "extra.png")
    assert imagefolder(folder_a).fingerprint != before


def test_imagefolder_fingerprint_is_content_not_modification_time(folder_a: Path) -> None:
    import os

    before = imagefolder(folder_a).fingerprint
    image = folder_a / "cat" / "003.png"
    os.utime(image, ns=(10**18, 10**18))  # what a fresh git checkout does to every file
    assert imagefolder(folder_a).fingerprint == before
    data = image.read_bytes()
    write_image(image, value=200)  # same name and size, other pixels, a new mtime
    assert len(image.read_bytes()) == len(data)
    assert imagefolder(folder_a).fingerprint != before


def test_digest_memo_survives_sessions(folder_a: Path, tmp_path: Path) -> None:
    from pytest_sslrobust.data import base

    memo = tmp_path / "memo" / "file-digests.json"
    base.use_digest_memo(memo)
    try:
        first = imagefolder(folder_a).fingerprint
        assert memo.is_file() and len(json_load(memo)) >= 20
        base._DIGESTS.clear()
        base.use_digest_memo(memo)  # a new session reads the memo instead of the files
        assert len(base._DIGESTS) >= 20
        assert imagefolder(folder_a).fingerprint == first
    finally:
        base.use_digest_memo(None)


def json_load(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def test_imagefolder_converts_grayscale_and_rgba(tmp_path: Path) -> None:
    write_image(tmp_path / "a" / "gray.png", value=100, mode="L")
    rgba = tmp_path / "a" / "rgba.png"
    Image.fromarray(np.full((5, 7, 4), [10, 20, 30, 40], dtype=np.uint8)).save(rgba)
    source = imagefolder(tmp_path).split("all")
    assert source.ids == ("a/gray.png", "a/rgba.png")
    gray, color = all_items(source)
    assert gray.image.shape == (6, 8, 3) and gray.image.dtype == np.uint8
    assert (gray.image == 100).all()
    assert color.image.shape == (5, 7, 3) and color.image.dtype == np.uint8
    assert color.image[0, 0].tolist() == [10, 20, 30]


def test_imagefolder_layout_b_uses_given_splits(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / "train" / "cat" / f"{i}.png", value=i)
        write_image(tmp_path / "train" / "dog" / f"{i}.png", value=50 + i)
    # val has no cat folder: dog must still get label 1, not 0.
    write_image(tmp_path / "val" / "dog" / "v.png", value=99)
    ds = imagefolder(tmp_path)
    assert set(ds.splits) == {"train", "test"}
    assert ds.classes == ("cat", "dog")
    train, test = ds.split("train"), ds.split("test")
    assert train.ids[0] == "train/cat/0.png"
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert test.ids == ("val/dog/v.png",)
    item = test.load(0)
    assert item.label == 1
    assert (item.image == 99).all()


def test_imagefolder_train_val_and_test_are_three_splits(tmp_path: Path) -> None:
    for value, split in enumerate(("train", "val", "test")):
        write_image(tmp_path / split / "cat" / "0.png", value=10 * value)
        write_image(tmp_path / split / "dog" / "0.png", value=100 + 10 * value)
    ds = imagefolder(tmp_path)
    assert set(ds.splits) == {"train", "val", "test"}
    assert ds.split("val").ids == ("val/cat/0.png", "val/dog/0.png")
    assert ds.split("test").ids == ("test/cat/0.png", "test/dog/0.png")
    assert ds.split("test").labels.tolist() == [0, 1]
    assert (ds.split("test").load(1).image == 120).all()
    assert "train/ and val/ and test/ as given" in ds.description


def make_mask(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        Image.fromarray(array.astype(np.uint8) * 255).save(path)


def test_imagefolder_masks_load_aligned(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    square = np.zeros((6, 8), dtype=bool)
    square[1:4, 2:5] = True
    for cls in ("a", "b"):
        for i in range(2):
            write_image(images / cls / f"{i}.jpg")
    make_mask(masks / "a" / "0.png", square)
    make_mask(masks / "a" / "1.npy", ~square)
    make_mask(masks / "b" / "0.png", square)
    make_mask(masks / "b" / "1.png", square)
    ds = imagefolder(images, masks=masks)
    assert ds.has_masks
    by_id = {item.id: item for item in all_items(ds.split("all"))}
    first = by_id["a/0.jpg"].mask
    assert first is not None and first.dtype == bool
    assert (first == square).all()
    assert (by_id["a/1.jpg"].mask == ~square).all()
    assert imagefolder(images, masks=masks).fingerprint != imagefolder(images).fingerprint


def test_imagefolder_missing_mask_names_image(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_image(images / "a" / "0.png")
    write_image(images / "a" / "lonely.png")
    make_mask(masks / "a" / "0.png", np.ones((6, 8), dtype=bool))
    with pytest.raises(DataError, match=r"1 image\(s\).*a/lonely\.png"):
        imagefolder(images, masks=masks)


def test_imagefolder_mask_size_mismatch_names_mask_at_load(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_image(images / "a" / "0.png")
    make_mask(masks / "a" / "0.png", np.ones((3, 3), dtype=bool))
    source = imagefolder(images, masks=masks).split("all")
    with pytest.raises(DataError, match=r"masks/a/0\.png"):
        source.load(0)


def test_imagefolder_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        imagefolder(tmp_path / "nowhere")


def test_imagefolder_path_is_a_file(tmp_path: Path) -> None:
    file = write_image(tmp_path / "x.png")
    with pytest.raises(DataError, match="x.png.*not a directory"):
        imagefolder(file)


def test_imagefolder_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no class sub-folders"):
        imagefolder(tmp_path)


def test_imagefolder_class_folder_without_images(tmp_path: Path) -> None:
    write_image(tmp_path / "full" / "0.png")
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "empty_class" / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="class folder .*empty_class has no images"):
        imagefolder(tmp_path)


def test_imagefolder_truncated_jpeg_raises_at_load(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    good = tmp_path / "a" / "good.jpg"
    good.parent.mkdir()
    Image.fromarray(noise).save(good, quality=95)
    broken = tmp_path / "a" / "broken.jpg"
    data = good.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    # Listing must not decode: construction succeeds, the load names the file.
    source = imagefolder(tmp_path).split("all")
    assert source.ids == ("a/broken.jpg", "a/good.jpg")
    assert source.load(1).image.shape == (64, 64, 3)
    with pytest.raises(DataError, match=r"broken\.jpg"):
        source.load(0)


def test_imagefolder_garbage_with_image_suffix_raises_at_load(tmp_path: Path) -> None:
    write_image(tmp_path / "a" / "fine.png")
    (tmp_path / "a" / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    source = imagefolder(tmp_path).split("all")
    with pytest.raises(DataError, match=r"garbage\.jpg"):
        source.load(source.index_of()["a/garbage.jpg"])


def test_imagefolder_wnids_use_imagenet_indices(tmp_path: Path) -> None:
    # n01440764 (index 0) is absent: the others must keep their canonical indices.
    write_image(tmp_path / "n01443537" / "a.png")
    write_image(tmp_path / "n01484850" / "b.png")
    ds = imagefolder(tmp_path)
    assert ds.label_space == "imagenet-1k"
    assert len(ds.classes) == 1000
    assert ds.classes[:2] == ("n01440764", "n01443537")
    source = ds.split("all")
    assert dict(zip(source.ids, source.labels.tolist(), strict=True)) == {
        "n01443537/a.png": 1,
        "n01484850/b.png": 2,
    }
    assert source.load(0).label == 1
    write_image(tmp_path / "n01440764" / "c.png")
    assert imagefolder(tmp_path).split("all").labels.tolist() == [0, 1, 2]


def test_imagefolder_unknown_wnid(tmp_path: Path) -> None:
    write_image(tmp_path / "n01440764" / "a.png")
    write_image(tmp_path / "n99999999" / "b.png")
    with pytest.raises(DataError, match="n99999999"):
        imagefolder(tmp_path)


def test_file_source_checks_lengths(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        FileSource([tmp_path / "a.png"], [0, 1], ["a"])


# ImageNet-C


CLEAN_FILES = {"n01440764": ["a.JPEG", "b.JPEG"], "n01443537": ["c.JPEG"]}


@pytest.fixture
def imagenet_c_tree(tmp_path: Path) -> tuple[Path, Path]:
    clean, corrupted = tmp_path / "val", tmp_path / "imagenet-c"
    for wnid, names in CLEAN_FILES.items():
        for name in names:
            write_image(clean / wnid / name, value=0, size=(8, 8))
    for c, corruption in enumerate(["blur", "noise"]):
        for severity in (1, 2):
            for wnid, names in CLEAN_FILES.items():
                for name in names:
                    write_image(
                        corrupted / corruption / str(severity) / wnid / name,
                        value=100 * c + 10 * severity,
                        size=(8, 8),
                        mode="RGB",
                    )
    # Only some of the images were corrupted for this severity: a subset is fine.
    (corrupted / "noise" / "2" / "n01443537" / "c.JPEG").unlink()
    (corrupted / "noise" / "2" / "n01443537").rmdir()
    return corrupted, clean


def test_imagenet_c_released_align_with_clean(imagenet_c_tree: tuple[Path, Path]) -> None:
    corrupted, clean = imagenet_c_tree
    ds = imagenet_c(corrupted, clean=clean, spec="imagenet-c:x")
    assert ds.label_space == "imagenet-1k"
    assert len(ds.classes) == 1000
    test = ds.split("test")
    assert test.ids == ("n01440764/a.JPEG", "n01440764/b.JPEG", "n01443537/c.JPEG")
    assert test.labels.tolist() == [0, 0, 1]
    assert sorted(ds.released) == ["blur-s1", "blur-s2", "noise-s1", "noise-s2"]
    for variant, splits in ds.released.items():
        assert set(splits) == {"test"}
        source = splits["test"]
        clean_index = test.index_of()
        for item_id, label in zip(source.ids, source.labels, strict=True):
            assert label == test.labels[clean_index[item_id]], variant
    assert ds.released_split("noise-s2", "test").ids == test.ids[:2]
    item = ds.released_split("noise-s2", "test").load(1)
    assert item.id == "n01440764/b.JPEG" and item.label == 0
    # JPEG is lossy, so compare the mean colour rather than exact pixels.
    assert abs(float(item.image.mean()) - 120) < 3


def test_imagenet_c_bad_severity_folder(imagenet_c_tree: tuple[Path, Path]) -> None:
    corrupted, clean = imagenet_c_tree
    write_image(corrupted / "blur" / "6" / "n01440764" / "a.JPEG")
    with pytest.raises(DataError, match=r"blur/6 is not named 1\.\.5"):
        imagenet_c(corrupted, clean=clean)


def test_imagenet_c_orphan_corrupted_file(imagenet_c_tree: tuple[Path, Path]) -> None:
    corrupted, clean = imagenet_c_tree
    write_image(corrupted / "blur" / "1" / "n01440764" / "orphan.JPEG")
    with pytest.raises(DataError, match=r"no clean counterpart.*orphan\.JPEG"):
        imagenet_c(corrupted, clean=clean)


def test_imagenet_c_empty_path(tmp_path: Path, imagenet_c_tree: tuple[Path, Path]) -> None:
    _, clean = imagenet_c_tree
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no corruption folders"):
        imagenet_c(tmp_path / "empty", clean=clean)


def test_imagenet_c_clean_must_use_wnid_folders(imagenet_c_tree: tuple[Path, Path]) -> None:
    corrupted, clean = imagenet_c_tree
    write_image(clean / "cats" / "x.JPEG")
    with pytest.raises(DataError, match="cats"):
        imagenet_c(corrupted, clean=clean)


# CIFAR-C

N = 6


def write_cifar_c(root: Path, corruptions: tuple[str, ...] = ("fog", "snow")) -> np.ndarray:
    root.mkdir(parents=True, exist_ok=True)
    labels = np.array([0, 1, 2, 3, 4, 9])
    np.save(root / "labels.npy", np.tile(labels, 5))
    for c, corruption in enumerate(corruptions):
        images = np.zeros((5 * N, 4, 4, 3), dtype=np.uint8)
        for s in range(1, 6):
            for i in range(N):
                # Row content encodes corruption, severity and index.
                images[(s - 1) * N + i] = 100 * c + 10 * s + i
        np.save(root / f"{corruption}.npy", images)
    return labels


def test_cifar_c_severity_rows_and_memmap(tmp_path: Path) -> None:
    labels = write_cifar_c(tmp_path / "CIFAR-10-C")
    ds = cifar_c(tmp_path / "CIFAR-10-C", spec="cifar-c:x")
    assert ds.classes[0] == "airplane" and len(ds.classes) == 10
    assert ds.splits == {}
    assert "not given" in ds.description
    assert sorted(ds.released) == [f"{c}-s{s}" for c in ("fog", "snow") for s in range(1, 6)]
    source = ds.released_split("snow-s3", "test")
    assert isinstance(source, ArraySource)
    assert isinstance(source.images, np.memmap)
    assert source.ids == tuple(f"{i:05d}" for i in range(N))
    assert source.labels.tolist() == labels.tolist()
    for i in range(N):
        item = source.load(i)
        assert item.image.shape == (4, 4, 3) and item.image.dtype == np.uint8
        assert (item.image == 100 + 30 + i).all()
        assert item.label == labels[i]
        assert item.id == f"{i:05d}"
    assert (ds.released_split("fog-s5", "test").load(0).image == 50).all()


def test_cifar_c_with_clean(tmp_path: Path) -> None:
    labels = write_cifar_c(tmp_path / "c")
    clean = np.stack([np.full((4, 4, 3), 200 + i, dtype=np.uint8) for i in range(N)])
    np.save(tmp_path / "clean.npy", clean)
    ds = cifar_c(tmp_path / "c", clean=tmp_path / "clean.npy")
    test = ds.split("test")
    assert isinstance(test, ArraySource) and isinstance(test.images, np.memmap)
    assert test.ids == ds.released_split("fog-s1", "test").ids
    assert test.labels.tolist() == labels.tolist()
    assert (test.load(4).image == 204).all()
    assert ds.fingerprint != cifar_c(tmp_path / "c").fingerprint


def test_cifar_c_bad_clean_rows(tmp_path: Path) -> None:
    write_cifar_c(tmp_path / "c")
    np.save(tmp_path / "clean.npy", np.zeros((N + 1, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"clean\.npy"):
        cifar_c(tmp_path / "c", clean=tmp_path / "clean.npy")


def test_cifar_c_bad_row_count(tmp_path: Path) -> None:
    write_cifar_c(tmp_path / "c")
    np.save(tmp_path / "c" / "frost.npy", np.zeros((5 * N - 1, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"frost\.npy"):
        cifar_c(tmp_path / "c")


def test_cifar_c_labels_not_multiple_of_five(tmp_path: Path) -> None:
    write_cifar_c(tmp_path / "c")
    np.save(tmp_path / "c" / "labels.npy", np.zeros(29, dtype=np.int64))
    with pytest.raises(DataError, match=r"labels\.npy"):
        cifar_c(tmp_path / "c")


def test_cifar_c_missing_labels(tmp_path: Path) -> None:
    write_cifar_c(tmp_path / "c")
    (tmp_path / "c" / "labels.npy").unlink()
    with pytest.raises(DataError, match=r"labels\.npy does not exist"):
        cifar_c(tmp_path / "c")


def test_cifar_100_c_class_names(tmp_path: Path) -> None:
    write_cifar_c(tmp_path / "c")
    np.save(tmp_path / "c" / "labels.npy", np.tile(np.array([0, 1, 2, 3, 4, 55]), 5))
    ds = cifar_c(tmp_path / "c")
    assert ds.classes == tuple(str(i) for i in range(100))
    assert ds.released_split("fog-s1", "test").load(5).label == 55


# ImageNet-9


@pytest.fixture
def in9_tree(tmp_path: Path) -> Path:
    root = tmp_path / "bg_challenge"
    files = {"00_dog": ["a.JPEG", "b.JPEG"], "01_bird": ["c.JPEG"]}
    square = np.zeros((6, 8), dtype=bool)
    square[2:5, 1:4] = True
    for cls, names in files.items():
        for name in names:
            write_image(root / "original" / "val" / cls / name, value=50)
            write_image(root / "mixed_rand" / "val" / cls / name, value=150)
            write_image(root / "only_fg" / "val" / cls / name, value=250)
            make_mask(root / "fg_mask" / "val" / cls / (Path(name).stem + ".npy"), square)
    write_image(root / "unknown_variant" / "val" / "00_dog" / "zzz.JPEG")
    return root


def test_in9_splits_masks_and_released(in9_tree: Path) -> None:
    ds = in9(in9_tree, spec="in9:x")
    assert ds.classes == ("00_dog", "01_bird")
    assert ds.has_masks
    test = ds.split("test")
    assert test.ids == ("00_dog/a.JPEG", "00_dog/b.JPEG", "01_bird/c.JPEG")
    assert test.labels.tolist() == [0, 0, 1]
    item = test.load(2)
    assert item.mask is not None and item.mask.dtype == bool
    assert item.mask.sum() == 9 and item.mask[3, 2]
    assert sorted(ds.released) == ["mixed_rand", "only_fg"]
    released = ds.released_split("mixed_rand", "test")
    assert released.ids == test.ids
    assert released.labels.tolist() == [0, 0, 1]
    assert abs(float(released.load(0).image.mean()) - 150) < 3


def test_in9_reads_original_train_as_the_train_split(in9_tree: Path) -> None:
    without = in9(in9_tree)
    assert set(without.splits) == {"test"}
    write_image(in9_tree / "original" / "train" / "00_dog" / "t1.JPEG", value=10)
    write_image(in9_tree / "original" / "train" / "01_bird" / "t2.JPEG", value=20)
    write_image(in9_tree / "original" / "train" / "01_bird" / "a.JPEG", value=30)
    ds = in9(in9_tree)
    train = ds.split("train")
    # The same file name in train and val stays two items: ids carry the split folder.
    assert train.ids == ("train/00_dog/t1.JPEG", "train/01_bird/a.JPEG", "train/01_bird/t2.JPEG")
    assert train.labels.tolist() == [0, 1, 1]
    assert ds.split("test").ids == without.split("test").ids
    assert ds.fingerprint != without.fingerprint
    assert "3 train images from original/train (IN-9L)" in ds.description


def test_in9_train_class_unknown_to_val_is_refused(in9_tree: Path) -> None:
    write_image(in9_tree / "original" / "train" / "02_cat" / "t.JPEG")
    with pytest.raises(DataError, match=r"02_cat.*same nine"):
        in9(in9_tree)


def test_in9_partial_masks_are_not_used(in9_tree: Path) -> None:
    (in9_tree / "fg_mask" / "val" / "01_bird" / "c.npy").unlink()
    ds = in9(in9_tree)
    assert not ds.has_masks
    assert ds.split("test").load(0).mask is None


def test_in9_orphan_variant_file(in9_tree: Path) -> None:
    write_image(in9_tree / "no_fg" / "val" / "00_dog" / "stray.JPEG")
    with pytest.raises(DataError, match=r"no_fg.*stray\.JPEG"):
        in9(in9_tree)


def test_in9_missing_original(tmp_path: Path) -> None:
    write_image(tmp_path / "mixed_rand" / "val" / "00_dog" / "a.JPEG")
    with pytest.raises(DataError, match=r"original"):
        in9(tmp_path)


# from_arrays


def test_from_arrays_round_trip() -> None:
    images = np.stack([np.full((5, 5, 3), i, dtype=np.uint8) for i in range(20)])
    labels = np.arange(20) % 2
    ds = from_arrays(images, labels, name="toy", classes=("even", "odd"))
    assert ds.spec == "arrays:toy"
    assert ds.classes == ("even", "odd")
    everything = ds.split("all")
    assert everything.ids[3] == "000003"
    for i in (0, 7, 19):
        item = everything.load(i)
        assert (item.image == i).all() and item.label == i % 2 and item.mask is None
    train, test = ds.split("train"), ds.split("test")
    assert set(train.ids).isdisjoint(test.ids)
    assert len(train) + len(test) == 20
    assert np.bincount(test.labels).tolist() == [3, 3]
    assert from_arrays(images, labels, name="toy").fingerprint == ds.fingerprint
    changed = images.copy()
    changed[4, 0, 0, 0] += 1
    assert from_arrays(changed, labels, name="toy").fingerprint != ds.fingerprint


def test_from_arrays_list_of_mixed_images_and_masks() -> None:
    images = [
        np.full((4, 6), 7, dtype=np.uint8),
        np.full((3, 3, 4), 9, dtype=np.uint8),
        np.full((2, 5, 3), 11, dtype=np.uint8),
    ]
    masks = [np.eye(4, 6, dtype=bool), np.ones((3, 3)), np.zeros((2, 5))]
    ds = from_arrays(images, [0, 1, 1], ids=["x", "y", "z"], masks=masks)
    assert ds.has_masks
    assert ds.classes == ("0", "1")
    items = all_items(ds.split("all"))
    assert [item.id for item in items] == ["x", "y", "z"]
    assert [item.image.shape for item in items] == [(4, 6, 3), (3, 3, 3), (2, 5, 3)]
    assert (items[1].image == 9).all()
    assert items[0].mask is not None and (items[0].mask == np.eye(4, 6, dtype=bool)).all()
    assert items[1].mask is not None and items[1].mask.all()


def test_from_arrays_length_mismatch() -> None:
    with pytest.raises(DataError, match="3 images but 2 labels"):
        from_arrays(np.zeros((3, 4, 4, 3), dtype=np.uint8), [0, 1])


def test_from_arrays_rejects_float_and_negative_labels() -> None:
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    with pytest.raises(DataError, match="integers"):
        from_arrays(images, [0.0, 1.5])
    with pytest.raises(DataError, match=">= 0"):
        from_arrays(images, [0, -1])


def test_from_arrays_mask_shape_mismatch() -> None:
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    masks = [np.zeros((4, 4)), np.zeros((4, 5))]
    with pytest.raises(DataError, match="mask 1 has shape"):
        from_arrays(images, [0, 1], masks=masks)


def test_from_arrays_bad_ids_and_classes() -> None:
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    with pytest.raises(DataError, match="unique"):
        from_arrays(images, [0, 1], ids=["same", "same"])
    with pytest.raises(DataError, match="label 2"):
        from_arrays(images, [0, 2], classes=("a", "b"))


def test_array_source_reads_one_row(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3))
    images = np.load(tmp_path / "x.npy", mmap_mode="r")
    source = ArraySource(images, [4, 5], ["p", "q"])
    item = source.load(1)
    assert item.image.shape == (3, 3, 3) and item.label == 5 and item.id == "q"
    assert not isinstance(item.image, np.memmap)
    assert item.image[0, 0].tolist() == [9, 9, 9]
