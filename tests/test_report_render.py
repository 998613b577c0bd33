"""Structure of the HTML report: sections, numbers, escaping, self-containment, size."""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
import time
from typing import Any

import pytest
from _report_helpers import GENERATED, MODELS, XSS, Page, realistic_document

from pytest_sslrobust.report.render import (
    SECTIONS,
    format_bounds,
    format_interval,
    format_number,
    render_report,
)
from pytest_sslrobust.variants import ALL

MAX_BYTES = 5 * 1024 * 1024


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
    # How each row was decided: the paired interval and p-value, else by value.
    decided = table["rows"][0].index("decided")
    assert table["rows"][1][decided] == "paired [+0.012, +0.034], p=0.00042"
    assert {row[decided] for row in table["rows"][2:]} == {"by value"}


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
