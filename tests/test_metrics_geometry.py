"""Neighbour consistency, invariance, alignment and uniformity against numpy formulas."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sslrobust.metrics import geometry
from pytest_sslrobust.metrics.geometry import (
    alignment,
    cosine_similarities,
    invariance,
    neighbour_chance,
    neighbour_consistency,
    uniformity,
)


def consistency_reference(blocks: dict[str, np.ndarray], k: int, metric: str) -> dict[str, float]:
    """Brute force over the full pooled distance matrix, one sample at a time."""
    pool = np.concatenate(list(blocks.values()))
    owner = np.concatenate([np.full(len(b), i) for i, b in enumerate(blocks.values())])
    if metric == "cosine":
        unit = pool / np.linalg.norm(pool, axis=1, keepdims=True)
        distance = 1 - unit @ unit.T
    else:
        distance = np.sqrt(((pool[:, None, :] - pool[None, :, :]) ** 2).sum(axis=2))
    fractions = np.empty(len(pool))
    for i in range(len(pool)):
        others = np.delete(np.arange(len(pool)), i)
        nearest = others[np.argsort(distance[i, others], kind="stable")[:k]]
        fractions[i] = np.mean(owner[nearest] == owner[i])
    return {name: fractions[owner == j].mean() for j, name in enumerate(blocks)}


def random_variants(seed: int, sizes: tuple[int, ...] = (40, 30, 50)) -> dict[str, np.ndarray]:
    """Overlapping variants: each a Gaussian around a slightly different centre."""
    rng = np.random.default_rng(seed)
    return {
        f"v{i}": rng.normal(size=(n, 8)) + rng.normal(size=8) * 0.7 for i, n in enumerate(sizes)
    }


# --- neighbour consistency -------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_separated_variants_are_fully_consistent(metric: str) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 5)) * 0.1 + 10
    b = rng.normal(size=(25, 5)) * 0.1 - 10
    assert neighbour_consistency({"a": a, "b": b}, k=10, metric=metric) == {"a": 1.0, "b": 1.0}


def test_duplicated_features_sit_near_chance() -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(200, 16))
    variants = {"original": points, "copy": points.copy()}
    chance = neighbour_chance(variants)
    got = neighbour_consistency(variants, k=21)
    for name in variants:
        # each sample's twin (other variant) comes first, then twin pairs: 10 of 21 same
        assert got[name] == pytest.approx(chance[name], abs=0.06)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize(("seed", "k"), [(2, 1), (3, 5), (4, 17)])
def test_consistency_matches_brute_force(metric: str, seed: int, k: int) -> None:
    variants = random_variants(seed)
    expected = consistency_reference(variants, k, metric)
    got = neighbour_consistency(variants, k=k, metric=metric)
    assert list(got) == list(variants)
    for name in variants:
        assert got[name] == pytest.approx(expected[name], abs=1e-12)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_consistency_blocks_give_the_same_result(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variants = {name: torch.as_tensor(x) for name, x in random_variants(5).items()}
    whole = neighbour_consistency(variants, k=6, metric=metric)
    monkeypatch.setattr(geometry, "_BLOCK_ENTRIES", 120 * 7)  # 7 rows per block, uneven tail
    assert neighbour_consistency(variants, k=6, metric=metric) == pytest.approx(whole, abs=1e-15)


def test_neighbour_chance_excludes_the_sample_itself() -> None:
    assert neighbour_chance({"a": 11, "b": 10}) == {"a": 0.5, "b": 0.45}
    sizes = neighbour_chance({"a": np.ones((3, 2)), "b": np.ones((5, 2))})
    assert sizes == pytest.approx({"a": 2 / 7, "b": 4 / 7})


# --- invariance ------------------------------------------------------------------------------


def test_invariance_of_identical_features_is_one() -> None:
    x = torch.randn(50, 12, generator=torch.Generator().manual_seed(6))
    assert invariance(x, x) == pytest.approx(1.0, abs=1e-12)
    assert invariance(x, -x) == pytest.approx(-1.0, abs=1e-12)


def test_cosine_similarities_match_numpy() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(30, 6)), rng.normal(size=(30, 6))
    expected = np.array(
        [a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(x, y, strict=True)]
    )
    np.testing.assert_allclose(cosine_similarities(x, y), expected, atol=1e-12)
    assert invariance(x, y) == pytest.approx(expected.mean(), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_invariance_ignores_per_row_scaling(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    scaled = y * scale * rng.uniform(0.5, 2.0, size=(10, 1))
    assert invariance(x, scaled) == pytest.approx(invariance(x, y), abs=1e-12)


# --- alignment and uniformity ----------------------------------------------------------------


def test_alignment_of_identical_features_is_zero() -> None:
    x = np.random.default_rng(8).normal(size=(20, 5))
    assert alignment(x, x) == pytest.approx(0.0, abs=1e-24)
    assert alignment(x, 3 * x) == pytest.approx(0.0, abs=1e-24)


@pytest.mark.parametrize("alpha", [1, 2, 3.5])
def test_alignment_matches_numpy(alpha: float) -> None:
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(25, 7)), rng.normal(size=(25, 7))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    v = y / np.linalg.norm(y, axis=1, keepdims=True)
    expected = np.mean(np.linalg.norm(u - v, axis=1) ** alpha)
    assert alignment(x, y, alpha=alpha) == pytest.approx(expected, abs=1e-12)


def uniformity_reference(x: np.ndarray, t: float) -> float:
    """Double loop over distinct pairs of normalised rows."""
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    terms = [
        math.exp(-t * float(np.sum((u[i] - u[j]) ** 2)))
        for i in range(len(u))
        for j in range(len(u))
        if i != j
    ]
    return math.log(sum(terms) / len(terms))


def test_spread_points_are_more_uniform_than_clustered_ones() -> None:
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    cluster = np.stack([np.ones(12), np.linspace(-0.05, 0.05, 12)], axis=1)
    assert uniformity(circle) < uniformity(cluster) < 0
    assert uniformity(circle) == pytest.approx(uniformity_reference(circle, 2), abs=1e-12)


@pytest.mark.parametrize("t", [0.5, 2, 5])
def test_uniformity_matches_numpy(t: float) -> None:
    x = np.random.default_rng(10).normal(size=(40, 6))
    assert uniformity(x, t=t) == pytest.approx(uniformity_reference(x, t), abs=1e-12)


def test_uniformity_blocks_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(11).normal(size=(50, 4))
    whole = uniformity(x)
    monkeypatch.setattr(geometry, "_BLOCK_ENTRIES", 50 * 6)
    assert uniformity(x) == pytest.approx(whole, abs=1e-12)


def test_uniformity_subsample_is_seeded() -> None:
    x = np.random.default_rng(12).normal(size=(60, 4))
    assert uniformity(x, max_samples=60) == uniformity(x)
    first = uniformity(x, max_samples=20, seed=1)
    assert uniformity(x, max_samples=20, seed=1) == first
    assert uniformity(x, max_samples=20, seed=2) != first


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.1, 10))
def test_uniformity_lies_in_its_range(seed: int, t: float) -> None:
    x = np.random.default_rng(seed).normal(size=(15, 3))
    assert -4 * t - 1e-9 <= uniformity(x, t=t) <= 1e-12


# --- argument checks -------------------------------------------------------------------------

A = np.random.default_rng(13).normal(size=(6, 3))
ZERO_ROW = np.vstack([A[:-1], np.zeros((1, 3))])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: neighbour_consistency({"a": A, "b": A}, k=12), r"k to be an integer in \[1, 11\]"),
        (lambda: neighbour_consistency({"a": A, "b": A}, k=0), "k to be"),
        (lambda: neighbour_consistency({"a": A, "b": A[:, :2]}), "same feature dimension"),
        (lambda: neighbour_consistency({"a": ZERO_ROW, "b": A}, k=3), "all-zero"),
        (lambda: neighbour_consistency({"a": A}, k=3, metric="l1"), "metric"),
        (lambda: neighbour_consistency({}), "at least one variant"),
        (lambda: neighbour_consistency({"a": np.ones((3, 2)), "b": np.ones((3, 2))}, 2), "vary"),
        (lambda: neighbour_chance({"a": 1}), "at least 2"),
        (lambda: neighbour_chance({"a": 0, "b": 3}), "at least one sample"),
        (lambda: invariance(A, A[:-1]), "same number of rows"),
        (lambda: invariance(A, ZERO_ROW), "all-zero"),
        (lambda: cosine_similarities(A, A[:, :2]), "same number of columns"),
        (lambda: alignment(A, A[:-1]), "same number of rows"),
        (lambda: alignment(A, A, alpha=0), "alpha"),
        (lambda: alignment(ZERO_ROW, A), "all-zero"),
        (lambda: uniformity(A[:1]), "at least 2 rows"),
        (lambda: uniformity(A, t=-1), "t to be positive"),
        (lambda: uniformity(A, max_samples=1), "max_samples"),
        (lambda: uniformity(np.where(A > 0, np.inf, A)), "finite"),
    ],
)
def test_bad_inputs_raise_value_error(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
