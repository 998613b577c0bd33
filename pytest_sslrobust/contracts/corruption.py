"""Corruption-error contracts: mCE and relative mCE, against AlexNet or a measured reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_sslrobust.contracts.decision import conclude
from pytest_sslrobust.contracts.explain import fmt
from pytest_sslrobust.contracts.inputs import protocol_of
from pytest_sslrobust.contracts.recorded import corruption_outcomes
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.corruption import (
    CorruptionErrors,
    ce,
    mce,
    reference_sums,
    relative_ce,
    relative_mce,
)
from pytest_sslrobust.metrics.intervals import relative_mce_interval
from pytest_sslrobust.metrics.statistics import mce_interval
from pytest_sslrobust.results import ContractResult, run_seed
from pytest_sslrobust.vocabulary import COMMON

__all__ = ["assert_mce_below", "assert_relative_mce_below"]

# How many of the worst corruptions a failing mCE message points at.
_WORST_MARKED = 3


def _require_correctness(errors: Any, helper: str) -> None:
    """Refuse errors without per-image correctness of the 15 common corruptions, saying why."""
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
            fmt(values[name], 1),
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
    bound = _checks.number(limit, "limit")
    level = _checks.confidence(confidence)
    value = mce(errors, reference)
    per_corruption = ce(errors, reference)
    rows, details = _ce_rows({name: per_corruption[name] for name in COMMON}, "CE")
    interval = None
    if level is not None:
        _require_correctness(errors, "assert_mce_below")
        interval = mce_interval(
            errors,  # type: ignore[arg-type]
            reference,
            resamples=resamples,
            confidence=level,
            seed=run_seed(seed),
        )
    outcomes = None
    if isinstance(errors, CorruptionErrors):
        outcomes = corruption_outcomes(errors, reference_sums(errors, reference))
    return conclude(
        "assert_mce_below",
        outcomes=outcomes,
        metric="mce",
        shown="mCE",
        value=value,
        high=bound,
        better="lower",
        label=_checks.name_or_default(label, "mce"),
        decimals=1,
        interval=interval,
        context=f"reference: {_reference_name(reference)}",
        rows=rows,
        protocol=protocol_of(errors),
        details=details,
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
    bound = _checks.number(limit, "limit")
    level = _checks.confidence(confidence)
    value = relative_mce(errors, clean_error, reference, reference_clean_error)
    clean = clean_error if clean_error is not None else errors.clean_error  # type: ignore[union-attr]
    relative = relative_ce(errors, clean_error, reference, reference_clean_error)
    rows, details = _ce_rows(relative, "relative CE")
    interval = None
    if level is not None:
        _require_correctness(errors, "assert_relative_mce_below")
        interval = relative_mce_interval(
            errors,  # type: ignore[arg-type]
            clean_error,
            reference,
            reference_clean_error,
            resamples=resamples,
            confidence=level,
            seed=run_seed(seed),
        )
    outcomes = None
    if isinstance(errors, CorruptionErrors):
        sums = reference_sums(
            errors,
            reference,
            relative=True,
            clean_error=clean_error,
            reference_clean_error=reference_clean_error,
        )
        outcomes = corruption_outcomes(errors, sums, relative=True, clean_error=clean_error)
    return conclude(
        "assert_relative_mce_below",
        outcomes=outcomes,
        metric="relative_mce",
        shown="relative mCE",
        value=value,
        high=bound,
        better="lower",
        label=_checks.name_or_default(label, "relative_mce"),
        decimals=1,
        interval=interval,
        context=f"reference: {_reference_name(reference)}, clean error {float(clean):.4f}",
        rows=rows,
        protocol=protocol_of(errors),
        details=details,
    )
