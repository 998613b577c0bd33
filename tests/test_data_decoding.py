"""Pixels and masks are decoded as they are meant, never clipped or thresholded silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_sslrobust.data.base import DataError
from pytest_sslrobust.data.io import load_image, load_mask


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    image = load_image(path)
    assert image.shape == (64, 64, 3)
    np.testing.assert_array_equal(image[..., 0], np.round(ramp / 257.0).astype(np.uint8))
    assert (image == 255).mean() < 0.01  # clipping made 99.6% of the pixels white


@pytest.mark.parametrize("levels", [[0, 1], [0, 255], [0, 7]])
def test_binary_masks_are_read(tmp_path: Path, levels: list[int]) -> None:
    mask = np.zeros((4, 5), np.uint8)
    mask[1:3, 1:4] = levels[1]
    path = tmp_path / "m.png"
    Image.fromarray(mask).save(path)
    np.testing.assert_array_equal(load_mask(path, (4, 5)), mask > 0)


@pytest.mark.parametrize(
    "values", [[0, 128, 255], [10, 255]], ids=["soft-mask", "no-background-zero"]
)
def test_soft_masks_are_refused(tmp_path: Path, values: list[int]) -> None:
    mask = np.array([values * 5][:1] * 3, dtype=np.uint8)[:, :5]
    path = tmp_path / "soft.png"
    Image.fromarray(mask).save(path)
    with pytest.raises(DataError, match="is not binary.*threshold a soft mask"):
        load_mask(path, mask.shape)
