"""The bundled dataset, subsets, and extraction with progress."""

from __future__ import annotations

import hashlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_sslrobust.data import bundled
from pytest_sslrobust.data.base import FunctionSource, Item, subset_indices
from pytest_sslrobust.data.bundled import load_bundled
from pytest_sslrobust.features.extract import TerminalProgress


@pytest.fixture(scope="module")
def digits():
    return load_bundled("textured-digits")


def test_shapes_splits_and_classes(digits):
    assert digits.spec == "bundled:textured-digits"
    train, test, biased = (digits.split(s) for s in ("train", "test", "biased-train"))
    assert (len(train), len(test)) == (1258, 539)
    assert not set(train.ids) & set(test.ids)
    assert biased.ids == train.ids and np.array_equal(biased.labels, train.labels)
    biased_test = digits.split("biased-test")
    assert biased_test.ids == digits.split("test").ids
    assert np.array_equal(biased_test.labels, digits.split("test").labels)
    for split in (train, test):
        counts = np.bincount(split.labels, minlength=10)
        assert counts.min() > 0.8 * counts.max()  # stratified split keeps classes balanced
    item = test.load(0)
    assert item.image.dtype == np.uint8 and item.image.shape == (64, 64, 3)
    assert item.mask.dtype == bool and item.mask.shape == (64, 64)
    assert 0.05 < item.mask.mean() < 0.6


def test_items_are_byte_identical_across_builds(digits):
    bundled.backgrounds.cache_clear()
    again = load_bundled("textured-digits")
    assert again.fingerprint == digits.fingerprint
    for index in (0, 17, 538):
        a, b = digits.split("test").load(index), again.split("test").load(index)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)


def test_mask_marks_the_digit(digits):
    item = digits.split("test").load(3)
    inside = item.image[item.mask].astype(float)
    # The digit is painted in one colour, so masked pixels are far more uniform than the photo.
    assert inside.std(axis=0).mean() < item.image[~item.mask].astype(float).std(axis=0).mean()


def test_biased_split_puts_each_class_on_its_own_photo(digits):
    """In biased-train, same-class images share backgrounds far more often than in train."""

    def corner_similarity(split_name: str) -> float:
        split = digits.split(split_name)
        same, other = [], []
        corners = {}
        for index in range(0, 300):
            image = split.load(index).image.astype(float)
            corners[index] = image[:6, :6].mean(axis=(0, 1))  # the digit never reaches here
        labels = split.labels[:300]
        for i in range(300):
            for j in range(i + 1, 300):
                distance = np.abs(corners[i] - corners[j]).sum()
                (same if labels[i] == labels[j] else other).append(distance)
        return float(np.mean(other) - np.mean(same))

    assert corner_similarity("biased-train") > corner_similarity("train") + 10


def test_subset_is_stratified_deterministic_and_seeded():
    labels = np.repeat(np.arange(5), [40, 30, 20, 6, 4])
    ids = [f"x{i}" for i in range(len(labels))]
    chosen = subset_indices(labels, ids, 20, seed=0)
    assert len(chosen) == 20 and list(chosen) == sorted(chosen)
    assert np.array_equal(np.bincount(labels[chosen]), [8, 6, 4, 1, 1])
    assert np.array_equal(chosen, subset_indices(labels, ids, 20, seed=0))
    assert not np.array_equal(chosen, subset_indices(labels, ids, 20, seed=1))
    shuffled = np.random.default_rng(0).permutation(len(labels))
    picked = {
        ids[shuffled[i]]
        for i in subset_indices(labels[shuffled], [ids[j] for j in shuffled], 20, 0)
    }
    assert picked == {ids[i] for i in chosen}  # order of the source does not matter
    assert len(subset_indices(labels, ids, None, 0)) == len(labels)
    assert len(subset_indices(labels, ids, 3, 0)) == 3  # fewer than classes: still exact


def test_progress_appears_only_for_long_extractions():
    now = [0.0]
    lines: list[str] = []
    progress = TerminalProgress("m / test / original", lines.append, clock=lambda: now[0])
    now[0] = 1.0
    progress(10, 100)
    assert lines == []  # under the delay: silent
    now[0] = 3.0
    progress(40, 100)
    now[0] = 3.1
    progress(41, 100)  # within the interval: not redrawn
    now[0] = 6.0
    progress(100, 100)
    assert len(lines) == 2
    assert lines[0].startswith("\n[sslrobust] m / test / original: 40/100 images")
    assert lines[1].startswith("\r") and lines[1].endswith("\n") and "100/100" in lines[1]


def test_progress_in_a_log_writes_whole_lines_rarely():
    now = [0.0]
    lines: list[str] = []
    progress = TerminalProgress("m", lines.append, tty=False, clock=lambda: now[0])
    for step in range(1, 101):
        now[0] = step * 0.5  # 50 s in all
        progress(step, 100)
    assert 3 <= len(lines) <= 5  # every 15 s plus the last, not every 0.5 s
    assert all(line.endswith("\n") and "\r" not in line for line in lines)


def test_extraction_errors_name_the_item():
    from pytest_sslrobust.backbones.loading import load_backbone
    from pytest_sslrobust.data.base import DataError
    from pytest_sslrobust.features.extract import extract

    def make(index: int) -> Item:
        if index == 5:
            raise DataError("cannot decode image file 'broken.jpg'")
        return Item(np.zeros((8, 8, 3), np.uint8), 0, str(index))

    source = FunctionSource([str(i) for i in range(8)], [0] * 8, make)
    with pytest.raises(DataError, match="broken.jpg"):
        extract(load_backbone("random-resnet18"), source, np.arange(8), batch_size=4)


# --- textured-shapes: the far transfer target -------------------------------------------


@pytest.fixture(scope="module")
def shapes():
    return load_bundled("textured-shapes")


@pytest.fixture(scope="module")
def shape_items(shapes):
    """Every item of both splits (about 0.2 ms each)."""
    return {
        s: [shapes.split(s).load(i) for i in range(len(shapes.split(s)))] for s in ("train", "test")
    }


def _item_digest(items) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.id.encode() + bytes([item.label]))
        digest.update(item.image.tobytes() + item.mask.tobytes())
    return digest.hexdigest()


def test_shapes_splits_classes_and_items(shapes, shape_items):
    assert shapes.spec == shapes.label_space == "bundled:textured-shapes"
    assert shapes.classes == ("circle", "ellipse", "rectangle", "triangle")
    assert shapes.has_masks and "far transfer target" in shapes.description
    train, test = shapes.split("train"), shapes.split("test")
    assert list(shapes.splits) == ["train", "test"]
    assert (len(train), len(test)) == (1120, 480)
    assert not set(train.ids) & set(test.ids)
    assert len(set(train.ids) | set(test.ids)) == 1600
    assert np.array_equal(np.bincount(train.labels, minlength=4), [280] * 4)
    assert np.array_equal(np.bincount(test.labels, minlength=4), [120] * 4)
    for split, items in shape_items.items():
        source = shapes.split(split)
        for index, item in enumerate(items):
            assert (item.id, item.label) == (source.ids[index], source.labels[index])
            assert item.image.dtype == np.uint8 and item.image.shape == (64, 64, 3)
            assert item.mask.dtype == bool and item.mask.shape == (64, 64)
            assert 200 <= item.mask.sum() <= 1000  # the whole shape, never cut by the edge
    # Shapes sit anywhere in the picture, not at one place.
    centres = np.array([np.argwhere(item.mask).mean(axis=0) for item in shape_items["train"]])
    assert (centres.min(axis=0) < 20).all() and (centres.max(axis=0) > 44).all()
    assert (centres.std(axis=0) > 6).all()


def _packed(pixels: np.ndarray) -> np.ndarray:
    """RGB pixels as one int each, so a place compares in one operation."""
    return pixels.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.int32)


def _find_background(image: np.ndarray, mask: np.ndarray, photos) -> tuple[int, int, int]:
    """Which packed photograph ``image`` shows outside ``mask``, and where its crop starts."""
    rows, cols = np.nonzero(~mask)
    pixels = _packed(image)
    for index, photo in enumerate(photos):
        r, c = rows[0], cols[0]
        view = photo[r : r + photo.shape[0] - 63, c : c + photo.shape[1] - 63]
        tops, lefts = np.nonzero(view == pixels[r, c])
        for k in np.linspace(0, len(rows) - 1, 24).astype(int)[1:]:  # one more pixel agrees
            keep = photo[tops + rows[k], lefts + cols[k]] == pixels[rows[k], cols[k]]
            tops, lefts = tops[keep], lefts[keep]
        for top, left in zip(tops, lefts, strict=True):
            if np.array_equal(photo[top : top + 64, left : left + 64][~mask], pixels[~mask]):
                return index, top, left
    raise AssertionError("the unmasked pixels are no crop of any shapes photograph")


def test_shape_mask_is_exactly_the_painted_pixels_on_uniform_backgrounds(shape_items):
    assert not set(bundled._SHAPE_PHOTOS) & set(bundled._PHOTOS)
    photos = bundled.backgrounds(bundled._SHAPE_PHOTOS)
    digit_photos = bundled.backgrounds()
    assert not any(
        a.shape == b.shape and np.array_equal(a, b) for a in photos for b in digit_photos
    )
    packed = [_packed(photo) for photo in photos]
    used = np.zeros((len(photos), 4), dtype=int)
    for item in shape_items["train"] + shape_items["test"]:
        index, top, left = _find_background(item.image, item.mask, packed)
        used[index, item.label] += 1
        crop = photos[index][top : top + 64, left : left + 64]
        changed = (item.image != crop).any(-1)
        assert not (changed & ~item.mask).any()  # outside the mask: the photograph untouched
        assert len(np.unique(item.image[item.mask], axis=0)) == 1  # inside: one flat colour
        assert changed[item.mask].mean() > 0.9  # ... that really covers the photograph
    # Backgrounds are drawn uniformly and independently of the class: every photograph
    # carries every class about equally often (1600 / 28 = 57 per cell).
    assert used.min() > 30 and used.max() < 90


def test_shapes_are_the_same_bytes_in_a_fresh_process_and_any_order(shapes, shape_items):
    bundled.backgrounds.cache_clear()
    again = load_bundled("textured-shapes")
    assert again.fingerprint == shapes.fingerprint
    test = again.split("test")
    reloaded = [test.load(i) for i in reversed(range(len(test)))][::-1]
    assert _item_digest(reloaded) == _item_digest(shape_items["test"])
    # A fresh interpreter (empty caches, another hash seed) builds the items in reverse order.
    code = inspect.getsource(_item_digest) + (
        "import hashlib\n"
        "from pytest_sslrobust.data.bundled import load_bundled\n"
        "ds = load_bundled('textured-shapes')\n"
        "test = ds.split('test')\n"
        "items = [test.load(i) for i in reversed(range(len(test)))][::-1]\n"
        "print(ds.fingerprint, _item_digest(items))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        "PYTHONHASHSEED": "12345",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=True,
        timeout=120,
    )
    assert result.stdout.split() == [shapes.fingerprint, _item_digest(shape_items["test"])]


def test_shapes_fingerprint_differs_from_the_digits_and_follows_the_recipe(
    shapes, digits, monkeypatch
):
    from pytest_sslrobust.data import bundled

    assert shapes.fingerprint != digits.fingerprint
    assert load_bundled("textured-shapes").fingerprint == shapes.fingerprint
    monkeypatch.setattr(bundled, "SHAPES_GENERATOR_VERSION", "changed")
    assert load_bundled("textured-shapes").fingerprint != shapes.fingerprint
    monkeypatch.undo()
    monkeypatch.setattr(bundled, "SHAPE_AREA", (200.0, 900.0))
    assert load_bundled("textured-shapes").fingerprint != shapes.fingerprint
    assert load_bundled("textured-digits").fingerprint == digits.fingerprint


def _probe_accuracy(train_x, train_y, test_x, test_y) -> float:
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0))
    return float(probe.fit(train_x, train_y).score(test_x, test_y))


def test_the_class_is_in_the_shape_not_in_size_place_colour_or_pixels(shape_items):
    """Mask geometry tells the classes apart; size, place, colour and raw pixels do not."""
    from skimage.measure import regionprops
    from skimage.transform import downscale_local_mean

    def geometry(item):
        region = regionprops(item.mask.astype(np.uint8))[0]
        return [
            region.eccentricity,
            region.extent,
            region.area / region.perimeter**2,
            region.area / (np.pi * (region.feret_diameter_max / 2) ** 2),
        ]

    def nuisances(item):
        rows, cols = np.nonzero(item.mask)
        return [item.mask.sum(), rows.mean(), cols.mean(), *item.image[item.mask][0]]

    def pixels(item):
        return downscale_local_mean(item.image.mean(axis=2), (4, 4)).ravel()

    train, test = shape_items["train"], shape_items["test"]
    y_train = [item.label for item in train]
    y_test = [item.label for item in test]
    scores = {
        name: _probe_accuracy([f(i) for i in train], y_train, [f(i) for i in test], y_test)
        for name, f in (("geometry", geometry), ("nuisances", nuisances), ("pixels", pixels))
    }
    assert scores["geometry"] > 0.9, scores
    assert scores["nuisances"] < 0.35, scores  # chance is 0.25
    assert scores["pixels"] < 0.35, scores


def test_unknown_bundled_names_list_what_exists():
    from pytest_sslrobust.data.specs import load_dataset, validate_data_spec

    assert load_dataset("bundled:textured-shapes").spec == "bundled:textured-shapes"
    assert validate_data_spec("bundled:textured-shapes") is None
    message = validate_data_spec("bundled:textured-squares")
    assert message and "textured-digits" in message and "textured-shapes" in message
    with pytest.raises(ValueError, match="have textured-digits, textured-shapes"):
        load_bundled("textured-squares")
