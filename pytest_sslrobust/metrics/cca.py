"""Canonical correlation analysis: mean R^2 and mean CCA, SVCCA and PWCCA."""

from __future__ import annotations

import math

import numpy as np
import torch

from pytest_sslrobust.metrics._checks import ArrayLike, not_constant, paired
from pytest_sslrobust.metrics.linalg import (
    CCA_REASON,
    centred_unit,
    enough_samples,
    positive_denominator,
)

__all__ = ["cca_mean", "cca_r2", "pwcca", "svcca"]

# Singular values below this fraction of the largest are treated as zero when a centred
# feature matrix's rank is taken: they are rounding noise, and keeping them would let CCA
# report a spurious correlation of 1 along a direction that carries no data.
_RANK_RTOL = 1e-10


def _svd(matrix: torch.Tensor, what: str, *, values_only: bool = False) -> tuple[torch.Tensor, ...]:
    """``torch.linalg.svd`` (or ``svdvals``) with a non-converging LAPACK call reported as a
    ValueError about the input rather than a LinAlgError from deep inside."""
    try:
        if values_only:
            return (torch.linalg.svdvals(matrix),)
        return tuple(torch.linalg.svd(matrix, full_matrices=False))
    except (torch.linalg.LinAlgError, np.linalg.LinAlgError) as exc:
        raise ValueError(
            f"Expected the SVD of {what} to converge, but it did not ({exc}); the features "
            f"contain extreme values or are numerically degenerate"
        ) from exc


def _checked_pair(x: ArrayLike, y: ArrayLike, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired float64 features with enough rows for ``metric``, neither side constant."""
    xs, ys = paired(x, y, min_rows=1)
    enough_samples(xs.shape[0], metric)
    not_constant(xs, "x")
    not_constant(ys, "y")
    return xs, ys


def _svd_basis(x: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left singular vectors and singular values of the centred x, numerically-zero ones
    dropped (relative tolerance 1e-10), plus the centred x itself, scaled by a power of two
    (see :func:`centred_unit`; no CCA-family metric depends on the scale)."""
    xc = centred_unit(x)
    u, s, _ = _svd(xc, f"the centred {side}")
    rank = int((s > _RANK_RTOL * s[0]).sum()) if s.numel() and s[0] > 0 else 0
    return u[:, :rank], s[:rank], xc


def _cca_dimensions(n: int, kx: int, ky: int, metric: str, what: str = "rank") -> None:
    """Refuse ``kx + ky > n - 1``: the centred data live in n - 1 dimensions, so such column
    spaces share at least ``kx + ky - (n - 1)`` directions, each a canonical correlation of
    1 by construction, whatever the features."""
    need = kx + ky + 1
    if n < need:
        raise ValueError(
            f"Expected at least {need} samples for {metric} ({what}(x) + {what}(y) + 1 = "
            f"{kx} + {ky} + 1), but got {n}: {CCA_REASON}"
        )


def _cca_parts(
    x: ArrayLike, y: ArrayLike, metric: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Canonical correlations (descending), x's basis, its rotation to canonical variates, Xc."""
    xs, ys = _checked_pair(x, y, metric)
    ux, _, xc = _svd_basis(xs, "x")
    uy, _, _ = _svd_basis(ys, "y")
    for basis, side in ((ux, "x"), (uy, "y")):
        if basis.shape[1] == 0:
            raise ValueError(f"Expected the centred {side} to have rank >= 1, but got rank 0")
    _cca_dimensions(xs.shape[0], ux.shape[1], uy.shape[1], metric)
    a, rho, _ = _svd(ux.T @ uy, "the product of the orthonormal bases")
    # Singular values of a product of orthonormal bases are cosines: clip rounding past 1.
    return rho.clamp(0.0, 1.0), ux, a, xc


def cca_r2(x: ArrayLike, y: ArrayLike) -> float:
    """Mean squared canonical correlation R^2_CCA (Kornblith et al. 2019, Table 1).

    ``sum(rho_i^2) / min(rank_x, rank_y)`` where ``rho`` are the singular values of
    ``Ux^T Uy``, ``Ux``, ``Uy`` orthonormal bases of the column-centred features. The ranks
    drop singular values below 1e-10 times the largest, so redundant or constant columns do
    not count; for full-rank data this is the usual ``min(d1, d2)``. CCA is invariant to any
    invertible linear map of either side, and needs n well above d1 + d2 to mean anything:
    the centred data live in n - 1 dimensions, so column spaces with
    ``rank_x + rank_y > n - 1`` share a direction and correlations of 1 appear by
    construction. Such inputs (n <= rank_x + rank_y; in particular n < 3, ``MIN_SAMPLES``)
    are refused with a ValueError; n just above the bound is accepted but still biased
    upward. A non-converging SVD is a ValueError. The centred data are scaled by a power of
    two first, so any finite magnitude works. The same rules hold for :func:`cca_mean` and
    :func:`pwcca`.

    Args:
        x: (n, d1) features.
        y: (n, d2) features of the same n examples.

    Returns:
        A value in ``[0, 1]``.

    Example:
        >>> import torch
        >>> x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
        >>> a = torch.tensor([[2.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 3, 1], [1, 0, 0, 1]])
        >>> round(cca_r2(x, x @ a), 6)
        1.0
    """
    rho = _cca_parts(x, y, "cca_r2")[0]
    return float((rho * rho).mean())


def cca_mean(x: ArrayLike, y: ArrayLike) -> float:
    """Mean canonical correlation ``sum(rho_i) / min(rank_x, rank_y)``; see :func:`cca_r2`.

    Args:
        x: (n, d1) features.
        y: (n, d2) features of the same n examples.

    Returns:
        A value in ``[0, 1]``.

    Example:
        >>> import torch
        >>> x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
        >>> round(cca_mean(x, torch.cat([x, x[:, :1] ** 2], dim=1)), 6)
        1.0
    """
    rho = _cca_parts(x, y, "cca_mean")[0]
    return float(rho.mean())


def svcca(x: ArrayLike, y: ArrayLike, keep: float = 0.99) -> float:
    """SVCCA (Raghu et al., 2017): CCA between the top singular directions of each side.

    Each side is column-centred and decomposed ``Xc = U S V^T``; the smallest ``k`` whose
    squared singular values reach ``keep`` of the total variance is kept (at most the rank,
    1e-10 relative tolerance), the data are projected onto those ``k`` directions and the
    result is the mean of the ``min(kx, ky)`` canonical correlations between the projections.
    The reduction makes the dimension bound of :func:`cca_r2` apply to the kept directions:
    n <= kx + ky is refused (correlations of 1 by construction), as is n < 3.

    Args:
        x: (n, d1) features.
        y: (n, d2) features of the same n examples.
        keep: fraction of variance to keep on each side, in ``(0, 1]``.

    Returns:
        A value in ``[0, 1]``.

    Example:
        >>> import torch
        >>> x = torch.randn(100, 6, generator=torch.Generator().manual_seed(0))
        >>> round(svcca(x, x @ torch.diag(torch.arange(1.0, 7.0))), 6)
        1.0
    """
    if (
        isinstance(keep, bool)
        or not isinstance(keep, (int, float))
        or not (math.isfinite(keep) and 0 < keep <= 1)
    ):
        raise ValueError(f"Expected keep to be a fraction in (0, 1], but got {keep!r}")
    xs, ys = _checked_pair(x, y, "svcca")
    bases = []
    for data, side in ((xs, "x"), (ys, "y")):
        u, s, _ = _svd_basis(data, side)
        if s.numel() == 0:
            raise ValueError(f"Expected the centred {side} to have rank >= 1, but got rank 0")
        energy = torch.cumsum(s * s, 0) / (s * s).sum()
        k = min(int((energy < keep).sum()) + 1, s.numel())
        # The projection Xc V_k = U_k S_k spans the same space as U_k, its orthonormal basis.
        bases.append(u[:, :k])
    _cca_dimensions(xs.shape[0], bases[0].shape[1], bases[1].shape[1], "svcca", "kept")
    (rho,) = _svd(bases[0].T @ bases[1], "the product of the kept bases", values_only=True)
    rho = rho.clamp(0.0, 1.0)
    return float(rho.mean())


def pwcca(x: ArrayLike, y: ArrayLike) -> float:
    """Projection-weighted CCA (Morcos et al., 2018), weighted by x's neurons.

    ``sum_i alpha_i rho_i`` over the ``min(rank_x, rank_y)`` canonical correlations, with
    ``alpha_i`` proportional to ``sum_j |<h_i, x_j>|``, ``h_i`` the unit-norm canonical
    variates of x and ``x_j`` its centred columns (neurons), normalised to sum to 1. As in the
    paper x is the reference side, so the metric is not symmetric: ``pwcca(y, x)`` weights by
    y. (Google's ``compute_pwcca`` instead picks the side with fewer neurons.) Weights inside
    a group of equal correlations are not unique, but the value is then unaffected only when
    the whole group shares one correlation (e.g. identical inputs give 1).

    Args:
        x: (n, d1) features whose neurons weight the correlations.
        y: (n, d2) features of the same n examples.

    Returns:
        A value in ``[0, 1]``.

    Example:
        >>> import torch
        >>> x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
        >>> round(pwcca(x, 5 * x - 1), 6)
        1.0
    """
    rho, ux, a, xc = _cca_parts(x, y, "pwcca")
    variates = ux @ a[:, : rho.numel()]  # (n, k), orthonormal columns
    weights = (variates.T @ xc).abs().sum(1)
    total = positive_denominator(float(weights.sum()), "the projection weights", "x")
    return float((weights / total * rho).sum())
