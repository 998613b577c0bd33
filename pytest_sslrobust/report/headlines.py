"""Headline numbers: each study's few numbers per model, for the summary at the top.

A study's section says which of its numbers are headlines (``Section.headlines``): one
``Headline`` per quantity (mCE, BG-Gap, probe accuracy on a variant...), with one
``Measure`` per model and the direction in which it is better. The contracts' results add
the bootstrap intervals of the same numbers (matched by model, metric and value), and the
contracts measured on several models that no study's number matches become rows of their
own. ``verdict`` picks the best model of a row, or says why there is none.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.chance import (
    ACCURACY_METRICS,
    CLEAN_LABELS,
    near_chance,
    result_chance,
)
from pytest_sslrobust.report.formatting import MISSING, as_float, format_number

if TYPE_CHECKING:
    from pytest_sslrobust.report.document import ReportDocument

__all__ = ["Headline", "HeadlineRows", "Measure", "Verdict", "collect", "verdict"]

BETTER = ("lower", "higher")
# A contract's value is the study's number when they agree to float rounding.
_SAME = 1e-6


@dataclasses.dataclass(frozen=True)
class Measure:
    """One model's value in a headline row.

    ``low``/``high``: its interval (``level`` its confidence), when a contract recorded one;
    ``chance``: what a guess scores, for an accuracy (a near-chance badge when it is close);
    ``shown``: text shown instead of the number ("n/a"), with ``note`` saying why; a measure
    that is not ``ranked`` takes no part in picking the best.
    """

    value: float
    low: float | None = None
    high: float | None = None
    level: float | None = None
    chance: float | None = None
    shown: str | None = None
    note: str = ""
    ranked: bool = True

    @property
    def comparable(self) -> bool:
        return self.ranked and self.shown is None and math.isfinite(self.value)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def near_chance(self) -> bool:
        return self.chance is not None and near_chance(self.value, self.chance, self.low)

    def text(self, percent: bool = False) -> str:
        """``0.823 [0.801, 0.845]``, or in percent ``82.3% [80.1, 84.5]``."""
        if self.shown is not None:
            return self.shown
        if not math.isfinite(self.value):
            return MISSING

        def number(value: float) -> str:
            return f"{100 * value:.1f}" if percent else format_number(value, 3)

        text = number(self.value) + ("%" if percent else "")
        if self.has_interval:
            text += f" [{number(self.low)}, {number(self.high)}]"  # type: ignore[arg-type]
        return text


@dataclasses.dataclass
class Headline:
    """One row of the summary: a quantity of one study, a measure per model."""

    section: str
    study: str
    quantity: str
    better: str
    values: dict[str, Measure] = dataclasses.field(default_factory=dict)
    metric: str = ""  # the contract metric whose results may carry these values' intervals
    percent: bool = False
    title: str = ""  # what the quantity is, as a tooltip
    from_contracts: bool = False

    def add(self, model: str, measure: Measure) -> None:
        """The model's first measure of the quantity counts (the one recorded first)."""
        self.values.setdefault(model, measure)


class HeadlineRows:
    """One study's headline rows, each made on first use under a key (what it measures)."""

    def __init__(self, section: str, study: str) -> None:
        self.section, self.study = section, study
        self._rows: dict[Hashable, Headline] = {}

    def row(self, key: Hashable, quantity: str, better: str, **options: Any) -> Headline:
        if key not in self._rows:
            self._rows[key] = Headline(self.section, self.study, quantity, better, **options)
        return self._rows[key]

    def rows(self) -> list[Headline]:
        return rows(self._rows.values())


def rows(headlines: Iterable[Headline]) -> list[Headline]:
    """Headlines with at least one value, in order."""
    return [h for h in headlines if h.values]


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The best model of a row (None when there is no clear one) and what to say."""

    model: str | None
    text: str
    reason: str = ""


def verdict(headline: Headline) -> Verdict:
    """The best model by the row's direction; with intervals, "no clear best" when the
    leader's interval overlaps another model's; by value when some lack one."""
    if headline.better not in BETTER:
        return Verdict(None, MISSING, "neither higher nor lower is better")
    ranked = {m: v for m, v in headline.values.items() if v.comparable}
    if len(ranked) < 2:
        return Verdict(None, MISSING, "fewer than two models with a comparable value")
    order = sorted(ranked, key=lambda m: ranked[m].value, reverse=headline.better == "higher")
    top, lead = order[0], ranked[order[0]]
    if ranked[order[1]].value == lead.value:
        tied = [m for m in order if ranked[m].value == lead.value]
        return Verdict(None, "tie", f"equal values: {', '.join(tied)}")
    overlapping = [
        m
        for m in order[1:]
        if lead.has_interval
        and ranked[m].has_interval
        and ranked[m].low <= lead.high  # type: ignore[operator]
        and lead.low <= ranked[m].high  # type: ignore[operator]
    ]
    if overlapping:
        return Verdict(
            None,
            "no clear best",
            f"{top}'s interval overlaps that of {', '.join(overlapping)}",
        )
    if all(v.has_interval for v in ranked.values()):
        return Verdict(top, top, "the intervals do not overlap")
    missing = [m for m in order if not ranked[m].has_interval]
    return Verdict(top, top, f"by value: no interval for {', '.join(missing)}")


# --------------------------------------------------------------------------- contracts

# Where a contract's result belongs, by a word of its test id, else by its metric.
_TEST_WORDS = (
    ("generalis", "generalisability"),
    ("transfer", "generalisability"),
    ("corruption", "corruption"),
    ("background", "background"),
    ("missing", "missing"),
    ("mask", "missing"),
    ("adversarial", "adversarial"),
    ("attack", "adversarial"),
    ("calibration", "calibration"),
    ("attribution", "attribution"),
    ("focus", "attribution"),
)
_METRIC_SECTIONS = {
    "mce": "corruption",
    "relative_mce": "corruption",
    "accuracy_drop": "corruption",
    "bg_gap": "background",
    "cka": "missing",
    "cca": "missing",
    "neighbour_consistency": "missing",
    "robust_accuracy": "adversarial",
    "focus_shift": "attribution",
    "foreground_focus": "attribution",
}
CLEAN_STUDY = "Clean representation"
OTHER_STUDY = "Other contracts"


def _measure_key(result: Mapping[str, Any]) -> str:
    """What was measured, whichever model measured it: the result's ``measure``, else its
    test id without the model's parameter."""
    if result.get("measure"):
        return str(result["measure"])
    test, model = str(result.get("test", "")), str(result.get("model") or "")
    if model and f"[{model}]" in test:
        return test.replace(f"[{model}]", "")
    return re.sub(r"\[[^\]]*\]$", "", test)


def _placement(result: Mapping[str, Any], titles: Mapping[str, str]) -> tuple[str, str]:
    """(section id, study name) of a contract's result."""
    metric, label = str(result.get("metric", "")), str(result.get("label", ""))
    if metric in ACCURACY_METRICS and label.split(" ")[0] in ("near", "far"):
        return "generalisability", titles.get("generalisability", "Generalisability")
    test = _measure_key(result).lower()
    for word, section in _TEST_WORDS:
        if word in test and section in titles:
            return section, titles[section]
    if "clean" in test or (metric in ACCURACY_METRICS and label in CLEAN_LABELS):
        return "contracts", CLEAN_STUDY
    section = _METRIC_SECTIONS.get(metric)
    if section is not None and section in titles:
        return section, titles[section]
    return "contracts", OTHER_STUDY


def _interval_of(result: Mapping[str, Any]) -> tuple[float | None, float | None, float | None]:
    interval = result.get("interval")
    if not isinstance(interval, Mapping):
        return None, None, None
    low, high = as_float(interval.get("low")), as_float(interval.get("high"))
    if not (math.isfinite(low) and math.isfinite(high)):
        return None, None, None
    level = as_float(interval.get("confidence"))
    return low, high, level if math.isfinite(level) else None


def result_measure(result: Mapping[str, Any]) -> Measure:
    """A contract's value with its interval, and its chance for an accuracy."""
    low, high, level = _interval_of(result)
    chance = result_chance(result) if str(result.get("metric")) in ACCURACY_METRICS else None
    return Measure(as_float(result.get("value")), low, high, level, chance)


def _same(a: float, b: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= _SAME * max(1.0, abs(a))


def attach_intervals(headlines: list[Headline], results: list[Mapping[str, Any]]) -> set[int]:
    """Give each study number the interval of the contract that measured the same value on
    the same model; the indices of the results so matched."""
    used: set[int] = set()
    for headline in headlines:
        if not headline.metric:
            continue
        for model, measure in list(headline.values.items()):
            for index, result in enumerate(results):
                if index in used or str(result.get("model") or "") != model:
                    continue
                if str(result.get("metric")) != headline.metric:
                    continue
                if not _same(as_float(result.get("value")), measure.value):
                    continue
                used.add(index)
                low, high, level = _interval_of(result)
                if low is not None and not measure.has_interval:
                    chance = measure.chance
                    if chance is None and headline.metric in ACCURACY_METRICS:
                        chance = result_chance(result)
                    headline.values[model] = dataclasses.replace(
                        measure, low=low, high=high, level=level, chance=chance
                    )
                break
    return used


def contract_headlines(
    results: list[Mapping[str, Any]], skip: set[int], titles: Mapping[str, str], models: int
) -> list[Headline]:
    """Rows of the contracts no study number matched, one per measurement (test and label)
    with a direction, kept when several models measured it (or the run has one model). A
    measurement is left out only when a study's number matched it on every model: one that
    matched by coincidence on one model keeps its row, whole."""
    from pytest_sslrobust.contracts.facts import METRICS

    def key_of(result: Mapping[str, Any]) -> tuple[str, str, str]:
        return _measure_key(result), str(result.get("metric", "")), str(result.get("label", ""))

    unmatched = {key_of(r) for i, r in enumerate(results) if i not in skip}
    grouped: dict[tuple[str, str, str], Headline] = {}
    for result in results:
        better = str(result.get("better", ""))
        if key_of(result) not in unmatched or better not in BETTER or not result.get("model"):
            continue
        key = key_of(result)
        metric, label = key[1], key[2]
        if key not in grouped:
            section, study = _placement(result, titles)
            fact = METRICS.get(metric)
            display = fact.display if fact is not None else metric.replace("_", " ")
            quantity = display if label in ("", metric) else f"{display}: {label}"
            unit = str(result.get("unit") or "")
            grouped[key] = Headline(
                section,
                study,
                quantity + (f" ({unit})" if unit else ""),
                better,
                metric=metric,
                title=f"contract {key[0]}",
                from_contracts=True,
            )
        grouped[key].add(str(result["model"]), result_measure(result))
    needed = 2 if models >= 2 else 1
    return [h for h in grouped.values() if len(h.values) >= needed]


def collect(document: ReportDocument) -> list[Headline]:
    """Every study's headlines in page order, with the contracts' intervals, then the rows
    of the other contracts measured on several models (each after its study's rows)."""
    from pytest_sslrobust.report.sections import REGISTRY

    headlines: list[Headline] = []
    for section in REGISTRY:
        if section.headlines is not None:
            headlines.extend(rows(section.headlines(document)))
    results = list(document.results)
    used = attach_intervals(headlines, results)
    models = {m for h in headlines for m in h.values}
    models.update(str(r["model"]) for r in results if r.get("model"))
    titles = {section.id: section.title for section in REGISTRY}
    extra = contract_headlines(results, used, titles, len(models))
    order = {section.id: index for index, section in enumerate(REGISTRY)}
    last = len(order)

    def rank(headline: Headline) -> tuple[int, int]:
        if headline.study == OTHER_STUDY:
            return last + 1, 0
        return order.get(headline.section, last), int(headline.from_contracts)

    return sorted([*headlines, *extra], key=rank)
