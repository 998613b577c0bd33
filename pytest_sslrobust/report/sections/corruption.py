"""The corruption section: error tables, CE/mCE against a reference, severity curves, SSIM."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.blocks import (
    families_of,
    figure,
    figures,
    panel,
    protocol_block,
    row,
    table,
)
from pytest_sslrobust.report.document import (
    Entry,
    ReportDocument,
    floats,
    mapping_of,
    number,
    numbers,
    require_mapping,
)
from pytest_sslrobust.report.formatting import MISSING, as_float, format_number, percent
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.results import record_artifact

if TYPE_CHECKING:
    from pytest_sslrobust.metrics.corruption import CorruptionErrors, ReferenceScores


@dataclasses.dataclass(frozen=True)
class CorruptionPayload:
    """A model's error table with its CE/mCE against a reference and the mean SSIM per cell."""

    KIND = "corruption_errors"

    errors: dict[str, list[float]]
    clean_error: Any
    n: Any
    readout: str | None
    protocol: dict[str, Any]
    reference: str | None
    ce: dict[str, float] | None
    mce: Any
    relative_mce: Any
    reference_note: str = ""
    ssim: dict[str, list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "errors": self.errors,
            "clean_error": self.clean_error,
            "n": self.n,
            "readout": self.readout,
            "protocol": self.protocol,
            "reference": self.reference,
            "ce": self.ce,
            "mce": self.mce,
            "relative_mce": self.relative_mce,
        }
        if self.reference_note:
            data["reference_note"] = self.reference_note
        if self.ssim:
            data["ssim"] = self.ssim
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorruptionPayload:
        errors = require_mapping(data, "errors", cls.KIND)
        ssim = mapping_of(data.get("ssim"))
        ce = data.get("ce")
        return cls(
            errors={str(k): floats(v) for k, v in errors.items()},
            clean_error=number(data.get("clean_error")),
            n=number(data.get("n")),
            readout=None if data.get("readout") is None else str(data["readout"]),
            protocol=mapping_of(data.get("protocol")) or {},
            reference=None if data.get("reference") is None else str(data["reference"]),
            ce=numbers(ce) if isinstance(ce, Mapping) else None,
            mce=number(data.get("mce")),
            relative_mce=number(data.get("relative_mce")),
            reference_note=str(data.get("reference_note") or ""),
            ssim=None
            if ssim is None
            else {k: floats(v) for k, v in ssim.items() if isinstance(v, (list, tuple))},
        )


def record(
    errors: CorruptionErrors,
    scores: ReferenceScores,
    *,
    reference: str,
    ssim: Mapping[str, Sequence[float]],
    model: str,
) -> None:
    """Record ``errors`` with ``scores`` (``metrics.corruption.reference_scores``) and the
    mean SSIM per corruption and severity (``metrics.corruption.mean_ssim``)."""
    table = errors.to_dict()
    payload = CorruptionPayload(
        errors=table["errors"],
        clean_error=table["clean_error"],
        n=table["n"],
        readout=table["readout"],
        protocol=table["protocol"],
        reference=reference,
        ce=scores.ce,
        mce=scores.mce,
        relative_mce=scores.relative_mce,
        reference_note=scores.note,
        ssim={name: list(values) for name, values in ssim.items()},
    )
    record_artifact(CorruptionPayload.KIND, payload.to_dict(), model=model)


def ssim_points(
    ssim: Mapping[str, Sequence[float]], errors: Mapping[str, Sequence[float]]
) -> tuple[list[float], list[float], list[str], list[str]]:
    """Mean SSIM and mean error (%) per corruption; labels only for the irregular points.

    A point is irregular when its residual from a least-squares line is beyond 1.5 standard
    deviations of the residuals: with 15-19 points that picks the few worth a look.
    """
    names, xs, ys = [], [], []
    for name, values in ssim.items():
        rates = [v for v in errors.get(name, ()) if math.isfinite(v)]
        cells = [v for v in values if math.isfinite(v)]
        if cells and rates:
            names.append(name)
            xs.append(sum(cells) / len(cells))
            ys.append(100 * sum(rates) / len(rates))
    irregular: list[str] = []
    if len(xs) >= 4:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
        residuals = [y - (my + slope * (x - mx)) for x, y in zip(xs, ys, strict=True)]
        spread = math.sqrt(sum(r * r for r in residuals) / len(residuals))
        irregular = [
            n for n, r in zip(names, residuals, strict=True) if spread and abs(r) > 1.5 * spread
        ]
    labels = [n if n in irregular else "" for n in names]
    return xs, ys, labels, irregular


def _summary(entries: list[Entry[CorruptionPayload]]) -> dict[str, Any]:
    rows = [
        row(
            [
                e.caption(),
                format_number(e.payload.mce),
                format_number(e.payload.relative_mce),
                percent(e.payload.clean_error),
                format_number(e.payload.n),
                e.payload.readout or MISSING,
                e.payload.reference or MISSING,
                str(len(e.payload.errors)),
            ]
        )
        for e in entries
    ]
    # Why mCE is missing is a paragraph, often the same for every model: said once, below.
    notes: dict[str, list[str]] = {}
    for e in entries:
        if e.payload.reference_note:
            notes.setdefault(e.payload.reference_note, []).append(e.caption())
    columns = ["model", "mCE", "relative mCE", "clean error", "images", "readout", "reference"]
    return table(
        "Summary per model",
        [*columns, "corruptions"],
        rows,
        numeric=(1, 2, 3, 4, 7),
        note=" ".join(f"{', '.join(models)}: {note}" for note, models in notes.items()),
    )


def _ce_bars(entries: list[Entry[CorruptionPayload]]) -> dict[str, Any] | None:
    panels = []
    for e in entries:
        if e.payload.ce is None:
            continue
        mce = as_float(e.payload.mce)
        shown = math.isfinite(mce)
        drawn = figure(
            "bar_chart",
            e.payload.ce,
            title=e.model,
            ylabel="CE",
            reference=mce if shown else None,
            reference_label=f"mCE {format_number(mce)}" if shown else None,
        )
        panels.append(panel(e.caption(), drawn))
    if not panels:
        return None
    return figures(
        "Corruption error (CE) per corruption",
        panels,
        note="Each corruption's error summed over severities, relative to the reference "
        "model; the line is the mean (mCE).",
    )


def _ssim_scatter(entries: list[Entry[CorruptionPayload]]) -> dict[str, Any] | None:
    panels = []
    for e in entries:
        if not e.payload.ssim:
            continue
        x, y, labels, irregular = ssim_points(e.payload.ssim, e.payload.errors)
        drawn = figure(
            "scatter",
            x,
            y,
            labels,
            title=e.model,
            xlabel="mean SSIM to the clean image",
            ylabel="mean error (%)",
        )
        note = "off the trend: " + ", ".join(irregular) if irregular else ""
        panels.append(panel(e.caption(), drawn, note=note))
    if not panels:
        return None
    return figures(
        "How much an image changes (SSIM) against how much the error grows",
        panels,
        note="One point per corruption, averaged over severities; corruptions far from "
        "the fitted trend are labelled: the model is more (above) or less (below) "
        "sensitive to them than their pixel change suggests.",
    )


def render(document: ReportDocument) -> dict[str, Any] | None:
    entries = document.entries(CorruptionPayload)
    if not entries:
        return None
    heatmaps = [
        panel(e.caption(), figure("error_heatmap", e.payload.errors, title=e.model))
        for e in entries
    ]
    # Only the members each model was measured on: a family is a panel, and plots refuses
    # members without errors. Corruptions in no family get an "other" panel.
    curves = [
        panel(
            e.caption(),
            figure(
                "severity_curves",
                e.payload.errors,
                title=e.model,
                families=families_of(e.payload.errors) or None,
            ),
        )
        for e in entries
    ]
    blocks = [
        _summary(entries),
        figures("Error by corruption and severity", heatmaps),
        _ce_bars(entries),
        figures("Error by severity, per corruption family", curves),
        _ssim_scatter(entries),
        protocol_block("Protocols", entries),
    ]
    return {"blocks": [block for block in blocks if block is not None]}


SECTION = Section(
    "corruption", "corruption", "Corruption robustness", render, payloads=(CorruptionPayload,)
)
