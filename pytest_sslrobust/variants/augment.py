"""Training-style augmentations as a variant: how invariant are features to the views SSL
methods are trained to match (the generalisability study's feature invariance)?"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch

from pytest_sslrobust.data.base import Item
from pytest_sslrobust.variants.base import Variant, VariantError
from pytest_sslrobust.vocabulary import augment_id


@dataclasses.dataclass(frozen=True)
class Augmentation(Variant):
    """A SimCLR-style view of each item, seeded per item: random resized crop (scale
    ``crop_scale``, back to the input size), colour jitter (brightness, contrast, saturation
    ``jitter``, hue ``hue``) with probability ``jitter_p``, greyscale with probability
    ``grayscale_p``; no flips. The bundled backbones were trained with these views
    (``pytest_sslrobust.backbones.training``). Id: ``augment`` (``augment-v2`` for view 2).
    """

    kind: ClassVar[str] = "augmentation"
    view: int = 1
    crop_scale: tuple[float, float] = (0.25, 1.0)
    jitter: float = 0.4
    hue: float = 0.1
    jitter_p: float = 0.8
    grayscale_p: float = 0.2

    def __post_init__(self) -> None:
        if self.view < 1:
            raise VariantError(f"augmentation view must be 1 or more, got {self.view}")
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise VariantError(
                f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}"
            )

    @property
    def id(self) -> str:
        return augment_id(self.view)

    def apply(self, item: Item, seed: int) -> np.ndarray:
        from torchvision.transforms import v2

        size = item.image.shape[:2]
        transform = v2.Compose(
            [
                v2.RandomResizedCrop(list(size), scale=self.crop_scale, antialias=True),
                v2.RandomApply(
                    [v2.ColorJitter(self.jitter, self.jitter, self.jitter, self.hue)],
                    p=self.jitter_p,
                ),
                v2.RandomGrayscale(p=self.grayscale_p),
            ]
        )
        tensor = torch.from_numpy(np.ascontiguousarray(item.image)).permute(2, 0, 1)
        # torchvision draws from torch's global generator: fork it so that the view depends
        # on (item, seed, view) only, and the caller's random state is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((seed * 1_000_003 + self.view) % (2**63))
            view = transform(tensor)
        return view.permute(1, 2, 0).contiguous().numpy()
