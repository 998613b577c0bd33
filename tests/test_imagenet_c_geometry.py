"""The ``imagenet-c`` protocol makes the released files' crop: torchvision's own transforms."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from pytest_sslrobust.variants.corruptions import (
    IMAGENET_C_GEOMETRY,
    Corruption,
    imagenet_c_geometry,
)

# Common photograph sizes (ImageNet's 500x375 and 500x333, camera 4:3 and 3:2, portrait,
# square, already at 256 on one side, smaller than the crop) and a seeded spread of others.
SIZES = [(640, 427), (427, 640), (500, 375), (500, 333), (375, 500), (256, 256), (256, 341)]
SIZES += [(341, 256), (224, 224), (200, 150), (1024, 768), (333, 500), (257, 999), (800, 600)]
SIZES += [tuple(int(v) for v in p) for p in np.random.default_rng(0).integers(180, 900, (40, 2))]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_crop_matches_torchvision_resize_and_center_crop(width: int, height: int) -> None:
    hendrycks = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
    image = np.random.default_rng(width * 1000 + height).integers(
        0, 256, (height, width, 3), dtype=np.uint8
    )
    expected = np.asarray(hendrycks(Image.fromarray(image)))
    ours = imagenet_c_geometry(image)
    assert ours.shape == (224, 224, 3)
    np.testing.assert_array_equal(ours, expected)


def test_protocol_records_the_geometry_version() -> None:
    assert Corruption("fog", 3, "imagenet-c").params["geometry"] == IMAGENET_C_GEOMETRY
    assert "geometry" not in Corruption("fog", 3, "on-the-fly").params
