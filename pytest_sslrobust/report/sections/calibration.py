"""The calibration section: calibration error, reliability diagrams, confidence per variant."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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
    PayloadError,
    ReportDocument,
    floats,
    number,
    numbers,
)
from pytest_sslrobust.report.formatting import as_float, format_number
from pytest_sslrobust.report.headlines import Headline, HeadlineRows, Measure
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.results import record_artifact

if TYPE_CHECKING:
    from pytest_sslrobust.metrics.readouts import ReliabilityDiagram


@dataclasses.dataclass(frozen=True)
class ReliabilityPayload:
    """A reliability diagram (confidence, accuracy and count per bin, ECE) and the mean
    confidence per variant."""

    KIND = "reliability"

    confidence: list[float]
    accuracy: list[float]
    counts: list[float]
    ece: Any
    confidence_by_variant: dict[str, float]
    chance: Any = None  # what a guess scores (1/k for k classes), when recorded

    def to_dict(self) -> dict[str, Any]:
        data = {
            "confidence": self.confidence,
            "accuracy": self.accuracy,
            "counts": self.counts,
            "ece": self.ece,
            "confidence_by_variant": self.confidence_by_variant,
        }
        if self.chance is not None:
            data["chance"] = self.chance
        return data

    def overall_accuracy(self) -> float:
        """The accuracy over every binned prediction (bins weighted by their counts)."""
        pairs = [
            (a, c)
            for a, c in zip(self.accuracy, self.counts, strict=False)
            if math.isfinite(a) and math.isfinite(c) and c > 0
        ]
        total = sum(c for _, c in pairs)
        return sum(a * c for a, c in pairs) / total if total else math.nan

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReliabilityPayload:
        if data.get("confidence") is None:
            raise PayloadError(f"Expected {cls.KIND} payload field 'confidence', but it is missing")
        return cls(
            confidence=floats(data["confidence"]),
            accuracy=floats(data.get("accuracy")),
            counts=floats(data.get("counts")),
            ece=number(data.get("ece")),
            confidence_by_variant=numbers(data.get("confidence_by_variant")),
            chance=number(data.get("chance")),
        )


def record(
    diagram: ReliabilityDiagram,
    confidence_by_variant: Mapping[str, float] | None,
    *,
    model: str,
    chance: float | None = None,
) -> None:
    """Record ``diagram`` (``metrics.readouts.reliability_diagram``), the mean confidence
    per variant and ``chance``, what a guess scores (1/k)."""

    import numpy as np

    def listed(values: Any) -> list[float]:
        array = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
        return list(array.tolist())

    payload = ReliabilityPayload(
        confidence=listed(diagram.confidence),
        accuracy=listed(diagram.accuracy),
        counts=listed(diagram.counts),
        ece=float(diagram.ece),
        confidence_by_variant=dict(confidence_by_variant or {}),
        chance=chance,
    )
    record_artifact(ReliabilityPayload.KIND, payload.to_dict(), model=model)


def render(document: ReportDocument) -> dict[str, Any] | None:
    entries = document.entries(ReliabilityPayload)
    if not entries:
        return None
    caveats = model_caveats(document)
    rows = []
    for e in entries:
        total = sum(c for c in e.payload.counts if math.isfinite(c))
        rows.append(
            row(
                [
                    model_cell(e.caption(), e.model, caveats),
                    format_number(e.payload.ece),
                    str(len(e.payload.counts)),
                    format_number(int(total)),
                ]
            )
        )
    diagrams = [
        panel(
            e.caption(),
            figure(
                "reliability_diagram",
                e.payload.confidence,
                e.payload.accuracy,
                e.payload.counts,
                ece=as_float(e.payload.ece),
                title=e.model,
            ),
        )
        for e in entries
    ]
    blocks: list[dict[str, Any]] = [
        table(
            "Expected calibration error",
            ["model", "ECE", "bins", "images"],
            rows,
            numeric=(1, 2, 3),
            note=caveat_note(caveats, (e.model for e in entries)),
        ),
        figures("Reliability diagrams", diagrams),
    ]
    shown = [e for e in entries if e.payload.confidence_by_variant]
    # One confidence scale for every model, with what a uniform guess gives (1/k).
    ylim = shared_range(
        [v for e in shown for v in e.payload.confidence_by_variant.values()]
        + [as_float(e.payload.chance) for e in shown],
        ceiling=1.0,
    )
    shifts = []
    for e in shown:
        chance = as_float(e.payload.chance)
        drawn = figure(
            "bar_chart",
            e.payload.confidence_by_variant,
            title=e.model,
            ylabel="mean confidence",
            highlight=[v for v in ("original",) if v in e.payload.confidence_by_variant],
            highlight_label="clean images",
            chance=chance if math.isfinite(chance) else None,
            chance_label=f"uniform guess ({chance:.3g})" if math.isfinite(chance) else None,
            ylim=ylim,
        )
        shifts.append(panel(e.caption(), drawn))
    if shifts:
        blocks.append(
            figures(
                "Mean confidence per variant",
                shifts,
                note="A model that stays confident on altered images while its accuracy falls "
                "is over-confident there. One scale for every model.",
            )
        )
    return {"blocks": blocks}


def headlines(document: ReportDocument) -> list[Headline]:
    found = HeadlineRows(SECTION.id, SECTION.title)
    for e in document.entries(ReliabilityPayload):
        ece = as_float(e.payload.ece)
        if math.isfinite(ece):
            found.row("ece", "ECE", "lower", title="expected calibration error of the readout").add(
                e.model, Measure(ece)
            )
    return found.rows()


def checks(document: ReportDocument) -> list[ChanceCheck]:
    """The readout's accuracy over its binned predictions, where chance was recorded."""
    found = []
    for e in document.entries(ReliabilityPayload):
        value, chance = e.payload.overall_accuracy(), as_float(e.payload.chance)
        if math.isfinite(value) and math.isfinite(chance):
            found.append(ChanceCheck(e.model, "clean accuracy (calibration)", value, chance))
    return found


SECTION = Section(
    "calibration",
    "calibration",
    "Confidence and calibration",
    render,
    payloads=(ReliabilityPayload,),
    headlines=headlines,
    checks=checks,
)
