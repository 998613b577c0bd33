"""A report is written only by a run that executed tests, and never replaced by a smaller one."""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE = """
def test_one(sslrobust):
    assert sslrobust.features("original", split="test").features.shape[0] == 6

def test_two(sslrobust):
    assert sslrobust.backbone.name == "random-resnet18"

def test_three():
    pass
"""


def _run(pytester: pytest.Pytester, report: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--sslrobust-model=random-resnet18",
        "--sslrobust-max-images=6",
        f"--sslrobust-report={report}",
        f"--sslrobust-cache-dir={pytester.path / 'cache'}",
        "-p",
        "no:randomly",
        *extra,
    )


def test_smaller_runs_never_replace_a_complete_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / "out" / "report.html"
    _run(pytester, report).assert_outcomes(passed=3)
    complete = report.read_text()
    assert "sslrobust-coverage executed=3" in complete

    for looking in (["--collect-only"], ["--fixtures"]):
        _run(pytester, report, *looking)
        assert report.read_text() == complete

    result = _run(pytester, report, "-k", "two")
    result.assert_outcomes(passed=1, deselected=2)
    assert report.read_text() == complete
    partial = report.with_name("report.partial.html")
    assert "sslrobust-coverage executed=1" in partial.read_text()
    result.stdout.fnmatch_lines([f"*report of this run (1 tests) written to {partial}*kept*"])

    _run(pytester, report).assert_outcomes(passed=3)  # a full run replaces it again
    assert "sslrobust-coverage executed=3" in report.read_text()


def test_a_run_that_fails_at_setup_writes_no_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / "report.html"
    report.write_text("the last good report")
    result = pytester.runpytest_subprocess(
        "--sslrobust-model=random-resnet18",
        f"--sslrobust-data=imagefolder:{pytester.path}",  # no images there: setup fails
        f"--sslrobust-report={report}",
        "-k",
        "one",
    )
    assert result.ret != 0
    assert report.read_text() == "the last good report"
    result.stdout.fnmatch_lines(["*no test ran to the end, so the report was not written*"])
