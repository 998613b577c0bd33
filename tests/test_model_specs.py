"""Model spec grammar: ALIAS=file:PATH, @PARADIGM, architecture settings, released-file aliases."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from pytest_sslrobust.backbones.base import BackboneError
from pytest_sslrobust.backbones.loading import load_backbone
from pytest_sslrobust.backbones.registry import (
    PARADIGMS,
    SpecError,
    get_alias,
    list_backbones,
    model_id,
    parse_arch,
    parse_spec,
    study_input_size,
    validate_spec,
)


@pytest.mark.parametrize(
    ("spec", "kind", "target", "alias", "paradigm", "id_"),
    [
        ("dinov2", "alias", "dinov2", "dinov2", None, "dinov2"),
        ("swav=file:/ckpt/swav.pth.tar", "file", "/ckpt/swav.pth.tar", "swav", None, "swav"),
        (
            "file:/w/candidate.pth@contrastive",
            "file",
            "/w/candidate.pth",
            None,
            "contrastive",
            "candidate",
        ),
        (
            "timm:resnet50.a1_in1k@supervised",
            "timm",
            "resnet50.a1_in1k",
            None,
            "supervised",
            "resnet50.a1_in1k",
        ),
        ("dinov2@clustering", "alias", "dinov2", "dinov2", "clustering", "dinov2"),
        ("file:/w/ckpt@v2.pth", "file", "/w/ckpt@v2.pth", None, None, "ckpt@v2"),
        (
            "mypkg.models:make@distillation",
            "factory",
            "mypkg.models:make",
            None,
            "distillation",
            "mypkg.models:make",
        ),
    ],
)
def test_spec_grammar(spec, kind, target, alias, paradigm, id_) -> None:
    parsed = parse_spec(spec)
    assert (parsed.kind, parsed.target, parsed.alias) == (kind, target, alias)
    assert parsed.paradigm == (PARADIGMS[paradigm] if paradigm else None)
    assert model_id(spec) == id_


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("file:/w/a.pth@contrastiv", "unknown paradigm 'contrastiv'"),
        ("nosuchalias=file:/w/a.pth", "'nosuchalias' is not an alias"),
    ],
)
def test_bad_specs_name_the_fix(spec: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        parse_spec(spec)
    assert fragment in (validate_spec(spec) or "")


def test_every_paradigm_of_the_taxonomy_has_an_alias() -> None:
    paradigms = {get_alias(name).paradigm for name in list_backbones()}
    assert set(PARADIGMS.values()) <= paradigms


@pytest.mark.parametrize(
    "name",
    [
        "swav",
        "mocov2",
        "mocov3",
        "mocov3-vit-s",
        "simclr",
        "byol",
        "barlowtwins",
        "vicreg",
        "simsiam",
    ],
)
def test_released_file_alias_without_a_path_says_how(name: str) -> None:
    message = validate_spec(name)
    assert message is not None and f"--sslrobust-model={name}=file:PATH" in message
    with pytest.raises(BackboneError, match=f"{name}=file:PATH"):
        load_backbone(name)


def test_study_resolution_rule() -> None:
    assert study_input_size("vit_small_patch14_dinov2") == 224
    assert study_input_size("vit_large_patch14_reg4_dinov2.lvd142m") == 224
    assert study_input_size("convnext_tiny") is None  # no alias: timm's pretrained size


@pytest.mark.parametrize(
    ("text", "name", "settings"),
    [
        ("resnet50", "resnet50", ()),
        ("vit_small_patch16_224:num_heads=12", "vit_small_patch16_224", (("num_heads", 12),)),
        (
            "vit_base_patch16_224.mae:global_pool='avg',drop_rate=0.0",
            "vit_base_patch16_224.mae",
            (("global_pool", "avg"), ("drop_rate", 0.0)),
        ),
        (
            "resnet50:output_stride=8,zero_init_last=False",
            "resnet50",
            (("output_stride", 8), ("zero_init_last", False)),
        ),
        (
            "vit_small_patch16_224:global_pool=token",
            "vit_small_patch16_224",
            (("global_pool", "token"),),
        ),
    ],
)
def test_arch_settings(text: str, name: str, settings: tuple) -> None:
    assert parse_arch(text) == (name, settings)


@pytest.mark.parametrize("text", ["vit small", "resnet50:", "resnet50:num_heads", "a:b=1,=2"])
def test_bad_arch_settings(text: str) -> None:
    with pytest.raises(SpecError, match="Could not parse architecture"):
        parse_arch(text)


def test_swav_alias_points_at_the_authors_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = timm.create_model("resnet50", pretrained=False, num_classes=0).eval()
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    state["module.projection_head.0.weight"] = torch.randn(2048, 2048)
    state["module.prototypes.weight"] = torch.randn(3000, 128)
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(state, path)

    backbone = load_backbone(f"swav=file:{path}")

    assert backbone.name == "swav" and backbone.layout == "swav"
    assert backbone.paradigm == "self-supervised (clustering)"
    assert backbone.architecture == "resnet50" and backbone.preprocessing.input_size == 224
    assert backbone.preprocessing.crop_pct == 0.875
    batch = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference(batch)
    torch.testing.assert_close(backbone.forward(batch)[0], expected)


def test_paradigm_suffix_and_image_size_apply_to_any_spec(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    path = tmp_path / "candidate.pth"
    torch.save(model.state_dict(), path)
    backbone = load_backbone(f"file:{path}@contrastive", arch="resnet10t", image_size=96)
    assert backbone.paradigm == "self-supervised (contrastive)"
    assert backbone.preprocessing.input_size == 96
    assert backbone.name == "candidate"


def test_cross_paradigm_contracts_run_on_the_users_own_files(pytester: pytest.Pytester) -> None:
    for seed, name in ((0, "ours"), (1, "baseline")):
        torch.manual_seed(seed)
        model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
        torch.save(model.state_dict(), pytester.path / f"{name}.pth")
    pytester.makepyfile(
        """
        def test_pair(sslrobust_models):
            contrastive, supervised = sslrobust_models.pair("contrastive", "supervised")
            assert contrastive.backbone.name == "ours"
            assert contrastive.backbone.paradigm == "self-supervised (contrastive)"
            assert supervised.backbone.name == "baseline"

        def test_ids(sslrobust):
            assert sslrobust.backbone.layout == "state-dict"
        """
    )
    result = pytester.runpytest_subprocess(
        f"--sslrobust-model=file:{pytester.path}/ours.pth@contrastive,"
        f"file:{pytester.path}/baseline.pth@supervised",
        "--sslrobust-arch=resnet10t",
        "--sslrobust-image-size=32",
        "--sslrobust-max-images=10",
        f"--sslrobust-cache-dir={pytester.path / 'cache'}",
        "-v",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_ids?ours? PASSED*", "*test_ids?baseline? PASSED*"])


def test_identical_weights_under_two_specs_keep_their_names(pytester: pytest.Pytester) -> None:
    import json

    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    for name in ("release", "candidate"):
        torch.save(model.state_dict(), pytester.path / f"{name}.pth")
    pytester.makepyfile(
        """
        from pytest_sslrobust import assert_cka_between

        def test_cka(sslrobust):
            a = sslrobust.features("original", split="test")
            assert_cka_between(a, sslrobust.features("center", split="test"), 0.0, 1.0)
        """
    )
    out = pytester.path / "out.json"
    result = pytester.runpytest_subprocess(
        f"--sslrobust-model=file:{pytester.path}/release.pth,file:{pytester.path}/candidate.pth",
        "--sslrobust-arch=resnet10t",
        "--sslrobust-image-size=32",
        "--sslrobust-max-images=10",
        f"--sslrobust-cache-dir={pytester.path / 'cache'}",
        f"--sslrobust-json={out}",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2)
    text = out.read_text()
    assert json.loads(text)
    assert '"model": "release"' in text and '"model": "candidate"' in text
    result.stdout.fnmatch_lines(["*test_cka?release? ?cka?*", "*test_cka?candidate? ?cka?*"])


def test_bundled_alias_pointed_at_a_copy_keeps_its_head_and_classes(tmp_path: Path) -> None:
    import shutil

    from pytest_sslrobust.backbones.loading import BUNDLED_WEIGHTS

    copy = tmp_path / "retrained.safetensors"
    shutil.copy(BUNDLED_WEIGHTS / "bundled-supervised.safetensors", copy)
    original = load_backbone("bundled-supervised")
    backbone = load_backbone(f"bundled-supervised=file:{copy}")
    assert backbone.num_classes == 10 and backbone.label_space == "bundled:textured-digits"
    assert backbone.fingerprint == original.fingerprint
    assert backbone.preprocessing == original.preprocessing


def test_a_head_of_another_width_than_asked_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=1000)
    path = tmp_path / "supervised.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(BackboneError, match="has 1000 outputs but num_classes=10"):
        load_backbone(f"file:{path}", arch="resnet10t:num_classes=10")
    headless = load_backbone(f"file:{path}", arch="resnet10t:num_classes=0")
    assert headless.num_classes == 0
    assert any("dropped head keys" in note for note in headless.notes)
