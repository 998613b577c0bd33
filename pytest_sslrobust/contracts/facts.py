"""One table of metric facts: name, direction, unit, display name, decimals.

Contracts record results with the direction given here (``contracts.decision.conclude``
refuses a contract that disagrees), baselines derive ``KNOWN_DIRECTIONS`` from it to check
the signs of tolerances, the report titles metrics with it, ``docs/results-schema.md`` lists
it, and ``tests/test_metric_facts.py`` fails when a contract records a metric the table lacks
or the doc drifts. Standard library only.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MetricFact:
    """``direction``: ``higher`` or ``lower`` is better; ``unit``: what a value counts
    (``fraction`` of images, ``percent`` as the studies print it, or ``score``); ``decimals``
    the contracts' explanation tables use."""

    name: str
    direction: str
    unit: str
    display: str
    decimals: int


METRICS: dict[str, MetricFact] = {
    fact.name: fact
    for fact in (
        MetricFact("mce", "lower", "percent", "mCE", 1),
        MetricFact("relative_mce", "lower", "percent", "relative mCE", 1),
        MetricFact("accuracy", "higher", "fraction", "accuracy", 4),
        MetricFact("accuracy_drop", "lower", "fraction", "accuracy drop", 4),
        MetricFact("balanced_accuracy", "higher", "fraction", "balanced accuracy", 4),
        MetricFact("robust_accuracy", "higher", "fraction", "robust accuracy", 4),
        MetricFact("bg_gap", "lower", "fraction", "BG-Gap", 4),
        MetricFact("cka", "higher", "score", "CKA", 4),
        MetricFact("cca", "higher", "score", "CCA", 4),
        MetricFact("neighbour_consistency", "higher", "fraction", "neighbour consistency", 4),
        MetricFact("focus_shift", "lower", "score", "focus shift", 4),
        MetricFact("foreground_focus", "higher", "fraction", "foreground focus", 4),
    )
}


def direction_of(metric: str) -> str | None:
    """``higher``/``lower`` for a built-in metric, None for a metric of the user's own."""
    fact = METRICS.get(metric)
    return None if fact is None else fact.direction
