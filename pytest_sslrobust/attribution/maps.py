"""Attribution maps: where in the image a backbone's evidence comes from.

Two methods:

* ``"gradcam"`` -- Grad-CAM (Selvaraju et al., 2017) computed by pytorch-grad-cam's
  ``GradCAM`` on the backbone's last feature stage (CNNs) or on the last block's ``norm1``
  with a token-to-grid reshape (ViTs). What it explains is a :class:`Target`: a class
  logit through a head, or, label-free, the similarity of the embedding to a reference.
* ``"rollout"`` -- attention rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in
  Transformers"), written here because pytorch-grad-cam does not provide it. It is
  class-agnostic: it reads the attention the model computes and ignores the target.

Every map is non-negative and sums to 1 over the S x S input grid, so that maps from
different images, methods and models can be compared as distributions of evidence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pytest_sslrobust.backbones.base import Backbone, state_dict_digest

__all__ = ["METHODS", "Maps", "Target", "attribution_maps", "target_layer"]

METHODS = ("gradcam", "rollout")

TARGET_KINDS = ("classes", "similarity")
SIMILARITY_MEASURES = ("cosine", "projection")

# A cosine target whose embedding is this close to its reference (1 - cos below it) has no
# usable gradient: the cosine is at its maximum there, so its gradient is zero up to
# rounding, and Grad-CAM would render rounding noise. Such images get the uniform map and
# are counted as degenerate. 1e-5 is about the agreement of two float32 forward passes of
# the same image through different kernels; a real alteration moves the embedding further.
PARALLEL_TOLERANCE = 1e-5


# --------------------------------------------------------------------------------- target


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Target:
    """What an attribution map explains, one entry per image.

    Build it with :meth:`classes` (a class logit through a head) or :meth:`similarity`
    (label-free: the similarity of the image's embedding to a reference embedding). The
    per-image data (labels, reference rows) line up with the images passed to
    :func:`attribution_maps`; :meth:`describe` leaves them out so that it can be part of a
    cache key next to the images' own key.
    """

    kind: str
    head: nn.Module | None = None
    labels: torch.Tensor | None = None
    reference: torch.Tensor | None = None
    measure: str | None = None

    @classmethod
    def classes(cls, head: nn.Module, labels: torch.Tensor) -> Target:
        """Explain the logit of ``labels[i]`` for image ``i``.

        ``head`` maps pooled features (n, d) to logits (n, k): a linear probe or the
        model's own classifier (``backbone.model.get_classifier()``). The head's weights are
        read, never changed.
        """
        if not isinstance(head, nn.Module):
            raise TypeError(
                f"head must be a torch.nn.Module mapping features to logits, got "
                f"{type(head).__name__}: wrap a weight matrix in torch.nn.Linear"
            )
        labels = torch.as_tensor(labels)
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise TypeError(
                f"labels must be integer class indices, got dtype {labels.dtype}: "
                "pass labels.long()"
            )
        if labels.ndim != 1:
            raise ValueError(
                f"labels must be 1-D (one class per image), got shape {tuple(labels.shape)}"
            )
        if labels.numel() and int(labels.min()) < 0:
            raise ValueError(f"labels must be >= 0, got {int(labels.min())}")
        return cls(kind="classes", head=head, labels=labels.detach().to("cpu", torch.long))

    @classmethod
    def similarity(cls, reference: torch.Tensor, *, measure: str = "cosine") -> Target:
        """Explain the similarity of image ``i``'s embedding to ``reference[i]`` (n, d).

        Label-free: with the clean image's features as the reference, the map of an altered
        image shows where the evidence that keeps it close to the clean embedding lies.

        ``measure="cosine"`` (default) explains the cosine similarity. Its gradient vanishes
        when the embedding is parallel to the reference (the cosine is at its maximum), so
        the clean image explained against its own embedding has no map: such images get the
        uniform map and are counted in :attr:`Maps.degenerate`. ``measure="projection"``
        explains the embedding's component along the reference direction,
        ``<f(x), r> / |r|``, whose gradient does not vanish there: use it for the clean
        image's own map.
        """
        if measure not in SIMILARITY_MEASURES:
            raise ValueError(
                f"unknown similarity measure {measure!r}: use one of {SIMILARITY_MEASURES}"
            )
        reference = torch.as_tensor(reference)
        if not reference.dtype.is_floating_point:
            raise TypeError(
                f"reference must be float features (n, d), got dtype {reference.dtype}: "
                "pass backbone.forward(images)[0]"
            )
        if reference.ndim != 2:
            raise ValueError(
                f"reference must be features of shape (n, d), got {tuple(reference.shape)}"
            )
        reference = reference.detach().to("cpu", torch.float32).clone()
        if not torch.isfinite(reference).all():
            raise ValueError("reference contains NaN or infinite values")
        zero = int((reference.norm(dim=1) == 0).sum())
        if zero:
            raise ValueError(
                f"{zero} reference row(s) are all zero: the similarity to a zero vector is "
                "undefined; drop those images"
            )
        return cls(kind="similarity", reference=reference, measure=measure)

    def __len__(self) -> int:
        rows = self.labels if self.kind == "classes" else self.reference
        assert rows is not None
        return int(rows.shape[0])

    def describe(self) -> dict[str, Any]:
        """JSON-able description for cache keys: the kind and the head's weights digest.

        Nothing image-specific (labels, reference rows) is included.
        """
        if self.kind == "classes":
            assert self.head is not None
            return {
                "kind": "classes",
                "head": type(self.head).__name__,
                "head_digest": state_dict_digest(self.head),
            }
        return {"kind": "similarity", "measure": self.measure}

    def __repr__(self) -> str:
        if self.kind == "classes":
            return f"Target.classes({type(self.head).__name__}, n={len(self)})"
        return f"Target.similarity(n={len(self)}, measure={self.measure!r})"

    # -- what the library sees

    def output(self) -> nn.Module:
        """The module applied to pooled features to make the model output Grad-CAM sees."""
        return self.head if self.kind == "classes" else nn.Identity()  # type: ignore[return-value]

    def callables(self, start: int, stop: int, device: torch.device) -> list[Callable]:
        """pytorch-grad-cam targets for images ``start:stop``: row i -> a scalar."""
        if self.kind == "classes":
            assert self.labels is not None
            return [_LogitOf(int(label)) for label in self.labels[start:stop]]
        assert self.reference is not None and self.measure is not None
        rows = self.reference[start:stop].to(device)
        return [_SimilarityTo(row, self.measure) for row in rows]


class _LogitOf:
    """Grad-CAM target: the logit of one class in a model-output row (k,)."""

    def __init__(self, label: int) -> None:
        self.label = label

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if self.label >= output.shape[-1]:
            raise ValueError(
                f"label {self.label} is out of range for a head with {output.shape[-1]} "
                "classes: pass labels in the head's label space"
            )
        return output[..., self.label]


class _SimilarityTo:
    """Grad-CAM target: cosine or projection of an embedding row (d,) onto a reference."""

    def __init__(self, reference: torch.Tensor, measure: str) -> None:
        self.reference = reference
        self.measure = measure

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.shape[-1] != self.reference.shape[-1]:
            raise ValueError(
                f"reference has {self.reference.shape[-1]} features but the backbone "
                f"produces {output.shape[-1]}: compute the reference with the same backbone"
            )
        unit = self.reference / self.reference.norm()
        if self.measure == "projection":
            return (output * unit).sum(-1)
        return F.cosine_similarity(output, unit, dim=-1, eps=1e-12)


# ----------------------------------------------------------------------------------- maps


@dataclasses.dataclass(frozen=True, eq=False)
class Maps:
    """Attribution maps of a batch of images.

    ``maps`` is float32 (n, S, S) on the CPU, non-negative, each summing to 1.
    ``degenerate`` counts the maps that carried no evidence and were replaced by the
    uniform map: Grad-CAM maps that are zero everywhere (its ReLU removed every location,
    or the gradient vanished) and cosine-similarity targets whose embedding is parallel to
    the reference. ``method`` is the method that made them.
    """

    maps: torch.Tensor
    degenerate: int
    method: str

    def __len__(self) -> int:
        return int(self.maps.shape[0])


def _is_vit(model: nn.Module) -> bool:
    return hasattr(model, "blocks") and hasattr(model, "patch_embed")


def target_layer(backbone: Backbone) -> tuple[nn.Module, Callable | None]:
    """The layer Grad-CAM reads and the transform that makes its output (n, C, h, w).

    ViTs (``.blocks`` and ``.patch_embed``): the last block's ``norm1`` -- its output is
    the last layer's input tokens, which the attention mixes into the pooled token -- with
    a transform that drops the prefix (class, register) tokens and lays the patch tokens
    out on their grid. CNNs: the module timm's ``feature_info`` names as the last feature
    stage, or else the last child module that contains a convolution.
    """
    model = backbone.model
    if _is_vit(model):
        last = model.blocks[-1]
        if not isinstance(getattr(last, "norm1", None), nn.Module):
            raise ValueError(
                f"cannot find the Grad-CAM layer of {backbone.name!r} ({backbone.architecture}):"
                " its last block has no norm1; use method='rollout' or pass layer=..."
            )
        return last.norm1, _TokensToGrid(model)
    info = getattr(model, "feature_info", None)
    if isinstance(info, list | tuple) and info and isinstance(info[-1], dict):
        name = info[-1].get("module")
        if isinstance(name, str) and name:
            with contextlib.suppress(AttributeError):
                return model.get_submodule(name), None
    last_conv = None
    for child in model.children():
        if any(isinstance(m, nn.Conv2d) for m in child.modules()):
            last_conv = child
    if last_conv is not None:
        return last_conv, None
    raise ValueError(
        f"cannot find the Grad-CAM layer of {backbone.name!r} ({backbone.architecture}): it "
        "is neither a timm CNN nor a ViT; use method='rollout' for a ViT, or pass "
        "layer=<the module whose (n, C, h, w) output to explain> to attribution_maps"
    )


class _TokensToGrid:
    """ViT tokens (n, prefix + h*w, C) -> patch tokens on their grid (n, C, h, w)."""

    def __init__(self, model: nn.Module) -> None:
        self.prefix = int(getattr(model, "num_prefix_tokens", 1))
        self.grid = tuple(int(v) for v in getattr(model.patch_embed, "grid_size", ()))

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3:
            raise ValueError(
                f"expected ViT tokens (n, tokens, C), got {tuple(tokens.shape)}; pass layer="
                "a module that outputs tokens or (n, C, h, w) feature maps"
            )
        patches = tokens[:, self.prefix :, :]
        h, w = _grid(patches.shape[1], self.grid)
        return patches.reshape(tokens.shape[0], h, w, tokens.shape[2]).permute(0, 3, 1, 2)


def _grid(count: int, grid: tuple[int, ...]) -> tuple[int, int]:
    """The (h, w) patch grid of ``count`` tokens: the model's grid, else a square one.

    A model built for another image size (timm ``dynamic_img_size``) sees a different grid
    than ``patch_embed.grid_size``; images here are square, so its grid is square.
    """
    if len(grid) == 2 and grid[0] * grid[1] == count:
        return grid[0], grid[1]
    side = math.isqrt(count)
    if side * side == count and side > 0:
        return side, side
    raise ValueError(
        f"cannot lay {count} patch tokens out on a grid (the model's grid is {grid}): pass "
        "square images of the size the model was built for"
    )


def attribution_maps(
    backbone: Backbone,
    images: torch.Tensor,
    target: Target,
    *,
    method: str = "gradcam",
    batch_size: int = 32,
    layer: nn.Module | None = None,
) -> Maps:
    """Attribution maps (n, S, S) of preprocessed ``images`` (n, 3, S, S).

    Returns a :class:`Maps`: float32 maps on the CPU, non-negative, each summing to 1, and
    the count of degenerate maps replaced by the uniform one. Images are processed in
    chunks of ``batch_size``; a map does not depend on the chunk it was computed in
    (models are in eval mode). The model is left exactly as found: training flags,
    ``requires_grad`` flags and ``.grad`` of its parameters, hooks, and the ``fused_attn``
    flags that rollout switches off. Identical inputs give identical maps.

    ``method="gradcam"`` uses pytorch-grad-cam's ``GradCAM`` in float32 on
    :func:`target_layer`, or on ``layer`` (which outputs (n, C, h, w) feature maps, or, in a
    ViT, tokens, which are laid out on the patch grid). The library ReLUs each map, scales
    it to [0, 1] by subtracting its minimum and dividing by its maximum, and resizes it to
    S x S with OpenCV's bilinear resize; this function only rescales that to sum 1. So a
    Grad-CAM that is positive everywhere loses its floor: its weakest location gets 0.
    ``method="rollout"`` (ViTs only) ignores ``target`` apart from its length: attention
    rollout is class-agnostic.
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}: use one of {METHODS}")
    if not isinstance(target, Target):
        raise TypeError(
            f"target must be a Target, got {type(target).__name__}: build it with "
            "Target.classes(head, labels) or Target.similarity(reference)"
        )
    if not isinstance(images, torch.Tensor) or not images.dtype.is_floating_point:
        raise TypeError(
            "images must be a preprocessed float tensor (n, 3, S, S): pass "
            "backbone.preprocessing.batch(uint8_images)"
        )
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(
            f"images must have shape (n, 3, S, S), got {tuple(images.shape)}: pass "
            "backbone.preprocessing.batch(uint8_images)"
        )
    if len(target) != images.shape[0]:
        raise ValueError(
            f"the target has {len(target)} entries but there are {images.shape[0]} images: "
            "pass one label or reference row per image"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if images.shape[0] == 0:
        size = images.shape[-1]
        return Maps(torch.zeros(0, size, size), 0, method)

    model = backbone.model
    if method == "rollout":
        if not _is_vit(model):
            raise ValueError(
                f"attention rollout needs a ViT, but {backbone.name!r} "
                f"({backbone.architecture}) has no transformer blocks: use method='gradcam'"
            )
        with _left_as_found(model):
            raw = _rollout(model, images, batch_size, backbone.device)
        maps, degenerate = _normalise(raw)
        return Maps(maps, degenerate, method)

    if layer is None:
        layer, reshape = target_layer(backbone)
    else:
        reshape = _ToGrid(model) if _is_vit(model) else None
    output = target.output()
    with _left_as_found(model, output):
        raw, parallel = _gradcam(backbone, images, target, layer, reshape, batch_size)
    raw[parallel] = 0.0
    maps, degenerate = _normalise(raw)
    return Maps(maps, degenerate, method)


class _ToGrid(_TokensToGrid):
    """For a user-given layer of a ViT: tokens are laid out on the grid, maps pass as is."""

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens if tokens.ndim == 4 else super().__call__(tokens)


def _gradcam(
    backbone: Backbone,
    images: torch.Tensor,
    target: Target,
    layer: nn.Module,
    reshape: Callable | None,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Library Grad-CAM maps (n, S, S) float64 and which images are parallel to their ref."""
    from pytorch_grad_cam import GradCAM

    device = backbone.device
    # image -> pooled features -> target output: the model pytorch-grad-cam runs.
    explained = nn.Sequential(backbone.embedding_module(), target.output())
    # Gradients are taken with respect to the input, with every parameter frozen: the
    # weights' .grad is never written and no weight gradient is computed.
    for parameter in explained.parameters():
        parameter.requires_grad_(False)
    cam = GradCAM(model=explained, target_layers=[layer], reshape_transform=reshape)
    chunks, parallel = [], []
    try:
        # The library's context manager swallows IndexError; release its hooks by hand.
        with torch.inference_mode(False), torch.enable_grad():
            for start in range(0, images.shape[0], batch_size):
                stop = min(start + batch_size, images.shape[0])
                chunk = images[start:stop].detach().to(device, torch.float32).clone()
                chunk.requires_grad_(True)
                targets = target.callables(start, stop, device)
                result = cam(input_tensor=chunk, targets=targets)
                chunks.append(torch.from_numpy(np.asarray(result, dtype=np.float64)))
                parallel.append(_parallel(target, cam.outputs.detach(), start, stop))
                cam.outputs = None
    finally:
        cam.activations_and_grads.release()
    maps = torch.cat(chunks)
    if maps.shape[1:] != images.shape[2:]:
        raise ValueError(
            f"pytorch-grad-cam returned maps of shape {tuple(maps.shape[1:])} for images of "
            f"{tuple(images.shape[2:])}; pass layer= a module with (n, C, h, w) output"
        )
    return maps, torch.cat(parallel)


def _parallel(target: Target, outputs: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """For cosine targets: which embeddings are (numerically) parallel to their reference."""
    if target.kind != "similarity" or target.measure != "cosine":
        return torch.zeros(stop - start, dtype=torch.bool)
    assert target.reference is not None
    reference = target.reference[start:stop].double()
    cosine = F.cosine_similarity(outputs.cpu().double(), reference, dim=1, eps=1e-300)
    return (1.0 - cosine) < PARALLEL_TOLERANCE


def _normalise(raw: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Non-negative maps scaled to sum 1; all-zero maps become uniform and are counted."""
    raw = raw.double()
    bad = ~torch.isfinite(raw).flatten(1).all(dim=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} attribution map(s) contain NaN or infinite values: the "
            "model's output is not finite for those images"
        )
    raw = raw.clamp_min(0.0)
    total = raw.sum(dim=(1, 2), keepdim=True)
    empty = total.flatten() <= 0
    uniform = torch.full_like(raw[0], 1.0 / raw[0].numel())
    maps = torch.where(empty[:, None, None], uniform, raw / total.clamp_min(1e-300))
    return maps.float(), int(empty.sum())


@contextlib.contextmanager
def _left_as_found(*modules: nn.Module) -> Iterator[None]:
    """Restore training flags, requires_grad, .grad and fused_attn flags on exit."""
    seen: dict[int, nn.Module] = {}
    for module in modules:
        for sub in module.modules():
            seen.setdefault(id(sub), sub)
    training = [(m, m.training) for m in seen.values()]
    fused = [(m, m.fused_attn) for m in seen.values() if hasattr(m, "fused_attn")]
    parameters: dict[int, nn.Parameter] = {}
    for module in seen.values():
        for parameter in module.parameters(recurse=False):
            parameters.setdefault(id(parameter), parameter)
    flags = [(p, p.requires_grad, p.grad) for p in parameters.values()]
    try:
        yield
    finally:
        for module, mode in training:
            module.training = mode
        for module, flag in fused:
            module.fused_attn = flag
        for parameter, requires_grad, grad in flags:
            parameter.requires_grad_(requires_grad)
            parameter.grad = grad


# -------------------------------------------------------------------------------- rollout


@torch.no_grad()
def _rollout(
    model: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Attention rollout maps (n, S, S) float64, not yet normalised.

    Abnar & Zuidema (2020): each layer's attention, averaged over heads, gets the identity
    added for the residual connection and is row-normalised, ``A = (W + I) / 2``; the
    layers' matrices are multiplied from the first to the last, ``R = A_L ... A_1``. The
    pooled token's row of ``R`` over the patch tokens is how much each patch flowed into it.
    With a class token (``global_pool == "token"``) that is the first row; a model that
    averages its tokens gets the mean of the patch tokens' rows. The attention
    probabilities are read at each block's ``attn.attn_drop`` (its input is the softmaxed
    attention in timm's Attention), with fused attention switched off meanwhile.
    """
    blocks = list(model.blocks)
    for index, block in enumerate(blocks):
        attn = getattr(block, "attn", None)
        if not (
            hasattr(attn, "fused_attn") and isinstance(getattr(attn, "attn_drop", None), nn.Module)
        ):
            raise ValueError(
                f"block {index} of this ViT has no timm Attention (attn.fused_attn and "
                "attn.attn_drop) to read attention from: use method='gradcam'"
            )
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    pool_token = getattr(model, "global_pool", "token") == "token" and prefix > 0
    captured: list[torch.Tensor] = []

    def capture(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0].detach().double().mean(dim=1))  # average the heads

    handles = []
    try:
        for block in blocks:
            block.attn.fused_attn = False
            handles.append(block.attn.attn_drop.register_forward_pre_hook(capture))
        size = images.shape[-1]
        maps = []
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start : start + batch_size].to(device, torch.float32)
            captured.clear()
            model.forward_features(chunk)
            if len(captured) != len(blocks):
                raise ValueError(
                    f"captured attention from {len(captured)} of {len(blocks)} blocks: this "
                    "ViT does not compute attention through attn.attn_drop; use "
                    "method='gradcam'"
                )
            tokens = captured[0].shape[-1]
            identity = torch.eye(tokens, dtype=torch.float64, device=captured[0].device)
            rollout = identity.expand(captured[0].shape[0], tokens, tokens)
            for attention in captured:
                layer = attention + identity
                layer = layer / layer.sum(dim=-1, keepdim=True)
                rollout = layer @ rollout
            flow = rollout[:, 0, prefix:] if pool_token else rollout[:, prefix:, prefix:].mean(1)
            h, w = _grid(flow.shape[1], tuple(getattr(model.patch_embed, "grid_size", ())))
            grid = flow.reshape(-1, 1, h, w)
            maps.append(
                F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)[
                    :, 0
                ].cpu()
            )
    finally:
        for handle in handles:
            handle.remove()
        captured.clear()
    return torch.cat(maps)
