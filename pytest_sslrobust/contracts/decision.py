"""The decision point of every contract: pass or fail on the value or its interval, record
the ContractResult, and raise the explained AssertionError."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.contracts import explain
from pytest_sslrobust.contracts.facts import METRICS
from pytest_sslrobust.results import ContractResult, current_test_id, record

if TYPE_CHECKING:
    from pytest_sslrobust.metrics.statistics import Interval

__all__ = ["conclude", "interval_record"]


def interval_record(interval: Interval) -> dict[str, Any]:
    """An interval as a ContractResult (and its details) store it."""
    return {
        "estimate": interval.estimate,
        "low": interval.low,
        "high": interval.high,
        "confidence": interval.confidence,
        "resamples": interval.resamples,
        "seed": interval.seed,
    }


def conclude(
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
        interval=None if interval is None else interval_record(interval),
        decided_on="value" if interval is None else "interval",
        model=None if backbone is None else str(backbone),
        protocol=recorded,
        details=tuple(details),
        outcomes=outcomes,
    )
    record(result)
    if passed:
        return result

    requirement = explain.required(low, high, decimals)
    shown_value = explain.fmt(value, decimals)
    table = [(shown, shown_value, requirement, explain.gap(value, value, low, high, decimals), "")]
    lines = []
    if interval is not None:
        pct = f"{100 * interval.confidence:g}%"
        ends = f"[{explain.fmt(interval.low, decimals)}, {explain.fmt(interval.high, decimals)}]"
        distance = explain.gap(interval.low, interval.high, low, high, decimals)
        table.append((f"{pct} interval", ends, requirement, distance, "<- decides"))
        lines.append(
            f"decided on the {pct} bootstrap interval {ends} "
            f"({interval.resamples} resamples, seed {interval.seed})"
        )
    head = summary or explain.summary(shown, value, low, high, interval, decimals)
    if context:
        head = f"{head} ({context})"
    if label != metric:
        head = f"[{label}] {head}"
    message = [head, *explain.table([*table, *rows]), *(f"  {line}" for line in [*lines, *notes])]
    raise AssertionError("\n".join(message))
