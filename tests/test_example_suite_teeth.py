"""The example suites' contracts have teeth: run on deliberately broken backbones of the
bundled architecture (``pytest_sslrobust.backbones.controls``), the contracts that measure
representation quality or robustness fail, and only the structural ones pass.

One subprocess runs every example suite on both controls (random weights; ``bundled-simclr``
with a block zeroed) with the suites' own settings on a class-stratified subset of 160
images per split and a cache of its own, and the outcome
of every contract is compared with the classification below, which the suites' docstrings
and ``docs/bundled-models.md`` ("Teeth") state too. A contract that starts passing on random
weights, or a structural one that starts failing, fails this test and names itself.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_IMAGES = 160
CONTROLS = {
    "random": "pytest_sslrobust.backbones.controls:random_init",
    "zeroed": "pytest_sslrobust.backbones.controls:zeroed_block",
}

# Contracts that pass on any working extractor, trained or not (the suites say so).
STRUCTURAL = {
    "test_features_are_finite_and_informative",
    "test_preview_of_the_alterations",
    "test_feature_drift_grows_with_budget",
}
# Contracts between a contrastive and a supervised model of the run: a control has neither
# paradigm, so they skip (saying so); their teeth are the findings table's.
COMPARISONS = {
    "test_label_free_focus_of_both_paradigms",
    "test_contrastive_offers_the_background_shortcut_more",
    "test_contrastive_readout_is_more_susceptible",
}
# Needs a classifier head whose classes are the data's labels; the controls have none.
HEAD_ONLY = {"test_classifier_head_sees_the_dataset_classes"}
# Everything else measures quality or robustness and must fail on random weights.
QUALITY = {
    "test_linear_probe_beats_chance_clearly",
    "test_mce_against_the_reference",
    "test_worst_corruption_is_bounded",
    "test_corruptions_keep_the_focus",
    "test_unbiased_probe_ignores_backgrounds",
    "test_biased_probe_background_shortcut",
    "test_probe_table",
    "test_center_keeps_more_of_the_representation_than_border",
    "test_variants_form_their_own_neighbourhoods",
    "test_robust_accuracy_curve",
    "test_near_target",
    "test_far_target",
    "test_invariance_to_training_augmentations",
    "test_evidence_sits_on_the_object",
}
# What zeroing one block's residual branch of the trained contrastive model leaves passing:
# measured, and held so that a change is noticed (docs/bundled-models.md, "Teeth"). A residual
# network survives the loss of one block's branch (the shortcut carries the signal on), so
# most of the representation stays; the corruption contracts catch what it lost.
ZEROED_FAILS = {"test_corruptions_keep_the_focus", "test_worst_corruption_is_bounded"}
ZEROED_PASSES = QUALITY - ZEROED_FAILS


def _outcome(case: ET.Element) -> str:
    tags = {child.tag for child in case}
    if "error" in tags:
        return "error"
    if "failure" in tags:
        return "failed"
    if "skipped" in tags:
        return "skipped"
    return "passed"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """``{control: {contract: outcome}}`` of one run of the example suites on both controls."""
    where = tmp_path_factory.mktemp("teeth")
    junit = where / "junit.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "example_suites/",
            f"--sslrobust-model={CONTROLS['random']},{CONTROLS['zeroed']}",
            # A class-stratified subset keeps this under a few minutes on two cores; the
            # full-size outcome is recorded in docs/bundled-models.md ("Teeth").
            f"--sslrobust-max-images={MAX_IMAGES}",
            f"--sslrobust-cache-dir={where / 'cache'}",
            f"--sslrobust-report={where / 'report.html'}",
            f"--junitxml={junit}",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rfs",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 1, f"exit code {done.returncode} (1: contracts failed):\n{tail}"
    found: dict[str, dict[str, str]] = {name: {} for name in CONTROLS}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name") or ""
        contract, _, param = name.partition("[")
        control = next((c for c, spec in CONTROLS.items() if spec.split(":")[1] in param), None)
        assert control is not None or not param, f"a test of no control: {name}"
        for each in [control] if control else list(CONTROLS):
            assert contract not in found[each], f"{contract} ran twice for {each}"
            found[each][contract] = _outcome(case)
    print({name: sorted(result.items()) for name, result in found.items()})
    return found


def test_every_contract_is_classified(outcomes: dict[str, dict[str, str]]) -> None:
    classified = STRUCTURAL | COMPARISONS | HEAD_ONLY | QUALITY
    assert set(outcomes["random"]) == classified, (
        f"unclassified: {sorted(set(outcomes['random']) - classified)}; "
        f"gone: {sorted(classified - set(outcomes['random']))}"
    )


def test_random_weights_fail_every_quality_contract(outcomes: dict[str, dict[str, str]]) -> None:
    random = outcomes["random"]
    errors = {name: outcome for name, outcome in random.items() if outcome == "error"}
    assert not errors, f"errors, not contract failures: {errors}"
    passing = sorted(name for name in QUALITY if random[name] != "failed")
    assert not passing, f"quality contracts a random network does not fail: {passing}"
    assert all(random[name] == "passed" for name in STRUCTURAL), random
    assert all(random[name] == "skipped" for name in COMPARISONS | HEAD_ONLY), random


def test_a_zeroed_block_fails_what_was_measured(outcomes: dict[str, dict[str, str]]) -> None:
    zeroed = outcomes["zeroed"]
    assert all(zeroed[name] == "failed" for name in ZEROED_FAILS), zeroed
    passing = {name for name in QUALITY if zeroed[name] == "passed"}
    assert passing == ZEROED_PASSES, (
        f"quality contracts the zeroed-block model passes: {sorted(passing)}; "
        f"measured: {sorted(ZEROED_PASSES)}"
    )
    assert all(zeroed[name] == "passed" for name in STRUCTURAL), zeroed
