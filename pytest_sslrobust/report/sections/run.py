"""The run section: models, session facts, outcomes, versions and a protocol summary."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pytest_sslrobust.report.document import ReportDocument, mapping_of, records, text
from pytest_sslrobust.report.formatting import MISSING, as_float, compact, duration, format_number
from pytest_sslrobust.report.sections.base import Section

# Protocol fields already shown elsewhere in the header, or too long to summarise.
PROTOCOL_SKIP = frozenset(
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


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """The document's ``run``: what ``build_document`` writes from the session."""

    models: list[Mapping[str, Any]]
    data: str
    device: str
    seed: Any
    max_images: Any
    has_max_images: bool
    wall_time_s: Any
    cache: Mapping[str, Any]
    loading: Mapping[str, Any]
    outcomes: dict[str, Any]
    versions: dict[str, Any]

    @classmethod
    def from_dict(cls, run: Mapping[str, Any]) -> RunInfo:
        return cls(
            models=records(run.get("models")),
            data=text(run.get("data")),
            device=text(run.get("device")),
            seed=run.get("seed"),
            max_images=run.get("max_images"),
            has_max_images="max_images" in run,
            wall_time_s=run.get("wall_time_s"),
            cache=mapping_of(run.get("cache")) or {},
            loading=mapping_of(run.get("loading")) or {},
            outcomes=mapping_of(run.get("outcomes")) or {},
            versions=mapping_of(run.get("versions")) or {},
        )


def _model(model: Mapping[str, Any]) -> dict[str, str]:
    fingerprint = str(model.get("fingerprint") or "")
    shown = {
        key: str(model.get(key) or MISSING)
        for key in ("name", "architecture", "paradigm", "spec", "weights")
    }
    return {
        **shown,
        "fingerprint": fingerprint,
        "fingerprint_short": fingerprint[:12] if fingerprint else MISSING,
    }


def _facts(run: RunInfo) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    if run.data:
        facts.append(("data", run.data))
    if run.device:
        facts.append(("device", run.device))
    if run.seed is not None:
        facts.append(("seed", format_number(run.seed)))
    if run.has_max_images:
        limit = run.max_images
        facts.append(("max images", "all" if limit is None else format_number(limit)))
    if run.wall_time_s is not None:
        facts.append(("wall time", duration(run.wall_time_s)))
    if run.cache:
        cache = run.cache
        counts = [as_float(cache.get(key, 0)) for key in ("memory_hits", "disk_hits")]
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
    loading = loading_fact(run.loading)
    if loading:
        facts.append(("loading", loading))
    return facts


def loading_fact(loading: Mapping[str, Any]) -> str:
    """``3 loader processes, JPEG decoding on the cpu; loader-bound (12.3 s waiting for
    batches, 4.1 s in the forward pass)``, or empty when the run loaded nothing."""
    if not loading.get("bound"):
        return ""
    workers = loading.get("workers")
    if workers is None:
        loaders = f"workers={text(loading.get('workers_setting'))}"
    elif str(workers) == "0":
        loaders = "one loader thread"
    else:
        loaders = f"{workers} loader processes"
    if loading.get("workers_setting") == "auto" and workers is not None:
        loaders += " (workers=auto)"
    return (
        f"{loaders}, JPEG decoding on the {text(loading.get('decode')) or 'cpu'}; "
        f"{text(loading.get('bound'))} ({format_number(loading.get('loader_wait_s', 0))} s "
        f"waiting for batches, {format_number(loading.get('forward_s', 0))} s in the forward "
        "pass)"
    )


def protocol_summary(document: ReportDocument) -> list[tuple[str, str]]:
    """Each protocol field with its distinct values over every result and artifact."""
    values: dict[str, dict[str, None]] = {}  # dicts as ordered sets: output stays stable
    for protocol in document.protocols():
        for key, value in protocol.items():
            if str(key) not in PROTOCOL_SKIP:
                values.setdefault(str(key), {})[compact(value)] = None
    summary = []
    for key, distinct in values.items():
        shown = list(distinct)[:4]
        more = len(distinct) - len(shown)
        summary.append((key, ", ".join(shown) + (f" (+{more} more)" if more else "")))
    return summary


def render(document: ReportDocument) -> dict[str, Any] | None:
    run = RunInfo.from_dict(document.run)
    models = [_model(model) for model in run.models]
    facts = _facts(run)
    outcomes = [
        {"name": name, "count": format_number(count), "cls": f"outcome-{name}"}
        for name, count in run.outcomes.items()
    ]
    versions = [
        (str(name), MISSING if version is None else str(version))
        for name, version in sorted(run.versions.items())
    ]
    protocol = protocol_summary(document)
    if not (models or facts or outcomes or versions or protocol):
        return None
    return {
        "models": models,
        "facts": facts,
        "outcomes": outcomes,
        "versions": versions,
        "protocol": protocol,
    }


SECTION = Section("run", "run", "Run", render, template="_run.html.j2")
