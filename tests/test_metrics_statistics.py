"""Bootstrap intervals: determinism, coverage, pairing, mCE and CKA intervals, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_sslrobust.metrics.corruption import (
    CorruptionErrors,
    ProtocolMismatch,
    errors_from_predictions,
    mce,
)
from pytest_sslrobust.metrics.statistics import (
    Interval,
    accuracy_difference_interval,
    accuracy_interval,
    bootstrap,
    cka_difference_interval,
    cka_interval,
    mce_difference_interval,
    mce_interval,
)
from pytest_sslrobust.variants.corruptions import COMMON

RELEASED = {"source": "released-imagenet-c"}


def bernoulli(p: float, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < p


def linear_cka(x, y) -> float:
    """Feature-space linear CKA, local to the tests (works on numpy and torch)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def sweep(n: int, seed: int, skill: float, protocol=None, difficulty=None) -> CorruptionErrors:
    """A made-up sweep: harder severities and harder images are misclassified more often."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    if difficulty is None:
        difficulty = rng.random(n)
    predictions = {}
    for c, name in enumerate(COMMON):
        per_severity = []
        for s in range(5):
            threshold = skill - 0.1 * s - 0.01 * c
            wrong = difficulty + 0.2 * rng.random(n) > threshold
            per_severity.append(np.where(wrong, (labels + 1) % 10, labels))
        predictions[name] = per_severity
    return errors_from_predictions(predictions, labels, protocol=protocol or RELEASED)


def test_interval_contains_estimate_and_prints():
    correct = bernoulli(0.7, 300, seed=1)
    interval = accuracy_interval(correct)
    assert interval.estimate == pytest.approx(100 * correct.mean())
    assert interval.low < interval.estimate < interval.high
    assert interval.contains(interval.estimate)
    assert not interval.contains(interval.high + 1e-9)
    assert (interval.confidence, interval.resamples, interval.seed) == (0.95, 1000, 0)
    text = str(interval)
    assert text.endswith("(95% bootstrap)")
    assert text.startswith(f"{interval.estimate:.2f} [")
    assert str(Interval(76.7, 75.9, 77.52, 0.95, 1000, 0)) == "76.70 [75.90, 77.52] (95% bootstrap)"


def test_width_shrinks_with_n():
    small = accuracy_interval(bernoulli(0.7, 100, seed=2))
    large = accuracy_interval(bernoulli(0.7, 4000, seed=2))
    assert large.width < small.width / 3


def test_same_seed_same_bytes_different_seed_differs():
    correct = bernoulli(0.6, 500, seed=3)
    first = accuracy_interval(correct, seed=7)
    again = accuracy_interval(correct, seed=7)
    other = accuracy_interval(correct, seed=8)
    assert (
        np.array([first.low, first.high]).tobytes() == np.array([again.low, again.high]).tobytes()
    )
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)


def test_vectorized_and_looped_statistics_see_the_same_draws():
    data = np.random.default_rng(4).normal(size=300)
    looped = bootstrap(lambda idx: data[idx].mean(), 300, resamples=200, seed=5)
    vectorized = bootstrap(
        lambda idx: data[idx].mean(axis=1), 300, resamples=200, seed=5, vectorized=True
    )
    assert looped.low == pytest.approx(vectorized.low, abs=1e-12)
    assert looped.high == pytest.approx(vectorized.high, abs=1e-12)
    assert looped.estimate == pytest.approx(data.mean())


def test_coverage_of_a_bernoulli_mean():
    covered = [
        accuracy_interval(bernoulli(0.7, 200, seed=1000 + r), resamples=500, seed=r).contains(70.0)
        for r in range(200)
    ]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_paired_difference_of_identical_inputs_is_exactly_zero():
    correct = bernoulli(0.55, 250, seed=6)
    interval = accuracy_difference_interval(correct, correct.astype(int))
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_paired_is_narrower_than_unpaired_for_correlated_models():
    n = 1000
    a = bernoulli(0.7, n, seed=7)
    flips = bernoulli(0.05, n, seed=8)
    b = a ^ flips  # agrees with a on 95% of the images
    paired = accuracy_difference_interval(a, b, seed=0)
    other = np.random.default_rng(9)
    unpaired = bootstrap(
        lambda idx: 100 * (a[idx].mean() - b[other.integers(0, n, n)].mean()), n, seed=0
    )
    assert paired.width < 0.5 * unpaired.width


def test_mce_interval_contains_mce_and_matches_a_direct_computation():
    errors = sweep(150, seed=10, skill=1.0)
    interval = mce_interval(errors, resamples=200, seed=3)
    assert interval.estimate == pytest.approx(mce(errors), abs=1e-9)
    assert interval.low < interval.estimate < interval.high

    def direct(idx: np.ndarray) -> float:
        table = {name: 1.0 - errors.correct[name][:, idx].mean(axis=1) for name in COMMON}
        return mce(table)

    slow = bootstrap(direct, errors.n, resamples=200, seed=3)
    assert interval.low == pytest.approx(slow.low, abs=1e-9)
    assert interval.high == pytest.approx(slow.high, abs=1e-9)


def test_mce_interval_with_reference_model_and_protocol_rules():
    protocol = {"source": "on-the-fly", "size": 64}
    model = sweep(120, seed=11, skill=1.0, protocol=protocol)
    reference = sweep(120, seed=12, skill=0.8, protocol={**protocol, "backbone": "r50"})
    interval = mce_interval(model, reference, resamples=200)
    assert interval.contains(mce(model, reference))
    with pytest.raises(ProtocolMismatch, match="released ImageNet-C"):
        mce_interval(model)
    other = sweep(120, seed=12, skill=0.8, protocol={"source": "on-the-fly", "size": 32})
    with pytest.raises(ProtocolMismatch, match="size"):
        mce_interval(model, other)


def test_mce_interval_needs_per_image_correctness():
    plain = CorruptionErrors({name: [0.5] * 5 for name in COMMON}, None, 10, "head", RELEASED)
    with pytest.raises(ValueError, match="gaussian_noise"):
        mce_interval(plain)
    with pytest.raises(ValueError, match="CorruptionErrors"):
        mce_interval({name: [0.5] * 5 for name in COMMON})


def test_mce_difference_interval_is_paired():
    difficulty = np.random.default_rng(13).random(200)
    a = sweep(200, seed=14, skill=1.0, difficulty=difficulty)
    b = sweep(200, seed=15, skill=1.05, difficulty=difficulty)
    same = mce_difference_interval(a, a, resamples=200)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    constant = sweep(50, seed=20, skill=5.0)  # every image right: all resamples equal
    assert mce_interval(constant, resamples=100).contains(mce(constant))
    diff = mce_difference_interval(a, b, resamples=300)
    assert diff.estimate == pytest.approx(mce(a) - mce(b))
    assert diff.contains(diff.estimate)
    single = mce_interval(a, resamples=300)
    assert diff.width < single.width
    with pytest.raises(ValueError, match="same images"):
        mce_difference_interval(a, sweep(100, seed=16, skill=1.0))
    elsewhere = sweep(200, seed=15, skill=1.0, protocol={**RELEASED, "subset": "val-5k"})
    with pytest.raises(ProtocolMismatch, match="a and b"):
        mce_difference_interval(
            sweep(200, seed=14, skill=1.0, protocol={**RELEASED, "subset": "val-1k"}), elsewhere
        )


def test_cka_interval_with_explicit_metric_numpy_and_torch():
    rng = np.random.default_rng(17)
    x = rng.normal(size=(120, 6))
    y = x @ rng.normal(size=(6, 4)) + 0.5 * rng.normal(size=(120, 4))
    interval = cka_interval(x, y, linear_cka, resamples=200)
    assert interval.estimate == pytest.approx(linear_cka(x, y))
    assert 0.0 < interval.low < interval.estimate < interval.high <= 1.0
    assert str(interval).startswith(f"{interval.estimate:.4f} [")
    seen = []

    def metric(a, b):
        seen.append(type(a))
        return linear_cka(a, b)

    on_tensors = cka_interval(torch.from_numpy(x), torch.from_numpy(y), metric, resamples=200)
    assert seen and all(t is torch.Tensor for t in seen)
    assert on_tensors.low == pytest.approx(interval.low)
    assert on_tensors.high == pytest.approx(interval.high)


def test_cka_interval_default_metric():
    x = np.random.default_rng(18).normal(size=(60, 5))
    interval = cka_interval(x, x, resamples=50)
    assert interval.estimate == pytest.approx(1.0)


def test_cka_difference_interval_is_paired():
    rng = np.random.default_rng(19)
    x = rng.normal(size=(100, 5))
    y1 = x + 0.3 * rng.normal(size=(100, 5))
    y2 = x + 0.6 * rng.normal(size=(100, 5))
    same = cka_difference_interval(x, y1, x, y1, linear_cka, resamples=100)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    diff = cka_difference_interval(x, y1, x, y2, linear_cka, resamples=200)
    assert diff.estimate == pytest.approx(linear_cka(x, y1) - linear_cka(x, y2))
    assert diff.low > 0
    with pytest.raises(ValueError, match="same images"):
        cka_difference_interval(x, y1, x[:50], y2[:50], linear_cka)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 95}, "confidence"),
        ({"resamples": 5}, "resamples"),
        ({"resamples": 100.0}, "resamples"),
        ({"seed": -1}, "seed"),
        ({"n": 1}, "n to be"),
    ],
)
def test_bad_options(kwargs, match):
    arguments = {"n": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        bootstrap(lambda idx: 0.0, **arguments)


def test_bad_inputs():
    with pytest.raises(ValueError, match="0 and 1"):
        accuracy_interval([0, 1, 2, 1])
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        accuracy_interval(np.ones((3, 3)))
    with pytest.raises(ValueError, match="n to be"):
        accuracy_interval([1])
    with pytest.raises(ValueError, match="same images"):
        accuracy_difference_interval([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="return 100 values"):
        bootstrap(lambda idx: np.zeros(3), 10, resamples=100, vectorized=True)
    with pytest.raises(ValueError, match="finite"):
        bootstrap(lambda idx: np.nan if idx[0] == 0 else 1.0, 5, resamples=100)
    with pytest.raises(ValueError, match="same number of rows"):
        cka_interval(np.ones((5, 2)), np.ones((6, 2)), linear_cka)
    with pytest.raises(ValueError, match="callable"):
        cka_interval(np.eye(5), np.eye(5), metric="linear")


@pytest.mark.parametrize("seed", [0, 7])
def test_linear_cka_interval_gram_form_equals_one_cka_per_resample(seed):
    """The default metric's bootstrap runs on Gram matrices, all resamples of a block at
    once; it must give what linear_cka gives on each resampled pair of row sets."""
    from pytest_sslrobust.metrics.similarity import linear_cka
    from pytest_sslrobust.metrics.statistics import cka_interval

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 12)) + 5.0  # an offset: centring happens per resample
    y = np.tanh(x[:, :7] @ rng.normal(size=(7, 9))) + 0.5 * rng.normal(size=(120, 9))
    fast = cka_interval(x, y, resamples=300, seed=seed)
    slow = cka_interval(x, y, lambda a, b: linear_cka(a, b), resamples=300, seed=seed)
    assert fast.low == pytest.approx(slow.low, abs=1e-12)
    assert fast.high == pytest.approx(slow.high, abs=1e-12)
    assert fast.estimate == pytest.approx(linear_cka(x, y), abs=1e-12)


def test_linear_cka_interval_refuses_a_degenerate_resample():
    from pytest_sslrobust.metrics.statistics import cka_interval

    x = np.zeros((20, 3))
    x[0] = 1.0  # constant unless the resample draws row 0
    with pytest.raises(ValueError, match="finite"):
        cka_interval(x, np.random.default_rng(0).normal(size=(20, 3)), resamples=200)
