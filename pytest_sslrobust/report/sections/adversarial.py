"""The adversarial section: attacks' values at each perturbation budget, a line per model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.blocks import figure, figures, grouped, panel, row, table
from pytest_sslrobust.report.document import PayloadError, ReportDocument, floats, number
from pytest_sslrobust.report.formatting import eps, format_number
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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
        )


def record(result: AttackResult, *, model: str) -> None:
    payload = dict(result.as_dict())
    payload.pop("per_sample", None)
    label = f"{result.metric}-{result.attack}-{result.norm}"
    record_artifact(AttackPayload.KIND, payload, model=model, label=label)


def render(document: ReportDocument) -> dict[str, Any] | None:
    entries = document.entries(AttackPayload)
    if not entries:
        return None
    rows = []
    for e in entries:
        p = e.payload
        pairs = ", ".join(
            f"{eps(b)}: {format_number(v, 3)}" for b, v in zip(p.eps, p.values, strict=False)
        )
        cells = [e.model, p.metric, p.attack, p.norm, format_number(p.steps)]
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
        drawn = figure(
            "line_plot",
            list(budgets),
            series,
            title=title,
            xlabel=f"eps ({norm})",
            ylabel=metric.replace("_", " "),
        )
        panels.append(panel(title, drawn))
    blocks = [
        table("Attacks", columns, rows, numeric=(4, 5, 6)),
        figures("Value against perturbation budget", panels),
    ]
    return {"blocks": blocks}


SECTION = Section("adversarial", "adversarial", "Adversarial", render, payloads=(AttackPayload,))
