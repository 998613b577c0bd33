"""Training the bundled backbones: contrastive (SimCLR), redundancy reduction (VICReg) and
supervised.

All share one architecture (timm's ``test_resnet``, 0.37 M parameters, run at
``output_stride=8`` so that the last stage is an 8x8 map at 64 px) and one source of data
(the ``train`` split of ``bundled:textured-digits``: the supervised model sees its fixed
images with their labels, the self-supervised ones an unlimited stream composed from the
same digits and photographs, ``digit_stream.py``), so that a comparison between them
isolates the training paradigm, as the studies compare SSL and supervised ResNet-50s. The
recipes are documented in ``docs/bundled-models.md``; run them with::

    python -m pytest_sslrobust.backbones.training simclr --out bundled-simclr.safetensors
    python -m pytest_sslrobust.backbones.training vicreg --out bundled-vicreg.safetensors
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
    crop_scale: tuple[float, float] = (0.25, 1.0)  # supervised: the fixed images' views
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    warmup_epochs: int = 0
    # Self-supervised recipes train on the procedural stream (digit_stream.py) for ``steps``
    # steps instead of ``epochs`` over the fixed images; the background contrast ramps
    # linearly from ``contrast_ramp[0]`` to ``[1]`` between the fractions ``[2]`` and ``[3]``
    # of the run (flat backgrounds first, so that the digit is the salient thing to learn).
    steps: int = 0
    contrast_ramp: tuple[float, float, float, float] = (1.0, 1.0, 0.0, 0.0)
    warmup_steps: int = 0
    stream: str = ""  # StreamSettings as JSON, recorded for the metadata
    vicreg_weights: tuple[float, float, float] = (25.0, 25.0, 1.0)  # invariance, variance, cov
    expander: tuple[int, ...] = (256, 64)  # projection (SimCLR) or expander (VICReg) widths


_STREAM = '{"rotation_deg": 10.0, "scale": [0.85, 1.1], "shear_deg": 5.0}'
RECIPES = {
    "simclr": Recipe(
        "simclr",
        epochs=0,
        batch_size=128,
        lr=2e-3,
        weight_decay=1e-4,
        temperature=0.2,
        steps=1600,
        warmup_steps=100,
        contrast_ramp=(0.2, 1.0, 0.25, 0.75),
        stream=_STREAM,
        expander=(256, 64),
    ),
    "vicreg": Recipe(
        "vicreg",
        epochs=0,
        batch_size=128,
        lr=2e-3,
        weight_decay=1e-4,
        steps=1600,
        warmup_steps=100,
        contrast_ramp=(0.2, 1.0, 0.25, 0.75),
        stream=_STREAM,
        expander=(512, 512, 512),
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


def _normalise(batch: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (batch.float() / 255.0 - mean) / std


def _views(images: torch.Tensor, transform: Any) -> torch.Tensor:
    return _normalise(torch.stack([transform(image) for image in images]))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross entropy over 2n views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    n = z1.shape[0]
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, targets)


def vicreg_loss(
    z1: torch.Tensor, z2: torch.Tensor, weights: tuple[float, float, float] = (25.0, 25.0, 1.0)
) -> torch.Tensor:
    """VICReg (Bardes et al.): invariance (MSE between the views' embeddings), variance (a
    hinge keeping each dimension's standard deviation at 1 or more, per view) and
    covariance (off-diagonal covariance squared, per view), weighted as in the paper."""
    invariance = F.mse_loss(z1, z2)

    def variance(z: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - torch.sqrt(z.var(dim=0) + 1e-4)).mean()

    def covariance(z: torch.Tensor) -> torch.Tensor:
        centred = z - z.mean(dim=0)
        cov = centred.T @ centred / (len(z) - 1)
        off = cov - torch.diag(torch.diag(cov))
        return off.pow(2).sum() / z.shape[1]

    lam, mu, nu = weights
    return (
        lam * invariance
        + mu * (variance(z1) + variance(z2))
        + nu * (covariance(z1) + covariance(z2))
    )


def _head(recipe: Recipe, width: int) -> nn.Module:
    """SimCLR's projection head (Linear-ReLU-Linear) or VICReg's expander (Linear-BN-ReLU
    blocks, last Linear bare); dropped after training."""
    layers: list[nn.Module] = []
    sizes = (width, *recipe.expander)
    for index, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if index < len(sizes) - 2:
            if recipe.paradigm == "vicreg":
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _schedule(total: int, warmup: int) -> Any:
    def rate(step: int) -> float:
        if step < warmup:  # linear warm-up, then cosine decay to zero
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total) / max(total - warmup, 1)))

    return rate


def _step(optimiser: torch.optim.Optimizer, schedule: Any, loss: torch.Tensor) -> float:
    """One optimisation step on ``loss``; returns its value."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    schedule.step()
    return float(loss.detach())


def background_contrast(recipe: Recipe, step: int, total: int) -> float:
    """The stream's background contrast at ``step`` of ``total`` (the recipe's ramp)."""
    start, end, ramp_from, ramp_to = recipe.contrast_ramp
    fraction = step / max(total, 1)
    if fraction <= ramp_from:
        return start
    if fraction >= ramp_to:
        return end
    return start + (end - start) * (fraction - ramp_from) / (ramp_to - ramp_from)


def _metadata(recipe: Recipe, dataset: str, step: int, loss: float, started: float) -> dict:
    return {
        "recipe": json.dumps(dataclasses.asdict(recipe), sort_keys=True),
        "architecture": ARCHITECTURE,
        "create_kwargs": json.dumps(CREATE_KWARGS, sort_keys=True),
        "dataset": dataset,
        "steps": str(step),
        "final_loss": f"{loss:.6f}",
        "train_seconds": f"{time.perf_counter() - started:.1f}",
        "threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
    }


def _train_stream(
    recipe: Recipe, max_steps: int | None, log: Any
) -> tuple[nn.Module, dict[str, str]]:
    """Self-supervised training on the procedural stream (SimCLR or VICReg)."""
    from pytest_sslrobust.backbones.digit_stream import DigitStream, StreamSettings

    torch.manual_seed(recipe.seed)
    stream = DigitStream(StreamSettings(**json.loads(recipe.stream or "{}")), seed=recipe.seed)
    model = build_model(0, seed=recipe.seed)
    head = _head(recipe, model.num_features)
    params = list(model.parameters()) + list(head.parameters())
    optimiser = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    total = recipe.steps if max_steps is None else min(recipe.steps, max_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, _schedule(total, min(recipe.warmup_steps, total // 2))
    )
    model.train()
    started, loss_value = time.perf_counter(), float("nan")
    every = max(1, total // 24)
    for step in range(1, total + 1):
        instances = stream.instances(recipe.batch_size)
        contrast = background_contrast(recipe, step, total)
        first, second = stream.pair(instances, contrast)
        z1, z2 = head(model(_normalise(first))), head(model(_normalise(second)))
        if recipe.paradigm == "simclr":
            loss = nt_xent(z1, z2, recipe.temperature)
        else:
            loss = vicreg_loss(z1, z2, recipe.vicreg_weights)
        loss_value = _step(optimiser, schedule, loss)
        if log is not None and (step % every == 0 or step == total):
            log(
                f"{recipe.paradigm}: step {step}/{total} loss {loss_value:.4f} "
                f"background contrast {contrast:.2f} {time.perf_counter() - started:.0f}s"
            )
    model.eval()
    dataset = f"procedural stream over bundled:{DATASET}/train ({len(stream)} digit mattes)"
    return model, _metadata(recipe, dataset, total, loss_value, started)


def train(
    paradigm: str,
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    limit: int | None = None,
    log: Any = None,
) -> tuple[nn.Module, dict[str, str]]:
    """Train one bundled backbone; returns the model (eval mode) and its metadata.

    ``epochs``, ``max_steps`` and ``limit`` shorten the run (tests use them; ``epochs`` and
    ``limit`` apply to the supervised recipe, which trains on the fixed images); the
    recipe's values are what the committed weights were trained with.
    """
    if paradigm not in RECIPES:
        raise ValueError(f"unknown paradigm {paradigm!r}; expected one of {sorted(RECIPES)}")
    recipe = RECIPES[paradigm]
    if recipe.steps:
        return _train_stream(recipe, max_steps, log)
    if epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=epochs)
    torch.manual_seed(recipe.seed)
    images, labels, _ = training_images(limit)
    model = build_model(10, seed=recipe.seed)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    steps_per_epoch = max(1, len(images) // recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    if max_steps is not None:
        total = min(total, max_steps)
    warmup = min(recipe.warmup_epochs * steps_per_epoch, total // 2)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(total, warmup))
    transform = augmentations(recipe)
    model.train()
    started, step, loss_value = time.perf_counter(), 0, float("nan")
    while step < total:
        order = torch.randperm(len(images))
        for index in range(steps_per_epoch):
            if step >= total:
                break
            batch = order[index * recipe.batch_size : (index + 1) * recipe.batch_size]
            loss = F.cross_entropy(model(_views(images[batch], transform)), labels[batch])
            loss_value = _step(optimiser, schedule, loss)
            step += 1
            if log is not None and (step % steps_per_epoch == 0 or step == total):
                log(
                    f"{paradigm}: step {step}/{total} epoch {step // steps_per_epoch} "
                    f"loss {loss_value:.4f} {time.perf_counter() - started:.0f}s"
                )
    model.eval()
    dataset = f"bundled:{DATASET}/train ({len(images)} images)"
    return model, _metadata(recipe, dataset, step, loss_value, started)


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
