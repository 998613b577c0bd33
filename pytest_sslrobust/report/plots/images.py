"""Image thumbnails as ``data:`` URIs."""

from __future__ import annotations

import base64
import io

import numpy as np

_IMAGE_FORMATS = {"JPEG": "jpeg", "JPG": "jpeg", "PNG": "png"}


def thumbnail_png(
    image: np.ndarray,
    max_side: int = 96,
    *,
    format: str = "JPEG",
    quality: int = 80,
) -> str:
    """A downscaled copy of an image as a ``data:`` URI for an ``<img src=...>``.

    JPEG by default: a 96 px noisy photo is a few KB, so a grid of 3 models x 19
    corruptions x 5 severities keeps the report small. Never upscales.

    Args:
        image: uint8 array, H x W x 3 (RGB) or H x W (grey).
        max_side: longest side of the thumbnail, in pixels.
        format: "JPEG" or "PNG" (lossless, larger for photos).
        quality: JPEG quality, 1..95 (ignored for PNG).

    Returns:
        ``data:image/jpeg;base64,...`` (or ``image/png``).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got dtype {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must be H x W x 3 (RGB) or H x W (grey), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise ValueError(f"max_side must be a positive int, got {max_side!r}")
    kind = _IMAGE_FORMATS.get(str(format).upper())
    if kind is None:
        raise ValueError(f"format must be 'JPEG' or 'PNG', got {format!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 95:
        raise ValueError(f"quality must be an int in 1..95, got {quality!r}")
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image))
    # thumbnail() keeps the aspect ratio and only ever shrinks; LANCZOS avoids aliasing.
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if kind == "jpeg":
        picture.save(buffer, format="JPEG", quality=quality, optimize=True)
    else:
        picture.save(buffer, format="PNG", optimize=True)
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
