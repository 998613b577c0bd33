"""Scatters: one point per corruption, and 2-D embeddings coloured by group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pytest_sslrobust.report.plots.figure import (
    BASE_COLOUR,
    FIGSIZE,
    add_legend,
    add_note,
    check_labels,
    check_matrix,
    check_title,
    check_vector,
    check_ylim,
    render_svg,
    series_style,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_RASTERIZE_POINTS = 1500  # embedding scatters above this many points become a bitmap layer


def scatter(
    x: Sequence[float],
    y: Sequence[float],
    labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    annotate: bool = True,
    ylim: tuple[float, float] | None = None,
) -> str:
    """Points with short text labels, e.g. SSIM against error per corruption cell.

    Args:
        x, y: coordinates; a point with a NaN coordinate is left out.
        labels: one short label per point, written next to it when ``annotate``.
        title, xlabel, ylabel: chart and axis titles (with units).
        ylim: (bottom, top) of the y axis: one scale for the charts of several models.
    """
    check_title(title)
    check_title(xlabel, "xlabel")
    check_title(ylabel, "ylabel")
    limits = check_ylim(ylim)
    xs = check_vector(x, "x")
    ys = check_vector(y, "y")
    if xs.size != ys.size:
        raise ValueError(f"x has {xs.size} values but y has {ys.size}")
    names = check_labels(labels, xs.size, "labels", "points")
    keep = np.isfinite(xs) & np.isfinite(ys)

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        axes.scatter(
            xs[keep], ys[keep], s=22, color=BASE_COLOUR, edgecolors="white", linewidths=0.5
        )
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
            add_note(axes, "no finite points", corner="upper left")
        if limits is not None:
            axes.set_ylim(*limits)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True)
        axes.set_axisbelow(True)
        axes.set_title(title)

    return render_svg(draw, figsize=FIGSIZE, title=title)


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
    check_title(title)
    check_title(method, "method")
    if not method.strip():
        raise ValueError("method must name the projection, e.g. 'PCA' or 'UMAP'")
    array = check_matrix(points, "points")
    if array.shape[1] != 2:
        raise ValueError(f"points must be (n, 2) coordinates, got shape {array.shape}")
    names = check_labels(groups, array.shape[0], "groups", "points")
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
            style = series_style(index)
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
            add_legend(axes, len(order), title="group")
        note = f"projection: {method}"
        if len(order) > 20:
            note += f" ({len(order)} groups)"
        if not keep.any():
            note += "; no finite points"
        add_note(axes, note)
        axes.set_xlabel(f"{method} 1")
        axes.set_ylabel(f"{method} 2")
        axes.set_title(title)

    return render_svg(draw, figsize=FIGSIZE, title=title)
