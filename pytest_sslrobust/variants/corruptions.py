"""ImageNet-C corruptions through imagecorruptions-imaug, made deterministic per item."""

from __future__ import annotations

import dataclasses
import io
import threading
from typing import Any, ClassVar

import numpy as np

from pytest_sslrobust.data.base import Item
from pytest_sslrobust.variants.base import Variant, VariantError
from pytest_sslrobust.vocabulary import (
    ALL,
    BACKENDS,
    COMMON,
    GROUPS,
    PROTOCOLS,
    SEVERITIES,
    VALIDATION,
    check_corruption,
    check_severity,
    corruption_backend,
    corruption_id,
    generator_version,
    parse_corruptions,
    parse_severities,
)

__all__ = [
    "ALL",
    "COMMON",
    "GROUPS",
    "IMAGENET_C_GEOMETRY",
    "PROTOCOLS",
    "SEVERITIES",
    "VALIDATION",
    "Corruption",
    "check_corruption",
    "check_severity",
    "corrupt",
    "corruption_variants",
    "generator_version",
    "imagenet_c_geometry",
    "jpeg_round_trip",
    "parse_corruptions",
    "parse_severities",
]

MIN_SIDE = 32

# imagecorruptions draws from numpy's global generator; one lock keeps two threads from
# interleaving their draws (which would make results depend on timing).
_GLOBAL_RNG = threading.Lock()


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Apply one ImageNet-C corruption; uint8 HxWx3 in, same shape out, same bytes per seed.

    Every source of randomness is pinned to ``seed``: numpy's global generator (saved and
    restored, so the caller's random state is left as it was), scikit-image's generator for
    impulse noise and the numba generator of glass blur (both take the seed directly).

    Args:
        image: uint8 array HxWx3, both sides at least 32 pixels.
        name: one of the 19 corruption names (``ALL``).
        severity: 1..5.
        seed: any non-negative integer.

    Example:
        >>> img = np.full((32, 32, 3), 128, np.uint8)
        >>> out = corrupt(img, "gaussian_noise", 3, seed=0)
        >>> out.shape, out.dtype, bool((out == corrupt(img, "gaussian_noise", 3, 0)).all())
        ((32, 32, 3), dtype('uint8'), True)
    """
    check_corruption(name)
    severity = check_severity(severity)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise VariantError(
            f"corrupt expects a uint8 HxWx3 image, got dtype {array.dtype} shape {array.shape}"
        )
    if min(array.shape[:2]) < MIN_SIDE:
        raise VariantError(
            f"{name} needs images of at least {MIN_SIDE}x{MIN_SIDE} pixels, got "
            f"{array.shape[0]}x{array.shape[1]}: corrupt at the model's input resolution"
        )
    from imagecorruptions import corrupt as library_corrupt

    seed32 = int(seed) % (2**32)
    extra: dict[str, Any] = {}
    if name in ("impulse_noise", "glass_blur"):
        extra["seed"] = seed32
    with _GLOBAL_RNG:
        state = np.random.get_state()
        try:
            np.random.seed(seed32)
            out = library_corrupt(
                np.ascontiguousarray(array), severity=severity, corruption_name=name, **extra
            )
        finally:
            np.random.set_state(state)
    out = np.asarray(out, dtype=np.uint8)
    if out.shape != array.shape:  # a few corruptions return a crop for odd sizes
        out = out[: array.shape[0], : array.shape[1]]
    return np.ascontiguousarray(out)


def jpeg_round_trip(image: np.ndarray, quality: int = 85) -> np.ndarray:
    """Encode as JPEG and decode again, as the released ImageNet-C files were saved."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


# Version of the ``imagenet-c`` protocol's geometry, recorded with every corrupted result so
# that numbers made with the earlier, inexact crop (v1) are never compared with these.
IMAGENET_C_GEOMETRY = "torchvision Resize(256) + CenterCrop(224) on PIL, bilinear (v2)"


def imagenet_c_geometry(image: np.ndarray) -> np.ndarray:
    """Resize the shorter side to 256 (bilinear) and centre-crop 224, as ImageNet-C did.

    hendrycks' ``make_imagenet_c.py`` applies torchvision's ``Resize(256)`` and
    ``CenterCrop(224)`` to PIL images: the long side becomes ``int(256 * long / short)``
    (truncated) and the crop offset ``int(round((size - 224) / 2))`` (Python's rounding).
    Rounding the long side or flooring the offset gives other pixels for most source sizes.
    """
    from PIL import Image

    picture = Image.fromarray(image)
    width, height = picture.size
    if width <= height:
        size = (256, int(256 * height / width))
    else:
        size = (int(256 * width / height), 256)
    if size != (width, height):
        picture = picture.resize(size, Image.BILINEAR)
    left = int(round((size[0] - 224) / 2.0))
    top = int(round((size[1] - 224) / 2.0))
    return np.asarray(picture.crop((left, top, left + 224, top + 224))).copy()


@dataclasses.dataclass(frozen=True)
class Corruption(Variant):
    """One corruption at one severity, under a protocol.

    ``on-the-fly`` corrupts the item at the model's input resolution with no JPEG step;
    ``imagenet-c`` reproduces the released files' recipe (resize 256, crop 224, corrupt,
    JPEG q=85). Neither is byte-compatible with the original ImageNet-C generator, so
    AlexNet-normalised mCE is valid only for the released files (dataset ``imagenet-c:``).
    """

    name: str
    severity: int
    protocol: str = "on-the-fly"
    backend: str = dataclasses.field(default_factory=corruption_backend)
    kind: ClassVar[str] = "corruption"

    def __post_init__(self) -> None:
        check_corruption(self.name)
        if self.backend not in BACKENDS:
            raise VariantError(
                f"unknown corruption backend {self.backend!r}; use one of {', '.join(BACKENDS)}"
            )
        object.__setattr__(self, "severity", check_severity(self.severity))
        if self.protocol not in PROTOCOLS:
            raise VariantError(
                f"unknown corruption protocol {self.protocol!r}; use one of {', '.join(PROTOCOLS)}"
            )

    @property
    def raw(self) -> bool:  # type: ignore[override]
        return self.protocol == "imagenet-c"

    @property
    def id(self) -> str:
        return corruption_id(self.name, self.severity)

    @property
    def params(self) -> dict[str, Any]:
        # The generator names the backend and its version; keys stay those of earlier runs.
        params = {**super().params, "generator": generator_version(self.backend)}
        del params["backend"]
        if self.protocol == "imagenet-c":
            params["geometry"] = IMAGENET_C_GEOMETRY
        return params

    def apply(self, item: Item, seed: int) -> np.ndarray:
        make = corrupt
        if self.backend == "torch":
            from pytest_sslrobust.variants.torch_corruptions import corrupt_image as make
        if self.protocol == "imagenet-c":
            return jpeg_round_trip(
                make(imagenet_c_geometry(item.image), self.name, self.severity, seed)
            )
        return make(item.image, self.name, self.severity, seed)


def corruption_variants(
    names: tuple[str, ...] | str = "common",
    severities: tuple[int, ...] | range | str = SEVERITIES,
    protocol: str = "on-the-fly",
) -> list[Corruption]:
    """Every (corruption, severity) pair as a Corruption variant, corruption-major."""
    names = parse_corruptions(names) if isinstance(names, str) else tuple(names)
    levels = parse_severities(severities) if isinstance(severities, str) else tuple(severities)
    return [Corruption(n, s, protocol) for n in names for s in levels]
