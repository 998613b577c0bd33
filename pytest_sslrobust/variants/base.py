"""The Variant value type: a named, seeded alteration of a dataset item."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from pytest_sslrobust.data.base import Item, Source
from pytest_sslrobust.vocabulary import VariantError

__all__ = ["Variant", "VariantContext", "VariantError", "check_mask", "resolve_fill"]


@dataclasses.dataclass(frozen=True)
class VariantContext:
    """What a variant may need beyond the item, supplied when features are extracted.

    ``fill`` is the RGB value (0..255) that becomes zero after the backbone's
    normalisation; ``source`` is the split being altered (background swaps borrow other
    items' backgrounds from it); ``geometry`` brings an item to the model's input
    resolution (image and mask together).
    """

    fill: tuple[int, int, int]
    source: Source | None = None
    geometry: Callable[[Item], Item] | None = None


class Variant:
    """An alteration with a readable ``id`` (``gaussian_noise-s3``, ``center-r0.50``).

    ``apply(item, seed)`` returns a uint8 HxWx3 image; the same (item, seed) always gives
    the same bytes. Items arrive already at the model's input resolution unless ``raw`` is
    true (a protocol that does its own resizing, such as ImageNet-C's). ``bind`` returns a
    copy completed from the extraction context (fill colour, source split); ``params`` is
    everything that changes the output, recorded with every result and in cache keys.
    """

    kind: ClassVar[str] = "variant"
    raw: ClassVar[bool] = False

    @property
    def id(self) -> str:
        raise NotImplementedError

    @property
    def params(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"kind": self.kind, **fields}

    def bind(self, context: VariantContext) -> Variant:
        return self

    def apply(self, item: Item, seed: int) -> np.ndarray:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.id


def resolve_fill(fill: tuple[int, int, int] | None, context: VariantContext) -> tuple[int, ...]:
    """An explicit fill wins; ``None`` means the normalisation mean of the backbone."""
    return tuple(int(v) for v in (context.fill if fill is None else fill))


def check_mask(mask: np.ndarray | None, image: np.ndarray, what: str) -> np.ndarray:
    """A boolean HxW mask aligned with ``image``, or a VariantError naming the problem."""
    if mask is None:
        raise VariantError(
            f"{what} needs a foreground mask and the item has none: use data with masks "
            "(bundled, imagefolder with masks=DIR, in9) or pass "
            "--sslrobust-segmenter=module:callable"
        )
    array = np.asarray(mask)
    if array.shape != image.shape[:2]:
        raise VariantError(
            f"{what}: mask shape {array.shape} does not match image shape {image.shape[:2]}"
        )
    if array.dtype != bool:
        values = np.unique(array)
        if not np.isin(values, (0, 1)).all():
            raise VariantError(
                f"{what}: mask is not binary (values {values[:5].tolist()}...); "
                "give a bool or 0/1 mask"
            )
        array = array.astype(bool)
    return array
