"""Accuracy contracts: top-1 accuracy, its drop under a variant, balanced accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_sslrobust.contracts.decision import conclude
from pytest_sslrobust.contracts.explain import fmt
from pytest_sslrobust.contracts.inputs import protocol_of
from pytest_sslrobust.contracts.recorded import (
    balanced_outcomes,
    correctness_outcomes,
    drop_outcomes,
)
from pytest_sslrobust.features.store import FeatureSet
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.intervals import (
    accuracy_drop_interval,
    balanced_accuracy_interval,
    fraction_correct_interval,
)
from pytest_sslrobust.metrics.readouts import ProbeResult, balanced_accuracy
from pytest_sslrobust.results import ContractResult, run_seed

__all__ = ["assert_accuracy_above", "assert_accuracy_drop_below", "assert_balanced_accuracy_above"]

# Rows of per-class tables shown in a message; the record keeps every class.
_MAX_CLASS_ROWS = 10


def truth_array(labels: Any, n: int | None = None) -> np.ndarray:
    """True labels as a (n,) integer array, from labels or a FeatureSet's labels."""
    __tracebackhide__ = True
    values = labels.labels if isinstance(labels, FeatureSet) else labels
    truth = _checks.labels(values, n, "labels").cpu().numpy()
    if truth.shape[0] < 1:
        raise ValueError("Expected at least one label, but got none")
    return truth


def prediction_array(values: Any, name: str, n: int) -> np.ndarray:
    """Predicted labels: (n,) integers as they are, or the argmax of (n, C) scores."""
    __tracebackhide__ = True
    if isinstance(values, FeatureSet):
        raise ValueError(
            f"Expected {name} to be predicted labels or logits, but got a FeatureSet; pass "
            f"sslrobust.predictions(...) or the set's .logits"
        )
    return _checks.predicted_labels(values, name, n).cpu().numpy()


def _class_rows(
    truth: np.ndarray, correct: np.ndarray, decimals: int
) -> tuple[list[tuple[str, ...]], list[dict[str, Any]]]:
    """Per-class accuracy (recall) rows, worst first; the message shows the worst few."""
    classes, inverse = np.unique(truth, return_inverse=True)
    sizes = np.bincount(inverse)
    hits = np.bincount(inverse, weights=correct.astype(np.float64))
    accuracy = hits / sizes
    order = np.lexsort((classes, accuracy))  # worst first, ties by class id
    rows: list[tuple[str, ...]] = []
    for rank, index in enumerate(order[:_MAX_CLASS_ROWS]):
        mark = "<- worst" if rank == 0 and len(classes) > 1 else ""
        item = f"class {classes[index]} (n={sizes[index]})"
        rows.append((item, fmt(accuracy[index], decimals), "", "", mark))
    if len(order) > _MAX_CLASS_ROWS:
        rows.append((f"... {len(order) - _MAX_CLASS_ROWS} more classes", "", "", "", ""))
    details = [
        {
            "item": f"class {classes[i]}",
            "class": int(classes[i]),
            "n": int(sizes[i]),
            "value": float(accuracy[i]),
        }
        for i in order
    ]
    return rows, details


def assert_accuracy_above(
    predictions: Any,
    labels: Any,
    limit: float,
    *,
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that top-1 accuracy, a fraction in [0, 1], is at least ``limit``.

    Args:
        predictions: (n,) predicted labels or (n, C) logits (the argmax is the prediction).
        labels: (n,) true labels, or a FeatureSet whose ``.labels`` are used.
        limit: the smallest acceptable accuracy, a fraction in [0, 1].
        label: tells several results of one test apart (default ``"accuracy"``).
        confidence: e.g. 0.95 to decide on the lower end of the bootstrap interval.
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).

    Returns:
        The recorded ContractResult; on failure AssertionError shows the worst classes.
    """
    __tracebackhide__ = True
    bound = _checks.fraction(limit, "limit")
    level = _checks.confidence(confidence)
    truth = truth_array(labels)
    correct = prediction_array(predictions, "predictions", truth.shape[0]) == truth
    value = float(correct.mean())
    interval = None
    if level is not None:
        interval = fraction_correct_interval(
            correct, resamples=resamples, confidence=level, seed=run_seed(seed)
        )
    rows, details = _class_rows(truth, correct, 4)
    return conclude(
        "assert_accuracy_above",
        outcomes=correctness_outcomes(correct, labels, predictions),
        metric="accuracy",
        shown="accuracy",
        value=value,
        low=bound,
        better="higher",
        label=_checks.name_or_default(label, "accuracy"),
        decimals=4,
        interval=interval,
        context=f"fraction of {truth.shape[0]} images correct",
        rows=rows,
        protocol=protocol_of(labels, predictions),
        details=details,
    )


def assert_accuracy_drop_below(
    clean: Any,
    altered: Any,
    max_drop: float,
    *,
    labels: Any,
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that accuracy(clean) - accuracy(altered), in fractions, is at most ``max_drop``.

    The drop is in accuracy fractions (0.05 = five percentage points). Both prediction sets
    are of the same images in the same order, so the interval is paired: images resampled
    once for both.

    Args:
        clean: (n,) predicted labels or (n, C) logits on the clean images.
        altered: (n,) predicted labels or (n, C) logits on the altered images.
        max_drop: the largest acceptable drop, a fraction in [-1, 1].
        labels: (n,) true labels, or a FeatureSet whose ``.labels`` are used.
        label: tells several results of one test apart (default ``"accuracy_drop"``).
        confidence: e.g. 0.95 to decide on the upper end of the paired bootstrap interval.
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).
    """
    __tracebackhide__ = True
    bound = _checks.number(max_drop, "max_drop")
    if not -1.0 <= bound <= 1.0:
        raise ValueError(
            f"Expected max_drop in [-1, 1] (a drop in accuracy fractions, 0.05 = 5 points), but "
            f"got {bound:g}"
        )
    level = _checks.confidence(confidence)
    truth = truth_array(labels)
    n = truth.shape[0]
    right_clean = prediction_array(clean, "clean", n) == truth
    right_altered = prediction_array(altered, "altered", n) == truth
    acc_clean, acc_altered = float(right_clean.mean()), float(right_altered.mean())
    value = acc_clean - acc_altered
    interval = None
    if level is not None:
        interval = accuracy_drop_interval(
            right_clean, right_altered, resamples=resamples, confidence=level, seed=run_seed(seed)
        )
    lost = int((right_clean & ~right_altered).sum())
    gained = int((~right_clean & right_altered).sum())
    rows = [
        ("clean accuracy", fmt(acc_clean, 4), "", "", ""),
        ("altered accuracy", fmt(acc_altered, 4), "", "", ""),
        ("became wrong", str(lost), "", "", f"of {n} images"),
        ("became right", str(gained), "", "", f"of {n} images"),
    ]
    details = [
        {"item": "clean", "value": acc_clean},
        {"item": "altered", "value": acc_altered},
        {"item": "became_wrong", "value": lost},
        {"item": "became_right", "value": gained},
    ]
    return conclude(
        "assert_accuracy_drop_below",
        outcomes=drop_outcomes(right_clean, right_altered, labels, altered, clean),
        metric="accuracy_drop",
        shown="accuracy drop",
        value=value,
        high=bound,
        better="lower",
        label=_checks.name_or_default(label, "accuracy_drop"),
        decimals=4,
        interval=interval,
        context=f"accuracy fractions, {n} paired images",
        rows=rows,
        protocol=protocol_of(labels, altered, clean),
        details=details,
    )


def assert_balanced_accuracy_above(
    result_or_predictions: Any,
    limit: float,
    *,
    labels: Any = None,
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that balanced accuracy (mean per-class recall, in [0, 1]) is at least ``limit``.

    Args:
        result_or_predictions: a ProbeResult (e.g. from ``linear_probe_cv``; its mean over
            folds is checked) or (n,) predicted labels / (n, C) logits.
        limit: the smallest acceptable balanced accuracy, a fraction in [0, 1].
        labels: true labels (array or FeatureSet), with predictions only.
        label: tells several results of one test apart (default ``"balanced_accuracy"``).
        confidence: e.g. 0.95 to decide on the lower end of the bootstrap interval over
            images; predictions only (folds are not a sample of images).
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).
    """
    __tracebackhide__ = True
    bound = _checks.fraction(limit, "limit")
    level = _checks.confidence(confidence)
    common = {
        "metric": "balanced_accuracy",
        "low": bound,
        "better": "higher",
        "label": _checks.name_or_default(label, "balanced_accuracy"),
        "decimals": 4,
    }
    if isinstance(result_or_predictions, ProbeResult):
        probe = result_or_predictions
        if labels is not None:
            raise ValueError("Expected labels=None with a ProbeResult (it is already scored)")
        _checks.no_confidence(
            level,
            "a ProbeResult holds fold scores, not per-image predictions to resample; pass "
            "predictions and labels for an interval",
        )
        if probe.metric != "balanced_accuracy":
            raise ValueError(
                f"Expected a ProbeResult of balanced_accuracy, but got metric {probe.metric!r}"
            )
        worst = int(np.argmin(probe.folds)) if probe.folds else -1
        rows = [
            (f"fold {i + 1}", fmt(score, 4), "", "", "<- worst" if i == worst else "")
            for i, score in enumerate(probe.folds)
        ]
        rows.append(("std over folds", fmt(probe.std, 4), "", "", ""))
        details = [{"item": f"fold {i + 1}", "value": s} for i, s in enumerate(probe.folds)]
        return conclude(
            "assert_balanced_accuracy_above",
            shown="balanced accuracy",
            value=probe.mean,
            context=f"{probe.readout}, mean (std) {probe.mean:.4f} ({probe.std:.4f}) over "
            f"{len(probe.folds)} folds",
            rows=rows,
            details=details,
            **common,  # type: ignore[arg-type]
        )
    if labels is None:
        raise ValueError(
            "Expected labels with predictions (or pass a ProbeResult instead), but got None"
        )
    truth = truth_array(labels)
    predicted = prediction_array(result_or_predictions, "predictions", truth.shape[0])
    value = balanced_accuracy(predicted, truth)
    correct = predicted == truth
    interval = None
    if level is not None:
        interval = balanced_accuracy_interval(
            truth, correct, resamples=resamples, confidence=level, seed=run_seed(seed)
        )
    rows, details = _class_rows(truth, correct, 4)
    return conclude(
        "assert_balanced_accuracy_above",
        outcomes=balanced_outcomes(truth, correct, labels, result_or_predictions),
        shown="balanced accuracy",
        value=value,
        interval=interval,
        context=f"mean recall over {len(np.unique(truth))} classes, {truth.shape[0]} images",
        rows=rows,
        protocol=protocol_of(labels, result_or_predictions),
        details=details,
        **common,  # type: ignore[arg-type]
    )
