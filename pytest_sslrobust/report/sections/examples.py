"""The example grid: thumbnails of one item, clean and under each variant, as each model saw it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pytest_sslrobust.report.blocks import image_uri, preview_rows, thumb_grid
from pytest_sslrobust.report.document import ReportDocument, records, require_list
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.results import record_artifact


@dataclasses.dataclass(frozen=True)
class PreviewPayload:
    """Thumbnails (variant id and ``data:`` URI) of one item and where the item came from."""

    KIND = "preview"

    images: list[dict[str, str]]
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreviewPayload:
        images = records(require_list(data, "images", cls.KIND))
        return cls(
            images=[{"id": str(i.get("id", "")), "uri": str(i.get("uri") or "")} for i in images],
            source=str(data.get("source") or ""),
        )


def record(images: list[dict[str, str]], source: str, *, model: str) -> None:
    """Record thumbnails (``{"id": variant id, "uri": data URI}``) of the item ``source``."""
    record_artifact(PreviewPayload.KIND, PreviewPayload(images, source).to_dict(), model=model)


def render(document: ReportDocument) -> dict[str, Any] | None:
    # Models that saw identical images (same ids and pixels) share one grid: the page stays
    # small and the reader does not compare copies.
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in document.entries(PreviewPayload):
        images = [{"id": i["id"], "uri": image_uri(i["uri"])} for i in e.payload.images]
        if not images:
            continue
        key = (e.payload.source, tuple((i["id"], i["uri"]) for i in images))
        if key not in groups:
            columns, cells = thumb_grid(preview_rows(images))
            groups[key] = {
                "models": [],
                "source": e.payload.source,
                "columns": columns,
                "cells": cells,
            }
        groups[key]["models"].append(e.caption())
    return {"grids": list(groups.values())} if groups else None


SECTION = Section(
    "examples",
    "examples",
    "Example grid",
    render,
    payloads=(PreviewPayload,),
    template="_examples.html.j2",
)
