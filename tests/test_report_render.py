"""Structure of the HTML report: sections, numbers, escaping, self-containment, size."""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
import time
from collections import Counter
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from pytest_sslrobust.report.render import (
    SECTIONS,
    format_bounds,
    format_interval,
    format_number,
    render_report,
)
from pytest_sslrobust.variants import ALL, SWAPS

XSS = "<script>alert(1)</script>"
MODELS = ("dinov2-vits14", "mae-vitb16", "resnet50-sup")
MASKS = ("center-r0.50", "border-r0.50", "foreground", "background")
GENERATED = "2025-01-02T03:04:05+00:00"
MAX_BYTES = 5 * 1024 * 1024


# --------------------------------------------------------------------------- document


def _image(rng: np.random.Generator, noise: float) -> np.ndarray:
    """A 224 px picture-like image: smooth random colour blocks plus pixel noise."""
    blocks = rng.random((7, 7, 3)) * 200 + 20
    smooth = np.kron(blocks, np.ones((32, 32, 1)))
    return np.clip(smooth + rng.normal(0, noise, smooth.shape), 0, 255).astype(np.uint8)


def _interval(value: float, width: float, seed: int) -> dict[str, Any]:
    return {
        "estimate": value,
        "low": value - width,
        "high": value + width,
        "confidence": 0.95,
        "resamples": 1000,
        "seed": seed,
    }


def _protocol(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "data": "bundled:imagenette-mini",
        "split": "test",
        "image_size": 224,
        "seed": 0,
        "backbone": model,
        "backbone_fingerprint": hashlib.sha256(model.encode()).hexdigest(),
        **extra,
    }


def _results() -> list[dict[str, Any]]:
    """30 results, 10 per model; one fails; one carries a script tag in test and model."""
    rng = np.random.default_rng(1)
    results = []
    for model in MODELS:
        test = f"tests/test_robust.py::test_{{}}[{model}]"
        mce = float(rng.uniform(50, 90))
        specs = [
            ("mce", "mce_below", "mce", mce, None, 95.0, "lower", ""),
            (
                "relative_mce",
                "relative_mce_below",
                "relative_mce",
                mce * 1.1,
                None,
                110.0,
                "lower",
                "",
            ),
            (
                "cka",
                "cka_between",
                "cka_center",
                float(rng.uniform(0.6, 0.9)),
                0.5,
                1.0,
                "higher",
                "",
            ),
            (
                "cka",
                "cka_between",
                "cka_border",
                float(rng.uniform(0.4, 0.7)),
                0.3,
                1.0,
                "higher",
                "",
            ),
            (
                "probe",
                "balanced_accuracy_above",
                "balanced_accuracy",
                float(rng.uniform(0.7, 0.9)),
                0.6,
                None,
                "higher",
                "",
            ),
            (
                "probe",
                "balanced_accuracy_above",
                "balanced_accuracy_fg",
                float(rng.uniform(0.6, 0.8)),
                0.5,
                None,
                "higher",
                "",
            ),
            (
                "neighbours",
                "neighbour_consistency_above",
                "neighbour_consistency",
                float(rng.uniform(0.3, 0.6)),
                0.2,
                None,
                "higher",
                "",
            ),
            (
                "attack",
                "robust_accuracy_above",
                "robust_accuracy",
                float(rng.uniform(0.1, 0.4)),
                0.05,
                None,
                "higher",
                "",
            ),
            (
                "background",
                "bg_gap_below",
                "bg_gap",
                float(rng.uniform(3, 12)),
                None,
                15.0,
                "lower",
                "points",
            ),
            (
                "drop",
                "accuracy_drop_below",
                "accuracy_drop",
                float(rng.uniform(1, 8)),
                None,
                10.0,
                "lower",
                "%",
            ),
        ]
        for index, (kind, name, label, value, low, high, better, unit) in enumerate(specs):
            metric = label.split("_center")[0].split("_border")[0].removesuffix("_fg")
            interval = _interval(value, abs(value) * 0.03, index) if index % 3 == 0 else None
            results.append(
                {
                    "test": test.format(kind),
                    "name": name,
                    "metric": metric,
                    "label": label,
                    "value": value,
                    "passed": True,
                    "low": low,
                    "high": high,
                    "better": better,
                    "unit": unit,
                    "interval": interval,
                    "decided_on": "interval" if interval and index == 0 else "value",
                    "model": model,
                    "protocol": _protocol(model, readout="knn", variant=label),
                    "details": [
                        {"corruption": c, "ce": float(rng.uniform(40, 110)), "error_s3": 0.5}
                        for c in ALL
                    ]
                    if kind == "mce"
                    else [],
                }
            )
    failing = results[17]
    failing["value"], failing["passed"] = failing["low"] - 0.1, False
    results[25]["test"] = f"tests/test_robust.py::test_odd[{XSS}]"
    results[25]["model"] = XSS
    return results


def realistic_document() -> dict[str, Any]:
    """A 3-model run with every artifact kind, as large as a full 19 x 5 corruption study."""
    from pytest_sslrobust.report.plots import thumbnail_png

    rng = np.random.default_rng(0)
    artifacts: list[dict[str, Any]] = []

    def add(kind: str, model: str, payload: dict[str, Any], label: str = "") -> None:
        test = f"tests/test_robust.py::test_{kind}[{model}]"
        artifacts.append(
            {"kind": kind, "test": test, "model": model, "label": label, "payload": payload}
        )

    for number, model in enumerate(MODELS):
        base = rng.uniform(0.1, 0.3)
        errors = {
            c: [float(min(1.0, base + s * rng.uniform(0.03, 0.12))) for s in range(1, 6)]
            for c in ALL
        }
        ssim = {c: [float(1 - s * rng.uniform(0.05, 0.15)) for s in range(1, 6)] for c in ALL}
        ce = {c: float(rng.uniform(40, 110)) for c in ALL[:15]}
        add(
            "corruption_errors",
            model,
            {
                "errors": errors,
                "clean_error": float(base),
                "n": 500,
                "readout": "knn",
                "protocol": {"source": "on-the-fly", "generator": "imagecorruptions-imaug 1.1.5"},
                "ssim": ssim,
                "mce": float(np.mean(list(ce.values()))),
                "relative_mce": float(rng.uniform(80, 120)),
                "ce": ce,
                "reference": "alexnet",
            },
        )
        variants = ["original", *MASKS]
        for metric in ("linear_cka", "cca_r2"):
            values = rng.uniform(0.3, 1.0, (5, 5))
            values = (values + values.T) / 2
            np.fill_diagonal(values, 1.0)
            add(
                "similarity_matrix",
                model,
                {"metric": metric, "names": variants, "values": values.tolist()},
                label=metric,
            )
        add(
            "probe_table",
            model,
            {
                "metric": "balanced_accuracy",
                "variants": variants,
                "mean": rng.uniform(0.5, 0.95, 5).tolist(),
                "std": rng.uniform(0.0, 0.03, 5).tolist(),
            },
        )
        add(
            "neighbours",
            model,
            {
                "scores": {v: float(rng.uniform(0.2, 0.8)) for v in MASKS},
                "chance": {v: 0.02 for v in MASKS},
            },
        )
        groups = [variants[i % 5] for i in range(300)]
        points = (rng.normal(size=(300, 2)) + np.array([[i % 5, 0] for i in range(300)])).tolist()
        add("embedding", model, {"points": points, "groups": groups, "method": "PCA"})
        accuracy = {s: float(rng.uniform(0.5, 0.95)) for s in SWAPS}
        add(
            "background",
            model,
            {"accuracy": accuracy, "bg_gap": accuracy["mixed_same"] - accuracy["mixed_rand"]},
        )
        confidence = (np.arange(15) + 0.5) / 15
        add(
            "reliability",
            model,
            {
                "confidence": confidence.tolist(),
                "accuracy": np.clip(confidence - rng.uniform(0, 0.15, 15), 0, 1).tolist(),
                "counts": rng.integers(0, 80, 15).tolist(),
                "ece": float(rng.uniform(0.02, 0.12)),
                "confidence_by_variant": {v: float(rng.uniform(0.4, 0.9)) for v in variants},
            },
        )
        eps = [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255]
        for metric in ("robust_accuracy", "feature_drift"):
            values = np.sort(rng.uniform(0, 0.9, 5))
            values = values[::-1] if metric == "robust_accuracy" else values
            add(
                "attack",
                model,
                {
                    "eps": eps,
                    "values": values.tolist(),
                    "metric": metric,
                    "attack": "pgd",
                    "norm": "linf",
                    "steps": 10,
                    "clean": float(values[0]),
                    "n": 256,
                },
                label=f"{metric}-pgd-linf",
            )
        shifted = ["gaussian_noise-s3", "fog-s3", "center-r0.50"]
        add(
            "attribution",
            model,
            {
                "method": "gradcam",
                "target": "linear-probe",
                "images": 64,
                "split": "test",
                "top_k": 0.1,
                "measures": [
                    {"variant": "original", "entropy": 0.9, "degenerate": 0},
                    *(
                        {
                            "variant": v,
                            "entropy": float(rng.uniform(0.8, 1)),
                            "degenerate": 1,
                            "rank_shift": float(rng.uniform(0, 1)),
                            "topk_overlap": float(rng.uniform(0, 1)),
                        }
                        for v in shifted
                    ),
                ],
                "severity": {"gaussian_noise": np.sort(rng.uniform(0, 1, 5)).tolist()},
                "overlays": [
                    {
                        "item": "item-1",
                        "tiles": [
                            {"id": v, "uri": thumbnail_png(_image(rng, 5))}
                            for v in ["original", *shifted]
                        ],
                    }
                ],
                "protocol": {"data": "bundled:textured-digits", "method": "gradcam"},
            },
            label="gradcam-linear-probe",
        )
        ids = ["original", *(f"{c}-s{s}" for c in ALL for s in range(1, 6)), *MASKS]
        images = [
            {"id": image_id, "uri": thumbnail_png(_image(rng, 5 + 10 * (i % 6)))}
            for i, image_id in enumerate(ids)
        ]
        add("preview", model, {"images": images, "source": f"test item {number}"})

    results = _results()
    statuses = ["unchanged"] * len(results)
    statuses[3], statuses[8], statuses[12] = "regression", "refused", "improved"
    rows = []
    for result, status in zip(results, statuses, strict=True):
        baseline = result["value"] * (0.9 if status == "regression" else 1.0)
        rows.append(
            {
                "key": f"{result['test']}::{result['label']}",
                "metric": result["metric"],
                "baseline_value": None if status == "refused" else baseline,
                "value": result["value"],
                "delta": None if status == "refused" else result["value"] - baseline,
                "allowed": 0.01 if status != "refused" else None,
                "status": status,
                "note": "protocol differs: readout knn != linear" if status == "refused" else "",
            }
        )

    return {
        "title": "Robustness of three backbones",
        "generated": GENERATED,
        "run": {
            "models": [
                {
                    "name": model,
                    "spec": f"timm:{model}",
                    "architecture": "vit_small_patch14" if "vit" in model else "resnet50",
                    "fingerprint": hashlib.sha256(model.encode()).hexdigest(),
                    "weights": f"hf-hub:{model}",
                    "paradigm": "supervised" if "sup" in model else "self-supervised",
                }
                for model in MODELS
            ],
            "data": "bundled:imagenette-mini (500 test images)",
            "device": "cuda:0 (NVIDIA H100)",
            "seed": 0,
            "max_images": 500,
            "versions": {"torch": "2.4.1", "timm": "1.0.9", "pytest-sslrobust": "0.1.0"},
            "wall_time_s": 754.2,
            "cache": {"computed": 48, "memory_hits": 310, "disk_hits": 95, "forward_images": 24000},
            "outcomes": {"passed": 28, "failed": 1, "skipped": 2, "error": 0},
        },
        "results": results,
        "artifacts": artifacts,
        "comparison": {"baseline": "baselines/main.json", "rows": rows},
    }


# --------------------------------------------------------------------------- parsing


class Page(HTMLParser):
    """What the tests look at: ids, headings, tables' cells, tags, attributes, texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.headings: dict[str, list[str]] = {"h1": [], "h2": [], "h3": []}
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str, str]] = []
        self.tables: list[dict[str, Any]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._open_tables: list[dict[str, Any]] = []
        self._capture: list[str] | None = None
        self._capture_tag = ""
        self._cell: list[str] | None = None
        self._raw: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        attributes = {name: value or "" for name, value in attrs}
        for name, value in attributes.items():
            self.attributes.append((tag, name, value))
        if "id" in attributes:
            self.ids.append(attributes["id"])
        if tag in self.headings:
            self._capture, self._capture_tag = [], tag
        elif tag == "table":
            table = {"id": attributes.get("id"), "rows": [], "row_attrs": []}
            self.tables.append(table)
            self._open_tables.append(table)
        elif tag == "tr" and self._open_tables:
            self._open_tables[-1]["rows"].append([])
            self._open_tables[-1]["row_attrs"].append(attributes)
        elif tag in ("td", "th") and self._open_tables:
            self._cell = []
        elif tag in ("script", "style"):
            self._raw = []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._capture_tag and self._capture is not None:
            self.headings[tag].append(" ".join("".join(self._capture).split()))
            self._capture = None
        elif tag == "table" and self._open_tables:
            self._open_tables.pop()
        elif tag in ("td", "th") and self._cell is not None and self._open_tables:
            self._open_tables[-1]["rows"][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag in ("script", "style") and self._raw is not None:
            (self.scripts if tag == "script" else self.styles).append("".join(self._raw))
            self._raw = None

    def handle_data(self, data: str) -> None:
        for sink in (self._capture, self._cell, self._raw):
            if sink is not None:
                sink.append(data)

    def table(self, table_id: str) -> dict[str, Any]:
        return next(t for t in self.tables if t["id"] == table_id)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return realistic_document()


@pytest.fixture(scope="module")
def rendered(document: dict[str, Any]) -> str:
    start = time.perf_counter()
    text = render_report(document)
    print(
        f"\nreport for {len(MODELS)} models x {len(ALL)} corruptions x 5 severities: "
        f"{len(text.encode()) / 1e6:.2f} MB, rendered in {time.perf_counter() - start:.1f} s"
    )
    return text


@pytest.fixture(scope="module")
def page(rendered: str) -> Page:
    return Page(rendered)


# --------------------------------------------------------------------------- tests


def test_every_section_is_present_in_order(page: Page) -> None:
    assert page.headings["h2"] == [title for _, title in SECTIONS]
    assert page.headings["h1"] == ["Robustness of three backbones"]
    for section_id, _ in SECTIONS:
        assert section_id in page.ids


def test_no_figure_failed(rendered: str, page: Page) -> None:
    assert 'class="figure-error"' not in rendered
    # Heatmaps, CE bars, severity curves, SSIM scatters (3 each), 6 similarity heatmaps,
    # neighbours, embeddings, background bars (3 each) + BG-Gap, reliability and confidence
    # (3 each), 2 attack plots.
    assert page.tags["svg"] >= 12 + 6 + 3 + 3 + 3 + 1 + 6 + 2


def test_ids_are_unique_and_every_anchor_resolves(page: Page) -> None:
    own = [i for i in page.ids if re.fullmatch(r"result-\d+|contracts-\w+", i)]
    own += [i for i in page.ids if i in dict(SECTIONS)]
    assert len(own) == len(set(own))
    ids = set(page.ids)
    anchors = [v for tag, name, v in page.attributes if name == "href" and v.startswith("#")]
    assert anchors
    assert [a for a in anchors if a[1:] not in ids] == []
    for number in range(1, 31):
        assert f"result-{number}" in ids
        assert ("a", "href", f"#result-{number}") in page.attributes


def test_contracts_table_shows_the_document_values(document: dict[str, Any], page: Page) -> None:
    table = page.table("contracts-table")
    header, *rows = table["rows"]
    assert header == [
        "#",
        "outcome",
        "test",
        "label",
        "metric",
        "model",
        "value",
        "required",
        "interval",
    ]
    assert len(rows) == len(document["results"]) == 30
    for number, (row, result) in enumerate(zip(rows, document["results"], strict=True), 1):
        unit = f" {result['unit']}" if result["unit"] else ""
        assert row[0] == str(number)
        assert row[1] == ("passed" if result["passed"] else "FAILED")
        assert row[2:6] == [result["test"], result["label"], result["metric"], result["model"]]
        assert row[6] == format_number(result["value"]) + unit
        shown = float(row[6].removesuffix(unit))
        assert math.isclose(shown, result["value"], rel_tol=1e-3)
        assert row[7] == format_bounds(result["low"], result["high"], result["better"])
        assert row[8] == format_interval(result["interval"])
        if result["interval"]:
            low = float(row[8].strip("[]").split(",")[0])
            assert math.isclose(low, result["interval"]["low"], rel_tol=1e-3)
    outcomes = [attrs.get("data-outcome") for attrs in table["row_attrs"][1:]]
    assert outcomes.count("failed") == 1 and outcomes.count("passed") == 29


def test_result_details_show_protocol_and_details_table(
    document: dict[str, Any], rendered: str
) -> None:
    detail = rendered.split('id="result-1"', 1)[1].split("</details>", 1)[0]
    assert "Protocol" in detail and "bundled:imagenette-mini" in detail
    assert detail.count("<tr>") == 1 + len(ALL)  # header + one row per corruption
    first = document["results"][0]["details"][0]
    assert f"<td>{format_number(first['ce'])}</td>" in detail


def test_probe_table_has_the_masking_study_layout(document: dict[str, Any], page: Page) -> None:
    probes = [a for a in document["artifacts"] if a["kind"] == "probe_table"]
    table = next(
        t
        for t in page.tables
        if t["rows"] and t["rows"][0] == ["model", *probes[0]["payload"]["variants"]]
    )
    assert [row[0] for row in table["rows"][1:]] == list(MODELS)
    for row, artifact in zip(table["rows"][1:], probes, strict=True):
        payload = artifact["payload"]
        expected = [
            f"{m:.2f} ({s:.2f})" for m, s in zip(payload["mean"], payload["std"], strict=True)
        ]
        assert row[1:] == expected


def test_comparison_highlights_regressions_and_refusals(page: Page) -> None:
    table = next(t for t in page.tables if t["rows"] and t["rows"][0][:2] == ["status", "contract"])
    statuses = [row[0] for row in table["rows"][1:]]
    assert statuses[:2] == ["regression", "refused"]  # worst first
    classes = [attrs.get("class", "") for attrs in table["row_attrs"][1:]]
    assert classes[:2] == ["alarm", "alarm"]
    assert "alarm" not in classes[2:]


def test_example_grid_inlines_every_thumbnail(document: dict[str, Any], page: Page) -> None:
    sources = [v for tag, name, v in page.attributes if tag == "img" and name == "src"]
    expected = sum(
        len(a["payload"]["images"]) for a in document["artifacts"] if a["kind"] == "preview"
    )
    tiles = sum(
        len(overlay["tiles"])
        for a in document["artifacts"]
        if a["kind"] == "attribution"
        for overlay in a["payload"]["overlays"]
    )
    assert expected == 3 * (1 + len(ALL) * 5 + 4) and tiles == 3 * 4
    assert len(sources) == expected + tiles
    assert all(s.startswith("data:image/jpeg;base64,") for s in sources)


def test_escapes_names_and_runs_only_its_own_script(rendered: str, page: Page) -> None:
    assert XSS not in rendered
    assert html.escape(XSS, quote=False) in rendered
    # One <script>: the sorting/filtering code, which the CSP admits by its hash.
    assert page.tags["script"] == 1 and len(page.scripts) == 1
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    csp = next(
        v
        for tag, name, v in page.attributes
        if tag == "meta" and name == "content" and "default-src" in v
    )
    assert f"'sha256-{digest}'" in csp
    assert [(t, n) for t, n, _ in page.attributes if n.startswith("on")] == []


def test_hostile_strings_are_inert() -> None:
    hostile = '"><img src=x onerror=alert(1)>'
    document = {
        "title": XSS,
        "run": {"models": [{"name": XSS, "fingerprint": hostile, "spec": hostile}]},
        "results": [
            {
                "test": XSS,
                "name": XSS,
                "metric": hostile,
                "label": hostile,
                "value": "nan",
                "passed": False,
                "model": XSS,
                "protocol": {XSS: hostile},
                "details": [{XSS: hostile}],
            }
        ],
        "artifacts": [
            {
                "kind": "preview",
                "model": XSS,
                "label": hostile,
                "test": XSS,
                "payload": {
                    "source": XSS,
                    "images": [
                        {"id": XSS, "uri": "javascript:alert(1)"},
                        {"id": hostile, "uri": "https://example.com/x.png"},
                        {"id": "svg", "uri": "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="},
                    ],
                },
            },
            {
                "kind": "neighbours",
                "model": XSS,
                "label": "",
                "test": XSS,
                "payload": {"scores": {XSS: 0.5, hostile: 0.4}, "chance": {}},
            },
        ],
        "comparison": {"baseline": XSS, "rows": [{"key": XSS, "status": XSS, "note": hostile}]},
    }
    text = render_report(document)
    page = Page(text)
    assert XSS not in text and "<img src=x" not in text
    assert page.tags["script"] == 1
    assert page.tags["img"] == 0  # neither javascript:, a remote URL nor SVG may be an image
    assert [(t, n) for t, n, _ in page.attributes if n.startswith("on")] == []
    assert 'class="figure-error"' not in text
    assert text.count(html.escape(XSS, quote=False)) >= 6


def _remote(value: str) -> bool:
    return re.match(r"\s*(https?:)?//", value, re.IGNORECASE) is not None


def test_nothing_is_fetched_from_the_network(rendered: str, page: Page) -> None:
    linking = {
        "src",
        "href",
        "xlink:href",
        "action",
        "formaction",
        "poster",
        "data",
        "srcset",
        "background",
    }
    remote = [(t, n, v[:80]) for t, n, v in page.attributes if n in linking and _remote(v)]
    assert remote == []
    assert (
        page.tags["link"] == page.tags["iframe"] == page.tags["object"] == page.tags["embed"] == 0
    )
    inline_styles = page.styles + [v for _, n, v in page.attributes if n == "style"]
    for css in inline_styles:
        assert "@import" not in css
        assert re.search(r"url\(\s*['\"]?\s*(https?:)?//", css, re.IGNORECASE) is None
    assert re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", rendered, re.IGNORECASE) is None


def test_size_stays_below_five_megabytes(rendered: str) -> None:
    size = len(rendered.encode("utf-8"))
    print(f"\nreport size: {size / 1e6:.2f} MB ({size} bytes)")
    assert size < MAX_BYTES


def test_output_is_deterministic(document: dict[str, Any], rendered: str) -> None:
    assert render_report(document) == rendered
    later = {**document, "generated": "2030-06-07T08:09:10+00:00"}
    assert render_report(later).replace("2030-06-07T08:09:10+00:00", GENERATED) == rendered


@pytest.mark.parametrize(
    ("kinds", "heading"),
    [
        (("corruption_errors",), "Corruption robustness"),
        (("similarity_matrix", "probe_table", "neighbours", "embedding"), "Missing information"),
        (("background",), "Background reliance"),
        (("reliability",), "Confidence and calibration"),
        (("attack",), "Adversarial"),
        (("attribution",), "Attribution"),
        (("preview",), "Example grid"),
    ],
)
def test_a_section_appears_only_with_its_data(
    document: dict[str, Any], kinds: tuple[str, ...], heading: str
) -> None:
    artifacts = [a for a in document["artifacts"] if a["kind"] in kinds and a["model"] == MODELS[0]]
    page = Page(render_report({"artifacts": artifacts}))
    # "Run" comes along when the artifacts carry a protocol to summarise.
    assert [h for h in page.headings["h2"] if h != "Run"] == [heading]


def test_sections_without_data_are_omitted(document: dict[str, Any]) -> None:
    only_results = {"results": document["results"]}
    page = Page(render_report(only_results))
    assert page.headings["h2"] == ["Run", "Contracts"]  # Run: the results' protocol summary
    assert "Corruption robustness" not in render_report(only_results)
    empty = Page(render_report({}))
    assert empty.headings["h2"] == []
    assert empty.headings["h1"] == ["pytest-sslrobust report"]


def test_identical_previews_share_one_grid(document: dict[str, Any]) -> None:
    preview = next(a for a in document["artifacts"] if a["kind"] == "preview")
    twins = [preview, {**preview, "model": "twin"}]
    page = Page(render_report({"artifacts": twins}))
    assert page.tags["img"] == len(preview["payload"]["images"])
    assert page.headings["h3"] == [f"{MODELS[0]}, twin ({preview['payload']['source']})"]


def test_partial_and_odd_payloads_still_render() -> None:
    """Documents come from JSON (NaN as strings) and from tests' own payloads; a bad one
    becomes a note where its figure would be, never a lost report."""
    document = {
        "run": {"models": [{"name": "m"}], "cache": {"memory_hits": "nan"}, "wall_time_s": "nan"},
        "results": [
            {"test": "t", "value": "nan", "passed": True, "interval": {"low": 1}},
            {"value": None},
            "not a result",
        ],
        "artifacts": [
            {
                "kind": "corruption_errors",
                "model": None,
                "payload": {
                    "errors": {
                        "fog": ["nan", 0.2, 0.3, 0.4, 0.5],
                        "snow": [0.1, 0.2, 0.3, 0.4, 0.5],
                    },
                    "ssim": {"fog": [1, 1, 1, 1, 1]},
                    "ce": {"fog": "nan"},
                    "mce": "nan",
                },
            },
            {
                "kind": "probe_table",
                "model": "m",
                "payload": {"variants": ["a", "b"], "mean": [0.5]},
            },
            {"kind": "neighbours", "model": "m", "payload": {"scores": {}, "chance": {}}},
            {"kind": "reliability", "model": "m", "payload": {"confidence": [0.5], "ece": "nan"}},
            {"kind": "attack", "model": "m", "payload": {"eps": [0, 1 / 255], "values": [0.5]}},
            {"kind": "preview", "model": "m", "payload": {"images": [{"id": "no uri"}]}},
            {"kind": "something new", "payload": {}},
            {"kind": "preview"},
        ],
        "comparison": {"rows": [{"status": "regression", "delta": "nan"}]},
    }
    page = Page(render_report(document))
    assert page.headings["h2"] == [
        "Run",
        "Contracts",
        "Corruption robustness",
        "Missing information",  # the probe table; the empty neighbours are left out
        "Confidence and calibration",
        "Adversarial",
        "Baseline comparison",
        "Example grid",
    ]
    table = page.table("contracts-table")
    assert [row[6] for row in table["rows"][1:]] == [
        "nan",
        "–",
    ]
