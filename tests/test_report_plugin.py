"""--sslrobust-report end to end: tests hand data to the report, one file comes out."""

from __future__ import annotations

import re

import pytest

SUITE = """
import numpy as np
import pytest
from pytest_sslrobust import assert_cka_between
from pytest_sslrobust.metrics import linear_probe_cv, similarity_matrix


def test_masking(sslrobust):
    names = ["original", "center", "border"]
    feats = {n: sslrobust.features(n) for n in names}
    sslrobust.report.similarity(similarity_matrix({n: f.features for n, f in feats.items()}))
    sslrobust.report.embedding(feats, fraction=0.5)
    sslrobust.report.preview(["center", "fog-s3"])
    assert_cka_between(feats["original"], feats["center"], 0.0, 1.0, label="<script>x</script>")


@pytest.mark.sslrobust(corruptions="noise")
def test_corruptions(sslrobust):
    errors = sslrobust.corruption_errors(readout="knn")
    sslrobust.report.corruption(errors)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_report_collects_every_test(pytester: pytest.Pytester, workers: list[str]):
    pytester.makepyfile(test_suite=SUITE)
    out = pytester.path / "out" / "report.html"
    result = pytester.runpytest_subprocess(
        "--sslrobust-model=random-resnet18",
        "--sslrobust-max-images=20",
        f"--sslrobust-report={out}",
        "-p",
        "no:randomly",
        *workers,
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*report written to {out}*"])
    html = out.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    for heading in ("Contracts", "Corruption robustness", "Missing information", "Example grid"):
        assert heading in html, heading
    assert "random-resnet18" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    assert "gaussian_noise" in html and "PCA" in html
    assert not re.search(r"(src|href)=\"https?://", html)
    assert len(html) < 5_000_000
