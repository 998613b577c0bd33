"""The corruption section: error tables, CE/mCE against a reference, severity curves, SSIM."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.blocks import (
    caveat_note,
    families_of,
    figure,
    figures,
    model_cell,
    panel,
    protocol_block,
    row,
    shared_range,
    table,
)
from pytest_sslrobust.report.chance import ChanceCheck, model_caveats
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
from pytest_sslrobust.report.headlines import Headline, HeadlineRows, Measure
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.results import record_artifact
from pytest_sslrobust.vocabulary import COMMON

if TYPE_CHECKING:
    from pytest_sslrobust.metrics.corruption import CorruptionErrors, ReferenceScores

# Relative CE divides by how much the reference's error rises over its clean error, summed
# over the five severities. Below this (two points of error over five severities) the
# reference barely degrades and the ratio is noise divided by almost nothing: a bundled
# supervised reference on digits gave a relative mCE of -90.81. Shown as n/a, with why.
MIN_REFERENCE_EXCESS = 0.02
NOT_APPLICABLE = "n/a"


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
    # Per common corruption: the reference's summed error minus its clean error (what
    # relative CE divides by), when the recorder could compute it.
    reference_excess: dict[str, float] | None = None
    # What a guess scores with the readout (1/k for k classes), when recorded.
    chance: Any = None

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
        if self.reference_excess is not None:
            data["reference_excess"] = self.reference_excess
        if self.chance is not None:
            data["chance"] = self.chance
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorruptionPayload:
        errors = require_mapping(data, "errors", cls.KIND)
        ssim = mapping_of(data.get("ssim"))
        ce = data.get("ce")
        excess = data.get("reference_excess")
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
            reference_excess=numbers(excess) if isinstance(excess, Mapping) else None,
            chance=number(data.get("chance")),
        )

    def flat_reference(self) -> dict[str, float]:
        """The common corruptions under which the reference barely degrades (summed error
        over its clean error below ``MIN_REFERENCE_EXCESS``), with that excess."""
        excess = self.reference_excess or {}
        return {
            name: value
            for name, value in excess.items()
            if name in COMMON and math.isfinite(value) and value < MIN_REFERENCE_EXCESS
        }

    def relative_mce_note(self) -> str:
        """Why the relative mCE is not shown, or empty when it is."""
        flat = self.flat_reference()
        if not flat or self.relative_mce is None:
            return ""
        worst = sorted(flat.items(), key=lambda pair: pair[1])
        listed = ", ".join(f"{name} (+{format_number(value, 2)})" for name, value in worst[:4])
        more = f" and {len(worst) - 4} more" if len(worst) > 4 else ""
        reference = self.reference or "the reference"
        return (
            f"Relative mCE n/a: {reference} barely degrades under {listed}{more} (its error "
            f"summed over the severities rises less than {MIN_REFERENCE_EXCESS:g} above its "
            "clean error), so relative CE divides by almost nothing and its value means "
            "nothing."
        )


def record(
    errors: CorruptionErrors,
    scores: ReferenceScores,
    *,
    reference: str,
    ssim: Mapping[str, Sequence[float]],
    model: str,
    reference_excess: Mapping[str, float] | None = None,
    chance: float | None = None,
) -> None:
    """Record ``errors`` with ``scores`` (``metrics.corruption.reference_scores``) and the
    mean SSIM per corruption and severity (``metrics.corruption.mean_ssim``);
    ``reference_excess`` is ``metrics.corruption.reference_sums(..., relative=True)`` (what
    relative CE divides by) and ``chance`` what a guess scores with the readout."""
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
        reference_excess=None if reference_excess is None else dict(reference_excess),
        chance=chance,
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


def _relative_cell(payload: CorruptionPayload) -> Any:
    note = payload.relative_mce_note()
    if note:
        return {"text": NOT_APPLICABLE, "title": note, "cls": "na"}
    return format_number(payload.relative_mce)


def _summary(entries: list[Entry[CorruptionPayload]], caveats: Mapping[str, str]) -> dict[str, Any]:
    rows = [
        row(
            [
                model_cell(e.caption(), e.model, caveats),
                format_number(e.payload.mce),
                _relative_cell(e.payload),
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
        for note in (e.payload.reference_note, e.payload.relative_mce_note()):
            if note:
                notes.setdefault(note, []).append(e.caption())
    columns = ["model", "mCE", "relative mCE", "clean error", "images", "readout", "reference"]
    return table(
        "Summary per model",
        [*columns, "corruptions"],
        rows,
        numeric=(1, 2, 3, 4, 7),
        note=caveat_note(
            caveats,
            (e.model for e in entries),
            " ".join(f"{', '.join(models)}: {note}" for note, models in notes.items()),
        ),
    )


def _ce_bars(entries: list[Entry[CorruptionPayload]]) -> dict[str, Any] | None:
    panels = []
    # One scale for every model's bars, so that their heights compare.
    ylim = shared_range(
        [v for e in entries for v in (e.payload.ce or {}).values()]
        + [as_float(e.payload.mce) for e in entries if e.payload.ce is not None]
    )
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
            ylim=ylim,
        )
        panels.append(panel(e.caption(), drawn))
    if not panels:
        return None
    return figures(
        "Corruption error (CE) per corruption",
        panels,
        note="Each corruption's error summed over severities, relative to the reference "
        "model; the line is the mean (mCE). One scale for every model.",
    )


def _ssim_scatter(entries: list[Entry[CorruptionPayload]]) -> dict[str, Any] | None:
    panels = []
    points = [(e, ssim_points(e.payload.ssim, e.payload.errors)) for e in entries if e.payload.ssim]
    ylim = shared_range([y for _, (_, ys, _, _) in points for y in ys], ceiling=100.0)
    for e, (x, y, labels, irregular) in points:
        drawn = figure(
            "scatter",
            x,
            y,
            labels,
            title=e.model,
            xlabel="mean SSIM to the clean image",
            ylabel="mean error (%)",
            ylim=ylim,
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
        "sensitive to them than their pixel change suggests. One error scale for every "
        "model.",
    )


def chance_error(payload: CorruptionPayload) -> float | None:
    """The error a guess makes with the payload's readout (1 - chance), when recorded."""
    chance = as_float(payload.chance)
    return 1.0 - chance if math.isfinite(chance) and 0 < chance < 1 else None


def _curves(entries: list[Entry[CorruptionPayload]]) -> dict[str, Any]:
    # One error scale for every model (in percent, as plotted), the chance line included.
    top = shared_range(
        [100 * v for e in entries for values in e.payload.errors.values() for v in values]
        + [100 * c for e in entries if (c := chance_error(e.payload)) is not None],
        ceiling=100.0,
        pad=0.05,
    )
    # Only the members each model was measured on: a family is a panel, and plots refuses
    # members without errors. Corruptions in no family get an "other" panel.
    panels = []
    for e in entries:
        guess = chance_error(e.payload)
        drawn = figure(
            "severity_curves",
            e.payload.errors,
            title=e.model,
            families=families_of(e.payload.errors) or None,
            ymax=top[1] if top is not None else None,
            chance=guess,
            chance_label=f"chance error ({100 * guess:.3g}%)" if guess is not None else None,
        )
        panels.append(panel(e.caption(), drawn))
    return figures(
        "Error by severity, per corruption family",
        panels,
        note="One error scale for every model; the dotted line is the error of a guess "
        "(1 - 1/k for a k-class readout), where chance was recorded.",
    )


def render(document: ReportDocument) -> dict[str, Any] | None:
    entries = document.entries(CorruptionPayload)
    if not entries:
        return None
    caveats = model_caveats(document)
    heatmaps = [
        panel(e.caption(), figure("error_heatmap", e.payload.errors, title=e.model))
        for e in entries
    ]
    blocks = [
        _summary(entries, caveats),
        figures("Error by corruption and severity", heatmaps),
        _ce_bars(entries),
        _curves(entries),
        _ssim_scatter(entries),
        protocol_block("Protocols", entries),
    ]
    return {"blocks": [block for block in blocks if block is not None]}


def mean_error(payload: CorruptionPayload) -> float:
    """The mean error over every measured cell (corruption x severity)."""
    cells = [v for values in payload.errors.values() for v in values if math.isfinite(v)]
    return sum(cells) / len(cells) if cells else math.nan


def headlines(document: ReportDocument) -> list[Headline]:
    """mCE, relative mCE (n/a where the reference barely degrades) and the mean error over
    the cells, per readout."""
    found = HeadlineRows(SECTION.id, SECTION.title)
    entries = document.entries(CorruptionPayload)
    several = len({e.payload.readout for e in entries}) > 1
    for e in entries:
        p = e.payload
        readout = p.readout or ""
        suffix = f", {readout}" if several and readout else ""
        mce = as_float(p.mce)
        if math.isfinite(mce):
            reference = f" (reference: {p.reference})" if p.reference else ""
            found.row(
                ("mce", readout),
                "mCE" + suffix,
                "lower",
                metric="mce",
                title=f"mean corruption error{reference}",
            ).add(e.model, Measure(mce))
        relative = as_float(p.relative_mce)
        note = p.relative_mce_note()
        if math.isfinite(relative) or note:
            measure = Measure(relative)
            if note:
                measure = Measure(relative, shown=NOT_APPLICABLE, note=note, ranked=False)
            found.row(
                ("relative_mce", readout), "relative mCE" + suffix, "lower", metric="relative_mce"
            ).add(e.model, measure)
        error = mean_error(p)
        if math.isfinite(error):
            found.row(
                ("mean_error", readout),
                "mean corrupted error" + suffix,
                "lower",
                percent=True,
                title="top-1 error averaged over every corruption and severity measured",
            ).add(e.model, Measure(error))
    return found.rows()


def checks(document: ReportDocument) -> list[ChanceCheck]:
    """Clean accuracy (1 - clean error) of the readouts recorded with their chance."""
    found = []
    for e in document.entries(CorruptionPayload):
        clean, chance = as_float(e.payload.clean_error), as_float(e.payload.chance)
        if math.isfinite(clean) and math.isfinite(chance):
            readout = f" ({e.payload.readout})" if e.payload.readout else ""
            found.append(ChanceCheck(e.model, f"clean accuracy{readout}", 1 - clean, chance))
    return found


SECTION = Section(
    "corruption",
    "corruption",
    "Corruption robustness",
    render,
    payloads=(CorruptionPayload,),
    headlines=headlines,
    checks=checks,
)
