"""Small, deterministic, self-contained inline SVG charts and image thumbnails for the HTML report."""

from __future__ import annotations

import base64
import io
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PALETTE",
    "bar_chart",
    "embedding_scatter",
    "error_heatmap",
    "grouped_bars",
    "heatmap",
    "line_plot",
    "reliability_diagram",
    "scatter",
    "severity_curves",
    "thumbnail_png",
]

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE: tuple[str, ...] = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#000000",
)
_BASE = "#0072B2"  # blue: the default bar / point colour
_ACCENT = "#D55E00"  # vermillion: highlights and gaps, the strongest contrast to blue
_MISSING = "#d9d9d9"  # light grey for NaN heatmap cells, outside viridis' range
# Series take the palette in this order: yellow is nearly invisible as a thin line on white,
# so it comes last, and the two most contrasting colours come first.
_SERIES_COLOURS = tuple(PALETTE[i] for i in (4, 0, 2, 5, 1, 6, 7, 3))
# Markers and dashes vary alongside colour so that series stay apart in greyscale prints
# and once the eight palette colours run out.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_LINESTYLES = ("-", "--", ":", "-.")
_FIGSIZE = (6.0, 3.5)
_SEVERITY_LABEL = "severity"

# Applied around both drawing and saving, since matplotlib reads rcParams at both times.
_RC: dict[str, Any] = {
    # Text stays <text>: smaller than glyph paths, searchable, and escaped by the SVG writer.
    "svg.fonttype": "none",
    # Clip-path, marker and image ids derive from content and this salt, so equal input gives
    # equal bytes; equal ids across inlined SVGs then also denote equal definitions.
    "svg.hashsalt": "sslrobust",
    "svg.image_inline": True,
    # Labels come from data; a "$" in a corruption or model name must not turn into mathtext.
    "text.parse_math": False,
    # The family list is written into every <text>; a short one keeps the SVG small, and the
    # fallbacks are close to DejaVu Sans' metrics, which the layout was measured with.
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Verdana", "Arial", "Helvetica"],
    "font.size": 8.0,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.labelsize": 8.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.0,
    "legend.title_fontsize": 7.5,
    "legend.frameon": False,
    "figure.titlesize": 10.0,
    "figure.titleweight": "bold",
    "figure.labelsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "grid.color": "#e0e0e0",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.5,
    "lines.markersize": 4.0,
    "image.cmap": "viridis",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}
# Metadata the SVG writer would otherwise add: a timestamp (non-deterministic) and the
# matplotlib version (changes bytes across installs). The chart title becomes the SVG
# <title>, which screen readers and hover tooltips use.
_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
# rcParams are process-global: serialise rendering so concurrent threads don't interleave
# their rc_context blocks.
_LOCK = threading.Lock()
_ANNOTATE_MAX_CELLS = 400  # beyond this, numbers in cells are too small to read
_RASTERIZE_POINTS = 1500  # embedding scatters above this many points become a bitmap layer


def _matplotlib() -> Any:
    """Import matplotlib on first use: importing this module must stay cheap for pytest."""
    import matplotlib

    return matplotlib


def _render(draw: Callable[[Figure], None], *, figsize: tuple[float, float], title: str) -> str:
    """Draw on a fresh pyplot-free Figure and return the SVG text without prolog/DOCTYPE."""
    mpl = _matplotlib()
    from matplotlib.figure import Figure

    buffer = io.StringIO()
    with _LOCK, mpl.rc_context(_RC):
        # A bare Figure is never registered with pyplot, so no global figure is left behind.
        figure = Figure(figsize=figsize, layout="constrained")
        draw(figure)
        figure.savefig(
            buffer,
            format="svg",
            metadata={**_METADATA, "Title": title},
            bbox_inches="tight",
            pad_inches=0.05,
        )
    text = buffer.getvalue()
    # The XML declaration and DOCTYPE are invalid inside HTML; the <svg> root carries its
    # own namespaces, so it inlines as is.
    start = text.find("<svg")
    if start < 0:  # pragma: no cover - matplotlib always writes an <svg> root
        raise RuntimeError("matplotlib produced no <svg> element")
    return text[start:].strip()


# ---------------------------------------------------------------------------- validation


def _check_title(title: object, name: str = "title") -> str:
    if not isinstance(title, str):
        raise TypeError(f"{name} must be a str, got {type(title).__name__}")
    return title


def _vector(values: Sequence[float], name: str, *, allow_nan: bool = True) -> np.ndarray:
    """1-D float array; NaN means missing (drawn as a gap), infinities are always errors."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a sequence of numbers: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; there is nothing to plot")
    if np.isinf(array).any():
        raise ValueError(f"{name} contains infinite values; use NaN for missing data")
    if not allow_nan and np.isnan(array).any():
        raise ValueError(f"{name} contains NaN; every value must be finite")
    return array


def _matrix(values: Sequence[Sequence[float]], name: str) -> np.ndarray:
    rows = list(values)
    if not rows:
        raise ValueError(f"{name} is empty; there is nothing to plot")
    lengths = {len(row) for row in rows}
    if len(lengths) != 1:
        raise ValueError(f"{name} rows have different lengths {sorted(lengths)}; expected a matrix")
    if lengths == {0}:
        raise ValueError(f"{name} has no columns; there is nothing to plot")
    array = np.asarray(rows, dtype=np.float64)
    if np.isinf(array).any():
        raise ValueError(f"{name} contains infinite values; use NaN for missing data")
    return array


def _labels(labels: Sequence[object], count: int, name: str, what: str) -> list[str]:
    if isinstance(labels, str):
        raise TypeError(f"{name} must be a sequence of labels, not a single str")
    result = [str(label) for label in labels]
    if len(result) != count:
        raise ValueError(f"{name} has {len(result)} labels but there are {count} {what}")
    return result


def _mapping(values: Mapping[str, float], name: str) -> tuple[list[str], np.ndarray]:
    if not isinstance(values, Mapping):
        raise TypeError(f"{name} must be a mapping of label -> value")
    if not values:
        raise ValueError(f"{name} is empty; there is nothing to plot")
    return [str(key) for key in values], _vector(list(values.values()), name)


def _severity_rows(
    values: Mapping[str, Sequence[float]], name: str
) -> tuple[list[str], np.ndarray]:
    """Rows of per-severity values (NaN allowed) as one matrix, one row per corruption."""
    if not isinstance(values, Mapping):
        raise TypeError(f"{name} must be a mapping of corruption -> per-severity errors")
    if not values:
        raise ValueError(f"{name} is empty; there is nothing to plot")
    lengths = {str(key): len(row) for key, row in values.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"{name} needs the same number of severities for every corruption, got {lengths}"
        )
    return list(lengths), _matrix([list(row) for row in values.values()], name)


def _fractions_as_percent(
    errors: Mapping[str, Sequence[float]], name: str
) -> tuple[list[str], np.ndarray]:
    """Rows of error fractions in [0, 1] (NaN allowed) as one percent matrix."""
    names, array = _severity_rows(errors, name)
    finite = array[np.isfinite(array)]
    if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
        raise ValueError(
            f"{name} must be fractions in [0, 1] (they are shown as percent), "
            f"got values in [{finite.min():g}, {finite.max():g}]"
        )
    return names, array * 100.0


def _style(index: int) -> dict[str, Any]:
    """Colour, marker and dash for the index-th series; distinct for 8 x 4 series."""
    return {
        "color": _SERIES_COLOURS[index % len(_SERIES_COLOURS)],
        "marker": _MARKERS[index % len(_MARKERS)],
        "linestyle": _LINESTYLES[(index // len(PALETTE)) % len(_LINESTYLES)],
    }


def _text_colour(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on the given background (relative luminance)."""

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(float(c)) for c in rgba[:3])
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    # Equal contrast ratio against black and white lies at luminance ~0.179.
    return "black" if luminance > 0.179 else "white"


def _tick_labels(axes: Axes, labels: Sequence[str], *, axis: str = "x") -> None:
    positions = np.arange(len(labels))
    if axis == "y":
        axes.set_yticks(positions, labels)
        return
    # Long or many labels overlap when horizontal; a 45-degree slant anchored at the tick
    # keeps each label next to its bar or column.
    crowded = len(labels) > 8 or max((len(label) for label in labels), default=0) > 8
    if crowded:
        axes.set_xticks(positions, labels, rotation=45, ha="right", rotation_mode="anchor")
    else:
        axes.set_xticks(positions, labels)


def _legend(axes: Axes, count: int, *, title: str | None = None) -> None:
    """Legend inside for a few entries, outside on the right when it would cover data."""
    if count <= 4:
        axes.legend(loc="best", title=title)
    else:
        columns = 1 if count <= 16 else 2
        axes.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=columns, title=title, fontsize=6.5
        )


def _note(axes: Axes, text: str, *, corner: str = "lower right") -> None:
    vertical, horizontal = corner.split()
    x = 0.98 if horizontal == "right" else 0.02
    y = 0.02 if vertical == "lower" else 0.98
    axes.text(
        x,
        y,
        text,
        transform=axes.transAxes,
        ha=horizontal,
        va="bottom" if vertical == "lower" else "top",
        fontsize=7,
        color="#444444",
        bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "#bbbbbb"},
    )


# ---------------------------------------------------------------------------- charts


def heatmap(
    values: Sequence[Sequence[float]],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    *,
    title: str,
    colorbar_label: str,
    value_format: str = "{:.2f}",
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool = True,
    xlabel: str | None = None,
    ylabel: str | None = None,
    cmap: str = "viridis",
) -> str:
    """A matrix as coloured cells with a colour bar; NaN cells are grey and left blank.

    Args:
        values: rows x columns numbers; NaN marks missing cells.
        row_labels / column_labels: one label per row / column.
        title: chart title. colorbar_label: what the colour means, with its unit.
        value_format: ``str.format`` pattern for the numbers written in the cells.
        vmin / vmax: colour range; defaults to the finite data range.
        annotate: write each value in its cell (skipped above 400 cells: unreadable).
        xlabel / ylabel: optional axis titles.
        cmap: a perceptually uniform, colour-blind safe map: "viridis" or "cividis".

    Returns:
        The ``<svg>`` element as text.
    """
    _check_title(title)
    _check_title(colorbar_label, "colorbar_label")
    if cmap not in ("viridis", "cividis"):
        raise ValueError(f"cmap must be 'viridis' or 'cividis' (colour-blind safe), got {cmap!r}")
    array = _matrix(values, "values")
    n_rows, n_columns = array.shape
    rows = _labels(row_labels, n_rows, "row_labels", "rows")
    columns = _labels(column_labels, n_columns, "column_labels", "columns")
    try:
        value_format.format(0.0)
    except (ValueError, IndexError, KeyError) as error:
        raise ValueError(f"value_format {value_format!r} cannot format a number: {error}") from None
    finite = array[np.isfinite(array)]
    low = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    high = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"need finite vmin <= vmax, got vmin={low!r}, vmax={high!r}")
    if low == high:  # a constant matrix still needs a non-degenerate colour range
        low, high = low - 0.5, high + 0.5

    def draw(figure: Figure) -> None:
        mpl = _matplotlib()
        colours = mpl.colormaps[cmap].with_extremes(bad=_MISSING)
        axes = figure.add_subplot()
        # interpolation="none" hands the raw rows x columns pixels to the SVG, which the
        # browser scales crisply: a few hundred bytes instead of a resampled bitmap.
        image = axes.imshow(
            np.ma.masked_invalid(array),
            cmap=colours,
            vmin=low,
            vmax=high,
            aspect="auto",
            interpolation="none",
        )
        colorbar = figure.colorbar(image, ax=axes, pad=0.02, fraction=0.06)
        colorbar.set_label(colorbar_label)
        _tick_labels(axes, columns)
        _tick_labels(axes, rows, axis="y")
        axes.tick_params(length=0)
        for spine in axes.spines.values():
            spine.set_visible(False)
        axes.set_title(title)
        if xlabel:
            axes.set_xlabel(xlabel)
        if ylabel:
            axes.set_ylabel(ylabel)
        if annotate and array.size <= _ANNOTATE_MAX_CELLS:
            size = 7.0 if n_rows <= 20 and n_columns <= 12 else 5.5
            for (row, column), value in np.ndenumerate(array):
                if math.isnan(value):
                    continue
                axes.text(
                    column,
                    row,
                    value_format.format(value),
                    ha="center",
                    va="center",
                    fontsize=size,
                    color=_text_colour(colours(image.norm(value))),
                )

    # Rows get a fixed height so 19 corruptions stay legible instead of being squeezed.
    height = min(max(_FIGSIZE[1], 0.24 * n_rows + 1.2), 10.0)
    return _render(draw, figsize=(_FIGSIZE[0], height), title=title)


def error_heatmap(
    errors: Mapping[str, Sequence[float]],
    *,
    title: str = "Top-1 error by corruption and severity",
) -> str:
    """Corruption x severity top-1 error heatmap, in percent on a fixed 0-100 % colour scale.

    Args:
        errors: corruption -> errors at severities 1..n (fractions in [0, 1], NaN = missing).
        title: chart title.
    """
    names, percent = _fractions_as_percent(errors, "errors")
    severities = [str(level) for level in range(1, percent.shape[1] + 1)]
    # A fixed 0-100 scale keeps colours comparable between the models of one report.
    return heatmap(
        percent,
        names,
        severities,
        title=title,
        colorbar_label="error (%)",
        value_format="{:.1f}",
        vmin=0.0,
        vmax=100.0,
        xlabel=_SEVERITY_LABEL,
        ylabel="corruption",
    )


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
    """
    _check_title(title)
    _check_title(ylabel, "ylabel")
    names, heights = _mapping(values, "values")
    marked = [str(name) for name in highlight] if not isinstance(highlight, str) else [highlight]
    unknown = sorted(set(marked) - set(names))
    if unknown:
        raise ValueError(f"highlight names {unknown} are not among the values' labels")
    spread = np.zeros_like(heights)
    if errors is not None:
        error_names, error_values = _mapping(errors, "errors") if errors else ([], np.array([]))
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
        colours = [_ACCENT if name in marked else _BASE for name in names]
        drawn = np.where(missing, 0.0, heights)
        if horizontal:
            bars = axes.barh(positions, drawn, color=colours)
            _tick_labels(axes, names, axis="y")
            axes.invert_yaxis()  # first label on top, reading order
            axes.set_xlabel(ylabel)
            axes.grid(axis="x")
        else:
            bars = axes.bar(positions, drawn, color=colours)
            _tick_labels(axes, names)
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

            handles.append(Patch(color=_ACCENT, label=highlight_label))
        if reference is not None:
            label = reference_label or f"reference = {reference:.3g}"
            line = axes.axvline if horizontal else axes.axhline
            handles.append(
                line(reference, color="#000000", linestyle="--", linewidth=1.1, label=label)
            )
        if handles:
            axes.legend(handles=handles, loc="best")
        axes.set_title(title)

    height = min(max(2.5, 0.22 * len(names) + 1.0), 10.0) if horizontal else _FIGSIZE[1]
    return _render(draw, figsize=(_FIGSIZE[0], height), title=title)


def grouped_bars(values: Mapping[str, Mapping[str, float]], *, title: str, ylabel: str) -> str:
    """Side-by-side bars: one colour per series, one group per category.

    Args:
        values: series -> category -> value, e.g. model -> variant -> accuracy. Categories
            appear in first-seen order; a category a series lacks (or NaN) leaves a gap.
        title: chart title. ylabel: the value axis title, with unit.
    """
    _check_title(title)
    _check_title(ylabel, "ylabel")
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
        numbers = _vector(list(row.values()), f"values[{name!r}]")
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
                color=_SERIES_COLOURS[index % len(_SERIES_COLOURS)],
                edgecolor="white",
                linewidth=0.5,
                hatch=hatch,
                label=name,
            )
        _tick_labels(axes, categories)
        axes.set_ylabel(ylabel)
        axes.grid(axis="y")
        axes.set_axisbelow(True)
        # Outside, because bars fill the plot up to the top and a legend inside hides some.
        axes.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=1 if len(series) <= 16 else 2
        )
        axes.set_title(title)

    return _render(draw, figsize=_FIGSIZE, title=title)


def severity_curves(
    errors: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str = "error (%)",
    families: Mapping[str, Sequence[str]] | None = None,
    percent: bool = True,
    ymax: float | None = None,
    gaps: bool = True,
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
    """
    _check_title(title)
    _check_title(ylabel, "ylabel")
    if percent:
        names, values = _fractions_as_percent(errors, "errors")
    else:
        names, values = _severity_rows(errors, "errors")
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
            style = _style(index)
            shown = np.ones(len(severities), bool) if gaps else np.isfinite(rows[name])
            axes.plot(severities[shown], rows[name][shown], label=name, markersize=3.5, **style)
        axes.set_xticks(severities)
        axes.set_ylim(bottom=bottom)
        if ymax is not None:
            axes.set_ylim(top=ymax)
        axes.grid(axis="y")
        if panel_title:
            axes.set_title(panel_title, fontsize=8.5, fontweight="normal")
        if single:
            _legend(axes, len(members))
        else:
            axes.legend(loc="best", fontsize=6.0, handlelength=2.2)

    if families is None:

        def draw(figure: Figure) -> None:
            axes = figure.add_subplot()
            draw_panel(axes, names, "", True)
            axes.set_xlabel(_SEVERITY_LABEL)
            axes.set_ylabel(ylabel)
            axes.set_title(title)

        width = _FIGSIZE[0] + (1.0 if len(names) > 16 else 0.0)
        return _render(draw, figsize=(width, _FIGSIZE[1]), title=title)

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
        figure.supxlabel(_SEVERITY_LABEL)
        figure.supylabel(ylabel)

    return _render(draw_multiples, figsize=(6.5, 2.2 * n_rows + 0.7), title=title)


def scatter(
    x: Sequence[float],
    y: Sequence[float],
    labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    annotate: bool = True,
) -> str:
    """Points with short text labels, e.g. SSIM against error per corruption cell.

    Args:
        x, y: coordinates; a point with a NaN coordinate is left out.
        labels: one short label per point, written next to it when ``annotate``.
        title, xlabel, ylabel: chart and axis titles (with units).
    """
    _check_title(title)
    _check_title(xlabel, "xlabel")
    _check_title(ylabel, "ylabel")
    xs = _vector(x, "x")
    ys = _vector(y, "y")
    if xs.size != ys.size:
        raise ValueError(f"x has {xs.size} values but y has {ys.size}")
    names = _labels(labels, xs.size, "labels", "points")
    keep = np.isfinite(xs) & np.isfinite(ys)

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        axes.scatter(xs[keep], ys[keep], s=22, color=_BASE, edgecolors="white", linewidths=0.5)
        if annotate:
            for px, py, name in zip(xs[keep], ys[keep], np.array(names)[keep], strict=True):
                axes.annotate(
                    str(name),
                    (px, py),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=6.0,
                    color="#333333",
                )
        if not keep.any():
            _note(axes, "no finite points", corner="upper left")
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True)
        axes.set_axisbelow(True)
        axes.set_title(title)

    return _render(draw, figsize=_FIGSIZE, title=title)


def embedding_scatter(
    points: Sequence[Sequence[float]],
    groups: Sequence[str],
    *,
    title: str,
    method: str,
) -> str:
    """2-D embedding coloured by group; the projection method is written on the plot.

    Args:
        points: (n, 2) coordinates; points with NaN are left out.
        groups: one group name per point (e.g. class, or clean / corrupted).
        title: chart title.
        method: the projection used ("PCA", "UMAP", ...): shown in the axis titles and a
            corner note, because PCA and UMAP distances mean different things.
    """
    _check_title(title)
    _check_title(method, "method")
    if not method.strip():
        raise ValueError("method must name the projection, e.g. 'PCA' or 'UMAP'")
    array = _matrix(points, "points")
    if array.shape[1] != 2:
        raise ValueError(f"points must be (n, 2) coordinates, got shape {array.shape}")
    names = _labels(groups, array.shape[0], "groups", "points")
    keep = np.isfinite(array).all(axis=1)
    order = list(dict.fromkeys(names))

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        members = np.array(names)
        # Thousands of vector markers make a megabyte SVG; a bitmap of the dots stays small
        # while axes and text remain vector.
        dense = int(keep.sum()) > _RASTERIZE_POINTS
        for index, group in enumerate(order):
            chosen = keep & (members == group)
            style = _style(index)
            axes.scatter(
                array[chosen, 0],
                array[chosen, 1],
                s=14,
                color=style["color"],
                marker=style["marker"],
                edgecolors="none",
                alpha=0.85,
                label=group,
                rasterized=dense,
            )
        # Beyond ~20 groups a legend is a wall of text; the count tells what it would say.
        if len(order) <= 20:
            _legend(axes, len(order), title="group")
        note = f"projection: {method}"
        if len(order) > 20:
            note += f" ({len(order)} groups)"
        if not keep.any():
            note += "; no finite points"
        _note(axes, note)
        axes.set_xlabel(f"{method} 1")
        axes.set_ylabel(f"{method} 2")
        axes.set_title(title)

    return _render(draw, figsize=_FIGSIZE, title=title)


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
    _check_title(title)
    conf = _vector(confidence, "confidence")
    acc = _vector(accuracy, "accuracy")
    sizes = _vector(counts, "counts", allow_nan=False)
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
            color=_BASE,
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
            color=_ACCENT,
            alpha=0.35,
            edgecolor=_ACCENT,
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
        _note(axes, f"n = {int(sizes.sum())}, {int(filled.sum())}/{n_bins} bins filled")
        axes.set_title(full_title)

    return _render(draw, figsize=(4.6, 4.2), title=full_title)


def line_plot(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
) -> str:
    """One line per series over shared x values, e.g. robust accuracy against eps per model.

    Args:
        x: finite x positions shared by all series.
        series: name -> y values, one per x; NaN leaves a gap.
        title, xlabel, ylabel: chart and axis titles (with units).
    """
    _check_title(title)
    _check_title(xlabel, "xlabel")
    _check_title(ylabel, "ylabel")
    xs = _vector(x, "x", allow_nan=False)
    if not isinstance(series, Mapping):
        raise TypeError("series must be a mapping of name -> y values")
    if not series:
        raise ValueError("series is empty; there is nothing to plot")
    lines: dict[str, np.ndarray] = {}
    for name, ys in series.items():
        array = _vector(ys, f"series[{name!r}]")
        if array.size != xs.size:
            raise ValueError(f"series[{name!r}] has {array.size} values but x has {xs.size}")
        lines[str(name)] = array

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        for index, (name, ys) in enumerate(lines.items()):
            axes.plot(xs, ys, label=name, **_style(index))
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True)
        axes.set_axisbelow(True)
        _legend(axes, len(lines))
        axes.set_title(title)

    return _render(draw, figsize=_FIGSIZE, title=title)


# ---------------------------------------------------------------------------- thumbnails

_IMAGE_FORMATS = {"JPEG": "jpeg", "JPG": "jpeg", "PNG": "png"}


def thumbnail_png(
    image: np.ndarray,
    max_side: int = 96,
    *,
    format: str = "JPEG",
    quality: int = 80,
) -> str:
    """A downscaled copy of an image as a ``data:`` URI for an ``<img src=...>``.

    JPEG by default: a 96 px noisy photo is a few KB, so a grid of 3 models x 19
    corruptions x 5 severities keeps the report small. Never upscales.

    Args:
        image: uint8 array, H x W x 3 (RGB) or H x W (grey).
        max_side: longest side of the thumbnail, in pixels.
        format: "JPEG" or "PNG" (lossless, larger for photos).
        quality: JPEG quality, 1..95 (ignored for PNG).

    Returns:
        ``data:image/jpeg;base64,...`` (or ``image/png``).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got dtype {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must be H x W x 3 (RGB) or H x W (grey), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise ValueError(f"max_side must be a positive int, got {max_side!r}")
    kind = _IMAGE_FORMATS.get(str(format).upper())
    if kind is None:
        raise ValueError(f"format must be 'JPEG' or 'PNG', got {format!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 95:
        raise ValueError(f"quality must be an int in 1..95, got {quality!r}")
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image))
    # thumbnail() keeps the aspect ratio and only ever shrinks; LANCZOS avoids aliasing.
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if kind == "jpeg":
        picture.save(buffer, format="JPEG", quality=quality, optimize=True)
    else:
        picture.save(buffer, format="PNG", optimize=True)
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
