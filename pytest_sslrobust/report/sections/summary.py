"""The summary: each study's headline numbers side by side, a column per model, the best
model of each row marked, and a caveat next to any model whose clean accuracy is near chance.

It is the page's first screen after the run header. It compares models, so it is left out
unless some study recorded a number for two of them; the contracts' intervals and the
contracts measured on several models join the studies' rows (a run with contracts only has
their table, not a summary).
"""

from __future__ import annotations

from typing import Any

from pytest_sslrobust.report.chance import MARGIN, model_caveats
from pytest_sslrobust.report.document import ReportDocument
from pytest_sslrobust.report.formatting import MISSING, format_number, sort_key
from pytest_sslrobust.report.headlines import Headline, Measure, collect, verdict
from pytest_sslrobust.report.sections.base import Section

NOTE = (
    "One row per headline number of each study, one column per model: value [low, high] "
    "where a contract recorded the number's bootstrap interval. The best model of a row is "
    "bold and marked best, by the direction the row names; \u201cno clear best\u201d when "
    "the leader's interval overlaps another model's. \u2248 chance: an accuracy below "
    f"{MARGIN:g} \u00d7 chance, or whose interval reaches chance."
)


def _compares(headlines: list[Headline]) -> bool:
    """Whether some study (not only a contract) recorded a number for two models."""
    return any(
        sum(1 for m in h.values.values() if m.comparable or m.shown is not None) >= 2
        for h in headlines
        if not h.from_contracts
    )


def _models(document: ReportDocument, headlines: list[Headline]) -> list[str]:
    present: dict[str, None] = {}
    for h in headlines:
        present.update((m, None) for m in h.values)
    order = document.model_order
    return sorted(present, key=lambda m: (order.get(m, len(order)), list(present).index(m)))


def _interval_title(measure: Measure) -> str:
    if not measure.has_interval:
        return ""
    level = f"{100 * measure.level:g}% " if measure.level is not None else ""
    return f"{level}bootstrap interval recorded by the contract"


def _cell(headline: Headline, model: str, best: str | None) -> dict[str, Any]:
    measure = headline.values.get(model)
    if measure is None:
        return {"text": MISSING, "cls": "na", "badges": [], "note": "", "title": "", "sort": ""}
    badges = []
    classes = []
    if best == model:
        classes.append("best")
        badges.append({"text": "best", "cls": "best", "title": ""})
    if measure.near_chance:
        chance = format_number(measure.chance, 3)
        badges.append({"text": "\u2248 chance", "cls": "caveat", "title": f"chance {chance} (1/k)"})
    if measure.shown is not None:
        classes.append("na")
    return {
        "text": measure.text(headline.percent),
        "cls": " ".join(classes),
        "badges": badges,
        "note": "reference barely degrades" if measure.note and measure.shown else "",
        "title": measure.note or _interval_title(measure),
        "sort": sort_key(measure.value) if measure.comparable else "",
    }


def render(document: ReportDocument) -> dict[str, Any] | None:
    headlines = collect(document)
    if not _compares(headlines):
        return None
    caveats = model_caveats(document)
    models = _models(document, headlines)
    rows = []
    previous = None
    for h in headlines:
        decided = verdict(h)
        text = decided.text
        if decided.model is not None and decided.model in caveats:
            text += " (near chance)"
        rows.append(
            {
                "study": h.study if h.study != previous else "",
                "quantity": h.quantity,
                "title": h.title,
                "better": h.better if h.better in ("lower", "higher") else MISSING,
                "cells": [_cell(h, m, decided.model) for m in models],
                "verdict": text,
                "verdict_title": decided.reason,
                "verdict_cls": "unclear" if decided.model is None and text != MISSING else "",
            }
        )
        previous = h.study
    notes = [h.values[m].note for h in headlines for m in models if m in h.values]
    return {
        "note": NOTE,
        "models": [{"name": m, "caveat": caveats.get(m, "")} for m in models],
        "rows": rows,
        "caveats": [caveats[m] for m in models if m in caveats],
        "notes": list(dict.fromkeys(n for n in notes if n)),
    }


SECTION = Section("summary", "summary", "Summary", render, template="_summary.html.j2")
