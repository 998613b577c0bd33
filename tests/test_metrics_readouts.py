"""Linear probes, weighted kNN, accuracy and calibration against independent references."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sslrobust.metrics.readouts import (
    LinearProbe,
    ProbeResult,
    accuracy,
    balanced_accuracy,
    confidence,
    expected_calibration_error,
    fit_linear_probe,
    knn_accuracy,
    knn_classify,
    linear_probe_cv,
    prediction_confidence,
    reliability_diagram,
)


def mixture(
    n: int, d: int, classes: int, spread: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture: one random centre per class (scaled by ``spread``), unit noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * spread
    y = np.arange(n) % classes
    rng.shuffle(y)
    return centres[y] + rng.normal(size=(n, d)), y


# --- linear probe under cross-validation ---------------------------------------------------


def test_probe_cv_separable_problem_scores_one() -> None:
    x, y = mixture(300, 8, 3, spread=10.0, seed=0)
    result = linear_probe_cv(torch.as_tensor(x), y)
    assert result.mean == pytest.approx(1.0)
    assert result.std == pytest.approx(0.0)
    assert (result.metric, result.readout) == ("balanced_accuracy", "linear_probe")


def test_probe_cv_random_labels_score_chance() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 16))
    y = np.arange(600) % 10
    rng.shuffle(y)
    assert linear_probe_cv(x, y).mean == pytest.approx(0.1, abs=0.05)


@pytest.mark.parametrize("folds", [2, 3, 7])
def test_probe_cv_fold_count_and_population_std(folds: int) -> None:
    x, y = mixture(140, 6, 2, spread=0.7, seed=2)
    result = linear_probe_cv(x, y, folds=folds)
    assert len(result.folds) == folds
    assert result.mean == pytest.approx(np.mean(result.folds), abs=1e-15)
    assert result.std == pytest.approx(np.std(result.folds, ddof=0), abs=1e-15)
    assert result.params["folds"] == folds


def test_probe_cv_is_deterministic_given_seed() -> None:
    x, y = mixture(200, 6, 4, spread=0.6, seed=3)
    first = linear_probe_cv(x, y, seed=5)
    assert linear_probe_cv(x, y, seed=5).folds == first.folds
    assert linear_probe_cv(x, y, seed=6).folds != first.folds


def test_probe_cv_matches_sklearn_cross_validation() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = mixture(250, 10, 5, spread=0.5, seed=4)
    expected = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000))
        model.fit(x[train], y[train])
        expected.append(balanced_accuracy_score(y[test], model.predict(x[test])))
    assert linear_probe_cv(x, y, C=0.5).folds == pytest.approx(expected, abs=1e-12)


def test_probe_cv_torch_backend_close_to_sklearn() -> None:
    x, y = mixture(400, 12, 4, spread=0.5, seed=5)
    reference = linear_probe_cv(x, y)
    result = linear_probe_cv(x, y, backend="torch", device="cpu")
    assert result.params["backend"] == "torch"
    assert result.mean == pytest.approx(reference.mean, abs=0.01)


def test_probe_result_prints_like_the_study_table() -> None:
    result = ProbeResult(0.8567, 0.0123, (0.85, 0.86), "balanced_accuracy", "linear_probe", {})
    assert str(result) == "0.86 (0.01)"
    assert str(ProbeResult(0.5, 0.0, (0.5,), "balanced_accuracy", "linear_probe")) == "0.50 (0.00)"


# --- fitted probes: torch vs scikit-learn ----------------------------------------------------


def test_torch_probe_agrees_with_sklearn_on_ten_classes() -> None:
    x, y = mixture(2000, 32, 10, spread=0.35, seed=6)
    train_x, train_y, test_x, test_y = x[:1500], y[:1500], x[1500:], y[1500:]
    reference = fit_linear_probe(train_x, train_y, backend="sklearn")
    probe = fit_linear_probe(train_x, train_y, backend="torch", device="cpu")
    same = np.mean(probe.predict(test_x) == reference.predict(test_x))
    assert same >= 0.98
    assert abs(probe.score(test_x, test_y) - reference.score(test_x, test_y)) <= 0.01
    # the problem is neither trivial nor hopeless, so the agreement means something
    assert 0.3 < reference.score(test_x, test_y) < 0.95


def test_torch_probe_agrees_with_sklearn_on_two_classes() -> None:
    x, y = mixture(600, 8, 2, spread=0.3, seed=7)
    reference = fit_linear_probe(x[:400], y[:400], backend="sklearn", C=0.1)
    probe = fit_linear_probe(x[:400], y[:400], backend="torch", device="cpu", C=0.1)
    np.testing.assert_allclose(probe.weight.numpy(), reference.weight.numpy(), atol=1e-3)
    assert np.mean(probe.predict(x[400:]) == reference.predict(x[400:])) >= 0.98


def test_sklearn_probe_reproduces_sklearn_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = mixture(300, 5, 3, spread=0.8, seed=8)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    probe = fit_linear_probe(x, y)
    np.testing.assert_allclose(probe.predict_proba(x), model.predict_proba(x), atol=1e-12)


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
def test_probe_keeps_the_original_labels(backend: str) -> None:
    x, y = mixture(90, 4, 3, spread=5.0, seed=9)
    original = np.array([3, 7, 9])[y]
    probe = fit_linear_probe(x, original, backend=backend, device="cpu")
    assert isinstance(probe, LinearProbe)
    assert list(probe.classes) == [3, 7, 9]
    assert set(probe.predict(x)) <= {3, 7, 9}
    assert probe.score(x, original) == pytest.approx(1.0)
    assert probe.balanced_accuracy(x, original) == pytest.approx(1.0)
    np.testing.assert_allclose(probe.predict_proba(x).sum(axis=1), 1.0)


def test_torch_probe_warns_when_it_runs_out_of_iterations() -> None:
    from sklearn.exceptions import ConvergenceWarning

    x, y = mixture(200, 6, 3, spread=0.5, seed=16)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        probe = fit_linear_probe(x, y, backend="torch", device="cpu", max_iter=2)
    assert probe.params["n_iter"] == 2


# --- weighted kNN ---------------------------------------------------------------------------


def knn_reference(
    train: np.ndarray,
    train_y: np.ndarray,
    test: np.ndarray,
    k: int,
    temperature: float,
    classes: int,
) -> np.ndarray:
    """Brute force, one test row at a time: cosine top-k, exp(s / T) votes, argmax."""
    bank = train / np.linalg.norm(train, axis=1, keepdims=True)
    predictions = []
    for row in test:
        sims = bank @ (row / np.linalg.norm(row))
        nearest = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(classes)
        for i in nearest:
            votes[train_y[i]] += np.exp(sims[i] / temperature)
        predictions.append(int(np.argmax(votes)))
    return np.array(predictions)


@pytest.mark.parametrize(("k", "temperature"), [(1, 0.07), (5, 0.07), (20, 0.5), (50, 0.07)])
def test_knn_matches_brute_force(k: int, temperature: float) -> None:
    x, y = mixture(400, 16, 6, spread=0.4, seed=10)
    expected = knn_reference(x[:300], y[:300], x[300:], k, temperature, 6)
    got = knn_classify(x[:300], y[:300], x[300:], k=k, temperature=temperature)
    np.testing.assert_array_equal(got, expected)


def test_knn_blocks_give_the_same_predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_sslrobust.metrics import geometry

    x, y = mixture(300, 8, 4, spread=0.4, seed=11)
    whole = knn_classify(x[:200], y[:200], x[200:], k=7)
    monkeypatch.setattr(geometry, "_BLOCK_ENTRIES", 200 * 3)  # three test rows per block
    np.testing.assert_array_equal(knn_classify(x[:200], y[:200], x[200:], k=7), whole)


def test_knn_k1_on_training_data_returns_training_labels() -> None:
    x, y = mixture(200, 10, 5, spread=0.2, seed=12)
    np.testing.assert_array_equal(knn_classify(x, y, x, k=1), y)
    assert knn_accuracy(x, y, x, y, k=1) == 1.0


def test_knn_num_classes_widens_the_vote_table() -> None:
    x, y = mixture(60, 4, 3, spread=3.0, seed=13)
    got = knn_classify(x, y, x, k=3, num_classes=10)
    np.testing.assert_array_equal(got, knn_classify(x, y, x, k=3))


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(0.01, 100.0), seed=st.integers(0, 1000))
def test_knn_ignores_feature_norms(scale: float, seed: int) -> None:
    x, y = mixture(80, 6, 3, spread=0.5, seed=seed)
    rng = np.random.default_rng(seed)
    stretched = x * scale * rng.uniform(0.5, 2.0, size=(80, 1))
    np.testing.assert_array_equal(
        knn_classify(stretched[:60], y[:60], stretched[60:], k=5),
        knn_classify(x[:60], y[:60], x[60:], k=5),
    )


# --- confidence and calibration --------------------------------------------------------------


def ece_reference(probs: np.ndarray, y: np.ndarray, bins: int) -> float:
    """Guo et al.'s loop: bins (lo, hi], weight n_b / n, gap |acc_b - conf_b|."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


def calibrated(classes: int = 10, per_level: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Confidence levels c = 0.2, 0.4, ..., 1.0; at each exactly c * per_level are correct."""
    probs, y = [], []
    for level in range(1, 6):
        c = level / 5
        for i in range(per_level):
            row = np.full(classes, (1 - c) / (classes - 1))
            row[0] = c
            probs.append(row)
            y.append(0 if i < round(c * per_level) else 1)
    return np.array(probs), np.array(y)


def test_ece_of_a_calibrated_construction_is_zero() -> None:
    probs, y = calibrated()
    assert expected_calibration_error(probs, y, from_logits=False) == pytest.approx(0, abs=1e-12)
    diagram = reliability_diagram(probs, y, bins=5, from_logits=False)
    np.testing.assert_array_equal(diagram.counts, [10] * 5)
    np.testing.assert_allclose(diagram.accuracy, diagram.confidence, atol=1e-12)


def test_ece_of_confident_wrong_predictions_is_one() -> None:
    logits = np.zeros((50, 4))
    logits[:, 2] = 40.0
    assert expected_calibration_error(logits, np.zeros(50, dtype=int)) == pytest.approx(1.0)


@pytest.mark.parametrize("bins", [1, 10, 15])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_matches_loop_reference(bins: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(500, 7)) * 2
    y = rng.integers(0, 7, 500)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = ece_reference(probs, y, bins)
    assert expected_calibration_error(logits, y, bins=bins) == pytest.approx(expected, abs=1e-12)
    got = expected_calibration_error(probs, y, bins=bins, from_logits=False)
    assert got == pytest.approx(expected, abs=1e-12)


def test_reliability_diagram_bins_are_closed_on_the_right() -> None:
    probs = np.array([[0.5, 0.5], [0.75, 0.25], [1.0, 0.0]])
    diagram = reliability_diagram(probs, [0, 0, 0], bins=4, from_logits=False)
    np.testing.assert_array_equal(diagram.counts, [0, 1, 1, 1])
    np.testing.assert_allclose(diagram.edges, [0, 0.25, 0.5, 0.75, 1])
    assert np.isnan(diagram.accuracy[0]) and np.isnan(diagram.confidence[0])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), bins=st.integers(1, 30))
def test_ece_lies_in_unit_interval(seed: int, bins: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(40, 3)) * rng.uniform(0.1, 10)
    ece = expected_calibration_error(logits, rng.integers(0, 3, 40), bins=bins)
    assert 0.0 <= ece <= 1.0


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_confidence_of_uniform_logits_is_one_over_classes(classes: int) -> None:
    assert confidence(torch.zeros(5, classes)) == pytest.approx(1 / classes, abs=1e-15)
    assert confidence(np.full((5, classes), 3.0)) == pytest.approx(1 / classes, abs=1e-15)


def test_prediction_confidence_per_sample() -> None:
    logits = np.array([[0.0, np.log(3.0)], [5.0, 5.0]])
    np.testing.assert_allclose(prediction_confidence(logits), [0.75, 0.5])
    assert confidence(logits) == pytest.approx(0.625)


# --- accuracy ---------------------------------------------------------------------------------


def test_accuracy_from_logits_and_from_labels() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 2.0, 0.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 2, 0, 0])
    assert accuracy(logits, y) == 0.5
    assert accuracy(logits.argmax(dim=1), y) == 0.5


def test_balanced_accuracy_weights_classes_equally() -> None:
    from sklearn.metrics import balanced_accuracy_score

    y = np.array([0] * 90 + [1] * 10)
    preds = np.zeros(100, dtype=int)
    assert accuracy(preds, y) == pytest.approx(0.9)
    assert balanced_accuracy(preds, y) == pytest.approx(0.5)
    rng = np.random.default_rng(14)
    y, preds = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    assert balanced_accuracy(preds, y) == balanced_accuracy_score(y, preds)


# --- argument checks --------------------------------------------------------------------------

X, Y = mixture(40, 3, 2, spread=1.0, seed=15)
ZERO_ROW = np.vstack([X[:-1], np.zeros((1, 3))])
PROBS = np.array([[0.2, 0.8], [0.6, 0.4]])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: linear_probe_cv(X, Y[:-1]), "Expected 40 labels"),
        (lambda: linear_probe_cv(X, np.zeros(40, dtype=int)), "at least 2 classes"),
        (lambda: linear_probe_cv(X, Y, folds=1), "folds"),
        (lambda: linear_probe_cv(X, np.r_[np.zeros(38), [1, 1]]), "at least folds=5"),
        (lambda: linear_probe_cv(X, Y + 0.5), "non-negative integers"),
        (lambda: linear_probe_cv(X[:, :, None], Y), "shape"),
        (lambda: fit_linear_probe(X, Y, C=0.0), "C"),
        (lambda: fit_linear_probe(X, Y, backend="jax"), "backend"),
        (lambda: fit_linear_probe(np.where(X > 0, np.nan, X), Y), "finite"),
        (lambda: fit_linear_probe(X, Y).predict(X[:, :2]), "3 columns"),
        (lambda: knn_classify(X, Y, X, k=41), "at most"),
        (lambda: knn_classify(X, Y, X, k=0), "k"),
        (lambda: knn_classify(X, Y, X[:, :2]), "columns"),
        (lambda: knn_classify(ZERO_ROW, Y, X), "all-zero"),
        (lambda: knn_classify(X, Y, X, temperature=0), "temperature"),
        (lambda: knn_classify(X, Y, X, num_classes=1), "num_classes"),
        (lambda: knn_classify(np.ones((4, 3)), [0, 1, 0, 1], X, k=2), "vary"),
        (lambda: expected_calibration_error(PROBS, [0, 2], from_logits=False), "labels in"),
        (lambda: expected_calibration_error(PROBS, [0], from_logits=False), "Expected 2"),
        (lambda: expected_calibration_error(PROBS * 2, [0, 1], from_logits=False), "sum"),
        (lambda: expected_calibration_error(PROBS, [0, 1], bins=0), "bins"),
        (lambda: confidence(np.ones((3, 1))), "at least 2"),
        (lambda: accuracy([0, 1], [0, 1, 1]), "Expected 2"),
        (lambda: accuracy(np.zeros((2, 2, 2)), [0, 1]), "shape"),
        (lambda: balanced_accuracy([], []), "at least one"),
    ],
)
def test_bad_inputs_raise_value_error(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
