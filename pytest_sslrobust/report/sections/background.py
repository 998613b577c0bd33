"""The background section: accuracy per ImageNet-9 background variant and the BG-Gap."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pytest_sslrobust.report.blocks import figure, figures, panel, row, table
from pytest_sslrobust.report.document import ReportDocument, number, numbers, require_mapping
from pytest_sslrobust.report.formatting import as_float, format_number
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.results import record_artifact

BG_GAP_PAIR = ("mixed_same", "mixed_rand")


@dataclasses.dataclass(frozen=True)
class BackgroundPayload:
    """Accuracy per background variant; the BG-Gap when both of its variants were measured."""

    KIND = "background"

    accuracy: dict[str, Any]
    bg_gap: Any

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "bg_gap": self.bg_gap}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackgroundPayload:
        accuracy = require_mapping(data, "accuracy", cls.KIND)
        return cls(
            accuracy={str(k): number(v) for k, v in accuracy.items()},
            bg_gap=number(data.get("bg_gap")),
        )


def record(accuracy: Mapping[str, float], bg_gap: float | None, *, model: str) -> None:
    """Record ``accuracy`` per variant with its ``bg_gap`` (``metrics.background.bg_gap``)."""
    payload = BackgroundPayload(dict(accuracy), bg_gap)
    record_artifact(BackgroundPayload.KIND, payload.to_dict(), model=model)


def render(document: ReportDocument) -> dict[str, Any] | None:
    entries = document.entries(BackgroundPayload)
    if not entries:
        return None
    variants: dict[str, None] = {}
    for e in entries:
        variants.update((v, None) for v in e.payload.accuracy)
    rows = [
        row(
            [
                e.caption(),
                *(format_number(e.payload.accuracy.get(v)) for v in variants),
                format_number(e.payload.bg_gap),
            ]
        )
        for e in entries
    ]
    bars = [
        panel(
            e.caption(),
            figure(
                "bar_chart",
                numbers(e.payload.accuracy),
                title=e.model,
                ylabel="accuracy",
                highlight=[v for v in BG_GAP_PAIR if v in e.payload.accuracy],
                highlight_label="BG-Gap pair",
            ),
        )
        for e in entries
    ]
    blocks: list[dict[str, Any]] = [
        table(
            "Accuracy per background variant and BG-Gap",
            ["model", *variants, "BG-Gap"],
            rows,
            numeric=range(1, len(variants) + 2),
        ),
        figures("Accuracy per background variant", bars),
    ]
    gaps = {
        e.caption(): as_float(e.payload.bg_gap) for e in entries if e.payload.bg_gap is not None
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
    return {"blocks": blocks}


SECTION = Section(
    "background", "background", "Background reliance", render, payloads=(BackgroundPayload,)
)
