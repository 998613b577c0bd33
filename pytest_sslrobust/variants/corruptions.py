"""ImageNet-C corruptions through imagecorruptions-imaug, made deterministic per item."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import io
import threading
from importlib import metadata
from typing import Any, ClassVar

import numpy as np

from pytest_sslrobust.data.base import Item
from pytest_sslrobust.variants.base import Variant, VariantError

COMMON = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
VALIDATION = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = COMMON + VALIDATION
GROUPS: dict[str, tuple[str, ...]] = {
    "common": COMMON,
    "validation": VALIDATION,
    "all": ALL,
    "noise": COMMON[0:3],
    "blur": COMMON[3:7],
    "weather": COMMON[7:11],
    "digital": COMMON[11:15],
}
SEVERITIES = (1, 2, 3, 4, 5)
PROTOCOLS = ("on-the-fly", "imagenet-c")
MIN_SIDE = 32

# imagecorruptions draws from numpy's global generator; one lock keeps two threads from
# interleaving their draws (which would make results depend on timing).
_GLOBAL_RNG = threading.Lock()


def check_corruption(name: str) -> str:
    if name not in ALL:
        close = difflib.get_close_matches(name, ALL, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise VariantError(
            f"unknown corruption {name!r}{hint}; valid: {', '.join(ALL)}; groups: "
            f"{', '.join(GROUPS)}"
        )
    return name


def check_severity(severity: Any) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
        raise VariantError(f"severity must be an integer 1..5, got {severity!r}")
    if int(severity) not in SEVERITIES:
        raise VariantError(f"severity must be 1..5, got {severity}")
    return int(severity)


@functools.lru_cache(maxsize=1)
def generator_version() -> str:
    """Name and version of the corruption library, recorded with every corrupted result."""
    try:
        return f"imagecorruptions-imaug {metadata.version('imagecorruptions-imaug')}"
    except metadata.PackageNotFoundError:
        return "imagecorruptions (unknown version)"


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
    kind: ClassVar[str] = "corruption"

    def __post_init__(self) -> None:
        check_corruption(self.name)
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
        return f"{self.name}-s{self.severity}"

    @property
    def params(self) -> dict[str, Any]:
        params = {**super().params, "generator": generator_version()}
        if self.protocol == "imagenet-c":
            params["geometry"] = IMAGENET_C_GEOMETRY
        return params

    def apply(self, item: Item, seed: int) -> np.ndarray:
        if self.protocol == "imagenet-c":
            return jpeg_round_trip(
                corrupt(imagenet_c_geometry(item.image), self.name, self.severity, seed)
            )
        return corrupt(item.image, self.name, self.severity, seed)


def parse_corruptions(text: str) -> tuple[str, ...]:
    """``common``, ``noise,blur``, ``gaussian_noise,fog`` -> corruption names, in order."""
    names: list[str] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            raise VariantError(f"empty entry in corruption list {text!r}")
        for name in GROUPS.get(part, (part,)):
            if check_corruption(name) not in names:
                names.append(name)
    return tuple(names)


def parse_severities(text: str) -> tuple[int, ...]:
    """``1-5``, ``1,3,5`` or ``2`` -> sorted severities."""
    found: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        low, dash, high = part.partition("-")
        try:
            values = range(int(low), int(high) + 1) if dash else [int(part)]
        except ValueError:
            raise VariantError(f"cannot parse severities {text!r}: use e.g. 1-5 or 1,3,5") from None
        if not values:
            raise VariantError(f"cannot parse severities {text!r}: empty range {part}")
        found.update(check_severity(v) for v in values)
    return tuple(sorted(found))


def corruption_variants(
    names: tuple[str, ...] | str = "common",
    severities: tuple[int, ...] | range | str = SEVERITIES,
    protocol: str = "on-the-fly",
) -> list[Corruption]:
    """Every (corruption, severity) pair as a Corruption variant, corruption-major."""
    names = parse_corruptions(names) if isinstance(names, str) else tuple(names)
    levels = parse_severities(severities) if isinstance(severities, str) else tuple(severities)
    return [Corruption(n, s, protocol) for n in names for s in levels]
