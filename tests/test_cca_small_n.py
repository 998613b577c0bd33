"""CCA at small n (issue 13): a side wider than (n - 1) // 10 is reduced SVCCA-style, or refused."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pytest
from _contract_helpers import recording

from pytest_sslrobust import assert_cca_between
from pytest_sslrobust.metrics.cca import CCAValue, cca_mean, cca_r2, pwcca, svcca
from pytest_sslrobust.metrics.linalg import CCA_MIN_KEPT, CCA_SAMPLES_PER_DIM, cca_width_limit

CCA_FAMILY: tuple[Callable[..., CCAValue], ...] = (cca_r2, cca_mean, svcca, pwcca)
BY_NAME = pytest.mark.parametrize("metric", CCA_FAMILY, ids=lambda f: f.__name__)


def independent(n: int, d1: int, d2: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d1)), rng.normal(size=(n, d2))


def rotated(n: int, d: int, seed: int = 0, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """y = x Q + noise, Q a random rotation: the same representation in another basis."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return x, x @ q + noise * rng.normal(size=(n, d))


def test_the_width_limit() -> None:
    assert CCA_SAMPLES_PER_DIM == 10
    assert cca_width_limit(300) == 29  # (300 - 1) // 10
    assert cca_width_limit(201) == 20
    assert cca_width_limit(200) == 19
    assert cca_width_limit(3) == cca_width_limit(40) == CCA_MIN_KEPT == 4


def test_independent_features_at_the_issues_size_are_near_zero() -> None:
    # n = 300, 200 + 200: refused by the hard bound without reduction (200 + 200 > 299),
    # chance level 29 / 299 = 0.097 after it.
    x, y = independent(300, 200, 200)
    value = cca_r2(x, y)
    assert value < 0.2
    assert value.kept == (29, 29) and value.widths == (200, 200) and value.reduced
    for metric in (cca_mean, svcca, pwcca):
        assert metric(x, y) < 0.35, metric.__name__
    with pytest.raises(ValueError, match="at least 401 samples for cca_r2"):
        cca_r2(x, y, reduce="none")


def test_independent_features_were_spuriously_similar_without_reduction() -> None:
    # 250 + 40 dims at n = 300 pass the hard bound; the chance level of R^2 is 250 / 299.
    x, y = independent(300, 250, 40)
    assert cca_r2(x, y, reduce="none") > 0.5
    assert cca_r2(x, y) < 0.2
    for metric in CCA_FAMILY:
        before, after = metric(x, y, reduce="none"), metric(x, y)
        assert before > 0.5, metric.__name__
        assert after < min(0.35, before / 2), metric.__name__
        assert after.kept == (29, 29), metric.__name__


def test_chance_level_is_the_width_over_n() -> None:
    # E[sum rho^2] = kx ky / (n - 1) for independent features: R^2 = max(kx, ky) / (n - 1).
    values = [cca_r2(*independent(401, 200, 200, seed), reduce="none") for seed in range(3)]
    assert np.mean(values) == pytest.approx(200 / 400, abs=0.01)
    reduced = [cca_r2(*independent(401, 200, 200, seed)) for seed in range(3)]
    assert np.mean(reduced) == pytest.approx(40 / 400, abs=0.02)


@BY_NAME
def test_correlated_features_stay_near_one(metric: Callable[..., CCAValue]) -> None:
    x, y = rotated(300, 200)
    value = metric(x, y)
    assert value > 0.9
    assert value.reduced
    rng = np.random.default_rng(1)  # a decaying spectrum, as in network features
    x = rng.normal(size=(300, 200)) * np.arange(1, 201) ** -0.5
    q, _ = np.linalg.qr(rng.normal(size=(200, 200)))
    assert metric(x, x @ q + 0.01 * rng.normal(size=(300, 200))) > 0.9


@BY_NAME
def test_refuse_names_n_the_widths_and_the_fix(metric: Callable[..., CCAValue]) -> None:
    x, y = independent(300, 200, 60)
    wx, wy = metric(x, y, reduce="none").widths  # svcca's: the directions holding 99%
    with pytest.raises(ValueError) as info:
        metric(x, y, reduce="refuse")
    message = str(info.value)
    assert "\n" not in message
    assert "n = 300" in message and f"{wx} + {wy} directions (x + y" in message
    assert f"n >= {10 * wx + 1}" in message
    assert "reduce='auto'" in message and "at most 29" in message
    assert metric.__name__ in message


@BY_NAME
def test_well_conditioned_input_is_unchanged(metric: Callable[..., CCAValue]) -> None:
    x, y = independent(2000, 20, 30, seed=3)
    y = y + x @ np.random.default_rng(4).normal(size=(20, 30))
    for mode in ("auto", "refuse"):
        value = metric(x, y, reduce=mode)
        assert float(value) == float(metric(x, y, reduce="none"))
        assert value.kept == value.widths and not value.reduced


def test_the_boundary_is_ten_samples_per_direction() -> None:
    x, y = independent(201, 20, 20)
    assert not cca_r2(x, y).reduced  # 201 = 10 x 20 + 1
    assert cca_r2(x, y) == cca_r2(x, y, reduce="none")
    value = cca_r2(x[:200], y[:200])
    assert value.kept == (19, 19)
    with pytest.raises(ValueError, match="n >= 201 samples"):
        cca_r2(x[:200], y[:200], reduce="refuse")


def test_a_narrow_side_is_kept_whole_and_few_directions_are_never_cut() -> None:
    x, y = independent(100, 40, 5)
    assert cca_r2(x, y).kept == (9, 5)
    small = independent(12, 4, 3)  # at most CCA_MIN_KEPT directions: exact, invariant CCA
    assert cca_r2(*small) == cca_r2(*small, reduce="none")
    assert cca_r2(*small, reduce="refuse") == cca_r2(*small, reduce="none")


def test_reduction_keeps_at_most_the_directions_holding_99_percent() -> None:
    rng = np.random.default_rng(2)
    low_rank = rng.normal(size=(300, 10)) @ rng.normal(size=(10, 200))
    low_rank += 1e-3 * rng.normal(size=(300, 200))  # rank 200, 99% of the variance in 10
    value = cca_r2(low_rank, rng.normal(size=(300, 40)))
    assert value.widths == (200, 40) and value.kept == (10, 29)


def test_svcca_caps_its_kept_directions() -> None:
    x, y = independent(300, 200, 200)
    value = svcca(x, y, keep=0.5)
    assert value.widths[0] > 29 and value.kept == (29, 29)
    with pytest.raises(ValueError, match=r"svcca on \d+ \+ \d+ directions"):
        svcca(x, y, keep=0.5, reduce="refuse")
    well = independent(3000, 30, 30)
    assert svcca(*well, keep=0.9) == svcca(*well, keep=0.9, reduce="none")


def test_the_value_is_a_float_stating_its_dimensions() -> None:
    value = cca_r2(*independent(300, 200, 200))
    assert isinstance(value, float)
    assert value.statement().startswith("CCA on 29 + 29 of 200 + 200 directions (x + y)")
    assert "n = 300" in value.statement()
    restored = pickle.loads(pickle.dumps(value))
    assert restored == value and restored.kept == value.kept and restored.widths == value.widths
    unreduced = cca_r2(*independent(300, 5, 5))
    assert unreduced.statement() == "CCA on all 5 + 5 directions (x + y; n = 300)"


@pytest.mark.parametrize("reduce", ["all", None, 1])
def test_an_unknown_mode_is_refused(reduce: object) -> None:
    x, y = independent(50, 2, 2)
    with pytest.raises(ValueError, match="Expected reduce to be one of"):
        cca_r2(x, y, reduce=reduce)  # type: ignore[arg-type]


def test_contract_records_and_explains_the_reduction() -> None:
    x, y = independent(300, 200, 200)
    with recording() as results:
        assert_cca_between(x, y, 0.0, 0.2)
        assert_cca_between(*rotated(300, 200), 0.9, 1.0, kind="mean", label="rotated")
        assert_cca_between(x[:, :5], y[:, :5], 0.0, 0.2, label="narrow")
    details = [
        [(d["item"], d["width"], d["kept"], d["reduced"]) for d in r.details] for r in results
    ]
    assert details == [
        [("x", 200, 29, True), ("y", 200, 29, True)],
        [("x", 200, 29, True), ("y", 200, 29, True)],
        [("x", 5, 5, False), ("y", 5, 5, False)],
    ]
    with recording(), pytest.raises(AssertionError) as info:
        assert_cca_between(x, y, 0.5, 1.0)
    message = str(info.value)
    assert message.startswith("CCA R^2 0.0945 is outside")
    assert "29 of 200 (reduced)" in message
    assert "CCA on 29 + 29 of 200 + 200 directions" in message and "reduce='none'" in message
    with recording(), pytest.raises(ValueError, match="n = 300"):
        assert_cca_between(x, y, 0.0, 1.0, reduce="refuse")
    with recording() as results:
        assert_cca_between(x[:, :140], y[:, :140], 0.4, 1.0, reduce="none")
    assert results[0].details[0]["kept"] == 140 and not results[0].details[0]["reduced"]
