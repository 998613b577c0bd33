"""The procedural stream the bundled self-supervised backbones train on, and VICReg's loss."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pytest_sslrobust.backbones.digit_stream import DigitStream, StreamSettings
from pytest_sslrobust.backbones.training import RECIPES, background_contrast, vicreg_loss

SMALL = StreamSettings(background_bank=64)


@pytest.fixture(scope="module")
def stream() -> DigitStream:
    return DigitStream(SMALL, seed=3)


def test_same_seed_same_bytes_and_fresh_views_every_call():
    a, b = DigitStream(SMALL, seed=3), DigitStream(SMALL, seed=3)
    instances = a.instances(16)
    assert torch.equal(instances, b.instances(16))
    first_a, second_a = a.pair(instances)
    first_b, second_b = b.pair(instances)
    assert torch.equal(first_a, first_b) and torch.equal(second_a, second_b)
    assert first_a.dtype == torch.uint8 and first_a.shape == (16, 3, 64, 64)
    # Two views of one instance are never the same image, and a later call draws anew.
    assert (first_a.float() - second_a.float()).abs().mean(dim=(1, 2, 3)).min() > 5
    assert not torch.equal(a.views(instances), first_a)


def test_instances_are_distinct_train_split_digits(stream):
    from pytest_sslrobust.data.bundled import load_bundled

    assert len(stream) == len(load_bundled("textured-digits").split("train"))
    picked = stream.instances(128)
    assert len(set(picked.tolist())) == 128 and int(picked.max()) < len(stream)


def test_only_the_digit_is_shared_between_views():
    """With flat backgrounds, no noise and no jitter, a view is one background colour
    outside the warped matte and the digit's colour inside: its pixels say nothing but the
    shape, and the two views' colours differ."""
    settings = dataclasses.replace(
        SMALL,
        noise_std=0.0,
        brightness=0.0,
        contrast=0.0,
        rotation_deg=0.0,
        shear_deg=0.0,
        scale=(1.0, 1.0),
        translate_px=0.0,
    )
    flat = DigitStream(settings, seed=0)
    instances = flat.instances(8)
    first, second = flat.pair(instances, contrast=0.0)
    mattes = flat.mattes[instances, 0]
    for view in (first, second):
        for image, matte in zip(view, mattes, strict=True):
            outside = image[:, matte == 0]
            assert (outside - outside[:, :1]).abs().max() <= 1  # one flat colour
            inside = image[:, matte > 0.99].float()
            # matte > 0.99 mixes in up to 1% of the background: 2.55 grey levels, rounded
            assert (inside - inside[:, :1]).abs().max() <= 3  # the digit's one colour
    inside_first = first.float()[:, :, 32, 32]
    assert not torch.equal(inside_first, second.float()[:, :, 32, 32])


def test_background_contrast_ramp_follows_the_recipe():
    recipe = RECIPES["simclr"]
    start, end, ramp_from, ramp_to = recipe.contrast_ramp
    total = recipe.steps
    assert background_contrast(recipe, 1, total) == start
    assert background_contrast(recipe, total, total) == end
    middle = round(total * (ramp_from + ramp_to) / 2)
    assert background_contrast(recipe, middle, total) == pytest.approx((start + end) / 2, abs=1e-3)


def test_vicreg_loss_matches_an_independent_computation():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(32, 6)), rng.normal(size=(32, 6)) * 0.3
    invariance = np.mean((z1 - z2) ** 2)

    def variance(z):
        return np.mean(np.maximum(0.0, 1.0 - np.sqrt(z.var(axis=0, ddof=1) + 1e-4)))

    def covariance(z):
        c = np.cov(z, rowvar=False)
        return (np.sum(c**2) - np.sum(np.diag(c) ** 2)) / z.shape[1]

    expected = (
        25 * invariance + 25 * (variance(z1) + variance(z2)) + covariance(z1) + covariance(z2)
    )
    got = vicreg_loss(torch.from_numpy(z1), torch.from_numpy(z2))
    assert float(got) == pytest.approx(expected, rel=1e-9)
    # The variance hinge is what stops collapse: identical constant embeddings cost
    # 2 x 25 x (1 - sqrt(1e-4)) and nothing else.
    constant = torch.zeros(32, 6)
    assert float(vicreg_loss(constant, constant)) == pytest.approx(49.5, abs=1e-4)
