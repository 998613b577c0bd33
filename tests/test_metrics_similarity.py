"""Similarity metrics against independent Gram-matrix / whitening implementations and properties."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist

from pytest_sslrobust.metrics import cka
from pytest_sslrobust.metrics.similarity import (
    MinibatchCKA,
    SimilarityMatrix,
    cca_mean,
    cca_r2,
    debiased_cka,
    linear_cka,
    minibatch_cka,
    pwcca,
    rbf_cka,
    similarity_matrix,
    svcca,
)

TOL = 1e-9
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# --------------------------------------------------------------------------------------------
# Independent reference implementations (explicit n x n kernels, Cholesky whitening)
# --------------------------------------------------------------------------------------------


def _h(n: int) -> np.ndarray:
    return np.eye(n) - np.full((n, n), 1.0 / n)


def naive_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    h = _h(len(k))
    return float(np.trace(k @ h @ l_ @ h))


def naive_cka_from_grams(k: np.ndarray, l_: np.ndarray) -> float:
    return naive_hsic(k, l_) / np.sqrt(naive_hsic(k, k) * naive_hsic(l_, l_))


def naive_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    return naive_cka_from_grams(x @ x.T, y @ y.T)


def naive_rbf_gram(x: np.ndarray, threshold: float) -> np.ndarray:
    dist = cdist(x, x, "sqeuclidean")
    return np.exp(-dist / (2 * threshold**2 * np.median(dist)))


def naive_rbf_cka(x: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> float:
    return naive_cka_from_grams(naive_rbf_gram(x, threshold), naive_rbf_gram(y, threshold))


def song_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012), eq. (5), on uncentred Gram matrices."""
    n = len(k)
    kt, lt = k.copy(), l_.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    return float(
        (
            np.trace(kt @ lt)
            + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ kt @ lt @ one)
        )
        / (n * (n - 3))
    )


def song_cka(x: np.ndarray, y: np.ndarray) -> float:
    k, l_ = x @ x.T, y @ y.T
    return song_hsic(k, l_) / np.sqrt(song_hsic(k, k) * song_hsic(l_, l_))


def whitened_cca(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical correlations (descending), x's canonical variates (n, k), centred x.

    Sxx^{-1/2} Sxy Syy^{-1/2} with Cholesky factors; needs full-rank centred data."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    lx = np.linalg.cholesky(xc.T @ xc)
    ly = np.linalg.cholesky(yc.T @ yc)
    m = scipy.linalg.solve_triangular(lx, xc.T @ yc, lower=True)
    m = scipy.linalg.solve_triangular(ly, m.T, lower=True).T  # Lx^-1 Sxy Ly^-T
    a, rho, _ = np.linalg.svd(m, full_matrices=False)
    directions = scipy.linalg.solve_triangular(lx.T, a, lower=False)  # Lx^-T a
    return rho, xc @ directions, xc


def naive_svcca(x: np.ndarray, y: np.ndarray, keep: float = 0.99) -> float:
    projected = []
    for data in (x, y):
        xc = data - data.mean(0)
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        fractions = np.cumsum(s**2) / np.sum(s**2)
        k = next(i + 1 for i, f in enumerate(fractions) if f >= keep)
        projected.append(xc @ vt[:k].T)
    rho, _, _ = whitened_cca(*projected)
    return float(rho.mean())


def naive_pwcca(x: np.ndarray, y: np.ndarray) -> float:
    rho, variates, xc = whitened_cca(x, y)
    variates = variates[:, : len(rho)]
    weights = np.abs(variates.T @ xc).sum(1)
    return float(np.sum(weights / weights.sum() * rho))


def related(seed: int, n: int = 60, d1: int = 5, d2: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Two nonlinearly related, offset feature matrices."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1)) * rng.uniform(0.5, 3.0, d1) + rng.normal(size=d1) * 4
    y = np.tanh(x @ rng.normal(size=(d1, d2))) + 0.5 * rng.normal(size=(n, d2)) + 2.0
    return x, y


SEEDS = range(4)


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_cka_matches_gram_formula(seed: int) -> None:
    x, y = related(seed)
    assert linear_cka(x, y) == pytest.approx(naive_linear_cka(x, y), abs=TOL)


def test_linear_cka_chunked_and_wide_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = related(9, n=103)
    expected = naive_linear_cka(x, y)
    monkeypatch.setattr(cka, "_CHUNK_ROWS", 10)  # 11 chunks, the last one of 3 rows
    assert linear_cka(x, y) == pytest.approx(expected, abs=TOL)
    assert debiased_cka(x, y) == pytest.approx(song_cka(x, y), abs=TOL)
    wide_x, wide_y = related(10, n=20, d1=30, d2=45)  # d > n: Gram route
    assert linear_cka(wide_x, wide_y) == pytest.approx(naive_linear_cka(wide_x, wide_y), abs=TOL)
    assert debiased_cka(wide_x, wide_y) == pytest.approx(song_cka(wide_x, wide_y), abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_rbf_cka_matches_explicit_kernels(seed: int, threshold: float) -> None:
    x, y = related(seed, n=41)  # odd n: n^2 odd, a single middle value
    assert rbf_cka(x, y, threshold) == pytest.approx(naive_rbf_cka(x, y, threshold), abs=TOL)
    x, y = related(seed, n=40)  # even n: mean of the two middle values
    assert rbf_cka(x, y, threshold) == pytest.approx(naive_rbf_cka(x, y, threshold), abs=TOL)


def test_rbf_cka_wide_bandwidth_approaches_linear_cka() -> None:
    # exp(-D / 2s^2) ~ 1 - D / 2s^2 and H D H = -2 H X X^T H: the linear limit.
    x, y = related(1, n=300, d1=6, d2=5)
    assert rbf_cka(x, y, threshold=1000.0) == pytest.approx(linear_cka(x, y), abs=1e-6)
    assert abs(rbf_cka(x, y) - linear_cka(x, y)) > 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_debiased_cka_matches_song_estimator(seed: int) -> None:
    x, y = related(seed)  # uncentred data: the estimator is translation-invariant
    assert debiased_cka(x, y) == pytest.approx(song_cka(x, y), abs=TOL)
    small_x, small_y = related(seed, n=4, d1=2, d2=3)
    assert debiased_cka(small_x, small_y) == pytest.approx(song_cka(small_x, small_y), abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_cca_family_matches_whitening(seed: int) -> None:
    x, y = related(seed, n=80)
    rho, _, _ = whitened_cca(x, y)
    assert cca_r2(x, y) == pytest.approx(np.sum(rho**2) / min(x.shape[1], y.shape[1]), abs=TOL)
    assert cca_mean(x, y) == pytest.approx(np.sum(rho) / min(x.shape[1], y.shape[1]), abs=TOL)
    assert pwcca(x, y) == pytest.approx(naive_pwcca(x, y), abs=TOL)
    assert pwcca(y, x) == pytest.approx(naive_pwcca(y, x), abs=TOL)
    for keep in (0.5, 0.9, 0.99, 1.0):
        assert svcca(x, y, keep) == pytest.approx(naive_svcca(x, y, keep), abs=TOL)


def test_cca_uses_the_rank_of_the_centred_data() -> None:
    x, y = related(3, n=80, d1=4, d2=6)
    redundant = np.hstack([x, x[:, :2] + 2 * x[:, 2:3], np.full((80, 1), 7.0)])  # rank 4 of 6
    assert cca_r2(redundant, y) == pytest.approx(cca_r2(x, y), abs=TOL)
    assert cca_mean(redundant, y) == pytest.approx(cca_mean(x, y), abs=TOL)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

ELEMENTS = st.floats(-100, 100, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def feature_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    d1, d2 = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    # CCA refuses n <= d1 + d2 (correlations of 1 by construction), so n starts above.
    n = draw(st.integers(max(8, d1 + d2 + 1), 20))
    # unique elements: hypothesis otherwise favours repeated values, i.e. rank-deficient data
    x = draw(arrays(np.float64, (n, d1), elements=ELEMENTS, unique=True))
    y = draw(arrays(np.float64, (n, d2), elements=ELEMENTS, unique=True))
    return x, y


def well_posed(a: np.ndarray) -> bool:
    """Distinct rows (so the RBF median distance is positive) and full column rank after
    centring, with a sane condition number."""
    if len(np.unique(a, axis=0)) < len(a):
        return False
    s = np.linalg.svd(a - a.mean(0), compute_uv=False)
    return bool(s[-1] > 1e-3 and s[0] / s[-1] < 1e4)


def condition(a: np.ndarray) -> float:
    """Condition number of the centred features (finite: well_posed holds)."""
    s = np.linalg.svd(a - a.mean(0), compute_uv=False)
    return float(s[0] / s[-1])


def tolerance(*arrays: np.ndarray) -> float:
    """Absolute tolerance for a metric of these features: float64 rounding amplified by
    the squared condition numbers (Gram matrices square them), 1e-12 at best. Well-posed
    inputs reach cond = 1e4, where a fixed 1e-9 was flaky."""
    amplification = float(np.prod([condition(a) ** 2 for a in arrays]))
    return max(1e-12, 100 * np.finfo(np.float64).eps * amplification)


def random_maps(seed: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """An orthogonal matrix and a well-conditioned invertible one."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    q = q * np.sign(np.diag(r))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q, q @ np.diag(rng.uniform(0.5, 2.0, d)) @ q2


PROPERTY = settings(max_examples=40, deadline=None)


@PROPERTY
@given(feature_pairs())
def test_self_similarity_is_one(pair: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = pair
    # CCA of x with itself needs n > 2 * d (the strategy guarantees n > d1 + d2 only).
    assume(well_posed(x) and len(x) > 2 * x.shape[1])
    for metric in (linear_cka, rbf_cka, debiased_cka, cca_r2, cca_mean, svcca, pwcca):
        assert metric(x, x) == pytest.approx(1.0, abs=tolerance(x)), metric.__name__


@PROPERTY
@given(feature_pairs())
def test_symmetry_and_range(pair: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = pair
    assume(well_posed(x) and well_posed(y))
    tol = tolerance(x, y)
    for metric in (linear_cka, rbf_cka, debiased_cka, cca_r2, cca_mean, svcca):
        assert metric(x, y) == pytest.approx(metric(y, x), abs=tol), metric.__name__
    for metric in (linear_cka, rbf_cka, cca_r2, cca_mean, svcca, pwcca):
        assert 0.0 <= metric(x, y) <= 1.0, metric.__name__
    assert -1.0 <= debiased_cka(x, y) <= 1.0  # clipped: Cauchy-Schwarz holds exactly


@PROPERTY
@given(feature_pairs(), st.integers(0, 2**32 - 1), st.floats(1e-3, 1e3))
def test_linear_cka_orthogonal_and_scale_invariance(
    pair: tuple[np.ndarray, np.ndarray], seed: int, scale: float
) -> None:
    x, y = pair
    assume(well_posed(x) and well_posed(y))
    q, _ = random_maps(seed, x.shape[1])
    expected = linear_cka(x, y)
    tol = tolerance(x, y)
    assert linear_cka(scale * x @ q, y) == pytest.approx(expected, abs=tol)
    assert debiased_cka(scale * x @ q + 3.0, y) == pytest.approx(debiased_cka(x, y), abs=tol)


@PROPERTY
@given(feature_pairs(), st.integers(0, 2**32 - 1))
def test_cca_invariant_to_invertible_maps(pair: tuple[np.ndarray, np.ndarray], seed: int) -> None:
    x, y = pair
    assume(well_posed(x) and well_posed(y))
    _, a = random_maps(seed, x.shape[1])
    _, b = random_maps(seed + 1, y.shape[1])
    # the maps' condition numbers are at most 4 (singular values in [0.5, 2])
    tol = 16 * tolerance(x, y)
    for metric in (cca_r2, cca_mean):
        assert metric(x @ a + 1.0, y @ b) == pytest.approx(metric(x, y), abs=tol)


def test_linear_cka_not_invariant_to_general_linear_maps() -> None:
    x = np.random.default_rng(0).normal(size=(200, 5))
    stretch = np.diag([1.0, 1.0, 1.0, 1.0, 20.0])  # invertible, not orthogonal times scalar
    assert linear_cka(x, x @ stretch) == pytest.approx(0.4612, abs=1e-4)
    assert cca_r2(x, x @ stretch) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Known values
# --------------------------------------------------------------------------------------------


def test_one_dimensional_values_are_pearson() -> None:
    # For d1 = d2 = 1, linear CKA and R^2_CCA are the squared Pearson correlation.
    rng = np.random.default_rng(5)
    a = rng.normal(size=(500, 1))
    b = 0.6 * a + rng.normal(size=(500, 1))
    r = np.corrcoef(a[:, 0], b[:, 0])[0, 1]
    assert linear_cka(a, b) == pytest.approx(r**2, abs=1e-12)
    assert cca_r2(a, b) == pytest.approx(r**2, abs=1e-12)
    assert cca_mean(a, b) == pytest.approx(abs(r), abs=1e-12)
    assert pwcca(a, -b) == pytest.approx(abs(r), abs=1e-12)


def test_independent_noise_is_near_zero_and_debiasing_helps() -> None:
    # Measured over 20 seeds at n = 5,000, d = 64: biased CKA 0.0126 +- 0.0002 (its bias is
    # about sqrt(d1 d2) / n), debiased |CKA| <= 4e-4.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5000, 64)), rng.normal(size=(5000, 64))
    biased, debiased = linear_cka(x, y), debiased_cka(x, y)
    assert 0.010 < biased < 0.015
    assert abs(debiased) < 1e-3
    assert abs(debiased) < biased / 10


def test_minibatch_cka_matches_debiased_cka() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 32))
    y = np.tanh(x @ rng.normal(size=(32, 48))) + 0.5 * rng.normal(size=(4000, 48))
    full = debiased_cka(x, y)
    assert minibatch_cka(x, y, batch_size=4000) == pytest.approx(full, abs=1e-12)
    assert minibatch_cka(x, y, batch_size=10_000) == pytest.approx(full, abs=1e-12)
    # 16 batches of 250: measured |difference| <= 1.6e-3 over 20 seeds (value ~0.56).
    assert minibatch_cka(x, y, batch_size=250) == pytest.approx(full, abs=5e-3)
    # The streaming class with uneven batches equals the sum of Song estimates per batch.
    metric = MinibatchCKA()
    sums = np.zeros(3)
    for start, stop in ((0, 7), (7, 107), (107, 111), (111, 400)):
        xb, yb = x[start:stop], y[start:stop]
        metric.update(torch.from_numpy(xb), yb)
        k, l_ = xb @ xb.T, yb @ yb.T
        sums += [song_hsic(k, l_), song_hsic(k, k), song_hsic(l_, l_)]
    assert metric.batches == 4 and metric.rows == 400
    assert metric.compute() == pytest.approx(sums[0] / np.sqrt(sums[1] * sums[2]), abs=TOL)


# --------------------------------------------------------------------------------------------
# Devices and input types
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_torch_float32_and_numpy_agree(device: str) -> None:
    x, y = related(7, n=64)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    tx, ty = torch.from_numpy(x32).to(device), torch.from_numpy(y32).to(device)
    for metric in (linear_cka, rbf_cka, debiased_cka, cca_r2, cca_mean, svcca, pwcca):
        from_numpy = metric(x32, y32)
        from_torch = metric(tx, ty)
        assert isinstance(from_torch, float)
        assert from_torch == pytest.approx(from_numpy, abs=1e-9), metric.__name__
        # float32 inputs are computed in float64: close to the float64 data's value
        assert from_numpy == pytest.approx(metric(x, y), abs=1e-5), metric.__name__
    assert minibatch_cka(tx, ty, batch_size=16) == pytest.approx(
        minibatch_cka(x32, y32, batch_size=16), abs=1e-9
    )
    assert linear_cka(tx, y32) == pytest.approx(linear_cka(x32, y32), abs=1e-9)  # mixed inputs
    assert linear_cka(x.tolist(), y) == pytest.approx(linear_cka(x, y), abs=1e-12)  # lists


def test_float64_input_is_not_modified() -> None:
    x, y = related(8, n=50)
    tx = torch.from_numpy(x.copy())
    linear_cka(tx, y)
    debiased_cka(tx, y)
    assert np.array_equal(tx.numpy(), x)


# --------------------------------------------------------------------------------------------
# Degenerate inputs
# --------------------------------------------------------------------------------------------

ALL = (linear_cka, rbf_cka, debiased_cka, cca_r2, cca_mean, svcca, pwcca, minibatch_cka)


@pytest.mark.parametrize("metric", ALL, ids=lambda f: f.__name__)
def test_degenerate_inputs_raise(metric) -> None:
    x, y = related(0, n=12)
    constant = np.full((12, 3), 0.1)
    with pytest.raises(ValueError, match="x to vary across examples"):
        metric(constant, y)
    with pytest.raises(ValueError, match="y to vary across examples"):
        metric(x, constant)
    bad = x.copy()
    bad[3, 1] = np.nan
    bad[5, 0] = np.inf
    with pytest.raises(ValueError, match="x to be finite, but it has 2 NaN or inf"):
        metric(bad, y)
    with pytest.raises(ValueError, match="same number of rows"):
        metric(x, y[:10])
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        metric(x[:, 0], y)


def test_unbiased_estimators_need_four_rows() -> None:
    x, y = related(0, n=3)
    with pytest.raises(ValueError, match="at least 4 rows"):
        debiased_cka(x, y)
    with pytest.raises(ValueError, match="at least 4 rows"):
        minibatch_cka(x, y, batch_size=4)
    x, y = related(0, n=10)
    with pytest.raises(ValueError, match="last batch of 2"):
        minibatch_cka(x, y, batch_size=4)
    with pytest.raises(ValueError, match="batch_size to be an integer >= 4"):
        minibatch_cka(x, y, batch_size=3)
    metric = MinibatchCKA()
    with pytest.raises(ValueError, match="at least one batch"):
        metric.compute()
    with pytest.raises(ValueError, match="batch 0 has 3 and 3"):
        metric.update(x[:3], y[:3])
    metric.update(x[:5], y[:5])
    with pytest.raises(ValueError, match="feature widths"):
        metric.update(x[5:, :2], y[5:])


def test_minibatch_constant_batches() -> None:
    x, y = related(1, n=40)
    constant = np.full((10, 5), 0.1)
    # A constant batch contributes exactly zero HSIC to every sum.
    mixed = MinibatchCKA()
    mixed.update(x[:20], y[:20])
    mixed.update(constant, y[20:30])
    alone = MinibatchCKA()
    alone.update(x[:20], y[:20])
    mixed_hsic, alone_hsic = mixed._hsic, alone._hsic
    assert mixed_hsic[0] == alone_hsic[0] and mixed_hsic[1] == alone_hsic[1]
    only_constant = MinibatchCKA()
    only_constant.update(constant, y[:10])
    only_constant.update(constant, y[10:20])
    with pytest.raises(ValueError, match=r"HSIC\(x, x\) of x to be positive"):
        only_constant.compute()


def test_zero_denominator_raises_instead_of_nan() -> None:
    # Varying but so small that every square underflows: the Gram formula would give 0 / 0.
    # linear and debiased CKA rescale first (issue 18) and give the value at scale 1;
    # minibatch batches are summed unscaled and still refuse.
    x, y = related(0, n=20)
    tiny = x * 1e-200
    with np.errstate(all="ignore"):
        assert np.isnan(naive_linear_cka(tiny, y))
    assert linear_cka(tiny, y) == pytest.approx(linear_cka(x, y), rel=1e-12)
    assert debiased_cka(y, tiny) == pytest.approx(debiased_cka(y, x), rel=1e-12)
    with pytest.raises(ValueError, match="of x to be positive"):
        minibatch_cka(tiny, y, batch_size=10)
    assert cca_r2(tiny, y) == pytest.approx(cca_r2(x, y), abs=1e-9)  # CCA is scale-invariant


def test_rbf_cka_limits() -> None:
    x, y = related(0, n=10)
    with pytest.raises(ValueError, match="at most 20000 rows"):
        rbf_cka(np.zeros((20_001, 1)), np.zeros((20_001, 1)))
    duplicated = np.vstack([np.zeros((8, 5)), x[:2]])  # 66 of the 100 distances are zero
    with pytest.raises(ValueError, match="median squared distance between rows of x"):
        rbf_cka(duplicated, y)
    for threshold in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="threshold to be a positive finite"):
            rbf_cka(x, y, threshold)


def test_svcca_keep_range() -> None:
    x, y = related(0)
    for keep in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"keep to be a fraction in \(0, 1\]"):
            svcca(x, y, keep)


# --------------------------------------------------------------------------------------------
# similarity_matrix
# --------------------------------------------------------------------------------------------


def test_similarity_matrix_cka() -> None:
    x, y = related(4, n=100)
    variants = {"clean": x, "blur": torch.from_numpy(y).float(), "noise": x + 0.3 * y[:, :5]}
    result = similarity_matrix(variants)
    assert isinstance(result, SimilarityMatrix)
    assert result.names == ("clean", "blur", "noise")
    assert result.metric == "linear_cka"
    assert result.values.dtype == np.float64 and result.values.shape == (3, 3)
    np.testing.assert_allclose(np.diag(result.values), 1.0, atol=1e-12)
    np.testing.assert_array_equal(result.values, result.values.T)
    assert result["clean", "noise"] == pytest.approx(linear_cka(x, x + 0.3 * y[:, :5]), abs=1e-12)
    assert result["blur", "clean"] == result["clean", "blur"]
    with pytest.raises(ValueError):
        result.values[0, 1] = 0.0  # read-only
    with pytest.raises(KeyError):
        result["clean", "fog"]
    encoded = json.loads(json.dumps(result.to_dict()))
    assert encoded["names"] == ["clean", "blur", "noise"]
    assert encoded["values"][1][2] == result["blur", "noise"]
    for name in ("rbf_cka", "debiased_cka", "cca_r2", "cca_mean", "svcca"):
        values = similarity_matrix(variants, name).values
        np.testing.assert_allclose(values, values.T, atol=0)


def test_similarity_matrix_pwcca_is_asymmetric() -> None:
    x, y = related(5, n=100)
    result = similarity_matrix({"a": x, "b": y}, "pwcca")
    assert result["a", "b"] == pytest.approx(pwcca(x, y), abs=1e-12)
    assert result["b", "a"] == pytest.approx(pwcca(y, x), abs=1e-12)
    assert abs(result["a", "b"] - result["b", "a"]) > 1e-3


def test_similarity_matrix_callable_and_errors() -> None:
    x, y = related(6, n=30)
    calls = []

    def first_column_corr(a, b) -> float:
        calls.append(1)
        return float(np.corrcoef(np.asarray(a)[:, 0], np.asarray(b)[:, 0])[0, 1])

    result = similarity_matrix({"a": x, "b": y}, first_column_corr)
    assert result.metric == "first_column_corr" and len(calls) == 4  # both orders
    similarity_matrix({"a": x, "b": y}, first_column_corr, symmetric=True)
    assert len(calls) == 7
    with pytest.raises(ValueError, match="'clean' has 30 and 'blur' has 29"):
        similarity_matrix({"clean": x, "blur": y[:29]})
    with pytest.raises(ValueError, match="metric to be one of"):
        similarity_matrix({"a": x}, "cosine")
    with pytest.raises(ValueError, match="empty mapping"):
        similarity_matrix({})
    with pytest.raises(ValueError, match=r"vary across examples.*y = 'dead'"):
        similarity_matrix({"a": x, "dead": np.zeros((30, 4))})
