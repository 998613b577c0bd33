"""Clean features of the backbone under test: the baseline every robustness study compares to.

Runs offline on the embedded default (the bundled contrastive and supervised backbones on the
bundled textured digits, see pytest.ini) and, unchanged, on real backbones and data:
``pytest --sslrobust-model=dinov2 --sslrobust-data=imagefolder:... example_suites/``.
"""

from __future__ import annotations

import pytest
import torch

from pytest_sslrobust import assert_balanced_accuracy_above


def test_features_are_finite_and_informative(sslrobust):
    clean = sslrobust.features("original", split="test")
    assert clean.features.ndim == 2 and len(clean) == len(clean.labels)
    assert torch.isfinite(clean.features).all()
    # A collapsed representation (all images mapped alike) would make every later
    # robustness number meaningless, so the per-dimension spread must be non-trivial.
    assert clean.features.std(dim=0).mean() > 1e-3


def test_linear_probe_beats_chance_clearly(sslrobust):
    """A logistic-regression probe fitted on clean train features, scored on clean test.

    Threshold: 1.2 x chance, decided on the low end of the 95% interval. A broken
    extractor, a label shuffle or a preprocessing mismatch falls to chance. Measured on the
    bundled digits (10 classes): bundled-simclr 0.165 [0.133, 0.196] (the weak one, see
    docs/bundled-models.md), bundled-supervised 0.920 [0.897, 0.941], EfficientNet-Lite0
    (ImageNet features) 0.44. Real backbones on
    their own data score far higher; gate those with a baseline (docs/gating-in-ci.md).
    """
    test = sslrobust.features("original", split="test")  # its labels and protocol are recorded
    predictions = sslrobust.predictions("original", readout="linear-probe")
    chance = 1 / len(sslrobust.dataset.classes)
    assert_balanced_accuracy_above(predictions, 1.2 * chance, labels=test, confidence=0.95)


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
