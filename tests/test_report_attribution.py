"""The report's Attribution section: focus measures, shift against severity, map overlays."""

from __future__ import annotations

import html
import math
import re
import xml.etree.ElementTree as ET
from typing import Any

import markupsafe
import numpy as np
import pytest
from _report_helpers import Page

from pytest_sslrobust.report import plots
from pytest_sslrobust.report.render import format_number, render_report
from pytest_sslrobust.report.sections.attribution import SECTION as attribution_section

XSS = "<script>alert(1)</script>"
MODELS = ("dinov2-vits14", "resnet50-sup")
CORRUPTIONS = ("gaussian_noise", "motion_blur")
HEADERS = [
    "variant",
    "model",
    "rank shift",
    "top-k overlap",
    "foreground focus (chance)",
    "entropy",
    "empty maps",
]


def _uri(seed: int) -> str:
    rng = np.random.default_rng(seed)
    return plots.thumbnail_png((rng.random((24, 24, 3)) * 255).astype(np.uint8), 24)


def _payload(number: int, *, masks: bool = True, severity: bool = True) -> dict[str, Any]:
    """An attribution payload as ReportRecorder.attribution records it (after JSON)."""
    rng = np.random.default_rng(number)
    variants = ["original", *(f"{c}-s{s}" for c in CORRUPTIONS for s in (1, 3, 5))]
    measures = []
    for variant in variants:
        row: dict[str, Any] = {
            "variant": variant,
            "entropy": float(rng.uniform(0.8, 1.0)),
            "degenerate": int(variant.endswith("s5")),
        }
        if variant != "original":
            row["rank_shift"] = float(rng.uniform(0.05, 0.9))
            row["topk_overlap"] = float(rng.uniform(0.2, 0.9))
        if masks:
            row["foreground_focus"] = float(rng.uniform(0.3, 0.6))
            row["chance_focus"] = 0.2 + 0.01 * number
        measures.append(row)
    curves = {
        c: [
            next((m["rank_shift"] for m in measures if m["variant"] == f"{c}-s{s}"), None)
            for s in range(1, 6)
        ]
        for c in CORRUPTIONS
    }
    return {
        "method": "gradcam",
        "target": "linear-probe",
        "images": 64,
        "split": "test",
        "top_k": 0.1,
        "measures": measures,
        "severity": curves if severity else {},
        "overlays": [
            {
                "item": f"digit-{item:04d}",
                "tiles": [
                    {"id": v, "uri": _uri(100 * number + item * 10 + i)}
                    for i, v in enumerate(variants[:3])
                ],
            }
            for item in (12, 40)
        ],
        "protocol": {
            "data": "bundled:digits",
            "split": "test",
            "method": "gradcam",
            "target": "class logit of the linear probe",
            "readout": "linear-probe",
            "images": 64,
            "ids_digest": "0123456789abcdef",
        },
    }


def _artifact(model: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "attribution",
        "test": f"tests/test_focus.py::test_focus[{model}]",
        "model": model,
        "label": f"{payload['method']}-{payload['target']}",
        "payload": payload,
    }


def attribution_document() -> dict[str, Any]:
    """Two models; the artifacts recorded in the reverse of the run's model order."""
    return {
        "title": "Attribution",
        "generated": "2025-01-02T03:04:05+00:00",
        "run": {"models": [{"name": model} for model in MODELS]},
        "artifacts": [
            _artifact(MODELS[1], _payload(2)),
            {"kind": "attack", "model": MODELS[0], "payload": {"eps": [0.0], "values": [0.9]}},
            _artifact(MODELS[0], _payload(1)),
        ],
    }


def _section(text: str) -> str:
    match = re.search(r'<section id="attribution">.*?</section>', text, re.DOTALL)
    assert match is not None
    return match.group(0)


def _attribution_table(page: Page) -> list[list[str]]:
    return next(t["rows"] for t in page.tables if t["rows"] and t["rows"][0] == HEADERS)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return attribution_document()


@pytest.fixture(scope="module")
def rendered(document: dict[str, Any]) -> str:
    return render_report(document)


@pytest.fixture(scope="module")
def page(rendered: str) -> Page:
    return Page(rendered)


# --------------------------------------------------------------------------- tests


def test_section_is_listed_after_adversarial_and_in_the_nav(page: Page) -> None:
    assert page.headings["h2"] == ["Run", "Adversarial", "Attribution"]
    assert "attribution" in page.ids
    assert ("a", "href", "#attribution") in page.attributes


def test_table_shows_the_formatted_measures_models_in_run_order(
    document: dict[str, Any], page: Page
) -> None:
    header, *rows = _attribution_table(page)
    by_model = {
        a["model"]: a["payload"] for a in document["artifacts"] if a["kind"] == "attribution"
    }
    variants = [m["variant"] for m in by_model[MODELS[0]]["measures"]]
    assert len(rows) == len(variants) * len(MODELS)
    # The rows of one variant side by side, models in the run's order (not recording order).
    assert [row[0] for row in rows] == [v for v in variants for _ in MODELS]
    assert [row[1] for row in rows] == [f"{m} · gradcam-linear-probe" for m in MODELS] * len(
        variants
    )
    for row in rows:
        model = row[1].split(" · ")[0]
        measure = next(m for m in by_model[model]["measures"] if m["variant"] == row[0])
        expected = [
            format_number(measure.get("rank_shift")),
            format_number(measure.get("topk_overlap")),
            f"{format_number(measure['foreground_focus'])} "
            f"({format_number(measure['chance_focus'])})",
            format_number(measure["entropy"]),
            str(measure["degenerate"]),
        ]
        assert row[2:] == expected
        if row[0] != "original":
            assert math.isclose(float(row[2]), measure["rank_shift"], rel_tol=1e-3)
    clean = [row for row in rows if row[0] == "original"]
    assert all(row[2] == row[3] == "–" for row in clean)  # no shift from itself


def test_note_explains_each_measure(rendered: str) -> None:
    section = _section(rendered)
    for phrase in (
        "0 = the pixels ranked the same",
        "(1 = the same pixels)",
        "k = 10% of the pixels",
        "the object&#39;s share of the image",
        "1 = evenly",
    ):
        assert phrase in section


def test_severity_figure_per_model(page: Page, rendered: str) -> None:
    section = _section(rendered)
    assert "Focus shift against severity" in page.headings["h3"]
    assert section.count("<svg") == 2
    assert 'class="figure-error"' not in section
    assert "rank shift (1 - Spearman)" in section  # the axis title, drawn as SVG text
    for corruption in CORRUPTIONS:
        assert section.count(f">{corruption}</text>") == 2  # one legend entry per model
    # Models' panels in run order.
    figcaptions = re.findall(
        r'<figure class="panel">.*?<figcaption>(.*?)(?:<br>|</figcaption>)', section, re.DOTALL
    )
    assert [html.unescape(c) for c in figcaptions] == [
        f"{m} · gradcam-linear-probe" for m in MODELS
    ]


def test_overlays_show_every_tile_captioned(document: dict[str, Any], page: Page) -> None:
    sources = [v for tag, name, v in page.attributes if tag == "img" and name == "src"]
    expected = [
        tile["uri"]
        for model in MODELS
        for a in document["artifacts"]
        if a["model"] == model and a["kind"] == "attribution"
        for entry in a["payload"]["overlays"]
        for tile in entry["tiles"]
    ]
    assert sources == expected and len(sources) == 2 * 2 * 3
    alts = [v for tag, name, v in page.attributes if tag == "img" and name == "alt"]
    assert alts == ["original", "gaussian_noise-s1", "gaussian_noise-s3"] * 4


def test_overlay_grid_lays_out_many_variants_by_severity() -> None:
    variants = ["original", *(f"{c}-s{s}" for c in CORRUPTIONS for s in range(1, 6))]
    payload = {
        "overlays": [
            {"item": "x", "tiles": [{"id": v, "uri": _uri(i)} for i, v in enumerate(variants)]}
        ]
    }
    section = attribution_section(
        {"artifacts": [_artifact("m", {**payload, "method": "g", "target": "t"})]}
    )
    assert section is not None
    (item,) = section["overlays"][0]["items"]
    assert item["columns"] == 5
    rows = [item["cells"][i : i + 5] for i in range(0, len(item["cells"]), 5)]
    assert [[c and c["id"] for c in row] for row in rows] == [
        ["original", None, None, None, None],
        *[[f"{c}-s{s}" for s in range(1, 6)] for c in CORRUPTIONS],
    ]


def test_protocols_are_listed(rendered: str) -> None:
    section = _section(rendered)
    assert "<summary>Protocols</summary>" in section
    assert "class logit of the linear probe" in section
    assert section.count("<h4>") >= 2 * 2  # a protocol and an overlay heading per model


def test_no_attribution_artifacts_no_section(document: dict[str, Any]) -> None:
    others = [a for a in document["artifacts"] if a["kind"] != "attribution"]
    text = render_report({**document, "artifacts": others})
    assert 'id="attribution"' not in text
    assert "#attribution" not in text
    assert 'id="attribution"' not in render_report({})
    # A payload that is not a mapping is no attribution artifact either.
    odd = {"artifacts": [{"kind": "attribution", "model": "m", "payload": ["x"]}]}
    assert 'id="attribution"' not in render_report(odd)


def test_hostile_strings_are_escaped() -> None:
    model = 'evil"model<b>'
    payload = _payload(3)
    payload["measures"][1]["variant"] = XSS
    payload["severity"] = {XSS: [0.1, 0.2, 0.3, 0.4, 0.5]}
    payload["overlays"][0]["item"] = XSS
    payload["overlays"][0]["tiles"][1]["id"] = XSS
    payload["protocol"][XSS] = XSS
    payload["method"] = XSS
    document = {"run": {"models": [{"name": model}]}, "artifacts": [_artifact(model, payload)]}
    text = render_report(document)
    page = Page(text)
    assert "<script>alert" not in text
    assert model not in text and "<b>" not in text
    assert str(markupsafe.escape(model)) in text
    assert page.tags["script"] == 1  # only the report's own
    assert page.tags["b"] == 0
    table = _attribution_table(page)
    assert table[2][0] == XSS  # shown as text
    alts = [v for tag, name, v in page.attributes if tag == "img" and name == "alt"]
    assert XSS in alts  # as an attribute value, escaped in the markup
    assert 'class="figure-error"' not in text


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "https://evil.example/x.png",
        "//evil.example/x.png",
        "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
        "data:text/html;base64,PHNjcmlwdD4=",
        " data:image/png;base64,AAAA",
        None,
    ],
)
def test_tiles_that_are_not_inline_images_are_not_emitted(uri: str | None) -> None:
    payload = _payload(4)
    payload["overlays"] = [
        {
            "item": "digit-0001",
            "tiles": [{"id": "original", "uri": uri}, {"id": "ok", "uri": _uri(0)}],
        }
    ]
    text = render_report({"artifacts": [_artifact("m", payload)]})
    page = Page(text)
    sources = [v for tag, name, v in page.attributes if tag == "img" and name == "src"]
    assert sources == [_uri(0)]
    if uri:
        assert uri.strip() not in text
    assert _section(text).count("not an inline image") == 1


def test_missing_measures_render_with_the_missing_marker() -> None:
    payload = _payload(5, masks=False, severity=False)
    payload["measures"].append({"variant": "fog-s2"})  # nothing measured
    payload["measures"].append("not a row")
    payload["severity"] = {"fog": [None, None, None, None, None]}  # nothing measured either
    payload["overlays"] = []
    del payload["top_k"]
    text = render_report({"artifacts": [_artifact("m", payload)]})
    page = Page(text)
    header, *rows = _attribution_table(page)
    assert len(rows) == len(payload["measures"]) - 1
    assert all(row[4] == "–" for row in rows)  # no masks: no foreground focus
    assert rows[-1] == ["fog-s2", "m · gradcam-linear-probe", "–", "–", "–", "–", "–"]
    section = _section(text)
    assert "<svg" not in section  # no severity curve to draw
    assert "Focus shift against severity" not in section
    assert "<img" not in section
    assert "k = " not in section


def test_json_strings_and_odd_payloads_still_render() -> None:
    payload = _payload(6)
    payload["measures"][1]["rank_shift"] = "nan"
    payload["severity"] = {"gaussian_noise": ["nan", 0.2, None], "snow": "bad", "fog": [0.1] * 5}
    payload["overlays"] = [{"item": None, "tiles": ["x", {"id": 3}]}, "x", {"tiles": []}]
    payload["top_k"] = "0.05"
    text = render_report({"artifacts": [_artifact("m", payload)]})
    assert 'class="figure-error"' not in text
    rows = _attribution_table(Page(text))[1:]
    assert rows[1][2] == "nan"
    section = _section(text)
    assert section.count("<svg") == 1
    assert "k = 5% of the pixels" in section
    assert section.count("not an inline image") == 1


def test_a_shared_scale_covers_every_model(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[dict[str, list[float]], dict[str, Any]]] = []
    draw = plots.severity_curves

    def recording(values: dict[str, list[float]], **kwargs: Any) -> str:
        calls.append((values, kwargs))
        return draw(values, **kwargs)

    monkeypatch.setattr(plots, "severity_curves", recording)
    low, high = _payload(7), _payload(8)
    low["severity"] = {"fog": [0.1, None, 0.2, None, 0.3]}
    many = ("gaussian_noise", "shot_noise", "defocus_blur", "fog", "snow")
    high["severity"] = {name: [0.5, 0.8, 1.2, 1.5, 1.8] for name in many}
    section = attribution_section({"artifacts": [_artifact("low", low), _artifact("high", high)]})
    assert section is not None
    figure = next(b for b in section["blocks"] if b["type"] == "figures")
    assert [p["error"] for p in figure["panels"]] == [None, None]
    (low_values, low_kwargs), (high_values, high_kwargs) = calls
    assert math.isnan(low_values["fog"][1])
    for kwargs in (low_kwargs, high_kwargs):
        # Drawn as they are (1.8 is no fraction, no percent), on one scale above the highest,
        # measured severities joined.
        assert kwargs["percent"] is False and kwargs["gaps"] is False
        assert kwargs["ymax"] == low_kwargs["ymax"] and 1.8 < kwargs["ymax"] <= 2.0
        assert "rank shift" in kwargs["ylabel"]
    assert low_kwargs["families"] is None  # one corruption: one panel
    assert high_kwargs["families"] == {
        "noise": ["gaussian_noise", "shot_noise"],
        "blur": ["defocus_blur"],
        "weather": ["snow", "fog"],
    }
    assert all("1.5" in p["svg"] for p in figure["panels"])


def test_rendering_is_deterministic(document: dict[str, Any], rendered: str) -> None:
    assert render_report(document) == rendered
    assert render_report(attribution_document()) == rendered


def test_severity_curves_plot_other_measures_without_percent() -> None:
    values = {"gaussian_noise": [0.2, 0.6, float("nan"), 1.4, 1.7], "fog": [0.1] * 5}
    svg = plots.severity_curves(values, title="shift", ylabel="rank shift", percent=False, ymax=2.0)
    drawn = [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
    assert "rank shift" in drawn and "severity" in drawn
    assert "2.00" in drawn and "1.75" in drawn  # values above 1, on their own scale
    assert svg == plots.severity_curves(
        values, title="shift", ylabel="rank shift", percent=False, ymax=2.0
    )
    # Errors keep their behaviour: fractions only, shown in percent.
    with pytest.raises(ValueError, match=r"fractions in \[0, 1\]"):
        plots.severity_curves(values, title="t")
    with pytest.raises(ValueError, match="ymax"):
        plots.severity_curves(values, title="t", percent=False, ymax=float("inf"))
    with pytest.raises(ValueError, match="ymax"):
        plots.severity_curves(values, title="t", percent=False, ymax=-1.0)
    errors = {"fog": [0.1, 0.2, 0.3, 0.4, 0.5]}
    assert plots.severity_curves(errors, title="t") == plots.severity_curves(
        errors, title="t", percent=True
    )


def test_severity_curves_can_join_points_across_unmeasured_severities() -> None:
    sparse = {"fog": [0.1, float("nan"), 0.3, float("nan"), 0.5]}
    joined = plots.severity_curves(sparse, title="t", ylabel="y", percent=False, gaps=False)
    gapped = plots.severity_curves(sparse, title="t", ylabel="y", percent=False)
    assert joined != gapped
    dense = {"fog": [0.1, 0.2, 0.3, 0.4, 0.5]}
    assert plots.severity_curves(dense, title="t", gaps=False) == plots.severity_curves(
        dense, title="t"
    )
