"""The generalisability section: probe accuracy on a near and a far target, confidence and
invariance to the augmentations SSL trains with.

The study (``example_suites/test_generalisability.py``) decides its near and far probes with
accuracy contracts labelled ``near`` and ``far``, and records the near probe's confidence in
its reliability diagram (``confidence_by_variant={"near": ...}``): the section reads both.
``ReportRecorder.transfer`` records the rest (the far target's confidence, the invariance,
the target's data) as ``transfer`` artifacts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from pytest_sslrobust.report.blocks import (
    caveat_note,
    figure,
    figures,
    model_cell,
    panel,
    row,
    table,
)
from pytest_sslrobust.report.chance import ChanceCheck, model_caveats, near_chance, result_chance
from pytest_sslrobust.report.document import ReportDocument, mapping_of, number, text
from pytest_sslrobust.report.formatting import MISSING, as_float, format_number, with_interval
from pytest_sslrobust.report.headlines import Headline, HeadlineRows, Measure
from pytest_sslrobust.report.sections.base import Section
from pytest_sslrobust.report.sections.calibration import ReliabilityPayload
from pytest_sslrobust.results import record_artifact

__all__ = ["SECTION", "TARGETS", "TransferPayload", "record"]

TARGETS = ("near", "far")
ACCURACY_METRICS = ("balanced_accuracy", "accuracy")


@dataclasses.dataclass(frozen=True)
class TransferPayload:
    """One model's readout on one transfer target: its accuracy (with interval and chance),
    mean confidence, and the invariance of its features to augmented views; any may be
    missing (a test records what it measured)."""

    KIND = "transfer"

    target: str
    data: str = ""
    metric: str = "balanced_accuracy"
    accuracy: Any = None
    interval: dict[str, Any] | None = None
    chance: Any = None
    confidence: Any = None
    invariance: Any = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"target": self.target, "metric": self.metric}
        optional = {
            "data": self.data,
            "accuracy": self.accuracy,
            "interval": self.interval,
            "chance": self.chance,
            "confidence": self.confidence,
            "invariance": self.invariance,
        }
        data.update((key, value) for key, value in optional.items() if value not in (None, ""))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransferPayload:
        interval = mapping_of(data.get("interval"))
        return cls(
            target=text(data.get("target"), "near"),
            data=text(data.get("data")),
            metric=text(data.get("metric"), "balanced_accuracy"),
            accuracy=number(data.get("accuracy")),
            interval=None
            if interval is None
            else {"low": number(interval.get("low")), "high": number(interval.get("high"))},
            chance=number(data.get("chance")),
            confidence=number(data.get("confidence")),
            invariance=number(data.get("invariance")),
        )


def record(payload: TransferPayload, *, model: str) -> None:
    """Record one target's numbers for ``model`` (``ReportRecorder.transfer``)."""
    record_artifact(TransferPayload.KIND, payload.to_dict(), model=model, label=payload.target)


# --------------------------------------------------------------------------- reading


@dataclasses.dataclass
class _Target:
    """What the document holds on one model's one target, from every source."""

    model: str
    target: str
    data: str = ""
    metric: str = ""
    accuracy: float = math.nan
    low: float | None = None
    high: float | None = None
    chance: float | None = None
    confidence: float = math.nan
    invariance: float = math.nan
    source: str = ""

    @property
    def near_chance(self) -> bool:
        return self.chance is not None and near_chance(self.accuracy, self.chance, self.low)


def _finite(value: Any) -> float:
    return as_float(value) if value is not None else math.nan


def _target_of(label: str) -> str | None:
    word = label.split(" ")[0].lower()
    return word if word in TARGETS else None


def targets(document: ReportDocument) -> list[_Target]:
    """Per model and target: the transfer artifacts' numbers, completed by the accuracy
    contracts labelled ``near``/``far`` and the reliability payloads' confidence."""
    found: dict[tuple[str, str], _Target] = {}

    def slot(model: str, target: str) -> _Target:
        return found.setdefault((model, target), _Target(model, target))

    for e in document.entries(TransferPayload):
        p, t = e.payload, slot(e.model, e.payload.target)
        t.data = t.data or p.data
        if not math.isfinite(t.accuracy) and p.accuracy is not None:
            t.accuracy, t.metric, t.source = _finite(p.accuracy), p.metric, "recorded"
            if p.interval:
                low, high = _finite(p.interval.get("low")), _finite(p.interval.get("high"))
                if math.isfinite(low) and math.isfinite(high):
                    t.low, t.high = low, high
            chance = _finite(p.chance)
            t.chance = chance if math.isfinite(chance) else t.chance
        if not math.isfinite(t.confidence):
            t.confidence = _finite(p.confidence)
        if not math.isfinite(t.invariance):
            t.invariance = _finite(p.invariance)
    for result in document.results:
        target = _target_of(str(result.get("label", "")))
        metric = str(result.get("metric", ""))
        if target is None or metric not in ACCURACY_METRICS or not result.get("model"):
            continue
        t = slot(str(result["model"]), target)
        if math.isfinite(t.accuracy):
            continue
        t.accuracy, t.metric, t.source = _finite(result.get("value")), metric, "contract"
        interval = mapping_of(result.get("interval")) or {}
        low, high = _finite(interval.get("low")), _finite(interval.get("high"))
        if math.isfinite(low) and math.isfinite(high):
            t.low, t.high = low, high
        t.chance = t.chance if t.chance is not None else result_chance(result)
    # Confidence recorded with a reliability diagram under the target's name.
    for e in document.entries(ReliabilityPayload):
        for target in TARGETS:
            value = e.payload.confidence_by_variant.get(target)
            if value is not None and (e.model, target) in found:
                t = found[(e.model, target)]
                if not math.isfinite(t.confidence):
                    t.confidence = _finite(value)
    order = {model: index for index, model in enumerate(document.model_order)}
    return sorted(
        found.values(),
        key=lambda t: (TARGETS.index(t.target), order.get(t.model, len(order))),
    )


# --------------------------------------------------------------------------- rendering


def _accuracy_cell(t: _Target) -> dict[str, Any]:
    cell: dict[str, Any] = {"text": with_interval(t.accuracy, t.low, t.high)}
    if t.near_chance:
        cell.update(
            badge="≈ chance",
            badge_cls="caveat",
            badge_title=f"below 1.5 × chance ({format_number(t.chance, 3)}) or its interval "
            "reaches chance",
        )
    return cell


def render(document: ReportDocument) -> dict[str, Any] | None:
    found = [
        t
        for t in targets(document)
        if math.isfinite(t.accuracy) or math.isfinite(t.confidence) or math.isfinite(t.invariance)
    ]
    if not found:
        return None
    caveats = model_caveats(document)
    rows = []
    for t in found:
        ratio = t.accuracy / t.chance if t.chance and math.isfinite(t.accuracy) else math.nan
        rows.append(
            row(
                [
                    model_cell(t.model, t.model, caveats),
                    t.target,
                    t.data or MISSING,
                    _accuracy_cell(t),
                    format_number(t.chance, 3),
                    f"{ratio:.2f} ×" if math.isfinite(ratio) else MISSING,
                    format_number(t.confidence, 3) if math.isfinite(t.confidence) else MISSING,
                    format_number(t.invariance, 3) if math.isfinite(t.invariance) else MISSING,
                ]
            )
        )
    columns = ["model", "target", "data", "probe accuracy [interval]", "chance"]
    blocks: list[dict[str, Any]] = [
        table(
            "Probe accuracy on the near and far targets",
            [*columns, "accuracy / chance", "mean confidence", "invariance"],
            rows,
            numeric=range(3, 8),
            note=caveat_note(
                caveats,
                (t.model for t in found),
                "Near: the run's own data; far: another dataset (another task, other "
                "photographs). Accuracy: the linear probe's (balanced) accuracy with its "
                "bootstrap interval; ≈ chance: below 1.5 × chance or an interval reaching "
                "it. Mean confidence: the probe's mean top-1 probability. Invariance: mean "
                "cosine similarity between an image's features and those of an augmented "
                "view of it.",
            ),
        )
    ]
    panels = []
    for target in TARGETS:
        shown = [t for t in found if t.target == target and math.isfinite(t.accuracy)]
        if not shown:
            continue
        chances = {t.chance for t in shown if t.chance is not None}
        chance = next(iter(chances)) if len(chances) == 1 else None
        drawn = figure(
            "bar_chart",
            {t.model: t.accuracy for t in shown},
            title=f"{target} target",
            ylabel="probe accuracy",
            chance=chance,
            ylim=(0.0, 1.0),  # one scale for both targets
        )
        data = ", ".join(dict.fromkeys(t.data for t in shown if t.data))
        panels.append(panel(f"{target} target" + (f" ({data})" if data else ""), drawn))
    if panels:
        blocks.append(
            figures(
                "Probe accuracy per target",
                panels,
                note="One accuracy scale for both targets; the dotted line is chance (1/k "
                "for the target's k classes).",
            )
        )
    return {"blocks": blocks}


def headlines(document: ReportDocument) -> list[Headline]:
    found = HeadlineRows(SECTION.id, SECTION.title)
    for t in targets(document):
        if math.isfinite(t.accuracy):
            found.row(
                ("accuracy", t.target),
                f"probe accuracy, {t.target} target",
                "higher",
                metric=t.metric,
                title=f"linear probe on the {t.target} target" + (f" ({t.data})" if t.data else ""),
            ).add(t.model, Measure(t.accuracy, t.low, t.high, chance=t.chance))
    for t in targets(document):
        if math.isfinite(t.confidence):
            found.row(
                ("confidence", t.target),
                f"mean confidence, {t.target} target",
                "none",
                title="the probe's mean top-1 probability: neither higher nor lower is "
                "better by itself (compare it with the accuracy)",
            ).add(t.model, Measure(t.confidence))
    for t in targets(document):
        if math.isfinite(t.invariance):
            found.row(
                ("invariance",),
                "invariance to augmented views",
                "higher",
                title="mean cosine similarity between an image's features and an augmented view's",
            ).add(t.model, Measure(t.invariance))
    return found.rows()


def checks(document: ReportDocument) -> list[ChanceCheck]:
    """The near target's accuracy (the run's own data) from the transfer artifacts; the
    near contracts are read by ``chance.result_checks`` already."""
    return [
        ChanceCheck(t.model, "near-target probe accuracy", t.accuracy, t.chance, t.low, t.high)
        for t in targets(document)
        if t.target == "near"
        and t.source == "recorded"
        and t.chance is not None
        and math.isfinite(t.accuracy)
    ]


SECTION = Section(
    "generalisability",
    "generalisability",
    "Generalisability",
    render,
    payloads=(TransferPayload,),
    headlines=headlines,
    checks=checks,
)
