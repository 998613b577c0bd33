"""What representations keep as information goes missing: similarity, probes, neighbours."""

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
from pytest_sslrobust.report.chance import ChanceCheck, model_caveats, near_chance
from pytest_sslrobust.report.document import (
    Entry,
    PayloadError,
    ReportDocument,
    floats,
    number,
    numbers,
    require_list,
    require_mapping,
)
from pytest_sslrobust.report.formatting import MISSING, as_float, format_number
from pytest_sslrobust.report.headlines import Headline, HeadlineRows, Measure
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.results import record_artifact

if TYPE_CHECKING:
    from pytest_sslrobust.metrics.embedding import Projection
    from pytest_sslrobust.metrics.readouts import ProbeResult
    from pytest_sslrobust.metrics.similarity import SimilarityMatrix


@dataclasses.dataclass(frozen=True)
class SimilarityPayload:
    """A matrix of one similarity metric between variants (``SimilarityMatrix.to_dict``)."""

    KIND = "similarity_matrix"

    metric: str
    names: list[str]
    values: list[list[float]]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.extra, "metric": self.metric, "names": self.names, "values": self.values}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimilarityPayload:
        values = data.get("values") or []
        if not isinstance(values, (list, tuple)):
            raise PayloadError(f"Expected {cls.KIND} values to be a list of rows")
        known = {"metric", "names", "values"}
        return cls(
            metric=str(data.get("metric", "")),
            names=[str(n) for n in data.get("names") or ()],
            values=[floats(r) for r in values],
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclasses.dataclass(frozen=True)
class ProbeTablePayload:
    """Linear-evaluation results per variant: mean and std over folds."""

    KIND = "probe_table"

    metric: str
    variants: list[str]
    mean: list[float]
    std: list[float]
    chance: Any = None  # what a guess scores (1/k for k classes), when recorded

    def to_dict(self) -> dict[str, Any]:
        data = {
            "metric": self.metric,
            "variants": self.variants,
            "mean": self.mean,
            "std": self.std,
        }
        if self.chance is not None:
            data["chance"] = self.chance
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeTablePayload:
        return cls(
            metric=str(data.get("metric", "")),
            variants=[str(v) for v in require_list(data, "variants", cls.KIND)],
            mean=floats(data.get("mean")),
            std=floats(data.get("std")),
            chance=number(data.get("chance")),
        )

    def value(self, variant: str) -> float:
        index = self.variants.index(variant) if variant in self.variants else len(self.mean)
        return self.mean[index] if index < len(self.mean) else math.nan


@dataclasses.dataclass(frozen=True)
class NeighboursPayload:
    """Nearest-neighbour consistency per variant, with what chance would give."""

    KIND = "neighbours"

    scores: dict[str, float]
    chance: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "chance": self.chance}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NeighboursPayload:
        return cls(
            scores=numbers(require_mapping(data, "scores", cls.KIND)),
            chance=numbers(data.get("chance")),
        )


@dataclasses.dataclass(frozen=True)
class EmbeddingPayload:
    """A 2-D projection of a sample of the points, with each point's variant."""

    KIND = "embedding"

    points: list[list[float]]
    groups: list[str]
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"points": self.points, "groups": self.groups, "method": self.method}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbeddingPayload:
        points = data.get("points") or []
        if not isinstance(points, (list, tuple)):
            raise PayloadError(f"Expected {cls.KIND} points to be a list of (x, y) pairs")
        return cls(
            points=[floats(point)[:2] for point in points],
            groups=[str(g) for g in data.get("groups") or ()],
            method=str(data.get("method") or "PCA"),
        )


# --------------------------------------------------------------------------- recording


def record_similarity(matrix: SimilarityMatrix, *, model: str, label: str = "") -> None:
    record_artifact(SimilarityPayload.KIND, matrix.to_dict(), model=model, label=label)


def record_probes(
    results: Mapping[str, ProbeResult], *, model: str, chance: float | None = None
) -> None:
    """Record linear-probe results per variant; ``chance``: what a guess scores (1/k)."""
    variants = list(results)
    payload = ProbeTablePayload(
        metric=next(iter(results.values())).metric if results else "balanced_accuracy",
        variants=variants,
        mean=[results[v].mean for v in variants],
        std=[results[v].std for v in variants],
        chance=chance,
    )
    record_artifact(ProbeTablePayload.KIND, payload.to_dict(), model=model)


def record_neighbours(
    scores: Mapping[str, float], chance: Mapping[str, float] | None, *, model: str
) -> None:
    payload = NeighboursPayload(dict(scores), dict(chance or {}))
    record_artifact(NeighboursPayload.KIND, payload.to_dict(), model=model)


def record_embedding(projection: Projection, *, model: str) -> None:
    payload = EmbeddingPayload(projection.points, projection.groups, projection.method)
    record_artifact(EmbeddingPayload.KIND, payload.to_dict(), model=model)


# --------------------------------------------------------------------------- rendering


def _similarity(entries: list[Entry[SimilarityPayload]]) -> list[dict[str, Any]]:
    blocks = []
    shown = [e for e in entries if e.payload.names and e.payload.values]
    for (metric, label), group in grouped(shown, lambda e: (e.payload.metric, e.artifact.label)):
        panels = []
        finite = [v for e in group for r in e.payload.values for v in r if math.isfinite(v)]
        # One colour scale for every model: [0, 1] when the metric lives there (CKA, CCA
        # R²), else the range of all the models' values, so that colours compare.
        unit_range = bool(finite) and min(finite) >= 0 and max(finite) <= 1
        low, high = (0.0, 1.0) if unit_range or not finite else (min(finite), max(finite))
        for e in group:
            drawn = figure(
                "heatmap",
                e.payload.values,
                e.payload.names,
                e.payload.names,
                title=e.model,
                colorbar_label=metric,
                vmin=low,
                vmax=high,
            )
            panels.append(panel(e.model, drawn))
        title = f"Similarity between variants: {metric}"
        title += f" ({label})" if label and label != metric else ""
        blocks.append(figures(title, panels))
    return blocks


def _probe_cell(payload: ProbeTablePayload, i: int, best: float, bold: bool) -> dict[str, str]:
    mean, std = payload.mean, payload.std
    m = mean[i] if i < len(mean) else math.nan
    s = std[i] if i < len(std) else math.nan
    text = f"{m:.2f} ({s:.2f})" if math.isfinite(m) else MISSING
    if math.isfinite(m) and not math.isfinite(s):
        text = f"{m:.2f}"
    # Bold the best model per variant when several are compared.
    cell = {"text": text, "cls": "best" if bold and math.isfinite(m) and m == best else ""}
    if near_chance(m, payload.chance):
        chance = format_number(payload.chance, 3)
        cell.update(badge="≈ chance", badge_cls="caveat", badge_title=f"chance {chance}")
    return cell


def _probes(
    entries: list[Entry[ProbeTablePayload]], caveats: Mapping[str, str]
) -> list[dict[str, Any]]:
    blocks = []
    for (metric, variants), group in grouped(
        entries, lambda e: (e.payload.metric, tuple(e.payload.variants))
    ):
        best = [
            max(
                (
                    m[i]
                    for m in (e.payload.mean for e in group)
                    if i < len(m) and math.isfinite(m[i])
                ),
                default=math.nan,
            )
            for i in range(len(variants))
        ]
        rows = [
            row(
                [
                    model_cell(e.caption(), e.model, caveats),
                    *(
                        _probe_cell(e.payload, i, best[i], len(group) > 1)
                        for i in range(len(variants))
                    ),
                ]
            )
            for e in group
        ]
        chances = {
            e.caption(): format_number(e.payload.chance, 3)
            for e in group
            if e.payload.chance is not None
        }
        note = ""
        if chances and len(set(chances.values())) == 1:
            note = f"Chance: {next(iter(chances.values()))} (1/k for k classes)."
        elif chances:
            note = "Chance: " + ", ".join(f"{m} {c}" for m, c in chances.items()) + "."
        if chances:
            note += f" ≈ chance: below {1.5:g} × chance."
        blocks.append(
            table(
                f"Linear probe: {metric.replace('_', ' ')}, mean (std) over folds",
                ["model", *variants],
                rows,
                numeric=range(1, len(variants) + 1),
                note=caveat_note(caveats, (e.model for e in group), note),
            )
        )
    return blocks


def _neighbours(entries: list[Entry[NeighboursPayload]]) -> list[dict[str, Any]]:
    panels = []
    # One scale for every model's panel, chance bars included.
    ylim = shared_range(
        [v for e in entries for v in (*e.payload.scores.values(), *e.payload.chance.values())],
        ceiling=1.0,
    )
    for e in entries:
        scores, chance = e.payload.scores, e.payload.chance
        if not scores:
            continue
        if chance:
            drawn = figure(
                "grouped_bars",
                {"score": scores, "chance": {v: chance.get(v, math.nan) for v in scores}},
                title=e.model,
                ylabel="neighbour consistency",
                ylim=ylim,
            )
        else:
            drawn = figure(
                "bar_chart", scores, title=e.model, ylabel="neighbour consistency", ylim=ylim
            )
        panels.append(panel(e.caption(), drawn))
    if not panels:
        return []
    note = (
        "Share of each image's nearest neighbours that stay neighbours under the variant, "
        "beside what chance would give. One scale for every model."
    )
    return [figures("Nearest-neighbour consistency with the original images", panels, note)]


def _embeddings(entries: list[Entry[EmbeddingPayload]]) -> list[dict[str, Any]]:
    panels = [
        panel(
            e.caption(e.payload.method),
            figure(
                "embedding_scatter",
                e.payload.points,
                e.payload.groups,
                title=e.model,
                method=e.payload.method,
            ),
        )
        for e in entries
        if e.payload.points
    ]
    return [figures("Embedding of a sample, coloured by variant", panels)] if panels else []


def render(document: ReportDocument) -> dict[str, Any] | None:
    caveats = model_caveats(document)
    blocks = [
        *_similarity(document.entries(SimilarityPayload)),
        *_probes(document.entries(ProbeTablePayload), caveats),
        *_neighbours(document.entries(NeighboursPayload)),
        *_embeddings(document.entries(EmbeddingPayload)),
    ]
    return {"blocks": blocks} if blocks else None


def headlines(document: ReportDocument) -> list[Headline]:
    """Probe accuracy per variant (the masking study's table) and each similarity metric's
    mean over the variants against the original."""
    found = HeadlineRows(SECTION.id, SECTION.title)
    for e in document.entries(ProbeTablePayload):
        p = e.payload
        metric = p.metric.replace("_", " ")
        for variant in p.variants:
            value = p.value(variant)
            if not math.isfinite(value):
                continue
            found.row(
                ("probe", p.metric, variant),
                f"probe {metric}, {variant}",
                "higher",
                title=f"linear probe, mean over folds, on the {variant} images",
            ).add(e.model, Measure(value, chance=as_float(p.chance) if p.chance else None))
    for e in document.entries(SimilarityPayload):
        p = e.payload
        if "original" not in p.names or not p.values:
            continue
        at = p.names.index("original")
        others = [
            r[at]
            for i, r in enumerate(p.values)
            if i != at and at < len(r) and math.isfinite(r[at])
        ]
        if not others:
            continue
        found.row(
            ("similarity", p.metric),
            f"mean {p.metric.replace('_', ' ')} to original",
            "higher",
            title=f"mean over the {len(others)} other variants of {p.metric}(original, variant)",
        ).add(e.model, Measure(sum(others) / len(others)))
    return found.rows()


def checks(document: ReportDocument) -> list[ChanceCheck]:
    """The probe's accuracy on the original images, where chance was recorded."""
    found = []
    for e in document.entries(ProbeTablePayload):
        value, chance = e.payload.value("original"), as_float(e.payload.chance)
        if math.isfinite(value) and math.isfinite(chance):
            metric = e.payload.metric.replace("_", " ")
            found.append(ChanceCheck(e.model, f"clean probe {metric}", value, chance))
    return found


SECTION = Section(
    "representations",
    "missing",
    "Missing information",
    render,
    payloads=(SimilarityPayload, ProbeTablePayload, NeighboursPayload, EmbeddingPayload),
    headlines=headlines,
    checks=checks,
)
