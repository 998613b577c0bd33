"""Line charts: measures against severity, reliability diagrams, values against a budget."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pytest_sslrobust.report.plots.figure import (
    ACCENT_COLOUR,
    BASE_COLOUR,
    FIGSIZE,
    SEVERITY_LABEL,
    add_chance_line,
    add_legend,
    add_note,
    check_chance,
    check_title,
    check_vector,
    check_ylim,
    fractions_as_percent,
    render_svg,
    series_style,
    severity_matrix,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def severity_curves(
    errors: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str = "error (%)",
    families: Mapping[str, Sequence[str]] | None = None,
    percent: bool = True,
    ymax: float | None = None,
    gaps: bool = True,
    chance: float | None = None,
    chance_label: str | None = None,
) -> str:
    """Error against severity, one line per corruption; small multiples per family.

    Args:
        errors: corruption -> errors at severities 1..n as fractions in [0, 1] (NaN = gap),
            plotted in percent.
        title: chart title. ylabel: the error axis title.
        families: family -> corruptions, e.g. ``{"noise": [...], "blur": [...]}``: one
            panel per family, sharing the y axis. Corruptions in no family go to "other".
        percent: False plots other per-severity measures (e.g. an attribution map's rank
            shift, in [0, 2]) as they are: no [0, 1] check, no scaling; pass ``ylabel``.
        ymax: top of the y axis (the bottom stays at 0, or the lowest value below it), e.g.
            one scale for the panels of several models.
        gaps: False joins a line's points across missing severities, for studies that
            measure some severities only (1, 3, 5); True leaves a gap at each NaN.
        chance: the value a guess scores, on the scale of ``errors`` (an error fraction
            with ``percent``, e.g. 0.9 for 10 classes), drawn as a dotted line in each panel.
        chance_label: legend text of that line (default "chance (<value>)").
    """
    check_title(title)
    check_title(ylabel, "ylabel")
    chance = check_chance(chance)
    if chance is not None and percent:
        chance *= 100.0
    if percent:
        names, values = fractions_as_percent(errors, "errors")
    else:
        names, values = severity_matrix(errors, "errors")
    if ymax is not None and not (isinstance(ymax, int | float) and math.isfinite(ymax)):
        raise ValueError(f"ymax must be a finite number or None, got {ymax!r}")
    finite = values[np.isfinite(values)]
    bottom = min(0.0, float(finite.min())) if finite.size else 0.0
    if ymax is not None and ymax <= bottom:
        raise ValueError(f"ymax must lie above the lowest value {bottom:g}, got {ymax!r}")
    rows = dict(zip(names, values, strict=True))
    panels: dict[str, list[str]] = {}
    if families is None:
        panels[""] = names
    else:
        if not isinstance(families, Mapping) or not families:
            raise ValueError("families must be a non-empty mapping of family -> corruptions")
        for family, members in families.items():
            if isinstance(members, str):
                raise TypeError(f"families[{family!r}] must be a sequence of names, not a str")
            members = [str(member) for member in members]
            if not members:
                raise ValueError(f"family {family!r} has no corruptions")
            unknown = [member for member in members if member not in rows]
            if unknown:
                raise ValueError(f"family {family!r} names corruptions without errors: {unknown}")
            panels[str(family)] = members
        grouped = {member for members in panels.values() for member in members}
        # Never drop data silently: what no family claims is still drawn.
        rest = [name for name in names if name not in grouped]
        if rest:
            panels["other" if "other" not in panels else "other (unassigned)"] = rest
    severities = np.arange(1, values.shape[1] + 1)

    def draw_panel(axes: Axes, members: Sequence[str], panel_title: str, single: bool) -> None:
        for index, name in enumerate(members):
            style = series_style(index)
            shown = np.ones(len(severities), bool) if gaps else np.isfinite(rows[name])
            axes.plot(severities[shown], rows[name][shown], label=name, markersize=3.5, **style)
        if chance is not None:
            add_chance_line(axes, chance, label=chance_label)
        axes.set_xticks(severities)
        axes.set_ylim(bottom=bottom)
        if ymax is not None:
            axes.set_ylim(top=ymax)
        axes.grid(axis="y")
        if panel_title:
            axes.set_title(panel_title, fontsize=8.5, fontweight="normal")
        if single:
            add_legend(axes, len(members) + (chance is not None))
        else:
            axes.legend(loc="best", fontsize=6.0, handlelength=2.2)

    if families is None:

        def draw(figure: Figure) -> None:
            axes = figure.add_subplot()
            draw_panel(axes, names, "", True)
            axes.set_xlabel(SEVERITY_LABEL)
            axes.set_ylabel(ylabel)
            axes.set_title(title)

        width = FIGSIZE[0] + (1.0 if len(names) > 16 else 0.0)
        return render_svg(draw, figsize=(width, FIGSIZE[1]), title=title)

    n_panels = len(panels)
    n_columns = min(n_panels, 2 if n_panels <= 4 else 3)
    n_rows = math.ceil(n_panels / n_columns)

    def draw_multiples(figure: Figure) -> None:
        grid = figure.subplots(n_rows, n_columns, sharey=True, squeeze=False)
        cells = list(grid.flat)
        for axes, (family, members) in zip(cells, panels.items(), strict=False):
            draw_panel(axes, members, family, False)
        for axes in cells[n_panels:]:
            axes.remove()  # an empty slot in the grid reads as missing data
        figure.suptitle(title)
        figure.supxlabel(SEVERITY_LABEL)
        figure.supylabel(ylabel)

    return render_svg(draw_multiples, figsize=(6.5, 2.2 * n_rows + 0.7), title=title)


def reliability_diagram(
    confidence: Sequence[float],
    accuracy: Sequence[float],
    counts: Sequence[int],
    *,
    ece: float,
    title: str = "Reliability",
) -> str:
    """Accuracy per equal-width confidence bin against the diagonal of perfect calibration.

    Matches :class:`pytest_sslrobust.metrics.readouts.ReliabilityDiagram`: bin ``b`` of
    ``n`` spans ``(b/n, (b+1)/n]``; empty bins (count 0 or NaN) are skipped.

    Args:
        confidence: mean confidence per bin, in [0, 1].
        accuracy: accuracy per bin, in [0, 1].
        counts: samples per bin, non-negative.
        ece: expected calibration error, shown in the title.
        title: chart title.
    """
    check_title(title)
    conf = check_vector(confidence, "confidence")
    acc = check_vector(accuracy, "accuracy")
    sizes = check_vector(counts, "counts", allow_nan=False)
    if not conf.size == acc.size == sizes.size:
        raise ValueError(
            f"confidence, accuracy and counts need one value per bin, got lengths "
            f"{conf.size}, {acc.size} and {sizes.size}"
        )
    if (sizes < 0).any() or (sizes != np.round(sizes)).any():
        raise ValueError("counts must be non-negative integers")
    for name, array in (("confidence", conf), ("accuracy", acc)):
        finite = array[np.isfinite(array)]
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            raise ValueError(f"{name} must lie in [0, 1]")
    if not math.isfinite(ece) or ece < 0:
        raise ValueError(f"ece must be a finite, non-negative number, got {ece!r}")
    n_bins = conf.size
    filled = (sizes > 0) & np.isfinite(conf) & np.isfinite(acc)
    full_title = f"{title} (ECE = {ece:.3f})"

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        lefts = np.arange(n_bins)[filled] / n_bins
        width = 1.0 / n_bins
        axes.bar(
            lefts,
            acc[filled],
            width=width,
            align="edge",
            color=BASE_COLOUR,
            edgecolor="white",
            linewidth=0.5,
            label="accuracy",
        )
        # The gap between a bin's accuracy and its confidence is what ECE averages.
        axes.bar(
            lefts,
            np.abs(conf[filled] - acc[filled]),
            bottom=np.minimum(conf[filled], acc[filled]),
            width=width,
            align="edge",
            color=ACCENT_COLOUR,
            alpha=0.35,
            edgecolor=ACCENT_COLOUR,
            linewidth=0.5,
            hatch="//",
            label="gap to confidence",
        )
        axes.plot(
            [0, 1],
            [0, 1],
            color="#000000",
            linestyle="--",
            linewidth=1.0,
            label="perfect calibration",
        )
        axes.set_xlim(0.0, 1.0)
        axes.set_ylim(0.0, 1.0)
        axes.set_aspect("equal")
        axes.set_xlabel("confidence (mean per bin)")
        axes.set_ylabel("accuracy (fraction correct)")
        axes.legend(loc="upper left", title=f"ECE = {ece:.3f}")
        add_note(axes, f"n = {int(sizes.sum())}, {int(filled.sum())}/{n_bins} bins filled")
        axes.set_title(full_title)

    return render_svg(draw, figsize=(4.6, 4.2), title=full_title)


def line_plot(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    chance: float | None = None,
    chance_label: str | None = None,
    ylim: tuple[float, float] | None = None,
) -> str:
    """One line per series over shared x values, e.g. robust accuracy against eps per model.

    Args:
        x: finite x positions shared by all series.
        series: name -> y values, one per x; NaN leaves a gap.
        title, xlabel, ylabel: chart and axis titles (with units).
        chance: what a guess scores (1/k for a k-class readout), drawn as a dotted line.
        chance_label: legend text of that line (default "chance (<value>)").
        ylim: (bottom, top) of the y axis: one scale for several charts of one quantity.
    """
    check_title(title)
    check_title(xlabel, "xlabel")
    check_title(ylabel, "ylabel")
    chance = check_chance(chance)
    limits = check_ylim(ylim)
    xs = check_vector(x, "x", allow_nan=False)
    if not isinstance(series, Mapping):
        raise TypeError("series must be a mapping of name -> y values")
    if not series:
        raise ValueError("series is empty; there is nothing to plot")
    lines: dict[str, np.ndarray] = {}
    for name, ys in series.items():
        array = check_vector(ys, f"series[{name!r}]")
        if array.size != xs.size:
            raise ValueError(f"series[{name!r}] has {array.size} values but x has {xs.size}")
        lines[str(name)] = array

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        for index, (name, ys) in enumerate(lines.items()):
            axes.plot(xs, ys, label=name, **series_style(index))
        if chance is not None:
            add_chance_line(axes, chance, label=chance_label)
        if limits is not None:
            axes.set_ylim(*limits)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True)
        axes.set_axisbelow(True)
        add_legend(axes, len(lines) + (chance is not None))
        axes.set_title(title)

    return render_svg(draw, figsize=FIGSIZE, title=title)
