"""Attribution contracts on attribution sets: focus shift under a variant, foreground focus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_sslrobust.contracts.decision import conclude, interval_record
from pytest_sslrobust.contracts.explain import fmt, gap, required
from pytest_sslrobust.contracts.recorded import mean_outcomes
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.intervals import mean_interval
from pytest_sslrobust.metrics.statistics import Interval
from pytest_sslrobust.results import ContractResult, run_seed

__all__ = ["assert_focus_shift_below", "assert_foreground_focus_above"]

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
            interval = mean_interval(
                values, resamples=resamples, confidence=level, seed=run_seed(seed)
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
        shown = fmt(mean, 4)
        if interval is not None:
            shown += f" [{fmt(interval.low, 4)}, {fmt(interval.high, 4)}]"
        marks = [note] if note else []
        if fails:
            marks.append("<- fails")
        rows.append(
            (
                f"variant {name}",
                shown,
                required(low, high, 4),
                gap(lo, hi, low, high, 4),
                "  ".join(marks),
            )
        )
        detail: dict[str, Any] = {"item": name, "value": mean, "images": int(values.shape[0])}
        if interval is not None:
            detail["interval"] = interval_record(interval)
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
    bound = _checks.number(limit, "limit")
    level = _checks.confidence(confidence)
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
    return conclude(
        "assert_focus_shift_below",
        # The worst variant's per-image values: paired when both runs' worst is the same.
        outcomes=mean_outcomes(values, sets[worst], name=f"variant {name}"),
        metric="focus_shift",
        shown=f"{shown} of {name}",
        value=float(values.mean()),
        high=bound,
        better="lower",
        label=_checks.name_or_default(label, "focus_shift"),
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
    bound = _checks.fraction(limit, "limit")
    level = _checks.confidence(confidence)
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
    return conclude(
        "assert_foreground_focus_above",
        # The worst variant's per-image values: paired when both runs' worst is the same.
        outcomes=mean_outcomes(values, sets[worst], name=f"variant {name}"),
        metric="foreground_focus",
        shown=f"foreground focus of {name}",
        value=float(values.mean()),
        low=bound,
        better="higher",
        label=_checks.name_or_default(label, "foreground_focus"),
        decimals=4,
        interval=intervals[worst],
        context=(
            f"share of {sets[worst].method} mass on the object over {len(values)} images, {note}"
        ),
        rows=rows if len(per_set) > 1 else (),
        protocol=dict(sets[worst].protocol),
        details=details,
    )
