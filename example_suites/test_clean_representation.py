"""Clean features of the backbone under test: the baseline every robustness study compares to.

Runs offline on the embedded default (EfficientNet-Lite0 on the bundled textured digits) and,
unchanged, on real backbones and data: ``pytest --sslrobust-model=dinov2 example_suites/``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def test_features_are_finite_and_informative(sslrobust):
    clean = sslrobust.features("original", split="test")
    assert clean.features.ndim == 2 and len(clean) == len(clean.labels)
    assert torch.isfinite(clean.features).all()
    # A collapsed representation (all images mapped alike) would make every later
    # robustness number meaningless, so the per-dimension spread must be non-trivial.
    assert clean.features.std(dim=0).mean() > 1e-3


def test_linear_probe_beats_chance_clearly(sslrobust):
    """A logistic-regression probe on clean train features, scored on clean test features.

    Threshold: the embedded default measures ~0.43 balanced accuracy on the bundled digits
    (10 classes, chance 0.1; ImageNet features are not made for digits on photographs);
    0.25 leaves a margin while still catching a broken extractor, label shuffle or
    preprocessing mismatch (those fall to chance). Real backbones on their own data score
    far higher.
    """
    train = sslrobust.features("original", split="train")
    test = sslrobust.features("original", split="test")
    scaler = StandardScaler().fit(train.features.cpu().numpy())
    probe = LogisticRegression(max_iter=2000, C=0.1)
    probe.fit(scaler.transform(train.features.cpu().numpy()), train.labels.numpy())
    predicted = probe.predict(scaler.transform(test.features.cpu().numpy()))
    per_class = [
        np.mean(predicted[test.labels.numpy() == c] == c) for c in np.unique(test.labels.numpy())
    ]
    assert np.mean(per_class) > 0.25


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
