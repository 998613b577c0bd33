"""Pure metrics over features: similarity, corruption error, readouts, geometry, intervals.

The attacks need a model's gradients and live in :mod:`pytest_sslrobust.attacks.gradient`;
their names are still offered here (loaded on first use, PEP 562) for the old import path.
"""

from __future__ import annotations

from pytest_sslrobust.metrics.background import bg_gap
from pytest_sslrobust.metrics.calibration import (
    ReliabilityDiagram,
    confidence,
    expected_calibration_error,
    prediction_confidence,
    reliability_diagram,
)
from pytest_sslrobust.metrics.cca import cca_mean, cca_r2, pwcca, svcca
from pytest_sslrobust.metrics.cka import (
    MinibatchCKA,
    debiased_cka,
    linear_cka,
    minibatch_cka,
    rbf_cka,
)
from pytest_sslrobust.metrics.corruption import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    CorruptionErrors,
    ProtocolMismatch,
    ce,
    errors_from_predictions,
    mce,
    mean_accuracy,
    relative_ce,
    relative_mce,
    unnormalised_mean_error,
)
from pytest_sslrobust.metrics.geometry import (
    alignment,
    cosine_similarities,
    invariance,
    neighbour_chance,
    neighbour_consistency,
    uniformity,
)
from pytest_sslrobust.metrics.readouts import (
    LinearProbe,
    ProbeResult,
    accuracy,
    balanced_accuracy,
    fit_linear_probe,
    knn_accuracy,
    knn_classify,
    linear_probe_cv,
)
from pytest_sslrobust.metrics.similarity import SimilarityMatrix, similarity_matrix
from pytest_sslrobust.metrics.statistics import (
    Interval,
    accuracy_difference_interval,
    accuracy_interval,
    bootstrap,
    cka_difference_interval,
    cka_interval,
    mce_difference_interval,
    mce_interval,
)

__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_ERRORS",
    "AttackResult",
    "CorruptionErrors",
    "Interval",
    "LinearProbe",
    "MinibatchCKA",
    "ProbeResult",
    "ProtocolMismatch",
    "ReliabilityDiagram",
    "SimilarityMatrix",
    "accuracy",
    "accuracy_difference_interval",
    "accuracy_interval",
    "alignment",
    "balanced_accuracy",
    "bg_gap",
    "bootstrap",
    "cca_mean",
    "cca_r2",
    "ce",
    "cka_difference_interval",
    "cka_interval",
    "confidence",
    "cosine_similarities",
    "debiased_cka",
    "errors_from_predictions",
    "expected_calibration_error",
    "feature_drift",
    "fgsm",
    "fit_linear_probe",
    "from_backbone",
    "invariance",
    "knn_accuracy",
    "knn_classify",
    "linear_cka",
    "linear_probe_cv",
    "mce",
    "mce_difference_interval",
    "mce_interval",
    "mean_accuracy",
    "minibatch_cka",
    "neighbour_chance",
    "neighbour_consistency",
    "pgd",
    "prediction_confidence",
    "pwcca",
    "random_noise",
    "rbf_cka",
    "reliability_diagram",
    "relative_ce",
    "relative_mce",
    "robust_accuracy",
    "similarity_matrix",
    "svcca",
    "uniformity",
    "unnormalised_mean_error",
]

# The attack names of the old path, from the gradient layer on first use.
_ATTACKS = frozenset(
    {
        "AttackResult",
        "feature_drift",
        "fgsm",
        "from_backbone",
        "pgd",
        "random_noise",
        "robust_accuracy",
    }
)


def __getattr__(name: str) -> object:
    if name in _ATTACKS:
        from pytest_sslrobust.attacks import gradient

        return getattr(gradient, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
