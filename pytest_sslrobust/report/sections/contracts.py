"""The contracts section: every recorded result, a sortable table and a detail block each."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pytest_sslrobust.report.document import ReportDocument, mapping_of, number, records
from pytest_sslrobust.report.formatting import (
    MISSING,
    as_float,
    compact,
    format_bounds,
    format_interval,
    format_number,
    sort_key,
)
from pytest_sslrobust.report.sections.base import Section


@dataclasses.dataclass(frozen=True)
class ContractRow:
    """One ``ContractResult`` as ``ContractResult.to_dict`` writes it."""

    test: str
    label: str
    metric: str
    name: str
    model: str
    passed: bool
    value: Any
    unit: str
    low: Any
    high: Any
    better: str
    decided_on: str
    interval: dict[str, Any] | None
    protocol: dict[str, Any]
    details: list[Mapping[str, Any]]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContractRow:
        return cls(
            test=str(data.get("test", "")),
            label=str(data.get("label", "")),
            metric=str(data.get("metric", "")),
            name=str(data.get("name", "")),
            model=str(data.get("model") or MISSING),
            passed=bool(data.get("passed")),
            value=number(data.get("value")),
            unit=str(data.get("unit") or ""),
            low=number(data.get("low")),
            high=number(data.get("high")),
            better=str(data.get("better", "none")),
            decided_on=str(data.get("decided_on", "value")),
            interval=mapping_of(data.get("interval")),
            protocol=mapping_of(data.get("protocol")) or {},
            details=records(data.get("details")),
        )


def _interval_title(result: ContractRow) -> str:
    interval = result.interval
    if not interval:
        return ""
    confidence = as_float(interval.get("confidence"))
    confidence_text = (
        (f"{100 * confidence:g}%" if confidence <= 1 else f"{confidence:g}%")
        if math.isfinite(confidence)
        else "?"
    )
    return (
        f"bootstrap estimate {format_number(interval.get('estimate'))}, "
        f"{confidence_text} confidence, {format_number(interval.get('resamples'))} "
        f"resamples, seed {format_number(interval.get('seed'))}"
        + ("; the decision used this interval" if result.decided_on == "interval" else "")
    )


def metric_title(metric: str) -> str:
    """What the metric facts table says of a built-in metric: its display name, which way is
    better and what a value counts (an own metric has none)."""
    from pytest_sslrobust.contracts.facts import METRICS

    fact = METRICS.get(metric)
    if fact is None:
        return "a metric of the test's own"
    return f"{fact.display}: {fact.direction} is better, a {fact.unit}"


def _row(number_: int, result: ContractRow, interval_title: str) -> dict[str, Any]:
    interval = result.interval
    return {
        "number": number_,
        "passed": result.passed,
        "test": result.test,
        "label": result.label,
        "metric": result.metric,
        "metric_title": metric_title(result.metric),
        "model": result.model,
        "value": format_number(result.value) + (f" {result.unit}" if result.unit else ""),
        "value_sort": sort_key(result.value),
        "bounds": format_bounds(result.low, result.high, result.better),
        "bounds_sort": sort_key(result.low if result.low is not None else result.high),
        "interval": format_interval(interval),
        "interval_sort": sort_key(interval.get("low") if interval else None),
        "interval_title": interval_title,
        "decided_on_interval": result.decided_on == "interval",
    }


def _detail(number_: int, result: ContractRow, interval_title: str) -> dict[str, Any]:
    fields = [
        ("assertion", result.name),
        ("better", result.better),
        ("decided on", result.decided_on),
    ]
    if result.interval:
        fields.append(("interval", f"{format_interval(result.interval)} ({interval_title})"))
    columns: dict[str, None] = {}
    for detail in result.details:
        columns.update((str(k), None) for k in detail)
    return {
        "number": number_,
        "passed": result.passed,
        "summary": f"{result.test} [{result.label}]",
        "fields": fields,
        "protocol": [(str(k), compact(v)) for k, v in result.protocol.items()],
        "columns": list(columns),
        "rows": [[format_number(r.get(c)) for c in columns] for r in result.details],
    }


def render(document: ReportDocument) -> dict[str, Any] | None:
    results = [ContractRow.from_dict(r) for r in document.results]
    if not results:
        return None
    rows, details = [], []
    for index, result in enumerate(results, start=1):
        title = _interval_title(result)
        rows.append(_row(index, result, title))
        details.append(_detail(index, result, title))
    failed = sum(not row["passed"] for row in rows)
    return {"rows": rows, "details": details, "passed": len(rows) - failed, "failed": failed}


SECTION = Section("contracts", "contracts", "Contracts", render, template="_contracts.html.j2")
