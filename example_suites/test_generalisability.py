"""Study 2: how well representations transfer, how sure they are, and what they look at.

After Tendle & Hasan ("A study of the generalizability of self-supervised representations";
REFERENCE section 1): linear probes on a target close to the backbone's training
distribution (the run's data: for the embedded default, the bundled digits the bundled
backbones were trained on) and on one far from it (bundled:textured-shapes: other objects,
other photographs, another task); the probes' prediction confidence; how invariant the
features are to the augmentations SSL trains with; and, as the paper does with the last
convolutional layer's attribution, where on the image the evidence sits (Grad-CAM mass on
the object's mask).

Thresholds were measured on the embedded default (seed 0) and carry a margin; the comments
give the measured values.
"""

from __future__ import annotations

import pytest
import torch

from pytest_sslrobust import assert_balanced_accuracy_above, assert_foreground_focus_above
from pytest_sslrobust.metrics import invariance

FAR = "bundled:textured-shapes"


def _confidence(sslrobust):
    """Mean max-softmax probability of the linear probe on the clean test split."""
    head, _ = sslrobust.readout("linear-probe").head_module()
    test = sslrobust.features("original", split="test")
    with torch.no_grad():
        logits = head(test.features.to(next(head.parameters()).device).float())
    return float(torch.softmax(logits, dim=1).max(dim=1).values.mean())


def test_near_target(sslrobust):
    """The probe on the run's data.

    Measured (embedded default): balanced accuracy bundled-simclr ~0.7, bundled-supervised
    ~0.9 (it saw these labels), confidence 0.6-0.9. Contract 0.5 at 95% confidence (chance
    0.1). Published: SSL ResNet-50s reach 70-75% ImageNet linear accuracy, supervised 76%.
    """
    test = sslrobust.features("original", split="test")
    predictions = sslrobust.predictions("original", readout="linear-probe")
    sslrobust.report.reliability(
        *_logits_and_labels(sslrobust), confidence_by_variant={"near": _confidence(sslrobust)}
    )
    assert_balanced_accuracy_above(predictions, 0.5, labels=test, label="near", confidence=0.95)


@pytest.mark.sslrobust(data=FAR)
def test_far_target(sslrobust):
    """The probe on a far target: shapes on unseen photographs (4 classes, chance 0.25).

    Measured (embedded default): both models well above chance; the paper finds SSL
    representations transfer at least as well as supervised ones to far targets, the
    supervised ones being more confident. Contract 0.4 at 95% confidence.
    """
    test = sslrobust.features("original", split="test")
    predictions = sslrobust.predictions("original", readout="linear-probe")
    assert_balanced_accuracy_above(predictions, 0.4, labels=test, label="far", confidence=0.95)
    assert 0.25 <= _confidence(sslrobust) <= 1.0


def test_invariance_to_training_augmentations(sslrobust):
    """Mean cosine similarity between each test image's features and those of a
    SimCLR-style view of it (crop, colour jitter, greyscale: the ``augment`` variant).

    Measured (embedded default): see docs/bundled-models.md; the contrastive model, trained
    to match such views, is the more invariant. Contract: above 0.5 for every model.
    """
    clean = sslrobust.features("original", split="test")
    view = sslrobust.features("augment", split="test")
    score = invariance(clean.features, view.features)
    assert score > 0.5, f"invariance {score:.4f} to augmented views is below 0.5"


def test_evidence_sits_on_the_object(sslrobust):
    """Grad-CAM (through the probe, for the true class) share of mass on the digit's mask.

    Measured (embedded default): well above the mask's area fraction (shown as chance in
    the table). Contract: 1.2 x chance is not enough to be sure; the limit is an absolute
    0.35 at 95% confidence, about 1.3 x the digits' mean area fraction.
    """
    if not sslrobust.dataset.has_masks:
        pytest.skip(f"{sslrobust.dataset.spec} has no foreground masks")
    maps = sslrobust.attribution("original", target="linear-probe", images=64)
    sslrobust.report.attribution(maps)
    assert_foreground_focus_above(maps, 0.35, confidence=0.95)


def _logits_and_labels(sslrobust):
    head, _ = sslrobust.readout("linear-probe").head_module()
    test = sslrobust.features("original", split="test")
    with torch.no_grad():
        logits = head(test.features.to(next(head.parameters()).device).float())
    return logits.cpu(), test.labels
