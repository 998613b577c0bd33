"""How a contract explains itself: numbers shown to the digits that matter, the summary
line and the aligned table of a failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_sslrobust.metrics.statistics import Interval

__all__ = ["HEADER", "distinct", "fmt", "gap", "required", "signed", "summary", "table"]

HEADER = ("item", "obtained", "required", "gap", "")


def fmt(value: float, decimals: int | None, extra: int = 0) -> str:
    """``value`` with ``decimals`` (None: 4 significant digits), plus ``extra`` digits."""
    if decimals is None:
        return f"{value:.{4 + extra}g}"
    return f"{value:.{decimals + extra}f}"


def signed(value: float, decimals: int | None) -> str:
    return f"{value:+.4g}" if decimals is None else f"{value:+.{decimals}f}"


def distinct(a: float, b: float, decimals: int | None) -> tuple[str, str]:
    """Two numbers with enough digits that unequal values never print alike ("75.0 > 75.0")."""
    for extra in range(10):
        first, second = fmt(a, decimals, extra), fmt(b, decimals, extra)
        if first != second or a == b:
            break
    return first, second


def required(low: float | None, high: float | None, decimals: int | None) -> str:
    """The requirement as a table shows it: ``in [low, high]``, ``<= high`` or ``>= low``."""
    if low is not None and high is not None:
        return f"in [{fmt(low, decimals)}, {fmt(high, decimals)}]"
    if high is not None:
        return f"<= {fmt(high, decimals)}"
    assert low is not None
    return f">= {fmt(low, decimals)}"


def gap(lo: float, hi: float, low: float | None, high: float | None, decimals: int | None) -> str:
    """Signed distance of [lo, hi] (a value, or an interval) from the side that decides."""
    if low is not None and high is not None:
        if lo < low:
            return signed(lo - low, decimals)
        if hi > high:
            return signed(hi - high, decimals)
        return "inside"
    if high is not None:
        return signed(hi - high, decimals)
    assert low is not None
    return signed(lo - low, decimals)


def summary(
    shown: str,
    value: float,
    low: float | None,
    high: float | None,
    interval: Interval | None,
    decimals: int | None,
) -> str:
    """The one-line reason, worded on the value when the value itself fails."""
    value_fails = (low is not None and value < low) or (high is not None and value > high)
    if low is not None and high is not None:
        (v, lo_text), (_, hi_text) = (
            distinct(value, low, decimals),
            distinct(value, high, decimals),
        )
        if value_fails or interval is None:
            return f"{shown} {v} is outside the range [{lo_text}, {hi_text}]"
        ends = f"[{fmt(interval.low, decimals)}, {fmt(interval.high, decimals)}]"
        return (
            f"{shown} {v} is not reliably inside the range [{lo_text}, {hi_text}]: its "
            f"{100 * interval.confidence:g}% interval is {ends}"
        )
    if high is not None:
        v, bound = distinct(value, high, decimals)
        if value_fails or interval is None:
            return f"{shown} {v} is above the limit {bound}"
        return (
            f"{shown} {v} is not reliably below the limit {bound}: the upper end of its "
            f"{100 * interval.confidence:g}% interval is {fmt(interval.high, decimals)}"
        )
    assert low is not None
    v, bound = distinct(value, low, decimals)
    if value_fails or interval is None:
        return f"{shown} {v} is below the limit {bound}"
    return (
        f"{shown} {v} is not reliably above the limit {bound}: the lower end of its "
        f"{100 * interval.confidence:g}% interval is {fmt(interval.low, decimals)}"
    )


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned columns under ``HEADER``: names left, numbers right, requirements and marks
    left."""
    lines_in = [HEADER, *rows]
    widths = [max(len(row[i]) for row in lines_in) for i in range(len(HEADER))]
    lines = []
    for row in lines_in:
        cells = (
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].rjust(widths[3]),
            row[4],
        )
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines
