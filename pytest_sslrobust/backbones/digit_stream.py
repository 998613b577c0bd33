"""A procedurally generated training stream for the bundled self-supervised backbones.

Instance discrimination on the 1,258 fixed images of ``bundled:textured-digits`` (train) is
solved by cues cheaper than the digit's shape: its colour, its place, the background crop
(``docs/bundled-models.md`` records the recipes that failed that way). This stream removes
every such cue. An *instance* is one handwritten digit's alpha matte from the ``train``
split; each view of it is composed afresh, in a batch of torch operations:

- the matte under a random affine warp (rotation, scale, shear, translation), so no pixel
  position identifies it;
- painted in a random saturated colour (the dataset's own colour rule: a hue drawn
  uniformly, inverted when too close to the background's mean), so colour says nothing;
- over a random background: a crop of one of the dataset's ten photographs at a random
  scale, flipped and turned at random, drawn from a bank of crops made once per stream;
- then brightness and contrast jitter, optionally greyscale, and a little pixel noise.

Two views of one instance share the digit's shape and nothing else, so the only way to tell
instances apart is the shape of the handwriting. No two views are ever the same image, so
nothing can be memorised. Labels are never read. Everything is drawn from one seeded
``torch.Generator``: the same seed gives the same batches on the same machine.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch.nn import functional as F

IMAGE_SIZE = 64


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """The stream's ranges, written into the weights' metadata with the recipe."""

    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.8, 1.1)
    shear_deg: float = 8.0
    translate_px: float = 8.0
    background_bank: int = 4096
    background_side: tuple[int, int] = (48, 128)  # crop side in photo pixels, resized to 64
    brightness: float = 0.3
    contrast: float = 0.3
    grayscale_p: float = 0.0
    noise_std: float = 0.03  # in [0, 1] units, added before quantising back to 8 bits
    # The background's contrast about its own mean (1: the photograph as it is); a
    # curriculum may start lower so that the digit is the most salient thing in the view.
    background_contrast: float = 1.0


def train_mattes() -> torch.Tensor:
    """The ``train`` split's digit mattes as float (n, 1, 64, 64), the digit centred."""
    from pytest_sslrobust.data import bundled

    dataset = bundled.load_bundled("textured-digits")
    split = dataset.split("train")
    digits, _ = bundled._digits()
    index = {f"digit-{i:04d}": i for i in range(len(digits))}
    pad = (IMAGE_SIZE - bundled.DIGIT_SIZE) // 2
    mattes = np.zeros((len(split), 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for row, item_id in enumerate(split.ids):
        matte = bundled._matte(digits[index[item_id]])
        mattes[row, 0, pad : pad + matte.shape[0], pad : pad + matte.shape[1]] = matte
    return torch.from_numpy(mattes)


def background_bank(settings: StreamSettings, generator: torch.Generator) -> torch.Tensor:
    """``settings.background_bank`` crops of the dataset's photographs, uint8 (n, 3, 64, 64),
    each of a random side in ``settings.background_side`` resized to 64 px."""
    from pytest_sslrobust.data.bundled import backgrounds

    photos = [torch.from_numpy(np.ascontiguousarray(p)).permute(2, 0, 1) for p in backgrounds()]
    low, high = settings.background_side
    crops = []
    for _ in range(settings.background_bank):
        photo = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        side = int(torch.randint(low, min(high, *photo.shape[1:]) + 1, (1,), generator=generator))
        top = int(torch.randint(photo.shape[1] - side + 1, (1,), generator=generator))
        left = int(torch.randint(photo.shape[2] - side + 1, (1,), generator=generator))
        crop = photo[:, top : top + side, left : left + side].unsqueeze(0).float()
        crops.append(
            F.interpolate(crop, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
        )
    return torch.cat(crops).round().clamp(0, 255).to(torch.uint8)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


class DigitStream:
    """Views of digit instances, composed on demand (see the module docstring)."""

    def __init__(self, settings: StreamSettings | None = None, *, seed: int = 0) -> None:
        self.settings = settings or StreamSettings()
        self.generator = torch.Generator().manual_seed(seed)
        self.mattes = train_mattes()
        self.backgrounds = background_bank(self.settings, self.generator)

    def __len__(self) -> int:
        return len(self.mattes)

    def instances(self, batch_size: int) -> torch.Tensor:
        """Indices of ``batch_size`` distinct instances (a fresh random sample each call)."""
        return torch.randperm(len(self.mattes), generator=self.generator)[:batch_size]

    def pair(
        self, instances: torch.Tensor, contrast: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent views of each instance (``contrast``: the background contrast for
        this batch, ``settings.background_contrast`` unless given)."""
        return self.views(instances, contrast), self.views(instances, contrast)

    def views(self, instances: torch.Tensor, contrast: float | None = None) -> torch.Tensor:
        """One freshly composed uint8 (n, 3, 64, 64) view of each instance."""
        s, g, n = self.settings, self.generator, len(instances)
        contrast = s.background_contrast if contrast is None else contrast
        angle = _uniform(n, -s.rotation_deg, s.rotation_deg, g) * math.pi / 180
        shear = _uniform(n, -s.shear_deg, s.shear_deg, g) * math.pi / 180
        scale = _uniform(n, *s.scale, g)
        shift = _uniform(2 * n, -1.0, 1.0, g).view(n, 2) * (2 * s.translate_px / IMAGE_SIZE)
        # The inverse map (output -> matte coordinates) that affine_grid expects.
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = cos / scale
        theta[:, 0, 1] = (sin + torch.tan(shear) * cos) / scale
        theta[:, 1, 0] = -sin / scale
        theta[:, 1, 1] = (cos - torch.tan(shear) * sin) / scale
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, (n, 1, IMAGE_SIZE, IMAGE_SIZE), align_corners=False)
        alpha = F.grid_sample(self.mattes[instances], grid, align_corners=False).clamp(0, 1)

        background = self.backgrounds[torch.randint(len(self.backgrounds), (n,), generator=g)]
        flip = torch.rand(n, generator=g) < 0.5
        background = torch.where(flip.view(-1, 1, 1, 1), background.flip(-1), background)
        turns = torch.randint(4, (n,), generator=g)
        background = torch.stack(
            [torch.rot90(b, int(k), dims=(1, 2)) for b, k in zip(background, turns, strict=True)]
        ).float()
        if contrast != 1.0:
            centre = background.mean(dim=(2, 3), keepdim=True)
            background = centre + contrast * (background - centre)

        # The dataset's colour rule: a hue on the RGB colour wheel, inverted near the mean.
        hue = torch.rand(n, generator=g).view(n, 1)
        offsets = torch.arange(3).view(1, 3) / 3
        colour = torch.cos(2 * math.pi * (hue + offsets)) * 127.5 + 127.5
        near = (colour - background.mean(dim=(2, 3))).abs().sum(dim=1) < 150
        colour = torch.where(near.view(n, 1), 255.0 - colour, colour).view(n, 3, 1, 1)
        image = (background * (1 - alpha) + colour * alpha) / 255.0

        brightness = _uniform(n, 1 - s.brightness, 1 + s.brightness, g).view(n, 1, 1, 1)
        stretch = _uniform(n, 1 - s.contrast, 1 + s.contrast, g).view(n, 1, 1, 1)
        image = image * brightness
        mean = image.mean(dim=(1, 2, 3), keepdim=True)
        image = (image - mean) * stretch + mean
        grey = (torch.rand(n, generator=g) < s.grayscale_p).view(n, 1, 1, 1)
        luma = (image * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        image = torch.where(grey, luma.expand_as(image), image)
        image = image + s.noise_std * torch.randn(image.shape, generator=g)
        return (image.clamp(0, 1) * 255).round().to(torch.uint8)
