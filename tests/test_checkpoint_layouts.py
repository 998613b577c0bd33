"""Released SSL checkpoint layouts, built from the authors' key names with random weights.

Each case wraps the state dict of a reference timm module the way the authors' save code
does (REFERENCE section 8: top-level keys, prefixes, training parts), loads it through
``file:`` and checks the recognised layout, every loaded tensor and the features against
the reference module. The layouts are data here; the loader's rules are not copied.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
from pickle_helpers import Payload
from safetensors.torch import save_file

from pytest_sslrobust.backbones.base import BackboneError
from pytest_sslrobust.backbones.checkpoints import read_checkpoint
from pytest_sslrobust.backbones.loading import load_backbone

State = dict[str, torch.Tensor]


def make(name: str, seed: int, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def features(model: torch.nn.Module, size: int) -> torch.Tensor:
    batch = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.forward_head(model.forward_features(batch), pre_logits=True)


def prefixed(prefix: str, state: State) -> State:
    return {f"{prefix}{k}": v.clone() for k, v in state.items()}


def parts(prefix: str, shapes: dict[str, tuple[int, ...]]) -> State:
    """Training parts the authors save beside the backbone: random tensors of these shapes."""
    generator = torch.Generator().manual_seed(9)
    return {f"{prefix}{k}": torch.randn(*shape, generator=generator) for k, shape in shapes.items()}


MLP = {"0.weight": (64, 512), "0.bias": (64,), "2.weight": (32, 64), "2.bias": (32,)}
BN = {"running_mean": (32,), "running_var": (32,)}
OPTIMIZER = {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}


def _resnet_cases(bb: State, other: State) -> dict[str, tuple[str, object]]:
    """(expected layout, saved object) per released ResNet layout; ``other`` is a second set
    of backbone weights for momentum copies, so loading the wrong copy is caught."""
    sequential = {}
    positions = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6"}
    positions["layer4"] = "7"
    for key, value in bb.items():
        head, _, rest = key.partition(".")
        sequential[f"{positions[head]}.{rest}"] = value.clone()
    return {
        "torchvision": ("state-dict", dict(bb)),
        "mocov1": (
            "mocov1",
            {
                "epoch": 200,
                "arch": "resnet50",
                "state_dict": {
                    **prefixed("module.encoder_q.", bb),
                    **parts("module.encoder_q.fc.", {"weight": (128, 512), "bias": (128,)}),
                    **prefixed("module.encoder_k.", other),
                    **parts("module.encoder_k.fc.", {"weight": (128, 512), "bias": (128,)}),
                    "module.queue": torch.randn(128, 16),
                    "module.queue_ptr": torch.zeros(1, dtype=torch.long),
                },
                "optimizer": OPTIMIZER,
            },
        ),
        "mocov2": (
            "mocov2",
            {
                "epoch": 800,
                "arch": "resnet50",
                "state_dict": {
                    **prefixed("module.encoder_q.", bb),
                    **parts("module.encoder_q.fc.", MLP),
                    **prefixed("module.encoder_k.", other),
                    **parts("module.encoder_k.fc.", MLP),
                    "module.queue": torch.randn(128, 16),
                    "module.queue_ptr": torch.zeros(1, dtype=torch.long),
                },
                "optimizer": OPTIMIZER,
            },
        ),
        "mocov3-resnet": (
            "mocov3",
            {
                "epoch": 1000,
                "arch": "resnet50",
                "state_dict": {
                    **prefixed("module.base_encoder.", bb),
                    **parts("module.base_encoder.fc.", MLP),
                    **prefixed("module.momentum_encoder.", other),
                    **parts("module.momentum_encoder.fc.", MLP),
                    **parts("module.predictor.", MLP),
                },
                "optimizer": OPTIMIZER,
                "scaler": {"scale": 65536.0},
            },
        ),
        "swav-hub": (
            "swav",
            {
                **prefixed("module.", bb),
                **parts("module.projection_head.", MLP),
                "module.prototypes.weight": torch.randn(30, 32),
            },
        ),
        "swav-training": (
            "swav",
            {
                "epoch": 800,
                "state_dict": {
                    **prefixed("module.", bb),
                    **parts("module.projection_head.", MLP),
                    "module.prototypes.weight": torch.randn(30, 32),
                },
                "optimizer": OPTIMIZER,
            },
        ),
        "vicreg-model": (
            "vicreg",
            {
                "epoch": 100,
                "model": {**prefixed("module.backbone.", bb), **parts("module.projector.", MLP)},
                "optimizer": OPTIMIZER,
            },
        ),
        "barlowtwins-checkpoint": (
            "barlowtwins",
            {
                "epoch": 1000,
                "model": {
                    **prefixed("module.backbone.", bb),
                    **parts("module.projector.", MLP),
                    **parts("module.bn.", BN),
                    "module.bn.num_batches_tracked": torch.tensor(5),
                },
                "optimizer": OPTIMIZER,
            },
        ),
        "simsiam": (
            "simsiam",
            {
                "epoch": 100,
                "arch": "resnet50",
                "state_dict": {
                    **prefixed("module.encoder.", bb),
                    **parts("module.encoder.fc.", {**MLP, "1.weight": (64,), "1.bias": (64,)}),
                    **parts("module.predictor.", MLP),
                },
                "optimizer": OPTIMIZER,
            },
        ),
        "dino-resnet-training": (
            "dino",
            {
                "student": {
                    **prefixed("module.backbone.", other),
                    **parts("module.head.mlp.", MLP),
                },
                "teacher": {
                    **prefixed("module.backbone.", bb),
                    **parts("module.head.mlp.", MLP),
                    **parts("module.head.last_layer.", {"weight_g": (30, 1), "weight_v": (30, 32)}),
                },
                "optimizer": OPTIMIZER,
                "epoch": 100,
                "args": argparse.Namespace(arch="resnet50", out_dim=30, lr=0.03),
                "dino_loss": {"center": torch.zeros(1, 30)},
            },
        ),
        "dino-resnet-teacher": (
            "dino-teacher",
            {**prefixed("backbone.", bb), **parts("head.mlp.", MLP)},
        ),
        "solo-learn": (
            "solo-learn",
            {
                "epoch": 399,
                "global_step": 1000,
                "pytorch-lightning_version": "2.0.0",
                "state_dict": {
                    **prefixed("backbone.", bb),
                    **parts("projector.", MLP),
                    **parts("classifier.", {"weight": (1000, 512), "bias": (1000,)}),
                    **prefixed("momentum_backbone.", other),
                    **parts("momentum_projector.", MLP),
                    "queue": torch.randn(2, 32, 16),
                },
            },
        ),
        "vissl": (
            "vissl",
            {
                "phase_idx": 799,
                "iteration": 1000,
                "classy_state_dict": {
                    "base_model": {
                        "model": {
                            "trunk": prefixed("_feature_blocks.", bb),
                            "heads": parts("0.clf.0.", {"weight": (1000, 512)}),
                        }
                    }
                },
            },
        ),
        "mmselfsup": (
            "mmselfsup",
            {
                "meta": {"mmselfsup_version": "1.0.0"},
                "state_dict": {
                    **prefixed("backbone.", bb),
                    **parts("neck.mlp.", MLP),
                    **prefixed("momentum_encoder.module.0.", other),
                },
            },
        ),
        "lightly-sequential": ("sequential", {"resnet18_parameters": sequential}),
        "lightly-nested": ("nested", {"my_backbone": dict(bb)}),
    }


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    return make("resnet18", seed=5, num_classes=0)


@pytest.fixture(scope="module")
def resnet_cases(resnet: torch.nn.Module) -> dict[str, tuple[str, object]]:
    other = make("resnet18", seed=6, num_classes=0).state_dict()
    return _resnet_cases(resnet.state_dict(), other)


RESNET_CASES = list(_resnet_cases({"conv1.weight": torch.zeros(1)}, {}))


def assert_same_tensors(loaded: torch.nn.Module, reference: torch.nn.Module) -> None:
    ours, theirs = loaded.state_dict(), reference.state_dict()
    assert sorted(ours) == sorted(theirs)
    for key, tensor in theirs.items():
        assert torch.equal(ours[key], tensor), key


@pytest.mark.parametrize("case", RESNET_CASES)
def test_released_resnet_layouts_load_exactly(
    tmp_path: Path, resnet: torch.nn.Module, resnet_cases: dict, case: str
) -> None:
    layout, saved = resnet_cases[case]
    path = tmp_path / f"{case}.pth"
    torch.save(saved, path)

    backbone = load_backbone(f"file:{path}", arch="resnet18")

    assert backbone.layout == layout
    assert backbone.describe()["checkpoint_layout"] == layout
    assert not backbone.has_head  # projections, online probes and prototypes never become one
    assert_same_tensors(backbone.model, resnet)
    torch.testing.assert_close(
        backbone.forward(_batch(64))[0], features(resnet, 64), rtol=0, atol=0
    )


def _batch(size: int) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_dropped_training_parts_are_named(tmp_path: Path, resnet_cases: dict) -> None:
    path = tmp_path / "solo.ckpt"
    torch.save(resnet_cases["solo-learn"][1], path)
    checkpoint = read_checkpoint(path)
    dropped = " ".join(checkpoint.dropped)
    for part in ("projector.", "classifier.", "momentum_backbone.", "momentum_projector."):
        assert part in dropped
    assert "queue" in dropped
    backbone = load_backbone(f"file:{path}", arch="resnet18")
    assert any("momentum_backbone." in note for note in backbone.notes)


def test_moco_v1_projection_is_not_a_classifier_unless_asked(
    tmp_path: Path, resnet_cases: dict
) -> None:
    path = tmp_path / "moco_v1_200ep_pretrain.pth.tar"
    torch.save(resnet_cases["mocov1"][1], path)

    backbone = load_backbone(f"file:{path}", arch="resnet18")
    assert backbone.num_classes == 0
    assert any(
        "128-wide projection" in note and "num_classes=128" in note for note in backbone.notes
    )

    kept = load_backbone(f"file:{path}", arch="resnet18:num_classes=128")
    assert kept.num_classes == 128 and kept.label_space is None


def test_imagenet_classifier_is_kept(tmp_path: Path) -> None:
    model = make("resnet18", seed=7)
    path = tmp_path / "vicreg_linear.pth"
    torch.save({"epoch": 90, "state_dict": prefixed("module.", model.state_dict())}, path)
    backbone = load_backbone(f"file:{path}", arch="resnet18")
    assert backbone.num_classes == 1000 and backbone.label_space == "imagenet-1k"
    assert_same_tensors(backbone.model, model)


def test_several_state_dicts_are_refused(tmp_path: Path, resnet: torch.nn.Module) -> None:
    path = tmp_path / "two.pth"
    torch.save({"a": resnet.state_dict(), "b": resnet.state_dict()}, path)
    with pytest.raises(BackboneError, match="several state dicts"):
        load_backbone(f"file:{path}", arch="resnet18")


def test_hugging_face_transformers_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"embeddings.patch_embeddings.projection.weight": torch.zeros(4, 3, 2, 2)}, str(path))
    with pytest.raises(BackboneError, match="Hugging Face transformers checkpoint"):
        load_backbone(f"file:{path}", arch="vit_small_patch16_224")


# ------------------------------------------------------------------------------- ViTs


@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    return make("vit_small_patch16_224", seed=3, num_classes=0)


def _vit_cases(bb: State) -> dict[str, tuple[str, object]]:
    d = bb["cls_token"].shape[-1]
    mmcls = {}
    for key, value in bb.items():
        key = key.replace("patch_embed.proj.", "patch_embed.projection.")
        if key.startswith("norm."):
            key = "ln1." + key[len("norm.") :]
        if key.startswith("blocks."):
            key = "layers." + key[len("blocks.") :]
            key = key.replace(".norm1.", ".ln1.").replace(".norm2.", ".ln2.")
            key = key.replace(".mlp.fc1.", ".ffn.layers.0.0.").replace(
                ".mlp.fc2.", ".ffn.layers.1."
            )
        mmcls[key] = value.clone()
    return {
        "dino-vit-hub": ("state-dict", dict(bb)),
        "dino-vit-training": (
            "dino",
            {
                "student": {**prefixed("module.backbone.", bb), **parts("module.head.mlp.", MLP)},
                "teacher": {
                    **prefixed("backbone.", bb),
                    **parts("head.mlp.", MLP),
                    **parts("head.last_layer.", {"weight_g": (30, 1), "weight_v": (30, 32)}),
                },
                "epoch": 300,
                "args": argparse.Namespace(arch="vit_small", patch_size=16),
                "dino_loss": {"center": torch.zeros(1, 30)},
            },
        ),
        "mae-encoder": ("state-dict", {"model": dict(bb)}),
        "mae-training": (
            "mae",
            {
                "model": {
                    **dict(bb),
                    "mask_token": torch.zeros(1, 1, 32),
                    **parts("decoder_embed.", {"weight": (32, d), "bias": (32,)}),
                    "decoder_pos_embed": torch.zeros(1, 197, 32),
                    **parts("decoder_blocks.0.norm1.", {"weight": (32,), "bias": (32,)}),
                    **parts("decoder_pred.", {"weight": (768, 32), "bias": (768,)}),
                },
                "optimizer": OPTIMIZER,
                "epoch": 1600,
                "scaler": {"scale": 65536.0},
                "args": argparse.Namespace(model="mae_vit_small_patch16", mask_ratio=0.75),
            },
        ),
        "mmselfsup-vit": (
            "mmselfsup",
            {"meta": {}, "state_dict": {**prefixed("backbone.", mmcls), **parts("neck.", MLP)}},
        ),
    }


VIT_CASES = list(_vit_cases({"cls_token": torch.zeros(1, 1, 4)}))


@pytest.mark.parametrize("case", VIT_CASES)
def test_released_vit_layouts_load_exactly(tmp_path: Path, vit: torch.nn.Module, case: str) -> None:
    layout, saved = _vit_cases(vit.state_dict())[case]
    path = tmp_path / f"{case}.pth"
    torch.save(saved, path)

    backbone = load_backbone(f"file:{path}", arch="vit_small_patch16_224")

    assert backbone.layout == layout
    assert backbone.preprocessing.input_size == 224
    assert_same_tensors(backbone.model, vit)
    torch.testing.assert_close(backbone.forward(_batch(224))[0], features(vit, 224))


# ------------------------------------------------------------------------- MoCo v3 ViT-S


@pytest.fixture(scope="module")
def mocov3_vit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    reference = make("vit_small_patch16_224", seed=4, num_classes=0, num_heads=12)
    momentum = make("vit_small_patch16_224", seed=8, num_classes=0, num_heads=12)
    head = {"0.weight": (64, 384), "1.weight": (64,), "1.bias": (64,), "3.weight": (32, 64)}
    saved = {
        "epoch": 300,
        "arch": "vit_small",
        "state_dict": {
            **prefixed("module.base_encoder.", reference.state_dict()),
            **parts("module.base_encoder.head.", head),
            **prefixed("module.momentum_encoder.", momentum.state_dict()),
            **parts("module.momentum_encoder.head.", head),
            **parts("module.predictor.", MLP),
        },
        "optimizer": OPTIMIZER,
        "scaler": {"scale": 1.0},
    }
    path = tmp_path_factory.mktemp("mocov3") / "vit-s-300ep.pth.tar"
    torch.save(saved, path)
    return path, reference


@pytest.mark.parametrize(
    "how",
    [
        lambda path: load_backbone(f"mocov3-vit-s=file:{path}"),
        lambda path: load_backbone(f"file:{path}", arch="vit_small_patch16_224:num_heads=12"),
    ],
    ids=["alias", "arch-settings"],
)
def test_mocov3_vit_small_has_twelve_heads(
    mocov3_vit: tuple[Path, torch.nn.Module], how: Callable[[Path], object]
) -> None:
    path, reference = mocov3_vit
    backbone = how(path)
    assert backbone.layout == "mocov3"
    assert backbone.model.blocks[0].attn.num_heads == 12
    assert_same_tensors(backbone.model, reference)
    difference = (backbone.forward(_batch(224))[0] - features(reference, 224)).abs().max()
    assert difference == 0


def test_mocov3_vit_small_with_six_heads_is_refused(
    mocov3_vit: tuple[Path, torch.nn.Module],
) -> None:
    path, _ = mocov3_vit
    with pytest.raises(BackboneError) as info:
        load_backbone(f"file:{path}", arch="vit_small_patch16_224")
    message = str(info.value)
    assert "12 attention heads" in message and "has 6" in message
    assert "--sslrobust-arch=vit_small_patch16_224:num_heads=12" in message


def test_alias_carries_settings_paradigm_and_preprocessing(
    mocov3_vit: tuple[Path, torch.nn.Module],
) -> None:
    path, _ = mocov3_vit
    by_arch = load_backbone(f"file:{path}", arch="vit_small_patch16_224:num_heads=12")
    alias = load_backbone(f"mocov3-vit-s=file:{path}")
    assert by_arch.describe()["settings"] == {"num_heads": "12"}
    assert alias.name == "mocov3-vit-s"
    assert alias.paradigm == "self-supervised (contrastive)"
    assert by_arch.paradigm == "unknown"
    # the alias evaluates as the authors did (ImageNet mean/std, crop 0.875, bilinear)
    assert alias.preprocessing.mean == (0.485, 0.456, 0.406)
    assert alias.preprocessing.interpolation == "bilinear"
    assert by_arch.preprocessing.mean == (0.5, 0.5, 0.5)  # timm's augreg cfg for ViT-S


def test_num_heads_enter_the_fingerprint(vit: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    six = load_backbone(f"file:{path}", arch="vit_small_patch16_224")
    twelve = load_backbone(f"file:{path}", arch="vit_small_patch16_224:num_heads=12")
    assert six.fingerprint != twelve.fingerprint  # same tensors, another network
    assert not torch.allclose(six.forward(_batch(224))[0], twelve.forward(_batch(224))[0])


def test_patch_size_contradiction_is_refused(vit: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "vit16.pth"
    torch.save(vit.state_dict(), path)
    with pytest.raises(BackboneError, match="16 px patches but vit_small_patch14_dinov2 has 14"):
        load_backbone(f"file:{path}", arch="vit_small_patch14_dinov2")


# ------------------------------------------------------------------- DINOv2 hub files


def _dinov2_reference(registers: bool) -> torch.nn.Module:
    name = "vit_small_patch14_reg4_dinov2" if registers else "vit_small_patch14_dinov2"
    model = make(name, seed=12, num_classes=0)  # timm's pretrained size: 518
    with torch.no_grad():  # layer-scale starts at 1e-5: make every block count
        for key, tensor in model.named_parameters():
            if key.endswith(".gamma"):
                tensor.normal_(0.0, 0.5)
        # sixteenths: Meta's class token + its position is then exact in float32
        model.cls_token.copy_(torch.round(torch.randn_like(model.cls_token) * 16) / 16)
    return model


def _as_meta_hub_file(model: torch.nn.Module) -> State:
    """The timm module's weights in the layout of Meta's hub/backbones.py save."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    dim = state["cls_token"].shape[-1]
    state["mask_token"] = torch.zeros(1, dim)
    if "reg_token" in state:  # Meta: register_tokens, and the class token has a position
        first = torch.randn(1, 1, dim, generator=torch.Generator().manual_seed(2))
        first = torch.round(first * 16) / 16
        state["register_tokens"] = state.pop("reg_token")
        state["cls_token"] = state["cls_token"] - first
        state["pos_embed"] = torch.cat([first, state["pos_embed"]], dim=1)
    return state


@pytest.mark.parametrize("registers", [False, True], ids=["plain", "registers"])
def test_dinov2_hub_file_loads_at_518_with_the_reference_features(
    tmp_path: Path, registers: bool
) -> None:
    reference = _dinov2_reference(registers)
    meta = _as_meta_hub_file(reference)
    assert meta["pos_embed"].shape[1] == 1370  # 1 + 37 x 37, as Meta's files have
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(meta, path)
    arch = "vit_small_patch14_reg4_dinov2" if registers else "vit_small_patch14_dinov2"

    at_518 = load_backbone(f"file:{path}", arch=arch, image_size=518)
    at_224 = load_backbone(f"file:{path}", arch=arch)

    assert at_518.layout == ("dinov2-hub-reg" if registers else "dinov2-hub")
    assert at_518.preprocessing.input_size == 518
    assert_same_tensors(at_518.model, reference)
    torch.testing.assert_close(at_518.forward(_batch(518))[0], features(reference, 518))
    assert at_224.preprocessing.input_size == 224  # the studies' setting, like the alias
    assert at_224.model.pos_embed.shape[1] == (256 if registers else 257)
    assert at_224.fingerprint != at_518.fingerprint


def test_register_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(_as_meta_hub_file(_dinov2_reference(registers=True)), path)
    with pytest.raises(BackboneError, match="4 register tokens but vit_small_patch14_dinov2 has 0"):
        load_backbone(f"file:{path}", arch="vit_small_patch14_dinov2")


def test_three_dinov2_specs_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reference = _dinov2_reference(registers=False)
    revision = "0" * 40
    repo = cache / "models--timm--vit_small_patch14_dinov2.lvd142m"
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    timm_state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    save_file(timm_state, str(repo / "snapshots" / revision / "model.safetensors"))
    meta = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(_as_meta_hub_file(reference), meta)

    specs = [
        load_backbone("dinov2"),
        load_backbone("timm:vit_small_patch14_dinov2.lvd142m"),
        load_backbone(f"file:{meta}", arch="vit_small_patch14_dinov2"),
    ]

    assert {b.preprocessing.input_size for b in specs} == {224}
    assert len({b.preprocessing for b in specs}) == 1
    assert len({b.fingerprint for b in specs}) == 1
    first = specs[0].forward(_batch(224))[0]
    for other in specs[1:]:
        torch.testing.assert_close(other.forward(_batch(224))[0], first)


# ------------------------------------------------------------------ weights-only loading


def test_training_args_namespace_is_allowed(tmp_path: Path, vit: torch.nn.Module) -> None:
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": vit.state_dict(), "args": argparse.Namespace(lr=1e-3)}, path)
    assert load_backbone(f"file:{path}", arch="vit_small_patch16_224").layout == "state-dict"


def test_object_inside_the_namespace_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "checkpoint.pth"
    args = argparse.Namespace(lr=1e-3, trap=Payload(marker))
    torch.save({"model": {"w": torch.zeros(1)}, "args": args}, path)
    with pytest.raises(BackboneError) as info:
        load_backbone(f"file:{path}", arch="resnet18")
    message = str(info.value)
    assert not marker.exists()
    assert "pickle_helpers.leave_mark" in message and "weights-only" in message
    assert ".safetensors" in message and "re-save the state dict" in message
    assert "\n" not in message and "\x1b" not in message and len(message) < 400
    assert "weights_only=False" not in message and "weights_only` set" not in message


def test_damaged_files_say_what_is_wrong(tmp_path: Path) -> None:
    torch_file, safetensors_file = tmp_path / "bad.pth", tmp_path / "bad.safetensors"
    torch_file.write_bytes(b"not a checkpoint" * 4)
    safetensors_file.write_bytes(b"not a checkpoint" * 4)
    for path in (torch_file, safetensors_file):
        with pytest.raises(BackboneError) as info:
            load_backbone(f"file:{path}", arch="resnet18")
        message = str(info.value)
        assert str(path) in message and "\n" not in message and len(message) < 300
