"""Study 4: how much a readout leans on backgrounds.

After Ryali et al. ("Characterizing and improving the robustness of self-supervised learning
through background augmentations") and ImageNet-9 (Xiao et al.; REFERENCE section 1): the
object is kept and its background replaced by one from an image of the same class
(mixed_same) or of a random class (mixed_rand). BG-Gap = accuracy(mixed_same) -
accuracy(mixed_rand): how much of the accuracy the background was carrying.

The bundled data makes the effect controllable: in ``train``/``test`` a digit's background is
drawn independently of its class, in ``biased-train``/``biased-test`` 90% of a class's
images sit on that class's photograph. A probe fitted on the unbiased split should show no
gap; a probe fitted on the biased split can take the shortcut, and how far it does is a
property of the representation (does it make the background easier to read than the
digit?). Thresholds were measured on the embedded default and carry a margin. Both
per-model contracts measure robustness and fail on random weights
(tests/test_example_suite_teeth.py); the last one compares paradigms.
"""

from __future__ import annotations

import pytest

from pytest_sslrobust import assert_balanced_accuracy_above, assert_bg_gap_below
from pytest_sslrobust.metrics import accuracy

SWAPS = ("original", "only_fg", "mixed_same", "mixed_rand")
MIXED_RAND_FLOOR = 0.5
BIASED_GAP_LIMIT = 0.3
# The bundled pair (as specs: the shipped weights, not an alias pointed at another file) on
# which a paradigm finding is known not to reproduce, reported as an expected failure with
# the measured numbers; on any other pair the contract is a contract.
EMBEDDED_DEFAULT = {"bundled-simclr", "bundled-supervised"}


def _predictions(sslrobust, split, train_split):
    """The clean set (labels, ids) and the probe's predictions under each swap."""
    clean = sslrobust.features("original", split=split)
    predictions = {
        variant: sslrobust.predictions(
            variant, split=split, readout="linear-probe", train_split=train_split
        )
        for variant in SWAPS
    }
    return clean, predictions


def _accuracies(clean, predictions):
    return {
        variant: accuracy(predicted, clean.labels) for variant, predicted in predictions.items()
    }


def _require_masks(sslrobust):
    if not sslrobust.dataset.has_masks:
        pytest.skip(f"{sslrobust.dataset.spec} has no foreground masks to swap backgrounds with")


def test_unbiased_probe_ignores_backgrounds(sslrobust):
    """Probe fitted on uniform backgrounds: swapping backgrounds must not matter, and the
    digit must stay readable on a random class's background.

    Measured (embedded default): BG-Gap 0.015 (bundled-simclr), 0.024 (bundled-vicreg),
    0.015 (bundled-supervised), limit 0.05; balanced accuracy on mixed_rand 0.920 [0.895,
    0.942], 0.941 [0.920, 0.959], 0.855 [0.825, 0.883], floor 0.5 (MIXED_RAND_FLOOR). Random
    weights have no gap either (0.006: they read nothing) but fail the floor. ImageNet-9
    reports BG-Gaps of 10-15 points for ImageNet-trained ResNet-50s, whose training data
    does correlate backgrounds with classes.
    """
    _require_masks(sslrobust)
    clean, predictions = _predictions(sslrobust, "test", "train")
    sslrobust.report.background(_accuracies(clean, predictions))
    # Predictions and labels (not two accuracies): the result holds each image's correctness
    # under both swaps, so a baseline comparison decides it paired.
    assert_bg_gap_below(
        predictions["mixed_same"],
        predictions["mixed_rand"],
        0.05,
        labels=clean,
        label="unbiased probe",
    )
    # No gap is easy for a representation that reads nothing; the digit must also stay
    # readable on a random class's background.
    assert_balanced_accuracy_above(
        predictions["mixed_rand"],
        MIXED_RAND_FLOOR,
        labels=clean,
        label="unbiased probe on mixed_rand",
        confidence=0.95,
    )


def test_biased_probe_background_shortcut(sslrobust):
    """Probe fitted where backgrounds predict the class (biased-train), scored on
    biased-test: the gap shows how readily the representation offers the shortcut.

    Measured (embedded default): bundled-simclr 0.078 [0.052, 0.104], bundled-vicreg 0.052
    [0.030, 0.074], bundled-supervised 0.143 [0.111, 0.174]; random weights 0.687 (their
    probe reads the photograph, not the digit). Limit 0.3 on the interval's upper end
    (BIASED_GAP_LIMIT; margin 0.13).
    """
    _require_masks(sslrobust)
    if "biased-train" not in sslrobust.dataset.splits:
        pytest.skip(f"{sslrobust.dataset.spec} has no class-correlated split to fit on")
    clean, predictions = _predictions(sslrobust, "biased-test", "biased-train")
    sslrobust.report.background(_accuracies(clean, predictions), condition="biased probe")
    assert_bg_gap_below(
        predictions["mixed_same"],
        predictions["mixed_rand"],
        BIASED_GAP_LIMIT,
        labels=clean,
        label="biased probe",
        confidence=0.95,
    )


def test_contrastive_offers_the_background_shortcut_more(sslrobust_models):
    """Ryali et al.'s observation as a contract: with class-correlated backgrounds, a probe
    on the contrastive representation leans on them more than one on the supervised
    representation (larger biased BG-Gap). A comparison: skips unless the run has both
    paradigms.

    Measured (embedded default): 0.078 vs 0.143, the opposite, so on the embedded pair the
    test is an expected failure (xfail) that prints the numbers: the bundled contrastive
    model trained on views pasted on random photographs, Ryali et al.'s own remedy
    (docs/bundled-models.md, findings). On any other pair it is a contract.
    """
    contrastive, supervised = sslrobust_models.pair("contrastive", "supervised")
    if "biased-train" not in contrastive.dataset.splits:
        pytest.skip(f"{contrastive.dataset.spec} has no biased-train/biased-test split")
    gaps = {}
    for facade in (contrastive, supervised):
        _require_masks(facade)
        accuracy_by_swap = _accuracies(*_predictions(facade, "biased-test", "biased-train"))
        gaps[facade.backbone.name] = accuracy_by_swap["mixed_same"] - accuracy_by_swap["mixed_rand"]
    c, s = gaps[contrastive.backbone.name], gaps[supervised.backbone.name]
    if c <= s and {contrastive.backbone.spec, supervised.backbone.spec} <= EMBEDDED_DEFAULT:
        pytest.xfail(
            f"Ryali et al.'s observation does not reproduce on the embedded default: biased "
            f"BG-Gap contrastive {c:.3f}, supervised {s:.3f} (docs/bundled-models.md, findings)"
        )
    assert c > s, f"biased BG-Gap: contrastive {c:.3f} is not above supervised {s:.3f}"
