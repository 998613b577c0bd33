"""Training the bundled backbones: one contrastive (SimCLR-style), one supervised.

Both share one architecture (timm's ``test_resnet``, 0.37 M parameters, run at
``output_stride=8`` so that the last stage is an 8x8 map at 64 px) and one dataset (the
``train`` split of ``bundled:textured-digits``), so that a comparison between them isolates
the training paradigm, as the studies compare SSL and supervised ResNet-50s. The recipe is
documented in ``docs/bundled-models.md``; run it with::

    python -m pytest_sslrobust.backbones.training simclr --out bundled-simclr.safetensors
    python -m pytest_sslrobust.backbones.training supervised --out bundled-supervised.safetensors

Training is seeded; on one machine and thread count it repeats to the bit, across machines
floating-point reduction order may differ, which is why the committed files, not the script,
are what the fingerprints in ``docs/bundled-models.md`` describe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pytest_sslrobust.backbones.registry import BUNDLED_MEAN, BUNDLED_STD

ARCHITECTURE = "test_resnet"
CREATE_KWARGS: dict[str, Any] = {"output_stride": 8}
INPUT_SIZE = 64
DATASET = "textured-digits"
# The normalisation the aliases' preprocessing repeats at test time.
MEAN, STD = BUNDLED_MEAN, BUNDLED_STD


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that decides the weights, written into the file's metadata."""

    paradigm: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int = 0
    temperature: float = 0.2  # NT-Xent, SimCLR only
    projection_dim: int = 64  # SimCLR only; the projection head is dropped afterwards
    crop_scale: tuple[float, float] = (0.25, 1.0)
    # Background swap (Ryali et al.'s BG_Random): with this probability a view's digit is
    # pasted onto a random crop of the same photographs (exact masks), so that instance
    # discrimination cannot be solved by recognising the background crop.
    background_swap_p: float = 0.0
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    warmup_epochs: int = 0


RECIPES = {
    "simclr": Recipe(
        "simclr",
        epochs=120,
        batch_size=256,
        lr=2e-3,
        weight_decay=1e-4,
        crop_scale=(0.3, 1.0),
        background_swap_p=0.5,
    ),
    "supervised": Recipe(
        "supervised",
        epochs=60,
        batch_size=128,
        lr=2e-3,
        weight_decay=1e-4,
        crop_scale=(0.5, 1.0),
    ),
}


def build_model(num_classes: int = 0, *, seed: int = 0) -> nn.Module:
    """The shared architecture with seeded initial weights."""
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(
            ARCHITECTURE, pretrained=False, num_classes=num_classes, **CREATE_KWARGS
        )


def augmentations(recipe: Recipe) -> Any:
    """The training views: random resized crop, colour jitter, greyscale (no flips: a
    mirrored 2 is not a 2). Operates on uint8 CxHxW tensors; draws from torch's global RNG."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomResizedCrop(INPUT_SIZE, scale=recipe.crop_scale, antialias=True),
            v2.RandomApply([v2.ColorJitter(*recipe.jitter)], p=recipe.jitter_p),
            v2.RandomGrayscale(p=recipe.grayscale_p),
        ]
    )


def training_images(limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``train`` split of the bundled dataset: uint8 (n, 3, 64, 64), labels, masks."""
    from pytest_sslrobust.data.bundled import load_bundled

    split = load_bundled(DATASET).split("train")
    n = len(split) if limit is None else min(limit, len(split))
    items = [split.load(i) for i in range(n)]
    images = np.stack([item.image for item in items])
    labels = np.asarray([item.label for item in items], dtype=np.int64)
    masks = np.stack([np.asarray(item.mask, dtype=bool) for item in items])
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return pixels, torch.from_numpy(labels), torch.from_numpy(masks)


def background_crops(count: int, seed: int) -> torch.Tensor:
    """``count`` uint8 (3, 64, 64) crops of the bundled digits' photographs, no digit on them."""
    from pytest_sslrobust.data.bundled import backgrounds, random_crop

    rng = np.random.default_rng(seed)
    photos = backgrounds()
    crops = [random_crop(rng, photos[int(rng.integers(len(photos)))]) for _ in range(count)]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def _normalise(batch: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (batch.float() / 255.0 - mean) / std


def _views(
    images: torch.Tensor,
    transform: Any,
    masks: torch.Tensor | None = None,
    backgrounds: torch.Tensor | None = None,
    swap_p: float = 0.0,
) -> torch.Tensor:
    if swap_p > 0 and masks is not None and backgrounds is not None:
        other = backgrounds[torch.randint(len(backgrounds), (len(images),))]
        swap = (torch.rand(len(images)) < swap_p).view(-1, 1, 1, 1)
        keep = masks.unsqueeze(1) | ~swap
        images = torch.where(keep, images, other)
    return _normalise(torch.stack([transform(image) for image in images]))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross entropy over 2n views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    n = z1.shape[0]
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, targets)


def train(
    paradigm: str,
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    limit: int | None = None,
    log: Any = None,
) -> tuple[nn.Module, dict[str, str]]:
    """Train one bundled backbone; returns the model (eval mode) and its metadata.

    ``epochs``, ``max_steps`` and ``limit`` shorten the run (tests use them); the recipe's
    values are what the committed weights were trained with.
    """
    if paradigm not in RECIPES:
        raise ValueError(f"unknown paradigm {paradigm!r}; expected one of {sorted(RECIPES)}")
    recipe = RECIPES[paradigm]
    if epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=epochs)
    torch.manual_seed(recipe.seed)
    images, labels, masks = training_images(limit)
    backgrounds = background_crops(4096, recipe.seed) if recipe.background_swap_p else None
    supervised = paradigm == "supervised"
    model = build_model(10 if supervised else 0, seed=recipe.seed)
    projection = (
        None
        if supervised
        else nn.Sequential(
            nn.Linear(model.num_features, 256), nn.ReLU(), nn.Linear(256, recipe.projection_dim)
        )
    )
    params = list(model.parameters()) + (
        [] if projection is None else list(projection.parameters())
    )
    optimiser = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(1, len(images) // recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    if max_steps is not None:
        total = min(total, max_steps)
    warmup = min(recipe.warmup_epochs * steps_per_epoch, total // 2)

    def rate(step: int) -> float:
        if step < warmup:  # linear warm-up, then cosine decay to zero
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total) / max(total - warmup, 1)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    transform = augmentations(recipe)
    model.train()
    started, step, loss_value = time.perf_counter(), 0, float("nan")
    while step < total:
        order = torch.randperm(len(images))
        for index in range(steps_per_epoch):
            if step >= total:
                break
            batch = order[index * recipe.batch_size : (index + 1) * recipe.batch_size]
            if supervised:
                loss = F.cross_entropy(model(_views(images[batch], transform)), labels[batch])
            else:
                assert projection is not None
                p = recipe.background_swap_p
                v1 = _views(images[batch], transform, masks[batch], backgrounds, p)
                v2 = _views(images[batch], transform, masks[batch], backgrounds, p)
                loss = nt_xent(projection(model(v1)), projection(model(v2)), recipe.temperature)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            loss_value = float(loss.detach())
            if log is not None and (step % steps_per_epoch == 0 or step == total):
                log(
                    f"{paradigm}: step {step}/{total} epoch {step // steps_per_epoch} "
                    f"loss {loss_value:.4f} {time.perf_counter() - started:.0f}s"
                )
    model.eval()
    metadata = {
        "recipe": json.dumps(dataclasses.asdict(recipe), sort_keys=True),
        "architecture": ARCHITECTURE,
        "create_kwargs": json.dumps(CREATE_KWARGS, sort_keys=True),
        "dataset": f"bundled:{DATASET}/train ({len(images)} images)",
        "steps": str(step),
        "final_loss": f"{loss_value:.6f}",
        "train_seconds": f"{time.perf_counter() - started:.1f}",
        "threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
    }
    return model, metadata


def save(model: nn.Module, metadata: dict[str, str], path: Path) -> None:
    """Write the backbone's tensors (the projection head is not part of it) as safetensors."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paradigm", choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, required=True, help="safetensors file to write")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--limit", type=int, help="train on the first N images only")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, metadata = train(
        args.paradigm,
        epochs=args.epochs,
        max_steps=args.max_steps,
        limit=args.limit,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    save(model, metadata, args.out)
    print(json.dumps({"out": str(args.out), **metadata}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
