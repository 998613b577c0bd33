"""Alterations of dataset items: corruptions, circular and foreground masks, background swaps."""

from __future__ import annotations

import re

from pytest_sslrobust.variants.augment import Augmentation
from pytest_sslrobust.variants.base import Variant, VariantContext, VariantError
from pytest_sslrobust.variants.corruptions import (
    ALL,
    COMMON,
    GROUPS,
    SEVERITIES,
    VALIDATION,
    Corruption,
    corrupt,
    corruption_variants,
    parse_corruptions,
    parse_severities,
)
from pytest_sslrobust.variants.masks import CircularMask, RegionMask, circular_mask
from pytest_sslrobust.variants.swaps import SWAPS, BackgroundSwap, bg_gap

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

_CORRUPTION_ID = re.compile(r"^(?P<name>[a-z_]+)-s(?P<severity>\d+)$")
_AUGMENT_ID = re.compile(r"^augment(-v(?P<view>\d+))?$")
_CIRCLE_ID = re.compile(r"^(?P<region>center|border)(-r(?P<radius>[0-9.]+))?$")


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
    corruption = _CORRUPTION_ID.match(text)
    if corruption:
        return Corruption(corruption["name"], int(corruption["severity"]), protocol)
    circle = _CIRCLE_ID.match(text)
    if circle:
        radius = float(circle["radius"]) if circle["radius"] else CircularMask.radius
        return CircularMask(circle["region"], radius)
    if text in ("foreground", "background"):
        return RegionMask(text, segmenter=segmenter)
    if text in SWAPS:
        return BackgroundSwap(text)
    augment = _AUGMENT_ID.match(text)
    if augment:
        return Augmentation(view=int(augment["view"] or 1))
    raise VariantError(
        f"unknown variant {text!r}: expected original, CORRUPTION-sN (e.g. gaussian_noise-s3), "
        f"center[-rR], border[-rR], foreground, background, augment[-vN] or one of "
        f"{', '.join(SWAPS)}"
    )
