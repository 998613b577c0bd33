"""Readouts on cached features and corruption error tables through the facade."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_sslrobust.evaluate import Readout, corruption_errors
from pytest_sslrobust.metrics import ProtocolMismatch, mce
from pytest_sslrobust.variants import COMMON


@pytest.fixture(scope="module")
def store():
    from pytest_sslrobust.backbones.loading import load_backbone
    from pytest_sslrobust.data.bundled import load_bundled
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

    return FeatureStore(
        load_backbone("random-resnet18"),
        load_bundled("textured-digits"),
        FeatureCache(None),
        max_images=30,
    )


def test_auto_readout_is_a_probe_when_labels_are_not_the_head_classes(store):
    readout = Readout(store, "auto")
    assert readout.kind == "linear-probe"
    predictions = readout.predict(store.get("original", split="test"))
    assert predictions.shape == (30,) and set(predictions) <= set(range(10))
    with pytest.raises(ValueError, match="readout 'head' needs"):
        Readout(store, "head")
    with pytest.raises(ValueError, match="Expected readout"):
        Readout(store, "svm")


def test_error_table_records_protocol_and_refuses_alexnet_on_the_fly(store):
    table = corruption_errors(store, ["gaussian_noise", "contrast"], readout=Readout(store, "knn"))
    assert set(table.errors) == {"gaussian_noise", "contrast"}
    assert table.n == 30 and table.readout == "knn"
    assert table.protocol["source"] == "on-the-fly"
    assert table.protocol["generator"].startswith("imagecorruptions")
    assert table.protocol["readout_k"] == 20 and table.protocol["readout"] == "knn"
    clean = store.get("original")
    readout = Readout(store, "knn")
    expected = np.mean(readout.predict(store.get("contrast-s5")) != clean.labels.numpy())
    assert table.error("contrast", 5) == pytest.approx(expected)
    assert 0 <= table.clean_error <= 1
    full = corruption_errors(store, COMMON, readout=readout)
    with pytest.raises(ProtocolMismatch, match="released"):
        mce(full)
    assert mce(full, reference=full) == pytest.approx(100.0)


def test_severities_must_be_complete(store):
    with pytest.raises(ValueError, match="severities 1..5"):
        corruption_errors(store, ["fog"], (1, 2))


def test_facade_sweep_and_readout_sharing(pytester):
    pytester.makepyfile(
        """
        import pytest
        from pytest_sslrobust.metrics import mce

        @pytest.mark.sslrobust(corruptions="noise")
        def test_table(sslrobust):
            table = sslrobust.corruption_errors(readout="linear-probe")
            assert list(table.errors) == ["gaussian_noise", "shot_noise", "impulse_noise"]
            assert sslrobust.readout("linear-probe") is sslrobust.readout("linear-probe")
            preds = sslrobust.predictions("original", readout="linear-probe")
            assert len(preds) == table.n
        """
    )
    result = pytester.runpytest_subprocess(
        "--sslrobust-model=random-resnet18", "--sslrobust-max-images=20", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=1)


def test_probe_predictions_are_cached_across_sessions(tmp_path, monkeypatch):
    from pytest_sslrobust.backbones.loading import load_backbone
    from pytest_sslrobust.data.bundled import load_bundled
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore
    from pytest_sslrobust.metrics import readouts

    backbone, dataset = load_backbone("random-resnet18"), load_bundled("textured-digits")

    def session():
        store = FeatureStore(backbone, dataset, FeatureCache(tmp_path), max_images=30)
        return Readout(store, "linear-probe").predict(store.get("original"))

    first = session()
    monkeypatch.setattr(readouts, "fit_linear_probe", lambda *a, **k: pytest.fail("refitted"))
    assert np.array_equal(session(), first)
