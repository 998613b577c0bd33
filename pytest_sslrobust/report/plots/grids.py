"""Heatmaps: similarity matrices and error tables by corruption and severity."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pytest_sslrobust.report.plots.figure import (
    FIGSIZE,
    MISSING_COLOUR,
    SEVERITY_LABEL,
    check_labels,
    check_matrix,
    check_title,
    fractions_as_percent,
    matplotlib_module,
    render_svg,
    set_tick_labels,
    text_colour,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_ANNOTATE_MAX_CELLS = 400  # beyond this, numbers in cells are too small to read


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
    check_title(title)
    check_title(colorbar_label, "colorbar_label")
    if cmap not in ("viridis", "cividis"):
        raise ValueError(f"cmap must be 'viridis' or 'cividis' (colour-blind safe), got {cmap!r}")
    array = check_matrix(values, "values")
    n_rows, n_columns = array.shape
    rows = check_labels(row_labels, n_rows, "row_labels", "rows")
    columns = check_labels(column_labels, n_columns, "column_labels", "columns")
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
        mpl = matplotlib_module()
        colours = mpl.colormaps[cmap].with_extremes(bad=MISSING_COLOUR)
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
        set_tick_labels(axes, columns)
        set_tick_labels(axes, rows, axis="y")
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
                    color=text_colour(colours(image.norm(value))),
                )

    # Rows get a fixed height so 19 corruptions stay legible instead of being squeezed.
    height = min(max(FIGSIZE[1], 0.24 * n_rows + 1.2), 10.0)
    return render_svg(draw, figsize=(FIGSIZE[0], height), title=title)


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
    names, percent = fractions_as_percent(errors, "errors")
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
        xlabel=SEVERITY_LABEL,
        ylabel="corruption",
    )
