"""One table of metric facts: every metric a contract records is in it, with the direction
the contract records, and the baselines' directions are derived from it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pytest_sslrobust.baselines import KNOWN_DIRECTIONS, parse_tolerances
from pytest_sslrobust.contracts.facts import METRICS, MetricFact, direction_of

CONTRACTS = Path(__file__).resolve().parents[1] / "pytest_sslrobust" / "contracts"


def recorded_metrics() -> dict[str, set[str | None]]:
    """metric -> the ``better=`` literals of the contract calls that record it."""
    found: dict[str, set[str | None]] = {}
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in CONTRACTS.glob("*.py")]
    for node in (node for tree in trees for node in ast.walk(tree)):
        if isinstance(node, ast.Call):
            words = {k.arg: k.value for k in node.keywords if k.arg}
            metric = words.get("metric")
            if isinstance(metric, ast.Constant) and isinstance(metric.value, str):
                better = words.get("better")
                literal = better.value if isinstance(better, ast.Constant) else None
                found.setdefault(metric.value, set()).add(literal)
        if isinstance(node, ast.Dict):  # {"metric": "balanced_accuracy", ...}
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "metric"
                    and isinstance(value, ast.Constant)
                ):
                    found.setdefault(value.value, set())
    return found


def test_every_recorded_metric_is_in_the_table_with_its_direction() -> None:
    found = recorded_metrics()
    assert len(found) >= 12, found
    missing = sorted(set(found) - set(METRICS))
    assert missing == [], f"contracts record metrics the facts table lacks: {missing}"
    for metric, literals in found.items():
        for better in literals - {None}:
            assert better == METRICS[metric].direction, (metric, better)


def test_baseline_directions_are_derived_from_the_table() -> None:
    assert KNOWN_DIRECTIONS == {name: fact.direction for name, fact in METRICS.items()}
    assert direction_of("focus_shift") == "lower" and direction_of("my_metric") is None


@pytest.mark.parametrize("name", sorted(METRICS))
def test_a_wrongly_signed_tolerance_is_refused_for_every_metric(name: str) -> None:
    wrong = "-" if METRICS[name].direction == "lower" else "+"
    with pytest.raises(ValueError, match="wrong sign"):
        parse_tolerances(f"{name}:{wrong}0.1")


def test_facts_are_well_formed() -> None:
    for name, fact in METRICS.items():
        assert isinstance(fact, MetricFact) and fact.name == name
        assert fact.direction in ("higher", "lower")
        assert fact.unit in ("fraction", "percent", "score") and fact.decimals >= 0


def test_a_contract_contradicting_the_table_is_refused() -> None:
    from pytest_sslrobust.contracts.decision import conclude

    with pytest.raises(RuntimeError, match="metric facts say 'lower'"):
        conclude(
            "assert_x", metric="mce", shown="mCE", value=1.0, better="higher", label="x",
            decimals=1, high=2.0,
        )  # fmt: skip


def test_the_schema_doc_lists_every_metric_as_the_table_says():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "results-schema.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): [cell.strip() for cell in line.split("|")[2:6]]
        for line in doc.split("## Built-in metrics", 1)[1].split("\n## ", 1)[0].splitlines()
        if line.startswith("| `")
    }
    assert rows == {
        name: [fact.display, fact.direction, fact.unit, str(fact.decimals)]
        for name, fact in METRICS.items()
    }


def test_the_report_titles_a_metric_from_the_table():
    from pytest_sslrobust.report.sections.contracts import metric_title

    assert metric_title("mce") == "mCE: lower is better, a percent"
    assert metric_title("my_metric") == "a metric of the test's own"
