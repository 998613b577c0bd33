"""Degenerate metric inputs (issue 18): refused up front, or values in their documented range."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sslrobust.metrics import cka, similarity
from pytest_sslrobust.metrics.corruption import ALEXNET_ERRORS, ce, mce, relative_mce
from pytest_sslrobust.metrics.readouts import fit_linear_probe, linear_probe_cv
from pytest_sslrobust.metrics.similarity import (
    MIN_SAMPLES,
    cca_mean,
    cca_r2,
    debiased_cka,
    linear_cka,
    pwcca,
    rbf_cka,
    svcca,
)
from pytest_sslrobust.variants.corruptions import COMMON

SCALES = (1e-150, 1e-30, 1.0, 1e30, 1e150)
CCA_FAMILY = (cca_r2, cca_mean, svcca, pwcca)
SMALLEST_SUBNORMAL = 5e-324


def unrelated(n: int, d1: int, d2: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d1)), rng.normal(size=(n, d2))


def one_outlier(seed: int) -> np.ndarray:
    """n = 4, three rows equal up to 1e-8 and one apart: U-centred Gram numerically zero."""
    rng = np.random.default_rng(seed)
    return np.array([[0.0], [0.0], [0.0], [1.0]]) + 1e-8 * rng.normal(size=(4, 1))


def raise_linalg_error(*args: object, **kwargs: object) -> None:
    raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")


def alexnet_scaled(factor: float) -> dict[str, tuple[float, ...]]:
    return {name: tuple(factor * e for e in ALEXNET_ERRORS[name]) for name in COMMON}


def subnormal_reference() -> dict[str, tuple[float, ...]]:
    reference = alexnet_scaled(1.0)
    reference["fog"] = (SMALLEST_SUBNORMAL,) * 5
    return reference


X2, Y2 = unrelated(2, 5, 5)
X3, Y3 = unrelated(3, 2, 2)
LABELS = np.arange(20) % 2

# Every row failed before the change: CKA at n = 2 and the CCA family at n = 3 returned 1.0,
# the probe 0.5, debiased CKA 3.54 on the one-outlier pair, the SVD a LinAlgError, CE inf.
CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    ("linear_cka n=2", lambda: linear_cka(X2, Y2), ValueError, "at least 3 samples for linear_cka"),
    ("rbf_cka n=2", lambda: rbf_cka(X2, Y2), ValueError, "at least 3 samples for rbf_cka"),
    ("cca_r2 n=3", lambda: cca_r2(X3, Y3), ValueError, "at least 5 samples for cca_r2"),
    ("cca_mean n=3", lambda: cca_mean(X3, Y3), ValueError, "at least 5 samples for cca_mean"),
    ("svcca n=3", lambda: svcca(X3, Y3), ValueError, "at least 5 samples for svcca"),
    ("pwcca n=3", lambda: pwcca(X3, Y3), ValueError, "at least 5 samples for pwcca"),
    (
        "probe constant",
        lambda: linear_probe_cv(np.ones((20, 3)), LABELS, folds=2),
        ValueError,
        "every feature has zero variance",
    ),
    (
        "probe fit constant",
        lambda: fit_linear_probe(np.full((20, 3), 7.0), LABELS, backend="torch", device="cpu"),
        ValueError,
        "every feature has zero variance",
    ),
    (
        "debiased_cka rounding-level self-HSIC",
        lambda: debiased_cka(one_outlier(16), one_outlier(17)),  # -4.0 before
        ValueError,
        "positive beyond rounding",
    ),
    (
        "ce subnormal reference",
        lambda: ce({"fog": (0.5,) * 5}, {"fog": (SMALLEST_SUBNORMAL,) * 5}),
        ValueError,
        "summed error on fog",
    ),
    (
        "mce subnormal reference",
        lambda: mce(alexnet_scaled(0.5), subnormal_reference()),
        ValueError,
        "summed error on fog",
    ),
    (
        "relative_mce rounding-level reference",
        lambda: relative_mce(
            alexnet_scaled(0.5), 0.1, {name: (0.3 + 5e-17,) * 5 for name in COMMON}, 0.3
        ),
        ValueError,
        "summed error on gaussian_noise",
    ),
]


@pytest.mark.parametrize(
    ("call", "exception", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_degenerate_input_is_refused(
    call: Callable[[], object], exception: type[Exception], fragment: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exception, match=fragment):
            call()


@pytest.mark.parametrize("metric", [cca_r2, cca_mean, svcca, pwcca], ids=lambda f: f.__name__)
def test_svd_non_convergence_is_a_value_error(
    metric: Callable[..., float], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = unrelated(30, 3, 2)
    monkeypatch.setattr(torch.linalg, "svd", raise_linalg_error)
    monkeypatch.setattr(torch.linalg, "svdvals", raise_linalg_error)
    with pytest.raises(ValueError, match="to converge, but it did not.*extreme values"):
        metric(x, y)


def test_minimum_samples_are_accepted() -> None:
    for name, need in MIN_SAMPLES.items():
        if name == "minibatch_cka" or name in {f.__name__ for f in CCA_FAMILY}:
            continue
        x, y = unrelated(need, 2, 3)
        value = getattr(similarity, name)(x, y)
        assert -1.0 <= value <= 1.0, name
    x, y = unrelated(3, 1, 1)  # rank 1 + 1 < n = 3: accepted
    for metric in CCA_FAMILY:
        assert 0.0 <= metric(x, y) <= 1.0


def test_cka_scale_invariance_at_1e77() -> None:
    x, y = unrelated(50, 4, 4)
    for metric in (linear_cka, debiased_cka, rbf_cka):
        expected = metric(x, y)
        assert metric(x * 1e77, y) == pytest.approx(expected, rel=1e-10), metric.__name__
        assert metric(x, y * 1e-77) == pytest.approx(expected, rel=1e-10), metric.__name__


def test_chunked_path_rescales(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = unrelated(53, 3, 2)
    expected = linear_cka(x, y), debiased_cka(x, y)
    monkeypatch.setattr(cka, "_CHUNK_ROWS", 8)
    for scale in (1e-300, 1e300):
        assert linear_cka(x * scale, y) == pytest.approx(expected[0], rel=1e-10)
        assert debiased_cka(x * scale, y) == pytest.approx(expected[1], rel=1e-10)


def test_non_finite_input_stays_refused() -> None:
    x, y = unrelated(20, 3, 3)
    x[0, 0] = np.inf
    for metric in (linear_cka, rbf_cka, debiased_cka, *CCA_FAMILY):
        with pytest.raises(ValueError, match="to be finite"):
            metric(x, y)


# --------------------------------------------------------------------------------------------
# Documented ranges at extreme magnitudes and the minimum n
# --------------------------------------------------------------------------------------------

SMALL = settings(deadline=None, max_examples=25)


@st.composite
def scaled_pair(draw: st.DrawFn, least: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features with n from the metric's minimum, each side times an extreme scale."""
    d1, d2 = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(least, least + 6))
    seed = draw(st.integers(0, 2**32 - 1))
    x, y = unrelated(n, d1, d2, seed)
    return x * draw(st.sampled_from(SCALES)), y * draw(st.sampled_from(SCALES))


@SMALL
@given(scaled_pair(MIN_SAMPLES["linear_cka"]))
def test_linear_cka_range(pair: tuple[np.ndarray, np.ndarray]) -> None:
    assert 0.0 <= linear_cka(*pair) <= 1.0


@SMALL
@given(scaled_pair(MIN_SAMPLES["rbf_cka"]))
def test_rbf_cka_range(pair: tuple[np.ndarray, np.ndarray]) -> None:
    assert 0.0 <= rbf_cka(*pair) <= 1.0


@SMALL
@given(scaled_pair(MIN_SAMPLES["debiased_cka"]))
def test_debiased_cka_range(pair: tuple[np.ndarray, np.ndarray]) -> None:
    try:
        value = debiased_cka(*pair)
    except ValueError as exc:  # a rounding-level self-HSIC is refused, never returned
        assert "beyond rounding" in str(exc)
        return
    assert -1.0 <= value <= 1.0


@SMALL
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 6),
    st.integers(0, 2**32 - 1),
    st.sampled_from(SCALES),
    st.sampled_from(SCALES),
)
def test_cca_family_range(d1: int, d2: int, extra: int, seed: int, sx: float, sy: float) -> None:
    x, y = unrelated(d1 + d2 + 1 + extra, d1, d2, seed)  # the least n CCA accepts, and more
    for metric in CCA_FAMILY:
        assert 0.0 <= metric(x * sx, y * sy) <= 1.0, metric.__name__


@settings(deadline=None, max_examples=8)
@given(st.sampled_from(SCALES), st.integers(0, 1000))
def test_probe_balanced_accuracy_range(scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.vstack([rng.normal(size=(10, 3)) - 1, rng.normal(size=(10, 3)) + 1]) * scale
    result = linear_probe_cv(x, LABELS, folds=2, seed=seed)
    assert all(0.0 <= score <= 1.0 for score in result.folds)
    assert 0.0 <= result.mean <= 1.0


@settings(deadline=None, max_examples=40)
@given(
    st.floats(0.0, 1.0),
    st.one_of(
        st.sampled_from([0.0, SMALLEST_SUBNORMAL, 1e-310, 1e-300, 1e-12, 2e-10, 1e-9]),
        st.floats(0.0, 1.0, allow_subnormal=True),
    ),
)
def test_ce_and_mce_are_finite_or_refused(model: float, reference: float) -> None:
    errors = alexnet_scaled(model)
    table = {name: (reference,) * 5 for name in COMMON}
    try:
        values = [*ce(errors, table).values(), mce(errors, table)]
    except ValueError as exc:
        assert 5 * reference <= 1e-9 and "summed error on" in str(exc)
        return
    assert all(0.0 <= value < np.inf for value in values)
