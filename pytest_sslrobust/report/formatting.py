"""How the report writes numbers, ranges, budgets, durations and protocol values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MISSING",
    "as_float",
    "compact",
    "duration",
    "eps",
    "format_bounds",
    "format_interval",
    "format_number",
    "percent",
    "share",
    "sort_key",
    "with_interval",
]

MISSING = "–"


def format_number(value: Any, digits: int = 4) -> str:
    """A number as the report shows it: ``digits`` significant digits, ``–`` for none.

    Non-finite floats arrive either as floats or, from JSON documents, as the strings
    ``"nan"``/``"inf"``; both print as written.
    """
    if value is None:
        return MISSING
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
    return MISSING


def format_interval(interval: Mapping[str, Any] | None) -> str:
    if not interval:
        return MISSING
    return f"[{format_number(interval.get('low'))}, {format_number(interval.get('high'))}]"


def with_interval(value: Any, low: Any = None, high: Any = None, digits: int = 3) -> str:
    """``value [low, high]`` (its interval when both ends are numbers), ``value`` alone
    otherwise, at ``digits`` significant digits."""
    shown = format_number(value, digits)
    if low is None or high is None:
        return shown
    ends = [as_float(low), as_float(high)]
    if not all(math.isfinite(end) for end in ends):
        return shown
    return f"{shown} [{format_number(ends[0], digits)}, {format_number(ends[1], digits)}]"


def as_float(value: Any) -> float:
    """``value`` as a float; NaN for anything that is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def percent(value: Any) -> str:
    number = as_float(value)
    if value is None:
        return MISSING
    return f"{100 * number:.1f}%" if math.isfinite(number) else str(value)


def share(value: Any) -> str:
    """A fraction as a percentage without trailing zeros (0.1 -> 10%)."""
    number = as_float(value)
    return f"{100 * number:.4g}%" if math.isfinite(number) else format_number(value)


def sort_key(value: Any) -> str:
    """The ``data-sort`` attribute of a numeric cell: a plain number, empty when none."""
    number = as_float(value)
    return repr(number) if math.isfinite(number) else ""


def compact(value: Any) -> str:
    """A protocol value on one line (nested objects as sorted JSON)."""
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return format_number(value)


def eps(value: Any) -> str:
    """A perturbation budget; multiples of 1/255 as the literature writes them (4/255)."""
    number = as_float(value)
    steps = number * 255
    if number > 0 and math.isfinite(steps) and abs(steps - round(steps)) < 1e-6:
        return f"{round(steps)}/255"
    return format_number(value, 3)


def duration(seconds: Any) -> str:
    total = as_float(seconds)
    if not math.isfinite(total):
        return MISSING
    if total < 60:
        return f"{total:.1f} s"
    minutes, secs = divmod(int(round(total)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"
