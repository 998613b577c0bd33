"""Building blocks of a section's template context: tables, figure rows, protocols, thumbnails."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pytest_sslrobust.report.document import Entry
from pytest_sslrobust.report.formatting import compact
from pytest_sslrobust.vocabulary import GROUPS, corruption_cell

__all__ = [
    "FAMILIES",
    "caveat_note",
    "families_of",
    "figure",
    "figures",
    "grouped",
    "image_uri",
    "model_cell",
    "panel",
    "preview_rows",
    "protocol_block",
    "row",
    "severity_rows",
    "shared_range",
    "table",
    "thumb_grid",
]

FAMILIES = ("noise", "blur", "weather", "digital", "validation")
# Only raster images inlined as base64 data URIs may reach an <img src>: anything else
# (a remote URL, javascript:, an SVG that could carry script) is dropped.
_DATA_URI = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$")

T = TypeVar("T")


def figure(name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call one plot function; a failing figure becomes a note instead of losing the report.

    The report is written once at session end, after every test ran: an exception here
    would throw away the whole file, so the error is shown where the figure would be.
    """
    # Imported here: matplotlib is slow to import and only needed when a report is written.
    from pytest_sslrobust.report import plots

    try:
        svg = getattr(plots, name)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - shown in the report, see above
        return {"svg": None, "error": f"{name} failed: {type(exc).__name__}: {exc}"}
    return {"svg": str(svg), "error": None}


def panel(caption: str, drawn: dict[str, Any], note: str = "") -> dict[str, Any]:
    return {"caption": caption, "note": note, **drawn}


def figures(title: str, panels: list[dict[str, Any]], note: str = "") -> dict[str, Any]:
    return {"type": "figures", "title": title, "note": note, "panels": panels}


def table(
    caption: str,
    columns: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    numeric: Iterable[int] = (),
    note: str = "",
) -> dict[str, Any]:
    return {
        "type": "table",
        "caption": caption,
        "columns": list(columns),
        "numeric": set(numeric),
        "rows": rows,
        "note": note,
    }


CELL_DEFAULTS = {
    "cls": "",
    "title": "",
    "badge": "",
    "badge_cls": "",
    "badge_title": "",
    "note": "",
}
NEAR_CHANCE = "near chance"


def row(cells: Iterable[Any], cls: str = "") -> dict[str, Any]:
    """A table row; each cell is text or a dict with ``text`` and optional ``cls``/``title``,
    a ``badge`` after the text (``badge_cls``, ``badge_title``) and a ``note`` below it."""
    normal = [cell if isinstance(cell, dict) else {"text": str(cell)} for cell in cells]
    return {"cls": cls, "cells": [{**CELL_DEFAULTS, **cell} for cell in normal]}


def model_cell(text: str, model: str, caveats: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    """A model's name cell, with a "near chance" badge (the reason as its tooltip) when the
    model's clean accuracy is near chance (``report.chance.model_caveats``)."""
    caveat = caveats.get(model, "")
    cell: dict[str, Any] = {"text": text, **extra}
    if caveat:
        cell.update(badge=NEAR_CHANCE, badge_cls="caveat", badge_title=caveat)
    return cell


def caveat_note(caveats: Mapping[str, str], models: Iterable[str], note: str = "") -> str:
    """``note`` followed by the near-chance caveat of each of ``models`` that has one."""
    shown = list(dict.fromkeys(caveats[m] for m in models if m in caveats))
    return " ".join([*([note] if note else []), *(f"Near chance: {c}" for c in shown)])


def shared_range(
    values: Iterable[float],
    *,
    floor: float | None = 0.0,
    ceiling: float | None = None,
    pad: float = 0.08,
) -> tuple[float, float] | None:
    """One value-axis range for side-by-side charts of one quantity: from ``floor`` (or the
    lowest value) to the highest value plus ``pad`` of the span (capped at ``ceiling``, which
    a value above it still lifts); None without finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None
    low = min(finite) if floor is None else min(floor, min(finite))
    high = max(finite)
    span = (high - low) or abs(high) or 1.0
    top = high + pad * span
    if ceiling is not None and high <= ceiling:
        top = min(top, ceiling)
    if top <= low:
        top = low + 1.0
    return low, top


def grouped(items: Iterable[T], key: Callable[[T], Any]) -> list[tuple[Any, list[T]]]:
    groups: dict[Any, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.items())


def families_of(names: Iterable[str]) -> dict[str, list[str]]:
    """The corruption families among ``names``, each with the members present."""
    present = set(names)
    return {
        family: members
        for family in FAMILIES
        if (members := [name for name in GROUPS[family] if name in present])
    }


def protocol_block(caption: str, entries: Sequence[Entry[Any]]) -> dict[str, Any] | None:
    items = [
        (entry.caption(), [(key, compact(value)) for key, value in protocol.items()])
        for entry in entries
        if (protocol := entry.artifact.protocol)
    ]
    return {"type": "protocols", "caption": caption, "items": items} if items else None


def image_uri(uri: str) -> str | None:
    """``uri`` when it is an inline raster image, else None (shown as "not an inline image")."""
    return uri if _DATA_URI.match(uri) else None


def preview_rows(images: list[dict[str, Any]]) -> list[list[dict[str, Any] | None]]:
    """Thumbnails in rows: the other variants first, then one row per corruption with its
    severities in order, so that grids of several models line up row by row."""
    by_corruption: dict[str, dict[int, dict[str, Any]]] = {}
    others = []
    for image in images:
        match = corruption_cell(str(image["id"]))
        if match is not None and match[1] > 99:
            match = None
        cells = by_corruption.setdefault(match[0], {}) if match else None
        if match and cells is not None and match[1] not in cells:
            cells[match[1]] = image
        else:
            others.append(image)
    width = max((max(cells) for cells in by_corruption.values()), default=0)
    if width < 2 or width > 10:  # not a severity table: a plain grid reads better
        return [images[i : i + 8] for i in range(0, len(images), 8)]
    rows: list[list[dict[str, Any] | None]] = [
        list(others[i : i + width]) for i in range(0, len(others), width)
    ]
    rows += [[cells.get(s) for s in range(1, width + 1)] for cells in by_corruption.values()]
    return rows


def thumb_grid(rows: list[list[dict[str, Any] | None]]) -> tuple[int, list[dict[str, Any] | None]]:
    """The column count and the cells of ``rows``, padded so that every row starts in the
    grid's first column."""
    columns = max(len(r) for r in rows)
    return columns, [cell for r in rows for cell in [*r, *[None] * (columns - len(r))]]


def severity_rows(severity: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """Corruption -> values at severities 1..n, NaN where not measured and padded to one
    length; corruptions without any measured value are left out."""
    rows = {
        name: list(values) for name, values in severity.items() if any(map(math.isfinite, values))
    }
    width = max((len(r) for r in rows.values()), default=0)
    return {name: r + [math.nan] * (width - len(r)) for name, r in rows.items()}
