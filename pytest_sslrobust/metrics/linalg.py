"""Numerics shared by CKA and CCA: inputs in their dtype, power-of-two scaling, sample minimums."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import torch

from pytest_sslrobust.metrics._checks import ArrayLike, as_tensor, features

__all__ = [
    "CCA_MIN_KEPT",
    "CCA_REASON",
    "CCA_REDUCE",
    "CCA_REDUCE_KEEP",
    "CCA_SAMPLES_PER_DIM",
    "MIN_SAMPLES",
    "UNBIASED_MIN_ROWS",
    "cca_width_limit",
    "centred_unit",
    "enough_samples",
    "exponent",
    "native",
    "positive_denominator",
    "times_power_of_two",
]

# Unbiased HSIC needs n >= 4: its normalisation divides by n - 3.
UNBIASED_MIN_ROWS = 4

# The fewest samples (rows) each metric accepts, checked up front. At n = 2 the centred
# data of any non-constant input span the one direction e1 - e2, so both centred Gram
# matrices are multiples of [[1, -1], [-1, 1]] and CKA is 1 whatever the features; from
# n = 3 nothing forces the value. The CCA family also needs rank(x) + rank(y) < n (see
# CCA_REASON), which implies n >= 3.
MIN_SAMPLES: Mapping[str, int] = MappingProxyType(
    {
        "linear_cka": 3,
        "rbf_cka": 3,
        "debiased_cka": UNBIASED_MIN_ROWS,
        "minibatch_cka": UNBIASED_MIN_ROWS,
        "cca_r2": 3,
        "cca_mean": 3,
        "svcca": 3,
        "pwcca": 3,
    }
)
_MIN_SAMPLES_REASON = {
    "linear_cka": "at n = 2 both centred Gram matrices are multiples of [[1, -1], [-1, 1]] "
    "and CKA is 1 for any features",
    "rbf_cka": "at n = 2 both centred Gram matrices are multiples of [[1, -1], [-1, 1]] "
    "and CKA is 1 for any features",
    "debiased_cka": "at least 4 rows: the unbiased HSIC divides by n - 3",
    "minibatch_cka": "at least 4 rows: the unbiased HSIC divides by n - 3",
}
CCA_REASON = (
    "centred data live in n - 1 dimensions, so column spaces with rank(x) + rank(y) > n - 1 "
    "share a direction and canonical correlations of 1 appear whatever the features"
)

# Small n relative to the widths biases CCA towards 1 long before the hard bound above: for
# independent features, sum(rho_i^2) = trace(Px Py) of two projections of ranks kx and ky
# in the n - 1 centred dimensions, whose expectation is kx ky / (n - 1), so the chance level
# of R^2_CCA is max(kx, ky) / (n - 1) (measured: 0.50 at n = 401 with 200 + 200 dims).
# The CCA family therefore asks for n - 1 >= 10 max(kx, ky), a chance-level R^2 of at most
# 0.1, and by default reduces a wider side to that many top principal directions (fewer
# when 99% of its variance lies in fewer, as in SVCCA). Sides of at most CCA_MIN_KEPT
# directions are never reduced: there the directions are the signal, not a tail of noise,
# and only the hard bound guards them.
CCA_SAMPLES_PER_DIM = 10
CCA_MIN_KEPT = 4
CCA_REDUCE_KEEP = 0.99
CCA_REDUCE = ("auto", "refuse", "none")


def cca_width_limit(n: int) -> int:
    """The most directions per side the CCA family uses at ``n`` samples without reducing:
    ``(n - 1) // CCA_SAMPLES_PER_DIM`` (chance-level R^2 at most 0.1), at least
    ``CCA_MIN_KEPT``."""
    return max(CCA_MIN_KEPT, (n - 1) // CCA_SAMPLES_PER_DIM)


def native(value: ArrayLike, name: str, *, min_rows: int) -> torch.Tensor:
    """An (n, d) tensor kept in its own floating dtype (no float64 copy of a large input).

    Shape problems are reported by :func:`features`; finiteness is checked chunk by chunk.
    """
    if isinstance(value, torch.Tensor):
        dtype = value.dtype if value.is_floating_point() else torch.float64
        tensor = as_tensor(value, name, dtype=dtype)
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            return features(value, name, min_rows=min_rows)  # raises the standard message
        dtype = torch.float32 if array.dtype == np.float32 else torch.float64
        tensor = as_tensor(array, name, dtype=dtype)
    if tensor.ndim != 2 or tensor.shape[0] < min_rows or tensor.shape[1] < 1:
        features(tensor, name, min_rows=min_rows)  # raises the standard message
    return tensor


def positive_denominator(value: float, what: str, side: str) -> float:
    """Refuse a zero (or negative) denominator instead of returning NaN."""
    if not value > 0.0:
        raise ValueError(
            f"Expected {what} of {side} to be positive, but got {value!r}; the features of "
            f"{side} have (numerically) no variance, e.g. values so small their squares underflow"
        )
    return value


def enough_samples(n: int, metric: str) -> None:
    """Refuse fewer rows than ``MIN_SAMPLES[metric]``, saying why the metric needs them."""
    need = MIN_SAMPLES[metric]
    if n < need:
        reason = _MIN_SAMPLES_REASON.get(metric, CCA_REASON)
        raise ValueError(f"Expected at least {need} samples for {metric}, but got {n} ({reason})")


def exponent(value: float) -> int:
    """The power of two ``e`` with ``value / 2**e`` in [0.5, 1) (0 for 0)."""
    return math.frexp(value)[1]


def times_power_of_two(x: torch.Tensor, power: int) -> torch.Tensor:
    """``x * 2**-power``, exact for normal results; two steps so that neither factor
    overflows even for subnormal or near-overflow inputs (|power| up to 1074)."""
    half = power // 2
    return x * 2.0 ** (-half) * 2.0 ** (half - power)


def centred_unit(x: torch.Tensor) -> torch.Tensor:
    """Column-centred x scaled by a power of two so its largest entry lies in [0.5, 1).

    CKA is invariant to isotropic scaling and CCA to invertible linear maps, so the scale
    changes no metric, while squares, fourth powers and n x n sums of them then neither
    overflow (|x| near 1e77 and above) nor underflow (near 1e-77 and below). The first
    scaling keeps the column sums finite, the second acts on the centred values.
    """
    x = times_power_of_two(x, exponent(float(x.abs().max())))
    xc = x - x.mean(0)
    return times_power_of_two(xc, exponent(float(xc.abs().max())))
