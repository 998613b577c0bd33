"""The torch corruption backend against imagecorruptions: speed and fidelity, in one run.

Speed: the full 19 x 5 sweep over one batch of ``--batch`` (default 16) 224x224 photographs
(the scikit-image photographs below, repeated in turn to fill the batch, mirrored on every
second pass). imagecorruptions is timed through ``corruptions.corrupt``, one call per image;
the torch backend through ``torch_corruptions.corrupt_batch``, one call per (corruption,
severity) on the whole batch. Each path is warmed up once per corruption before it is timed
(first calls import and compile: numba's glass blur, torchvision.io's JPEG codec). torch
keeps its default thread count unless ``--threads`` says otherwise; ``--device cuda`` moves
the batch to the GPU and synchronises around every timing.

Fidelity: ``--images`` (default 6) colour photographs shipped with scikit-image, resized to
224x224 (``skimage.transform.resize``, anti-aliased) and ``--seeds`` (default 3) seeds per
image; for every corruption x severity and both backends, the mean absolute pixel change
from the clean image (0..255), the SSIM to the clean image (``structural_similarity``,
``channel_axis=2, data_range=255``), both averaged over images x seeds, and the top-1
agreement of the real-weights efficientnet-lite0 (ImageNet head): the fraction of (image,
seed) whose corrupted argmax is the clean image's. Frost picks one of six frost photographs
per seed and the backends draw differently, so only averages compare, not single seeds.

Timings are of one run on a possibly shared machine: the load average is printed with them
(other jobs on the cores slow torch's two intra-op threads far more than imagecorruptions).
About 7 minutes on 2 idle CPU cores, 15 with other jobs on them. Run from the repo root:
  HF_HUB_OFFLINE=1 python benchmarks/bench_torch_corruptions.py [--batch 16] [--images 6]
  [--seeds 3] [--device cpu] [--threads N] [--corruptions glass_blur,fog] [--skip-speed]
  [--skip-fidelity]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pytest_sslrobust.variants import torch_corruptions
from pytest_sslrobust.variants.corruptions import corrupt
from pytest_sslrobust.vocabulary import ALL, generator_version, parse_corruptions

# Colour photographs of skimage.data that need no download (tried in this order).
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
)
SIZE = 224
SEVERITIES = range(1, 6)
NAMES: list[str] = list(ALL)  # --corruptions


def photographs(limit: int) -> list[tuple[str, np.ndarray]]:
    """Up to ``limit`` skimage photographs as uint8 224x224x3, skipping any not installed."""
    import skimage.data
    from skimage.transform import resize

    found = []
    for name in PHOTOS:
        if len(found) == limit:
            break
        try:
            image = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001 - absent in this skimage, or needs a download
            continue
        if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
            image = image[0]
        if image.ndim != 3 or image.shape[2] != 3:
            continue
        small = resize(image, (SIZE, SIZE), anti_aliasing=True, preserve_range=True)
        found.append((name, np.clip(np.round(small), 0, 255).astype(np.uint8)))
    if not found:
        raise SystemExit("no skimage photographs available offline")
    return found


def to_batch(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous().to(device)


def from_batch(batch: torch.Tensor) -> list[np.ndarray]:
    return list(batch.permute(0, 2, 3, 1).contiguous().cpu().numpy())


def timed(device: torch.device, run: Callable[..., object], *args: object) -> float:
    """Seconds ``run(*args)`` takes, the device synchronised before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def speed(photos: list[np.ndarray], batch_size: int, device: torch.device) -> None:
    # The photographs in turn, mirrored left-right on every second pass through them.
    images = []
    for i in range(batch_size):
        photo = photos[i % len(photos)]
        images.append(np.ascontiguousarray(photo[:, ::-1] if (i // len(photos)) % 2 else photo))
    seeds = list(range(batch_size))
    batch = to_batch(images, device)

    def per_image(name: str, severity: int) -> None:
        for image, seed in zip(images, seeds, strict=True):
            corrupt(image, name, severity, seed)

    print(f"\n## Speed: 19 x 5 sweep, batch of {batch_size} images {SIZE}x{SIZE}, {load()}\n")
    print("| corruption | imagecorruptions, s | torch, s | ratio |")
    print("|---|---:|---:|---:|")
    total_ref = total_torch = 0.0
    for name in NAMES:
        corrupt(images[0], name, 1, 0)  # warm-up: imports, numba compilation
        torch_corruptions.corrupt_batch(batch, name, 1, seeds)  # warm-up
        ref = sum(timed(device, per_image, name, s) for s in SEVERITIES)
        fast = sum(
            timed(device, torch_corruptions.corrupt_batch, batch, name, s, seeds)
            for s in SEVERITIES
        )
        total_ref, total_torch = total_ref + ref, total_torch + fast
        print(f"| {name} | {ref:.2f} | {fast:.2f} | {ref / fast:.2f} |", flush=True)
    print(
        f"| **all 95** | **{total_ref:.1f}** | **{total_torch:.1f}** | "
        f"**{total_ref / total_torch:.2f}** |"
    )
    per = batch_size * 95
    print(
        f"\nimagecorruptions {1e3 * total_ref / per:.1f} ms per corrupted image, torch "
        f"{1e3 * total_torch / per:.1f} ms; ratio (imagecorruptions time / torch time) "
        f"{total_ref / total_torch:.2f} ({load()})"
    )


def fidelity(named: list[tuple[str, np.ndarray]], n_seeds: int, device: torch.device) -> None:
    from skimage.metrics import structural_similarity

    from pytest_sslrobust.backbones.loading import load_backbone

    backbone = load_backbone("efficientnet-lite0").to(device)

    def predict(images: list[np.ndarray]) -> np.ndarray:
        labels = []
        for start in range(0, len(images), 64):
            chunk = backbone.preprocessing.batch(images[start : start + 64])
            logits = backbone.forward(chunk)[1]
            assert logits is not None  # efficientnet-lite0 has its ImageNet head
            labels.append(logits.argmax(1).cpu().numpy())
        return np.concatenate(labels)

    clean = [image for _, image in named]
    # Every (image, seed) pair; seeds differ between images too.
    pairs = [(i, i * n_seeds + k) for i in range(len(clean)) for k in range(n_seeds)]
    clean_of_pair = [clean[i] for i, _ in pairs]
    seeds = [seed for _, seed in pairs]
    clean_labels = predict(clean)[[i for i, _ in pairs]]
    batch = to_batch(clean_of_pair, device)
    print(
        f"\n## Fidelity: {len(clean)} photographs ({', '.join(n for n, _ in named)}) x "
        f"{n_seeds} seeds, {SIZE}x{SIZE}; efficientnet-lite0 ({backbone.weights})\n"
    )
    print(
        "change: mean |corrupted - clean| on 0..255; SSIM to clean; agreement: fraction of "
        "(image, seed) whose top-1 class is the clean image's. ref = imagecorruptions.\n"
    )
    print(
        "| corruption | severity | change ref / torch | SSIM ref / torch | agreement ref / torch |"
    )
    print("|---|---:|---:|---:|---:|")
    rows = []
    for name in NAMES:
        for severity in SEVERITIES:
            ref = [
                corrupt(im, name, severity, sd) for im, sd in zip(clean_of_pair, seeds, strict=True)
            ]
            fast = from_batch(torch_corruptions.corrupt_batch(batch, name, severity, seeds))
            labels = predict(ref + fast)  # one forward pass for both backends' images
            stats = []
            for outputs, agree in ((ref, labels[: len(ref)]), (fast, labels[len(ref) :])):
                change = np.mean(
                    [
                        np.abs(o.astype(np.float64) - c).mean()
                        for o, c in zip(outputs, clean_of_pair, strict=True)
                    ]
                )
                ssim = np.mean(
                    [
                        structural_similarity(c, o, channel_axis=2, data_range=255)
                        for o, c in zip(outputs, clean_of_pair, strict=True)
                    ]
                )
                agreement = float(np.mean(agree == clean_labels))
                stats.append((float(change), float(ssim), agreement))
            (rc, rs, ra), (tc, ts, ta) = stats
            rows.append((name, severity, rc, tc, rs, ts, ra, ta))
            print(
                f"| {name} | {severity} | {rc:.1f} / {tc:.1f} | {rs:.3f} / {ts:.3f} | "
                f"{ra:.2f} / {ta:.2f} |",
                flush=True,
            )
    print("\nLargest deviation per corruption (max over severities, at the severity named):\n")
    print(
        "| corruption | max abs SSIM difference | max abs agreement difference | "
        "max abs change difference |"
    )
    print("|---|---:|---:|---:|")
    for name in NAMES:
        mine = [r for r in rows if r[0] == name]
        ssim = max(mine, key=lambda r: abs(r[4] - r[5]))
        agree = max(mine, key=lambda r: abs(r[6] - r[7]))
        change = max(mine, key=lambda r: abs(r[2] - r[3]))
        print(
            f"| {name} | {abs(ssim[4] - ssim[5]):.3f} (s{ssim[1]}) | "
            f"{abs(agree[6] - agree[7]):.2f} (s{agree[1]}) | "
            f"{abs(change[2] - change[3]):.1f} (s{change[1]}) |"
        )
    for label, ref_at, torch_at, digits in (("SSIM", 4, 5, 3), ("agreement", 6, 7, 2)):
        top = sorted(rows, key=lambda r: -abs(r[ref_at] - r[torch_at]))[:5]
        cells = ", ".join(
            f"{r[0]} s{r[1]} ({r[ref_at]:.{digits}f} ref, {r[torch_at]:.{digits}f} torch)"
            for r in top
        )
        print(f"\nfive largest {label} differences: {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="images in the timed batch")
    parser.add_argument("--images", type=int, default=6, help="photographs for fidelity")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per photograph")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] for the torch backend")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--corruptions", default=",".join(ALL), help="comma-separated names (default: all 19)"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-fidelity", action="store_true")
    args = parser.parse_args()
    NAMES[:] = parse_corruptions(args.corruptions)
    warnings.filterwarnings("ignore")  # imagecorruptions' deprecation warnings, per call
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available to torch")
    if args.threads:
        torch.set_num_threads(args.threads)
    source = Path(torch_corruptions.__file__).read_bytes()
    started = time.perf_counter()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    print(
        f"reference: {generator_version('imagecorruptions')}; torch backend: "
        f"{generator_version('torch')}, torch_corruptions.py sha256 "
        f"{hashlib.sha256(source).hexdigest()[:12]}"
    )
    photos = photographs(len(PHOTOS))  # the speed batch cycles through all of them
    if not args.skip_speed:
        speed([image for _, image in photos], args.batch, device)
        print(f"\n(speed part done at {time.perf_counter() - started:.0f} s)")
    if not args.skip_fidelity:
        fidelity(photos[: args.images], args.seeds, device)
    print(f"\ntotal {time.perf_counter() - started:.0f} s, {load()}")


if __name__ == "__main__":
    main()
