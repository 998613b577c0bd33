"""Circular (center/border) masks and foreground/background masks of dataset items."""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from pytest_sslrobust.data.base import Item
from pytest_sslrobust.variants.base import (
    Variant,
    VariantContext,
    VariantError,
    check_mask,
    resolve_fill,
)
from pytest_sslrobust.vocabulary import circle_id

CIRCLE_REGIONS = ("center", "border")
FOREGROUND_REGIONS = ("foreground", "background")
# 1.5 rather than 1: a radius of sqrt(2) (in half-sides) reaches the corners of a square
# image, so "center" can keep the whole image and "border" can remove everything.
MAX_RADIUS = 1.5


def check_radius(radius: Any) -> float:
    """The disc radius as a float in (0, 1.5], or a VariantError."""
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.integer, np.floating)):
        raise VariantError(f"radius must be a number in (0, {MAX_RADIUS}], got {radius!r}")
    value = float(radius)
    if not 0.0 < value <= MAX_RADIUS:
        raise VariantError(
            f"radius must be in (0, {MAX_RADIUS}] (a fraction of half the shorter side), "
            f"got {radius}"
        )
    return value


def check_fill(fill: Any) -> tuple[int, int, int] | None:
    """``None`` or three integers 0..255 (an RGB colour), as a tuple."""
    if fill is None:
        return None
    try:
        values = tuple(fill)
    except TypeError:
        raise VariantError(f"fill must be an RGB triple of 0..255 or None, got {fill!r}") from None
    ok = len(values) == 3 and all(
        not isinstance(v, bool) and isinstance(v, (int, np.integer)) and 0 <= v <= 255
        for v in values
    )
    if not ok:
        raise VariantError(f"fill must be an RGB triple of 0..255 or None, got {fill!r}")
    return (int(values[0]), int(values[1]), int(values[2]))


def check_image(image: Any, what: str) -> np.ndarray:
    """The item's pixels as a uint8 HxWx3 array, or a VariantError naming the variant."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise VariantError(
            f"{what} expects a uint8 HxWx3 image, got dtype {array.dtype} shape {array.shape}"
        )
    return array


def circular_mask(shape: tuple[int, int], radius: float) -> np.ndarray:
    """A bool HxW disc, true within ``radius * min(H, W) / 2`` pixels of the image centre.

    The centre is ((H-1)/2, (W-1)/2), so the disc is symmetric on odd and even sizes alike;
    a pixel whose centre lies at distance exactly R is inside.

    Args:
        shape: (H, W), or any shape whose first two entries are H and W.
        radius: fraction of half the shorter side, in (0, 1.5]; 1 touches the shorter sides,
            sqrt(2) reaches the corners of a square image.

    Returns:
        bool array of shape (H, W).

    Example:
        >>> circular_mask((5, 5), 0.5).astype(int)[2].tolist()
        [0, 1, 1, 1, 0]
    """
    radius = check_radius(radius)
    height, width = int(shape[0]), int(shape[1])
    if height < 1 or width < 1:
        raise VariantError(f"circular_mask needs a non-empty shape, got {shape}")
    pixels = radius * min(height, width) / 2.0
    rows = np.arange(height, dtype=np.float64)[:, None] - (height - 1) / 2.0
    cols = np.arange(width, dtype=np.float64)[None, :] - (width - 1) / 2.0
    # squared distances avoid sqrt rounding at the boundary
    return rows**2 + cols**2 <= pixels**2


def _filled(image: np.ndarray, keep: np.ndarray, fill: tuple[int, ...]) -> np.ndarray:
    out = image.copy()
    out[~keep] = np.asarray(fill, dtype=np.uint8)
    return out


def _bound_fill(fill: tuple[int, int, int] | None, what: str) -> tuple[int, int, int]:
    if fill is None:
        raise VariantError(
            f"{what} has no fill colour: bind it to a VariantContext first (the store does) "
            "or give fill=(r, g, b)"
        )
    return fill


@dataclasses.dataclass(frozen=True)
class CircularMask(Variant):
    """Keep a centred disc (``center``) or everything but it (``border``), fill the rest.

    ``radius`` is a fraction of half the shorter side (0.5: the disc's radius is a quarter
    of the shorter side). ``center`` and ``border`` of the same radius keep complementary
    pixels. ``fill`` ``None`` means the backbone's normalisation mean (set by ``bind``), so
    masked pixels become zero once normalised.
    """

    region: str
    radius: float = 0.5
    fill: tuple[int, int, int] | None = None
    kind: ClassVar[str] = "mask"

    def __post_init__(self) -> None:
        if self.region not in CIRCLE_REGIONS:
            raise VariantError(
                f"unknown circular mask region {self.region!r}; use one of "
                f"{', '.join(CIRCLE_REGIONS)}"
            )
        object.__setattr__(self, "radius", check_radius(self.radius))
        object.__setattr__(self, "fill", check_fill(self.fill))

    @property
    def id(self) -> str:
        return circle_id(self.region, self.radius)

    def bind(self, context: VariantContext) -> CircularMask:
        # replace() re-runs __post_init__, which validates the context's colour too
        return dataclasses.replace(self, fill=resolve_fill(self.fill, context))

    def apply(self, item: Item, seed: int) -> np.ndarray:
        image = check_image(item.image, self.id)
        disc = circular_mask(image.shape[:2], self.radius)
        keep = disc if self.region == "center" else ~disc
        return _filled(image, keep, _bound_fill(self.fill, self.id))


@functools.lru_cache(maxsize=64)
def load_segmenter(spec: str) -> Callable[[np.ndarray], Any]:
    """Import the callable named by ``module.path:callable`` (attributes may be dotted).

    The callable takes a uint8 HxWx3 image and returns an HxW mask (bool or 0/1), true on
    the foreground. Loaded once per spec.
    """
    module_name, colon, attribute = str(spec).partition(":")
    if not colon or not module_name or not attribute:
        raise VariantError(f"segmenter {spec!r} is not of the form module.path:callable")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise VariantError(f"segmenter {spec!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        for part in attribute.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise VariantError(
            f"segmenter {spec!r}: module {module_name!r} has no attribute {attribute!r}"
        ) from None
    if not callable(target):
        raise VariantError(f"segmenter {spec!r} is not callable ({type(target).__name__})")
    return target  # type: ignore[no-any-return]


@dataclasses.dataclass(frozen=True)
class RegionMask(Variant):
    """Keep the object (``foreground``) or its surroundings (``background``), fill the rest.

    The mask is the item's own when it has one, else the output of ``segmenter`` (a
    ``module.path:callable`` spec, imported on first use). ``fill`` ``None`` means the
    backbone's normalisation mean (set by ``bind``).
    """

    region: str
    fill: tuple[int, int, int] | None = None
    segmenter: str | None = None
    kind: ClassVar[str] = "mask"

    def __post_init__(self) -> None:
        if self.region not in FOREGROUND_REGIONS:
            raise VariantError(
                f"unknown mask region {self.region!r}; use one of {', '.join(FOREGROUND_REGIONS)}"
            )
        object.__setattr__(self, "fill", check_fill(self.fill))

    @property
    def id(self) -> str:
        return self.region

    def bind(self, context: VariantContext) -> RegionMask:
        # replace() re-runs __post_init__, which validates the context's colour too
        return dataclasses.replace(self, fill=resolve_fill(self.fill, context))

    def mask_of(self, item: Item) -> np.ndarray:
        """The item's foreground mask (its own, else the segmenter's), validated."""
        image = check_image(item.image, self.id)
        mask: Any = item.mask
        if mask is None and self.segmenter is not None:
            mask = np.asarray(load_segmenter(self.segmenter)(image))
            # a segmenter returning HxWx1 still describes one mask
            if mask.ndim == 3 and mask.shape[2] == 1:
                mask = mask[:, :, 0]
        return check_mask(mask, image, self.id)

    def apply(self, item: Item, seed: int) -> np.ndarray:
        mask = self.mask_of(item)
        keep = mask if self.region == "foreground" else ~mask
        return _filled(check_image(item.image, self.id), keep, _bound_fill(self.fill, self.id))
