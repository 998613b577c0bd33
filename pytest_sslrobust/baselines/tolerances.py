"""Tolerance expressions (``mce:+1.0,cka:-0.02,accuracy:-1%``) and the metrics' directions."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence

from pytest_sslrobust.contracts.facts import METRICS
from pytest_sslrobust.results import ContractResult

__all__ = [
    "KNOWN_DIRECTIONS",
    "Tolerance",
    "parse_tolerances",
    "unmatched_tolerances",
    "worse_word",
]

# Which way each built-in metric improves, from the one table of metric facts; results
# normally say so themselves (``better``), this checks the signs of tolerances before any
# result exists.
KNOWN_DIRECTIONS: dict[str, str] = {name: fact.direction for name, fact in METRICS.items()}


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How much a metric may get worse than its baseline before it is a regression.

    ``amount`` is a magnitude (never negative); with ``relative`` it is a percentage of the
    baseline value. ``better`` is the direction of improvement that the sign written in the
    tolerance implied (``+``: lower is better, ``-``: higher is better); ``None`` for the
    ``*`` default, which applies in each metric's own direction.
    """

    metric: str
    amount: float
    relative: bool
    better: str | None = None

    def allowed(self, baseline_value: float) -> float:
        """The absolute worsening allowed from ``baseline_value``."""
        if self.relative:
            return abs(baseline_value) * self.amount / 100.0
        return self.amount

    def __str__(self) -> str:
        sign = {"lower": "+", "higher": "-", None: ""}[self.better]
        return f"{self.metric}:{sign}{self.amount:g}{'%' if self.relative else ''}"


def worse_word(direction: str) -> str:
    return "upwards" if direction == "lower" else "downwards"


def parse_tolerances(text: str) -> dict[str, Tolerance]:
    """Parse ``mce:+1.0,cka:-0.02,accuracy:-1%`` into tolerances by metric.

    The sign is the direction in which the metric is allowed to get worse: ``+`` for a
    lower-is-better metric such as ``mce``, ``-`` for a higher-is-better one such as
    ``cka``; it must agree with :data:`KNOWN_DIRECTIONS`. A trailing ``%`` makes the amount
    relative to the baseline value. ``*`` sets the default for every other metric (its sign,
    if any, is ignored). A name close to a built-in metric but not one (``mcee``) is refused
    with the suggestion; other names are metrics of your own contracts
    (``assert_no_regression(metric=...)``), and :func:`unmatched_tolerances` finds those that
    matched nothing. Raises ``ValueError`` saying what to write instead.
    """
    tolerances: dict[str, Tolerance] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        metric, colon, amount_text = (part.strip() for part in entry.partition(":"))
        if not colon or not metric or not amount_text:
            raise ValueError(
                f"tolerance {entry!r} is not METRIC:AMOUNT (for example mce:+1.0, cka:-0.02 "
                "or accuracy:-1%)"
            )
        if any(ch.isspace() for ch in metric):
            raise ValueError(f"tolerance {entry!r}: the metric name {metric!r} has spaces")
        if metric in tolerances:
            raise ValueError(f"tolerance for {metric!r} given twice ({entry!r})")
        relative = amount_text.endswith("%")
        number = amount_text[:-1].strip() if relative else amount_text
        percent = "%" if relative else ""
        sign = number[:1] if number[:1] in ("+", "-") else ""
        magnitude = number[len(sign) :].strip()
        try:
            # float() would take a second sign ("+-1"), which says nothing sensible here.
            amount = float(magnitude) if magnitude[:1] not in ("+", "-") else math.nan
        except ValueError:
            amount = math.nan
        if not math.isfinite(amount):
            raise ValueError(
                f"tolerance {entry!r}: {amount_text!r} is not a finite number (for example "
                "+1.0, -0.02 or -1%)"
            )
        if metric == "*":
            tolerances[metric] = Tolerance(metric, amount, relative)
            continue
        known = KNOWN_DIRECTIONS.get(metric)
        close = difflib.get_close_matches(metric, KNOWN_DIRECTIONS, n=1, cutoff=0.75)
        if known is None and close:  # a misspelt built-in metric would never match a result
            raise ValueError(
                f"tolerance {entry!r}: no contract records the metric {metric!r}; did you "
                f"mean {close[0]!r}? (built-in metrics: {', '.join(sorted(KNOWN_DIRECTIONS))})"
            )
        if not sign:
            if known is not None:
                expected = "+" if known == "lower" else "-"
                raise ValueError(
                    f"tolerance {entry!r} has no sign: the sign says in which direction the "
                    f"metric may get worse; {metric} gets worse {worse_word(known)}: write "
                    f"{metric}:{expected}{number}{percent}"
                )
            raise ValueError(
                f"tolerance {entry!r} has no sign: the sign says in which direction the metric "
                f"may get worse: write {metric}:+{number}{percent} if lower is better, or "
                f"{metric}:-{number}{percent} if higher is better"
            )
        better = "lower" if sign == "+" else "higher"
        if known is not None and known != better:
            expected = "+" if known == "lower" else "-"
            raise ValueError(
                f"tolerance {entry!r} has the wrong sign: {metric} gets worse "
                f"{worse_word(known)}: write {metric}:{expected}{magnitude}{percent}"
            )
        tolerances[metric] = Tolerance(metric, amount, relative, better)
    return tolerances


def unmatched_tolerances(
    tolerances: Mapping[str, Tolerance], *runs: Sequence[ContractResult]
) -> list[str]:
    """The tolerance metrics of your own (not built-in, not ``*``) that no result of ``runs``
    records: a tolerance that gates nothing, most often a misspelt name. Built-in metrics a
    run did not produce are not listed (a documented list covers every suite, a run may
    select a few)."""
    recorded = {result.metric for results in runs for result in results}
    return sorted(
        metric
        for metric in tolerances
        if metric != "*" and metric not in KNOWN_DIRECTIONS and metric not in recorded
    )
