"""Tests for pytest_sslrobust.attribution: Grad-CAM and rollout maps, and measures on them."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import scipy.stats
import timm
import torch
import torch.nn.functional as F
from torch import nn

from pytest_sslrobust.attribution import (
    METHODS,
    Maps,
    Target,
    attribution_maps,
    entropy,
    focus_shift,
    foreground_focus,
    target_layer,
)
from pytest_sslrobust.backbones.base import Backbone, Preprocessing

SIZE = 64
PREPROCESSING = Preprocessing(
    input_size=SIZE,
    crop_pct=1.0,
    interpolation="bilinear",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)


def wrap(model: nn.Module, name: str) -> Backbone:
    return Backbone(
        model,
        spec=name,
        name=name,
        architecture=name,
        preprocessing=PREPROCESSING,
        weights="random",
    )


def timm_backbone(arch: str, seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    return wrap(timm.create_model(arch, pretrained=False, num_classes=0), arch)


def random_images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def random_head(dim: int, classes: int = 5, seed: int = 2) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(dim, classes)


@pytest.fixture(scope="module")
def resnet() -> Backbone:
    return timm_backbone("test_resnet")


@pytest.fixture(scope="module")
def vit() -> Backbone:
    return timm_backbone("test_vit")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return random_images(4)


def features_of(backbone: Backbone, images: torch.Tensor) -> torch.Tensor:
    return backbone.forward(images)[0]


def targets_for(backbone: Backbone, images: torch.Tensor) -> dict[str, Target]:
    features = features_of(backbone, images)
    return {
        "classes": Target.classes(random_head(features.shape[1]), torch.tensor([0, 1, 2, 3])),
        # another image's embedding: the cosine gradient does not vanish
        "similarity": Target.similarity(features.roll(1, dims=0)),
        "projection": Target.similarity(features, measure="projection"),
    }


def hooks_of(model: nn.Module) -> list[str]:
    found = []
    for name, module in model.named_modules():
        for kind in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
            "_state_dict_hooks",
        ):
            if getattr(module, kind, None):
                found.append(f"{name or '<root>'}.{kind}")
    return found


# ------------------------------------------------------------------------ map properties


@pytest.mark.parametrize(
    ("arch", "method"),
    [("resnet", "gradcam"), ("vit", "gradcam"), ("vit", "rollout")],
)
@pytest.mark.parametrize("kind", ["classes", "similarity", "projection"])
def test_maps_are_distributions_over_the_image(
    request: pytest.FixtureRequest, images: torch.Tensor, arch: str, method: str, kind: str
) -> None:
    backbone = request.getfixturevalue(arch)
    target = targets_for(backbone, images)[kind]

    result = attribution_maps(backbone, images, target, method=method, batch_size=3)

    assert isinstance(result, Maps)
    assert result.method == method
    maps = result.maps
    assert maps.shape == (4, SIZE, SIZE)
    assert maps.dtype == torch.float32 and maps.device.type == "cpu"
    assert torch.isfinite(maps).all()
    assert (maps >= 0).all()
    torch.testing.assert_close(maps.double().sum(dim=(1, 2)), torch.ones(4, dtype=torch.float64))
    assert 0 <= result.degenerate < 4
    # a real map, not the uniform fallback: the evidence is uneven
    assert (maps.flatten(1).std(dim=1) > 0).sum() == 4 - result.degenerate


def test_rollout_matches_an_independent_computation(vit: Backbone, images: torch.Tensor) -> None:
    """Abnar & Zuidema's rollout, computed step by step from the blocks' own weights."""
    model = vit.model
    with torch.no_grad():
        x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(images))))
        tokens = x.shape[1]
        rollout = torch.eye(tokens, dtype=torch.float64).expand(len(images), -1, -1)
        for block in model.blocks:
            attn = block.attn
            y = block.norm1(x)
            qkv = attn.qkv(y).reshape(len(images), tokens, 3, attn.num_heads, attn.head_dim)
            q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            q, k = attn.q_norm(q), attn.k_norm(k)
            weights = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1).mean(dim=1)
            layer = 0.5 * weights.double() + 0.5 * torch.eye(tokens, dtype=torch.float64)
            rollout = layer @ rollout
            x = block(x)
    side = SIZE // 16
    flow = rollout[:, 0, model.num_prefix_tokens :].reshape(-1, 1, side, side)
    expected = F.interpolate(flow, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    expected = expected / expected.sum(dim=(1, 2), keepdim=True)

    result = attribution_maps(vit, images, targets_for(vit, images)["classes"], method="rollout")

    torch.testing.assert_close(result.maps.double(), expected, rtol=1e-4, atol=1e-8)
    assert result.degenerate == 0


# ------------------------------------------------------------ a model that sees one box


class BoxNet(nn.Module):
    """A timm-API model that sees only a box of the image: zero input elsewhere gives zero
    features there (bias-free convolutions, ReLU, non-overlapping 4 x 4 patches)."""

    def __init__(self, box: tuple[int, int, int, int], seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Conv2d(3, 16, kernel_size=4, stride=4, bias=False)
        self.stage = nn.Sequential(nn.ReLU(), nn.Conv2d(16, 32, 1, bias=False), nn.ReLU())
        self.feature_info = [{"module": "stage", "num_chs": 32, "reduction": 4}]
        self.num_classes = 0
        self.register_buffer("mask", box_mask(box)[None, None].float())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(self.stem(x * self.mask))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.mean(dim=(2, 3))

    def get_classifier(self) -> nn.Module:
        return nn.Identity()


def box_mask(box: tuple[int, int, int, int]) -> torch.Tensor:
    top, bottom, left, right = box
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


BOX = (16, 48, 8, 40)
ELSEWHERE = (16, 48, 40, 64)  # disjoint from BOX, to the right of it


@pytest.mark.parametrize("kind", ["classes", "similarity"])
def test_gradcam_puts_the_mass_where_the_model_looks(kind: str) -> None:
    backbone = wrap(BoxNet(BOX), "boxnet")
    images = random_images(3, seed=5)
    features = features_of(backbone, images)
    if kind == "classes":
        head = nn.Linear(32, 3)
        with torch.no_grad():  # positive weights: every class has evidence in the box
            head.weight.abs_()
        target = Target.classes(head, torch.tensor([0, 1, 2]))
    else:
        target = Target.similarity(features.roll(1, dims=0))

    result = attribution_maps(backbone, images, target)

    assert result.degenerate == 0
    masks = box_mask(BOX).expand(3, -1, -1)
    inside = foreground_focus(result.maps, masks)
    assert (inside > 0.9).all(), inside
    elsewhere = foreground_focus(result.maps, box_mask(ELSEWHERE).expand(3, -1, -1))
    assert (elsewhere < 0.05).all(), elsewhere
    # the uniform map would score the box's area: the maps are far more focused than that
    assert (inside > 3 * box_mask(BOX).float().mean().item()).all()


def test_similarity_to_the_own_embedding_is_degenerate(resnet: Backbone) -> None:
    """At its reference the cosine is maximal and its gradient vanishes: Grad-CAM would
    render rounding noise, so those maps are uniform and counted; projection is not."""
    images = random_images(3, seed=7)
    features = features_of(resnet, images)

    cosine = attribution_maps(resnet, images, Target.similarity(features))
    projection = attribution_maps(resnet, images, Target.similarity(features, measure="projection"))

    assert cosine.degenerate == 3
    torch.testing.assert_close(cosine.maps, torch.full((3, SIZE, SIZE), 1.0 / SIZE**2))
    assert projection.degenerate == 0
    assert (projection.maps.flatten(1).std(dim=1) > 0).all()


# ------------------------------------------------------------------- determinism, batching


@pytest.mark.parametrize(
    ("arch", "method", "kind"),
    [
        ("resnet", "gradcam", "projection"),
        ("vit", "gradcam", "classes"),
        ("vit", "rollout", "classes"),
    ],
)
def test_maps_are_deterministic_and_independent_of_the_batch(
    request: pytest.FixtureRequest, images: torch.Tensor, arch: str, method: str, kind: str
) -> None:
    backbone = request.getfixturevalue(arch)
    target = targets_for(backbone, images)[kind]

    first = attribution_maps(backbone, images, target, method=method, batch_size=3)
    again = attribution_maps(backbone, images, target, method=method, batch_size=3)
    assert torch.equal(first.maps, again.maps)
    assert first.degenerate == again.degenerate

    for index in (0, 3):  # first of the first chunk, alone in the second chunk
        single = (
            Target.classes(target.head, target.labels[index : index + 1])
            if (target.kind == "classes")
            else Target.similarity(target.reference[index : index + 1], measure=target.measure)
        )
        alone = attribution_maps(
            backbone, images[index : index + 1], single, method=method, batch_size=1
        )
        torch.testing.assert_close(alone.maps[0], first.maps[index], rtol=1e-4, atol=1e-8)
    # the tolerance is far tighter than the difference between two images' maps
    assert not torch.allclose(first.maps[0], first.maps[3], rtol=1e-3, atol=1e-8)


# ------------------------------------------------------------------ the model as found


def test_model_is_left_as_found(vit: Backbone, images: torch.Tensor) -> None:
    model = vit.model
    flags = [block.attn.fused_attn for block in model.blocks]
    model.blocks[0].attn.fused_attn = not flags[0]
    expected_fused = [block.attn.fused_attn for block in model.blocks]
    model.patch_embed.requires_grad_(False)
    marker = torch.full_like(model.blocks[1].mlp.fc1.weight, 0.25)
    model.blocks[1].mlp.fc1.weight.grad = marker
    expected_requires = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    targets = targets_for(vit, images)
    head = targets["classes"].head
    head.train()

    try:
        for method in METHODS:
            for target in targets.values():
                attribution_maps(vit, images, target, method=method, batch_size=3)
        # an error raised inside the library's pass leaves the model as found too
        bad = Target.classes(head, torch.tensor([0, 1, 2, 99]))
        with pytest.raises(ValueError, match="label 99 is out of range"):
            attribution_maps(vit, images, bad)

        assert hooks_of(model) == [] and hooks_of(head) == []
        assert not model.training
        assert all(not m.training for m in model.modules())
        assert head.training
        assert [block.attn.fused_attn for block in model.blocks] == expected_fused
        assert [p.requires_grad for p in model.parameters()] == expected_requires
        assert all(p.requires_grad for p in head.parameters())
        assert all(p.grad is None for p in head.parameters())
        assert model.blocks[1].mlp.fc1.weight.grad is marker
        assert sum(p.grad is not None for p in model.parameters()) == 1
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), key
    finally:
        for block, flag in zip(model.blocks, flags, strict=True):
            block.attn.fused_attn = flag
        model.requires_grad_(True)
        model.blocks[1].mlp.fc1.weight.grad = None


# ------------------------------------------------------------------------ layers, errors


def test_target_layers(resnet: Backbone, vit: Backbone) -> None:
    layer, reshape = target_layer(resnet)
    assert layer is resnet.model.layer4 and reshape is None

    layer, reshape = target_layer(vit)
    assert layer is vit.model.blocks[-1].norm1
    tokens = torch.arange(2 * 17 * 8, dtype=torch.float32).reshape(2, 17, 8)
    grid = reshape(tokens)
    assert grid.shape == (2, 8, 4, 4)
    # channel c of patch (row, col) is token 1 + row * 4 + col (the class token dropped)
    assert torch.equal(grid[1, 3, 2, 1], tokens[1, 1 + 2 * 4 + 1, 3])


class Mixer(nn.Module):
    """No convolution, no timm API: per-pixel channel mixing of 8 x 8 averaged patches."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.pool = nn.AvgPool2d(8)
        self.mix = nn.Parameter(torch.randn(6, 3))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(torch.einsum("dc,nchw->ndhw", self.mix, self.pool(x))).mean(dim=(2, 3))


def test_unknown_architecture_needs_an_explicit_layer(images: torch.Tensor) -> None:
    class Explicit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Mixer()
            self.mixing = nn.Identity()  # a named point to read the (n, C, h, w) maps at

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            inner = self.inner
            maps = self.mixing(torch.einsum("dc,nchw->ndhw", inner.mix, inner.pool(x)))
            return inner.act(maps).mean(dim=(2, 3))

    backbone = wrap(Explicit(), "mixer")
    assert not backbone.embedding_module().timm_api
    target = Target.similarity(features_of(backbone, images).roll(1, dims=0))

    with pytest.raises(ValueError, match=r"mixer.*method='rollout'.*layer="):
        attribution_maps(backbone, images, target)

    result = attribution_maps(backbone, images, target, layer=backbone.model.mixing)
    assert result.maps.shape == (4, SIZE, SIZE)
    torch.testing.assert_close(result.maps.double().sum(dim=(1, 2)), torch.ones(4).double())


def test_errors(resnet: Backbone, images: torch.Tensor) -> None:
    target = targets_for(resnet, images)["projection"]
    with pytest.raises(ValueError, match=r"test_resnet.*method='gradcam'"):
        attribution_maps(resnet, images, target, method="rollout")
    with pytest.raises(ValueError, match=re.escape(str(METHODS))):
        attribution_maps(resnet, images, target, method="saliency")
    with pytest.raises(ValueError, match="4 entries but there are 3 images"):
        attribution_maps(resnet, images[:3], target)
    with pytest.raises(ValueError, match=r"\(n, 3, S, S\)"):
        attribution_maps(resnet, images[0], target)
    with pytest.raises(ValueError, match="512 features but the backbone produces 96"):
        attribution_maps(resnet, images, Target.similarity(torch.ones(4, 512)))
    with pytest.raises(TypeError, match="integer class indices"):
        Target.classes(nn.Linear(96, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="all zero"):
        Target.similarity(torch.zeros(2, 96))
    with pytest.raises(ValueError, match="unknown similarity measure"):
        Target.similarity(torch.ones(2, 96), measure="dot")


def test_describe_keys_the_head_not_the_images() -> None:
    head = random_head(96)
    same = random_head(96)
    described = Target.classes(head, torch.tensor([0, 1])).describe()

    assert json.loads(json.dumps(described)) == described
    assert described["kind"] == "classes"
    assert Target.classes(same, torch.tensor([4])).describe() == described
    with torch.no_grad():
        same.bias[0] += 1e-3
    assert Target.classes(same, torch.tensor([0, 1])).describe() != described

    similarity = Target.similarity(torch.randn(3, 96)).describe()
    assert json.loads(json.dumps(similarity)) == similarity
    assert Target.similarity(torch.randn(5, 96)).describe() == similarity
    assert Target.similarity(torch.randn(5, 96), measure="projection").describe() != similarity


# ------------------------------------------------------------------------------ measures


def random_maps(n: int, seed: int, levels: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    maps = rng.random((n, 12, 10))
    if levels is not None:  # quantised: many ties
        maps = np.floor(maps * levels)
    return maps


def test_focus_shift_of_identical_and_altered_maps() -> None:
    clean = random_maps(5, seed=0)

    same = focus_shift(clean, clean.copy())
    assert set(same) == {"rank_shift", "topk_overlap"}
    np.testing.assert_allclose(same["rank_shift"], 0.0, atol=1e-12)
    np.testing.assert_array_equal(same["topk_overlap"], 1.0)

    rng = np.random.default_rng(1)
    shuffled = np.stack([rng.permutation(m.ravel()).reshape(m.shape) for m in clean])
    moved = focus_shift(clean, shuffled)
    assert (moved["rank_shift"] > 0.5).all()
    assert (moved["topk_overlap"] < 0.6).all()

    reversed_ = focus_shift(clean, clean.max() - clean)
    np.testing.assert_allclose(reversed_["rank_shift"], 2.0, atol=1e-12)
    np.testing.assert_array_equal(reversed_["topk_overlap"], 0.0)
    for value in (*same.values(), *moved.values()):
        assert value.dtype == np.float64 and value.shape == (5,)


@pytest.mark.parametrize("levels", [None, 4])
def test_focus_shift_matches_an_independent_computation(levels: int | None) -> None:
    clean = random_maps(6, seed=2, levels=levels)
    altered = clean + random_maps(6, seed=3, levels=levels)
    top_k = 0.15

    result = focus_shift(torch.from_numpy(clean), torch.from_numpy(altered), top_k=top_k)

    spearman = [
        scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic
        for a, b in zip(clean, altered, strict=True)
    ]
    np.testing.assert_allclose(result["rank_shift"], 1.0 - np.array(spearman), atol=1e-12)
    k = math.ceil(top_k * 120)  # 18
    overlaps = []
    for a, b in zip(clean, altered, strict=True):
        top_a = {i for _, i in sorted((-value, i) for i, value in enumerate(a.ravel()))[:k]}
        top_b = {i for _, i in sorted((-value, i) for i, value in enumerate(b.ravel()))[:k]}
        overlaps.append(len(top_a & top_b) / k)
    np.testing.assert_allclose(result["topk_overlap"], overlaps, atol=0)


def test_focus_shift_of_constant_maps() -> None:
    uniform = np.full((2, 8, 8), 1 / 64)
    varied = random_maps(2, seed=4)[:, :8, :8]

    assert focus_shift(uniform, uniform)["rank_shift"].tolist() == [0.0, 0.0]
    assert focus_shift(uniform, varied)["rank_shift"].tolist() == [1.0, 1.0]
    assert focus_shift(varied, uniform)["rank_shift"].tolist() == [1.0, 1.0]
    # ties in the top-k are broken by pixel index: two uniform maps agree exactly
    assert focus_shift(uniform, uniform)["topk_overlap"].tolist() == [1.0, 1.0]


def test_foreground_focus() -> None:
    masks = np.zeros((3, 8, 8), dtype=bool)
    masks[:, 2:6, 1:4] = True  # 12 of 64 pixels
    inside = np.where(masks, 1.0, 0.0) + 1e-9
    uniform = np.full((3, 8, 8), 1 / 64)
    varied = random_maps(3, seed=5)[:, :8, :8]

    np.testing.assert_allclose(foreground_focus(inside, masks), 1.0, atol=1e-6)
    np.testing.assert_allclose(foreground_focus(uniform, masks), 12 / 64, rtol=1e-12)
    expected = [(m * k).sum() / m.sum() for m, k in zip(varied, masks, strict=True)]
    np.testing.assert_allclose(foreground_focus(torch.from_numpy(varied), masks), expected)

    with pytest.raises(ValueError, match=r"masks have shape \(3, 8, 7\)"):
        foreground_focus(uniform, masks[:, :, :7])
    with pytest.raises(ValueError, match=r"masks have shape"):
        foreground_focus(uniform, masks[0])
    empty = masks.copy()
    empty[1] = False
    with pytest.raises(ValueError, match="1 of 3 masks are empty"):
        foreground_focus(uniform, empty)
    with pytest.raises(TypeError, match="boolean"):
        foreground_focus(uniform, masks.astype(np.uint8))
    with pytest.raises(ValueError, match="negative"):
        foreground_focus(-uniform, masks)


def test_entropy() -> None:
    uniform = np.full((2, 8, 8), 3.0)  # not normalised: entropy normalises
    one_hot = np.zeros((2, 8, 8))
    one_hot[0, 3, 4] = one_hot[1, 0, 0] = 1.0
    varied = random_maps(4, seed=6)

    np.testing.assert_allclose(entropy(uniform), 1.0, atol=1e-12)
    np.testing.assert_array_equal(entropy(one_hot), 0.0)
    expected = [scipy.stats.entropy(m.ravel()) / np.log(120) for m in varied]
    np.testing.assert_allclose(entropy(torch.from_numpy(varied)), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="zero everywhere"):
        entropy(np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match=r"\(n, H, W\)"):
        entropy(np.ones((4, 4)))
