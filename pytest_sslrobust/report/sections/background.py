"""The background section: accuracy per ImageNet-9 background variant and the BG-Gap."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pytest_sslrobust.report.blocks import (
    caveat_note,
    figure,
    figures,
    model_cell,
    panel,
    row,
    shared_range,
    table,
)
from pytest_sslrobust.report.chance import ChanceCheck, model_caveats
from pytest_sslrobust.report.document import (
    ReportDocument,
    number,
    numbers,
    records,
    require_mapping,
    text,
)
from pytest_sslrobust.report.formatting import (
    MISSING,
    as_float,
    format_bounds,
    format_number,
    with_interval,
)
from pytest_sslrobust.report.headlines import Headline, HeadlineRows, Measure
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.results import record_artifact

BG_GAP_PAIR = ("mixed_same", "mixed_rand")


@dataclasses.dataclass(frozen=True)
class BackgroundPayload:
    """Accuracy per background variant; the BG-Gap when both of its variants were measured."""

    KIND = "background"

    accuracy: dict[str, Any]
    bg_gap: Any
    # What the probe was fitted and scored on, e.g. "biased probe" (fitted where backgrounds
    # predict the class); empty for the study's default.
    condition: str = ""
    chance: Any = None  # what a guess scores (1/k for k classes), when recorded

    def to_dict(self) -> dict[str, Any]:
        data = {"accuracy": self.accuracy, "bg_gap": self.bg_gap}
        if self.condition:
            data["condition"] = self.condition
        if self.chance is not None:
            data["chance"] = self.chance
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackgroundPayload:
        accuracy = require_mapping(data, "accuracy", cls.KIND)
        return cls(
            accuracy={str(k): number(v) for k, v in accuracy.items()},
            bg_gap=number(data.get("bg_gap")),
            condition=text(data.get("condition")),
            chance=number(data.get("chance")),
        )


def record(
    accuracy: Mapping[str, float],
    bg_gap: float | None,
    *,
    model: str,
    condition: str = "",
    chance: float | None = None,
) -> None:
    """Record ``accuracy`` per variant with its ``bg_gap`` (``metrics.background.bg_gap``);
    ``condition`` names what the probe was fitted on when it is not the default (``"biased
    probe"``), ``chance`` what a guess scores."""
    payload = BackgroundPayload(dict(accuracy), bg_gap, condition, chance)
    record_artifact(BackgroundPayload.KIND, payload.to_dict(), model=model, label=condition)


def _contracts(document: ReportDocument, caveats: Mapping[str, str]) -> dict[str, Any] | None:
    """The BG-Gap contracts' results: the biased probe's among them, which the study
    records as a contract (with mixed_same and mixed_rand in its details), not as a table."""
    rows = []
    for result in document.results:
        if str(result.get("metric")) != "bg_gap":
            continue
        details = {str(d.get("item")): d.get("value") for d in records(result.get("details"))}
        interval = result.get("interval") if isinstance(result.get("interval"), Mapping) else {}
        model = str(result.get("model") or MISSING)
        passed = bool(result.get("passed"))
        rows.append(
            row(
                [
                    model_cell(model, model, caveats),
                    text(result.get("label"), MISSING),
                    format_number(number(details.get("mixed_same"))),
                    format_number(number(details.get("mixed_rand"))),
                    with_interval(
                        number(result.get("value")), interval.get("low"), interval.get("high"), 4
                    ),
                    format_bounds(number(result.get("low")), number(result.get("high")), "lower"),
                    {
                        "text": "passed" if passed else "FAILED",
                        "cls": "status " + ("status-improved" if passed else "status-refused"),
                    },
                ]
            )
        )
    if not rows:
        return None
    return table(
        "BG-Gap contracts",
        ["model", "probe", "mixed_same", "mixed_rand", "BG-Gap [interval]", "required", "outcome"],
        rows,
        numeric=(2, 3, 4, 5),
        note="Every BG-Gap contract of the run, with the accuracies it was computed from: a "
        "probe fitted where backgrounds predict the class (a biased probe) shows how readily "
        "the representation offers the background shortcut; one fitted on unrelated "
        "backgrounds should show no gap.",
    )


def render(document: ReportDocument) -> dict[str, Any] | None:
    entries = document.entries(BackgroundPayload)
    if not entries:
        return None
    caveats = model_caveats(document)
    variants: dict[str, None] = {}
    for e in entries:
        variants.update((v, None) for v in e.payload.accuracy)
    rows = [
        row(
            [
                model_cell(e.caption(e.payload.condition), e.model, caveats),
                *(format_number(e.payload.accuracy.get(v)) for v in variants),
                format_number(e.payload.bg_gap),
            ]
        )
        for e in entries
    ]
    # One accuracy scale for every model's bars, chance lines included.
    ylim = shared_range(
        [as_float(v) for e in entries for v in e.payload.accuracy.values()]
        + [as_float(e.payload.chance) for e in entries],
        ceiling=1.0,
    )
    bars = []
    for e in entries:
        chance = as_float(e.payload.chance)
        drawn = figure(
            "bar_chart",
            numbers(e.payload.accuracy),
            title=e.model,
            ylabel="accuracy",
            highlight=[v for v in BG_GAP_PAIR if v in e.payload.accuracy],
            highlight_label="BG-Gap pair",
            chance=chance if math.isfinite(chance) else None,
            ylim=ylim,
        )
        bars.append(panel(e.caption(e.payload.condition), drawn, note=caveats.get(e.model, "")))
    blocks: list[dict[str, Any]] = [
        table(
            "Accuracy per background variant and BG-Gap",
            ["model", *variants, "BG-Gap"],
            rows,
            numeric=range(1, len(variants) + 2),
            note=caveat_note(caveats, (e.model for e in entries)),
        ),
        figures(
            "Accuracy per background variant",
            bars,
            note="One accuracy scale for every model; the dotted line is chance (1/k), "
            "where it was recorded.",
        ),
    ]
    gaps = {
        e.caption(e.payload.condition): as_float(e.payload.bg_gap)
        for e in entries
        if e.payload.bg_gap is not None
    }
    if gaps:
        drawn = figure("bar_chart", gaps, title="BG-Gap", ylabel="BG-Gap")
        blocks.append(
            figures(
                "BG-Gap",
                [panel("all models", drawn)],
                note="Accuracy on mixed_same minus accuracy on mixed_rand: how much the "
                "prediction depends on the background matching the object's class. Lower is "
                "less reliance.",
            )
        )
    contracts = _contracts(document, caveats)
    if contracts is not None:
        blocks.append(contracts)
    return {"blocks": blocks}


def headlines(document: ReportDocument) -> list[Headline]:
    """BG-Gap and the accuracy on mixed_rand (object on a random class's background), per
    condition."""
    found = HeadlineRows(SECTION.id, SECTION.title)
    for e in document.entries(BackgroundPayload):
        p = e.payload
        suffix = f" ({p.condition})" if p.condition else ""
        gap = as_float(p.bg_gap)
        if math.isfinite(gap):
            found.row(
                ("bg_gap", p.condition),
                "BG-Gap" + suffix,
                "lower",
                metric="bg_gap",
                title="accuracy on mixed_same minus accuracy on mixed_rand",
            ).add(e.model, Measure(gap))
        rand = as_float(p.accuracy.get("mixed_rand"))
        if math.isfinite(rand):
            chance = as_float(p.chance)
            found.row(
                ("mixed_rand", p.condition),
                "accuracy on mixed_rand" + suffix,
                "higher",
                title="the object on the background of a random class's image",
            ).add(e.model, Measure(rand, chance=chance if math.isfinite(chance) else None))
    return found.rows()


def checks(document: ReportDocument) -> list[ChanceCheck]:
    """Accuracy on the original images, where chance was recorded."""
    found = []
    for e in document.entries(BackgroundPayload):
        value, chance = as_float(e.payload.accuracy.get("original")), as_float(e.payload.chance)
        if math.isfinite(value) and math.isfinite(chance):
            suffix = f", {e.payload.condition}" if e.payload.condition else ""
            found.append(
                ChanceCheck(e.model, f"clean accuracy (background study{suffix})", value, chance)
            )
    return found


SECTION = Section(
    "background",
    "background",
    "Background reliance",
    render,
    payloads=(BackgroundPayload,),
    headlines=headlines,
    checks=checks,
)
