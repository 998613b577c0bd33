"""Alterations of dataset items: corruptions, circular and foreground masks, background swaps."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.vocabulary import (
    ALL,
    COMMON,
    GROUPS,
    SEVERITIES,
    SWAPS,
    VALIDATION,
    VariantError,
    parse_corruptions,
    parse_severities,
    parse_variant_id,
)

if TYPE_CHECKING:
    from pytest_sslrobust.variants.base import Variant

# Each kind of variant loads its module (numpy, and torch for augmentations) when first
# asked for, so that naming a corruption sweep at collection imports no torch.
_LAZY = {
    "Augmentation": "pytest_sslrobust.variants.augment",
    "Variant": "pytest_sslrobust.variants.base",
    "VariantContext": "pytest_sslrobust.variants.base",
    "Corruption": "pytest_sslrobust.variants.corruptions",
    "corrupt": "pytest_sslrobust.variants.corruptions",
    "corruption_variants": "pytest_sslrobust.variants.corruptions",
    "CircularMask": "pytest_sslrobust.variants.masks",
    "RegionMask": "pytest_sslrobust.variants.masks",
    "circular_mask": "pytest_sslrobust.variants.masks",
    "BackgroundSwap": "pytest_sslrobust.variants.swaps",
    "bg_gap": "pytest_sslrobust.metrics.background",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pytest_sslrobust.variants' has no attribute {name!r}")


__all__ = [
    "ALL",
    "Augmentation",
    "COMMON",
    "GROUPS",
    "SEVERITIES",
    "SWAPS",
    "VALIDATION",
    "BackgroundSwap",
    "CircularMask",
    "Corruption",
    "RegionMask",
    "Variant",
    "VariantContext",
    "VariantError",
    "bg_gap",
    "circular_mask",
    "corrupt",
    "corruption_variants",
    "parse_corruptions",
    "parse_severities",
    "parse_variant",
]


def parse_variant(
    text: str, *, protocol: str = "on-the-fly", segmenter: str | None = None
) -> Variant:
    """Build a variant from its id: ``gaussian_noise-s3``, ``center-r0.50``, ``border``,
    ``foreground``, ``background``, ``augment`` / ``augment-v2`` (SimCLR-style views), or an
    ImageNet-9 name (``mixed_rand``...).

    Example:
        >>> parse_variant("fog-s2").params["severity"]
        2
        >>> parse_variant("center").id
        'center-r0.50'
    """
    parsed = parse_variant_id(text)
    if parsed.kind == "corruption":
        from pytest_sslrobust.variants.corruptions import Corruption

        return Corruption(parsed.name, parsed.severity, protocol)  # type: ignore[arg-type]
    if parsed.kind == "circle":
        from pytest_sslrobust.variants.masks import CircularMask

        return CircularMask(parsed.name, parsed.radius)  # type: ignore[arg-type]
    if parsed.kind == "mask":
        from pytest_sslrobust.variants.masks import RegionMask

        return RegionMask(parsed.name, segmenter=segmenter)
    if parsed.kind == "swap":
        from pytest_sslrobust.variants.swaps import BackgroundSwap

        return BackgroundSwap(parsed.name)
    if parsed.kind == "augment":
        from pytest_sslrobust.variants.augment import Augmentation

        return Augmentation(view=parsed.view)  # type: ignore[arg-type]
    raise VariantError(
        f"variant {text!r} is the clean data, not an alteration: ask for the features of "
        "'original' directly"
    )
