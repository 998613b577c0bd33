"""The baseline comparison: each result against the baseline, regressions and refusals first."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pytest_sslrobust.report.blocks import row, table
from pytest_sslrobust.report.document import ReportDocument, number, records
from pytest_sslrobust.report.formatting import MISSING, as_float, format_number
from pytest_sslrobust.report.sections.base import Section

# Baseline statuses, worst first (same order as pytest_sslrobust.baselines.STATUSES, which
# is not imported so that rendering a stored document needs nothing but the report).
STATUS_ORDER = ("regression", "refused", "missing", "worse", "changed", "new", "improved")
ALARMING = frozenset({"regression", "refused"})


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    """One row of ``baselines.compare``: a result's status against the baseline."""

    status: str
    key: str
    metric: str
    baseline_value: Any
    value: Any
    delta: Any
    allowed: Any
    note: str
    paired: bool = False
    interval: tuple[Any, Any] | None = None
    p_value: Any = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonRow:
        return cls(
            status=str(data.get("status", "")),
            key=str(data.get("key", "")),
            metric=str(data.get("metric", "")),
            baseline_value=number(data.get("baseline_value")),
            value=number(data.get("value")),
            delta=number(data.get("delta")),
            allowed=number(data.get("allowed")),
            note=str(data.get("note") or ""),
            paired=data.get("paired") is True,
            interval=_pair(data.get("interval")),
            p_value=number(data.get("p_value")),
        )


def _pair(value: Any) -> tuple[Any, Any] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return number(value[0]), number(value[1])
    return None


def _evidence(r: ComparisonRow) -> str:
    """How the row was decided: the paired interval of the difference and the p-value."""
    if not r.paired:
        return "by value"
    text = "paired"
    if r.interval is not None:
        low, high = (as_float(end) for end in r.interval)
        if math.isfinite(low) and math.isfinite(high):
            text += f" [{low:+.4g}, {high:+.4g}]"
    p = as_float(r.p_value)
    return f"{text}, p={p:.3g}" if math.isfinite(p) else text


def _cells(r: ComparisonRow) -> list[Any]:
    delta = as_float(r.delta)
    return [
        {"text": r.status, "cls": f"status status-{r.status}"},
        {"text": r.key, "cls": "test"},
        r.metric,
        format_number(r.baseline_value),
        format_number(r.value),
        f"{delta:+.4g}" if math.isfinite(delta) else format_number(r.delta),
        MISSING if r.allowed is None else format_number(r.allowed),
        _evidence(r),
        r.note,
    ]


def render(document: ReportDocument) -> dict[str, Any] | None:
    comparison = document.comparison
    if comparison is None:
        return None
    order = {status: index for index, status in enumerate(STATUS_ORDER)}
    rows = sorted(
        (ComparisonRow.from_dict(r) for r in records(comparison.get("rows"))),
        key=lambda r: (order.get(r.status, len(order)), r.key),
    )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(
        f"{count} {status}"
        for status, count in sorted(counts.items(), key=lambda kv: order.get(kv[0], len(order)))
    )
    columns = [
        "status",
        "contract",
        "metric",
        "baseline",
        "now",
        "delta",
        "allowed",
        "decided",
        "note",
    ]
    blocks = [
        table(
            "Results against the baseline",
            columns,
            [row(_cells(r), cls="alarm" if r.status in ALARMING else "") for r in rows],
            numeric=(3, 4, 5, 6),
            note=(
                "Regressions and refused comparisons first; delta is now minus baseline. "
                "Paired rows were decided on the same images: the paired bootstrap interval "
                "of delta and the p-value of a worsening beyond the tolerance (Holm across "
                "the paired rows); other rows by value, the note says why."
            ),
        )
    ]
    return {
        "baseline": str(comparison.get("baseline") or ""),
        "summary": summary or "no results to compare",
        "alarming": sum(counts.get(s, 0) for s in ALARMING),
        "blocks": blocks,
    }


SECTION = Section(
    "comparison",
    "comparison",
    "Baseline comparison",
    render,
    template="_comparison.html.j2",
)
