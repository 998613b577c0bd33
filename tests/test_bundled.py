"""The bundled dataset, subsets, and extraction with progress."""

from __future__ import annotations

import numpy as np
import pytest

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
    for split in (train, test):
        counts = np.bincount(split.labels, minlength=10)
        assert counts.min() > 0.8 * counts.max()  # stratified split keeps classes balanced
    item = test.load(0)
    assert item.image.dtype == np.uint8 and item.image.shape == (64, 64, 3)
    assert item.mask.dtype == bool and item.mask.shape == (64, 64)
    assert 0.05 < item.mask.mean() < 0.6


def test_items_are_byte_identical_across_builds(digits):
    load_bundled.__globals__["_backgrounds"].cache_clear()
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
