"""The report's first screen: the studies' headline numbers side by side, the best model per
row, near-chance caveats, relative mCE when the reference barely degrades, shared scales and
chance lines. Documents are recorded as a run records them: ``sslrobust.report`` and the
contracts inside a (simulated) test, collected, built with ``build_document``."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from _report_helpers import XSS, Page, recording

from pytest_sslrobust import assert_balanced_accuracy_above, assert_bg_gap_below
from pytest_sslrobust.attacks.gradient import AttackResult
from pytest_sslrobust.metrics.corruption import CorruptionErrors, relative_mce
from pytest_sslrobust.report import build_document, plots
from pytest_sslrobust.report.formatting import format_number
from pytest_sslrobust.report.render import render_report
from pytest_sslrobust.report.sections.background import SECTION as background_section
from pytest_sslrobust.report.sections.generalisability import SECTION as transfer_section
from pytest_sslrobust.results import ResultCollector
from pytest_sslrobust.vocabulary import COMMON

GOOD, SUPERVISED, CHANCE = "simclr-good", "supervised", "simclr-chance"
MODELS = (GOOD, SUPERVISED, CHANCE)
SVG = "{http://www.w3.org/2000/svg}"
# Near (10 classes) and far (4 classes) balanced accuracy of each model's probe: near apart,
# far overlapping between the two good models; the third model is near chance (0.1).
NEAR = {GOOD: 0.9, SUPERVISED: 0.7, CHANCE: 0.12}
FAR = {GOOD: 0.55, SUPERVISED: 0.53, CHANCE: 0.27}
# Clean error and the error each severity adds (the same under every corruption).
CORRUPTION = {GOOD: (0.10, 0.04), SUPERVISED: (0.30, 0.05), CHANCE: (0.88, 0.004)}
BACKGROUND = {
    GOOD: {"original": 0.9, "only_fg": 0.85, "mixed_same": 0.86, "mixed_rand": 0.8},
    SUPERVISED: {"original": 0.7, "only_fg": 0.6, "mixed_same": 0.65, "mixed_rand": 0.45},
    CHANCE: {"original": 0.12, "only_fg": 0.11, "mixed_same": 0.11, "mixed_rand": 0.1},
}


def _labels(classes: int, per_class: int) -> np.ndarray:
    return np.repeat(np.arange(classes), per_class)


def _predictions(labels: np.ndarray, accuracy: float, classes: int) -> np.ndarray:
    """Right on the first ``accuracy`` share of each class's images, wrong on the rest."""
    predicted = labels.copy()
    for label in range(classes):
        rows = np.flatnonzero(labels == label)
        wrong = rows[int(round(accuracy * rows.size)) :]
        predicted[wrong] = (label + 1) % classes
    return predicted


def _errors(model: str, clean: float, step: float) -> CorruptionErrors:
    table = {name: tuple(clean + step * s for s in range(1, 6)) for name in COMMON}
    protocol = {"source": "on-the-fly", "backbone": model}
    return CorruptionErrors(table, clean, 500, "linear-probe", protocol)


def _collect(flat_reference: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Three models through every study; with ``flat_reference`` the reference model's
    errors barely rise under the corruptions. Returns the document and the contracts'
    results per model and target."""
    collector = ResultCollector()
    clean, step = CORRUPTION[SUPERVISED]
    reference = (
        _errors(SUPERVISED, 0.05, 0.002 / 3) if flat_reference else _errors(SUPERVISED, clean, step)
    )
    contracts: dict[str, Any] = {}
    for model in MODELS:
        with recording(collector, model, "tests/test_corruption.py::test_mce") as report:
            report.corruption(_errors(model, *CORRUPTION[model]), reference=reference)
        with recording(collector, model, "tests/test_background.py::test_bg") as report:
            report.background(BACKGROUND[model])
            labels = _labels(10, 40)
            same = _predictions(labels, BACKGROUND[model]["mixed_same"], 10)
            rand = _predictions(labels, BACKGROUND[model]["mixed_rand"], 10)
            assert_bg_gap_below(same, rand, 1.0, labels=labels, label="biased probe")
        with recording(collector, model, "tests/test_adversarial.py::test_pgd") as report:
            clean_accuracy = NEAR[model]
            values = (clean_accuracy, clean_accuracy / 2, clean_accuracy / 4)
            report.attack(
                AttackResult(
                    (0.0, 1 / 255, 4 / 255),
                    values,
                    "robust_accuracy",
                    "pgd",
                    "linf",
                    10,
                    clean_accuracy,
                    400,
                )
            )
        with recording(collector, model, "tests/test_generalisability.py::test_near") as report:
            labels = _labels(10, 50)
            near = assert_balanced_accuracy_above(
                _predictions(labels, NEAR[model], 10),
                0.0,
                labels=labels,
                label="near",
                confidence=0.95,
                resamples=300,
            )
            report.transfer("near", near, confidence=0.4 + NEAR[model] / 2, invariance=0.8)
        with recording(
            collector, model, "tests/test_generalisability.py::test_far", classes=4
        ) as report:
            labels = _labels(4, 100)
            far = assert_balanced_accuracy_above(
                _predictions(labels, FAR[model], 4),
                0.0,
                labels=labels,
                label="far",
                confidence=0.95,
                resamples=300,
            )
            report.transfer("far", far)
        contracts[model] = {"near": near, "far": far}
    run = {"models": [{"name": m, "paradigm": "ssl" if "simclr" in m else "sup"} for m in MODELS]}
    document = build_document(collector, run)
    return document, {"contracts": contracts, "reference": reference}


@pytest.fixture(scope="module")
def recorded() -> tuple[dict[str, Any], dict[str, Any]]:
    return _collect()


@pytest.fixture(scope="module")
def document(recorded: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    return recorded[0]


@pytest.fixture(scope="module")
def rendered(document: dict[str, Any]) -> str:
    return render_report(document)


@pytest.fixture(scope="module")
def page(rendered: str) -> Page:
    return Page(rendered)


def _summary(page: Page) -> tuple[list[str], dict[str, list[str]]]:
    """The summary's header and its rows by the quantity they show."""
    header, *rows = page.table("summary-table")["rows"]
    return header, {row[1]: row for row in rows}


def _cell(header: list[str], row: list[str], model: str) -> str:
    column = next(i for i, name in enumerate(header) if name.split(" near chance")[0] == model)
    return row[column]


def _table(page: Page, first: list[str]) -> list[list[str]]:
    return next(t["rows"] for t in page.tables if t["rows"] and t["rows"][0][: len(first)] == first)


def ytick_labels(svg: str) -> list[str]:
    """The y axis' tick labels of a chart, bottom to top."""
    root = ET.fromstring(svg)
    labels = []
    for group in root.iter(f"{SVG}g"):
        if group.get("id", "").startswith("ytick_"):
            text = next(group.iter(f"{SVG}text"), None)
            labels.append("" if text is None else (text.text or ""))
    return labels


def texts(svg: str) -> list[str]:
    return [element.text or "" for element in ET.fromstring(svg).iter(f"{SVG}text")]


# --------------------------------------------------------------------------- the summary


def test_the_summary_comes_right_after_the_run_header(page: Page) -> None:
    assert page.headings["h2"][:3] == ["Run", "Summary", "Contracts"]
    assert "Generalisability" in page.headings["h2"]
    header, _ = _summary(page)
    assert header[:3] == ["study", "number", "better"] and header[-1] == "best"
    assert [h.split(" near chance")[0] for h in header[3:-1]] == list(MODELS)


def test_lower_is_better_marks_the_lowest_mce(page: Page) -> None:
    header, rows = _summary(page)
    row = rows["mCE"]
    assert row[2] == "lower"
    assert _cell(header, row, GOOD).endswith(" best")
    assert not _cell(header, row, SUPERVISED).endswith("best")
    assert not _cell(header, row, CHANCE).endswith("best")
    assert row[-1] == GOOD
    # The reference scores 100 against itself; the good model's errors are lower.
    assert _cell(header, row, SUPERVISED) == "100"


def test_higher_is_better_marks_the_highest_accuracy_with_its_interval(
    recorded: tuple[dict[str, Any], dict[str, Any]], page: Page
) -> None:
    header, rows = _summary(page)
    row = rows["probe accuracy, near target"]
    assert row[2] == "higher"
    assert row[-1] == GOOD
    for model in MODELS:
        result = recorded[1]["contracts"][model]["near"]
        interval = result.interval
        shown = (
            f"{format_number(result.value, 3)} "
            f"[{format_number(interval['low'], 3)}, {format_number(interval['high'], 3)}]"
        )
        assert _cell(header, row, model).startswith(shown), (model, _cell(header, row, model))
    assert _cell(header, row, GOOD).split("]")[1].strip() == "best"


def test_overlapping_intervals_give_no_clear_best(page: Page) -> None:
    header, rows = _summary(page)
    row = rows["probe accuracy, far target"]
    assert row[-1] == "no clear best"
    assert not any(_cell(header, row, m).endswith("best") for m in MODELS)
    assert "[" in _cell(header, row, GOOD) and "[" in _cell(header, row, SUPERVISED)


def test_a_best_model_near_chance_is_said_to_be(page: Page) -> None:
    # The model that reads nothing loses nothing to backgrounds: lowest BG-Gap, but flagged.
    header, rows = _summary(page)
    row = rows["BG-Gap"]
    assert row[-1] == f"{CHANCE} (near chance)"
    assert _cell(header, row, CHANCE).startswith(format_number(0.11 - 0.1, 3))


def test_the_biased_probe_contract_shows_beside_the_study(page: Page) -> None:
    """The study records its biased probe as a BG-Gap contract only: it gets a summary row
    (every model, even one whose value happens to equal its unbiased gap) and a table in the
    Background section."""
    header, rows = _summary(page)
    row = rows["BG-Gap: biased probe"]
    assert [_cell(header, row, m).removesuffix(" best") for m in MODELS] == ["0.05", "0.2", "0"]
    table = _table(page, ["model", "probe", "mixed_same", "mixed_rand"])
    assert [(r[0].split(" near chance")[0], r[1]) for r in table[1:]] == [
        (m, "biased probe") for m in MODELS
    ]
    assert table[2][2:5] == ["0.65", "0.45", "0.2"]


def test_only_studies_with_data_appear() -> None:
    collector = ResultCollector()
    for model in (GOOD, SUPERVISED):
        with recording(collector, model, "tests/test_background.py::test_bg") as report:
            report.background(BACKGROUND[model])
    page = Page(render_report(build_document(collector, {})))
    _, rows = _summary(page)
    assert set(rows) == {"BG-Gap", "accuracy on mixed_rand"}
    assert {row[0] for row in rows.values()} == {"Background reliance", ""}


def test_one_model_has_no_summary() -> None:
    collector = ResultCollector()
    with recording(collector, GOOD, "tests/test_background.py::test_bg") as report:
        report.background(BACKGROUND[GOOD])
    page = Page(render_report(build_document(collector, {})))
    assert "Summary" not in page.headings["h2"]
    assert "Background reliance" in page.headings["h2"]


# --------------------------------------------------------------------------- near chance


def test_the_near_chance_model_carries_a_caveat_in_the_summary(rendered: str, page: Page) -> None:
    header, _ = _summary(page)
    assert f"{CHANCE} near chance" in header
    assert GOOD in header and SUPERVISED in header  # no caveat for the readable models
    listed = rendered.split('id="summary-caveats"', 1)[1].split("</ul>", 1)[0]
    assert CHANCE in listed and "representation near chance" in listed
    assert GOOD not in listed and SUPERVISED not in listed


def test_the_near_chance_caveat_follows_the_model_into_the_sections(page: Page) -> None:
    corruption = _table(page, ["model", "mCE", "relative mCE"])
    models = {row[0] for row in corruption[1:]}
    assert models == {GOOD, SUPERVISED, f"{CHANCE} near chance"}
    transfer = _table(page, ["model", "target", "data"])
    near_chance_rows = [row for row in transfer[1:] if row[0].endswith("near chance")]
    assert {row[0] for row in near_chance_rows} == {f"{CHANCE} near chance"}
    # The far probe of the chance model is itself at chance: marked on the number.
    far = next(row for row in transfer[1:] if row[0].startswith(CHANCE) and row[1] == "far")
    assert far[3].endswith("≈ chance")
    good_far = next(row for row in transfer[1:] if row[0] == GOOD and row[1] == "far")
    assert "chance" not in good_far[3]


# --------------------------------------------------------------------------- relative mCE


def test_relative_mce_is_a_number_when_the_reference_degrades(
    recorded: tuple[dict[str, Any], dict[str, Any]], page: Page
) -> None:
    reference = recorded[1]["reference"]
    corruption = _table(page, ["model", "mCE", "relative mCE"])
    for row in corruption[1:]:
        model = row[0].split(" near chance")[0]
        expected = relative_mce(_errors(model, *CORRUPTION[model]), reference=reference)
        assert row[2] == format_number(expected)
    header, rows = _summary(page)
    assert "n/a" not in rows["relative mCE"]


def test_relative_mce_is_not_applicable_when_the_reference_barely_degrades() -> None:
    document, extra = _collect(flat_reference=True)
    html = render_report(document)
    page = Page(html)
    corruption = _table(page, ["model", "mCE", "relative mCE"])
    assert [row[2] for row in corruption[1:]] == ["n/a"] * 3
    # The number it would have been is not shown anywhere.
    value = relative_mce(_errors(GOOD, *CORRUPTION[GOOD]), reference=extra["reference"])
    assert abs(value) > 1000 and format_number(value) not in html
    section = html.split('<section id="corruption">', 1)[1].split("</section>", 1)[0]
    assert "Relative mCE n/a" in section and "barely degrades" in section
    header, rows = _summary(page)
    row = rows["relative mCE"]
    assert all(_cell(header, row, m).startswith("n/a") for m in MODELS)
    assert "reference barely degrades" in _cell(header, row, GOOD)
    assert row[-1] == "–"


# --------------------------------------------------------------------------- charts


def test_side_by_side_charts_share_one_y_scale(document: dict[str, Any]) -> None:
    section = background_section(document)
    assert section is not None
    bars = next(b for b in section["blocks"] if b.get("title") == "Accuracy per background variant")
    ticks = [ytick_labels(panel["svg"]) for panel in bars["panels"]]
    assert len(ticks) == 3 and len(ticks[0]) >= 3
    assert ticks[0] == ticks[1] == ticks[2]
    # Drawn alone, the near-chance model's accuracies (at most 0.12) get a scale of their own.
    alone = plots.bar_chart(BACKGROUND[CHANCE], title=CHANCE, ylabel="accuracy")
    assert ytick_labels(alone) != ticks[2]


def test_accuracy_charts_draw_a_chance_line(document: dict[str, Any]) -> None:
    section = background_section(document)
    assert section is not None
    bars = next(b for b in section["blocks"] if b.get("title") == "Accuracy per background variant")
    assert all("chance (0.1)" in texts(panel["svg"]) for panel in bars["panels"])
    transfer = transfer_section(document)
    assert transfer is not None
    panels = next(b for b in transfer["blocks"] if b["type"] == "figures")["panels"]
    assert [p["caption"].split(" ")[0] for p in panels] == ["near", "far"]
    assert "chance (0.1)" in texts(panels[0]["svg"])
    assert "chance (0.25)" in texts(panels[1]["svg"])
    assert ytick_labels(panels[0]["svg"]) == ytick_labels(panels[1]["svg"])
    # Without a chance level there is no line.
    plain = plots.bar_chart({"a": 0.5}, title="t", ylabel="accuracy")
    assert not any("chance" in t for t in texts(plain))


def test_the_chance_line_option_of_the_plot_helpers() -> None:
    drawn = plots.line_plot(
        [0.0, 1.0], {"m": [0.9, 0.3]}, title="t", xlabel="eps", ylabel="acc", chance=0.25
    )
    assert "chance (0.25)" in texts(drawn)
    curves = plots.severity_curves({"fog": [0.1, 0.2, 0.3, 0.4, 0.5]}, title="t", chance=0.9)
    assert "chance (90)" in texts(curves)  # an error fraction, drawn in percent
    with pytest.raises(ValueError, match="chance"):
        plots.bar_chart({"a": 0.5}, title="t", ylabel="y", chance=math.nan)
    with pytest.raises(ValueError, match="bottom < top"):
        plots.bar_chart({"a": 0.5}, title="t", ylabel="y", ylim=(1.0, 0.0))


# --------------------------------------------------------------------------- generalisability


def test_generalisability_reads_the_contracts_without_transfer_artifacts(
    document: dict[str, Any],
) -> None:
    """The study as it stands records near/far as contracts and the near confidence in its
    reliability diagram: the section shows those without ``report.transfer``."""
    stripped = {
        **document,
        "artifacts": [a for a in document["artifacts"] if a["kind"] != "transfer"],
    }
    section = transfer_section(stripped)
    assert section is not None
    rows = section["blocks"][0]["rows"]
    shown = {(r["cells"][0]["text"], r["cells"][1]["text"]): r["cells"][3]["text"] for r in rows}
    assert len(shown) == 6
    near = next(r for r in document["results"] if r["model"] == GOOD and r["label"] == "near")
    assert shown[(GOOD, "near")].startswith(format_number(near["value"], 3) + " [")


# --------------------------------------------------------------------------- escaping


def test_user_strings_are_escaped_in_the_summary() -> None:
    collector = ResultCollector()
    for model in (XSS, GOOD):
        with recording(collector, model, f"tests/test_background.py::test_{XSS}") as report:
            report.background(BACKGROUND[GOOD], condition=XSS)
            labels = _labels(10, 20)
            assert_balanced_accuracy_above(
                _predictions(labels, 0.11, 10), 0.0, labels=labels, label="near"
            )
    html = render_report(build_document(collector, {"models": [{"name": XSS}]}))
    assert XSS not in html
    page = Page(html)
    header, rows = _summary(page)
    assert f"{XSS} near chance" in header  # the parser unescapes: the text came through
    assert f"BG-Gap ({XSS})" in rows
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.split('id="summary-table"')[1]
    assert page.tags["script"] == 1
