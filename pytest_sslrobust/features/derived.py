"""Entries derived from feature sets (predictions, attack outcomes, maps): the items, the key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_sslrobust.features.cache import Tensors, cache_key

if TYPE_CHECKING:
    import torch

    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureSet


def positions(n: int, images: int | None) -> np.ndarray:
    """``images`` positions spread evenly over a selection of ``n`` (all when None)."""
    if images is None or images >= n:
        return np.arange(n)
    if images < 1:
        raise ValueError(f"images must be a positive number of images, got {images}")
    return np.unique(np.linspace(0, n - 1, images).round().astype(np.int64))


def derived_entry(
    cache: FeatureCache,
    of: Mapping[str, FeatureSet],
    by: Mapping[str, Any],
    compute: Callable[[], Tensors],
    *,
    describe: Mapping[str, Any] | None = None,
    device: torch.device | None = None,
) -> tuple[str, Tensors]:
    """The key and tensors of an entry computed from the feature sets ``of`` (by role, e.g.
    ``{"train": ..., "test": ...}``) and decided by ``by`` (the readout's parameters, the
    attack's settings...): keyed by the sets' keys under their roles plus ``by``, so new
    features (another backbone, variant or subset) are never answered with an old entry.

    ``describe`` is what the entry file records about itself (the key's parts when None);
    ``device`` where the tensors are returned (as stored when None).
    """
    shared = sorted(set(of) & set(by))
    if shared:
        raise ValueError(f"Expected distinct roles and settings, but got {shared} in both")
    parts = {**{role: features.key for role, features in of.items()}, **by}
    key = cache_key(parts)
    tensors = cache.get(
        key, compute, describe=parts if describe is None else describe, device=device
    )
    return key, tensors
