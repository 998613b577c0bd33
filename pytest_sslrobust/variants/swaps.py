"""ImageNet-9 background-challenge variants (Xiao et al. 2020) built from foreground masks."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from pytest_sslrobust.data.base import Item, Source
from pytest_sslrobust.metrics.background import bg_gap
from pytest_sslrobust.variants.base import Variant, VariantContext, VariantError, check_mask
from pytest_sslrobust.variants.masks import check_image
from pytest_sslrobust.vocabulary import SWAPS

# The names are ImageNet-9's folder names, which the in9: data source reads as released
# files (SWAPS, from the vocabulary). bg_gap lives with the metrics and is re-exported here.
__all__ = ["MIXED", "SWAPS", "BackgroundSwap", "bg_gap", "check_swap"]
MIXED = ("mixed_same", "mixed_rand", "mixed_next")
# grey for a texture with no background pixels at all to take a colour from
GREY = (128, 128, 128)


def check_swap(name: str) -> str:
    if name not in SWAPS:
        close = difflib.get_close_matches(str(name), SWAPS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise VariantError(f"unknown background variant {name!r}{hint}; valid: {', '.join(SWAPS)}")
    return name


def _item_mask(item: Item, what: str) -> np.ndarray:
    image = check_image(item.image, what)
    if item.mask is None:
        # unlike foreground/background masks, swaps take masks from the data only
        raise VariantError(
            f"{what} needs a foreground mask and item {item.id!r} has none: use data with "
            "masks (bundled, imagefolder with masks=DIR, in9)"
        )
    return check_mask(item.mask, image, f"{what} (item {item.id!r})")


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the true pixels, end-exclusive; None if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def only_fg(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The foreground on black."""
    out = np.zeros_like(image)
    out[mask] = image[mask]
    return out


def no_fg(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The background with the foreground's pixels black."""
    out = image.copy()
    out[mask] = 0
    return out


def only_bg_b(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The background with the foreground's bounding box black."""
    out = image.copy()
    box = bounding_box(mask)
    if box is not None:
        top, bottom, left, right = box
        out[top:bottom, left:right] = 0
    return out


def only_bg_t(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The background with the foreground's bounding box filled by tiled background texture.

    Everything outside the bounding box is background, so the four bands around it (above
    and below: full width; left and right: full height) are background-only. The band of
    largest area is taken (ties: top, bottom, left, right) and the part of it facing the box
    (the box's columns for a band above or below, its rows for a band beside it) is repeated
    across the box, so the texture keeps its scale and lines up with the band. When the box
    covers the whole image, it is filled with the mean colour of the background pixels, or
    grey when there are none. An image without foreground comes back unchanged.
    """
    out = image.copy()
    box = bounding_box(mask)
    if box is None:
        return out
    top, bottom, left, right = box
    height, width = mask.shape
    box_h, box_w = bottom - top, right - left
    bands = [
        (top * width, image[:top, left:right], "rows"),
        ((height - bottom) * width, image[bottom:, left:right], "rows"),
        (left * height, image[top:bottom, :left], "cols"),
        ((width - right) * height, image[top:bottom, right:], "cols"),
    ]
    area, strip, axis = max(bands, key=lambda band: band[0])  # max keeps the first of ties
    if area == 0:
        background = image[~mask]
        colour = (
            np.round(background.reshape(-1, 3).mean(axis=0)).astype(np.uint8)
            if background.size
            else np.asarray(GREY, dtype=np.uint8)
        )
        out[top:bottom, left:right] = colour
        return out
    if axis == "rows":
        reps = (math.ceil(box_h / strip.shape[0]), 1, 1)
    else:
        reps = (1, math.ceil(box_w / strip.shape[1]), 1)
    out[top:bottom, left:right] = np.tile(strip, reps)[:box_h, :box_w]
    return out


def choose_donor(name: str, item_label: int, item_id: str, source: Source, seed: int) -> int:
    """The index in ``source`` of the item whose background a mixed_* variant borrows.

    Chosen with ``np.random.default_rng(seed)`` among ``source``'s indices by label alone
    (no image is read): ``mixed_same``, the item's class without the item itself (unless it
    is the only one); ``mixed_rand``, any other class; ``mixed_next``, class ``label + 1``
    modulo the number of classes, or the next class after it that has items.

    Args:
        name: ``mixed_same``, ``mixed_rand`` or ``mixed_next``.
        item_label: the altered item's label.
        item_id: the altered item's id (excluded from ``mixed_same`` donors).
        source: the split to borrow from.
        seed: the per-item seed.

    Returns:
        an index into ``source``.
    """
    if check_swap(name) not in MIXED:
        raise VariantError(f"{name} takes no donor; only {', '.join(MIXED)} do")
    labels = np.asarray(source.labels)
    item_label = int(item_label)
    if name == "mixed_same":
        same = labels == item_label
        candidates = np.flatnonzero(same & (np.asarray(source.ids, dtype=object) != item_id))
        if candidates.size == 0:
            candidates = np.flatnonzero(same)
        if candidates.size == 0:
            raise VariantError(
                f"mixed_same: the source has no item of class {item_label} to borrow from"
            )
    else:
        present = np.unique(labels)
        others = present[present != item_label]
        if others.size == 0:
            raise VariantError(
                f"{name} needs items of at least two classes in the source; it has "
                f"{present.tolist()}"
            )
        if name == "mixed_rand":
            candidates = np.flatnonzero(labels != item_label)
        else:
            # label + 1 mod C, skipping empty classes, is the next present label cyclically
            later = others[others > item_label]
            target = int(later[0] if later.size else others[0])
            candidates = np.flatnonzero(labels == target)
    rng = np.random.default_rng(seed)
    return int(candidates[int(rng.integers(candidates.size))])


@dataclasses.dataclass(frozen=True)
class BackgroundSwap(Variant):
    """One of the ImageNet-9 background variants, made from the item and its mask.

    ``only_fg`` / ``no_fg`` / ``only_bg_b`` black out (0) the background / the foreground /
    the foreground's bounding box; ``only_bg_t`` fills that box with tiled background
    texture (see ``only_bg_t``). ``mixed_same`` / ``mixed_rand`` / ``mixed_next`` paste the
    item's foreground pixels unchanged onto the ``only_bg_t`` image of a donor from the
    bound split (same class / random other class / next class; see ``choose_donor``),
    brought to the item's size by the bound geometry.
    """

    name: str
    source: Source | None = dataclasses.field(default=None, compare=False, repr=False)
    geometry: Callable[[Item], Item] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )
    kind: ClassVar[str] = "background"

    def __post_init__(self) -> None:
        check_swap(self.name)

    @property
    def id(self) -> str:
        return self.name

    @property
    def params(self) -> dict[str, Any]:
        # the bound split and geometry are context, not settings: keep them out of cache keys
        return {"kind": self.kind, "name": self.name}

    def bind(self, context: VariantContext) -> BackgroundSwap:
        return dataclasses.replace(self, source=context.source, geometry=context.geometry)

    def donor(self, item: Item, seed: int) -> Item:
        """The donor item for a mixed_* variant, at the item's size, or a VariantError."""
        if self.source is None:
            raise VariantError(
                f"{self.name} borrows backgrounds from other items, so it needs a dataset "
                "split: bind it to a VariantContext with a source first (the store does)"
            )
        index = choose_donor(self.name, item.label, item.id, self.source, seed)
        donor = self.source.load(index)
        if self.geometry is not None:
            donor = self.geometry(donor)
        if np.shape(donor.image)[:2] != np.shape(item.image)[:2]:
            raise VariantError(
                f"{self.name}: donor {donor.id!r} is {np.shape(donor.image)[:2]} but item "
                f"{item.id!r} is {np.shape(item.image)[:2]}; bind a geometry that brings "
                "items to the model's input size"
            )
        return donor

    def apply(self, item: Item, seed: int) -> np.ndarray:
        image = check_image(item.image, self.name)
        mask = _item_mask(item, self.name)
        if self.name == "only_fg":
            return only_fg(image, mask)
        if self.name == "no_fg":
            return no_fg(image, mask)
        if self.name == "only_bg_b":
            return only_bg_b(image, mask)
        if self.name == "only_bg_t":
            return only_bg_t(image, mask)
        donor = self.donor(item, seed)
        out = only_bg_t(check_image(donor.image, self.name), _item_mask(donor, self.name))
        out[mask] = image[mask]
        return out
