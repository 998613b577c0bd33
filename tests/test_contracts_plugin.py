"""Contracts through the plugin: summary table, JSON, JUnit, baselines and the gate, xdist."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

CONTRACTS = """
import numpy as np
import pytest
from pytest_sslrobust import assert_accuracy_above, assert_cka_between

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 8))
LABELS = np.arange(200) % 4


def test_similar(sslrobust_settings):
    assert_cka_between(X, X + 0.01 * rng.normal(size=X.shape), 0.9, 1.0, label="near")


def test_accuracy():
    level = ACCURACY
    predictions = LABELS.copy()
    predictions[: int((1 - level) * len(LABELS))] = (LABELS[: int((1 - level) * len(LABELS))] + 1) % 4
    assert_accuracy_above(predictions, LABELS, 0.5, confidence=CONFIDENCE)
"""


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses import this checkout's plugin, whichever copy is installed."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))


def _project(pytester: pytest.Pytester, accuracy: float, confidence: str = "None") -> None:
    pytester.makepyfile(
        test_contracts=CONTRACTS.replace("ACCURACY", repr(accuracy)).replace(
            "CONFIDENCE", confidence
        )
    )


def test_summary_table_json_and_junit(pytester: pytest.Pytester):
    _project(pytester, 0.4)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:randomly",
        f"--sslrobust-json={pytester.path / 'out' / 'results.json'}",
        f"--junitxml={pytester.path / 'junit.xml'}",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*sslrobust contracts*",
            "outcome*contract*value*required*",
            "passed*test_similar*[[]near[]]*[[]0.9, 1[]]*",
            "FAILED*test_accuracy [[]accuracy[]]*0.4*>= 0.5*",
        ]
    )
    document = json.loads((pytester.path / "out" / "results.json").read_text())
    assert document["schema_version"] == 3 and "torch" in document["environment"]["versions"]
    by_label = {r["label"]: r for r in document["results"]}
    assert by_label["near"]["metric"] == "cka" and by_label["near"]["passed"] is True
    assert by_label["accuracy"]["passed"] is False and by_label["accuracy"]["value"] == 0.4
    assert set(by_label["near"]) >= {"test", "name", "value", "low", "high", "better", "protocol"}
    # xunit2 (the default family): one suite property per result, none inside a testcase
    root = ET.parse(pytester.path / "junit.xml").getroot()
    properties = [
        json.loads(p.get("value"))
        for p in root.iterfind("testsuite/properties/property")
        if p.get("name") == "sslrobust"
    ]
    assert sorted(p["label"] for p in properties) == ["accuracy", "near"]
    assert {p["test"].rsplit("::", 1)[1] for p in properties} == {"test_similar", "test_accuracy"}
    assert root.find("testsuite/testcase/properties") is None


def test_save_then_compare_gates_on_regressions(pytester: pytest.Pytester):
    baseline = pytester.path / "baseline.json"
    _project(pytester, 0.9)
    pytester.runpytest_subprocess(f"--sslrobust-save={baseline}").assert_outcomes(passed=2)
    assert json.loads(baseline.read_text())["kind"] == "pytest-sslrobust-baseline"

    _project(pytester, 0.8)  # still passes its own contract (> 0.5) but 10 points worse
    gate = ["--sslrobust-compare", str(baseline), "--sslrobust-compare-fail=accuracy:-5%"]
    result = pytester.runpytest_subprocess(*gate)
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*sslrobust baseline comparison*",
            "*regression*test_accuracy*0.9*0.8*",
            "*sslrobust gate FAILED: 1 regression(s)*",
        ]
    )
    within = pytester.runpytest_subprocess(
        "--sslrobust-compare", str(baseline), "--sslrobust-compare-fail=accuracy:-15%"
    )
    assert within.ret == pytest.ExitCode.OK
    within.stdout.fnmatch_lines(["*worse*test_accuracy*"])
    report_only = pytester.runpytest_subprocess("--sslrobust-compare", str(baseline))
    assert report_only.ret == pytest.ExitCode.OK


def test_noise_inside_the_interval_does_not_fail(pytester: pytest.Pytester):
    baseline = pytester.path / "baseline.json"
    _project(pytester, 0.9, confidence="0.95")
    pytester.runpytest_subprocess(f"--sslrobust-save={baseline}").assert_outcomes(passed=2)
    _project(pytester, 0.88, confidence="0.95")  # 2 points down; n = 200 -> interval ~ +-4
    result = pytester.runpytest_subprocess(
        "--sslrobust-compare", str(baseline), "--sslrobust-compare-fail=accuracy:-0.01"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*worse*test_accuracy*"])


def test_protocol_mismatch_is_refused(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_p="""
        import numpy as np
        import pytest
        from pytest_sslrobust.results import ContractResult, record, current_test_id

        def test_x(request):
            subset = request.config.getoption("--sslrobust-max-images")
            record(ContractResult(test=current_test_id(), name="x", metric="cka", label="cka",
                                  value=0.8, passed=True, low=0.5, better="higher",
                                  protocol={"data": "bundled:textured-digits",
                                            "subset": {"max_images": subset}}))
        """
    )
    baseline = pytester.path / "b.json"
    pytester.runpytest_subprocess(f"--sslrobust-save={baseline}", "--sslrobust-max-images=10")
    result = pytester.runpytest_subprocess(
        "--sslrobust-compare",
        str(baseline),
        "--sslrobust-compare-fail=cka:-0.1",
        "--sslrobust-max-images=20",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*refused*subset*10*20*", "*1 comparison(s) refused*"])


def test_results_of_xdist_workers_reach_the_controller(pytester: pytest.Pytester):
    _project(pytester, 0.4)
    out = pytester.path / "r.json"
    result = pytester.runpytest_subprocess("-n", "2", f"--sslrobust-json={out}")
    result.assert_outcomes(passed=1, failed=1)
    labels = sorted(r["label"] for r in json.loads(out.read_text())["results"])
    assert labels == ["accuracy", "near"]
    result.stdout.fnmatch_lines(["*sslrobust contracts*", "FAILED*test_accuracy*"])


def test_json_results_are_in_test_id_order_with_and_without_xdist(pytester: pytest.Pytester):
    _project(pytester, 0.9)
    documents = []
    for args in ([], ["-n", "2"]):
        out = pytester.path / f"r{len(args)}.json"
        pytester.runpytest_subprocess(*args, f"--sslrobust-json={out}").assert_outcomes(passed=2)
        documents.append(json.loads(out.read_text())["results"])
    plain, parallel = documents
    assert [r["test"] for r in plain] == sorted(r["test"] for r in plain)
    assert plain == parallel


def test_bootstrap_intervals_follow_the_run_seed(pytester: pytest.Pytester):
    _project(pytester, 0.9, confidence="0.95")
    seeds = {}
    for run_seed in (0, 7):
        out = pytester.path / f"s{run_seed}.json"
        result = pytester.runpytest_subprocess(
            f"--sslrobust-seed={run_seed}", f"--sslrobust-json={out}"
        )
        result.assert_outcomes(passed=2)
        (accuracy,) = [
            r for r in json.loads(out.read_text())["results"] if r["label"] == "accuracy"
        ]
        seeds[run_seed] = accuracy["interval"]["seed"]
    assert seeds == {0: 0, 7: 7}


def test_compare_fail_needs_compare(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--sslrobust-compare-fail=mce:+1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "needs --sslrobust-compare" in result.stderr.str()


def test_bad_baseline_file_is_explained(pytester: pytest.Pytester):
    _project(pytester, 0.9)
    (pytester.path / "old.json").write_text(
        '{"schema_version": 0, "kind": "pytest-sslrobust-baseline", "results": []}'
    )
    result = pytester.runpytest_subprocess("--sslrobust-compare", str(pytester.path / "old.json"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*schema version 0*regenerate*--sslrobust-save*"])


def test_missing_baseline_results_fail_the_gate_unless_warned(pytester: pytest.Pytester):
    baseline = pytester.path / "baseline.json"
    _project(pytester, 0.9)
    pytester.runpytest_subprocess(f"--sslrobust-save={baseline}").assert_outcomes(passed=2)
    gate = ["--sslrobust-compare", str(baseline), "--sslrobust-compare-fail=accuracy:-5%"]
    result = pytester.runpytest_subprocess(*gate, "-k", "accuracy")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*: 1 missing, 1 unchanged",
            "missing*test_similar::near*not run this time",
            "*0 regression(s)*, 1 baseline result(s) missing*",
        ]
    )
    warned = pytester.runpytest_subprocess(
        *gate, "-k", "accuracy", "--sslrobust-compare-missing=warn"
    )
    assert warned.ret == pytest.ExitCode.OK
    warned.stdout.fnmatch_lines(["missing*test_similar::near*"])


def test_compare_models_needs_compare_and_a_valid_mapping(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--sslrobust-compare-models=a=b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--sslrobust-compare-models needs --sslrobust-compare" in result.stderr.str()
    bad = pytester.runpytest_subprocess("--sslrobust-compare-models=a,b=c")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "Could not parse --sslrobust-compare-models 'a,b=c'" in bad.stderr.str()


def test_baseline_update_rewrites_and_lists_stale_results(pytester: pytest.Pytester):
    baseline = pytester.path / "baseline.json"
    _project(pytester, 0.9)
    pytester.runpytest_subprocess(f"--sslrobust-save={baseline}").assert_outcomes(passed=2)
    _project(pytester, 0.8)
    gate = ["--sslrobust-compare", str(baseline), "--sslrobust-compare-fail=accuracy:-5%"]
    out = pytester.path / "now.json"
    update = pytester.runpytest_subprocess(
        *gate, "-k", "accuracy", "--sslrobust-baseline-update", f"--sslrobust-json={out}"
    )
    assert update.ret == pytest.ExitCode.OK  # updating is not gating
    update.stdout.fnmatch_lines(
        [
            "*regression*test_accuracy*0.9*0.8*",
            f"baseline {baseline} rewritten from this run: 1 result(s)",
            "1 stale result(s) removed (no test produced them):",
            "  test_contracts.py::test_similar::near",
        ]
    )
    saved = json.loads(baseline.read_text())["results"]
    produced = json.loads(out.read_text())["results"]
    assert [(r["label"], r["value"]) for r in saved] == [("accuracy", produced[0]["value"])]
    assert produced[0]["value"] < 0.85  # this run's value, not the old baseline's
    again = pytester.runpytest_subprocess(*gate, "-k", "accuracy")
    assert again.ret == pytest.ExitCode.OK
    again.stdout.fnmatch_lines(["*: 1 unchanged"])


def test_baseline_update_needs_compare(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--sslrobust-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--sslrobust-baseline-update needs --sslrobust-compare" in result.stderr.str()
