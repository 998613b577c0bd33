"""What representations keep as information goes missing: similarity, probes, neighbours."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.blocks import figure, figures, grouped, panel, row, table
from pytest_sslrobust.report.document import (
    Entry,
    PayloadError,
    ReportDocument,
    floats,
    numbers,
    require_list,
    require_mapping,
)
from pytest_sslrobust.report.formatting import MISSING
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "variants": self.variants,
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeTablePayload:
        return cls(
            metric=str(data.get("metric", "")),
            variants=[str(v) for v in require_list(data, "variants", cls.KIND)],
            mean=floats(data.get("mean")),
            std=floats(data.get("std")),
        )


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


def record_probes(results: Mapping[str, ProbeResult], *, model: str) -> None:
    variants = list(results)
    payload = ProbeTablePayload(
        metric=next(iter(results.values())).metric if results else "balanced_accuracy",
        variants=variants,
        mean=[results[v].mean for v in variants],
        std=[results[v].std for v in variants],
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
        for e in group:
            finite = [v for r in e.payload.values for v in r if math.isfinite(v)]
            unit_range = bool(finite) and min(finite) >= 0 and max(finite) <= 1
            drawn = figure(
                "heatmap",
                e.payload.values,
                e.payload.names,
                e.payload.names,
                title=e.model,
                colorbar_label=metric,
                # One scale for every model when the metric lives in [0, 1] (CKA, CCA R²), so
                # that colours compare across panels.
                vmin=0.0 if unit_range else None,
                vmax=1.0 if unit_range else None,
            )
            panels.append(panel(e.model, drawn))
        title = f"Similarity between variants: {metric}"
        title += f" ({label})" if label and label != metric else ""
        blocks.append(figures(title, panels))
    return blocks


def _probe_cell(
    mean: Sequence[float], std: Sequence[float], i: int, best: float, bold: bool
) -> dict[str, str]:
    m = mean[i] if i < len(mean) else math.nan
    s = std[i] if i < len(std) else math.nan
    text = f"{m:.2f} ({s:.2f})" if math.isfinite(m) else MISSING
    if math.isfinite(m) and not math.isfinite(s):
        text = f"{m:.2f}"
    # Bold the best model per variant when several are compared.
    return {"text": text, "cls": "best" if bold and math.isfinite(m) and m == best else ""}


def _probes(entries: list[Entry[ProbeTablePayload]]) -> list[dict[str, Any]]:
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
                    e.caption(),
                    *(
                        _probe_cell(e.payload.mean, e.payload.std, i, best[i], len(group) > 1)
                        for i in range(len(variants))
                    ),
                ]
            )
            for e in group
        ]
        blocks.append(
            table(
                f"Linear probe: {metric.replace('_', ' ')}, mean (std) over folds",
                ["model", *variants],
                rows,
                numeric=range(1, len(variants) + 1),
            )
        )
    return blocks


def _neighbours(entries: list[Entry[NeighboursPayload]]) -> list[dict[str, Any]]:
    panels = []
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
            )
        else:
            drawn = figure("bar_chart", scores, title=e.model, ylabel="neighbour consistency")
        panels.append(panel(e.caption(), drawn))
    if not panels:
        return []
    note = (
        "Share of each image's nearest neighbours that stay neighbours under the variant, "
        "beside what chance would give."
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
    blocks = [
        *_similarity(document.entries(SimilarityPayload)),
        *_probes(document.entries(ProbeTablePayload)),
        *_neighbours(document.entries(NeighboursPayload)),
        *_embeddings(document.entries(EmbeddingPayload)),
    ]
    return {"blocks": blocks} if blocks else None


SECTION = Section(
    "representations",
    "missing",
    "Missing information",
    render,
    payloads=(SimilarityPayload, ProbeTablePayload, NeighboursPayload, EmbeddingPayload),
)
