"""Miniature copies of the released data layouts, made from real photographs.

Every builder writes a small, deterministic tree in the layout the real benchmark ships in
(ImageNet-style wnid folders, ImageNet-C, ImageNet-9, CIFAR-10-C, a Hugging Face hub parquet
dataset), with crops of the photographs that ship in scikit-image, and returns the
``--sslrobust-data`` spec (and extra options) that reads it. Used by test_real_layouts.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

# ImageNet-1k synset ids matched to a photograph that shows that class.
IMAGENET_CLASSES: tuple[tuple[str, str], ...] = (
    ("n02123045", "chelsea"),  # tabby cat
    ("n07920052", "coffee"),  # espresso
    ("n04266014", "rocket"),  # space shuttle
)
# The released ImageNet-9 folder names (all nine, so an ImageNet-1k head reads them out),
# each with the photograph its images are cut from.
IN9_CLASSES: tuple[tuple[str, str], ...] = (
    ("00_dog", "chelsea"),
    ("01_bird", "colorwheel"),
    ("02_wheeled vehicle", "rocket"),
    ("03_reptile", "immunohistochemistry"),
    ("04_carnivore", "cat"),
    ("05_insect", "hubble_deep_field"),
    ("06_musical instrument", "coffee"),
    ("07_primate", "astronaut"),
    ("08_fish", "retina"),
)
# CIFAR-10 label indices (airplane, cat, ship) and the photograph for each.
CIFAR_CLASSES: tuple[tuple[int, str], ...] = ((0, "rocket"), (3, "chelsea"), (8, "coffee"))
HF_CLASSES: tuple[tuple[str, str], ...] = (
    ("cat", "chelsea"),
    ("coffee", "coffee"),
    ("rocket", "rocket"),
)
IN9_VARIANTS = (
    "only_fg",
    "no_fg",
    "only_bg_b",
    "only_bg_t",
    "mixed_same",
    "mixed_rand",
    "mixed_next",
)
SIZE = 64


def photograph(name: str) -> np.ndarray:
    """A scikit-image photograph as uint8 HxWx3."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def crops(name: str, count: int, size: int = SIZE, seed: int = 0) -> list[np.ndarray]:
    """``count`` different square crops of one photograph, resized to ``size`` px."""
    image = photograph(name)
    height, width = image.shape[:2]
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        side = int(min(height, width) * (0.55 + 0.15 * (k % 3)))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = image[top : top + side, left : left + side]
        if k % 2:
            crop = crop[:, ::-1]
        resized = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR)
        out.append(np.asarray(resized))
    return out


def save_jpeg(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=95)


def _class_images(
    classes: Sequence[tuple[object, str]], per_class: int, size: int = SIZE
) -> list[list[np.ndarray]]:
    return [crops(photo, per_class, size, seed=i) for i, (_, photo) in enumerate(classes)]


# ImageNet-style train/val folders ----------------------------------------------------------


def write_imagefolder(root: Path, train: int = 6, val: int = 4) -> Path:
    """``root/train/<wnid>/<wnid>_N.JPEG`` and ``root/val/<wnid>/ILSVRC2012_val_N.JPEG``."""
    for (wnid, _), images in zip(
        IMAGENET_CLASSES, _class_images(IMAGENET_CLASSES, train + val), strict=True
    ):
        for k, image in enumerate(images[:train]):
            save_jpeg(image, root / "train" / wnid / f"{wnid}_{k}.JPEG")
        for k, image in enumerate(images[train:]):
            save_jpeg(image, root / "val" / wnid / f"ILSVRC2012_val_{wnid[1:]}{k:02d}.JPEG")
    return root


# ImageNet-C ---------------------------------------------------------------------------------


def write_imagenet_c(root: Path, clean: Path, per_class: int = 2, classes: int = 2) -> None:
    """``root/<corruption>/<1..5>/<wnid>/<file>`` for the 15 corruptions x 5 severities made
    by imagecorruptions from the clean images written to ``clean/<wnid>/<file>``."""
    from imagecorruptions import corrupt, get_corruption_names

    chosen = IMAGENET_CLASSES[:classes]
    for (wnid, _), images in zip(chosen, _class_images(chosen, per_class, size=SIZE), strict=True):
        for k, image in enumerate(images):
            name = f"ILSVRC2012_val_{wnid[1:]}{k:02d}.JPEG"
            save_jpeg(image, clean / wnid / name)
            for corruption in get_corruption_names():
                for severity in range(1, 6):
                    corrupted = corrupt(image, corruption_name=corruption, severity=severity)
                    save_jpeg(
                        np.asarray(corrupted, dtype=np.uint8),
                        root / corruption / str(severity) / wnid / name,
                    )


# ImageNet-9 ---------------------------------------------------------------------------------


def ellipse_mask(size: int, index: int) -> np.ndarray:
    """A boolean foreground mask: an ellipse whose centre and axes move with ``index``."""
    rng = np.random.default_rng(100 + index)
    cy, cx = rng.uniform(0.4, 0.6, size=2) * size
    ry, rx = rng.uniform(0.25, 0.35, size=2) * size
    yy, xx = np.mgrid[0:size, 0:size]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _background(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with its foreground filled from a shifted copy (tiled background)."""
    shifted = np.roll(image, image.shape[1] // 2, axis=1)
    return np.where(mask[..., None], shifted, image)


def write_in9(root: Path, train: int = 3, val: int = 2) -> Path:
    """``root/original/{train,val}/<class>/*.JPEG``, the seven released variants
    ``root/<variant>/val/<class>/*.JPEG`` and ``root/fg_mask/val/<class>/<stem>.npy``."""
    per_class = _class_images(IN9_CLASSES, train + val)
    names = [name for name, _ in IN9_CLASSES]
    vals = [images[train:] for images in per_class]
    masks = [[ellipse_mask(SIZE, c * 10 + k) for k in range(val)] for c in range(len(names))]
    backgrounds = [
        [_background(image, mask) for image, mask in zip(vals[c], masks[c], strict=True)]
        for c in range(len(names))
    ]
    rng = np.random.default_rng(9)
    for c, name in enumerate(names):
        for k, image in enumerate(per_class[c][:train]):
            save_jpeg(image, root / "original" / "train" / name / f"train_{c}_{k}.JPEG")
        for k, image in enumerate(vals[c]):
            file = f"val_{c}_{k}.JPEG"
            mask = masks[c][k]
            save_jpeg(image, root / "original" / "val" / name / file)
            (root / "fg_mask" / "val" / name).mkdir(parents=True, exist_ok=True)
            np.save(root / "fg_mask" / "val" / name / f"val_{c}_{k}.npy", mask)
            fg = mask[..., None]
            same = backgrounds[c][(k + 1) % val]
            rand_class = int(rng.integers(0, len(names)))
            rand = backgrounds[rand_class][int(rng.integers(0, val))]
            nxt = backgrounds[(c + 1) % len(names)][k]
            box = np.zeros_like(mask)
            rows, cols = np.nonzero(mask)
            box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
            variants = {
                "only_fg": np.where(fg, image, 0),
                "no_fg": np.where(fg, 0, image),
                "only_bg_b": np.where(box[..., None], 0, image),
                "only_bg_t": backgrounds[c][k],
                "mixed_same": np.where(fg, image, same),
                "mixed_rand": np.where(fg, image, rand),
                "mixed_next": np.where(fg, image, nxt),
            }
            for variant in IN9_VARIANTS:
                save_jpeg(variants[variant].astype(np.uint8), root / variant / "val" / name / file)
    return root


# CIFAR-10-C -------------------------------------------------------------------------------


def _records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10's binary layout: one label byte, then the R, G and B planes row-major."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1).tobytes()


def write_cifar_c(
    root: Path,
    corruptions: Sequence[str] | None = None,
    test_per_class: int = 4,
    train_per_class: int = 10,
) -> tuple[Path, Path]:
    """``root/CIFAR-10-C/<corruption>.npy`` (5*N rows, severity 1 first) and ``labels.npy``,
    ``root/clean_test.npy`` (the N clean images) and ``root/cifar-10-batches-bin`` with
    ``data_batch_1..5.bin``. Returns (clean file, train folder)."""
    from imagecorruptions import corrupt, get_corruption_names

    per_class = _class_images(CIFAR_CLASSES, test_per_class + train_per_class, size=32)
    test = np.stack([img for images in per_class for img in images[:test_per_class]])
    test_labels = np.repeat([label for label, _ in CIFAR_CLASSES], test_per_class)
    train = np.stack([img for images in per_class for img in images[test_per_class:]])
    train_labels = np.repeat([label for label, _ in CIFAR_CLASSES], train_per_class)
    order = np.random.default_rng(1).permutation(len(train))
    train, train_labels = train[order], train_labels[order]

    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    np.save(folder / "labels.npy", np.tile(test_labels, 5).astype(np.uint8))
    for corruption in corruptions or get_corruption_names():
        rows = [
            np.asarray(corrupt(image, corruption_name=corruption, severity=s), dtype=np.uint8)
            for s in range(1, 6)
            for image in test
        ]
        np.save(folder / f"{corruption}.npy", np.stack(rows))
    clean = root / "clean_test.npy"
    np.save(clean, test)
    batches = root / "cifar-10-batches-bin"
    batches.mkdir()
    for b, part in enumerate(np.array_split(np.arange(len(train)), 5)):
        (batches / f"data_batch_{b + 1}.bin").write_bytes(_records(train[part], train_labels[part]))
    (batches / "test_batch.bin").write_bytes(_records(test, test_labels))
    (batches / "batches.meta.txt").write_text(
        "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n"
    )
    return clean, batches


# Hugging Face parquet --------------------------------------------------------------------


def write_hf_parquet(root: Path, train: int = 6, test: int = 4) -> Path:
    """The hub's parquet layout: ``root/data/{train,test}-00000-of-00001.parquet`` with an
    ``Image`` column and a ``ClassLabel`` column, written by the ``datasets`` library."""
    import datasets

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[n for n, _ in HF_CLASSES])}
    )
    per_class = _class_images(HF_CLASSES, train + test)
    (root / "data").mkdir(parents=True)
    for split, part in (("train", slice(0, train)), ("test", slice(train, train + test))):
        images, labels = [], []
        for label, class_images in enumerate(per_class):
            for image in class_images[part]:
                images.append(Image.fromarray(image))
                labels.append(label)
        ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
        ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root
