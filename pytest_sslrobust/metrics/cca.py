"""Canonical correlation analysis: mean R^2 and mean CCA, SVCCA and PWCCA, reduced at small n."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from pytest_sslrobust.metrics._checks import ArrayLike, not_constant, paired
from pytest_sslrobust.metrics.linalg import (
    CCA_REASON,
    CCA_REDUCE,
    CCA_REDUCE_KEEP,
    CCA_SAMPLES_PER_DIM,
    cca_width_limit,
    centred_unit,
    enough_samples,
    positive_denominator,
)

__all__ = ["CCAValue", "cca_mean", "cca_r2", "pwcca", "svcca"]

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


class CCAValue(float):
    """A CCA-family value (a plain float in every use) that states the dimensions behind it.

    ``widths`` are the directions per side the metric would use whatever n (the ranks; for
    :func:`svcca` the directions holding ``keep`` of the variance), ``kept`` those it used,
    ``limit`` the most per side that n samples allow (:func:`cca_width_limit`) and ``reduce``
    the mode asked for. ``reduced`` is true when the small-n rule cut a side.
    """

    n: int
    widths: tuple[int, int]
    kept: tuple[int, int]
    limit: int
    reduce: str

    def __new__(
        cls,
        value: float,
        n: int = 0,
        widths: tuple[int, int] = (0, 0),
        kept: tuple[int, int] = (0, 0),
        limit: int = 0,
        reduce: str = "none",
    ) -> CCAValue:
        self = super().__new__(cls, value)
        self.n, self.widths, self.kept, self.limit, self.reduce = n, widths, kept, limit, reduce
        return self

    def __reduce__(self) -> tuple[type[CCAValue], tuple[Any, ...]]:
        return (type(self), (float(self), self.n, self.widths, self.kept, self.limit, self.reduce))

    @property
    def reduced(self) -> bool:
        return self.kept != self.widths

    def statement(self) -> str:
        """One line: the dimensions used and, when reduced, why and how."""
        (wx, wy), (kx, ky) = self.widths, self.kept
        if not self.reduced:
            return f"CCA on all {wx} + {wy} directions (x + y; n = {self.n})"
        return (
            f"CCA on {kx} + {ky} of {wx} + {wy} directions (x + y): n = {self.n} is below "
            f"{CCA_SAMPLES_PER_DIM} x width + 1, so each wider side kept its top principal "
            f"directions (at most {self.limit}, at most {CCA_REDUCE_KEEP:.0%} of its variance; "
            f"reduce='refuse' raises, reduce='none' keeps them all)"
        )


def _variance_count(s: torch.Tensor, keep: float) -> int:
    """The fewest leading singular directions whose squared values reach ``keep`` of the total."""
    energy = torch.cumsum(s * s, 0) / (s * s).sum()
    return min(int((energy < keep).sum()) + 1, s.numel())


def _reduce_mode(reduce: str) -> str:
    if not isinstance(reduce, str) or reduce not in CCA_REDUCE:
        raise ValueError(f"Expected reduce to be one of {CCA_REDUCE}, but got {reduce!r}")
    return reduce


def _too_wide(n: int, widths: tuple[int, int], limit: int, metric: str) -> str:
    need = CCA_SAMPLES_PER_DIM * max(widths) + 1
    return (
        f"Expected n >= {need} samples for {metric} on {widths[0]} + {widths[1]} directions "
        f"(x + y; {CCA_SAMPLES_PER_DIM} x width + 1, a chance-level R^2 of at most "
        f"{1 / CCA_SAMPLES_PER_DIM:g}), but got n = {n}: pass reduce='auto' to keep at most "
        f"{limit} top principal directions per side, or use more samples"
    )


class _Bases:
    """Both sides' orthonormal bases of the directions CCA uses, x centred, and the counts.

    ``keep=None`` uses each side's rank (cca_r2, cca_mean, pwcca); a fraction first keeps the
    directions holding that much variance (svcca). A side wider than :func:`cca_width_limit`
    is cut SVCCA-style under ``"auto"``; ``"refuse"`` raises, ``"none"`` uses it whole.
    """

    def __init__(
        self, x: ArrayLike, y: ArrayLike, metric: str, reduce: str, keep: float | None = None
    ) -> None:
        mode = _reduce_mode(reduce)
        xs, ys = _checked_pair(x, y, metric)
        self.n, self.mode = int(xs.shape[0]), mode
        sides = [_svd_basis(xs, "x"), _svd_basis(ys, "y")]
        for (_, s, _), side in zip(sides, ("x", "y"), strict=True):
            if s.numel() == 0:
                raise ValueError(f"Expected the centred {side} to have rank >= 1, but got rank 0")
        wx, wy = (s.numel() if keep is None else _variance_count(s, keep) for _, s, _ in sides)
        what = "rank" if keep is None else "kept"
        self.limit = cca_width_limit(self.n)
        self.widths = (wx, wy)
        if max(self.widths) > self.limit and mode == "refuse":
            raise ValueError(_too_wide(self.n, self.widths, self.limit, metric))
        target = CCA_REDUCE_KEEP if keep is None else keep
        kx, ky = (
            min(self.limit, _variance_count(s, target))
            if mode == "auto" and width > self.limit
            else width
            for (_, s, _), width in zip(sides, self.widths, strict=True)
        )
        self.kept = (kx, ky)
        _cca_dimensions(self.n, kx, ky, metric, what)
        self.ux, self.uy, self.xc = sides[0][0][:, :kx], sides[1][0][:, :ky], sides[0][2]

    def value(self, value: float) -> CCAValue:
        return CCAValue(value, self.n, self.widths, self.kept, self.limit, self.mode)


def _cca_parts(
    x: ArrayLike, y: ArrayLike, metric: str, reduce: str
) -> tuple[torch.Tensor, torch.Tensor, _Bases]:
    """Canonical correlations (descending), x's rotation to canonical variates, the bases."""
    bases = _Bases(x, y, metric, reduce)
    a, rho, _ = _svd(bases.ux.T @ bases.uy, "the product of the orthonormal bases")
    # Singular values of a product of orthonormal bases are cosines: clip rounding past 1.
    return rho.clamp(0.0, 1.0), a, bases


def cca_r2(x: ArrayLike, y: ArrayLike, *, reduce: str = "auto") -> CCAValue:
    """Mean squared canonical correlation R^2_CCA (Kornblith et al. 2019, Table 1).

    ``sum(rho_i^2) / min(kx, ky)`` where ``rho`` are the singular values of ``Ux^T Uy``,
    ``Ux``, ``Uy`` orthonormal bases of the column-centred features. The widths ``kx``, ``ky``
    are the ranks (singular values below 1e-10 times the largest dropped, so redundant or
    constant columns do not count; for full-rank data ``d1``, ``d2``). CCA is invariant to
    any invertible linear map of either side, and needs n well above the widths to mean
    anything: for independent features the expected ``sum(rho_i^2)`` is ``kx ky / (n - 1)``,
    a chance level of ``max(kx, ky) / (n - 1)``. Widths up to ``cca_width_limit(n)`` (n >=
    10 x width + 1, a chance level of at most 0.1; and any width up to 4, whose chance level
    at tiny n only the hard bound below limits) are used whole and give the exact CCA; a
    wider side is reduced by default (see ``reduce``), which trades the invariance to
    invertible maps for a meaningful value. Independent Gaussian features, n = 401, 200 +
    200 dims: 0.501 with ``reduce="none"``, 0.101 reduced (40 + 40 kept); at n = 300
    ``"none"`` is refused (200 + 200 > 299) and the default gives 0.095 (29 + 29 kept);
    correlated ones (``y = x Q + 0.05 noise``, Q a rotation, n = 401) 0.998 and 0.993.
    Whatever the mode, ``kx + ky > n - 1`` (column spaces sharing a direction, correlations
    of 1 by construction; in particular n < 3, ``MIN_SAMPLES``) is refused with a
    ValueError, as is a non-converging SVD. The centred data are scaled by a power of two
    first, so any finite magnitude works. The same rules hold for :func:`cca_mean` and
    :func:`pwcca`.

    Args:
        x: (n, d1) features.
        y: (n, d2) features of the same n examples.
        reduce: what to do with a side wider than ``cca_width_limit(n) = max(4, (n - 1) //
            10)`` directions: ``"auto"`` keeps its top principal directions, at most that
            many and at most those holding 99% of its variance (SVCCA-style), ``"refuse"``
            raises a ValueError naming n and the widths, ``"none"`` uses them all.

    Returns:
        A value in ``[0, 1]``: a float whose ``kept``, ``widths`` and ``statement()`` say the
        dimensions used (:class:`CCAValue`).

    Example:
        >>> import torch
        >>> x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
        >>> a = torch.tensor([[2.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 3, 1], [1, 0, 0, 1]])
        >>> value = cca_r2(x, x @ a)
        >>> round(value, 6), value.kept
        (1.0, (4, 4))
    """
    rho, _, bases = _cca_parts(x, y, "cca_r2", reduce)
    return bases.value(float((rho * rho).mean()))


def cca_mean(x: ArrayLike, y: ArrayLike, *, reduce: str = "auto") -> CCAValue:
    """Mean canonical correlation ``sum(rho_i) / min(kx, ky)``; see :func:`cca_r2`.

    Its chance level for independent features is higher than R^2's (about the root of it):
    n = 401, 200 + 200 dims: 0.638 with ``reduce="none"``, 0.272 reduced.

    Args:
        x: (n, d1) features.
        y: (n, d2) features of the same n examples.
        reduce: ``"auto"``, ``"refuse"`` or ``"none"``, as in :func:`cca_r2`.

    Returns:
        A value in ``[0, 1]`` (a :class:`CCAValue`).

    Example:
        >>> import torch
        >>> x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
        >>> round(cca_mean(x, torch.cat([x, x[:, :1] ** 2], dim=1)), 6)
        1.0
    """
    rho, _, bases = _cca_parts(x, y, "cca_mean", reduce)
    return bases.value(float(rho.mean()))


def svcca(x: ArrayLike, y: ArrayLike, keep: float = 0.99, *, reduce: str = "auto") -> CCAValue:
    """SVCCA (Raghu et al., 2017): CCA between the top singular directions of each side.

    Each side is column-centred and decomposed ``Xc = U S V^T``; the smallest ``k`` whose
    squared singular values reach ``keep`` of the total variance is kept (at most the rank,
    1e-10 relative tolerance), the data are projected onto those ``k`` directions and the
    result is the mean of the ``min(kx, ky)`` canonical correlations between the projections.
    The small-n rule of :func:`cca_r2` applies to the kept directions: under ``"auto"`` a
    side keeping more than ``cca_width_limit(n)`` keeps only that many. n <= kx + ky is
    refused (correlations of 1 by construction), as is n < 3. Independent Gaussian
    features, n = 401, 200 + 200 dims: 0.612 with ``reduce="none"``, 0.272 reduced.

    Args:
        x: (n, d1) features.
        y: (n, d2) features of the same n examples.
        keep: fraction of variance to keep on each side, in ``(0, 1]``.
        reduce: ``"auto"``, ``"refuse"`` or ``"none"``, as in :func:`cca_r2`.

    Returns:
        A value in ``[0, 1]`` (a :class:`CCAValue`; ``widths`` are the directions ``keep``
        retains).

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
    # The projection Xc V_k = U_k S_k spans the same space as U_k, its orthonormal basis.
    bases = _Bases(x, y, "svcca", reduce, keep)
    (rho,) = _svd(bases.ux.T @ bases.uy, "the product of the kept bases", values_only=True)
    return bases.value(float(rho.clamp(0.0, 1.0).mean()))


def pwcca(x: ArrayLike, y: ArrayLike, *, reduce: str = "auto") -> CCAValue:
    """Projection-weighted CCA (Morcos et al., 2018), weighted by x's neurons.

    ``sum_i alpha_i rho_i`` over the ``min(kx, ky)`` canonical correlations, with
    ``alpha_i`` proportional to ``sum_j |<h_i, x_j>|``, ``h_i`` the unit-norm canonical
    variates of x and ``x_j`` its centred columns (neurons), normalised to sum to 1. As in the
    paper x is the reference side, so the metric is not symmetric: ``pwcca(y, x)`` weights by
    y. (Google's ``compute_pwcca`` instead picks the side with fewer neurons.) Weights inside
    a group of equal correlations are not unique, but the value is then unaffected only when
    the whole group shares one correlation (e.g. identical inputs give 1). Widths, the
    small-n reduction (the variates then lie in x's kept directions, the weights still use
    every neuron) and refusals as in :func:`cca_r2`.

    Args:
        x: (n, d1) features whose neurons weight the correlations.
        y: (n, d2) features of the same n examples.
        reduce: ``"auto"``, ``"refuse"`` or ``"none"``, as in :func:`cca_r2`.

    Returns:
        A value in ``[0, 1]`` (a :class:`CCAValue`).

    Example:
        >>> import torch
        >>> x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
        >>> round(pwcca(x, 5 * x - 1), 6)
        1.0
    """
    rho, a, bases = _cca_parts(x, y, "pwcca", reduce)
    variates = bases.ux @ a[:, : rho.numel()]  # (n, k), orthonormal columns
    weights = (variates.T @ bases.xc).abs().sum(1)
    total = positive_denominator(float(weights.sum()), "the projection weights", "x")
    return bases.value(float((weights / total * rho).sum()))
