"""Near chance: when a model's clean accuracy says its other numbers describe a guess.

A representation a k-class readout cannot read (accuracy near 1/k) still gets an mCE, a
BG-Gap and a robust accuracy, and they can look good: a model that reads nothing loses
nothing under corruption and leans on no background. The report says so next to such a
model wherever its numbers appear, and in the summary.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.formatting import as_float, format_number, with_interval

if TYPE_CHECKING:
    from pytest_sslrobust.report.document import ReportDocument

__all__ = [
    "ACCURACY_METRICS",
    "CLEAN_LABELS",
    "MARGIN",
    "ChanceCheck",
    "chance_of",
    "model_caveats",
    "near_chance",
    "result_chance",
    "result_checks",
]

# Within this factor of chance (or with an interval that reaches chance) a readout is "near
# chance": 1.5 x 1/10 = 0.15 for ten classes.
MARGIN = 1.5
ACCURACY_METRICS = frozenset({"accuracy", "balanced_accuracy"})
# Labels of accuracy contracts on the clean images of the run's own data (the default label
# of the accuracy contracts, the generalisability study's near target).
CLEAN_LABELS = frozenset({"accuracy", "balanced_accuracy", "near", "clean", "original"})


def near_chance(value: Any, chance: Any, low: Any = None) -> bool:
    """Whether ``value`` (an accuracy) is below ``MARGIN`` x ``chance``, or the low end of
    its interval reaches chance. False when either number is missing."""
    accuracy, level = as_float(value), as_float(chance)
    if not (math.isfinite(accuracy) and math.isfinite(level) and level > 0):
        return False
    bottom = as_float(low)
    return accuracy < MARGIN * level or (math.isfinite(bottom) and bottom <= level)


def chance_of(classes: Any) -> float | None:
    """1/k for a k-class readout; None when the count is unknown or below two."""
    try:
        count = len(classes) if not isinstance(classes, (int, float)) else int(classes)
    except TypeError:
        return None
    return 1.0 / count if count >= 2 else None


@dataclasses.dataclass(frozen=True)
class ChanceCheck:
    """One clean accuracy of one model, with what chance gives for its readout."""

    model: str
    what: str
    value: float
    chance: float
    low: float | None = None
    high: float | None = None

    @property
    def near(self) -> bool:
        return near_chance(self.value, self.chance, self.low)

    def describe(self) -> str:
        """``clean probe accuracy 0.14 [0.11, 0.17] against chance 0.1``."""
        shown = with_interval(self.value, self.low, self.high)
        return f"{self.what} {shown} against chance {format_number(self.chance, 3)}"

    def caveat(self) -> str:
        reason = f"below {MARGIN:g} × chance"
        if not self.value < MARGIN * self.chance:
            reason = "its interval reaches chance"
        return (
            f"{self.model}: {self.describe()} ({reason}). Its numbers describe a "
            "representation near chance, not how robust a working one is."
        )


def result_chance(result: Mapping[str, Any]) -> float | None:
    """Chance of an accuracy contract's result: 1/k over the k classes its per-class
    details list (the accuracy contracts record one detail per class)."""
    details = result.get("details")
    if not isinstance(details, (list, tuple)):
        return None
    classes = {
        str(d.get("class"))
        for d in details
        if isinstance(d, Mapping) and d.get("class") is not None
    }
    return chance_of(len(classes))


def _interval(result: Mapping[str, Any]) -> tuple[float | None, float | None]:
    interval = result.get("interval")
    if not isinstance(interval, Mapping):
        return None, None
    low, high = as_float(interval.get("low")), as_float(interval.get("high"))
    if math.isfinite(low) and math.isfinite(high):
        return low, high
    return None, None


def result_checks(
    results: Iterable[Mapping[str, Any]], labels: frozenset[str] = CLEAN_LABELS
) -> list[ChanceCheck]:
    """Checks of the accuracy contracts with one of ``labels`` whose chance is known."""
    checks = []
    for result in results:
        if str(result.get("metric")) not in ACCURACY_METRICS:
            continue
        if str(result.get("label")) not in labels or not result.get("model"):
            continue
        chance = result_chance(result)
        value = as_float(result.get("value"))
        if chance is None or not math.isfinite(value):
            continue
        low, high = _interval(result)
        label = str(result.get("label"))
        metric = str(result.get("metric")).replace("_", " ")
        what = f"{metric} ({label})" if label not in (metric, str(result.get("metric"))) else metric
        checks.append(ChanceCheck(str(result["model"]), f"clean {what}", value, chance, low, high))
    return checks


def model_caveats(document: ReportDocument) -> dict[str, str]:
    """Model -> why its numbers describe a representation near chance, for the models one
    of whose clean accuracies (a contract's, or one a section recorded with its chance) is
    near chance; the first such accuracy, contracts first, is named."""
    # Imported here: the sections import this module.
    from pytest_sslrobust.report.sections import REGISTRY

    checks = result_checks(document.results)
    for section in REGISTRY:
        if section.checks is not None:
            checks.extend(section.checks(document))
    caveats: dict[str, str] = {}
    for check in checks:
        if check.near and check.model not in caveats:
            caveats[check.model] = check.caveat()
    return caveats
