"""Corruptions: determinism across processes and workers, severity behaviour, bad input."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity

from pytest_sslrobust.data.base import Item
from pytest_sslrobust.variants import (
    ALL,
    COMMON,
    GROUPS,
    VALIDATION,
    Corruption,
    VariantError,
    corrupt,
    corruption_variants,
    parse_corruptions,
    parse_severities,
    parse_variant,
)

# SSIM does not fall at every severity step for these (the poster's irregular ones, plus
# two whose random layers vary with the seed); measured on the astronaut crop below.
IRREGULAR = {"snow", "elastic_transform", "saturate", "glass_blur", "spatter"}

HASH_SCRIPT = """
import hashlib, sys
import numpy as np
from skimage import data
from pytest_sslrobust.variants import ALL, corrupt
image = np.ascontiguousarray(data.coffee()[::6, ::6][:64, :64])
for name in (ALL if sys.argv[1] == "forward" else ALL[::-1]):
    print(name, hashlib.sha256(corrupt(image, name, 3, seed=99).tobytes()).hexdigest())
"""


@pytest.fixture(scope="module")
def small() -> np.ndarray:
    return np.ascontiguousarray(data.coffee()[::6, ::6][:64, :64])


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[100:324, 150:374])


def _digests(order: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", HASH_SCRIPT, order], capture_output=True, text=True, check=True
    )
    return dict(line.split() for line in out.stdout.strip().splitlines())


def test_all_19_are_byte_identical_across_processes_and_orders(small):
    here = {
        name: hashlib.sha256(corrupt(small, name, 3, seed=99).tobytes()).hexdigest() for name in ALL
    }
    assert _digests("forward") == here
    assert _digests("reverse") == here
    assert len(set(here.values())) == 19


def test_seed_matters_and_global_state_is_left_alone(small):
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    a = corrupt(small, "gaussian_noise", 2, seed=1)
    assert np.array_equal(np.random.get_state()[1], before)
    assert np.array_equal(a, corrupt(small, "gaussian_noise", 2, seed=1))
    assert not np.array_equal(a, corrupt(small, "gaussian_noise", 2, seed=2))
    for name in ("impulse_noise", "glass_blur", "motion_blur", "frost"):  # own RNGs included
        assert not np.array_equal(corrupt(small, name, 3, 1), corrupt(small, name, 3, 2)), name


def test_every_severity_alters_and_ssim_falls(astronaut):
    for name in ALL:
        scores = []
        for severity in range(1, 6):
            out = corrupt(astronaut, name, severity, seed=7)
            assert out.shape == astronaut.shape and out.dtype == np.uint8
            assert not np.array_equal(out, astronaut), (name, severity)
            scores.append(structural_similarity(astronaut, out, channel_axis=2, data_range=255))
        assert scores[0] > scores[-1], name
        if name not in IRREGULAR:
            assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), (name, scores)


def test_imagenet_c_protocol_crops_224_and_jpegs(astronaut):
    large = np.ascontiguousarray(data.astronaut())  # 512 x 512
    item = Item(large, 0, "astro")
    variant = Corruption("brightness", 1, protocol="imagenet-c")
    out = variant.apply(item, seed=3)
    assert out.shape == (224, 224, 3) and variant.raw
    assert variant.params["protocol"] == "imagenet-c"
    assert "imagecorruptions" in variant.params["generator"]
    on_the_fly = Corruption("brightness", 1).apply(Item(out, 0, "x"), seed=3)
    assert not np.array_equal(out, on_the_fly)  # the JPEG round trip changes bytes


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda img: corrupt(img, "gausian_noise", 1, 0), "did you mean 'gaussian_noise'"),
        (lambda img: corrupt(img, "fog", 0, 0), "severity must be 1..5"),
        (lambda img: corrupt(img, "fog", 6, 0), "severity must be 1..5"),
        (lambda img: corrupt(img, "fog", "3", 0), "integer"),
        (lambda img: corrupt(img, "fog", True, 0), "integer"),
        (lambda img: corrupt(img[:20, :20], "fog", 1, 0), "at least 32x32"),
        (lambda img: corrupt(img.astype(np.float32), "fog", 1, 0), "uint8"),
        (lambda img: Corruption("fog", 1, protocol="jpeg"), "unknown corruption protocol"),
    ],
)
def test_bad_input_is_explained(small, call, message):
    with pytest.raises(VariantError, match=message):
        call(small)


def test_groups_and_parsing():
    assert len(COMMON) == 15 and len(VALIDATION) == 4 and len(ALL) == 19
    assert set(GROUPS["noise"] + GROUPS["blur"] + GROUPS["weather"] + GROUPS["digital"]) == set(
        COMMON
    )
    assert parse_corruptions("noise,fog,gaussian_noise") == (
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "fog",
    )
    assert parse_severities("1-3,5") == (1, 2, 3, 5)
    with pytest.raises(VariantError, match="did you mean"):
        parse_corruptions("common,zoom_blurr")
    with pytest.raises(VariantError, match="1..5"):
        parse_severities("0-2")
    sweep = corruption_variants("weather", "2,4")
    assert [v.id for v in sweep][:3] == ["snow-s2", "snow-s4", "frost-s2"] and len(sweep) == 8
    assert parse_variant("zoom_blur-s5") == Corruption("zoom_blur", 5)


# -- through the feature store --------------------------------------------------------


@pytest.fixture(scope="module")
def store_parts():
    from pytest_sslrobust.backbones.loading import load_backbone
    from pytest_sslrobust.data.bundled import load_bundled

    return load_backbone("random-resnet18"), load_bundled("textured-digits")


def _store(parts, **kwargs):
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

    backbone, dataset = parts
    options = {"max_images": 20, **kwargs}
    return FeatureStore(backbone, dataset, FeatureCache(None), **options)


def test_store_corrupts_on_the_fly_with_ssim(store_parts):
    store = _store(store_parts)
    clean = store.get("original")
    noisy = store.get("gaussian_noise-s5")
    mild = store.get("gaussian_noise-s1")
    assert (
        noisy.protocol["origin"] == "on-the-fly"
        and noisy.protocol["variant"] == "gaussian_noise-s5"
    )
    assert noisy.protocol["variant_params"]["generator"].startswith("imagecorruptions")
    assert clean.ssim is None and noisy.ssim.shape == (20,)
    assert float(mild.ssim.mean()) > float(noisy.ssim.mean())
    assert not torch.allclose(noisy.features, clean.features)


def test_worker_processes_give_the_same_bytes_for_all_19(store_parts):
    in_thread = _store(store_parts, workers=0, max_images=4)
    in_processes = _store(store_parts, workers=2, batch_size=3, max_images=4)
    item = in_thread.selection("test").load(1)
    for name in ALL:
        one, two = in_thread.get(f"{name}-s3"), in_processes.get(f"{name}-s3")
        assert one.key == two.key
        assert torch.equal(one.ssim, two.ssim), name  # SSIM of the exact altered bytes
        torch.testing.assert_close(one.features, two.features, rtol=1e-4, atol=1e-5)
        image = in_thread.altered_image(item, f"{name}-s3")
        assert np.array_equal(image, in_processes.altered_image(item, f"{name}-s3")), name
