"""Bar charts: one series, or several side by side."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pytest_sslrobust.report.plots.figure import (
    ACCENT_COLOUR,
    BASE_COLOUR,
    FIGSIZE,
    PALETTE,
    SERIES_COLOURS,
    add_chance_line,
    check_chance,
    check_mapping,
    check_title,
    check_vector,
    check_ylim,
    render_svg,
    set_tick_labels,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def bar_chart(
    values: Mapping[str, float],
    *,
    title: str,
    ylabel: str,
    reference: float | None = None,
    reference_label: str | None = None,
    highlight: Sequence[str] = (),
    horizontal: bool = False,
    errors: Mapping[str, float] | None = None,
    highlight_label: str = "highlighted",
    chance: float | None = None,
    chance_label: str | None = None,
    ylim: tuple[float, float] | None = None,
) -> str:
    """One bar per label, e.g. CE per corruption with the mCE as a reference line.

    Args:
        values: label -> value, drawn in this order; NaN draws an empty slot marked "n/a".
        title: chart title. ylabel: the value axis title, with unit.
        reference: a value drawn as a dashed line across the bars (e.g. the mean).
        reference_label: legend text of the line (default "reference = <value>").
        highlight: labels whose bars are drawn in the accent colour.
        horizontal: horizontal bars (better for many long labels).
        errors: label -> non-negative error bar half-length (e.g. std); missing labels get none.
        highlight_label: legend text of the highlighted bars.
        chance: what a guess scores (1/k for a k-class readout), drawn as a dotted line.
        chance_label: legend text of that line (default "chance (<value>)").
        ylim: (bottom, top) of the value axis: one scale for the charts of several models.
    """
    check_title(title)
    check_title(ylabel, "ylabel")
    names, heights = check_mapping(values, "values")
    chance = check_chance(chance)
    limits = check_ylim(ylim)
    marked = [str(name) for name in highlight] if not isinstance(highlight, str) else [highlight]
    unknown = sorted(set(marked) - set(names))
    if unknown:
        raise ValueError(f"highlight names {unknown} are not among the values' labels")
    spread = np.zeros_like(heights)
    if errors is not None:
        error_names, error_values = (
            check_mapping(errors, "errors") if errors else ([], np.array([]))
        )
        stray = sorted(set(error_names) - set(names))
        if stray:
            raise ValueError(f"errors names {stray} are not among the values' labels")
        if (error_values[np.isfinite(error_values)] < 0).any():
            raise ValueError("errors must be non-negative half-lengths (e.g. a std)")
        for name, value in zip(error_names, error_values, strict=True):
            spread[names.index(name)] = 0.0 if math.isnan(value) else value
    if reference is not None and not math.isfinite(reference):
        raise ValueError(f"reference must be a finite number, got {reference!r}")
    missing = np.isnan(heights)

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        positions = np.arange(len(names))
        colours = [ACCENT_COLOUR if name in marked else BASE_COLOUR for name in names]
        drawn = np.where(missing, 0.0, heights)
        if horizontal:
            bars = axes.barh(positions, drawn, color=colours)
            set_tick_labels(axes, names, axis="y")
            axes.invert_yaxis()  # first label on top, reading order
            axes.set_xlabel(ylabel)
            axes.grid(axis="x")
        else:
            bars = axes.bar(positions, drawn, color=colours)
            set_tick_labels(axes, names)
            axes.set_ylabel(ylabel)
            axes.grid(axis="y")
        axes.set_axisbelow(True)
        # Only bars with a known spread get an error bar; a zero-length cap would claim one.
        with_error = (spread > 0) & ~missing
        if with_error.any():
            centre, reach = positions[with_error], heights[with_error]
            axes.errorbar(
                reach if horizontal else centre,
                centre if horizontal else reach,
                xerr=spread[with_error] if horizontal else None,
                yerr=None if horizontal else spread[with_error],
                fmt="none",
                ecolor="#333333",
                elinewidth=0.9,
                capsize=2.5,
            )
        if missing.any():
            for position in positions[missing]:
                xy = (0.0, position) if horizontal else (position, 0.0)
                axes.annotate(
                    "n/a",
                    xy,
                    xytext=(3, 0) if horizontal else (0, 3),
                    textcoords="offset points",
                    ha="left" if horizontal else "center",
                    va="center" if horizontal else "bottom",
                    fontsize=6.5,
                    color="#666666",
                )
        if len(names) <= 12 and not with_error.any():
            labels = [
                "" if gap else f"{value:.3g}" for value, gap in zip(heights, missing, strict=True)
            ]
            axes.bar_label(bars, labels=labels, padding=2, fontsize=6.5)
        handles = []
        if marked:
            from matplotlib.patches import Patch

            handles.append(Patch(color=ACCENT_COLOUR, label=highlight_label))
        if reference is not None:
            label = reference_label or f"reference = {reference:.3g}"
            line = axes.axvline if horizontal else axes.axhline
            handles.append(
                line(reference, color="#000000", linestyle="--", linewidth=1.1, label=label)
            )
        if chance is not None:
            handles.append(add_chance_line(axes, chance, label=chance_label, horizontal=horizontal))
        if limits is not None:
            (axes.set_xlim if horizontal else axes.set_ylim)(*limits)
        if handles:
            axes.legend(handles=handles, loc="best")
        axes.set_title(title)

    height = min(max(2.5, 0.22 * len(names) + 1.0), 10.0) if horizontal else FIGSIZE[1]
    return render_svg(draw, figsize=(FIGSIZE[0], height), title=title)


def grouped_bars(
    values: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    ylabel: str,
    chance: float | None = None,
    chance_label: str | None = None,
    ylim: tuple[float, float] | None = None,
) -> str:
    """Side-by-side bars: one colour per series, one group per category.

    Args:
        values: series -> category -> value, e.g. model -> variant -> accuracy. Categories
            appear in first-seen order; a category a series lacks (or NaN) leaves a gap.
        title: chart title. ylabel: the value axis title, with unit.
        chance: what a guess scores, drawn as a dotted line; chance_label its legend text.
        ylim: (bottom, top) of the value axis: one scale for the charts of several models.
    """
    check_title(title)
    check_title(ylabel, "ylabel")
    chance = check_chance(chance)
    limits = check_ylim(ylim)
    if not isinstance(values, Mapping):
        raise TypeError("values must be a mapping of series -> category -> value")
    if not values:
        raise ValueError("values is empty; there is nothing to plot")
    series: dict[str, dict[str, float]] = {}
    categories: list[str] = []
    for name, row in values.items():
        if not isinstance(row, Mapping):
            raise TypeError(f"values[{name!r}] must be a mapping of category -> value")
        if not row:
            raise ValueError(f"values[{name!r}] is empty; every series needs a value")
        numbers = check_vector(list(row.values()), f"values[{name!r}]")
        series[str(name)] = {str(k): float(v) for k, v in zip(row, numbers, strict=True)}
        categories.extend(str(key) for key in row if str(key) not in categories)

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        positions = np.arange(len(categories))
        width = 0.8 / len(series)
        for index, (name, row) in enumerate(series.items()):
            present = [
                i for i, key in enumerate(categories) if not math.isnan(row.get(key, math.nan))
            ]
            # Series beyond the palette repeat a colour, so they get a hatch to stay distinct.
            hatch = (None, "//", "..", "xx")[(index // len(PALETTE)) % 4]
            axes.bar(
                positions[present] + (index - (len(series) - 1) / 2) * width,
                [row[categories[i]] for i in present],
                width=width,
                color=SERIES_COLOURS[index % len(SERIES_COLOURS)],
                edgecolor="white",
                linewidth=0.5,
                hatch=hatch,
                label=name,
            )
        set_tick_labels(axes, categories)
        axes.set_ylabel(ylabel)
        axes.grid(axis="y")
        axes.set_axisbelow(True)
        if chance is not None:
            add_chance_line(axes, chance, label=chance_label)
        if limits is not None:
            axes.set_ylim(*limits)
        # Outside, because bars fill the plot up to the top and a legend inside hides some.
        axes.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=1 if len(series) <= 16 else 2
        )
        axes.set_title(title)

    return render_svg(draw, figsize=FIGSIZE, title=title)
