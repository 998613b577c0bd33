"""Accuracy contracts on ``sslrobust.predictions()`` record the protocol that made them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_sslrobust import assert_accuracy_above
from pytest_sslrobust.evaluate import Predictions


def test_predictions_carry_their_protocol_through_numpy_and_contracts() -> None:
    protocol = {"data": "bundled:textured-digits", "seed": 3, "readout": {"readout": "knn"}}
    predictions = Predictions.of(np.array([0, 1, 1, 2]), protocol)
    labels = np.array([0, 1, 2, 2])
    assert (predictions == labels).sum() == 3  # still an array of class indices
    assert predictions[1:].protocol == protocol
    recorded = assert_accuracy_above(predictions, labels, 0.5)
    assert dict(recorded.protocol) == protocol
    bare = assert_accuracy_above(np.asarray(predictions), labels, 0.5)
    assert dict(bare.protocol) == {}


def test_predictions_in_a_run_record_seed_subset_and_readout(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_sslrobust import assert_accuracy_above

        def test_accuracy(sslrobust):
            predicted = sslrobust.predictions(readout="knn")
            labels = sslrobust.features("original", split="test").labels.numpy()
            assert_accuracy_above(predicted, labels, 0.0)
        """
    )
    out = pytester.path / "results.json"
    result = pytester.runpytest_subprocess(
        "--sslrobust-model=random-resnet18",
        "--sslrobust-max-images=20",
        "--sslrobust-seed=5",
        f"--sslrobust-cache-dir={pytester.path / 'cache'}",
        f"--sslrobust-json={out}",
    )
    result.assert_outcomes(passed=1)
    text = out.read_text()
    assert json.loads(text)
    for fragment in ('"seed": 5', '"readout": "knn"', '"subset"', '"backbone_fingerprint"'):
        assert fragment in text
