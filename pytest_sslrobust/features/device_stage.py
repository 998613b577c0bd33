"""Corrupting whole batches on the model's device inside extraction (the torch backend).

With ``--sslrobust-corruption-backend=torch`` on a CUDA device, the loader hands over the
clean images at the model's geometry (uint8, not normalised) and the main process corrupts
each batch at once on the device (``torch_corruptions.corrupt_batch``), measures each
item's SSIM to its clean image there, and normalises there: the CPU decodes and resizes,
the GPU does the rest. On the CPU the per-item path stays the default (the loader thread
corrupts while the forward runs); forcing this path there gives the same bytes, which is
what the tests check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from pytest_sslrobust.backbones.base import Backbone, Preprocessing

SSIM_WINDOW = 7  # scikit-image's default window (uniform, sample covariance)


def ssim_batch(
    clean: torch.Tensor, altered: torch.Tensor, data_range: float = 255.0
) -> torch.Tensor:
    """Mean SSIM of each pair of uint8 (B, 3, H, W) images, as
    ``skimage.metrics.structural_similarity(..., channel_axis=2, data_range=255)`` computes
    it (7 x 7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, the mean over the
    window's valid interior and over channels), in float64 on the images' device; NaN for
    images smaller than the window. Returns (B,) float32 on the CPU."""
    if clean.shape != altered.shape:
        raise ValueError(f"shapes differ: {tuple(clean.shape)} and {tuple(altered.shape)}")
    if min(clean.shape[-2:]) < SSIM_WINDOW:
        return torch.full((clean.shape[0],), float("nan"))
    x, y = clean.double(), altered.double()
    pool = torch.nn.functional.avg_pool2d
    k = SSIM_WINDOW

    def mean(t: torch.Tensor) -> torch.Tensor:
        return pool(t, k, stride=1)  # the valid interior: what skimage keeps after cropping

    ux, uy = mean(x), mean(y)
    cov = k * k / (k * k - 1)
    vx = cov * (mean(x * x) - ux * ux)
    vy = cov * (mean(y * y) - uy * uy)
    vxy = cov * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3)).mean(dim=1).float().cpu()


class RawPreprocessing:
    """What the loader applies on the device path: the image as uint8 (3, H, W), not
    normalised (the geometry was applied by the transform)."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.input_size = preprocessing.input_size

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


class RawLoading:
    """A stand-in for the backbone that the loader sees on the device path."""

    def __init__(self, backbone: Backbone) -> None:
        self.device = backbone.device
        self.preprocessing = RawPreprocessing(backbone.preprocessing)


class DeviceCorruption:
    """Corrupts, measures and normalises batches of clean uint8 images on their device.

    Args:
        name, severity: the corruption.
        seeds: one per item, in extraction order (``store.item_seed`` of each id).
        preprocessing: the backbone's, for the normalisation.
    """

    def __init__(
        self, name: str, severity: int, seeds: Sequence[int], preprocessing: Preprocessing
    ) -> None:
        self.name, self.severity = name, severity
        self.seeds = list(seeds)
        self.preprocessing = preprocessing
        self.done = 0

    def __call__(self, clean: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from pytest_sslrobust.variants.torch_corruptions import corrupt_batch

        seeds = self.seeds[self.done : self.done + len(clean)]
        if len(seeds) != len(clean):
            raise ValueError(f"{len(clean)} images but {len(seeds)} seeds left")
        self.done += len(clean)
        # Contiguous, as the per-item path's images are: normalising a channels-last tensor
        # (what Pillow's JPEG round trip returns) may round differently.
        altered = corrupt_batch(clean, self.name, self.severity, seeds).contiguous()
        return self.preprocessing.tensor(altered), {"ssim": ssim_batch(clean, altered)}


def on_device(variant: Any, device: torch.device, forced: bool | None) -> bool:
    """Whether ``variant`` is corrupted on the device: a torch-backend corruption at the
    model's geometry (the ``on-the-fly`` protocol), on CUDA unless ``forced`` says."""
    from pytest_sslrobust.variants.corruptions import Corruption

    if not isinstance(variant, Corruption) or variant.backend != "torch" or variant.raw:
        return False
    return device.type == "cuda" if forced is None else forced
