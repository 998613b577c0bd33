"""The augmentation variant: SimCLR-style views seeded per item, without side effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_sslrobust.data.base import Item
from pytest_sslrobust.variants import Augmentation, VariantError, parse_variant


@pytest.fixture(scope="module")
def item():
    """A structured 48 x 40 picture (not square: the crop must return the input size)."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:48, 0:40]
    image = np.stack([rows * 5, cols * 6, (rows + cols) * 3], axis=-1) % 256
    image = (image + rng.integers(0, 30, image.shape)).clip(0, 255).astype(np.uint8)
    return Item(image=image, label=3, id="item-0")


def test_parse_gives_the_views():
    first, second = parse_variant("augment"), parse_variant("augment-v2")
    assert isinstance(first, Augmentation) and isinstance(second, Augmentation)
    assert first.view == 1 and first.id == "augment"
    assert second.view == 2 and second.id == "augment-v2"
    assert str(second) == "augment-v2"
    assert first.params["kind"] == "augmentation"
    assert first.params["view"] == 1 and second.params["view"] == 2
    assert first.params != second.params
    assert parse_variant(first.id) == first and parse_variant(second.id) == second


@pytest.mark.parametrize("text", ["augmentation", "augment-2", "augment-v", "augment-vx", "aug"])
def test_unknown_ids_list_the_augment_form(text):
    with pytest.raises(VariantError, match=r"augment\[-vN\]"):
        parse_variant(text)


def test_view_zero_is_refused():
    with pytest.raises(VariantError, match="view must be 1 or more"):
        parse_variant("augment-v0")
    with pytest.raises(VariantError, match="view"):
        Augmentation(view=0)


@pytest.mark.parametrize("crop_scale", [(0.0, 1.0), (0.8, 0.5), (0.5, 1.5), (-0.2, 0.5)])
def test_bad_crop_scale_is_refused(crop_scale):
    with pytest.raises(VariantError, match="crop_scale"):
        Augmentation(crop_scale=crop_scale)


def test_output_has_the_input_shape_and_dtype(item):
    for variant in (Augmentation(), Augmentation(view=2), Augmentation(crop_scale=(0.1, 0.2))):
        view = variant.apply(item, seed=7)
        assert isinstance(view, np.ndarray)
        assert view.shape == item.image.shape and view.dtype == np.uint8


def test_same_item_and_seed_give_the_same_view(item):
    variant = parse_variant("augment")
    first = variant.apply(item, seed=11)
    assert np.array_equal(first, variant.apply(item, seed=11))
    assert np.array_equal(first, Augmentation().apply(item, seed=11))
    assert not np.array_equal(first, item.image)


def test_seeds_and_views_differ(item):
    one, two = Augmentation(), Augmentation(view=2)
    views = [one.apply(item, seed=s) for s in range(6)]
    distinct = {v.tobytes() for v in views}
    assert len(distinct) == len(views)
    for seed in range(6):
        assert not np.array_equal(one.apply(item, seed), two.apply(item, seed))


def test_caller_random_state_is_left_alone(item):
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    Augmentation().apply(item, seed=5)
    Augmentation(view=3).apply(item, seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)
    # and the view does not depend on the caller's state either
    torch.manual_seed(99)
    after = Augmentation().apply(item, seed=5)
    torch.manual_seed(0)
    assert np.array_equal(after, Augmentation().apply(item, seed=5))


def test_input_is_not_modified(item):
    before = item.image.copy()
    Augmentation().apply(item, seed=3)
    assert np.array_equal(item.image, before)
