"""Deterministic inline SVG charts and image thumbnails for the HTML report, by figure kind."""

from __future__ import annotations

from pytest_sslrobust.report.plots.bars import bar_chart, grouped_bars
from pytest_sslrobust.report.plots.curves import line_plot, reliability_diagram, severity_curves
from pytest_sslrobust.report.plots.figure import PALETTE
from pytest_sslrobust.report.plots.grids import error_heatmap, heatmap
from pytest_sslrobust.report.plots.images import thumbnail_png
from pytest_sslrobust.report.plots.points import embedding_scatter, scatter

# Importing this package stays cheap: matplotlib and PIL load on the first drawing.

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
