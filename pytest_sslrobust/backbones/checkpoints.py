"""Reading released checkpoint files: safe deserialisation, layouts known by name, SSL parts dropped."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pytest_sslrobust.backbones.base import BackboneError

# Classifier widths that are label spaces; a final linear layer of another width is an SSL
# projection unless the user says otherwise (``num_classes=N`` in the architecture settings).
KNOWN_LABEL_SPACES = {1000: "imagenet-1k", 21843: "imagenet-21k", 11821: "imagenet-21k-p"}

# Subtrees that hold the backbone inside a training checkpoint, outermost wrappers first.
_WRAPPERS = ("module.", "model.", "online_network.", "_feature_blocks.")
_BACKBONE_ROOTS = ("base_encoder.", "encoder_q.", "backbone.", "encoder.", "trunk.")
# Training parts outside any backbone subtree, named so the description says what went.
_TRAINING_PARTS = (
    "encoder_k.",
    "momentum_encoder.",
    "momentum_backbone.",
    "momentum_projector.",
    "projector.",
    "projection_head.",
    "prototypes.",
    "predictor.",
    "head.mlp.",
    "head.last_layer.",
    "queue",
    "decoder",
    "mask_token",
)
_TORCH_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_MMCLS_VIT = (
    (re.compile(r"^patch_embed\.projection\."), "patch_embed.proj."),
    (re.compile(r"^layers\.(\d+)\.ln1\."), r"blocks.\1.norm1."),
    (re.compile(r"^layers\.(\d+)\.ln2\."), r"blocks.\1.norm2."),
    (re.compile(r"^layers\.(\d+)\.ffn\.layers\.0\.0\."), r"blocks.\1.mlp.fc1."),
    (re.compile(r"^layers\.(\d+)\.ffn\.layers\.1\."), r"blocks.\1.mlp.fc2."),
    (re.compile(r"^layers\.(\d+)\.attn\."), r"blocks.\1.attn."),
    (re.compile(r"^ln1\."), "norm."),
)
# MoCo v3's ViTs (moco-v3 vits.py) all use 12 attention heads; DeiT/timm ViT-S uses 6.
_MOCOV3_VIT_HEADS = 12


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The backbone tensors of a checkpoint file and what was recognised on the way.

    ``layout`` names the released format (``mocov3``, ``dinov2-hub``, ``solo-learn``...),
    ``dropped`` says which training parts were left out and how many tensors each had,
    ``implied`` holds architecture settings the layout fixes (MoCo v3 ViTs: ``num_heads``),
    ``positional`` is true for an ``nn.Sequential`` export whose keys are child indices.
    """

    path: Path
    layout: str
    state: dict[str, torch.Tensor]
    dropped: tuple[str, ...] = ()
    implied: tuple[tuple[str, object], ...] = ()

    @property
    def positional(self) -> bool:
        return self.layout == "sequential"


def load_file(path: Path) -> Any:
    """The object in a .safetensors file or a torch checkpoint, without running pickled code.

    Torch checkpoints are read with ``weights_only=True``; the one Python class allowed
    beyond tensors and containers is ``argparse.Namespace``, which the DINO and MAE training
    scripts store as ``args``.
    """
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file as load_safetensors

        try:
            return load_safetensors(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise BackboneError(f"cannot read {path} as .safetensors: {_first_line(exc)}") from None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        found = _TORCH_GLOBAL.search(str(exc))
        if found:
            raise BackboneError(
                f"{path} pickles the Python object {found.group(1)}, which weights-only "
                "loading refuses for safety; re-save the state dict "
                "(torch.save(model.state_dict(), path)) or convert it to .safetensors"
            ) from None
        raise BackboneError(
            f"cannot read {path} as a weights-only torch checkpoint: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    """The cause in torch's or safetensors' error text, without colour codes or advice."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    cause = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if cause:
        text = cause.group(1)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines or [type(exc).__name__])[0][:200]


def _tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _find_state(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensor dict inside the wrappers and the layout its container implies."""
    if _tensor_dict(obj):
        return dict(obj), ""
    if not isinstance(obj, Mapping):
        raise BackboneError(f"{path} holds a {type(obj).__name__}, not a state dict")
    if "classy_state_dict" in obj:  # VISSL: classy_state_dict.base_model.model.{trunk,heads}
        try:
            trunk = obj["classy_state_dict"]["base_model"]["model"]["trunk"]
        except (KeyError, TypeError):
            raise BackboneError(
                f"{path}: a VISSL checkpoint without base_model.model.trunk"
            ) from None
        return dict(trunk), "vissl"
    if "teacher" in obj and "student" in obj:  # DINO's main_dino.py: the teacher is evaluated
        return _find_state(obj["teacher"], path)[0], "dino"
    for key in ("state_dict", "model", "module", "network", "encoder", "teacher", "student"):
        if isinstance(obj.get(key), Mapping):
            state, layout = _find_state(obj[key], path)
            if not layout and "pytorch-lightning_version" in obj:
                layout = "lightning"
            return state, layout
    nested = [k for k, v in obj.items() if _tensor_dict(v)]
    if len(nested) == 1:  # Lightly tutorials: the backbone under a key of the user's choice
        return dict(obj[nested[0]]), "nested"
    if len(nested) > 1:
        raise BackboneError(
            f"{path} holds several state dicts ({', '.join(map(str, nested[:5]))}); "
            "save the backbone's alone"
        )
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if tensors:
        return tensors, ""
    raise BackboneError(
        f"{path} holds no state dict (no mapping of names to tensors; top-level keys: "
        f"{', '.join(map(str, list(obj)[:8]))})"
    )


def _layout(state: Mapping[str, torch.Tensor], container: str, meta: Mapping[str, Any]) -> str:
    """Name the released format from its key names (README 'Using real models' lists them)."""
    keys = list(state)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if container in ("vissl", "dino"):
        return container
    if has("embeddings.patch_embeddings.") or has("encoder.layer."):
        return "hf-transformers"
    if has("momentum_backbone.") or (has("backbone.") and has("classifier.")):
        return "solo-learn"
    if has("module.base_encoder.") or has("base_encoder."):
        return "mocov3"
    if has("module.encoder_q.") or has("encoder_q."):
        fc = state.get("module.encoder_q.fc.weight", state.get("encoder_q.fc.weight"))
        return "mocov1" if fc is not None and fc.ndim == 2 else "mocov2"
    if has("module.encoder.") and has("module.predictor."):
        return "simsiam"
    if has("module.backbone.") and has("module.bn."):
        return "barlowtwins"
    if has("module.backbone.") and has("module.projector."):
        return "vicreg"
    if has("prototypes.") or has("module.prototypes.") or has("module.projection_head."):
        return "swav"
    if "meta" in meta and has("backbone."):
        return "mmselfsup"
    if has("backbone.") and has("head.mlp."):
        return "dino-teacher"
    if has("decoder_embed.") or has("decoder_blocks."):
        return "mae"
    if "mask_token" in state and has("blocks.0.ls1."):
        return "dinov2-hub-reg" if "register_tokens" in state else "dinov2-hub"
    if keys and all(k.split(".", 1)[0].isdigit() for k in keys):
        return "sequential"
    if container == "nested":
        return "nested"
    if container == "lightning":
        return "lightning"
    return "state-dict"


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _group(key: str) -> str:
    return key.split(".", 1)[0] + ("." if "." in key else "")


def read_checkpoint(path: Path) -> Checkpoint:
    """The backbone tensors of ``path`` with its layout recognised and training parts dropped.

    Rule: outer wrappers (``module.``, ``model.``...) are removed; when the file has a
    backbone subtree (``base_encoder.``, ``encoder_q.``, ``backbone.``, ``encoder.``, a VISSL
    trunk), only that subtree is kept and everything beside it (projectors, predictors,
    prototypes, momentum copies, queues, online probes, loss buffers, decoders) is dropped;
    otherwise the known training parts are dropped by name. What went is reported.
    """
    obj = load_file(path)
    meta = obj if isinstance(obj, Mapping) else {}
    state, container = _find_state(obj, path)
    layout = _layout(state, container, meta)
    if layout == "hf-transformers":
        raise BackboneError(
            f"{path} is a Hugging Face transformers checkpoint (embeddings.*, encoder.layer.*), "
            "which this loader does not convert; use the timm hub weights (timm:NAME) or "
            "a timm/authors' state dict"
        )
    unwrapped = {_strip(k, _WRAPPERS): v for k, v in state.items()}
    root = next(
        (r for r in _BACKBONE_ROOTS if any(k.startswith(r) for k in unwrapped)),
        None,
    )
    kept: dict[str, torch.Tensor] = {}
    dropped: dict[str, int] = {}
    for key, tensor in unwrapped.items():
        if root is not None and not key.startswith(root):
            dropped[_group(key)] = dropped.get(_group(key), 0) + 1
            continue
        inner = _strip(key, _BACKBONE_ROOTS) if root is not None else key
        if inner.startswith(_TRAINING_PARTS) and not (
            layout.startswith("dinov2-hub") and inner == "mask_token"
        ):
            dropped[_group(inner)] = dropped.get(_group(inner), 0) + 1
            continue
        kept[inner] = tensor
    if layout == "mmselfsup" and any(k.startswith("layers.") for k in kept):
        kept = {_rename(k, _MMCLS_VIT): v for k, v in kept.items()}
    if not kept:
        raise BackboneError(
            f"{path}: recognised layout {layout} but no backbone tensors are left after "
            f"dropping {', '.join(sorted(dropped))}"
        )
    implied: tuple[tuple[str, object], ...] = ()
    if layout == "mocov3" and any(k.startswith("blocks.") for k in kept):
        implied = (("num_heads", _MOCOV3_VIT_HEADS),)
    return Checkpoint(
        path=path,
        layout=layout,
        state=kept,
        dropped=tuple(f"{name} ({count} tensors)" for name, count in sorted(dropped.items())),
        implied=implied,
    )


def _rename(key: str, table: tuple[tuple[re.Pattern[str], str], ...]) -> str:
    for pattern, replacement in table:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    return key
