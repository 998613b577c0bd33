"""Measures on attribution maps: focus on the foreground, shift of focus, spread.

All take maps of shape (n, H, W) (torch tensors or numpy arrays), compute in float64 and
return one value per image as a 1-D float64 numpy array. Maps need not be normalised;
each is divided by its own sum where a distribution is needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

__all__ = ["entropy", "focus_shift", "foreground_focus"]


def _as_array(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _maps(values: Any, name: str, *, distribution: bool) -> np.ndarray:
    """(n, H, W) finite float64 maps; with ``distribution``: non-negative, positive sums."""
    maps = _as_array(values, name)
    if maps.dtype == np.bool_ or not np.issubdtype(maps.dtype, np.number):
        raise TypeError(f"{name} must be numeric maps (n, H, W), got dtype {maps.dtype}")
    if maps.ndim != 3:
        raise ValueError(
            f"{name} must have shape (n, H, W), got {maps.shape}: add a batch axis with "
            "maps[None] for a single map"
        )
    if maps.shape[1] * maps.shape[2] == 0:
        raise ValueError(f"{name} have no pixels: shape {maps.shape}")
    maps = maps.astype(np.float64)
    if not np.isfinite(maps).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    if distribution:
        if (maps < 0).any():
            raise ValueError(
                f"{name} have negative values: attribution maps are non-negative; take "
                "the maps of attribution_maps(...).maps"
            )
        empty = int((maps.sum(axis=(1, 2)) <= 0).sum())
        if empty:
            raise ValueError(f"{empty} of the {name} are zero everywhere: they have no mass")
    return maps


def _distributions(maps: np.ndarray) -> np.ndarray:
    return maps / maps.sum(axis=(1, 2), keepdims=True)


def foreground_focus(maps: Any, masks: Any) -> np.ndarray:
    """Share of each map's mass inside its boolean foreground mask, in [0, 1].

    ``masks`` is boolean with exactly the maps' shape (n, H, W). The uniform map scores
    the mask's area fraction, so compare against that to read "more focused than chance".
    """
    maps = _maps(maps, "maps", distribution=True)
    masks = _as_array(masks, "masks")
    if masks.dtype != np.bool_:
        raise TypeError(f"masks must be boolean, got dtype {masks.dtype}: pass masks > 0")
    if masks.shape != maps.shape:
        raise ValueError(
            f"masks have shape {masks.shape} but the maps {maps.shape}: resize the masks "
            "with the images (Preprocessing.geometry) so that they line up pixel for pixel"
        )
    empty = int((~masks.any(axis=(1, 2))).sum())
    if empty:
        raise ValueError(
            f"{empty} of {masks.shape[0]} masks are empty: the foreground share of an "
            "image without foreground is undefined; drop those images"
        )
    share = (_distributions(maps) * masks).sum(axis=(1, 2))
    return np.clip(share, 0.0, 1.0)


def focus_shift(clean: Any, altered: Any, *, top_k: float = 0.1) -> dict[str, np.ndarray]:
    """How far the focus moved from the clean maps to the altered maps, per image.

    ``"rank_shift"`` is 1 - Spearman's rank correlation of the two maps' pixels: 0 when
    they rank the pixels alike, 1 when unrelated, 2 when reversed. Spearman is undefined
    for a constant map (such as the uniform map of a degenerate attribution): the shift is
    defined as 0 when both maps are constant and 1 (unrelated) when exactly one is.

    ``"topk_overlap"`` is the share of the clean map's ``k = ceil(top_k * H * W)`` highest
    pixels that are also among the altered map's k highest, in [0, 1]. Ties are broken by
    pixel index (stable sort), so the result is deterministic.
    """
    clean = _maps(clean, "clean maps", distribution=False)
    altered = _maps(altered, "altered maps", distribution=False)
    if clean.shape != altered.shape:
        raise ValueError(
            f"clean maps have shape {clean.shape} but altered maps {altered.shape}: pass "
            "maps of the same images at the same size"
        )
    if isinstance(top_k, bool) or not isinstance(top_k, int | float) or not 0 < top_k <= 1:
        raise ValueError(f"top_k must be a fraction in (0, 1], got {top_k!r}")
    n, pixels = clean.shape[0], clean.shape[1] * clean.shape[2]
    clean_flat = clean.reshape(n, pixels)
    altered_flat = altered.reshape(n, pixels)

    # Spearman = Pearson correlation of the (average-tie) ranks.
    clean_ranks = rankdata(clean_flat, axis=1)
    altered_ranks = rankdata(altered_flat, axis=1)
    clean_ranks -= clean_ranks.mean(axis=1, keepdims=True)
    altered_ranks -= altered_ranks.mean(axis=1, keepdims=True)
    clean_norm = np.linalg.norm(clean_ranks, axis=1)
    altered_norm = np.linalg.norm(altered_ranks, axis=1)
    clean_constant = clean_norm == 0
    altered_constant = altered_norm == 0
    denominator = np.where(clean_constant | altered_constant, 1.0, clean_norm * altered_norm)
    rho = np.clip((clean_ranks * altered_ranks).sum(axis=1) / denominator, -1.0, 1.0)
    rank_shift = 1.0 - rho
    rank_shift[clean_constant & altered_constant] = 0.0
    rank_shift[clean_constant ^ altered_constant] = 1.0

    # The small margin keeps e.g. 0.1 * 100 from rounding up to 11 pixels.
    k = min(pixels, max(1, math.ceil(top_k * pixels - 1e-9)))
    clean_top = np.argsort(-clean_flat, axis=1, kind="stable")[:, :k]
    altered_top = np.argsort(-altered_flat, axis=1, kind="stable")[:, :k]
    in_clean = np.zeros((n, pixels), dtype=bool)
    np.put_along_axis(in_clean, clean_top, True, axis=1)
    shared = np.take_along_axis(in_clean, altered_top, axis=1).sum(axis=1)
    return {"rank_shift": rank_shift, "topk_overlap": shared.astype(np.float64) / k}


def entropy(maps: Any) -> np.ndarray:
    """Shannon entropy of each normalised map divided by log(H * W), in [0, 1].

    1 for the uniform map (evidence everywhere), 0 for a map on a single pixel.
    """
    maps = _maps(maps, "maps", distribution=True)
    pixels = maps.shape[1] * maps.shape[2]
    if pixels < 2:
        raise ValueError(f"maps of a single pixel have no entropy scale: shape {maps.shape}")
    p = _distributions(maps).reshape(maps.shape[0], pixels)
    logs = np.log(np.where(p > 0, p, 1.0))  # 0 log 0 = 0
    return np.clip(-(p * logs).sum(axis=1) / math.log(pixels), 0.0, 1.0)
