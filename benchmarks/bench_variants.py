"""Variant benchmarks: the 19 x 5 corruption sweep through the harness vs the library.

Prints ratios measured in one run; targets are in docs/performance.md. Run from the repo
root:  python benchmarks/bench_variants.py [--images 8]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from pytest_sslrobust.backbones.loading import load_backbone
from pytest_sslrobust.data.bundled import load_bundled
from pytest_sslrobust.features import store as store_module
from pytest_sslrobust.features.cache import FeatureCache
from pytest_sslrobust.features.extract import _collate, _one_thread
from pytest_sslrobust.features.store import FeatureStore
from pytest_sslrobust.variants import ALL, corruption_variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    import imagecorruptions

    backbone = load_backbone("efficientnet-lite0")  # 224 px input
    dataset = load_bundled("textured-digits")
    store = FeatureStore(backbone, dataset, FeatureCache(None), max_images=args.images)
    selection = store.selection("test")
    # The batch is 224 px images (the bundled 64 px items brought to the model's size once),
    # so both sides corrupt the same pixels and the harness's resize step has nothing to do.
    items = [store._geometry(selection.load(i)) for i in range(len(selection))]
    images = [item.image for item in items]
    sweep = corruption_variants("all", range(1, 6))
    transforms = [store._resolve(v, "test")[2] for v in sweep]
    n = len(images) * len(sweep)
    # Warm-up: numba compiles glass blur once per argument type (seeded and unseeded).
    imagecorruptions.corrupt(images[0], 1, "glass_blur")
    transforms[sweep.index(next(v for v in sweep if v.name == "glass_blur"))](items[0])

    start = time.perf_counter()
    for image in images:
        for name in ALL:
            for severity in range(1, 6):
                imagecorruptions.corrupt(image, severity, name)
    direct = time.perf_counter() - start

    def through_harness() -> float:
        start = time.perf_counter()
        for transform in transforms:
            for item in items:
                backbone.preprocessing(transform(item)[0])
        return time.perf_counter() - start

    with_ssim = through_harness()
    real_ssim = store_module._ssim
    store_module._ssim = lambda clean, altered: 0.0
    try:
        without_ssim = through_harness()
    finally:
        store_module._ssim = real_ssim
    print(
        f"[1] {n} corrupted 224 px images: library loop {direct:.2f} s; harness (seeding, "
        f"geometry, normalisation) {without_ssim:.2f} s = {without_ssim / direct:.3f}x "
        f"(target <= 1.10x); with per-item SSIM {with_ssim:.2f} s = {with_ssim / direct:.3f}x"
    )

    from torch.utils.data import DataLoader

    class Pairs:
        """Every (variant, item) of the sweep, as one map-style dataset."""

        def __len__(self) -> int:
            return n

        def __getitem__(self, k: int) -> tuple[torch.Tensor, dict[str, float]]:
            image, measures = transforms[k // len(items)](items[k % len(items)])
            return backbone.preprocessing(image), measures

    timings = {}
    for workers in range(0, (os.cpu_count() or 1) + 1):
        loader = DataLoader(
            Pairs(),  # type: ignore[arg-type]
            batch_size=8,
            num_workers=workers,
            collate_fn=_collate,
            worker_init_fn=_one_thread if workers else None,
            multiprocessing_context="fork" if workers else None,
        )
        start = time.perf_counter()
        for _ in loader:
            pass
        timings[workers] = time.perf_counter() - start
    base = timings[0]
    print(
        "[2] loader processes (0 = in the main process): "
        + ", ".join(f"{w}: {t:.2f} s (speed-up {base / t:.2f}x)" for w, t in timings.items())
        + f"; {torch.get_num_threads()} torch threads, {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
