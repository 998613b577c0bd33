"""Paired decisions: packed outcomes, the exact McNemar test and Holm's correction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from pytest_sslrobust.paired import holm, mcnemar_worse, pack_outcomes, unpack_outcomes


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=0, max_size=300), st.integers(1, 3))
def test_pack_round_trip(bits: list[bool], cells: int) -> None:
    values = np.array(bits * cells, dtype=np.bool_).reshape(cells, len(bits))
    assert np.array_equal(unpack_outcomes(pack_outcomes(values), values.shape), values)


def test_packing_is_compact_and_refuses_what_it_cannot_read() -> None:
    constant = np.ones(80_000, dtype=np.bool_)
    assert len(pack_outcomes(constant)) < 200  # 10 kB of 0xff compresses to almost nothing
    with pytest.raises(ValueError, match="Expected boolean outcomes"):
        pack_outcomes(np.array([0, 1]))
    packed = pack_outcomes(np.array([True] * 9))
    with pytest.raises(ValueError, match="Expected 20 packed outcomes"):
        unpack_outcomes(packed, (20,))
    with pytest.raises(ValueError, match="damaged"):
        unpack_outcomes("not base64!", (9,))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200))
def test_mcnemar_matches_the_binomial_test(pairs: list[tuple[bool, bool]]) -> None:
    base = np.array([b for b, _ in pairs])
    cand = np.array([c for _, c in pairs])
    test = mcnemar_worse(base, cand)
    assert test.lost == int((base & ~cand).sum()) and test.gained == int((~base & cand).sum())
    discordant = test.lost + test.gained
    if discordant == 0:
        assert test.p == 1.0
    else:
        reference = binomtest(test.lost, discordant, 0.5, alternative="greater").pvalue
        assert test.p == pytest.approx(reference, rel=1e-9, abs=1e-15)


def test_mcnemar_refuses_unpaired_shapes() -> None:
    with pytest.raises(ValueError, match=r"one shape, but got \(3,\) and \(2,\)"):
        mcnemar_worse(np.ones(3, bool), np.ones(2, bool))


def holm_reference(pvalues: list[float], alpha: float) -> list[bool]:
    """Holm as adjusted p-values: max over the sorted prefix of (m - rank) p, capped at 1."""
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return [bool(a <= alpha) for a in adjusted]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=0, max_size=30), st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_matches_adjusted_p_values(pvalues: list[float], alpha: float) -> None:
    assert holm(pvalues, alpha) == holm_reference(pvalues, alpha)


def test_holm_refuses_a_bad_level() -> None:
    with pytest.raises(ValueError, match="Expected alpha in the open interval"):
        holm([0.1], 1.0)


def test_ids_round_trip_and_refusals() -> None:
    from pytest_sslrobust.paired import pack_ids, unpack_ids

    ids = ["test/0001", "test/0002", "ünïcode"]
    assert unpack_ids(pack_ids(ids)) == ids
    assert unpack_ids(pack_ids([])) == []
    with pytest.raises(ValueError, match="without newlines"):
        pack_ids(["a\nb"])
    with pytest.raises(ValueError, match="damaged"):
        unpack_ids("???")
