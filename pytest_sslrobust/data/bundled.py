"""The bundled datasets, made offline from data that ships inside installed packages.

``textured-digits``: handwritten digits composited onto photographs (what the bundled
backbones train on). ``textured-shapes``: filled geometric shapes on other photographs, the
far transfer target of the generalisability study.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import numpy as np

from pytest_sslrobust.data.base import (
    Dataset,
    FunctionSource,
    Item,
    deterministic_split,
    stable_hash,
)
from pytest_sslrobust.vocabulary import BUNDLED_DATASETS

BUNDLED = BUNDLED_DATASETS

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
# Photographs the digits never use, all shipped inside scikit-image (no download). Left out
# on purpose: ``cat`` (the same picture as ``chelsea``), and ``coins``, ``clock``, ``cell``,
# ``logo``, ``shepp_logan_phantom``, ``horse`` and ``checkerboard``, whose discs, ellipses,
# silhouettes and squares would put shapes of the target classes into the background.
_SHAPE_PHOTOS = ("camera", "moon", "page", "text", "microaneurysms", "retina", "motorcycle_left")
# Row/column fractions kept before shrinking: the retina photograph is a disc on black, so
# only the square inside the disc is used (no black corners, no circle edge).
_PHOTO_REGIONS = {"retina": (0.2, 0.8)}
IMAGE_SIZE = 64
PHOTO_SIDE = 160  # the photographs' shorter side after shrinking
DIGIT_SIZE = 52
CORRELATION = 0.9
GENERATOR_VERSION = "1"

SHAPE_CLASSES = ("circle", "ellipse", "rectangle", "triangle")
SHAPES_PER_CLASS = 400
SHAPE_AREA = (250.0, 900.0)  # pixels, drawn uniformly for every class: size says nothing
ELLIPSE_ASPECT = (1.7, 2.6)
RECTANGLE_ASPECT = (1.0, 2.5)
TRIANGLE_JITTER = 0.4  # radians each corner may move from an equilateral triangle's
SHAPES_GENERATOR_VERSION = "1"


def _skimage_data():  # type: ignore[no-untyped-def]
    from skimage import data

    return data


def _library_versions() -> tuple[str, str]:
    from importlib.metadata import version

    return version("scikit-image"), version("numpy")


def _raw_photo(name: str) -> np.ndarray:
    """A photograph exactly as scikit-image ships it."""
    if name == "motorcycle_left":
        return _skimage_data().stereo_motorcycle()[0]
    return getattr(_skimage_data(), name)()


def _photos_digest(names: tuple[str, ...], *arrays: np.ndarray) -> str:
    """The bytes of some input arrays and of the named photographs, as one hex digest."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(array.tobytes())
    for name in names:
        digest.update(_raw_photo(name).tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def backgrounds(names: tuple[str, ...] = _PHOTOS) -> tuple[np.ndarray, ...]:
    """The photographs as uint8 RGB, shrunk so that a 64 px crop shows a scene, not a blur."""
    from skimage import transform

    photos = []
    for name in names:
        photo = _raw_photo(name)
        if name in _PHOTO_REGIONS:
            low, high = _PHOTO_REGIONS[name]
            rows, cols = photo.shape[:2]
            photo = photo[
                round(rows * low) : round(rows * high), round(cols * low) : round(cols * high)
            ]
        if photo.ndim == 2:
            photo = np.repeat(photo[:, :, None], 3, axis=2)
        photo = photo[:, :, :3]
        scale = PHOTO_SIDE / min(photo.shape[:2])
        resized = transform.resize(
            photo,
            (round(photo.shape[0] * scale), round(photo.shape[1] * scale)),
            order=1,
            anti_aliasing=True,
            preserve_range=True,
        )
        photos.append(np.clip(np.round(resized), 0, 255).astype(np.uint8))
    return tuple(photos)


def _item_rng(name: str, item_id: str) -> np.random.Generator:
    """The item's own random generator: the same draws in any process and order."""
    return np.random.default_rng(int(stable_hash(name, item_id)[:16], 16))


def random_crop(rng: np.random.Generator, photo: np.ndarray) -> np.ndarray:
    """An ``IMAGE_SIZE`` square of ``photo`` at a position drawn from ``rng``."""
    top = int(rng.integers(0, photo.shape[0] - IMAGE_SIZE + 1))
    left = int(rng.integers(0, photo.shape[1] - IMAGE_SIZE + 1))
    return photo[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE]


def _colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A saturated colour far from the background's mean, so the object shows on any photo."""
    hue = rng.random()
    colour = np.array([np.cos(2 * np.pi * (hue + k / 3)) for k in range(3)]) * 127.5 + 127.5
    if np.abs(colour - background.mean(axis=(0, 1))).sum() < 150:
        colour = 255.0 - colour
    return colour


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
    rng = _item_rng("textured-digits", item_id)
    photos = backgrounds()
    photo_index = label if correlated and rng.random() < CORRELATION else rng.integers(len(photos))
    background = random_crop(rng, photos[int(photo_index)]).astype(np.float64)
    colour = _colour(rng, background)
    alpha = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    y = int(rng.integers(0, IMAGE_SIZE - DIGIT_SIZE + 1))
    x = int(rng.integers(0, IMAGE_SIZE - DIGIT_SIZE + 1))
    alpha[y : y + DIGIT_SIZE, x : x + DIGIT_SIZE] = _matte(digit)
    image = background * (1 - alpha[:, :, None]) + colour * alpha[:, :, None]
    pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return Item(pixels, label, item_id, alpha > 0.5)


def _shape_pixels(rng: np.random.Generator, label: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of one filled shape of class ``label``, centred in the image.

    Every class draws its area from the same range, so size alone cannot tell them apart.
    """
    from skimage import draw

    centre = IMAGE_SIZE / 2
    area = rng.uniform(*SHAPE_AREA)
    angle = rng.uniform(0, np.pi)
    kind = SHAPE_CLASSES[label]
    if kind == "circle":
        return draw.disk((centre, centre), np.sqrt(area / np.pi))
    if kind == "ellipse":
        aspect = rng.uniform(*ELLIPSE_ASPECT)
        minor = np.sqrt(area / (np.pi * aspect))
        return draw.ellipse(centre, centre, minor * aspect, minor, rotation=angle)
    if kind == "rectangle":
        aspect = rng.uniform(*RECTANGLE_ASPECT)
        half_height = np.sqrt(area / aspect) / 2
        corners = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]]) * half_height * [aspect, 1]
    else:
        turns = np.arange(3) * 2 * np.pi / 3 + rng.uniform(-1, 1, 3) * TRIANGLE_JITTER
        corners = np.stack([np.cos(turns), np.sin(turns)], axis=1)
        (a, b), (c, d) = corners[1:] - corners[0]
        corners *= np.sqrt(area / (abs(a * d - b * c) / 2))
    cos, sin = np.cos(angle), np.sin(angle)
    turned = corners @ np.array([[cos, sin], [-sin, cos]])
    return draw.polygon(centre + turned[:, 0], centre + turned[:, 1])


def _draw_shape(label: int, item_id: str) -> Item:
    rng = _item_rng("textured-shapes", item_id)
    photos = backgrounds(_SHAPE_PHOTOS)
    background = random_crop(rng, photos[int(rng.integers(len(photos)))])
    colour = _colour(rng, background)
    rows, cols = _shape_pixels(rng, label)
    # Move the shape to a random place where all of it is in the picture.
    rows = rows + int(rng.integers(-rows.min(), IMAGE_SIZE - rows.max()))
    cols = cols + int(rng.integers(-cols.min(), IMAGE_SIZE - cols.max()))
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    mask[rows, cols] = True
    pixels = background.copy()
    pixels[mask] = np.round(colour).astype(np.uint8)
    return Item(pixels, label, item_id, mask)


def _bundled_dataset(
    name: str,
    classes: tuple[str, ...],
    labels: np.ndarray,
    ids: list[str],
    make: Callable[[int, bool], Item],
    recipe: tuple[object, ...],
    inputs_digest: str,
    described_by: Callable[[], Dataset],
    biased: bool = False,
) -> Dataset:
    """A bundled dataset whose items ``make(index, correlated)`` builds on demand.

    Splits ``train`` and ``test`` are 70/30 per class by a hash of the id; ``biased-train``
    and ``biased-test`` (when asked for) hold the train and test items again, made with
    ``correlated=True``. Items are
    made on demand, so the fingerprint covers their inputs and the recipe (generator
    version, sizes, library versions that do the drawing and resizing), not their pixels.
    """
    train, test = deterministic_split(labels, ids, test_fraction=0.3, salt=name)

    def source(indices: np.ndarray, correlated: bool) -> FunctionSource:
        return FunctionSource(
            [ids[i] for i in indices], labels[indices], lambda j: make(int(indices[j]), correlated)
        )

    splits = {"train": source(train, False), "test": source(test, False)}
    if biased:
        splits["biased-train"] = source(train, True)
        splits["biased-test"] = source(test, True)
    return Dataset(
        spec=f"bundled:{name}",
        classes=classes,
        splits=splits,
        fingerprint=stable_hash("bundled", name, recipe + (_library_versions(),), inputs_digest),
        has_masks=True,
        label_space=f"bundled:{name}",
        description=" ".join((described_by.__doc__ or "").split()),
    )


def _textured_digits() -> Dataset:
    """1,797 handwritten digits (scikit-learn) in random colours at random places on 64x64
    crops of ten photographs that ship with scikit-image. Exact foreground masks come from
    the digit matte. Splits ``train`` (1,258 items) and ``test`` (539) draw backgrounds
    uniformly; ``biased-train`` and ``biased-test`` hold the train and test digits again with
    class-correlated backgrounds (90% on the class's own photograph), for background-reliance
    studies.
    """
    digits, targets = _digits()
    ids = [f"digit-{i:04d}" for i in range(len(targets))]
    return _bundled_dataset(
        "textured-digits",
        tuple(str(d) for d in range(10)),
        targets,
        ids,
        lambda i, correlated: _compose(digits[i], int(targets[i]), ids[i], correlated),
        (GENERATOR_VERSION, IMAGE_SIZE, DIGIT_SIZE, CORRELATION),
        _photos_digest(_PHOTOS, digits),
        _textured_digits,
        biased=True,
    )


def _textured_shapes() -> Dataset:
    """1,600 filled shapes (400 each of circle, ellipse, rectangle, triangle), drawn with
    scikit-image in random colours, sizes, aspects, orientations and places on 64x64 crops of
    seven scikit-image photographs the digits do not use. The mask is exactly the drawn
    pixels. Splits ``train`` (1,120 items) and ``test`` (480) draw backgrounds uniformly.
    The far transfer target: other objects, other backgrounds, another task.
    """
    labels = np.arange(len(SHAPE_CLASSES) * SHAPES_PER_CLASS, dtype=np.int64) % len(SHAPE_CLASSES)
    ids = [f"shape-{i:04d}" for i in range(len(labels))]
    recipe = (
        SHAPES_GENERATOR_VERSION,
        IMAGE_SIZE,
        PHOTO_SIDE,
        SHAPES_PER_CLASS,
        SHAPE_AREA,
        ELLIPSE_ASPECT,
        RECTANGLE_ASPECT,
        TRIANGLE_JITTER,
        _PHOTO_REGIONS,
    )
    return _bundled_dataset(
        "textured-shapes",
        SHAPE_CLASSES,
        labels,
        ids,
        lambda i, _correlated: _draw_shape(int(labels[i]), ids[i]),
        recipe,
        _photos_digest(_SHAPE_PHOTOS),
        _textured_shapes,
    )


def load_bundled(name: str) -> Dataset:
    """Build a bundled dataset by name: one of ``BUNDLED``."""
    builders = {"textured-digits": _textured_digits, "textured-shapes": _textured_shapes}
    if name not in BUNDLED:
        raise ValueError(f"no bundled dataset {name!r}; have {', '.join(BUNDLED)}")
    return builders[name]()
