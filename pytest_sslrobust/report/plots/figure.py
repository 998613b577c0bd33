"""What every chart shares: the palette, rcParams, deterministic SVG output, argument checks."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
BASE_COLOUR = "#0072B2"  # blue: the default bar / point colour
ACCENT_COLOUR = "#D55E00"  # vermillion: highlights and gaps, the strongest contrast to blue
MISSING_COLOUR = "#d9d9d9"  # light grey for NaN heatmap cells, outside viridis' range
# Series take the palette in this order: yellow is nearly invisible as a thin line on white,
# so it comes last, and the two most contrasting colours come first.
SERIES_COLOURS = tuple(PALETTE[i] for i in (4, 0, 2, 5, 1, 6, 7, 3))
# Markers and dashes vary alongside colour so that series stay apart in greyscale prints
# and once the eight palette colours run out.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_LINESTYLES = ("-", "--", ":", "-.")
FIGSIZE = (6.0, 3.5)
SEVERITY_LABEL = "severity"

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


def matplotlib_module() -> Any:
    """Import matplotlib on first use: importing this module must stay cheap for pytest."""
    import matplotlib

    return matplotlib


def render_svg(draw: Callable[[Figure], None], *, figsize: tuple[float, float], title: str) -> str:
    """Draw on a fresh pyplot-free Figure and return the SVG text without prolog/DOCTYPE."""
    mpl = matplotlib_module()
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


def check_title(title: object, name: str = "title") -> str:
    if not isinstance(title, str):
        raise TypeError(f"{name} must be a str, got {type(title).__name__}")
    return title


def check_vector(values: Sequence[float], name: str, *, allow_nan: bool = True) -> np.ndarray:
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


def check_matrix(values: Sequence[Sequence[float]], name: str) -> np.ndarray:
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


def check_labels(labels: Sequence[object], count: int, name: str, what: str) -> list[str]:
    if isinstance(labels, str):
        raise TypeError(f"{name} must be a sequence of labels, not a single str")
    result = [str(label) for label in labels]
    if len(result) != count:
        raise ValueError(f"{name} has {len(result)} labels but there are {count} {what}")
    return result


def check_mapping(values: Mapping[str, float], name: str) -> tuple[list[str], np.ndarray]:
    if not isinstance(values, Mapping):
        raise TypeError(f"{name} must be a mapping of label -> value")
    if not values:
        raise ValueError(f"{name} is empty; there is nothing to plot")
    return [str(key) for key in values], check_vector(list(values.values()), name)


def severity_matrix(
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
    return list(lengths), check_matrix([list(row) for row in values.values()], name)


def fractions_as_percent(
    errors: Mapping[str, Sequence[float]], name: str
) -> tuple[list[str], np.ndarray]:
    """Rows of error fractions in [0, 1] (NaN allowed) as one percent matrix."""
    names, array = severity_matrix(errors, name)
    finite = array[np.isfinite(array)]
    if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
        raise ValueError(
            f"{name} must be fractions in [0, 1] (they are shown as percent), "
            f"got values in [{finite.min():g}, {finite.max():g}]"
        )
    return names, array * 100.0


def series_style(index: int) -> dict[str, Any]:
    """Colour, marker and dash for the index-th series; distinct for 8 x 4 series."""
    return {
        "color": SERIES_COLOURS[index % len(SERIES_COLOURS)],
        "marker": _MARKERS[index % len(_MARKERS)],
        "linestyle": _LINESTYLES[(index // len(PALETTE)) % len(_LINESTYLES)],
    }


def text_colour(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on the given background (relative luminance)."""

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(float(c)) for c in rgba[:3])
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    # Equal contrast ratio against black and white lies at luminance ~0.179.
    return "black" if luminance > 0.179 else "white"


def set_tick_labels(axes: Axes, labels: Sequence[str], *, axis: str = "x") -> None:
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


def add_legend(axes: Axes, count: int, *, title: str | None = None) -> None:
    """Legend inside for a few entries, outside on the right when it would cover data."""
    if count <= 4:
        axes.legend(loc="best", title=title)
    else:
        columns = 1 if count <= 16 else 2
        axes.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=columns, title=title, fontsize=6.5
        )


def add_note(axes: Axes, text: str, *, corner: str = "lower right") -> None:
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


# ---------------------------------------------------------------------------- shared scales

CHANCE_COLOUR = "#666666"


def check_ylim(ylim: Any, name: str = "ylim") -> tuple[float, float] | None:
    """A value-axis range ``(bottom, top)``, both finite with bottom < top, or None (the
    data's own range). Side-by-side charts of one quantity pass the same range, so that
    their bars and lines compare by height."""
    if ylim is None:
        return None
    try:
        bottom, top = (float(end) for end in ylim)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (bottom, top) pair of numbers, got {ylim!r}") from None
    if not (np.isfinite(bottom) and np.isfinite(top)) or bottom >= top:
        raise ValueError(f"{name} must be finite with bottom < top, got {ylim!r}")
    return bottom, top


def check_chance(chance: Any, name: str = "chance") -> float | None:
    if chance is None:
        return None
    if isinstance(chance, bool) or not isinstance(chance, int | float) or not np.isfinite(chance):
        raise ValueError(f"{name} must be a finite number or None, got {chance!r}")
    return float(chance)


def add_chance_line(
    axes: Axes, chance: float, *, label: str | None = None, horizontal: bool = False
) -> Any:
    """A dotted line at ``chance`` across the value axis (what a guess scores), returned as
    a legend handle."""
    text = label or f"chance ({chance:.3g})"
    line = axes.axvline if horizontal else axes.axhline
    return line(chance, color=CHANCE_COLOUR, linestyle=":", linewidth=1.3, label=text)
