"""Images per second from JPEG files on disk to a batch on the device, against the forward pass.

Writes ``--images`` JPEG files (224 px crops of the photographs that ship in scikit-image) in
the released ImageNet-C layout (``<corruption>/<severity>/<wnid>/<file>`` beside the clean
``<wnid>/<file>``), opens them as the plugin does (``imagenet-c:``), and measures in one run:

- the loader alone: the batches ``features.extract.load_batches`` gives the forward pass
  (decode, resize/crop, normalise, collate; pinned and copied to the device), for 0 (one
  loader thread), 1, 2, ... ``--max-workers`` loader processes, with ``--decode cpu`` (PIL
  in the loader) and, on CUDA, ``gpu`` (torchvision's nvJPEG decoder on the device);
- the bare forward pass of the model on batches already on the device.

Prints each loader rate and its ratio to the forward's: below 1 a run of this model on these
files is loader-bound. Run from the repo root:

    python benchmarks/bench_loader.py [--images 256] [--max-workers N] [--device auto]

The model is a randomly initialised timm ViT-S/16 at 224 px (``--model``: any timm name;
random weights run at the same rate as trained ones).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

WNIDS = ("n02123045", "n07920052", "n04266014", "n01440764")
PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")


def write_released(root: Path, images: int, size: int) -> Path:
    """``images`` JPEGs per layout: clean ``root/val`` and ``root/c/gaussian_noise/3``."""
    import layout_builders as lb

    per_class = -(-images // len(WNIDS))
    for wnid, photo in zip(WNIDS, PHOTOS, strict=True):
        for k, image in enumerate(lb.crops(photo, per_class, size=size, seed=len(photo))):
            name = f"ILSVRC2012_val_{wnid[1:]}{k:03d}.JPEG"
            lb.save_jpeg(image, root / "val" / wnid / name)
            lb.save_jpeg(image, root / "c" / "gaussian_noise" / "3" / wnid / name)
    return root


def backbone_of(name: str, device: torch.device):  # type: ignore[no-untyped-def]
    import timm

    from pytest_sslrobust.backbones.base import Backbone, Preprocessing

    model = timm.create_model(name, pretrained=False)
    config = timm.data.resolve_model_data_config(model)
    preprocessing = Preprocessing.from_data_config(config, None)
    backbone = Backbone(
        model,
        spec=f"timm:{name}",
        name=name,
        architecture=name,
        preprocessing=preprocessing,
        weights="random",
    )
    return backbone.to(device)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_rate(backbone, source, indices, batch_size: int, workers: int, decode: str) -> float:  # type: ignore[no-untyped-def]
    from pytest_sslrobust.features.extract import load_batches

    device = backbone.device
    started = time.perf_counter()
    count = 0
    for batch, _ in load_batches(
        backbone, source, indices, batch_size=batch_size, workers=workers, decode=decode
    ):
        on_device = batch.to(device, non_blocking=device.type == "cuda" and batch.is_pinned())
        count += len(on_device)
    synchronise(device)
    return count / (time.perf_counter() - started)


def forward_rate(backbone, batch_size: int, batches: int) -> float:  # type: ignore[no-untyped-def]
    size = backbone.preprocessing.input_size
    batch = torch.randn(batch_size, 3, size, size, device=backbone.device)
    backbone.forward(batch)  # warm-up (allocator, cuDNN choice)
    synchronise(backbone.device)
    started = time.perf_counter()
    for _ in range(batches):
        backbone.forward(batch)
    synchronise(backbone.device)
    return batch_size * batches / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=224, help="pixels of the JPEG files")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--forward-batches", type=int, default=4)
    parser.add_argument("--max-workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="vit_small_patch16_224")
    args = parser.parse_args()

    from pytest_sslrobust.data.sources import imagenet_c
    from pytest_sslrobust.session import usable_cores

    cores = usable_cores()
    wanted = args.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(wanted)
    most = args.max_workers if args.max_workers is not None else cores
    backbone = backbone_of(args.model, device)
    print(
        f"bench_loader: {args.images} JPEGs of {args.size} px, batch {args.batch_size}, "
        f"{args.model} (random weights) on {device}, {cores} usable cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads"
    )
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as scratch:
        root = write_released(Path(scratch), args.images, args.size)
        dataset = imagenet_c(root / "c", root / "val")
        source = dataset.released["gaussian_noise-s3"]["test"]
        indices = np.arange(min(args.images, len(source)))
        forward = forward_rate(backbone, args.batch_size, args.forward_batches)
        print(f"bare forward: {forward:.1f} img/s")
        decodes = ["cpu", "gpu"] if device.type == "cuda" else ["cpu"]
        print(f"{'decode':>6} {'workers':>7} {'loader img/s':>13} {'loader/forward':>15}")
        for decode in decodes:
            for workers in range(0, most + 1):
                rate = loader_rate(backbone, source, indices, args.batch_size, workers, decode)
                verdict = "loader-bound" if rate < forward else "forward-bound"
                print(f"{decode:>6} {workers:>7} {rate:>13.1f} {rate / forward:>14.2f}x  {verdict}")
    if os.environ.get("OMP_NUM_THREADS"):
        print(f"(OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")


if __name__ == "__main__":
    main()
