"""The calibration section: calibration error, reliability diagrams, confidence per variant."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.blocks import figure, figures, panel, row, table
from pytest_sslrobust.report.document import (
    PayloadError,
    ReportDocument,
    floats,
    number,
    numbers,
)
from pytest_sslrobust.report.formatting import as_float, format_number
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence": self.confidence,
            "accuracy": self.accuracy,
            "counts": self.counts,
            "ece": self.ece,
            "confidence_by_variant": self.confidence_by_variant,
        }

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
        )


def record(
    diagram: ReliabilityDiagram,
    confidence_by_variant: Mapping[str, float] | None,
    *,
    model: str,
) -> None:
    """Record ``diagram`` (``metrics.readouts.reliability_diagram``) and the mean confidence
    per variant."""

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
    )
    record_artifact(ReliabilityPayload.KIND, payload.to_dict(), model=model)


def render(document: ReportDocument) -> dict[str, Any] | None:
    entries = document.entries(ReliabilityPayload)
    if not entries:
        return None
    rows = []
    for e in entries:
        total = sum(c for c in e.payload.counts if math.isfinite(c))
        rows.append(
            row(
                [
                    e.caption(),
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
        ),
        figures("Reliability diagrams", diagrams),
    ]
    shifts = [
        panel(
            e.caption(),
            figure(
                "bar_chart",
                e.payload.confidence_by_variant,
                title=e.model,
                ylabel="mean confidence",
                highlight=[v for v in ("original",) if v in e.payload.confidence_by_variant],
                highlight_label="clean images",
            ),
        )
        for e in entries
        if e.payload.confidence_by_variant
    ]
    if shifts:
        blocks.append(
            figures(
                "Mean confidence per variant",
                shifts,
                note="A model that stays confident on altered images while its accuracy falls "
                "is over-confident there.",
            )
        )
    return {"blocks": blocks}


SECTION = Section(
    "calibration",
    "calibration",
    "Confidence and calibration",
    render,
    payloads=(ReliabilityPayload,),
)
