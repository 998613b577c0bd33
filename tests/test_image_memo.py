"""Altered images are shared between backbones that see the same geometry (ImageMemo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_sslrobust.backbones.base import Backbone
from pytest_sslrobust.backbones.loading import load_backbone
from pytest_sslrobust.data.bundled import load_bundled
from pytest_sslrobust.features.cache import FeatureCache, ImageMemo
from pytest_sslrobust.features.store import FeatureStore


@pytest.fixture(scope="module")
def pair():
    """Two different models with one preprocessing (so the same altered images)."""
    import timm

    first = load_backbone("random-resnet18")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = timm.create_model("test_resnet", num_classes=0)
    second = Backbone(
        model,
        spec="second",
        name="second",
        architecture="test_resnet",
        preprocessing=first.preprocessing,
        weights="random",
    )
    return first, second, load_bundled("textured-digits")


def test_second_backbone_reuses_altered_images(tmp_path, pair):
    first, second, data = pair
    cache = FeatureCache(tmp_path / "shared")
    a = FeatureStore(first, data, cache, max_images=20)
    b = FeatureStore(second, data, cache, max_images=20)
    a.get("gaussian_noise-s3")
    assert cache.stats["image_memo_hits"] == 0
    shared = b.get("gaussian_noise-s3")
    assert cache.stats["image_memo_hits"] == 20
    # The same features and SSIM as a store that altered every image itself.
    alone = FeatureStore(second, data, FeatureCache(tmp_path / "alone"), max_images=20)
    fresh = alone.get("gaussian_noise-s3")
    assert torch.equal(shared.features, fresh.features)
    assert torch.equal(shared.ssim, fresh.ssim)


def test_other_variants_and_seeds_do_not_share(tmp_path, pair):
    first, _, data = pair
    cache = FeatureCache(tmp_path)
    FeatureStore(first, data, cache, max_images=10).get("gaussian_noise-s3")
    FeatureStore(first, data, cache, max_images=10, seed=1).get("gaussian_noise-s3")
    FeatureStore(first, data, cache, max_images=10).get("gaussian_noise-s4")
    assert cache.stats["image_memo_hits"] == 0


def test_memo_is_bounded_and_drops_the_oldest():
    memo = ImageMemo(limit=3 * 100)
    for index in range(5):
        memo.put(("set", str(index)), (np.zeros(100, np.uint8), {}))
    assert memo.size <= 300
    assert memo.get(("set", "0")) is None and memo.get(("set", "4")) is not None
    memo.put(("set", "huge"), (np.zeros(1000, np.uint8), {}))  # larger than the limit
    assert memo.get(("set", "huge")) is None
