"""Adversarial measurements of a backbone on a dataset's store, run once and cached like features.

The attacks themselves (FGSM, PGD, noise; they need the model's gradients) are in
:mod:`pytest_sslrobust.attacks.gradient`; this module picks the items and caches outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from pytest_sslrobust.attacks.gradient import (
    AttackResult,
    feature_drift,
    from_backbone,
    robust_accuracy,
)
from pytest_sslrobust.data.base import stable_hash
from pytest_sslrobust.features.derived import derived_entry, positions

if TYPE_CHECKING:
    from pytest_sslrobust.evaluate import Readout
    from pytest_sslrobust.features.store import FeatureStore

METRICS = ("robust_accuracy", "feature_drift")


def attack_result(
    store: FeatureStore,
    readout: Readout | None,
    eps: Sequence[float],
    *,
    metric: str = "robust_accuracy",
    attack: str = "pgd",
    norm: str = "linf",
    steps: int = 10,
    images: int | None = 128,
    split: str = "test",
) -> AttackResult:
    """``metric`` at each budget in ``eps`` (pixel units, images in [0, 1]) on ``images``
    clean items of ``split`` spread over the run's selection.

    ``robust_accuracy`` attacks the readout (its differentiable layer on the backbone's
    features: the head or the linear probe); ``feature_drift`` is label-free and needs no
    readout. The per-image outcomes are cached under the backbone, the items, the readout's
    layer and every attack setting, so a warm run attacks nothing.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown attack metric {metric!r}; expected one of {METRICS}")
    clean = store.get("original", split=split)
    chosen = store.selection(split)
    picked = positions(len(chosen), images)
    ids = [chosen.ids[int(p)] for p in picked]
    head = columns = None
    layer_digest = None
    if metric == "robust_accuracy":
        if readout is None:
            raise ValueError("robust_accuracy needs a readout to attack")
        head, _ = readout.head_module()
        columns = readout.columns(clean.labels[torch.as_tensor(picked)].numpy())
        layer_digest = stable_hash(
            *(t.detach().cpu().numpy().tobytes() for t in head.state_dict().values())
        )
    settings = {
        "metric": metric,
        "attack": attack,
        "norm": norm,
        "steps": steps,
        "eps": [float(e) for e in eps],
        "seed": store.seed,
        "readout": None if readout is None else readout.params,
        "readout_layer": layer_digest,
        "ids_digest": stable_hash(*ids),
    }

    def compute() -> dict[str, torch.Tensor]:
        pixels = np.stack([store.clean_geometry(chosen.load(int(p))).image for p in picked])
        batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255.0)
        batch = batch.to(store.backbone.device)
        features_fn, _ = from_backbone(store.backbone)
        if metric == "feature_drift":
            result = feature_drift(
                features_fn, batch, eps, attack=attack, norm=norm, steps=steps, seed=store.seed
            )
        else:
            assert head is not None and columns is not None
            layer = head.to(store.backbone.device)

            def logits_fn(x: torch.Tensor) -> torch.Tensor:
                return layer(features_fn(x))

            result = robust_accuracy(
                logits_fn,
                batch,
                torch.as_tensor(columns),
                eps,
                attack=attack,
                norm=norm,
                steps=steps,
                seed=store.seed,
            )
        assert result.per_sample is not None
        return {
            "per_sample": torch.from_numpy(np.ascontiguousarray(result.per_sample)),
            "summary": torch.tensor([result.clean, float(result.steps)], dtype=torch.float64),
            "eps": torch.tensor(result.eps, dtype=torch.float64),
        }

    _, tensors = derived_entry(
        store.cache,
        {"attack_of": clean},
        {"attack": settings},
        compute,
        describe=settings,
        device=torch.device("cpu"),
    )
    per_sample = tensors["per_sample"].numpy()
    # What was attacked, as a contract's protocol: the clean set's, on the attacked images,
    # with every attack setting (the readout's fitted layer differs between models, as
    # their weights do, so it stays in the cache key only).
    protocol = {
        **clean.protocol,
        "ids_digest": settings["ids_digest"],
        "attack": {k: settings[k] for k in ("metric", "attack", "norm", "steps", "eps")},
        "readout": settings["readout"],
    }
    return AttackResult.of_outcomes(
        per_sample,
        tensors["eps"].tolist(),
        metric=metric,
        attack=attack,
        norm=norm,
        steps=int(tensors["summary"][1]),
        clean=float(tensors["summary"][0]),
        ids=ids,
        protocol=protocol,
    )
