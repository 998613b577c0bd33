"""Spine benchmarks: harness overhead, warm-cache reruns, and streaming memory.

Prints ratios measured in one run; targets are in docs/performance.md. Run from the repo
root:  python benchmarks/bench_spine.py [--images 256] [--stream-images 20000]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pytest_sslrobust.backbones.loading import load_backbone
from pytest_sslrobust.data.bundled import load_bundled
from pytest_sslrobust.data.sources import cifar_c
from pytest_sslrobust.features.extract import extract

ROOT = Path(__file__).resolve().parents[1]


def overhead(images: int, batch_size: int) -> None:
    """1. End-to-end extraction (decode, preprocess, forward) vs a bare model(x) loop."""
    backbone = load_backbone("efficientnet-lite0")
    dataset = load_bundled("textured-digits")
    split = dataset.split("train")
    indices = np.arange(images)
    premade = [
        backbone.preprocessing.batch([split.load(i).image for i in indices[s : s + batch_size]])
        for s in range(0, images, batch_size)
    ]
    model = backbone.model
    with torch.inference_mode():
        model(premade[0])  # warm-up: allocator, oneDNN kernels
        start = time.perf_counter()
        for batch in premade:
            model.forward_head(model.forward_features(batch), pre_logits=True)
        bare = time.perf_counter() - start
    start = time.perf_counter()
    extract(backbone, split, indices, batch_size=batch_size)
    harness = time.perf_counter() - start
    print(
        f"[1] extraction of {images} images at batch {batch_size}: harness {harness:.2f} s, "
        f"bare model loop {bare:.2f} s, ratio {harness / bare:.3f}x (target <= 1.15x)"
    )


def warm_vs_cold() -> None:
    """2. The example suite cold (empty cache) vs warm (cache filled by the cold run)."""
    with tempfile.TemporaryDirectory() as cache:
        command = [
            sys.executable,
            "-m",
            "pytest",
            "example_suites/",
            "-q",
            "-p",
            "no:randomly",
            f"--sslrobust-cache-dir={cache}",
        ]
        times, images = [], []
        for _ in ("cold", "warm"):
            start = time.perf_counter()
            out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if out.returncode != 0:
                raise SystemExit(f"example suite failed:\n{out.stdout[-3000:]}")
            found = re.search(r"forward passes: \d+ batches, (\d+) images", out.stdout)
            images.append(int(found.group(1)) if found else -1)
    print(
        f"[2] example suite: cold {times[0]:.1f} s ({images[0]} images forwarded), warm "
        f"{times[1]:.1f} s ({images[1]} images forwarded), ratio {times[1] / times[0]:.3f}x "
        "(target <= 0.10x, 0 forward passes warm)"
    )


def _stream_once(count: int) -> None:
    """Child process: extract ``count`` memory-mapped images, print peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as root:
        rng = np.random.default_rng(0)
        rows = count - count % 5
        images = np.lib.format.open_memmap(
            os.path.join(root, "gaussian_noise.npy"), "w+", np.uint8, (rows, 32, 32, 3)
        )
        for start in range(0, rows, 4096):
            stop = min(rows, start + 4096)
            images[start:stop] = rng.integers(0, 256, (stop - start, 32, 32, 3), np.uint8)
        images.flush()
        del images
        np.save(os.path.join(root, "labels.npy"), np.tile(np.arange(10), rows // 10 + 1)[:rows])
        dataset = cifar_c(Path(root))
        backbone = load_backbone("random-resnet18")
        start = time.perf_counter()
        for severity in range(1, 6):
            source = dataset.released_split(f"gaussian_noise-s{severity}", "test")
            extract(backbone, source, np.arange(len(source)), batch_size=256)
        elapsed = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{rows} {elapsed:.2f} {peak:.1f} {backbone.preprocessing.input_size}")


def streaming(count: int) -> None:
    """3. Peak RSS of extracting ``count`` images vs a tenth of them, each in a fresh process.

    If extraction streams, the peak does not grow with the number of images.
    """
    results = []
    for n in (count // 10, count):
        out = subprocess.run(
            [sys.executable, __file__, "--stream-once", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows, elapsed, peak, size = out.stdout.split()[-4:]
        results.append((int(rows), float(elapsed), float(peak), int(size)))
    (small, _, small_peak, size), (large, elapsed, large_peak, _) = results
    materialised = large * 3 * size * size * 4 / 2**20
    print(
        f"[3] streaming: {large} images in {elapsed:.1f} s, peak RSS {large_peak:.0f} MiB vs "
        f"{small_peak:.0f} MiB for {small} images (ratio {large_peak / small_peak:.3f}x); "
        f"the {large} preprocessed images as one float tensor would be {materialised:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--stream-images", type=int, default=20000)
    parser.add_argument("--skip", nargs="*", default=[], choices=["1", "2", "3"])
    parser.add_argument("--stream-once", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream_once:
        _stream_once(args.stream_once)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "1" not in args.skip:
        overhead(args.images, args.batch_size)
    if "2" not in args.skip:
        warm_vs_cold()
    if "3" not in args.skip:
        streaming(args.stream_images)


if __name__ == "__main__":
    main()
