"""Render a report document (results, artifacts, comparison) as one self-contained HTML page."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jinja2
import markupsafe

from pytest_sslrobust.vocabulary import GROUPS, corruption_cell

__all__ = ["SECTIONS", "format_bounds", "format_interval", "format_number", "render_report"]

# Section ids and headings, in page order; a section without data is left out entirely.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("run", "Run"),
    ("contracts", "Contracts"),
    ("corruption", "Corruption robustness"),
    ("missing", "Missing information"),
    ("background", "Background reliance"),
    ("calibration", "Confidence and calibration"),
    ("adversarial", "Adversarial"),
    ("attribution", "Attribution"),
    ("comparison", "Baseline comparison"),
    ("examples", "Example grid"),
)

# Baseline statuses, worst first (same order as pytest_sslrobust.baselines.STATUSES, which
# is not imported so that rendering a stored document needs nothing but this module).
_STATUS_ORDER = ("regression", "refused", "missing", "worse", "changed", "new", "improved")
_ALARMING = frozenset({"regression", "refused"})
_FAMILIES = ("noise", "blur", "weather", "digital", "validation")
# Only raster images inlined as base64 data URIs may reach an <img src>: anything else
# (a remote URL, javascript:, an SVG that could carry script) is dropped.
_DATA_URI = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$")
# Protocol fields already shown elsewhere in the header, or too long to summarise.
_PROTOCOL_SKIP = frozenset(
    {
        "backbone",
        "backbone_fingerprint",
        "model",
        "versions",
        "environment",
        "ids_digest",
        "attribution",  # per-result detail (method, target digest), shown with each result
    }
)
_MISSING = "–"


# --------------------------------------------------------------------------- formatting


def format_number(value: Any, digits: int = 4) -> str:
    """A number as the report shows it: ``digits`` significant digits, ``–`` for none.

    Non-finite floats arrive either as floats or, from JSON documents, as the strings
    ``"nan"``/``"inf"``; both print as written.
    """
    if value is None:
        return _MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    if hasattr(value, "item"):  # numpy scalars in documents built by hand
        return format_number(value.item(), digits)
    return str(value)


def format_bounds(low: Any, high: Any, better: str = "none") -> str:
    """The required range, as the terminal table writes it (with ≥/≤ for >=/<=)."""
    if low is not None and high is not None:
        return f"[{format_number(low)}, {format_number(high)}]"
    if low is not None:
        return f"> {format_number(low)}" if better == "lower" else f"≥ {format_number(low)}"
    if high is not None:
        return f"≤ {format_number(high)}"
    return _MISSING


def format_interval(interval: Mapping[str, Any] | None) -> str:
    if not interval:
        return _MISSING
    return f"[{format_number(interval.get('low'))}, {format_number(interval.get('high'))}]"


def _percent(value: Any) -> str:
    number = _float(value)
    return (
        _MISSING
        if value is None
        else f"{100 * number:.1f}%"
        if math.isfinite(number)
        else str(value)
    )


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _sort_key(value: Any) -> str:
    """The ``data-sort`` attribute of a numeric cell: a plain number, empty when none."""
    number = _float(value)
    return repr(number) if math.isfinite(number) else ""


def _compact(value: Any) -> str:
    """A protocol value on one line (nested objects as sorted JSON)."""
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return format_number(value)


def _eps(value: Any) -> str:
    """A perturbation budget; multiples of 1/255 as the literature writes them (4/255)."""
    number = _float(value)
    steps = number * 255
    if number > 0 and math.isfinite(steps) and abs(steps - round(steps)) < 1e-6:
        return f"{round(steps)}/255"
    return format_number(value, 3)


def _duration(seconds: Any) -> str:
    total = _float(seconds)
    if not math.isfinite(total):
        return _MISSING
    if total < 60:
        return f"{total:.1f} s"
    minutes, secs = divmod(int(round(total)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


# --------------------------------------------------------------------------- figures


def _figure(name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
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


def _panel(caption: str, figure: dict[str, Any], note: str = "") -> dict[str, Any]:
    return {"caption": caption, "note": note, **figure}


def _figures(title: str, panels: list[dict[str, Any]], note: str = "") -> dict[str, Any]:
    return {"type": "figures", "title": title, "note": note, "panels": panels}


def _table(
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


def _row(cells: Iterable[Any], cls: str = "") -> dict[str, Any]:
    """A table row; each cell is text or a dict with ``text`` and optional ``cls``/``title``."""
    normal = [cell if isinstance(cell, dict) else {"text": str(cell)} for cell in cells]
    return {
        "cls": cls,
        "cells": [{"cls": "", "title": "", **cell} for cell in normal],
    }


# --------------------------------------------------------------------------- grouping


def _model_name(artifact: Mapping[str, Any]) -> str:
    model = artifact.get("model")
    return str(model) if model else "(no model)"


def _caption(artifact: Mapping[str, Any], *extra: str) -> str:
    parts = [_model_name(artifact), *(str(e) for e in extra if e)]
    label = artifact.get("label")
    if label and str(label) not in parts:
        parts.append(str(label))
    return " · ".join(parts)


def _artifacts_of(document: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    """The artifacts of one kind, grouped by model (run order, then first appearance) so
    that the same model sits in the same column of every figure row."""
    artifacts = [
        a
        for a in document.get("artifacts") or ()
        if isinstance(a, Mapping)
        and a.get("kind") == kind
        and isinstance(a.get("payload"), Mapping)
    ]
    order: dict[str, int] = {}
    for model in (document.get("run") or {}).get("models") or ():
        if isinstance(model, Mapping) and model.get("name") is not None:
            order.setdefault(str(model["name"]), len(order))
    for artifact in document.get("artifacts") or ():
        if isinstance(artifact, Mapping):
            order.setdefault(_model_name(artifact), len(order))
    # sorted() is stable: artifacts of one model keep the order the tests recorded them in.
    return sorted(artifacts, key=lambda a: order.get(_model_name(a), len(order)))


def _grouped(
    artifacts: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]
) -> list[tuple[Any, list[Mapping[str, Any]]]]:
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for artifact in artifacts:
        groups.setdefault(key(artifact), []).append(artifact)
    return list(groups.items())


def _numbers(mapping: Any) -> dict[str, float]:
    if not isinstance(mapping, Mapping):
        return {}
    return {str(k): _float(v) for k, v in mapping.items()}


def _protocol_block(caption: str, artifacts: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    items = [
        (
            _caption(a),
            [(str(k), _compact(v)) for k, v in (a["payload"].get("protocol") or {}).items()],
        )
        for a in artifacts
        if isinstance(a["payload"].get("protocol"), Mapping) and a["payload"]["protocol"]
    ]
    return {"type": "protocols", "caption": caption, "items": items} if items else None


# --------------------------------------------------------------------------- sections


def _run_section(document: Mapping[str, Any]) -> dict[str, Any] | None:
    run = document.get("run") or {}
    models = []
    for model in run.get("models") or ():
        if not isinstance(model, Mapping):
            continue
        fingerprint = str(model.get("fingerprint") or "")
        models.append(
            {
                "name": str(model.get("name") or _MISSING),
                "architecture": str(model.get("architecture") or _MISSING),
                "paradigm": str(model.get("paradigm") or _MISSING),
                "spec": str(model.get("spec") or _MISSING),
                "weights": str(model.get("weights") or _MISSING),
                "fingerprint": fingerprint,
                "fingerprint_short": fingerprint[:12] if fingerprint else _MISSING,
            }
        )

    facts: list[tuple[str, str]] = []
    if run.get("data"):
        facts.append(("data", str(run["data"])))
    if run.get("device"):
        facts.append(("device", str(run["device"])))
    if run.get("seed") is not None:
        facts.append(("seed", format_number(run["seed"])))
    if "max_images" in run:
        limit = run["max_images"]
        facts.append(("max images", "all" if limit is None else format_number(limit)))
    if run.get("wall_time_s") is not None:
        facts.append(("wall time", _duration(run["wall_time_s"])))
    cache = run.get("cache") or {}
    if cache:
        counts = [_float(cache.get(key, 0)) for key in ("memory_hits", "disk_hits")]
        hits = sum(int(count) for count in counts if math.isfinite(count))
        facts.append(
            (
                "feature cache",
                f"{hits} hits ({format_number(cache.get('memory_hits', 0))} memory, "
                f"{format_number(cache.get('disk_hits', 0))} disk), "
                f"{format_number(cache.get('computed', 0))} misses computed, "
                f"{format_number(cache.get('forward_images', 0))} images through a model",
            )
        )

    outcomes = [
        {"name": name, "count": format_number(count), "cls": f"outcome-{name}"}
        for name, count in (run.get("outcomes") or {}).items()
    ]
    versions = [
        (str(name), _MISSING if version is None else str(version))
        for name, version in sorted((run.get("versions") or {}).items())
    ]
    protocol = _protocol_summary(document)
    if not (models or facts or outcomes or versions or protocol):
        return None
    return {
        "id": "run",
        "title": "Run",
        "models": models,
        "facts": facts,
        "outcomes": outcomes,
        "versions": versions,
        "protocol": protocol,
    }


def _protocol_summary(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each protocol field with its distinct values over every result and artifact."""
    sources: list[Mapping[str, Any]] = []
    run_protocol = (document.get("run") or {}).get("protocol")
    if isinstance(run_protocol, Mapping):
        sources.append(run_protocol)
    for result in document.get("results") or ():
        if isinstance(result, Mapping) and isinstance(result.get("protocol"), Mapping):
            sources.append(result["protocol"])
    for artifact in document.get("artifacts") or ():
        payload = artifact.get("payload") if isinstance(artifact, Mapping) else None
        if isinstance(payload, Mapping) and isinstance(payload.get("protocol"), Mapping):
            sources.append(payload["protocol"])
    values: dict[str, dict[str, None]] = {}  # dicts as ordered sets: output stays stable
    for protocol in sources:
        for key, value in protocol.items():
            if str(key) not in _PROTOCOL_SKIP:
                values.setdefault(str(key), {})[_compact(value)] = None
    summary = []
    for key, distinct in values.items():
        shown = list(distinct)[:4]
        more = len(distinct) - len(shown)
        summary.append((key, ", ".join(shown) + (f" (+{more} more)" if more else "")))
    return summary


def _contracts_section(document: Mapping[str, Any]) -> dict[str, Any] | None:
    results = [r for r in document.get("results") or () if isinstance(r, Mapping)]
    if not results:
        return None
    rows, details = [], []
    for number, result in enumerate(results, start=1):
        passed = bool(result.get("passed"))
        unit = str(result.get("unit") or "")
        interval = result.get("interval") if isinstance(result.get("interval"), Mapping) else None
        decided_on_interval = result.get("decided_on") == "interval"
        interval_title = ""
        if interval:
            confidence = _float(interval.get("confidence"))
            confidence_text = (
                (f"{100 * confidence:g}%" if confidence <= 1 else f"{confidence:g}%")
                if math.isfinite(confidence)
                else "?"
            )
            interval_title = (
                f"bootstrap estimate {format_number(interval.get('estimate'))}, "
                f"{confidence_text} confidence, {format_number(interval.get('resamples'))} "
                f"resamples, seed {format_number(interval.get('seed'))}"
                + ("; the decision used this interval" if decided_on_interval else "")
            )
        rows.append(
            {
                "number": number,
                "passed": passed,
                "test": str(result.get("test", "")),
                "label": str(result.get("label", "")),
                "metric": str(result.get("metric", "")),
                "model": str(result.get("model") or _MISSING),
                "value": format_number(result.get("value")) + (f" {unit}" if unit else ""),
                "value_sort": _sort_key(result.get("value")),
                "bounds": format_bounds(
                    result.get("low"), result.get("high"), str(result.get("better", "none"))
                ),
                "bounds_sort": _sort_key(
                    result.get("low") if result.get("low") is not None else result.get("high")
                ),
                "interval": format_interval(interval),
                "interval_sort": _sort_key(interval.get("low") if interval else None),
                "interval_title": interval_title,
                "decided_on_interval": decided_on_interval,
            }
        )
        fields = [
            ("assertion", str(result.get("name", ""))),
            ("better", str(result.get("better", "none"))),
            ("decided on", str(result.get("decided_on", "value"))),
        ]
        if interval:
            fields.append(("interval", f"{format_interval(interval)} ({interval_title})"))
        protocol = result.get("protocol") if isinstance(result.get("protocol"), Mapping) else {}
        table_rows = [r for r in result.get("details") or () if isinstance(r, Mapping)]
        columns: dict[str, None] = {}
        for detail in table_rows:
            columns.update((str(k), None) for k in detail)
        details.append(
            {
                "number": number,
                "passed": passed,
                "summary": f"{result.get('test', '')} [{result.get('label', '')}]",
                "fields": fields,
                "protocol": [(str(k), _compact(v)) for k, v in protocol.items()],
                "columns": list(columns),
                "rows": [[format_number(r.get(c)) for c in columns] for r in table_rows],
            }
        )
    failed = sum(not row["passed"] for row in rows)
    return {
        "id": "contracts",
        "title": "Contracts",
        "rows": rows,
        "details": details,
        "passed": len(rows) - failed,
        "failed": failed,
    }


def _corruption_section(document: Mapping[str, Any]) -> dict[str, Any] | None:

    artifacts = _artifacts_of(document, "corruption_errors")
    artifacts = [a for a in artifacts if isinstance(a["payload"].get("errors"), Mapping)]
    if not artifacts:
        return None
    blocks: list[dict[str, Any]] = []

    summary = []
    for a in artifacts:
        p = a["payload"]
        summary.append(
            _row(
                [
                    _caption(a),
                    format_number(p.get("mce")),
                    format_number(p.get("relative_mce")),
                    _percent(p.get("clean_error")),
                    format_number(p.get("n")),
                    str(p.get("readout") or _MISSING),
                    str(p.get("reference") or _MISSING),
                    str(len(p["errors"])),
                ]
            )
        )
    # Why mCE is missing is a paragraph, often the same for every model: said once, below.
    notes: dict[str, list[str]] = {}
    for a in artifacts:
        if a["payload"].get("reference_note"):
            notes.setdefault(str(a["payload"]["reference_note"]), []).append(_caption(a))
    blocks.append(
        _table(
            "Summary per model",
            [
                "model",
                "mCE",
                "relative mCE",
                "clean error",
                "images",
                "readout",
                "reference",
                "corruptions",
            ],
            summary,
            numeric=(1, 2, 3, 4, 7),
            note=" ".join(f"{', '.join(models)}: {note}" for note, models in notes.items()),
        )
    )

    errors_of = [
        {str(k): [_float(x) for x in v] for k, v in a["payload"]["errors"].items()}
        for a in artifacts
    ]
    blocks.append(
        _figures(
            "Error by corruption and severity",
            [
                _panel(_caption(a), _figure("error_heatmap", errors, title=_model_name(a)))
                for a, errors in zip(artifacts, errors_of, strict=True)
            ],
        )
    )

    with_ce = [a for a in artifacts if isinstance(a["payload"].get("ce"), Mapping)]
    if with_ce:
        panels = []
        for a in with_ce:
            p = a["payload"]
            mce = _float(p.get("mce"))
            panels.append(
                _panel(
                    _caption(a),
                    _figure(
                        "bar_chart",
                        _numbers(p["ce"]),
                        title=_model_name(a),
                        ylabel="CE",
                        reference=mce if math.isfinite(mce) else None,
                        reference_label=f"mCE {format_number(mce)}" if math.isfinite(mce) else None,
                    ),
                )
            )
        blocks.append(
            _figures(
                "Corruption error (CE) per corruption",
                panels,
                note="Each corruption's error summed over severities, relative to the reference "
                "model; the line is the mean (mCE).",
            )
        )

    panels = []
    for a, errors in zip(artifacts, errors_of, strict=True):
        # Only the members this model was measured on: a family is a panel, and plots
        # refuses members without errors. Corruptions in no family get an "other" panel.
        families = {
            family: members
            for family in _FAMILIES
            if (members := [name for name in GROUPS[family] if name in errors])
        }
        panels.append(
            _panel(
                _caption(a),
                _figure("severity_curves", errors, title=_model_name(a), families=families or None),
            )
        )
    blocks.append(_figures("Error by severity, per corruption family", panels))

    with_ssim = [
        (a, errors)
        for a, errors in zip(artifacts, errors_of, strict=True)
        if isinstance(a["payload"].get("ssim"), Mapping) and a["payload"]["ssim"]
    ]
    if with_ssim:
        panels = []
        for a, errors in with_ssim:
            x, y, labels, irregular = _ssim_points(a["payload"]["ssim"], errors)
            panels.append(
                _panel(
                    _caption(a),
                    _figure(
                        "scatter",
                        x,
                        y,
                        labels,
                        title=_model_name(a),
                        xlabel="mean SSIM to the clean image",
                        ylabel="mean error (%)",
                    ),
                    note="off the trend: " + ", ".join(irregular) if irregular else "",
                )
            )
        blocks.append(
            _figures(
                "How much an image changes (SSIM) against how much the error grows",
                panels,
                note="One point per corruption, averaged over severities; corruptions far from "
                "the fitted trend are labelled: the model is more (above) or less (below) "
                "sensitive to them than their pixel change suggests.",
            )
        )

    protocols = _protocol_block("Protocols", artifacts)
    if protocols:
        blocks.append(protocols)
    return {"id": "corruption", "title": "Corruption robustness", "blocks": blocks}


def _ssim_points(
    ssim: Mapping[str, Any], errors: Mapping[str, Sequence[float]]
) -> tuple[list[float], list[float], list[str], list[str]]:
    """Mean SSIM and mean error (%) per corruption; labels only for the irregular points.

    A point is irregular when its residual from a least-squares line is beyond 1.5 standard
    deviations of the residuals: with 15-19 points that picks the few worth a look.
    """
    names, xs, ys = [], [], []
    for name, values in ssim.items():
        cells = [_float(v) for v in values] if isinstance(values, (list, tuple)) else []
        rates = [v for v in errors.get(str(name), ()) if math.isfinite(v)]
        cells = [v for v in cells if math.isfinite(v)]
        if cells and rates:
            names.append(str(name))
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


def _missing_section(document: Mapping[str, Any]) -> dict[str, Any] | None:
    blocks: list[dict[str, Any]] = []

    matrices = [
        a
        for a in _artifacts_of(document, "similarity_matrix")
        if a["payload"].get("names") and a["payload"].get("values")
    ]
    for (metric, label), group in _grouped(
        matrices, lambda a: (str(a["payload"].get("metric", "")), str(a.get("label") or ""))
    ):
        panels = []
        for a in group:
            values = [[_float(v) for v in row] for row in a["payload"]["values"]]
            names = [str(n) for n in a["payload"]["names"]]
            finite = [v for row in values for v in row if math.isfinite(v)]
            unit_range = bool(finite) and min(finite) >= 0 and max(finite) <= 1
            panels.append(
                _panel(
                    _model_name(a),
                    _figure(
                        "heatmap",
                        values,
                        names,
                        names,
                        title=_model_name(a),
                        colorbar_label=metric,
                        # One scale for every model when the metric lives in [0, 1] (CKA,
                        # CCA R²), so that colours compare across panels.
                        vmin=0.0 if unit_range else None,
                        vmax=1.0 if unit_range else None,
                    ),
                )
            )
        title = f"Similarity between variants: {metric}"
        title += f" ({label})" if label and label != metric else ""
        blocks.append(_figures(title, panels))

    probes = [
        a
        for a in _artifacts_of(document, "probe_table")
        if isinstance(a["payload"].get("variants"), (list, tuple))
    ]
    for (metric, variants), group in _grouped(
        probes,
        lambda a: (
            str(a["payload"].get("metric", "")),
            tuple(str(v) for v in a["payload"]["variants"]),
        ),
    ):
        means = [[_float(v) for v in a["payload"].get("mean") or ()] for a in group]
        best = [
            max((m[i] for m in means if i < len(m) and math.isfinite(m[i])), default=math.nan)
            for i in range(len(variants))
        ]
        rows = []
        for a, mean in zip(group, means, strict=True):
            std = [_float(v) for v in a["payload"].get("std") or ()]
            cells: list[Any] = [_caption(a)]
            for i in range(len(variants)):
                m = mean[i] if i < len(mean) else math.nan
                s = std[i] if i < len(std) else math.nan
                text = f"{m:.2f} ({s:.2f})" if math.isfinite(m) else _MISSING
                if math.isfinite(m) and not math.isfinite(s):
                    text = f"{m:.2f}"
                # Bold the best model per variant when several are compared.
                cls = "best" if len(group) > 1 and math.isfinite(m) and m == best[i] else ""
                cells.append({"text": text, "cls": cls})
            rows.append(_row(cells))
        blocks.append(
            _table(
                f"Linear probe: {metric.replace('_', ' ')}, mean (std) over folds",
                ["model", *variants],
                rows,
                numeric=range(1, len(variants) + 1),
            )
        )

    neighbours = [
        a
        for a in _artifacts_of(document, "neighbours")
        if isinstance(a["payload"].get("scores"), Mapping) and a["payload"]["scores"]
    ]
    if neighbours:
        panels = []
        for a in neighbours:
            scores = _numbers(a["payload"]["scores"])
            chance = _numbers(a["payload"].get("chance"))
            if chance:
                figure = _figure(
                    "grouped_bars",
                    {"score": scores, "chance": {v: chance.get(v, math.nan) for v in scores}},
                    title=_model_name(a),
                    ylabel="neighbour consistency",
                )
            else:
                figure = _figure(
                    "bar_chart", scores, title=_model_name(a), ylabel="neighbour consistency"
                )
            panels.append(_panel(_caption(a), figure))
        blocks.append(
            _figures(
                "Nearest-neighbour consistency with the original images",
                panels,
                note="Share of each image's nearest neighbours that stay neighbours under the "
                "variant, beside what chance would give.",
            )
        )

    embeddings = [a for a in _artifacts_of(document, "embedding") if a["payload"].get("points")]
    if embeddings:
        panels = []
        for a in embeddings:
            points = [[_float(x) for x in point[:2]] for point in a["payload"]["points"]]
            groups = [str(g) for g in a["payload"].get("groups") or ()]
            method = str(a["payload"].get("method") or "PCA")
            panels.append(
                _panel(
                    _caption(a, method),
                    _figure(
                        "embedding_scatter", points, groups, title=_model_name(a), method=method
                    ),
                )
            )
        blocks.append(_figures("Embedding of a sample, coloured by variant", panels))

    if not blocks:
        return None
    return {"id": "missing", "title": "Missing information", "blocks": blocks}


def _background_section(document: Mapping[str, Any]) -> dict[str, Any] | None:
    artifacts = [
        a
        for a in _artifacts_of(document, "background")
        if isinstance(a["payload"].get("accuracy"), Mapping)
    ]
    if not artifacts:
        return None
    variants: dict[str, None] = {}
    for a in artifacts:
        variants.update((str(v), None) for v in a["payload"]["accuracy"])
    rows = [
        _row(
            [
                _caption(a),
                *(format_number(a["payload"]["accuracy"].get(v)) for v in variants),
                format_number(a["payload"].get("bg_gap")),
            ]
        )
        for a in artifacts
    ]
    blocks: list[dict[str, Any]] = [
        _table(
            "Accuracy per background variant and BG-Gap",
            ["model", *variants, "BG-Gap"],
            rows,
            numeric=range(1, len(variants) + 2),
        ),
        _figures(
            "Accuracy per background variant",
            [
                _panel(
                    _caption(a),
                    _figure(
                        "bar_chart",
                        _numbers(a["payload"]["accuracy"]),
                        title=_model_name(a),
                        ylabel="accuracy",
                        highlight=[
                            v for v in ("mixed_same", "mixed_rand") if v in a["payload"]["accuracy"]
                        ],
                        highlight_label="BG-Gap pair",
                    ),
                )
                for a in artifacts
            ],
        ),
    ]
    gaps = {
        _caption(a): _float(a["payload"]["bg_gap"])
        for a in artifacts
        if a["payload"].get("bg_gap") is not None
    }
    if gaps:
        blocks.append(
            _figures(
                "BG-Gap",
                [_panel("all models", _figure("bar_chart", gaps, title="BG-Gap", ylabel="BG-Gap"))],
                note="Accuracy on mixed_same minus accuracy on mixed_rand: how much the "
                "prediction depends on the background matching the object's class. Lower is "
                "less reliance.",
            )
        )
    return {"id": "background", "title": "Background reliance", "blocks": blocks}


def _calibration_section(document: Mapping[str, Any]) -> dict[str, Any] | None:
    artifacts = [
        a
        for a in _artifacts_of(document, "reliability")
        if a["payload"].get("confidence") is not None
    ]
    if not artifacts:
        return None
    rows = []
    for a in artifacts:
        counts = [_float(c) for c in a["payload"].get("counts") or ()]
        total = sum(c for c in counts if math.isfinite(c))
        rows.append(
            _row(
                [
                    _caption(a),
                    format_number(a["payload"].get("ece")),
                    str(len(counts)),
                    format_number(int(total)),
                ]
            )
        )
    blocks: list[dict[str, Any]] = [
        _table(
            "Expected calibration error",
            ["model", "ECE", "bins", "images"],
            rows,
            numeric=(1, 2, 3),
        ),
        _figures(
            "Reliability diagrams",
            [
                _panel(
                    _caption(a),
                    _figure(
                        "reliability_diagram",
                        [_float(v) for v in a["payload"]["confidence"]],
                        [_float(v) for v in a["payload"].get("accuracy") or ()],
                        [_float(v) for v in a["payload"].get("counts") or ()],
                        ece=_float(a["payload"].get("ece")),
                        title=_model_name(a),
                    ),
                )
                for a in artifacts
            ],
        ),
    ]
    shifts = [a for a in artifacts if _numbers(a["payload"].get("confidence_by_variant"))]
    if shifts:
        blocks.append(
            _figures(
                "Mean confidence per variant",
                [
                    _panel(
                        _caption(a),
                        _figure(
                            "bar_chart",
                            _numbers(a["payload"]["confidence_by_variant"]),
                            title=_model_name(a),
                            ylabel="mean confidence",
                            highlight=[
                                v
                                for v in ("original",)
                                if v in a["payload"]["confidence_by_variant"]
                            ],
                            highlight_label="clean images",
                        ),
                    )
                    for a in shifts
                ],
                note="A model that stays confident on altered images while its accuracy falls "
                "is over-confident there.",
            )
        )
    return {"id": "calibration", "title": "Confidence and calibration", "blocks": blocks}


def _adversarial_section(document: Mapping[str, Any]) -> dict[str, Any] | None:
    artifacts = [
        a
        for a in _artifacts_of(document, "attack")
        if a["payload"].get("eps") and a["payload"].get("values")
    ]
    if not artifacts:
        return None
    rows = []
    for a in artifacts:
        p = a["payload"]
        pairs = ", ".join(
            f"{_eps(e)}: {format_number(v, 3)}" for e, v in zip(p["eps"], p["values"], strict=False)
        )
        rows.append(
            _row(
                [
                    _model_name(a),
                    str(p.get("metric", "")),
                    str(p.get("attack", "")),
                    str(p.get("norm", "")),
                    format_number(p.get("steps")),
                    format_number(p.get("n")),
                    format_number(p.get("clean")),
                    pairs,
                ]
            )
        )
    blocks: list[dict[str, Any]] = [
        _table(
            "Attacks",
            ["model", "metric", "attack", "norm", "steps", "images", "clean", "eps: value"],
            rows,
            numeric=(4, 5, 6),
        )
    ]
    panels = []
    # One plot per metric/attack/norm (and eps grid, since the series share one x axis),
    # with a series per model.
    for (metric, attack, norm, eps), group in _grouped(
        artifacts,
        lambda a: (
            str(a["payload"].get("metric", "")),
            str(a["payload"].get("attack", "")),
            str(a["payload"].get("norm", "")),
            tuple(_float(e) for e in a["payload"]["eps"]),
        ),
    ):
        series: dict[str, list[float]] = {}
        for a in group:
            name = _model_name(a)
            while name in series:  # two runs of one model: keep both lines
                name += "'"
            series[name] = [_float(v) for v in a["payload"]["values"]]
        title = f"{metric.replace('_', ' ')}, {attack} {norm}"
        panels.append(
            _panel(
                title,
                _figure(
                    "line_plot",
                    list(eps),
                    series,
                    title=title,
                    xlabel=f"eps ({norm})",
                    ylabel=metric.replace("_", " "),
                ),
            )
        )
    blocks.append(_figures("Value against perturbation budget", panels))
    return {"id": "adversarial", "title": "Adversarial", "blocks": blocks}


_ATTRIBUTION_NOTE = (
    "Means over the images. Rank shift: 1 - the Spearman correlation between a variant's map "
    "and the clean map of the same image (0 = the pixels ranked the same, 1 = unrelated, "
    "2 = reversed). Top-k overlap: the share of the clean map's k most-attended pixels{k} "
    "that stay among the variant's k most-attended (1 = the same pixels). Foreground focus: "
    "the share of the map on the object, with chance in brackets (the object's share of the "
    "image, what an even map scores). Entropy: how evenly the map spreads over the pixels "
    "(1 = evenly, 0 = on one pixel). Empty maps: maps without any evidence, made uniform (so "
    "they count as even)."
)


def _attribution_section(document: Mapping[str, Any]) -> dict[str, Any] | None:
    artifacts = _artifacts_of(document, "attribution")
    if not artifacts:
        return None
    blocks: list[dict[str, Any]] = []

    # One table, the models' rows of one variant next to each other (in run order).
    by_variant: dict[str, list[list[Any]]] = {}
    top_k: dict[str, list[str]] = {}
    for a in artifacts:
        p = a["payload"]
        if p.get("top_k") is not None:
            top_k.setdefault(_share(p["top_k"]), []).append(_caption(a))
        described = _attribution_description(p)
        images = p.get("images")
        for measure in p.get("measures") or ():
            if not isinstance(measure, Mapping):
                continue
            variant = measure.get("variant")
            focus, chance = measure.get("foreground_focus"), measure.get("chance_focus")
            focus_text = format_number(focus)
            if focus is not None and chance is not None:
                focus_text += f" ({format_number(chance)})"
            by_variant.setdefault(_MISSING if variant is None else str(variant), []).append(
                [
                    {"text": _caption(a), "title": described},
                    format_number(measure.get("rank_shift")),
                    format_number(measure.get("topk_overlap")),
                    focus_text,
                    format_number(measure.get("entropy")),
                    {
                        "text": format_number(measure.get("degenerate")),
                        "title": f"of {format_number(images)} maps" if images is not None else "",
                    },
                ]
            )
    if by_variant:
        k = ""
        if len(top_k) == 1:
            k = f" (k = {next(iter(top_k))} of the pixels)"
        elif top_k:
            k = " (k = " + "; ".join(f"{v} for {', '.join(c)}" for v, c in top_k.items()) + ")"
        blocks.append(
            _table(
                "Focus of the attribution maps per variant",
                [
                    "variant",
                    "model",
                    "rank shift",
                    "top-k overlap",
                    "foreground focus (chance)",
                    "entropy",
                    "empty maps",
                ],
                [_row([variant, *cells]) for variant, rows in by_variant.items() for cells in rows],
                numeric=range(2, 7),
                note=_ATTRIBUTION_NOTE.format(k=k),
            )
        )

    curves = [(a, c) for a in artifacts if (c := _severity_rows(a["payload"].get("severity")))]
    if curves:
        # One y scale for every model, so that the panels compare at a glance.
        top = max(
            (v for _, c in curves for row in c.values() for v in row if math.isfinite(v)),
            default=0.0,
        )
        panels = []
        for a, rows in curves:
            families = {
                family: members
                for family in _FAMILIES
                if (members := [name for name in GROUPS[family] if name in rows])
            }
            panels.append(
                _panel(
                    _caption(a),
                    _figure(
                        "severity_curves",
                        rows,
                        title=_model_name(a),
                        ylabel="rank shift (1 - Spearman)",
                        # Small multiples only when one panel would hold too many lines.
                        families=families if families and len(rows) > 4 else None,
                        percent=False,
                        ymax=1.1 * top if top > 0 else None,
                        gaps=False,  # attribution is often measured at a few severities
                    ),
                )
            )
        blocks.append(
            _figures(
                "Focus shift against severity",
                panels,
                note="Mean rank shift of the maps from the clean maps at each severity, one line "
                "per corruption through the severities measured: 0 = the same ranking of pixels, "
                "1 = unrelated, 2 = reversed (a correlation distance, not a percentage). One "
                "scale for every model.",
            )
        )

    overlays = []
    for a in artifacts:
        items = []
        for entry in a["payload"].get("overlays") or ():
            if not isinstance(entry, Mapping):
                continue
            tiles = []
            for tile in entry.get("tiles") or ():
                if not isinstance(tile, Mapping):
                    continue
                uri = str(tile.get("uri") or "")
                tiles.append(
                    {"id": str(tile.get("id", "")), "uri": uri if _DATA_URI.match(uri) else None}
                )
            if not tiles:
                continue
            # A few tiles in one row; many (a corruption x severity study) as the example
            # grid lays them out, one row per corruption.
            rows = [tiles] if len(tiles) <= 8 else _preview_rows(tiles)
            columns = max(len(row) for row in rows)
            item = entry.get("item")
            items.append(
                {
                    "item": _MISSING if item is None else str(item),
                    "columns": columns,
                    "cells": [c for row in rows for c in [*row, *[None] * (columns - len(row))]],
                }
            )
        if items:
            overlays.append({"caption": _caption(a), "items": items})

    protocols = _protocol_block("Protocols", artifacts)
    if not (blocks or overlays or protocols):
        return None
    return {
        "id": "attribution",
        "title": "Attribution",
        "blocks": blocks,
        "overlays": overlays,
        "protocols": protocols,
    }


def _share(value: Any) -> str:
    """A fraction as a percentage without trailing zeros (0.1 -> 10%)."""
    number = _float(value)
    return f"{100 * number:.4g}%" if math.isfinite(number) else format_number(value)


def _attribution_description(payload: Mapping[str, Any]) -> str:
    """How one artifact's maps were made, for the model cell's tooltip."""
    maps = f"{payload['method']} maps" if payload.get("method") else "maps"
    if payload.get("target"):
        maps += f" explaining the {payload['target']} readout"
    parts = [maps]
    if payload.get("images") is not None:
        split = f" {payload['split']}" if payload.get("split") else ""
        parts.append(f"{format_number(payload['images'])}{split} images")
    if payload.get("top_k") is not None:
        parts.append(f"top-k: {_share(payload['top_k'])} of the pixels")
    return ", ".join(parts)


def _severity_rows(severity: Any) -> dict[str, list[float]]:
    """Corruption -> values at severities 1..n, NaN where not measured and padded to one
    length; corruptions without any measured value are left out."""
    if not isinstance(severity, Mapping):
        return {}
    rows = {
        str(name): [_float(v) for v in values]
        for name, values in severity.items()
        if isinstance(values, (list, tuple))
    }
    rows = {name: row for name, row in rows.items() if any(math.isfinite(v) for v in row)}
    width = max((len(row) for row in rows.values()), default=0)
    return {name: row + [math.nan] * (width - len(row)) for name, row in rows.items()}


def _comparison_section(document: Mapping[str, Any]) -> dict[str, Any] | None:
    comparison = document.get("comparison")
    if not isinstance(comparison, Mapping):
        return None
    rows = [r for r in comparison.get("rows") or () if isinstance(r, Mapping)]
    order = {status: index for index, status in enumerate(_STATUS_ORDER)}
    rows.sort(key=lambda r: (order.get(str(r.get("status")), len(order)), str(r.get("key", ""))))
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("status", ""))] = counts.get(str(r.get("status", "")), 0) + 1
    table_rows = []
    for r in rows:
        status = str(r.get("status", ""))
        delta = _float(r.get("delta"))
        allowed = r.get("allowed")
        table_rows.append(
            _row(
                [
                    {"text": status, "cls": f"status status-{status}"},
                    {"text": str(r.get("key", "")), "cls": "test"},
                    str(r.get("metric", "")),
                    format_number(r.get("baseline_value")),
                    format_number(r.get("value")),
                    f"{delta:+.4g}" if math.isfinite(delta) else format_number(r.get("delta")),
                    _MISSING if allowed is None else format_number(allowed),
                    str(r.get("note") or ""),
                ],
                cls="alarm" if status in _ALARMING else "",
            )
        )
    summary = ", ".join(
        f"{count} {status}"
        for status, count in sorted(counts.items(), key=lambda kv: order.get(kv[0], len(order)))
    )
    return {
        "id": "comparison",
        "title": "Baseline comparison",
        "baseline": str(comparison.get("baseline") or ""),
        "summary": summary or "no results to compare",
        "alarming": sum(counts.get(s, 0) for s in _ALARMING),
        "blocks": [
            _table(
                "Results against the baseline",
                ["status", "contract", "metric", "baseline", "now", "delta", "allowed", "note"],
                table_rows,
                numeric=(3, 4, 5, 6),
                note="Regressions and refused comparisons first; delta is now minus baseline.",
            )
        ],
    }


def _examples_section(document: Mapping[str, Any]) -> dict[str, Any] | None:
    artifacts = [
        a
        for a in _artifacts_of(document, "preview")
        if isinstance(a["payload"].get("images"), list)
    ]
    # Models that saw identical images (same ids and pixels) share one grid: the page stays
    # small and the reader does not compare copies.
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for a in artifacts:
        images = []
        for image in a["payload"]["images"]:
            if not isinstance(image, Mapping):
                continue
            uri = str(image.get("uri") or "")
            images.append(
                {"id": str(image.get("id", "")), "uri": uri if _DATA_URI.match(uri) else None}
            )
        if not images:
            continue
        source = str(a["payload"].get("source") or "")
        key = (source, tuple((i["id"], i["uri"]) for i in images))
        if key not in groups:
            rows = _preview_rows(images)
            columns = max(len(row) for row in rows)
            groups[key] = {
                "models": [],
                "source": source,
                "columns": columns,
                # Padded so that every row starts in the grid's first column.
                "cells": [cell for row in rows for cell in [*row, *[None] * (columns - len(row))]],
            }
        groups[key]["models"].append(_caption(a))
    if not groups:
        return None
    return {"id": "examples", "title": "Example grid", "grids": list(groups.values())}


def _preview_rows(images: list[dict[str, Any]]) -> list[list[dict[str, Any] | None]]:
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


# --------------------------------------------------------------------------- rendering


def _breakable(text: Any, words: bool = False) -> markupsafe.Markup:
    """Escaped text with line-break opportunities after ``::``, ``/`` and ``[`` (and ``_``,
    ``-`` with ``words``), so that long node ids and variant ids wrap between their parts
    instead of mid-word. Escaping comes first and leaves none of those characters inside an
    entity, so the inserted ``<wbr>`` is the only markup."""
    escaped = str(markupsafe.escape(str(text)))
    pattern = r"(::|/|\[|_|-)" if words else r"(::|/|\[)"
    return markupsafe.Markup(re.sub(pattern, r"\1<wbr>", escaped))


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_sslrobust", "report/templates"),
        # Every string from tests, parameters and models is escaped; the only markup let
        # through is the plots' SVG, marked |safe in the template where it is inserted.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["breakable"] = _breakable
    return environment


def _script_hash(environment: jinja2.Environment) -> str:
    """The CSP hash of the page's one inline script (the same template the page includes),
    so that the browser runs that script and no other."""
    source = environment.get_template("_script.js.j2").render()
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def render_report(document: Mapping[str, Any]) -> str:
    """The report page for ``document`` (see the module's callers for its keys).

    Output depends only on ``document``: the same document gives the same bytes.
    """
    environment = _environment()
    sections = [
        section
        for section in (
            _run_section(document),
            _contracts_section(document),
            _corruption_section(document),
            _missing_section(document),
            _background_section(document),
            _calibration_section(document),
            _adversarial_section(document),
            _attribution_section(document),
            _comparison_section(document),
            _examples_section(document),
        )
        if section is not None
    ]
    return environment.get_template("report.html.j2").render(
        title=str(document.get("title") or "pytest-sslrobust report"),
        generated=str(document.get("generated") or ""),
        script_hash=_script_hash(environment),
        sections=sections,
    )
