"""Decoding image and mask files, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pytest_sslrobust.data.base import DataError, as_rgb_uint8

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MASK_SUFFIXES = (".png", ".npy", ".bmp", ".gif", ".tif", ".tiff")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def load_image(path: Path) -> np.ndarray:
    """Decode an image file fully into uint8 HxWx3; truncated or unreadable files raise."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I;16") or image.mode == "I":
                pixels = _sixteen_bit(np.asarray(image), path, image.mode)
            else:
                if image.mode not in ("RGB", "L", "LA", "RGBA"):
                    image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
                pixels = np.asarray(image)
    except FileNotFoundError:
        raise DataError(f"image file {str(path)!r} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"cannot decode image file {str(path)!r} ({exc}); it is unreadable or truncated: "
            "replace or remove it"
        ) from None
    return as_rgb_uint8(pixels, str(path))


def _sixteen_bit(pixels: np.ndarray, path: Path, mode: str) -> np.ndarray:
    """16-bit samples scaled to 8 bits (x / 257, rounded), not clipped to white."""
    values = pixels.astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(
            f"image file {str(path)!r} has {mode} samples outside 0..65535; convert it to "
            "8 or 16 bits per channel"
        )
    return np.round(values / 257.0).astype(np.uint8)


def load_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Read a binary foreground mask (.npy or an image: 0 = background, one other value =
    foreground) of the given HxW; soft masks are refused rather than thresholded."""
    try:
        if path.suffix.lower() == ".npy":
            mask = np.load(path, allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(path) as image:
                image.load()
                mask = np.asarray(image)
    except FileNotFoundError:
        raise DataError(f"mask file {str(path)!r} does not exist") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read mask file {str(path)!r} ({exc})") from None
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    levels = np.unique(mask)
    if levels.size > 2 or (levels.size == 2 and levels[0] != 0):
        raise DataError(
            f"mask file {str(path)!r} is not binary ({levels.size} levels between "
            f"{levels.min()} and {levels.max()}); foreground masks must be 0 for background "
            "and one value for foreground: threshold a soft mask before using it"
        )
    if mask.ndim != 2:
        raise DataError(f"mask file {str(path)!r} has shape {mask.shape}; expected HxW")
    if tuple(mask.shape) != tuple(shape):
        raise DataError(
            f"mask file {str(path)!r} is {mask.shape[0]}x{mask.shape[1]} but its image is "
            f"{shape[0]}x{shape[1]}; masks must be aligned pixel for pixel with the images"
        )
    return mask > 0
