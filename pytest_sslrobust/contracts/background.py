"""The background contract: ImageNet-9 BG-Gap, acc(mixed_same) - acc(mixed_rand)."""

from __future__ import annotations

from typing import Any

from pytest_sslrobust.contracts.accuracy import prediction_array, truth_array
from pytest_sslrobust.contracts.decision import conclude
from pytest_sslrobust.contracts.explain import fmt
from pytest_sslrobust.contracts.inputs import protocol_of
from pytest_sslrobust.contracts.recorded import drop_outcomes
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.background import bg_gap
from pytest_sslrobust.metrics.intervals import accuracy_drop_interval
from pytest_sslrobust.results import ContractResult, run_seed

__all__ = ["assert_bg_gap_below"]


def assert_bg_gap_below(
    acc_mixed_same: Any,
    acc_mixed_rand: Any,
    limit: float,
    *,
    labels: Any = None,
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that the BG-Gap, acc(mixed_same) - acc(mixed_rand), is at most ``limit``.

    Either two summary accuracies, or, with ``labels``, the predictions on both swaps of the
    same images (``sslrobust.predictions("mixed_same", ...)``). The caller's scale is kept
    for summary numbers: fractions give a gap in fractions, percent a gap in points, and
    ``limit`` must be on the same scale (a limit above 1 with two fractional accuracies is
    refused as a likely mix-up); from predictions the gap is in fractions. From
    predictions the result holds each image's correctness under both swaps, so a baseline
    comparison decides it paired, and ``confidence`` gives a paired bootstrap interval.

    Args:
        acc_mixed_same: accuracy on ImageNet-9 mixed_same, or (n,) predicted labels /
            (n, C) logits on it (with ``labels``).
        acc_mixed_rand: the same for mixed_rand, on the same images in the same order.
        limit: the largest acceptable gap, on the accuracies' scale.
        labels: (n,) true labels, or a FeatureSet whose ``.labels`` (and ids) are used;
            given, the first two arguments are predictions.
        label: tells several results of one test apart (default ``"bg_gap"``).
        confidence: with predictions, e.g. 0.95 to decide on the upper end of the paired
            bootstrap interval; two summary numbers have no images to resample (None).
        resamples: bootstrap resamples (with predictions).
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).
    """
    __tracebackhide__ = True
    bound = _checks.number(limit, "limit")
    if labels is not None:
        return _gap_of_predictions(
            acc_mixed_same, acc_mixed_rand, bound, labels, label, confidence, resamples, seed
        )
    for name, given in (("acc_mixed_same", acc_mixed_same), ("acc_mixed_rand", acc_mixed_rand)):
        if not _checks.is_scalar(given):
            raise ValueError(
                f"Expected {name} to be an accuracy, but got {type(given).__name__}; to pass "
                "predictions, give labels= too"
            )
    _checks.no_confidence(
        confidence,
        "two summary accuracies have no images to resample (pass predictions and labels=)",
    )
    value = bg_gap(acc_mixed_same, acc_mixed_rand)
    same, rand = float(acc_mixed_same), float(acc_mixed_rand)
    fractions = max(same, rand) <= 1.0
    if fractions and abs(bound) > 1.0:
        raise ValueError(
            f"Expected limit on the accuracies' scale, but got {bound:g} with fractional "
            f"accuracies {same:g} and {rand:g}; use {bound / 100:g} or pass percent accuracies"
        )
    decimals = 4 if fractions else 2
    rows = [
        ("mixed_same accuracy", fmt(same, decimals), "", "", ""),
        ("mixed_rand accuracy", fmt(rand, decimals), "", "", ""),
    ]
    return conclude(
        "assert_bg_gap_below",
        metric="bg_gap",
        shown="BG-Gap",
        value=value,
        high=bound,
        better="lower",
        label=_checks.name_or_default(label, "bg_gap"),
        decimals=decimals,
        context="accuracy fractions" if fractions else "accuracy points",
        rows=rows,
        details=[{"item": "mixed_same", "value": same}, {"item": "mixed_rand", "value": rand}],
    )


def _gap_of_predictions(
    same_predictions: Any,
    rand_predictions: Any,
    bound: float,
    labels: Any,
    label: str | None,
    confidence: float | None,
    resamples: int,
    seed: int | None,
) -> ContractResult:
    __tracebackhide__ = True
    if abs(bound) > 1.0:
        raise ValueError(
            f"Expected limit in accuracy fractions (predictions give a gap in fractions), but "
            f"got {bound:g}; use {bound / 100:g}"
        )
    level = _checks.confidence(confidence)
    truth = truth_array(labels)
    n = truth.shape[0]
    right_same = prediction_array(same_predictions, "mixed_same predictions", n) == truth
    right_rand = prediction_array(rand_predictions, "mixed_rand predictions", n) == truth
    same, rand = float(right_same.mean()), float(right_rand.mean())
    interval = None
    if level is not None:
        interval = accuracy_drop_interval(
            right_same, right_rand, resamples=resamples, confidence=level, seed=run_seed(seed)
        )
    only_same = int((right_same & ~right_rand).sum())
    only_rand = int((~right_same & right_rand).sum())
    rows = [
        ("mixed_same accuracy", fmt(same, 4), "", "", ""),
        ("mixed_rand accuracy", fmt(rand, 4), "", "", ""),
        ("right only on mixed_same", str(only_same), "", "", f"of {n} images"),
        ("right only on mixed_rand", str(only_rand), "", "", f"of {n} images"),
    ]
    return conclude(
        "assert_bg_gap_below",
        metric="bg_gap",
        shown="BG-Gap",
        value=bg_gap(same, rand),
        high=bound,
        better="lower",
        label=_checks.name_or_default(label, "bg_gap"),
        decimals=4,
        interval=interval,
        context=f"accuracy fractions, n={n}",
        rows=rows,
        protocol=protocol_of(same_predictions, labels),
        details=[
            {"item": "mixed_same", "value": same},
            {"item": "mixed_rand", "value": rand},
            {"item": "right_only_mixed_same", "value": only_same},
            {"item": "right_only_mixed_rand", "value": only_rand},
        ],
        outcomes=drop_outcomes(
            right_same,
            right_rand,
            labels,
            same_predictions,
            names=("mixed_same", "mixed_rand"),
        ),
    )
