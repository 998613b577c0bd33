"""The attribution section: focus per variant, focus shift against severity, maps over images."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.blocks import (
    families_of,
    figure,
    figures,
    image_uri,
    panel,
    preview_rows,
    protocol_block,
    row,
    severity_rows,
    table,
    thumb_grid,
)
from pytest_sslrobust.report.document import (
    Entry,
    ReportDocument,
    floats,
    mapping_of,
    number,
    records,
)
from pytest_sslrobust.report.formatting import MISSING, format_number, share
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.results import record_artifact
from pytest_sslrobust.vocabulary import SEVERITIES, corruption_cell

if TYPE_CHECKING:
    from pytest_sslrobust.attribution.sets import AttributionSet

NOTE = (
    "Means over the images. Rank shift: 1 - the Spearman correlation between a variant's map "
    "and the clean map of the same image (0 = the pixels ranked the same, 1 = unrelated, "
    "2 = reversed). Top-k overlap: the share of the clean map's k most-attended pixels{k} "
    "that stay among the variant's k most-attended (1 = the same pixels). Foreground focus: "
    "the share of the map on the object, with chance in brackets (the object's share of the "
    "image, what an even map scores). Entropy: how evenly the map spreads over the pixels "
    "(1 = evenly, 0 = on one pixel). Empty maps: maps without any evidence, made uniform (so "
    "they count as even)."
)
PROTOCOL_KEYS = ("data", "split", "backbone_fingerprint", "image_size", "seed", "subset")


@dataclasses.dataclass(frozen=True)
class AttributionPayload:
    """Focus measures of one method's maps per variant, rank shift per corruption and
    severity, overlays of the maps on a few images, and the protocol."""

    KIND = "attribution"

    method: str | None
    target: str | None
    images: Any
    split: str | None
    top_k: Any
    measures: list[dict[str, Any]]
    severity: dict[str, list[float | None]]
    overlays: list[dict[str, Any]]
    protocol: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # A severity not measured is None in the JSON form (NaN once read, for plotting).
        data["severity"] = {
            name: [None if v is None or math.isnan(v) else v for v in values]
            for name, values in self.severity.items()
        }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttributionPayload:
        severity = mapping_of(data.get("severity")) or {}
        overlays = []
        for entry in records(data.get("overlays")):
            tiles = [
                {"id": str(tile.get("id", "")), "uri": str(tile.get("uri") or "")}
                for tile in records(entry.get("tiles"))
            ]
            overlays.append({"item": entry.get("item"), "tiles": tiles})
        return cls(
            method=None if not data.get("method") else str(data["method"]),
            target=None if not data.get("target") else str(data["target"]),
            images=number(data.get("images")),
            split=None if not data.get("split") else str(data["split"]),
            top_k=number(data.get("top_k")),
            measures=[dict(m) for m in records(data.get("measures"))],
            severity={k: floats(v) for k, v in severity.items() if isinstance(v, (list, tuple))},
            overlays=overlays,
            protocol=mapping_of(data.get("protocol")) or {},
        )


def measure_rows(
    clean: AttributionSet, altered: Sequence[AttributionSet], top_k: float
) -> tuple[list[dict[str, Any]], dict[str, dict[int, float]], list[int]]:
    """Mean focus measures per variant, rank shift per corruption and severity, and the
    altered sets' indices, the one whose maps moved most first."""
    rows = []
    curves: dict[str, dict[int, float]] = {}
    moved: list[tuple[float, int]] = []
    for index, attributed in enumerate([clean, *altered]):
        measures: dict[str, Any] = {
            "variant": attributed.variant,
            "entropy": float(attributed.entropy().mean()),
            "degenerate": attributed.degenerate,
        }
        if index:
            shift = attributed.shift_from(clean, top_k=top_k)
            measures["rank_shift"] = float(shift["rank_shift"].mean())
            measures["topk_overlap"] = float(shift["topk_overlap"].mean())
            moved.append((measures["rank_shift"], index - 1))
            cell = corruption_cell(attributed.variant)
            if cell is not None and cell[1] in SEVERITIES:
                curves.setdefault(cell[0], {})[cell[1]] = measures["rank_shift"]
        if attributed.masks is not None:
            try:
                measures["foreground_focus"] = float(attributed.foreground_focus().mean())
                measures["chance_focus"] = float(attributed.chance_focus().mean())
            except ValueError:  # an image without foreground: focus is not defined
                pass
        rows.append(measures)
    order = [i for _, i in sorted(moved, key=lambda pair: -pair[0])]
    return rows, curves, order


def record(
    clean: AttributionSet,
    rows: list[dict[str, Any]],
    curves: Mapping[str, Mapping[int, float]],
    overlays: list[dict[str, Any]],
    *,
    top_k: float,
    model: str,
) -> None:
    """Record the measures of ``measure_rows`` and the overlay tiles of ``clean``'s images."""
    protocol = {key: clean.protocol.get(key) for key in PROTOCOL_KEYS if key in clean.protocol}
    protocol.update(method=clean.method, readout=clean.target, images=len(clean))
    payload = AttributionPayload(
        method=clean.method,
        target=clean.target,
        images=len(clean),
        split=clean.split,
        top_k=top_k,
        measures=rows,
        severity={name: [points.get(s) for s in SEVERITIES] for name, points in curves.items()},
        overlays=overlays,
        protocol=protocol,
    )
    label = f"{clean.method}-{clean.target}"
    record_artifact(AttributionPayload.KIND, payload.to_dict(), model=model, label=label)


def describe(payload: AttributionPayload) -> str:
    """How one artifact's maps were made, for the model cell's tooltip."""
    maps = f"{payload.method} maps" if payload.method else "maps"
    if payload.target:
        maps += f" explaining the {payload.target} readout"
    parts = [maps]
    if payload.images is not None:
        split = f" {payload.split}" if payload.split else ""
        parts.append(f"{format_number(payload.images)}{split} images")
    if payload.top_k is not None:
        parts.append(f"top-k: {share(payload.top_k)} of the pixels")
    return ", ".join(parts)


def _measures(entries: list[Entry[AttributionPayload]]) -> dict[str, Any] | None:
    # One table, the models' rows of one variant next to each other (in run order).
    by_variant: dict[str, list[list[Any]]] = {}
    top_k: dict[str, list[str]] = {}
    for e in entries:
        p = e.payload
        if p.top_k is not None:
            top_k.setdefault(share(p.top_k), []).append(e.caption())
        described = describe(p)
        for measure in p.measures:
            variant = measure.get("variant")
            focus, chance = measure.get("foreground_focus"), measure.get("chance_focus")
            focus_text = format_number(focus)
            if focus is not None and chance is not None:
                focus_text += f" ({format_number(chance)})"
            empty = f"of {format_number(p.images)} maps" if p.images is not None else ""
            by_variant.setdefault(MISSING if variant is None else str(variant), []).append(
                [
                    {"text": e.caption(), "title": described},
                    format_number(measure.get("rank_shift")),
                    format_number(measure.get("topk_overlap")),
                    focus_text,
                    format_number(measure.get("entropy")),
                    {"text": format_number(measure.get("degenerate")), "title": empty},
                ]
            )
    if not by_variant:
        return None
    k = ""
    if len(top_k) == 1:
        k = f" (k = {next(iter(top_k))} of the pixels)"
    elif top_k:
        k = " (k = " + "; ".join(f"{v} for {', '.join(c)}" for v, c in top_k.items()) + ")"
    columns = ["variant", "model", "rank shift", "top-k overlap", "foreground focus (chance)"]
    return table(
        "Focus of the attribution maps per variant",
        [*columns, "entropy", "empty maps"],
        [row([variant, *cells]) for variant, rows in by_variant.items() for cells in rows],
        numeric=range(2, 7),
        note=NOTE.format(k=k),
    )


def _curves(entries: list[Entry[AttributionPayload]]) -> dict[str, Any] | None:
    curves = [(e, c) for e in entries if (c := severity_rows(e.payload.severity))]
    if not curves:
        return None
    # One y scale for every model, so that the panels compare at a glance.
    top = max(
        (v for _, c in curves for values in c.values() for v in values if math.isfinite(v)),
        default=0.0,
    )
    panels = []
    for e, rows in curves:
        families = families_of(rows)
        drawn = figure(
            "severity_curves",
            rows,
            title=e.model,
            ylabel="rank shift (1 - Spearman)",
            # Small multiples only when one panel would hold too many lines.
            families=families if families and len(rows) > 4 else None,
            percent=False,
            ymax=1.1 * top if top > 0 else None,
            gaps=False,  # attribution is often measured at a few severities
        )
        panels.append(panel(e.caption(), drawn))
    return figures(
        "Focus shift against severity",
        panels,
        note="Mean rank shift of the maps from the clean maps at each severity, one line "
        "per corruption through the severities measured: 0 = the same ranking of pixels, "
        "1 = unrelated, 2 = reversed (a correlation distance, not a percentage). One "
        "scale for every model.",
    )


def _overlays(entries: list[Entry[AttributionPayload]]) -> list[dict[str, Any]]:
    overlays = []
    for e in entries:
        items = []
        for entry in e.payload.overlays:
            tiles = [{"id": t["id"], "uri": image_uri(t["uri"])} for t in entry["tiles"]]
            if not tiles:
                continue
            # A few tiles in one row; many (a corruption x severity study) as the example
            # grid lays them out, one row per corruption.
            columns, cells = thumb_grid([tiles] if len(tiles) <= 8 else preview_rows(tiles))
            item = entry["item"]
            items.append(
                {"item": MISSING if item is None else str(item), "columns": columns, "cells": cells}
            )
        if items:
            overlays.append({"caption": e.caption(), "items": items})
    return overlays


def render(document: ReportDocument) -> dict[str, Any] | None:
    entries = document.entries(AttributionPayload)
    if not entries:
        return None
    blocks = [block for block in (_measures(entries), _curves(entries)) if block is not None]
    overlays = _overlays(entries)
    protocols = protocol_block("Protocols", entries)
    if not (blocks or overlays or protocols):
        return None
    return {"blocks": blocks, "overlays": overlays, "protocols": protocols}


SECTION = Section(
    "attribution",
    "attribution",
    "Attribution",
    render,
    payloads=(AttributionPayload,),
    template="_attribution.html.j2",
)
