"""Tests for pytest_sslrobust.metrics.attacks: budgets, strength, determinism, backbones."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sslrobust.backbones.base import Backbone, Preprocessing
from pytest_sslrobust.metrics import attacks
from pytest_sslrobust.metrics.attacks import (
    AttackResult,
    PixelSpaceModel,
    cross_entropy_loss,
    feature_distance_loss,
    feature_drift,
    fgsm,
    from_backbone,
    pgd,
    random_noise,
    robust_accuracy,
)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 16


class TinyNet(torch.nn.Module):
    """Conv features (n, 32) and a linear head, small enough to train in a second."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(2),
            torch.nn.Flatten(),
        )
        self.head = torch.nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def random_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet().eval()


def random_images(n: int = 4, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def pixel_fns(net: TinyNet) -> tuple[PixelSpaceModel, PixelSpaceModel]:
    features = PixelSpaceModel(net.body, MEAN, STD)
    logits = PixelSpaceModel(net, MEAN, STD)
    return features, logits


@functools.lru_cache(maxsize=1)
def trained_classifier() -> tuple[TinyNet, torch.Tensor, torch.Tensor]:
    """Two classes told apart by the sign of a faint +-1 pattern (amplitude 0.06)."""
    generator = torch.Generator().manual_seed(0)
    template = torch.randint(0, 2, (1, 3, SIZE, SIZE), generator=generator) * 2.0 - 1.0
    labels = torch.arange(64) % 2
    sign = (labels * 2.0 - 1.0).view(-1, 1, 1, 1)
    noise = (torch.rand(64, 3, SIZE, SIZE, generator=generator) * 2 - 1) * 0.1
    images = (0.5 + 0.06 * sign * template + noise).clamp(0, 1)
    net = random_net(0)
    model = PixelSpaceModel(net, MEAN, STD)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(80):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimiser.step()
    net.zero_grad(set_to_none=True)
    return net.eval(), images, labels


# --------------------------------------------------------------------------- budgets


@settings(max_examples=12, deadline=None)
@given(
    eps=st.floats(0, 0.1),
    norm=st.sampled_from(["linf", "l2"]),
    method=st.sampled_from(["fgsm", "pgd", "random"]),
)
def test_perturbation_stays_in_the_ball_and_in_range(eps: float, norm: str, method: str) -> None:
    features, _ = pixel_fns(random_net())
    images = random_images()
    budget = eps * 10 if norm == "l2" else eps  # L2 budgets are larger in pixel units
    with torch.no_grad():
        loss_fn = feature_distance_loss(features, features(images))
    if method == "fgsm":
        adversarial = fgsm(loss_fn, images, budget, norm=norm)
    elif method == "pgd":
        adversarial = pgd(loss_fn, images, budget, norm=norm, steps=3)
    else:
        adversarial = random_noise(images, budget, norm=norm, seed=3)
    delta = adversarial - images
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    if norm == "linf":
        assert delta.abs().max() <= budget + 1e-6
    else:
        assert delta.flatten(1).norm(dim=1).max() <= budget + 1e-5
    assert not adversarial.requires_grad


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_spends_the_whole_budget_away_from_the_border(norm: str) -> None:
    _, logits = pixel_fns(random_net())
    images = random_images() * 0.5 + 0.25  # no clipping at 0 or 1
    eps = 4 / 255 if norm == "linf" else 0.5
    delta = fgsm(cross_entropy_loss(logits, [0, 1, 0, 1]), images, eps, norm=norm) - images
    if norm == "linf":
        assert torch.allclose(delta.abs().amax(dim=(1, 2, 3)), torch.full((4,), eps))
    else:
        assert torch.allclose(delta.flatten(1).norm(dim=1), torch.full((4,), eps), atol=1e-5)


def test_random_noise_has_the_full_budget() -> None:
    images = random_images() * 0.5 + 0.25
    linf = random_noise(images, 0.05, norm="linf", seed=0) - images
    l2 = random_noise(images, 1.0, norm="l2", seed=0) - images
    assert torch.allclose(linf.abs(), torch.full_like(linf, 0.05), atol=1e-6)
    assert torch.allclose(l2.flatten(1).norm(dim=1), torch.ones(4), atol=1e-5)


# --------------------------------------------------------------------------- strength


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_drifts_features_more_than_random_noise(norm: str) -> None:
    features, _ = pixel_fns(random_net())
    images = random_images(8)
    eps = 8 / 255 if norm == "linf" else 1.0
    kwargs = {"norm": norm, "steps": 10}
    drift = {
        name: feature_drift(features, images, [eps], attack=name, **kwargs).values[0]
        for name in ("random", "fgsm", "pgd")
    }
    assert 0 < drift["random"] < drift["pgd"]
    assert drift["random"] < drift["fgsm"] <= drift["pgd"] * 1.05
    assert drift["pgd"] > 3 * drift["random"]


def test_pgd_increases_the_loss_beyond_noise_and_fgsm() -> None:
    net, images, labels = trained_classifier()
    _, logits = pixel_fns(net)
    loss_fn = cross_entropy_loss(logits, labels)
    eps = 0.03
    with torch.no_grad():
        losses = {
            "clean": loss_fn(images).mean(),
            "random": loss_fn(random_noise(images, eps)).mean(),
            "fgsm": loss_fn(fgsm(loss_fn, images, eps)).mean(),
            "pgd": loss_fn(pgd(loss_fn, images, eps)).mean(),
        }
    assert losses["random"] < losses["fgsm"] <= losses["pgd"]
    assert losses["clean"] < losses["fgsm"]


def test_robust_accuracy_orders_pgd_fgsm_noise_and_clean() -> None:
    net, images, labels = trained_classifier()
    _, logits = pixel_fns(net)
    eps = [0.0, 0.01, 0.03]
    results = {
        name: robust_accuracy(logits, images, labels, eps, attack=name, batch_size=24)
        for name in ("random", "fgsm", "pgd")
    }
    clean = results["pgd"].clean
    assert clean >= 0.95
    for result in results.values():
        assert result.values[0] == result.clean == clean
        assert result.n == 64 and result.per_sample is not None
        assert result.per_sample.shape == (3, 64)
    pgd_acc, fgsm_acc, noise_acc = (results[k].values for k in ("pgd", "fgsm", "random"))
    for i in (1, 2):
        assert pgd_acc[i] <= fgsm_acc[i] <= clean
        assert pgd_acc[i] < noise_acc[i]
    assert noise_acc[2] >= clean - 0.1  # noise of the same budget barely matters
    assert pgd_acc[1] < clean - 0.3  # a budget well below the 0.06 signal already hurts
    assert pgd_acc[2] <= 0.1  # half the signal's amplitude breaks the model


def test_robust_accuracy_does_not_depend_on_the_batch_size_at_eps_zero() -> None:
    net, images, labels = trained_classifier()
    _, logits = pixel_fns(net)
    small = robust_accuracy(logits, images, labels, [0], batch_size=5)
    large = robust_accuracy(logits, images, labels, [0], batch_size=64)
    assert small == large
    assert np.array_equal(small.per_sample, large.per_sample)


# --------------------------------------------------------------------------- eps 0, seeds


def test_eps_zero_gives_the_clean_values_and_images() -> None:
    features, logits = pixel_fns(random_net())
    images = random_images()
    loss_fn = feature_distance_loss(features, features(images).detach())
    assert torch.equal(pgd(loss_fn, images, 0.0), images)
    assert torch.equal(fgsm(loss_fn, images, 0.0), images)
    assert torch.equal(random_noise(images, 0.0), images)
    drift = feature_drift(features, images, [0, 0.01])
    assert drift.values[0] == 0.0 == drift.clean
    assert drift.values[1] > 0
    labels = logits(images).argmax(1).detach()
    accuracy = robust_accuracy(logits, images, labels, [0.0])
    assert accuracy.values == (1.0,) and accuracy.clean == 1.0


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_same_seed_same_adversarial_images(norm: str) -> None:
    features, _ = pixel_fns(random_net())
    images = random_images()
    loss_fn = feature_distance_loss(features, features(images).detach())
    eps = 4 / 255 if norm == "linf" else 0.5
    first = pgd(loss_fn, images, eps, norm=norm, steps=3, seed=7)
    second = pgd(loss_fn, images, eps, norm=norm, steps=3, seed=7)
    other = pgd(loss_fn, images, eps, norm=norm, steps=3, seed=8)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert torch.equal(
        random_noise(images, eps, norm=norm, seed=1), random_noise(images, eps, norm=norm, seed=1)
    )
    run = functools.partial(feature_drift, features, images, [eps], norm=norm, steps=3, seed=4)
    assert run() == run()


# --------------------------------------------------------------------------- backbones


def photos(size: int) -> torch.Tensor:
    """Four skimage photos resized and centre-cropped to ``size``, as [0, 1] floats."""
    import skimage.data

    pre = Preprocessing(size, 1.0, "bilinear", MEAN, STD)
    names = ("astronaut", "chelsea", "coffee", "rocket")
    crops = [pre.geometry(getattr(skimage.data, name)())[0] for name in names]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255


def test_from_backbone_matches_backbone_forward_and_drifts_with_eps() -> None:
    from pytest_sslrobust.backbones.loading import load_backbone

    backbone = load_backbone("random-resnet18")
    features_fn, logits_fn = from_backbone(backbone)
    assert logits_fn is not None  # timm's resnet18 keeps its 1000-way head
    images = photos(backbone.preprocessing.input_size)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    reference_features, reference_logits = backbone.forward((images - mean) / std)
    assert torch.allclose(features_fn(images), reference_features, atol=1e-5)
    assert torch.allclose(logits_fn(images), reference_logits, atol=1e-4)

    grad_flags = [p.requires_grad for p in backbone.model.parameters()]
    result = feature_drift(features_fn, images, [0, 2 / 255, 8 / 255], steps=4)
    assert result.metric == "feature_drift" and result.steps == 4 and result.n == 4
    assert result.values[0] == 0.0
    assert 0 < result.values[1] < result.values[2]
    assert [p.requires_grad for p in backbone.model.parameters()] == grad_flags
    assert all(p.grad is None for p in backbone.model.parameters())
    assert not backbone.model.training


def test_from_backbone_plain_module_has_no_logits() -> None:
    net = random_net()
    pre = Preprocessing(SIZE, 1.0, "bilinear", MEAN, STD)
    backbone = Backbone(
        net.body, spec="tiny", name="tiny", architecture="tiny", preprocessing=pre, weights="random"
    )
    features_fn, logits_fn = from_backbone(backbone)
    images = random_images()
    assert logits_fn is None
    assert torch.allclose(features_fn(images), PixelSpaceModel(net.body, MEAN, STD)(images))
    assert feature_drift(features_fn, images, [4 / 255], steps=2).values[0] > 0


def test_parameters_keep_requires_grad_and_get_no_grad() -> None:
    net, images, labels = trained_classifier()
    net.body[0].weight.requires_grad_(False)  # a frozen layer must stay frozen
    try:
        flags = [p.requires_grad for p in net.parameters()]
        features, logits = pixel_fns(net)
        robust_accuracy(logits, images[:8], labels[:8], [0, 0.03], steps=2)
        robust_accuracy(logits, images[:8], labels[:8], [0.03], attack="fgsm", norm="l2")
        feature_drift(features, images[:8], [0.03], steps=2)
        assert [p.requires_grad for p in net.parameters()] == flags
        assert all(p.grad is None for p in net.parameters())
    finally:
        net.body[0].weight.requires_grad_(True)


def test_attacks_work_inside_inference_mode() -> None:
    features, logits = pixel_fns(random_net())
    images = random_images()
    outside = feature_drift(features, images, [0.02], steps=2)
    with torch.inference_mode():
        inside = feature_drift(features, images, [0.02], steps=2)
        labels = logits(images).argmax(1)
        accuracy = robust_accuracy(logits, images, labels, [0, 0.02], steps=2)
    assert inside == outside
    assert accuracy.clean == 1.0


def test_attack_result_as_dict() -> None:
    features, _ = pixel_fns(random_net())
    result = feature_drift(features, random_images(), [0, 0.01], attack="fgsm", norm="linf")
    assert isinstance(result, AttackResult)
    described = result.as_dict()
    assert described["eps"] == [0.0, 0.01] and described["steps"] == 1
    assert "per_sample" not in described and described["attack"] == "fgsm"


# --------------------------------------------------------------------------- bad arguments


def _bad_calls() -> list[tuple[str, Callable[[], object]]]:
    features, logits = pixel_fns(random_net())
    images = random_images()
    labels = [0, 1, 0, 1]
    loss_fn = cross_entropy_loss(logits, labels)
    return [
        ("negative eps", lambda: fgsm(loss_fn, images, -0.1)),
        ("nan eps", lambda: pgd(loss_fn, images, float("nan"))),
        ("unknown norm", lambda: pgd(loss_fn, images, 0.1, norm="l1")),
        ("zero steps", lambda: pgd(loss_fn, images, 0.1, steps=0)),
        ("negative step size", lambda: pgd(loss_fn, images, 0.1, step_size=-1.0)),
        ("uint8 images", lambda: fgsm(loss_fn, (images * 255).to(torch.uint8), 0.1)),
        ("images above 1", lambda: fgsm(loss_fn, images * 255, 0.1)),
        ("images below 0", lambda: random_noise(images - 0.5, 0.1)),
        ("grey images", lambda: random_noise(images[:, :1], 0.1)),
        ("no batch axis", lambda: random_noise(images[0], 0.1)),
        ("few labels", lambda: robust_accuracy(logits, images, [0, 1], [0.1])),
        ("negative labels", lambda: robust_accuracy(logits, images, [0, -1, 0, 1], [0.1])),
        ("label out of range", lambda: robust_accuracy(logits, images, [0, 1, 2, 1], [0.1])),
        ("empty eps list", lambda: robust_accuracy(logits, images, labels, [])),
        ("scalar eps list", lambda: feature_drift(features, images, 0.1)),
        ("negative in eps list", lambda: feature_drift(features, images, [0, -0.1])),
        ("unknown attack", lambda: feature_drift(features, images, [0.1], attack="cw")),
        ("zero batch size", lambda: feature_drift(features, images, [0.1], batch_size=0)),
        ("bad steps", lambda: feature_drift(features, images, [0.0], steps=0)),
        ("bad norm, eps 0", lambda: feature_drift(features, images, [0.0], norm="L2")),
        ("loss shape", lambda: fgsm(lambda x: features(x), images, 0.1)),
        ("std", lambda: PixelSpaceModel(features, MEAN, (0.2, 0.0, 0.2))),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls())), ids=[n for n, _ in _bad_calls()])
def test_bad_arguments_raise_value_error(case: int) -> None:
    name, call = _bad_calls()[case]
    with pytest.raises(ValueError, match="Expected"):
        call()


def test_module_exports() -> None:
    assert set(attacks.NORMS) == {"linf", "l2"}
    assert {"pgd", "fgsm"} <= set(attacks.ATTACKS)
