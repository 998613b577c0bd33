"""attack_result: robust accuracy and feature drift on the store's items, cached per image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from store_helpers import small_store

from pytest_sslrobust.attacks import attack_result
from pytest_sslrobust.attribution.sets import positions
from pytest_sslrobust.evaluate import Readout

N_IMAGES = 40
SHOWN = 8
EPS = (0.0, 2 / 255)
STEPS = 3


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("attack-cache")


def _store(cache_dir, backbone=None, dataset=None):
    return small_store(cache_dir, backbone, dataset, max_images=N_IMAGES)


@pytest.fixture(scope="module")
def store(cache_dir):
    return _store(cache_dir)


@pytest.fixture(scope="module")
def probe(store):
    return Readout(store, "linear-probe")


@pytest.fixture(scope="module")
def robust(store, probe):
    return attack_result(store, probe, EPS, images=SHOWN, steps=STEPS)


@pytest.fixture(scope="module")
def drift(store):
    return attack_result(store, None, EPS, metric="feature_drift", images=SHOWN, steps=STEPS)


def test_robust_accuracy_per_budget(robust):
    assert robust.metric == "robust_accuracy"
    assert robust.eps == pytest.approx(EPS)
    assert robust.n == SHOWN and robust.steps == STEPS
    assert robust.attack == "pgd" and robust.norm == "linf"
    assert robust.per_sample.shape == (len(EPS), SHOWN)
    assert set(np.unique(robust.per_sample)) <= {0.0, 1.0}
    assert robust.values[0] == robust.clean
    np.testing.assert_allclose(robust.values, robust.per_sample.mean(axis=1))
    # An image counts as robust only when it is also right on the clean image.
    assert (robust.per_sample[1] <= robust.per_sample[0]).all()


def test_clean_accuracy_agrees_with_the_readout(store, probe, robust):
    clean = store.get("original", split="test")
    picked = positions(N_IMAGES, SHOWN)
    right = probe.predict(clean)[picked] == clean.labels.numpy()[picked]
    np.testing.assert_array_equal(robust.per_sample[0], right.astype(np.float64))


def test_warm_store_attacks_nothing(cache_dir, store, robust, drift, monkeypatch):
    import pytest_sslrobust.attacks as attacks_module

    def refuse(*args, **kwargs):
        raise AssertionError("the attack ran again on a warm cache")

    monkeypatch.setattr(attacks_module, "robust_accuracy", refuse)
    monkeypatch.setattr(attacks_module, "feature_drift", refuse)
    warm = _store(cache_dir, backbone=store.backbone, dataset=store.dataset)
    again = attack_result(warm, Readout(warm, "linear-probe"), EPS, images=SHOWN, steps=STEPS)
    assert again == robust
    np.testing.assert_array_equal(again.per_sample, robust.per_sample)
    drift_again = attack_result(warm, None, EPS, metric="feature_drift", images=SHOWN, steps=STEPS)
    assert drift_again == drift
    np.testing.assert_array_equal(drift_again.per_sample, drift.per_sample)
    assert warm.cache.stats["disk_hits"] >= 2
    assert warm.cache.stats.get("writes", 0) == 0


@pytest.mark.parametrize(
    "change",
    [{"steps": STEPS + 1}, {"eps": (0.0, 4 / 255)}, {"images": 4}, {"attack": "fgsm"}],
    ids=["steps", "eps", "images", "attack"],
)
def test_other_settings_are_not_read_from_the_cache(store, probe, robust, monkeypatch, change):
    import pytest_sslrobust.attacks as attacks_module

    class Attacked(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Attacked

    monkeypatch.setattr(attacks_module, "robust_accuracy", refuse)
    settings = {"images": SHOWN, "steps": STEPS, "eps": EPS, **change}
    eps = settings.pop("eps")
    with pytest.raises(Attacked):
        attack_result(store, probe, eps, **settings)
    # the cached setting itself is still served without attacking
    assert attack_result(store, probe, EPS, images=SHOWN, steps=STEPS) == robust


def test_feature_drift_needs_no_readout(drift):
    assert drift.metric == "feature_drift"
    assert drift.per_sample.shape == (len(EPS), SHOWN)
    assert drift.values[0] == 0.0
    np.testing.assert_array_equal(drift.per_sample[0], np.zeros(SHOWN))
    assert drift.values[1] > 0.0
    assert (drift.per_sample >= 0).all()


def test_unknown_metric_is_refused(store, probe):
    with pytest.raises(ValueError, match="unknown attack metric 'accuracy'"):
        attack_result(store, probe, EPS, metric="accuracy", images=SHOWN)


def test_robust_accuracy_needs_a_readout(store):
    with pytest.raises(ValueError, match="needs a readout"):
        attack_result(store, None, EPS, images=SHOWN)


def test_knn_readout_cannot_be_attacked(store):
    with pytest.raises(ValueError, match="linear-probe"):
        attack_result(store, Readout(store, "knn"), EPS, images=SHOWN)


def test_readout_without_an_output_for_a_label_is_refused(store, probe):
    """A readout whose classes lack a test label must not silently score another class.

    attribution_set refuses this case; attack_result maps the missing label onto the
    neighbouring class's column (np.searchsorted) and counts hits on the wrong class.
    """
    layer, _ = probe.head_module()

    from pytest_sslrobust.evaluate import Readout

    class MissingClass(Readout):
        def __init__(self):
            super().__init__(store, "linear-probe")

        def head_module(self):
            # Columns for classes 1..9 only: label 0 has no output.
            return torch.nn.Linear(layer.in_features, 9), np.arange(1, 10)

    picked = torch.as_tensor(positions(N_IMAGES, SHOWN))
    assert 0 in set(store.get("original", split="test").labels[picked].tolist())
    with pytest.raises(ValueError):
        attack_result(store, MissingClass(), (0.0,), images=SHOWN, steps=1)
