"""The old path of the pixel-space attacks, kept so existing imports work: they live in
``pytest_sslrobust.attacks.gradient`` (they need a model's gradients, so not in ``metrics/``)."""

from __future__ import annotations

from pytest_sslrobust.attacks.gradient import (
    ATTACKS,
    NORMS,
    AttackResult,
    LossFn,
    PixelSpaceModel,
    TensorFn,
    cross_entropy_loss,
    feature_distance_loss,
    feature_drift,
    fgsm,
    from_backbone,
    pgd,
    random_noise,
    robust_accuracy,
)

__all__ = [
    "ATTACKS",
    "NORMS",
    "AttackResult",
    "LossFn",
    "PixelSpaceModel",
    "TensorFn",
    "cross_entropy_loss",
    "feature_distance_loss",
    "feature_drift",
    "fgsm",
    "from_backbone",
    "pgd",
    "random_noise",
    "robust_accuracy",
]
