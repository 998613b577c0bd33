"""The adversarial section: attacks' values at each perturbation budget, a line per model."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.blocks import (
    caveat_note,
    figure,
    figures,
    grouped,
    model_cell,
    panel,
    row,
    shared_range,
    table,
)
from pytest_sslrobust.report.chance import ChanceCheck, model_caveats
from pytest_sslrobust.report.document import PayloadError, ReportDocument, floats, number
from pytest_sslrobust.report.formatting import as_float, eps, format_number
from pytest_sslrobust.report.headlines import Headline, HeadlineRows, Measure
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.results import record_artifact

if TYPE_CHECKING:
    from pytest_sslrobust.metrics.attacks import AttackResult


@dataclasses.dataclass(frozen=True)
class AttackPayload:
    """One metric at several budgets (``AttackResult.as_dict`` without per-image outcomes)."""

    KIND = "attack"

    eps: list[float]
    values: list[float]
    metric: str
    attack: str
    norm: str
    steps: Any
    n: Any
    clean: Any
    chance: Any = None  # what a guess scores with the readout (1/k), when recorded

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.chance is None:
            del data["chance"]
        return data

    @property
    def is_accuracy(self) -> bool:
        return "accuracy" in self.metric

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttackPayload:
        if not data.get("eps") or not data.get("values"):
            raise PayloadError(f"Expected {cls.KIND} payload fields 'eps' and 'values' to be lists")
        return cls(
            eps=floats(data["eps"]),
            values=floats(data["values"]),
            metric=str(data.get("metric", "")),
            attack=str(data.get("attack", "")),
            norm=str(data.get("norm", "")),
            steps=number(data.get("steps")),
            n=number(data.get("n")),
            clean=number(data.get("clean")),
            chance=number(data.get("chance")),
        )


# Which way is better for the attacks' metrics (others: neither, in the summary).
DIRECTIONS = {"robust_accuracy": "higher", "feature_drift": "lower", "accuracy": "higher"}


def record(result: AttackResult, *, model: str, chance: float | None = None) -> None:
    """Record ``result`` (without its per-image outcomes); ``chance``: what a guess scores
    with the readout, for an accuracy (1/k)."""
    payload = dict(result.as_dict())
    payload.pop("per_sample", None)
    if chance is not None and "accuracy" in str(payload.get("metric", "")):
        payload["chance"] = chance
    label = f"{result.metric}-{result.attack}-{result.norm}"
    record_artifact(AttackPayload.KIND, payload, model=model, label=label)


def render(document: ReportDocument) -> dict[str, Any] | None:
    entries = document.entries(AttackPayload)
    if not entries:
        return None
    caveats = model_caveats(document)
    rows = []
    for e in entries:
        p = e.payload
        pairs = ", ".join(
            f"{eps(b)}: {format_number(v, 3)}" for b, v in zip(p.eps, p.values, strict=False)
        )
        cells = [model_cell(e.model, e.model, caveats), p.metric, p.attack, p.norm]
        cells.append(format_number(p.steps))
        rows.append(row([*cells, format_number(p.n), format_number(p.clean), pairs]))
    columns = ["model", "metric", "attack", "norm", "steps", "images", "clean", "eps: value"]
    panels = []
    # One plot per metric/attack/norm (and eps grid, since the series share one x axis),
    # with a series per model.
    for (metric, attack, norm, budgets), group in grouped(
        entries,
        lambda e: (e.payload.metric, e.payload.attack, e.payload.norm, tuple(e.payload.eps)),
    ):
        series: dict[str, list[float]] = {}
        for e in group:
            name = e.model
            while name in series:  # two runs of one model: keep both lines
                name += "'"
            series[name] = e.payload.values
        title = f"{metric.replace('_', ' ')}, {attack} {norm}"
        # Chance when every model's readout has the same (one line for all).
        chances = {as_float(e.payload.chance) for e in group}
        chance = next(iter(chances)) if len(chances) == 1 else math.nan
        accuracy = group[0].payload.is_accuracy
        ylim = (
            shared_range([v for e in group for v in e.payload.values] + [chance], ceiling=1.0)
            if accuracy
            else None
        )
        drawn = figure(
            "line_plot",
            list(budgets),
            series,
            title=title,
            xlabel=f"eps ({norm})",
            ylabel=metric.replace("_", " "),
            chance=chance if math.isfinite(chance) else None,
            ylim=ylim,
        )
        panels.append(panel(title, drawn))
    blocks = [
        table(
            "Attacks",
            columns,
            rows,
            numeric=(4, 5, 6),
            note=caveat_note(caveats, (e.model for e in entries)),
        ),
        figures(
            "Value against perturbation budget",
            panels,
            note="The dotted line is chance (1/k for a k-class readout), where recorded.",
        ),
    ]
    return {"blocks": blocks}


def headlines(document: ReportDocument) -> list[Headline]:
    """Each attack's value at its largest budget."""
    found = HeadlineRows(SECTION.id, SECTION.title)
    for e in document.entries(AttackPayload):
        p = e.payload
        budgets = [(b, v) for b, v in zip(p.eps, p.values, strict=False) if math.isfinite(b)]
        if not budgets:
            continue
        largest, value = max(budgets, key=lambda pair: pair[0])
        if not math.isfinite(value):
            continue
        chance = as_float(p.chance)
        found.row(
            (p.metric, p.attack, p.norm, largest),
            f"{p.metric.replace('_', ' ')} at eps {eps(largest)} ({p.attack} {p.norm})",
            DIRECTIONS.get(p.metric, "none"),
            title="the value at the largest perturbation budget of the attack",
        ).add(e.model, Measure(value, chance=chance if math.isfinite(chance) else None))
    return found.rows()


def checks(document: ReportDocument) -> list[ChanceCheck]:
    """The attacked readout's clean accuracy, where chance was recorded."""
    found = []
    for e in document.entries(AttackPayload):
        clean, chance = as_float(e.payload.clean), as_float(e.payload.chance)
        if e.payload.is_accuracy and math.isfinite(clean) and math.isfinite(chance):
            found.append(ChanceCheck(e.model, "clean accuracy (attacked readout)", clean, chance))
    return found


SECTION = Section(
    "adversarial",
    "adversarial",
    "Adversarial",
    render,
    payloads=(AttackPayload,),
    headlines=headlines,
    checks=checks,
)
