"""Robustness contracts as assertions: each records a ContractResult and explains its failures."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pytest_sslrobust.contracts.facts import METRICS
from pytest_sslrobust.evaluate import Predictions
from pytest_sslrobust.features.store import FeatureSet
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.attacks import AttackResult
from pytest_sslrobust.metrics.background import bg_gap
from pytest_sslrobust.metrics.corruption import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    CorruptionErrors,
    ce,
    mce,
    relative_ce,
    relative_mce,
)
from pytest_sslrobust.metrics.geometry import neighbour_chance, neighbour_consistency
from pytest_sslrobust.metrics.readouts import ProbeResult, balanced_accuracy
from pytest_sslrobust.metrics.similarity import (
    cca_mean,
    cca_r2,
    debiased_cka,
    linear_cka,
    rbf_cka,
)
from pytest_sslrobust.metrics.statistics import (
    Interval,
    accuracy_difference_interval,
    accuracy_interval,
    bootstrap,
    cka_interval,
    mce_interval,
)
from pytest_sslrobust.results import ContractResult, current_test_id, record, run_seed
from pytest_sslrobust.vocabulary import COMMON

__all__ = [
    "assert_accuracy_above",
    "assert_accuracy_drop_below",
    "assert_balanced_accuracy_above",
    "assert_bg_gap_below",
    "assert_cca_between",
    "assert_cka_between",
    "assert_focus_shift_below",
    "assert_foreground_focus_above",
    "assert_mce_below",
    "assert_neighbour_consistency_above",
    "assert_no_regression",
    "assert_relative_mce_below",
    "assert_robust_accuracy_above",
]

_CKA_KERNELS: dict[str, Callable[[Any, Any], float]] = {
    "linear": linear_cka,
    "rbf": rbf_cka,
    "debiased": debiased_cka,
}
_CCA_KINDS: dict[str, Callable[[Any, Any], float]] = {"r2": cca_r2, "mean": cca_mean}
_CCA_SHOWN = {"r2": "CCA R^2", "mean": "mean CCA"}

# Rows of per-class tables shown in a message; the record keeps every class.
_MAX_CLASS_ROWS = 10
# How many of the worst corruptions a failing mCE message points at.
_WORST_MARKED = 3
# Two budgets closer than this are the same eps (floats from 4 / 255 and friends).
_EPS_MATCH = 1e-12
_HEADER = ("item", "obtained", "required", "gap", "")
_SEVERITIES = 5


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _number(value: Any, name: str) -> float:
    """A finite real number (bools and strings are refused: they are always mistakes here)."""
    __tracebackhide__ = True
    scalar = isinstance(value, (int, float, np.integer, np.floating)) or (
        isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0
    )
    if isinstance(value, (bool, np.bool_)) or not scalar:
        raise ValueError(f"Expected {name} to be a finite number, but got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"Expected {name} to be a finite number, but got {number}")
    return number


def _fraction(value: Any, name: str) -> float:
    """A number in [0, 1]; a percent-looking value gets a hint."""
    __tracebackhide__ = True
    number = _number(value, name)
    if not 0.0 <= number <= 1.0:
        hint = f" (did you mean {number / 100:g}?)" if 1.0 < number <= 100.0 else ""
        raise ValueError(
            f"Expected {name} to be a fraction in [0, 1], but got {number:g}{hint}; accuracies "
            f"here are fractions of images, not percent"
        )
    return number


def _confidence(value: Any) -> float | None:
    __tracebackhide__ = True
    if value is None:
        return None
    level = _number(value, "confidence")
    if not 0.0 < level < 1.0:
        raise ValueError(
            f"Expected confidence in the open interval (0, 1), e.g. 0.95, but got {level:g}"
        )
    return level


def _label(value: Any, default: str) -> str:
    __tracebackhide__ = True
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise ValueError(f"Expected label to be a non-empty string or None, but got {value!r}")
    return value


def _range(low: Any, high: Any) -> tuple[float, float]:
    __tracebackhide__ = True
    lo, hi = _number(low, "low"), _number(high, "high")
    if lo > hi:
        raise ValueError(f"Expected low <= high, but got low={lo:g} and high={hi:g}")
    return lo, hi


def _no_interval(confidence: Any, why: str) -> None:
    __tracebackhide__ = True
    if confidence is not None:
        raise ValueError(f"Expected confidence=None: {why}")


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _protocol(*inputs: Any) -> dict[str, Any]:
    """The protocol of the first input that carries one (FeatureSet, CorruptionErrors, the
    ``Predictions`` of ``sslrobust.predictions``); empty for bare arrays."""
    for value in inputs:
        if isinstance(value, (FeatureSet, CorruptionErrors, Predictions)):
            return dict(value.protocol)
    return {}


def _features(value: Any) -> Any:
    return value.features if isinstance(value, FeatureSet) else value


def _truth(labels: Any, n: int | None = None) -> np.ndarray:
    __tracebackhide__ = True
    values = labels.labels if isinstance(labels, FeatureSet) else labels
    truth = _checks.labels(values, n, "labels").cpu().numpy()
    if truth.shape[0] < 1:
        raise ValueError("Expected at least one label, but got none")
    return truth


def _predicted(values: Any, name: str, n: int) -> np.ndarray:
    """Predicted labels: (n,) integers as they are, or the argmax of (n, C) scores."""
    __tracebackhide__ = True
    if isinstance(values, FeatureSet):
        raise ValueError(
            f"Expected {name} to be predicted labels or logits, but got a FeatureSet; pass "
            f"sslrobust.predictions(...) or the set's .logits"
        )
    if _checks.as_tensor(values, name).ndim == 2:
        scores = _checks.features(values, name, min_rows=1)
        if scores.shape[0] != n:
            raise ValueError(f"Expected {n} rows of {name}, but got {scores.shape[0]}")
        return scores.argmax(dim=1).cpu().numpy()
    return _checks.labels(values, n, name).cpu().numpy()


def _correctness(errors: Any, helper: str) -> Mapping[str, np.ndarray]:
    """Per-image correctness of the 15 common corruptions, or a ValueError saying why not."""
    __tracebackhide__ = True
    correct = errors.correct if isinstance(errors, CorruptionErrors) else None
    missing = [name for name in COMMON if name not in (correct or {})]
    if correct is None or missing:
        what = (
            f"it has none for: {', '.join(missing)}"
            if correct is not None
            else f"got a {type(errors).__name__} without it"
        )
        raise ValueError(
            f"Expected errors with per-image correctness (errors.correct) for the 15 common "
            f"corruptions: {helper}(confidence=...) resamples images, which a table of error "
            f"rates alone cannot do; build it with sslrobust.corruption_errors() or "
            f"errors_from_predictions(), but {what}"
        )
    return correct


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each image occurs in each resample, (k, n): means over images become matmuls."""
    k = indices.shape[0]
    flat = (indices + n * np.arange(k)[:, None]).ravel()
    return np.bincount(flat, minlength=k * n).reshape(k, n).astype(np.float64)


def _scaled(interval: Interval, factor: float, digits: int = 4) -> Interval:
    """The interval in the caller's units (statistics reports accuracies in percent)."""
    return dataclasses.replace(
        interval,
        estimate=interval.estimate * factor,
        low=interval.low * factor,
        high=interval.high * factor,
        digits=digits,
    )


# --------------------------------------------------------------------------------------------
# Messages and the record
# --------------------------------------------------------------------------------------------


def _fmt(value: float, decimals: int | None, extra: int = 0) -> str:
    if decimals is None:
        return f"{value:.{4 + extra}g}"
    return f"{value:.{decimals + extra}f}"


def _signed(value: float, decimals: int | None) -> str:
    return f"{value:+.4g}" if decimals is None else f"{value:+.{decimals}f}"


def _distinct(a: float, b: float, decimals: int | None) -> tuple[str, str]:
    """Two numbers with enough digits that unequal values never print alike ("75.0 > 75.0")."""
    for extra in range(10):
        first, second = _fmt(a, decimals, extra), _fmt(b, decimals, extra)
        if first != second or a == b:
            break
    return first, second


def _required(low: float | None, high: float | None, decimals: int | None) -> str:
    if low is not None and high is not None:
        return f"in [{_fmt(low, decimals)}, {_fmt(high, decimals)}]"
    if high is not None:
        return f"<= {_fmt(high, decimals)}"
    assert low is not None
    return f">= {_fmt(low, decimals)}"


def _gap(lo: float, hi: float, low: float | None, high: float | None, decimals: int | None) -> str:
    """Signed distance of [lo, hi] (a value, or an interval) from the side that decides."""
    if low is not None and high is not None:
        if lo < low:
            return _signed(lo - low, decimals)
        if hi > high:
            return _signed(hi - high, decimals)
        return "inside"
    if high is not None:
        return _signed(hi - high, decimals)
    assert low is not None
    return _signed(lo - low, decimals)


def _summary(
    shown: str,
    value: float,
    low: float | None,
    high: float | None,
    interval: Interval | None,
    decimals: int | None,
) -> str:
    """The one-line reason, worded on the value when the value itself fails."""
    value_fails = (low is not None and value < low) or (high is not None and value > high)
    if low is not None and high is not None:
        (v, lo_text), (_, hi_text) = (
            _distinct(value, low, decimals),
            _distinct(value, high, decimals),
        )
        if value_fails or interval is None:
            return f"{shown} {v} is outside the range [{lo_text}, {hi_text}]"
        ends = f"[{_fmt(interval.low, decimals)}, {_fmt(interval.high, decimals)}]"
        return (
            f"{shown} {v} is not reliably inside the range [{lo_text}, {hi_text}]: its "
            f"{100 * interval.confidence:g}% interval is {ends}"
        )
    if high is not None:
        v, bound = _distinct(value, high, decimals)
        if value_fails or interval is None:
            return f"{shown} {v} is above the limit {bound}"
        return (
            f"{shown} {v} is not reliably below the limit {bound}: the upper end of its "
            f"{100 * interval.confidence:g}% interval is {_fmt(interval.high, decimals)}"
        )
    assert low is not None
    v, bound = _distinct(value, low, decimals)
    if value_fails or interval is None:
        return f"{shown} {v} is below the limit {bound}"
    return (
        f"{shown} {v} is not reliably above the limit {bound}: the lower end of its "
        f"{100 * interval.confidence:g}% interval is {_fmt(interval.low, decimals)}"
    )


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned columns: names left, numbers right, requirements and marks left."""
    table = [_HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
    lines = []
    for row in table:
        cells = (
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].rjust(widths[3]),
            row[4],
        )
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def _interval_record(interval: Interval) -> dict[str, Any]:
    return {
        "estimate": interval.estimate,
        "low": interval.low,
        "high": interval.high,
        "confidence": interval.confidence,
        "resamples": interval.resamples,
        "seed": interval.seed,
    }


def _conclude(
    helper: str,
    *,
    metric: str,
    shown: str,
    value: float,
    better: str,
    label: str,
    decimals: int | None,
    low: float | None = None,
    high: float | None = None,
    interval: Interval | None = None,
    context: str = "",
    rows: Sequence[Sequence[str]] = (),
    notes: Sequence[str] = (),
    summary: str | None = None,
    protocol: Mapping[str, Any] | None = None,
    details: Sequence[Mapping[str, Any]] = (),
    outcomes: Mapping[str, Any] | None = None,
) -> ContractResult:
    """Decide, record, and raise the explained AssertionError on failure."""
    __tracebackhide__ = True
    fact = METRICS.get(metric)
    if fact is not None and fact.direction != better:  # a contract that contradicts the table
        raise RuntimeError(
            f"{helper} records {metric} with better={better!r}, but the metric facts say "
            f"{fact.direction!r} (pytest_sslrobust.contracts.facts)"
        )
    # The decision uses the interval end least favourable to passing: the high end against an
    # upper limit, the low end against a lower limit, both against a range.
    lo, hi = (value, value) if interval is None else (interval.low, interval.high)
    passed = (low is None or lo >= low) and (high is None or hi <= high)
    recorded = dict(protocol or {})
    backbone = recorded.get("backbone")
    result = ContractResult(
        test=current_test_id(),
        name=helper.removeprefix("assert_"),  # the schema's names: mce_below, cka_between
        metric=metric,
        label=label,
        value=float(value),
        passed=bool(passed),
        low=low,
        high=high,
        better=better,
        unit="",
        interval=None if interval is None else _interval_record(interval),
        decided_on="value" if interval is None else "interval",
        model=None if backbone is None else str(backbone),
        protocol=recorded,
        details=tuple(details),
        outcomes=outcomes,
    )
    record(result)
    if passed:
        return result

    required = _required(low, high, decimals)
    table = [(shown, _fmt(value, decimals), required, _gap(value, value, low, high, decimals), "")]
    lines = []
    if interval is not None:
        pct = f"{100 * interval.confidence:g}%"
        ends = f"[{_fmt(interval.low, decimals)}, {_fmt(interval.high, decimals)}]"
        gap = _gap(interval.low, interval.high, low, high, decimals)
        table.append((f"{pct} interval", ends, required, gap, "<- decides"))
        lines.append(
            f"decided on the {pct} bootstrap interval {ends} "
            f"({interval.resamples} resamples, seed {interval.seed})"
        )
    head = summary or _summary(shown, value, low, high, interval, decimals)
    if context:
        head = f"{head} ({context})"
    if label != metric:
        head = f"[{label}] {head}"
    message = [head, *_table([*table, *rows]), *(f"  {line}" for line in [*lines, *notes])]
    raise AssertionError("\n".join(message))


def _correct_outcomes(correct: np.ndarray, labels: Any = None) -> dict[str, Any]:
    """Per-image correctness as a baseline stores it, for paired comparisons; with the
    item ids of a FeatureSet, so that a comparison can name the images that flipped."""
    from pytest_sslrobust.paired import pack_ids, pack_outcomes

    outcomes = {"correct": pack_outcomes(np.asarray(correct, np.bool_)), "n": int(correct.shape[0])}
    ids = getattr(labels, "ids", None) if isinstance(labels, FeatureSet) else None
    if ids is not None and len(ids) == correct.shape[0]:
        outcomes["ids"] = pack_ids(list(ids))
    return outcomes


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
        rows.append((item, _fmt(accuracy[index], decimals), "", "", mark))
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


# --------------------------------------------------------------------------------------------
# Corruption error
# --------------------------------------------------------------------------------------------


def _reference_name(reference: Any) -> str:
    if isinstance(reference, str):
        return reference
    if isinstance(reference, CorruptionErrors):
        return str(reference.protocol.get("backbone", "measured reference"))
    return "given table"


def _ce_rows(
    values: Mapping[str, float], shown: str
) -> tuple[list[tuple[str, ...]], list[dict[str, Any]]]:
    # Rounded for the order, so float noise between equal CEs does not pick the "worst".
    order = sorted(values, key=lambda name: (-round(values[name], 9), name))
    best = round(min(values.values()), 9)
    rows = [
        (
            f"{shown} {name}",
            _fmt(values[name], 1),
            "",
            "",
            # A corruption tied with the best is not "worst", even among the first three.
            "<- worst" if i < _WORST_MARKED and round(values[name], 9) > best else "",
        )
        for i, name in enumerate(order)
    ]
    return rows, [{"item": name, "value": values[name]} for name in order]


def assert_mce_below(
    errors: CorruptionErrors | Mapping[str, Sequence[float]],
    limit: float,
    *,
    reference: Any = "alexnet",
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that the mCE (percent, AlexNet = 100) is at most ``limit``.

    Args:
        errors: a CorruptionErrors (e.g. ``sslrobust.corruption_errors()``) or a mapping
            corruption -> 5 error rates.
        limit: the largest acceptable mCE, in percent.
        reference: ``"alexnet"`` or a reference model's CorruptionErrors (see ``mce``).
        label: tells several results of one test apart (default ``"mce"``).
        confidence: e.g. 0.95 to decide on the upper end of the bootstrap interval over
            images; needs ``errors.correct``.
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).

    Returns:
        The recorded ContractResult; on failure AssertionError lists every common
        corruption's CE, worst first, the three worst marked.
    """
    __tracebackhide__ = True
    bound = _number(limit, "limit")
    level = _confidence(confidence)
    value = mce(errors, reference)
    per_corruption = ce(errors, reference)
    rows, details = _ce_rows({name: per_corruption[name] for name in COMMON}, "CE")
    interval = None
    if level is not None:
        _correctness(errors, "assert_mce_below")
        interval = mce_interval(
            errors,  # type: ignore[arg-type]
            reference,
            resamples=resamples,
            confidence=level,
            seed=run_seed(seed),
        )
    return _conclude(
        "assert_mce_below",
        metric="mce",
        shown="mCE",
        value=value,
        high=bound,
        better="lower",
        label=_label(label, "mce"),
        decimals=1,
        interval=interval,
        context=f"reference: {_reference_name(reference)}",
        rows=rows,
        protocol=_protocol(errors),
        details=details,
    )


def _reference_rates(
    reference: Any, reference_clean_error: float | None
) -> tuple[Mapping[str, Sequence[float]], float]:
    """The reference's table and clean error (after relative_mce has validated both)."""
    if isinstance(reference, str):
        return ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR
    table = reference.errors if isinstance(reference, CorruptionErrors) else reference
    clean = reference_clean_error
    if clean is None and isinstance(reference, CorruptionErrors):
        clean = reference.clean_error
    return table, float(clean)  # type: ignore[arg-type]


def _relative_interval(
    errors: Any,
    clean_error: float | None,
    denominators: np.ndarray,
    level: float,
    resamples: int,
    seed: int,
) -> Interval:
    """Bootstrap relative mCE over images: every cell and the clean error resampled jointly."""
    __tracebackhide__ = True
    correct = _correctness(errors, "assert_relative_mce_below")
    if clean_error is None and errors.clean_correct is None:
        raise ValueError(
            "Expected errors.clean_correct (per-image correctness on the clean images) for a "
            "relative mCE interval, or an explicit clean_error to hold fixed, but got neither"
        )
    n = errors.n
    wrong = 1.0 - np.concatenate([np.asarray(correct[name], np.float64) for name in COMMON])
    clean_wrong = (
        None if clean_error is not None else 1.0 - np.asarray(errors.clean_correct, np.float64)
    )

    def statistic(indices: np.ndarray) -> np.ndarray:
        weights = _counts(indices, n)
        cells = ((weights @ wrong.T) / n).reshape(-1, len(COMMON), _SEVERITIES)
        if clean_wrong is None:
            clean = np.full((weights.shape[0], 1, 1), float(clean_error))  # type: ignore[arg-type]
        else:
            clean = ((weights @ clean_wrong) / n)[:, None, None]
        return 100.0 * ((cells - clean).sum(axis=2) / denominators).mean(axis=1)

    return bootstrap(
        statistic, n, resamples=resamples, confidence=level, seed=run_seed(seed), vectorized=True
    )


def assert_relative_mce_below(
    errors: CorruptionErrors | Mapping[str, Sequence[float]],
    limit: float,
    *,
    clean_error: float | None = None,
    reference: Any = "alexnet",
    reference_clean_error: float | None = None,
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that the relative mCE (percent, AlexNet = 100) is at most ``limit``.

    Args:
        errors: a CorruptionErrors or a mapping corruption -> 5 error rates.
        limit: the largest acceptable relative mCE, in percent.
        clean_error: the model's clean error rate; defaults to ``errors.clean_error``.
        reference: ``"alexnet"`` or a reference model's CorruptionErrors.
        reference_clean_error: the reference's clean error, see ``relative_mce``.
        label: tells several results of one test apart (default ``"relative_mce"``).
        confidence: e.g. 0.95 to decide on the upper end of the bootstrap interval; needs
            ``errors.correct`` and either ``errors.clean_correct`` (resampled with the cells)
            or an explicit ``clean_error`` (held fixed). The reference is held fixed.
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).

    Returns:
        The recorded ContractResult; on failure AssertionError lists every common
        corruption's relative CE, worst first.
    """
    __tracebackhide__ = True
    bound = _number(limit, "limit")
    level = _confidence(confidence)
    value = relative_mce(errors, clean_error, reference, reference_clean_error)
    clean = clean_error if clean_error is not None else errors.clean_error  # type: ignore[union-attr]
    relative = relative_ce(errors, clean_error, reference, reference_clean_error)
    rows, details = _ce_rows(relative, "relative CE")
    interval = None
    if level is not None:
        ref_table, ref_clean = _reference_rates(reference, reference_clean_error)
        denominators = np.array(
            [math.fsum(e - ref_clean for e in ref_table[name]) for name in COMMON]
        )
        interval = _relative_interval(
            errors, clean_error, denominators, level, resamples, run_seed(seed)
        )
    return _conclude(
        "assert_relative_mce_below",
        metric="relative_mce",
        shown="relative mCE",
        value=value,
        high=bound,
        better="lower",
        label=_label(label, "relative_mce"),
        decimals=1,
        interval=interval,
        context=f"reference: {_reference_name(reference)}, clean error {float(clean):.4f}",
        rows=rows,
        protocol=_protocol(errors),
        details=details,
    )


# --------------------------------------------------------------------------------------------
# Representation similarity
# --------------------------------------------------------------------------------------------


def _similarity(
    helper: str,
    x: Any,
    y: Any,
    low: float,
    high: float,
    *,
    fn: Callable[[Any, Any], float],
    metric: str,
    shown: str,
    label: str | None,
    confidence: float | None,
    resamples: int,
    seed: int,
) -> ContractResult:
    __tracebackhide__ = True
    lo, hi = _range(low, high)
    level = _confidence(confidence)
    a, b = _features(x), _features(y)
    value = fn(a, b)
    interval = None
    if level is not None:
        interval = cka_interval(
            a, b, fn, resamples=resamples, confidence=level, seed=run_seed(seed)
        )
    n = int(_checks.as_tensor(a, "x").shape[0])
    rows = [("n", str(n), "", "", ""), ("metric", fn.__name__, "", "", "")]
    details: list[dict[str, Any]] = []
    for name, value_in in (("x", x), ("y", y)):
        if isinstance(value_in, FeatureSet):
            backbone = value_in.protocol.get("backbone", "?")
            rows.append((name, f"{backbone} / {value_in.variant}", "", "", ""))
            details.append({"item": name, "backbone": backbone, "variant": value_in.variant})
    return _conclude(
        helper,
        metric=metric,
        shown=shown,
        value=value,
        low=lo,
        high=hi,
        better="higher",
        label=_label(label, metric),
        decimals=4,
        interval=interval,
        context=f"n={n}",
        rows=rows,
        protocol=_protocol(x, y),
        details=details,
    )


def assert_cka_between(
    x: Any,
    y: Any,
    low: float,
    high: float,
    *,
    kernel: str = "linear",
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that the CKA between two representations of the same images is in [low, high].

    Args:
        x: FeatureSet or (n, d1) array/tensor.
        y: FeatureSet or (n, d2) array/tensor, the same images in the same order.
        low: the smallest acceptable CKA.
        high: the largest acceptable CKA.
        kernel: ``"linear"``, ``"rbf"`` or ``"debiased"`` (linear CKA, unbiased HSIC).
        label: tells several results of one test apart (default ``"cka"``).
        confidence: e.g. 0.95 to require the whole bootstrap interval (rows resampled
            jointly) inside [low, high].
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).
    """
    __tracebackhide__ = True
    if kernel not in _CKA_KERNELS:
        raise ValueError(f"Expected kernel to be one of {tuple(_CKA_KERNELS)}, but got {kernel!r}")
    return _similarity(
        "assert_cka_between",
        x,
        y,
        low,
        high,
        fn=_CKA_KERNELS[kernel],
        metric="cka",
        shown=f"{kernel} CKA",
        label=label,
        confidence=confidence,
        resamples=resamples,
        seed=run_seed(seed),
    )


def assert_cca_between(
    x: Any,
    y: Any,
    low: float,
    high: float,
    *,
    kind: str = "r2",
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that a CCA similarity of two representations is in [low, high].

    Args:
        x: FeatureSet or (n, d1) array/tensor.
        y: FeatureSet or (n, d2) array/tensor, the same images in the same order.
        low: the smallest acceptable value.
        high: the largest acceptable value.
        kind: ``"r2"`` (mean squared canonical correlation) or ``"mean"``.
        label: tells several results of one test apart (default ``"cca"``).
        confidence: e.g. 0.95 to require the whole bootstrap interval inside [low, high].
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).
    """
    __tracebackhide__ = True
    if kind not in _CCA_KINDS:
        raise ValueError(f"Expected kind to be one of {tuple(_CCA_KINDS)}, but got {kind!r}")
    return _similarity(
        "assert_cca_between",
        x,
        y,
        low,
        high,
        fn=_CCA_KINDS[kind],
        metric="cca",
        shown=_CCA_SHOWN[kind],
        label=label,
        confidence=confidence,
        resamples=resamples,
        seed=run_seed(seed),
    )


# --------------------------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------------------------


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
    bound = _fraction(limit, "limit")
    level = _confidence(confidence)
    truth = _truth(labels)
    correct = _predicted(predictions, "predictions", truth.shape[0]) == truth
    value = float(correct.mean())
    interval = None
    if level is not None:
        # statistics reports accuracy in percent; the contract is in fractions.
        interval = _scaled(
            accuracy_interval(correct, resamples=resamples, confidence=level, seed=run_seed(seed)),
            0.01,
        )
    rows, details = _class_rows(truth, correct, 4)
    return _conclude(
        "assert_accuracy_above",
        outcomes=_correct_outcomes(correct, labels),
        metric="accuracy",
        shown="accuracy",
        value=value,
        low=bound,
        better="higher",
        label=_label(label, "accuracy"),
        decimals=4,
        interval=interval,
        context=f"fraction of {truth.shape[0]} images correct",
        rows=rows,
        protocol=_protocol(labels, predictions),
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
    bound = _number(max_drop, "max_drop")
    if not -1.0 <= bound <= 1.0:
        raise ValueError(
            f"Expected max_drop in [-1, 1] (a drop in accuracy fractions, 0.05 = 5 points), but "
            f"got {bound:g}"
        )
    level = _confidence(confidence)
    truth = _truth(labels)
    n = truth.shape[0]
    right_clean = _predicted(clean, "clean", n) == truth
    right_altered = _predicted(altered, "altered", n) == truth
    acc_clean, acc_altered = float(right_clean.mean()), float(right_altered.mean())
    value = acc_clean - acc_altered
    interval = None
    if level is not None:
        interval = _scaled(
            accuracy_difference_interval(
                right_clean,
                right_altered,
                resamples=resamples,
                confidence=level,
                seed=run_seed(seed),
            ),
            0.01,
        )
    lost = int((right_clean & ~right_altered).sum())
    gained = int((~right_clean & right_altered).sum())
    rows = [
        ("clean accuracy", _fmt(acc_clean, 4), "", "", ""),
        ("altered accuracy", _fmt(acc_altered, 4), "", "", ""),
        ("became wrong", str(lost), "", "", f"of {n} images"),
        ("became right", str(gained), "", "", f"of {n} images"),
    ]
    details = [
        {"item": "clean", "value": acc_clean},
        {"item": "altered", "value": acc_altered},
        {"item": "became_wrong", "value": lost},
        {"item": "became_right", "value": gained},
    ]
    return _conclude(
        "assert_accuracy_drop_below",
        metric="accuracy_drop",
        shown="accuracy drop",
        value=value,
        high=bound,
        better="lower",
        label=_label(label, "accuracy_drop"),
        decimals=4,
        interval=interval,
        context=f"accuracy fractions, {n} paired images",
        rows=rows,
        protocol=_protocol(labels, altered, clean),
        details=details,
    )


def _balanced_interval(
    truth: np.ndarray, correct: np.ndarray, level: float, resamples: int, seed: int
) -> Interval:
    """Bootstrap balanced accuracy: per-class recall over the classes present in a resample."""
    classes, inverse = np.unique(truth, return_inverse=True)
    count = len(classes)
    hits = correct.astype(np.float64)

    def statistic(indices: np.ndarray) -> np.ndarray:
        k = indices.shape[0]
        slots = (inverse[indices] + count * np.arange(k)[:, None]).ravel()
        totals = np.bincount(slots, minlength=k * count).reshape(k, count)
        good = np.bincount(slots, weights=hits[indices].ravel(), minlength=k * count)
        present = totals > 0
        recall = np.where(present, good.reshape(k, count) / np.maximum(totals, 1), 0.0)
        # Classes a resample missed do not count, as in sklearn's balanced_accuracy_score.
        return recall.sum(axis=1) / present.sum(axis=1)

    return bootstrap(
        statistic,
        truth.shape[0],
        resamples=resamples,
        confidence=level,
        seed=run_seed(seed),
        vectorized=True,
        digits=4,
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
    bound = _fraction(limit, "limit")
    level = _confidence(confidence)
    common = {
        "metric": "balanced_accuracy",
        "low": bound,
        "better": "higher",
        "label": _label(label, "balanced_accuracy"),
        "decimals": 4,
    }
    if isinstance(result_or_predictions, ProbeResult):
        probe = result_or_predictions
        if labels is not None:
            raise ValueError("Expected labels=None with a ProbeResult (it is already scored)")
        _no_interval(
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
            (f"fold {i + 1}", _fmt(score, 4), "", "", "<- worst" if i == worst else "")
            for i, score in enumerate(probe.folds)
        ]
        rows.append(("std over folds", _fmt(probe.std, 4), "", "", ""))
        details = [{"item": f"fold {i + 1}", "value": s} for i, s in enumerate(probe.folds)]
        return _conclude(
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
    truth = _truth(labels)
    predicted = _predicted(result_or_predictions, "predictions", truth.shape[0])
    value = balanced_accuracy(predicted, truth)
    correct = predicted == truth
    interval = None
    if level is not None:
        interval = _balanced_interval(truth, correct, level, resamples, run_seed(seed))
    rows, details = _class_rows(truth, correct, 4)
    return _conclude(
        "assert_balanced_accuracy_above",
        shown="balanced accuracy",
        value=value,
        interval=interval,
        context=f"mean recall over {len(np.unique(truth))} classes, {truth.shape[0]} images",
        rows=rows,
        protocol=_protocol(labels, result_or_predictions),
        details=details,
        **common,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------------------------
# Geometry, attacks, backgrounds
# --------------------------------------------------------------------------------------------


def _is_score(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    return isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0


def assert_neighbour_consistency_above(
    features_by_variant_or_scores: Mapping[str, Any],
    limit: float,
    *,
    k: int = 10,
    variants: Sequence[str] | None = None,
    label: str | None = None,
    confidence: float | None = None,
) -> ContractResult:
    """Assert that each variant's neighbour consistency (a fraction) is at least ``limit``.

    Args:
        features_by_variant_or_scores: variant -> features (FeatureSet or (n_v, d)), pooled
            for ``neighbour_consistency``; or variant -> an already computed score.
        limit: the smallest acceptable same-variant fraction of the k nearest neighbours.
        k: neighbours per sample (with features only).
        variants: which variants must meet the limit (default all); all are shown.
        label: tells several results of one test apart (default ``"neighbour_consistency"``).
        confidence: not supported (resampling would make duplicated samples each other's
            nearest neighbours); must be None.

    Returns:
        The recorded ContractResult, whose value is the lowest checked score.
    """
    __tracebackhide__ = True
    bound = _fraction(limit, "limit")
    _no_interval(
        confidence,
        "a bootstrap of neighbour consistency would duplicate samples, which become each "
        "other's nearest neighbours",
    )
    given = features_by_variant_or_scores
    if not isinstance(given, Mapping) or not given:
        raise ValueError(
            f"Expected a non-empty mapping variant -> features or variant -> score, but got "
            f"{given!r}"
        )
    kinds = {_is_score(value) for value in given.values()}
    if len(kinds) != 1:
        raise ValueError("Expected either all features or all scores in the mapping, not a mix")
    chance: dict[str, float] = {}
    if kinds == {True}:
        scores = {name: _fraction(value, f"score of {name!r}") for name, value in given.items()}
        protocol: dict[str, Any] = {}
    else:
        features = {name: _features(value) for name, value in given.items()}
        scores = neighbour_consistency(features, k)
        chance = neighbour_chance(features)
        protocol = _protocol(*given.values())
    checked = list(given) if variants is None else list(variants)
    unknown = [name for name in checked if name not in scores]
    if not checked or unknown:
        raise ValueError(
            f"Expected variants among {', '.join(map(str, scores))}, but got "
            f"{', '.join(map(str, unknown)) if unknown else 'none'}"
        )
    value = min(scores[name] for name in checked)
    lowest = min(checked, key=lambda name: scores[name])
    rows = []
    details = []
    for name, score in scores.items():
        is_checked = name in checked
        notes = [f"chance {chance[name]:.4f}"] if name in chance else []
        if is_checked and score < bound:
            notes.append("<- below the limit")
        elif not is_checked:
            notes.append("(not checked)")
        rows.append(
            (
                f"variant {name}",
                _fmt(score, 4),
                f">= {_fmt(bound, 4)}" if is_checked else "",
                _signed(score - bound, 4) if is_checked else "",
                "  ".join(notes),
            )
        )
        row: dict[str, Any] = {"item": name, "value": score, "checked": is_checked}
        if name in chance:
            row["chance"] = chance[name]
        details.append(row)
    context = f"lowest: {lowest}" + (f", k={k}" if chance else "")
    return _conclude(
        "assert_neighbour_consistency_above",
        metric="neighbour_consistency",
        shown="neighbour consistency",
        value=value,
        low=bound,
        better="higher",
        label=_label(label, "neighbour_consistency"),
        decimals=4,
        context=context,
        rows=rows,
        protocol=protocol,
        details=details,
    )


def _eps_text(eps: float) -> str:
    # Budgets are usually k/255: show that form too, it is how papers state them.
    steps = eps * 255.0
    if eps > 0 and abs(steps - round(steps)) < 1e-6:
        return f"{eps:.4g} = {round(steps)}/255"
    return f"{eps:.4g}"


def assert_robust_accuracy_above(
    result: AttackResult,
    limit: float,
    *,
    eps: float,
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that robust accuracy (a fraction) at budget ``eps`` is at least ``limit``.

    Args:
        result: an AttackResult of metric ``"robust_accuracy"`` (from ``robust_accuracy``).
        limit: the smallest acceptable robust accuracy, a fraction in [0, 1].
        eps: the budget to check; must be one of ``result.eps`` (to within 1e-12).
        label: tells several results of one test apart (default ``"robust_accuracy"``).
        confidence: e.g. 0.95 to decide on the lower end of the bootstrap interval; needs
            ``result.per_sample``.
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).
    """
    __tracebackhide__ = True
    bound = _fraction(limit, "limit")
    level = _confidence(confidence)
    if not isinstance(result, AttackResult) or result.metric != "robust_accuracy":
        got = result.metric if isinstance(result, AttackResult) else type(result).__name__
        raise ValueError(f"Expected an AttackResult of robust_accuracy, but got {got!r}")
    budget = _number(eps, "eps")
    matches = [i for i, e in enumerate(result.eps) if abs(e - budget) <= _EPS_MATCH]
    if not matches:
        raise ValueError(
            f"Expected eps to be one of the measured budgets "
            f"{', '.join(f'{e!r}' for e in result.eps)}, but got {budget!r}"
        )
    row = matches[0]
    value = float(result.values[row])
    interval = None
    if level is not None:
        if result.per_sample is None:
            raise ValueError(
                "Expected result.per_sample (per-image correctness) for an interval, but it is None"
            )
        interval = _scaled(
            accuracy_interval(
                result.per_sample[row], resamples=resamples, confidence=level, seed=run_seed(seed)
            ),
            0.01,
        )
    rows = [("clean", _fmt(result.clean, 4), "", "", "")]
    rows += [
        (f"eps {_eps_text(e)}", _fmt(v, 4), "", "", "<- checked" if i == row else "")
        for i, (e, v) in enumerate(zip(result.eps, result.values, strict=True))
    ]
    details = [
        {"item": f"eps {e:g}", "eps": e, "value": v, "checked": i == row}
        for i, (e, v) in enumerate(zip(result.eps, result.values, strict=True))
    ]
    return _conclude(
        "assert_robust_accuracy_above",
        metric="robust_accuracy",
        shown="robust accuracy",
        value=value,
        low=bound,
        better="higher",
        label=_label(label, "robust_accuracy"),
        decimals=4,
        interval=interval,
        context=f"eps {_eps_text(result.eps[row])}; {result.attack}, {result.norm}, "
        f"{result.steps} steps, n={result.n}",
        rows=rows,
        details=details,
    )


def assert_bg_gap_below(
    acc_mixed_same: float,
    acc_mixed_rand: float,
    limit: float,
    *,
    label: str | None = None,
    confidence: float | None = None,
) -> ContractResult:
    """Assert that the BG-Gap, acc(mixed_same) - acc(mixed_rand), is at most ``limit``.

    The caller's scale is kept: fractions give a gap in fractions, percent a gap in points,
    and ``limit`` must be on the same scale (a limit above 1 with two fractional accuracies
    is refused as a likely mix-up).

    Args:
        acc_mixed_same: accuracy on ImageNet-9 mixed_same.
        acc_mixed_rand: accuracy on ImageNet-9 mixed_rand.
        limit: the largest acceptable gap, on the accuracies' scale.
        label: tells several results of one test apart (default ``"bg_gap"``).
        confidence: not supported for two summary numbers; must be None.
    """
    __tracebackhide__ = True
    bound = _number(limit, "limit")
    _no_interval(confidence, "two summary accuracies have no images to resample")
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
        ("mixed_same accuracy", _fmt(same, decimals), "", "", ""),
        ("mixed_rand accuracy", _fmt(rand, decimals), "", "", ""),
    ]
    return _conclude(
        "assert_bg_gap_below",
        metric="bg_gap",
        shown="BG-Gap",
        value=value,
        high=bound,
        better="lower",
        label=_label(label, "bg_gap"),
        decimals=decimals,
        context="accuracy fractions" if fractions else "accuracy points",
        rows=rows,
        details=[{"item": "mixed_same", "value": same}, {"item": "mixed_rand", "value": rand}],
    )


def assert_no_regression(
    value: float,
    *,
    baseline: float,
    tolerance: float,
    metric: str,
    better: str = "higher",
    label: str | None = None,
) -> ContractResult:
    """Assert that ``value`` is not worse than ``baseline`` by more than ``tolerance``.

    For explicit in-test comparisons (``--sslrobust-compare`` compares whole runs). The
    bound recorded is ``baseline - tolerance`` (low) when higher is better and
    ``baseline + tolerance`` (high) when lower is better.

    Args:
        value: the measured number.
        baseline: the number it is compared with, on the same scale.
        tolerance: the largest acceptable worsening, absolute, >= 0.
        metric: the metric's name (recorded, and the default label).
        better: ``"higher"`` or ``"lower"``.
        label: tells several results of one test apart (default ``metric``).
    """
    __tracebackhide__ = True
    measured = _number(value, "value")
    base = _number(baseline, "baseline")
    slack = _number(tolerance, "tolerance")
    if slack < 0:
        raise ValueError(f"Expected tolerance >= 0, but got {slack:g}")
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"Expected metric to be a non-empty string, but got {metric!r}")
    if better not in ("higher", "lower"):
        raise ValueError(f"Expected better to be 'higher' or 'lower', but got {better!r}")
    worse = base - measured if better == "higher" else measured - base
    shown_value, shown_base = _distinct(measured, base, None)
    summary = (
        f"{metric} {shown_value} regressed from the baseline {shown_base} by "
        f"{_fmt(worse, None)}, more than the tolerance {_fmt(slack, None)}"
    )
    rows = [
        ("baseline", _fmt(base, None), "", "", ""),
        ("tolerance", _fmt(slack, None), "", "", f"{better} is better"),
    ]
    return _conclude(
        "assert_no_regression",
        metric=metric,
        shown=metric,
        value=measured,
        low=base - slack if better == "higher" else None,
        high=base + slack if better == "lower" else None,
        better=better,
        label=_label(label, metric),
        decimals=None,
        rows=rows,
        summary=summary,
        details=[{"item": "baseline", "value": base}, {"item": "tolerance", "value": slack}],
    )


# --------------------------------------------------------------------------------------------
# Attribution: where the evidence comes from
# --------------------------------------------------------------------------------------------

_SHIFT_MEASURES = ("rank_shift", "topk_shift")


def _attribution_sets(value: Any, name: str) -> list[Any]:
    from pytest_sslrobust.attribution.sets import AttributionSet

    sets = [value] if isinstance(value, AttributionSet) else list(value)
    if not sets or not all(isinstance(s, AttributionSet) for s in sets):
        raise TypeError(
            f"Expected {name} to be an AttributionSet or a non-empty sequence of them "
            "(from sslrobust.attribution(...)), but got "
            f"{type(value).__name__}"
        )
    return sets


def _mean_rows(
    per_set: Sequence[tuple[str, np.ndarray, str]],
    *,
    low: float | None,
    high: float | None,
    level: float | None,
    resamples: int,
    seed: int,
) -> tuple[int, list[Interval | None], list[tuple[str, ...]], list[dict[str, Any]]]:
    """One row per variant: mean of per-image values, its interval, the gap to the limit;
    returns which row decides (the least favourable one) with the rows."""
    intervals: list[Interval | None] = []
    decisive: list[float] = []
    for _, values, _ in per_set:
        interval = None
        if level is not None:
            interval = bootstrap(
                lambda idx, v=values: v[idx].mean(axis=-1),
                values.shape[0],
                resamples=resamples,
                confidence=level,
                seed=run_seed(seed),
                vectorized=True,
                digits=4,
            )
        intervals.append(interval)
        mean = float(values.mean())
        if high is not None:
            decisive.append(interval.high if interval is not None else mean)
        else:
            decisive.append(-(interval.low if interval is not None else mean))
    worst = int(np.argmax(decisive))
    rows: list[tuple[str, ...]] = []
    details: list[dict[str, Any]] = []
    for index, (name, values, note) in enumerate(per_set):
        mean = float(values.mean())
        interval = intervals[index]
        lo, hi = (mean, mean) if interval is None else (interval.low, interval.high)
        fails = (low is not None and lo < low) or (high is not None and hi > high)
        shown = _fmt(mean, 4)
        if interval is not None:
            shown += f" [{_fmt(interval.low, 4)}, {_fmt(interval.high, 4)}]"
        marks = [note] if note else []
        if fails:
            marks.append("<- fails")
        rows.append(
            (
                f"variant {name}",
                shown,
                _required(low, high, 4),
                _gap(lo, hi, low, high, 4),
                "  ".join(marks),
            )
        )
        detail: dict[str, Any] = {"item": name, "value": mean, "images": int(values.shape[0])}
        if interval is not None:
            detail["interval"] = _interval_record(interval)
        details.append(detail)
    return worst, intervals, rows, details


def assert_focus_shift_below(
    clean: Any,
    altered: Any,
    limit: float,
    *,
    measure: str = "rank_shift",
    top_k: float = 0.1,
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that attribution maps move at most ``limit`` from clean to each altered variant.

    The shift of one image compares its clean map with its altered map: ``rank_shift`` is
    1 - Spearman correlation of the two maps' pixels (0 same ranking, 1 unrelated, 2
    reversed); ``topk_shift`` is 1 - the overlap of their top ``top_k`` pixels (0 the same
    most-attended pixels, 1 none shared). The contract holds for every altered variant's mean
    over images (with ``confidence``: the upper end of its bootstrap interval).

    Args:
        clean: the AttributionSet of the clean images (``sslrobust.attribution("original")``).
        altered: one AttributionSet of the same images under a variant, or a sequence.
        limit: the largest acceptable mean shift.
        measure: ``"rank_shift"`` or ``"topk_shift"``.
        top_k: fraction of pixels that makes the top set for ``topk_shift``.
        label: tells several results of one test apart (default ``"focus_shift"``).
        confidence: e.g. 0.95 to decide on the upper end of the bootstrap interval.
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).

    Returns:
        The recorded ContractResult; its value is the largest mean shift among the variants.
    """
    __tracebackhide__ = True
    if measure not in _SHIFT_MEASURES:
        raise ValueError(
            f"Expected measure to be one of {', '.join(_SHIFT_MEASURES)}, but got {measure!r}"
        )
    bound = _number(limit, "limit")
    level = _confidence(confidence)
    (reference,) = _attribution_sets(clean, "clean")
    sets = _attribution_sets(altered, "altered")
    per_set = []
    for attributed in sets:
        shift = attributed.shift_from(reference, top_k=top_k)
        values = shift["rank_shift"] if measure == "rank_shift" else 1.0 - shift["topk_overlap"]
        note = f"{attributed.degenerate} empty maps" if attributed.degenerate else ""
        per_set.append((attributed.variant, np.asarray(values, dtype=np.float64), note))
    worst, intervals, rows, details = _mean_rows(
        per_set, low=None, high=bound, level=level, resamples=resamples, seed=run_seed(seed)
    )
    name, values, _ = per_set[worst]
    shown = "rank shift" if measure == "rank_shift" else f"top-{top_k:g} shift"
    return _conclude(
        "assert_focus_shift_below",
        metric="focus_shift",
        shown=f"{shown} of {name}",
        value=float(values.mean()),
        high=bound,
        better="lower",
        label=_label(label, "focus_shift"),
        decimals=4,
        interval=intervals[worst],
        context=(
            f"{reference.method} maps of {len(reference)} images, target {reference.target}, "
            f"measure {measure}"
        ),
        rows=rows if len(per_set) > 1 else (),
        protocol=dict(sets[worst].protocol),
        details=details,
    )


def assert_foreground_focus_above(
    attributions: Any,
    limit: float,
    *,
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that attribution maps put at least ``limit`` of their mass on the foreground.

    Foreground focus of one image is the share of its map inside the foreground mask; a map
    that ignores the object scores about the mask's area fraction (shown as chance). The
    contract holds for every given variant's mean over images (with ``confidence``: the lower
    end of its bootstrap interval).

    Args:
        attributions: an AttributionSet (``sslrobust.attribution(...)`` on data with masks)
            or a sequence of them.
        limit: the smallest acceptable mean foreground focus, a fraction in [0, 1].
        label: tells several results of one test apart (default ``"foreground_focus"``).
        confidence: e.g. 0.95 to decide on the lower end of the bootstrap interval.
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).

    Returns:
        The recorded ContractResult; its value is the lowest mean focus among the variants.
    """
    __tracebackhide__ = True
    bound = _fraction(limit, "limit")
    level = _confidence(confidence)
    sets = _attribution_sets(attributions, "attributions")
    per_set = []
    for attributed in sets:
        focus = attributed.foreground_focus()
        chance = float(attributed.chance_focus().mean())
        per_set.append((attributed.variant, np.asarray(focus, np.float64), f"chance {chance:.4f}"))
    worst, intervals, rows, details = _mean_rows(
        per_set, low=bound, high=None, level=level, resamples=resamples, seed=run_seed(seed)
    )
    for detail, attributed in zip(details, sets, strict=True):
        detail["chance"] = float(attributed.chance_focus().mean())
    name, values, note = per_set[worst]
    return _conclude(
        "assert_foreground_focus_above",
        metric="foreground_focus",
        shown=f"foreground focus of {name}",
        value=float(values.mean()),
        low=bound,
        better="higher",
        label=_label(label, "foreground_focus"),
        decimals=4,
        interval=intervals[worst],
        context=(
            f"share of {sets[worst].method} mass on the object over {len(values)} images, {note}"
        ),
        rows=rows if len(per_set) > 1 else (),
        protocol=dict(sets[worst].protocol),
        details=details,
    )
