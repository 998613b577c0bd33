"""Report charts: inline-able, deterministic, escaped SVG; thumbnails; input validation."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pytest_sslrobust.report import plots

SVG_TEXT = "{http://www.w3.org/2000/svg}text"
HOSTILE = "<script>alert(1)</script>"
NAN = float("nan")
FAMILIES = {
    "noise": ["gaussian_noise", "shot_noise"],
    "blur": ["defocus_blur", "glass_blur"],
}
ERRORS = {
    "gaussian_noise": [0.30, 0.42, 0.55, 0.71, 0.83],
    "shot_noise": [0.31, 0.44, 0.58, 0.73, 0.86],
    "defocus_blur": [0.25, 0.31, NAN, 0.52, 0.64],
    "glass_blur": [0.28, 0.37, 0.49, 0.61, 0.70],
}


def texts(svg: str) -> list[str]:
    """Every drawn text (not the <title>), as the browser would show it (unescaped)."""
    return [element.text or "" for element in ET.fromstring(svg).iter(SVG_TEXT)]


def _heatmap(label: str = "row") -> str:
    return plots.heatmap(
        [[0.1, 0.5, NAN], [0.9, 0.3, 0.7]],
        [label, "second"],
        ["a", "b", "c"],
        title=f"Heat {label}",
        colorbar_label="score (a.u.)",
        xlabel="column (unit)",
        ylabel="row (unit)",
    )


def _error_heatmap(label: str = "gaussian_noise") -> str:
    return plots.error_heatmap(
        {label: [0.1, 0.2, 0.3, 0.4, 0.5], "fog": [0.2] * 5}, title=f"E {label}"
    )


def _bar(label: str = "snow") -> str:
    return plots.bar_chart(
        {label: 0.9, "fog": 1.1, "frost": NAN},
        title=f"CE {label}",
        ylabel="CE (AlexNet = 1)",
        reference=1.0,
        reference_label="mCE",
        highlight=[label],
        errors={"fog": 0.05},
    )


def _grouped(label: str = "resnet50") -> str:
    return plots.grouped_bars(
        {label: {"clean": 76.0, "masked": 60.0}, "vit": {"clean": 80.0, "cropped": 71.0}},
        title=f"Accuracy {label}",
        ylabel="top-1 accuracy (%)",
    )


def _curves(label: str = "fog") -> str:
    return plots.severity_curves({**ERRORS, label: [0.2, 0.3, 0.4, 0.5, 0.6]}, title=f"S {label}")


def _curves_families(label: str = "fog") -> str:
    return plots.severity_curves(
        {**ERRORS, label: [0.2, 0.3, 0.4, 0.5, 0.6]},
        title=f"S {label}",
        families={**FAMILIES, label: [label]},
    )


def _scatter(label: str = "gn3") -> str:
    return plots.scatter(
        [0.9, 0.5, NAN],
        [10.0, 40.0, 5.0],
        [label, "db2", "x"],
        title=f"SSIM {label}",
        xlabel="SSIM",
        ylabel="error (%)",
    )


def _embedding(label: str = "clean") -> str:
    points = np.random.default_rng(0).normal(size=(30, 2))
    return plots.embedding_scatter(
        points, [label, "blur", "noise"] * 10, title=f"Emb {label}", method="UMAP"
    )


def _reliability(label: str = "probe") -> str:
    return plots.reliability_diagram(
        [0.1, 0.5, NAN, 0.9],
        [0.05, 0.45, NAN, 0.8],
        [3, 10, 0, 20],
        ece=0.042,
        title=f"Rel {label}",
    )


def _line(label: str = "resnet50") -> str:
    return plots.line_plot(
        [0.0, 1 / 255, 4 / 255],
        {label: [76.0, 40.0, 5.0], "vit": [80.0, NAN, 10.0]},
        title=f"Robust {label}",
        xlabel="eps (L-inf, [0, 1] pixels)",
        ylabel="accuracy (%)",
    )


# builder, the texts every chart of that kind must show (besides its title)
CHARTS: dict[str, tuple[Callable[..., str], tuple[str, ...]]] = {
    "heatmap": (_heatmap, ("score (a.u.)", "column (unit)", "row (unit)")),
    "error_heatmap": (_error_heatmap, ("error (%)", "severity", "corruption", "10.0")),
    "bar_chart": (_bar, ("CE (AlexNet = 1)", "mCE", "highlighted", "n/a")),
    "grouped_bars": (_grouped, ("top-1 accuracy (%)", "clean", "masked", "cropped", "vit")),
    "severity_curves": (_curves, ("error (%)", "severity", "gaussian_noise")),
    "severity_families": (_curves_families, ("error (%)", "severity", "noise", "blur")),
    "scatter": (_scatter, ("SSIM", "error (%)", "db2")),
    "embedding_scatter": (_embedding, ("UMAP 1", "UMAP 2", "projection: UMAP", "blur")),
    "reliability_diagram": (_reliability, ("confidence (mean per bin)", "perfect calibration")),
    "line_plot": (_line, ("eps (L-inf, [0, 1] pixels)", "accuracy (%)", "vit")),
}


@pytest.mark.parametrize("kind", CHARTS)
def test_chart_is_inlineable_deterministic_svg(kind: str) -> None:
    build, expected = CHARTS[kind]
    svg = build()
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    drawn = texts(svg)
    title = root.find("{http://www.w3.org/2000/svg}title")
    assert title is not None and any(title.text in text for text in drawn)
    for text in expected:
        assert text in drawn, f"{text!r} not drawn in {kind}"
    assert build() == svg  # same data, same bytes
    assert len(svg.encode()) < 100_000


@pytest.mark.parametrize("kind", CHARTS)
def test_hostile_labels_are_escaped(kind: str) -> None:
    svg = CHARTS[kind][0](HOSTILE)
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg
    # It is text the reader sees, not markup.
    assert any(HOSTILE in text for text in texts(svg))


def test_dollar_signs_in_labels_stay_literal() -> None:
    svg = plots.bar_chart({"a$b$c": 1.0}, title="cost $5 to $6", ylabel="$ (USD)")
    drawn = texts(svg)
    assert "a$b$c" in drawn and "cost $5 to $6" in drawn and "$ (USD)" in drawn


def test_heatmap_colour_bar_nan_cells_and_contrast() -> None:
    svg = _heatmap()
    drawn = texts(svg)
    assert "score (a.u.)" in drawn  # the colour bar's label
    assert "nan" not in " ".join(drawn).lower()  # NaN cells stay blank
    assert drawn.count("0.10") == 1 and "0.90" in drawn
    # Dark viridis (low values) gets white numbers, bright (high values) black ones.
    styles = {
        element.text: element.get("style", "") for element in ET.fromstring(svg).iter(SVG_TEXT)
    }
    assert "fill: #ffffff" in styles["0.10"] and "fill:" not in styles["0.90"]  # black default


def test_heatmap_all_nan_and_constant_do_not_crash() -> None:
    assert plots.heatmap([[NAN, NAN]], ["r"], ["a", "b"], title="t", colorbar_label="c").startswith(
        "<svg"
    )
    assert plots.heatmap([[2.0, 2.0]], ["r"], ["a", "b"], title="t", colorbar_label="c").startswith(
        "<svg"
    )


def test_heatmap_annotation_can_be_switched_off() -> None:
    on = texts(plots.heatmap([[0.123]], ["r"], ["c"], title="t", colorbar_label="c"))
    off = texts(
        plots.heatmap([[0.123]], ["r"], ["c"], title="t", colorbar_label="c", annotate=False)
    )
    assert "0.12" in on and "0.12" not in off


def test_error_heatmap_19_by_5_is_small_and_in_percent() -> None:
    errors = {f"corruption_{i:02d}": [0.01 * i + 0.1 * s for s in range(1, 6)] for i in range(19)}
    errors["corruption_03"][1] = NAN
    svg = plots.error_heatmap(errors)
    drawn = texts(svg)
    assert "Top-1 error by corruption and severity" in drawn
    assert "corruption_18" in drawn and {"1", "2", "3", "4", "5"} <= set(drawn)
    assert "50.0" in drawn and "68.0" in drawn  # fractions shown as percent
    size = len(svg.encode())
    print(f"19x5 error heatmap: {size / 1024:.1f} KiB")
    assert size < 60_000


def test_svg_sizes_stay_small() -> None:
    sizes = {kind: len(build().encode()) for kind, (build, _) in CHARTS.items()}
    print("SVG sizes (KiB):", {kind: round(size / 1024, 1) for kind, size in sizes.items()})
    assert max(sizes.values()) < 60_000


def test_dense_embedding_is_rasterised_and_stays_small() -> None:
    points = np.random.default_rng(1).normal(size=(5000, 2))
    svg = plots.embedding_scatter(points, ["a", "b"] * 2500, title="Many", method="PCA")
    assert "<image" in svg and "projection: PCA" in texts(svg)
    assert len(svg.encode()) < 150_000


def test_many_embedding_groups_replace_the_legend_with_a_count() -> None:
    points = np.arange(60.0).reshape(30, 2)
    svg = plots.embedding_scatter(
        points, [f"class {i}" for i in range(30)], title="t", method="PCA"
    )
    assert "projection: PCA (30 groups)" in texts(svg)


def test_severity_families_put_unassigned_corruptions_in_other() -> None:
    svg = plots.severity_curves(ERRORS, title="t", families={"noise": ["gaussian_noise"]})
    drawn = texts(svg)
    assert "noise" in drawn and "other" in drawn and "glass_blur" in drawn


def test_reliability_shows_ece_and_skips_empty_bins() -> None:
    drawn = texts(_reliability())
    assert "Rel probe (ECE = 0.042)" in drawn
    assert "n = 33, 3/4 bins filled" in drawn


def test_scatter_with_no_finite_points_says_so() -> None:
    svg = plots.scatter([NAN], [1.0], ["a"], title="t", xlabel="x", ylabel="y")
    assert "no finite points" in texts(svg)


def test_rendering_is_thread_safe_and_leaves_no_pyplot_figures() -> None:
    builders = [build for build, _ in CHARTS.values()]
    sequential = [build() for build in builders]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda build: build(), builders))
    assert parallel == sequential
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = (
        "import sys, pytest_sslrobust.report.plots; "
        "assert 'matplotlib' not in sys.modules and 'PIL' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- thumbnails


def _decode(uri: str, mime: str) -> tuple[bytes, object]:
    from PIL import Image

    prefix = f"data:image/{mime};base64,"
    assert uri.startswith(prefix)
    raw = base64.b64decode(uri[len(prefix) :], validate=True)
    return raw, Image.open(io.BytesIO(raw))


def test_thumbnail_is_a_small_jpeg_data_uri() -> None:
    # Pure noise is the worst case for JPEG: nothing in it is predictable.
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    uri = plots.thumbnail_png(image, max_side=96, quality=80)
    raw, picture = _decode(uri, "jpeg")
    assert picture.format == "JPEG" and max(picture.size) <= 96
    print(f"96 px JPEG q80 thumbnail of a noisy 224 px image: {len(raw)} B, URI {len(uri)} chars")
    assert len(uri) < 10_000
    assert plots.thumbnail_png(image) == uri  # deterministic


def test_thumbnail_keeps_aspect_never_upscales_and_does_png() -> None:
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    _, picture = _decode(plots.thumbnail_png(wide, max_side=60, format="PNG"), "png")
    assert picture.size == (60, 20)
    small = np.full((10, 12), 128, dtype=np.uint8)
    _, picture = _decode(plots.thumbnail_png(small, max_side=96), "jpeg")
    assert picture.size == (12, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": np.zeros((8, 8, 3), dtype=np.float32)}, "uint8"),
        ({"image": np.zeros((8, 8, 4), dtype=np.uint8)}, "H x W x 3"),
        ({"image": np.zeros((0, 8, 3), dtype=np.uint8)}, "empty"),
        ({"image": np.zeros((8, 8, 3), dtype=np.uint8), "max_side": 0}, "max_side"),
        ({"image": np.zeros((8, 8, 3), dtype=np.uint8), "format": "GIF"}, "format"),
        ({"image": np.zeros((8, 8, 3), dtype=np.uint8), "quality": 0}, "quality"),
    ],
)
def test_thumbnail_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plots.thumbnail_png(**kwargs)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: plots.heatmap([], [], [], title="t", colorbar_label="c"), "empty"),
        (
            lambda: plots.heatmap(
                [[1.0], [1.0, 2.0]], ["a", "b"], ["x"], title="t", colorbar_label="c"
            ),
            "different lengths",
        ),
        (
            lambda: plots.heatmap(
                [[1.0, 2.0]], ["a", "b"], ["x", "y"], title="t", colorbar_label="c"
            ),
            "2 labels but there are 1 rows",
        ),
        (
            lambda: plots.heatmap([[1.0]], ["a"], ["x", "y"], title="t", colorbar_label="c"),
            "column_labels",
        ),
        (
            lambda: plots.heatmap([[float("inf")]], ["a"], ["x"], title="t", colorbar_label="c"),
            "infinite",
        ),
        (
            lambda: plots.heatmap(
                [[1.0]], ["a"], ["x"], title="t", colorbar_label="c", vmin=2, vmax=1
            ),
            "vmin <= vmax",
        ),
        (
            lambda: plots.heatmap(
                [[1.0]], ["a"], ["x"], title="t", colorbar_label="c", value_format="{:q}"
            ),
            "value_format",
        ),
        (
            lambda: plots.heatmap([[1.0]], ["a"], ["x"], title="t", colorbar_label="c", cmap="jet"),
            "colour-blind",
        ),
        (lambda: plots.error_heatmap({}), "empty"),
        (
            lambda: plots.error_heatmap({"a": [0.1] * 5, "b": [0.1] * 4}),
            "same number of severities",
        ),
        (lambda: plots.error_heatmap({"a": [45.0] * 5}), r"fractions in \[0, 1\]"),
        (lambda: plots.bar_chart({}, title="t", ylabel="y"), "empty"),
        (lambda: plots.bar_chart({"a": 1.0}, title="t", ylabel="y", highlight=["b"]), "highlight"),
        (
            lambda: plots.bar_chart({"a": 1.0}, title="t", ylabel="y", errors={"b": 0.1}),
            "errors names",
        ),
        (
            lambda: plots.bar_chart({"a": 1.0}, title="t", ylabel="y", errors={"a": -0.1}),
            "non-negative",
        ),
        (lambda: plots.bar_chart({"a": 1.0}, title="t", ylabel="y", reference=NAN), "reference"),
        (lambda: plots.grouped_bars({}, title="t", ylabel="y"), "empty"),
        (
            lambda: plots.grouped_bars({"m": {}}, title="t", ylabel="y"),
            "every series needs a value",
        ),
        (lambda: plots.severity_curves({}, title="t"), "empty"),
        (
            lambda: plots.severity_curves(ERRORS, title="t", families={"noise": ["nope"]}),
            "without errors",
        ),
        (
            lambda: plots.severity_curves(ERRORS, title="t", families={"noise": []}),
            "no corruptions",
        ),
        (
            lambda: plots.scatter([1.0, 2.0], [1.0], ["a", "b"], title="t", xlabel="x", ylabel="y"),
            "x has 2 values but y has 1",
        ),
        (
            lambda: plots.scatter([1.0], [1.0], ["a", "b"], title="t", xlabel="x", ylabel="y"),
            "labels",
        ),
        (lambda: plots.scatter([], [], [], title="t", xlabel="x", ylabel="y"), "empty"),
        (
            lambda: plots.embedding_scatter([[1.0, 2.0, 3.0]], ["a"], title="t", method="PCA"),
            r"\(n, 2\)",
        ),
        (
            lambda: plots.embedding_scatter([[1.0, 2.0]], ["a", "b"], title="t", method="PCA"),
            "groups",
        ),
        (lambda: plots.embedding_scatter([[1.0, 2.0]], ["a"], title="t", method=" "), "method"),
        (lambda: plots.reliability_diagram([0.5], [0.5, 0.6], [1], ece=0.1), "one value per bin"),
        (
            lambda: plots.reliability_diagram([0.5], [1.5], [1], ece=0.1),
            r"accuracy must lie in \[0, 1\]",
        ),
        (lambda: plots.reliability_diagram([0.5], [0.5], [-1], ece=0.1), "counts"),
        (lambda: plots.reliability_diagram([0.5], [0.5], [1], ece=NAN), "ece"),
        (
            lambda: plots.line_plot([0.0, 1.0], {"m": [1.0]}, title="t", xlabel="x", ylabel="y"),
            "has 1 values but x has 2",
        ),
        (lambda: plots.line_plot([0.0], {}, title="t", xlabel="x", ylabel="y"), "empty"),
        (lambda: plots.line_plot([NAN], {"m": [1.0]}, title="t", xlabel="x", ylabel="y"), "NaN"),
    ],
)
def test_bad_input_raises_clear_value_error(call: Callable[[], str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_non_string_title_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="title must be a str"):
        plots.line_plot([0.0], {"m": [1.0]}, title=None, xlabel="x", ylabel="y")  # type: ignore[arg-type]
