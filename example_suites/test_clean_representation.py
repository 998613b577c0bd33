"""Clean features of the backbone under test: the baseline every robustness study compares to.

Runs offline on the embedded default (the bundled contrastive, redundancy-reduction and
supervised backbones on the bundled textured digits, see pytest.ini) and, unchanged, on real
backbones and data:
``pytest --sslrobust-model=dinov2 --sslrobust-data=imagefolder:... example_suites/``.

Structural contracts (they pass on any working extractor, random weights included, and
catch a broken pipeline, not a weak representation): finite, non-collapsed features; the
preview grid. The probe contract measures quality and fails on random weights
(tests/test_example_suite_teeth.py).
"""

from __future__ import annotations

import pytest
import torch

from pytest_sslrobust import assert_balanced_accuracy_above

PROBE_FLOOR = 0.5


def test_features_are_finite_and_informative(sslrobust):
    clean = sslrobust.features("original", split="test")
    assert clean.features.ndim == 2 and len(clean) == len(clean.labels)
    assert torch.isfinite(clean.features).all()
    # A collapsed representation (all images mapped alike) would make every later
    # robustness number meaningless, so the per-dimension spread must be non-trivial.
    assert clean.features.std(dim=0).mean() > 1e-3


def test_linear_probe_beats_chance_clearly(sslrobust):
    """A logistic-regression probe fitted on clean train features, scored on clean test.

    Threshold: balanced accuracy 0.5 (PROBE_FLOOR), decided on the low end of the 95%
    interval. Measured on the bundled digits (10 classes): bundled-simclr 0.965 [0.950,
    0.980], bundled-vicreg 0.972 [0.957, 0.985], bundled-supervised 0.920 [0.897, 0.941]
    (margin 0.40 on the weakest low end); random weights 0.144 [0.117, 0.175] fail.
    A broken extractor, a label shuffle or a preprocessing mismatch falls to chance. Real
    backbones on their own data score far higher; gate those with a baseline
    (docs/gating-in-ci.md).
    """
    test = sslrobust.features("original", split="test")  # its labels and protocol are recorded
    predictions = sslrobust.predictions("original", readout="linear-probe")
    assert_balanced_accuracy_above(predictions, PROBE_FLOOR, labels=test, confidence=0.95)


def test_preview_of_the_alterations(sslrobust):
    """What the model sees: one test image clean and altered, for the report's grid."""
    masked = ["foreground"] if sslrobust.dataset.has_masks or sslrobust.settings.segmenter else []
    sslrobust.report.preview(["gaussian_noise-s3", "fog-s3", "center", "border", *masked])
    grid, ids = sslrobust.preview(["gaussian_noise-s3", "center"])
    assert ids == ["original", "gaussian_noise-s3", "center-r0.50"] and grid.ndim == 3


def test_classifier_head_sees_the_dataset_classes(sslrobust):
    """Only meaningful when the data's labels are the head's classes (ImageNet folders)."""
    from pytest_sslrobust.evaluate import head_applies
    from pytest_sslrobust.metrics import accuracy

    if not head_applies(sslrobust.backbone, sslrobust.dataset):
        pytest.skip(
            f"labels of {sslrobust.dataset.spec} are not the classes of "
            f"{sslrobust.backbone.name}'s head ({sslrobust.backbone.label_space or 'none'})"
        )
    predictions = sslrobust.predictions("original", split="test", readout="head")
    assert accuracy(predictions, sslrobust.features("original").labels) > 0.5
