"""Tiling images into one preview grid (the store picks the images: ``FeatureStore.preview``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def tile(images: Sequence[np.ndarray], columns: int = 8, gap: int = 2) -> np.ndarray:
    """Lay equally sized uint8 HxWx3 images out row by row on a white canvas."""
    if not images:
        raise ValueError("tile needs at least one image")
    height, width = images[0].shape[:2]
    if any(image.shape[:2] != (height, width) for image in images):
        raise ValueError("tile needs images of one size")
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    canvas = np.full(
        (rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3),
        255,
        np.uint8,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        canvas[top : top + height, left : left + width] = image[:, :, :3]
    return canvas
