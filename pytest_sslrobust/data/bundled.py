"""The bundled dataset: handwritten digits composited onto photographs, made offline."""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from pytest_sslrobust.data.base import (
    Dataset,
    FunctionSource,
    Item,
    deterministic_split,
    stable_hash,
)

BUNDLED = ("textured-digits",)

# One photograph per class: in the "biased-train" split most of a class's images sit on its
# own photograph, so background alone predicts the label there (as ImageNet-9's backgrounds
# do); a probe fitted there and scored on "test" (uniform backgrounds) shows the reliance.
_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
    "colorwheel",
)
IMAGE_SIZE = 64
DIGIT_SIZE = 52
CORRELATION = 0.9
GENERATOR_VERSION = "1"


def _skimage_data():  # type: ignore[no-untyped-def]
    from skimage import data

    return data


def _library_versions() -> tuple[str, str]:
    from importlib.metadata import version

    return version("scikit-image"), version("numpy")


@functools.lru_cache(maxsize=1)
def _backgrounds() -> tuple[np.ndarray, ...]:
    """The photographs as uint8 RGB, shrunk so that a 64 px crop shows a scene, not a blur."""
    from skimage import transform

    photos = []
    for name in _PHOTOS:
        photo = getattr(_skimage_data(), name)()
        if photo.ndim == 2:
            photo = np.repeat(photo[:, :, None], 3, axis=2)
        photo = photo[:, :, :3]
        scale = 160 / min(photo.shape[:2])
        resized = transform.resize(
            photo,
            (round(photo.shape[0] * scale), round(photo.shape[1] * scale)),
            order=1,
            anti_aliasing=True,
            preserve_range=True,
        )
        photos.append(np.clip(np.round(resized), 0, 255).astype(np.uint8))
    return tuple(photos)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 1797 8x8 digits as floats in [0, 1], and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.float64) / 16.0, digits.target.astype(np.int64)


def _matte(digit: np.ndarray) -> np.ndarray:
    """An 8x8 digit upsampled to a smooth DIGIT_SIZE alpha matte in [0, 1]."""
    from skimage import transform

    # A zero border before upsampling keeps ink at the 8x8 edge from smearing into a box.
    padded = np.pad(digit, 1)
    matte = transform.resize(padded, (DIGIT_SIZE, DIGIT_SIZE), order=3, mode="constant")
    return np.clip(matte, 0.0, 1.0)


def _compose(digit: np.ndarray, label: int, item_id: str, correlated: bool) -> Item:
    rng = np.random.default_rng(int(stable_hash("textured-digits", item_id)[:16], 16))
    photos = _backgrounds()
    photo_index = label if correlated and rng.random() < CORRELATION else rng.integers(len(photos))
    photo = photos[int(photo_index)]
    top = int(rng.integers(0, photo.shape[0] - IMAGE_SIZE + 1))
    left = int(rng.integers(0, photo.shape[1] - IMAGE_SIZE + 1))
    background = photo[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE].astype(np.float64)
    # A saturated colour far from the background's mean keeps the digit visible on any photo.
    hue = rng.random()
    colour = np.array([np.cos(2 * np.pi * (hue + k / 3)) for k in range(3)]) * 127.5 + 127.5
    if np.abs(colour - background.mean(axis=(0, 1))).sum() < 150:
        colour = 255.0 - colour
    alpha = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    y = int(rng.integers(0, IMAGE_SIZE - DIGIT_SIZE + 1))
    x = int(rng.integers(0, IMAGE_SIZE - DIGIT_SIZE + 1))
    alpha[y : y + DIGIT_SIZE, x : x + DIGIT_SIZE] = _matte(digit)
    image = background * (1 - alpha[:, :, None]) + colour * alpha[:, :, None]
    pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return Item(pixels, label, item_id, alpha > 0.5)


def load_bundled(name: str) -> Dataset:
    """Build a bundled dataset by name (only ``textured-digits`` exists today).

    ``textured-digits``: 1,797 handwritten digits (scikit-learn) in random colours at random
    places on 64x64 crops of ten photographs that ship with scikit-image. Exact foreground
    masks come from the digit matte. Splits ``train`` (1,258 items) and ``test`` (539) draw
    backgrounds uniformly; ``biased-train`` holds the train digits again with class-correlated
    backgrounds (90% on the class's own photograph), for background-reliance studies.
    """
    if name not in BUNDLED:
        raise ValueError(f"no bundled dataset {name!r}; have {', '.join(BUNDLED)}")
    digits, targets = _digits()
    ids = [f"digit-{i:04d}" for i in range(len(targets))]
    train, test = deterministic_split(targets, ids, test_fraction=0.3, salt="textured-digits")

    def source(indices: np.ndarray, correlated: bool) -> FunctionSource:
        return FunctionSource(
            [ids[i] for i in indices],
            targets[indices],
            lambda j: _compose(
                digits[indices[j]], int(targets[indices[j]]), ids[indices[j]], correlated
            ),
        )

    # Items are made on demand, so the fingerprint covers their inputs and the recipe
    # (generator version, sizes, library versions that do the resizing), not their pixels.
    digest = hashlib.sha256(digits.tobytes())
    for photo_name in _PHOTOS:
        digest.update(getattr(_skimage_data(), photo_name)().tobytes())
    recipe = (GENERATOR_VERSION, IMAGE_SIZE, DIGIT_SIZE, CORRELATION, _library_versions())
    return Dataset(
        spec=f"bundled:{name}",
        classes=tuple(str(d) for d in range(10)),
        splits={
            "train": source(train, False),
            "test": source(test, False),
            "biased-train": source(train, True),
        },
        fingerprint=stable_hash("bundled", name, recipe, digest.hexdigest()),
        has_masks=True,
        description=load_bundled.__doc__.split("\n\n")[1].strip() if load_bundled.__doc__ else "",
    )
