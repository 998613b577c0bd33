"""JUnit XML with contract results: valid xunit2 (suite properties), per-test under xunit1."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_sslrobust.results import results_from_properties

SCHEMA = Path(__file__).parent / "data" / "junit-10.xsd"

CONTRACTS = """
import numpy as np
from pytest_sslrobust import assert_accuracy_above, assert_cka_between

rng = np.random.default_rng(0)
X = rng.normal(size=(100, 8))
LABELS = np.arange(100) % 4


def test_similar():
    assert_cka_between(X, X + 0.01 * rng.normal(size=X.shape), 0.9, 1.0, label="near")
    assert_cka_between(X, 2 * X, 0.9, 1.0, label="scaled")


def test_accuracy():
    predictions = LABELS.copy()
    predictions[:60] = (LABELS[:60] + 1) % 4
    assert_accuracy_above(predictions, LABELS, 0.5)


def test_plain():
    pass
"""


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses import this checkout's plugin, whichever copy is installed."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path]:
    pytester.makepyfile(test_contracts=CONTRACTS)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        f"--sslrobust-json={pytester.path / 'results.json'}",
        *args,
    )
    result.assert_outcomes(passed=2, failed=1)
    return result, junit


def _suite_results(junit: Path) -> dict[str, list[str]]:
    """Labels of the suite's sslrobust results by test name (from the JSON's ``test``)."""
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    properties = suite.find("properties")
    assert properties is not None
    results = results_from_properties((p.get("name"), p.get("value")) for p in properties)
    by_test: dict[str, list[str]] = {}
    for result in results:
        by_test.setdefault(result.test.rsplit("::", 1)[1], []).append(result.label)
    return {test: sorted(labels) for test, labels in by_test.items()}


def _assert_valid_xunit2(junit: Path) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(junit))
    root = ET.parse(junit).getroot()
    assert not [case.get("name") for case in root.iter("testcase") if case.find("properties")]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_xunit2_results_are_suite_properties_and_validate(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    _, junit = _run(pytester, *workers)
    _assert_valid_xunit2(junit)
    expected = {"test_similar": ["near", "scaled"], "test_accuracy": ["accuracy"]}
    assert _suite_results(junit) == expected
    # the results still reach the session's collector (JSON), from xdist workers too
    document = json.loads((pytester.path / "results.json").read_text())
    assert sorted(r["label"] for r in document["results"]) == ["accuracy", "near", "scaled"]


def test_xunit2_keeps_other_user_properties_and_a_failed_call_with_teardown_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_broken="""
        import numpy as np
        import pytest
        from pytest_sslrobust import assert_cka_between

        X = np.random.default_rng(0).normal(size=(50, 4))

        @pytest.fixture
        def breaks_on_teardown():
            yield
            raise RuntimeError("teardown")

        def test_fails_then_errors(breaks_on_teardown, record_property):
            record_property("mine", "kept")
            assert_cka_between(X, X ** 2, 0.99, 1.0, label="squared")
        """
    )
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-p", "no:randomly", f"--junitxml={junit}")
    result.assert_outcomes(failed=1, errors=1)
    root = ET.parse(junit).getroot()
    # pytest writes a failed call and a teardown error as two testcases (and its own
    # `record_property` into them, which xunit2 warns about); neither carries our results
    in_cases = [p.get("name") for case in root.iter("testcase") for p in case.iter("property")]
    assert "sslrobust" not in in_cases and "mine" in in_cases
    assert _suite_results(junit) == {"test_fails_then_errors": ["squared"]}


def test_xunit1_keeps_results_on_each_testcase(pytester: pytest.Pytester) -> None:
    _, junit = _run(pytester, "-o", "junit_family=xunit1")
    root = ET.parse(junit).getroot()
    per_case = {
        case.get("name"): sorted(
            r.label
            for r in results_from_properties(
                (p.get("name"), p.get("value")) for p in case.iter("property")
            )
        )
        for case in root.iter("testcase")
    }
    assert per_case == {
        "test_similar": ["near", "scaled"],
        "test_accuracy": ["accuracy"],
        "test_plain": [],
    }
    assert root.find("testsuite/properties") is None


def test_junitparser_reads_the_suite_properties(pytester: pytest.Pytester) -> None:
    junitparser = pytest.importorskip("junitparser")
    _, junit = _run(pytester)
    suite = next(iter(junitparser.JUnitXml.fromfile(str(junit))))
    results = results_from_properties((p.name, p.value) for p in suite.properties())
    assert sorted(r.label for r in results) == ["accuracy", "near", "scaled"]
    assert {case.name for case in suite} == {"test_similar", "test_accuracy", "test_plain"}
