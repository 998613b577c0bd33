"""Representational similarity: linear, RBF, debiased and minibatch CKA; CCA, SVCCA and PWCCA."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch

from pytest_sslrobust.metrics._checks import ArrayLike, as_tensor, features, not_constant, paired

__all__ = [
    "MIN_SAMPLES",
    "MinibatchCKA",
    "SimilarityMatrix",
    "cca_mean",
    "cca_r2",
    "debiased_cka",
    "linear_cka",
    "minibatch_cka",
    "pwcca",
    "rbf_cka",
    "similarity_matrix",
    "svcca",
]

# Rows per chunk in the feature-space pass: a float64 chunk of 16,384 x 1,024 is 128 MB, so
# the peak memory stays O(d^2 + chunk * d) however many examples there are.
_CHUNK_ROWS = 16_384

# rbf_cka holds about three n x n float64 matrices at once (9.6 GB at this n).
RBF_MAX_ROWS = 20_000

# Singular values below this fraction of the largest are treated as zero when a centred
# feature matrix's rank is taken: they are rounding noise, and keeping them would let CCA
# report a spurious correlation of 1 along a direction that carries no data.
_RANK_RTOL = 1e-10

# Unbiased HSIC needs n >= 4: its normalisation divides by n - 3.
_UNBIASED_MIN_ROWS = 4

# The fewest samples (rows) each metric accepts, checked up front. At n = 2 the centred
# data of any non-constant input span the one direction e1 - e2, so both centred Gram
# matrices are multiples of [[1, -1], [-1, 1]] and CKA is 1 whatever the features; from
# n = 3 nothing forces the value. The CCA family also needs rank(x) + rank(y) < n (see
# _CCA_REASON), which implies n >= 3.
MIN_SAMPLES: Mapping[str, int] = MappingProxyType(
    {
        "linear_cka": 3,
        "rbf_cka": 3,
        "debiased_cka": _UNBIASED_MIN_ROWS,
        "minibatch_cka": _UNBIASED_MIN_ROWS,
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
_CCA_REASON = (
    "centred data live in n - 1 dimensions, so column spaces with rank(x) + rank(y) > n - 1 "
    "share a direction and canonical correlations of 1 appear whatever the features"
)

# A self-HSIC below this fraction of its scale (sum(k)^2 / (n (n - 3)), which bounds every
# term of the estimator) has lost more than half of its float64 digits to cancellation:
# the ratio would be rounding noise (3.5 was measured at n = 4), not a similarity.
_UNBIASED_RTOL = 1e-8


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def _native(value: ArrayLike, name: str, *, min_rows: int) -> torch.Tensor:
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


def _chunk64(tensor: torch.Tensor, start: int, stop: int, name: str) -> torch.Tensor:
    """Rows ``start:stop`` as a checked float64 tensor."""
    try:
        return features(tensor[start:stop], name, min_rows=1)
    except ValueError:
        features(tensor, name)  # re-raise with the count over the whole input
        raise


def _positive(value: float, what: str, side: str) -> float:
    """Refuse a zero (or negative) denominator instead of returning NaN."""
    if not value > 0.0:
        raise ValueError(
            f"Expected {what} of {side} to be positive, but got {value!r}; the features of "
            f"{side} have (numerically) no variance, e.g. values so small their squares underflow"
        )
    return value


@dataclass
class _Moments:
    """Second-order statistics of centred features, enough for biased and unbiased HSIC.

    ``xy = ||Yc^T Xc||_F^2 = tr(Kc Lc)``, ``xx``, ``yy`` likewise; ``kx`` are the squared row
    norms of ``Xc`` (the diagonal of the centred linear Gram matrix).
    """

    n: int
    xy: float
    xx: float
    yy: float
    sum_kx: float
    sum_ky: float
    kx_kx: float
    ky_ky: float
    kx_ky: float


def _moments(x: ArrayLike, y: ArrayLike, metric: str) -> _Moments:
    """Centred linear-kernel statistics of x and y without n x n matrices when n >= d.

    Each side is scaled by a power of two as in :func:`_centred_unit` (CKA ignores the
    scale), so the statistics stay finite and nonzero for any finite input.
    """
    tx = _native(x, "x", min_rows=1)
    ty = _native(y, "y", min_rows=1)
    n = tx.shape[0]
    if ty.shape[0] != n:
        paired(tx, ty, min_rows=1)  # raises the standard message
    _enough_samples(n, metric)
    d1, d2 = tx.shape[1], ty.shape[1]
    device = tx.device
    if max(d1, d2) > n:
        # Wide features: the n x n Gram matrices are the smaller objects.
        xc, yc = paired(tx, ty, min_rows=1)
        not_constant(xc, "x")
        not_constant(yc, "y")
        xc, yc = _centred_unit(xc), _centred_unit(yc)
        gram_x, gram_y = xc @ xc.T, yc @ yc.T
        kx, ky = gram_x.diagonal(), gram_y.diagonal()
        return _Moments(
            n=n,
            xy=float(torch.dot(gram_x.reshape(-1), gram_y.reshape(-1))),
            xx=float(torch.dot(gram_x.reshape(-1), gram_x.reshape(-1))),
            yy=float(torch.dot(gram_y.reshape(-1), gram_y.reshape(-1))),
            sum_kx=float(kx.sum()),
            sum_ky=float(ky.sum()),
            kx_kx=float(kx @ kx),
            ky_ky=float(ky @ ky),
            kx_ky=float(kx @ ky),
        )

    # Chunked passes, one float64 chunk alive at a time (a named chunk would survive into
    # the next iteration's allocation and double the peak): checks and the largest |value|;
    # column means of the scaled data; the largest centred |value|; then the centred
    # products. Means first, then centred products, rather than raw moments minus mean
    # products, which cancel catastrophically for offset data. The extra passes are O(n d)
    # beside the O(n d^2) products.
    first_x, first_y = tx[:1], ty[:1].to(device)
    varies_x = varies_y = False
    top_x = top_y = 0.0
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        top_x = max(top_x, float(_chunk64(tx, start, stop, "x").abs().max()))
        top_y = max(top_y, float(_chunk64(ty, start, stop, "y").abs().max()))
        varies_x = varies_x or bool((tx[start:stop] != first_x).any())
        varies_y = varies_y or bool((ty[start:stop].to(device) != first_y).any())
    if not varies_x:
        not_constant(tx, "x")
    if not varies_y:
        not_constant(ty, "y")
    raw_x, raw_y = _exponent(top_x), _exponent(top_y)

    sum_x = torch.zeros(d1, dtype=torch.float64, device=device)
    sum_y = torch.zeros(d2, dtype=torch.float64, device=device)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        sum_x += _scaled_chunk(tx[start:stop], device, raw_x).sum(0)
        sum_y += _scaled_chunk(ty[start:stop], device, raw_y).sum(0)
    mean_x, mean_y = sum_x / n, sum_y / n

    top_x = top_y = 0.0
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        cx = _scaled_chunk(tx[start:stop], device, raw_x, mean_x)
        top_x = max(top_x, float(cx.abs_().max()))
        del cx
        cy = _scaled_chunk(ty[start:stop], device, raw_y, mean_y)
        top_y = max(top_y, float(cy.abs_().max()))
        del cy
    centred_x, centred_y = _exponent(top_x), _exponent(top_y)

    xtx = torch.zeros(d1, d1, dtype=torch.float64, device=device)
    yty = torch.zeros(d2, d2, dtype=torch.float64, device=device)
    ytx = torch.zeros(d2, d1, dtype=torch.float64, device=device)
    sums = torch.zeros(5, dtype=torch.float64, device=device)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        cx = _scaled_chunk(tx[start:stop], device, raw_x, mean_x, centred_x)
        cy = _scaled_chunk(ty[start:stop], device, raw_y, mean_y, centred_y)
        xtx += cx.T @ cx
        yty += cy.T @ cy
        ytx += cy.T @ cx
        # Row norms without a chunk-sized (cx * cx) temporary.
        kx = torch.linalg.vector_norm(cx, dim=1).square_()
        ky = torch.linalg.vector_norm(cy, dim=1).square_()
        sums += torch.stack([kx.sum(), ky.sum(), kx @ kx, ky @ ky, kx @ ky])
        del cx, cy  # free before the next chunk is allocated
    sum_kx, sum_ky, kx_kx, ky_ky, kx_ky = sums.tolist()
    return _Moments(
        n=n,
        xy=float(torch.dot(ytx.reshape(-1), ytx.reshape(-1))),
        xx=float(torch.dot(xtx.reshape(-1), xtx.reshape(-1))),
        yy=float(torch.dot(yty.reshape(-1), yty.reshape(-1))),
        sum_kx=sum_kx,
        sum_ky=sum_ky,
        kx_kx=kx_kx,
        ky_ky=ky_ky,
        kx_ky=kx_ky,
    )


def _scaled_chunk(
    chunk: torch.Tensor,
    device: torch.device,
    raw: int,
    mean: torch.Tensor | None = None,
    centred: int = 0,
) -> torch.Tensor:
    """A float64 copy of a chunk on ``device`` times ``2**-raw``, then, with ``mean``, minus
    the (scaled) column means and times ``2**-centred``: one chunk-sized buffer, changed in
    place (never the caller's own tensor)."""
    out = chunk.to(device=device, dtype=torch.float64)
    if out is chunk:
        out = out.clone()
    half = raw // 2
    out.mul_(2.0 ** (-half)).mul_(2.0 ** (half - raw))
    if mean is not None:
        half = centred // 2
        out.sub_(mean).mul_(2.0 ** (-half)).mul_(2.0 ** (half - centred))
    return out


def _unbiased_hsic(frob: float, sum_k: float, sum_l: float, k_l: float, n: int) -> float:
    """Song et al. (2012) unbiased HSIC of linear kernels from centred-feature statistics.

    With zero-diagonal Grams K~, L~: ``[tr(K~L~) + (1'K~1)(1'L~1) / ((n-1)(n-2))
    - 2 / (n-2) * 1'K~L~1] / (n(n-3))``. The estimator is unchanged by centring the features
    (it cancels symmetric rank-one shifts of K), and for centred features K 1 = 0, so
    ``tr(K~L~) = ||Yc^T Xc||_F^2 - k.l``, ``1'K~1 = -sum(k)`` and ``1'K~L~1 = k.l``, where
    k, l are the Gram diagonals.
    """
    trace = frob - k_l
    return (trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 * k_l / (n - 2)) / (n * (n - 3))


def _centred(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(0)


def _enough_samples(n: int, metric: str) -> None:
    """Refuse fewer rows than ``MIN_SAMPLES[metric]``, saying why the metric needs them."""
    need = MIN_SAMPLES[metric]
    if n < need:
        reason = _MIN_SAMPLES_REASON.get(metric, _CCA_REASON)
        raise ValueError(f"Expected at least {need} samples for {metric}, but got {n} ({reason})")


def _exponent(value: float) -> int:
    """The power of two ``e`` with ``value / 2**e`` in [0.5, 1) (0 for 0)."""
    return math.frexp(value)[1]


def _times_power_of_two(x: torch.Tensor, exponent: int) -> torch.Tensor:
    """``x * 2**-exponent``, exact for normal results; two steps so that neither factor
    overflows even for subnormal or near-overflow inputs (|exponent| up to 1074)."""
    half = exponent // 2
    return x * 2.0 ** (-half) * 2.0 ** (half - exponent)


def _centred_unit(x: torch.Tensor) -> torch.Tensor:
    """Column-centred x scaled by a power of two so its largest entry lies in [0.5, 1).

    CKA is invariant to isotropic scaling and CCA to invertible linear maps, so the scale
    changes no metric, while squares, fourth powers and n x n sums of them then neither
    overflow (|x| near 1e77 and above) nor underflow (near 1e-77 and below). The first
    scaling keeps the column sums finite, the second acts on the centred values.
    """
    x = _times_power_of_two(x, _exponent(float(x.abs().max())))
    xc = x - x.mean(0)
    return _times_power_of_two(xc, _exponent(float(xc.abs().max())))


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


# --------------------------------------------------------------------------------------------
# CKA
# --------------------------------------------------------------------------------------------


def linear_cka(x: ArrayLike, y: ArrayLike) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019), in feature space.

    ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred ``Xc``, ``Yc``.
    When ``n >= max(d1, d2)`` only d x d matrices are formed, accumulated over chunks of
    16,384 rows after a first pass for the column means, so time is O(n d^2) and the extra
    memory O(d^2 + 16,384 d) (n = 100,000 x d = 1,024 float32 needs about 0.3 GB beyond the
    input, which is never copied whole); wider features (d > n) use the n x n Gram matrices
    instead. Invariant to orthogonal maps and isotropic scaling of either side, not to
    general invertible linear maps. Needs n >= 3 (``MIN_SAMPLES``): at n = 2 both centred
    Gram matrices are multiples of ``[[1, -1], [-1, 1]]`` and the value would be 1 for any
    features. Each side is scaled by a power of two after centring, so any finite
    magnitude (1e-300 .. 1e300) gives the value at scale 1.

    Args:
        x: (n, d1) features, torch tensor on any device or array, n >= 3.
        y: (n, d2) features of the same n examples.

    Returns:
        The similarity in ``[0, 1]``; 1 when one side is an orthogonal map of the other
        times a scalar.

    Example:
        >>> import torch
        >>> x = torch.randn(100, 8, generator=torch.Generator().manual_seed(0))
        >>> round(linear_cka(x, 3 * x), 6)
        1.0
    """
    m = _moments(x, y, "linear_cka")
    denominator = math.sqrt(_positive(m.xx, "||Xc^T Xc||", "x")) * math.sqrt(
        _positive(m.yy, "||Yc^T Yc||", "y")
    )
    # Cauchy-Schwarz bounds it by 1; clip the last-bit rounding excess.
    return min(1.0, max(0.0, m.xy / denominator))


def _rbf_centred_gram(x: torch.Tensor, threshold: float, name: str) -> torch.Tensor:
    """Centred RBF Gram matrix H K H, built in place to hold one n x n buffer."""
    # Distances are translation-invariant, centring limits cancellation, and the median
    # bandwidth makes the kernel scale-invariant: a power-of-two scale keeps squares finite.
    x = _centred_unit(x)
    sq = (x * x).sum(1)
    gram = x @ x.T
    gram.mul_(-2.0).add_(sq[:, None]).add_(sq[None, :]).clamp_(min=0.0)
    gram.fill_diagonal_(0.0)
    # Median of the full n x n matrix, zero diagonal included (as the reference notebook's
    # np.median(dist)): the mean of the two middle values when n^2 is even.
    flat = gram.reshape(-1)
    total = flat.numel()
    if total % 2:
        median = float(torch.kthvalue(flat, (total + 1) // 2).values)
    else:
        low = torch.kthvalue(flat, total // 2).values
        high = torch.kthvalue(flat, total // 2 + 1).values
        median = float((low + high) / 2)
    if not median > 0.0:
        raise ValueError(
            f"Expected the median squared distance between rows of {name} to be positive, but "
            f"got {median!r}: at least half of the pairs of rows are identical"
        )
    gram.mul_(-1.0 / (2.0 * threshold**2 * median)).exp_()
    means = gram.mean(0)  # K is symmetric, so row and column means coincide
    gram.sub_(means[None, :]).sub_(means[:, None]).add_(means.mean())
    return gram


def rbf_cka(x: ArrayLike, y: ArrayLike, threshold: float = 0.5) -> float:
    """CKA with Gaussian (RBF) kernels and the median-distance bandwidth (Kornblith et al.).

    ``K_ij = exp(-||x_i - x_j||^2 / (2 t^2 m))`` with ``t = threshold`` and ``m`` the median
    of the full n x n matrix of squared distances (diagonal zeros included), chosen
    separately for x and y; HSIC uses the biased centring ``H K H``. This is O(n^2 d) time and
    O(n^2) memory (about three n x n float64 matrices, 9.6 GB at n = 20,000), so inputs with
    more than 20,000 rows are refused: use :func:`linear_cka` or :func:`minibatch_cka`.
    Needs n >= 3, as :func:`linear_cka`; the centred features are scaled by a power of two
    (the median bandwidth makes the kernel scale-invariant) so squares never overflow.

    Args:
        x: (n, d1) features, torch tensor on any device or array.
        y: (n, d2) features of the same n examples.
        threshold: bandwidth as a fraction of the median distance, ``t > 0``; large values
            approach linear CKA.

    Returns:
        The similarity in ``[0, 1]``.

    Example:
        >>> import torch
        >>> x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
        >>> round(rbf_cka(x, 2 * x + 1), 6)
        1.0
    """
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not (math.isfinite(threshold) and threshold > 0)
    ):
        raise ValueError(
            f"Expected threshold to be a positive finite number, but got {threshold!r}"
        )
    xs, ys = paired(x, y, min_rows=1)
    _enough_samples(xs.shape[0], "rbf_cka")
    if xs.shape[0] > RBF_MAX_ROWS:
        raise ValueError(
            f"Expected at most {RBF_MAX_ROWS} rows for rbf_cka (it needs O(n^2) memory), but got "
            f"{xs.shape[0]}; use linear_cka or minibatch_cka for large n"
        )
    not_constant(xs, "x")
    not_constant(ys, "y")
    kc = _rbf_centred_gram(xs, float(threshold), "x")
    norm_x = _positive(float(torch.linalg.vector_norm(kc)), "the centred RBF Gram norm", "x")
    lc = _rbf_centred_gram(ys, float(threshold), "y")
    norm_y = _positive(float(torch.linalg.vector_norm(lc)), "the centred RBF Gram norm", "y")
    hsic = float(torch.dot(kc.reshape(-1), lc.reshape(-1)))
    return min(1.0, max(0.0, hsic / (norm_x * norm_y)))


def _debiased_from(m: _Moments) -> tuple[float, float, float]:
    """Unbiased HSIC(x, y), HSIC(x, x), HSIC(y, y)."""
    return (
        _unbiased_hsic(m.xy, m.sum_kx, m.sum_ky, m.kx_ky, m.n),
        _unbiased_hsic(m.xx, m.sum_kx, m.sum_kx, m.kx_kx, m.n),
        _unbiased_hsic(m.yy, m.sum_ky, m.sum_ky, m.ky_ky, m.n),
    )


def _hsic_scales(m: _Moments) -> tuple[float, float]:
    """``sum(k)^2 / (n (n - 3))`` per side: a bound on every term of the unbiased self-HSIC
    (each of tr(K~K~), (1'K~1)^2 / ((n-1)(n-2)) and 1'K~K~1 is at most sum(k)^2), so the
    rounding error of the estimate is a small multiple of eps times this."""
    norm = m.n * (m.n - 3)
    return m.sum_kx * m.sum_kx / norm, m.sum_ky * m.sum_ky / norm


def _cka_from_hsic(
    hsic_xy: float, hsic_xx: float, hsic_yy: float, scale_x: float, scale_y: float
) -> float:
    """Debiased CKA from unbiased HSICs, refusing self-HSICs that are rounding noise.

    The unbiased HSIC is the inner product of U-centred Gram matrices (Szekely & Rizzo
    2014), so Cauchy-Schwarz bounds the ratio by 1 in exact arithmetic; a self-HSIC at
    rounding level relative to ``scale`` (a U-centred Gram matrix that is numerically
    zero, e.g. three equal rows and one apart at n = 4) would leave that bound, so it is
    refused, and the last-bit excess of valid inputs is clipped.
    """
    for value, scale, side in ((hsic_xx, scale_x, "x"), (hsic_yy, scale_y, "y")):
        _positive(value, f"the unbiased HSIC({side}, {side})", side)
        if not value > _UNBIASED_RTOL * scale:
            raise ValueError(
                f"Expected the unbiased HSIC({side}, {side}) of {side} to be positive beyond "
                f"rounding (above {_UNBIASED_RTOL:g} of its scale {scale!r}), but got {value!r}: "
                f"the U-centred Gram matrix of {side} is numerically zero (e.g. all rows but one "
                f"equal), so the debiased CKA would be rounding noise"
            )
    return min(1.0, max(-1.0, hsic_xy / math.sqrt(hsic_xx * hsic_yy)))


def debiased_cka(x: ArrayLike, y: ArrayLike) -> float:
    """Linear CKA with the unbiased HSIC estimator of Song et al. (2012).

    Replaces the biased HSIC of :func:`linear_cka` in numerator and denominator, which removes
    the positive bias of CKA between unrelated features at small n (Kornblith et al. 2019,
    appendix). Computed from centred-feature statistics in the same chunked O(n d^2) pass as
    :func:`linear_cka`, so it has no n limit. Needs n >= 4 (the estimator divides by
    n - 3). The estimator is an inner product of U-centred Gram matrices (Szekely & Rizzo
    2014), so the value lies in ``[-1, 1]`` and can be negative: it is an estimate, not a
    score in ``[0, 1]``. If the unbiased self-HSIC of a side is not positive, or is below
    1e-8 of its scale ``sum(k)^2 / (n (n - 3))`` (a U-centred Gram matrix that is zero up to
    rounding, e.g. three equal rows and one apart at n = 4, where the ratio was measured at
    -4.0), a ValueError names the side; the rounding excess of valid inputs is clipped to
    ``[-1, 1]``. Scaled like :func:`linear_cka`, so any finite magnitude works.

    Args:
        x: (n, d1) features, n >= 4.
        y: (n, d2) features of the same n examples.

    Returns:
        The debiased similarity; near 0 for independent features, 1 for identical ones.

    Example:
        >>> import torch
        >>> x = torch.randn(100, 8, generator=torch.Generator().manual_seed(0))
        >>> round(debiased_cka(x, -x), 6)
        1.0
    """
    m = _moments(x, y, "debiased_cka")
    return _cka_from_hsic(*_debiased_from(m), *_hsic_scales(m))


class MinibatchCKA:
    """Streaming minibatch CKA (Nguyen et al., 2021): sums of per-batch unbiased HSIC.

    ``CKA = sum_b HSIC_1(X_b, Y_b) / sqrt(sum_b HSIC_1(X_b, X_b) * sum_b HSIC_1(Y_b, Y_b))``
    with the unbiased estimator of :func:`debiased_cka` on each batch, so memory is that of one
    batch and the result does not depend on how many batches there are beyond sampling noise.
    With one batch of all n rows it equals :func:`debiased_cka`. Every batch needs at least 4
    rows and the same feature widths as the first.

    Example:
        >>> import torch
        >>> x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
        >>> metric = MinibatchCKA()
        >>> for start in range(0, 300, 100):
        ...     metric.update(x[start : start + 100], 2 * x[start : start + 100])
        >>> round(metric.compute(), 6)
        1.0
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every batch seen so far."""
        self.batches = 0
        self.rows = 0
        self._widths: tuple[int, int] | None = None
        self._hsic = [0.0, 0.0, 0.0]  # xy, xx, yy
        self._scales = [0.0, 0.0]  # summed rounding scales of HSIC(x, x), HSIC(y, y)

    def update(self, x_batch: ArrayLike, y_batch: ArrayLike) -> None:
        """Add one batch of paired features, ``(b, d1)`` and ``(b, d2)`` with ``b >= 4``.

        Args:
            x_batch: the batch's features from the first representation.
            y_batch: the same examples' features from the second representation.
        """
        m = _batch_moments(x_batch, y_batch, self.batches)
        widths = (m[1], m[2])
        if self._widths is not None and widths != self._widths:
            raise ValueError(
                f"Expected every batch to have feature widths {self._widths}, but batch "
                f"{self.batches} has {widths}"
            )
        self._widths = widths
        for i, value in enumerate(_debiased_from(m[0])):
            self._hsic[i] += value
        for i, value in enumerate(_hsic_scales(m[0])):
            self._scales[i] += value
        self.batches += 1
        self.rows += m[0].n

    def compute(self) -> float:
        """The minibatch CKA over every batch so far.

        Returns:
            Summed unbiased HSIC(x, y) over the root of the product of the summed self-HSICs.
        """
        if not self.batches:
            raise ValueError("Expected at least one batch before compute(), but got none")
        return _cka_from_hsic(*self._hsic, *self._scales)


def _exactly_centred(x: torch.Tensor) -> torch.Tensor:
    """Centred batch; a constant batch becomes exact zeros (the rounded mean would leave
    1e-17-sized residues that are pure noise yet enter the HSIC sums)."""
    try:
        not_constant(x, "batch")
    except ValueError:
        return torch.zeros_like(x)
    return _centred(x)


def _batch_moments(x: ArrayLike, y: ArrayLike, index: int) -> tuple[_Moments, int, int]:
    """Centred statistics of one batch. Unlike the whole-input metrics a constant batch is
    accepted (it contributes zero HSIC); only the sums must end up positive."""
    xs, ys = _native(x, "x_batch", min_rows=1), _native(y, "y_batch", min_rows=1)
    if xs.shape[0] < _UNBIASED_MIN_ROWS or ys.shape[0] < _UNBIASED_MIN_ROWS:
        raise ValueError(
            f"Expected every batch to have at least {_UNBIASED_MIN_ROWS} rows (the unbiased HSIC "
            f"divides by n - 3), but batch {index} has {xs.shape[0]} and {ys.shape[0]}"
        )
    xs, ys = paired(xs, ys, min_rows=_UNBIASED_MIN_ROWS)
    xc, yc = _exactly_centred(xs), _exactly_centred(ys)
    if max(xc.shape[1], yc.shape[1]) > xc.shape[0]:
        gram_x, gram_y = xc @ xc.T, yc @ yc.T
        xy = float(torch.dot(gram_x.reshape(-1), gram_y.reshape(-1)))
        xx = float(torch.dot(gram_x.reshape(-1), gram_x.reshape(-1)))
        yy = float(torch.dot(gram_y.reshape(-1), gram_y.reshape(-1)))
    else:
        xy = float(torch.linalg.matrix_norm(yc.T @ xc) ** 2)
        xx = float(torch.linalg.matrix_norm(xc.T @ xc) ** 2)
        yy = float(torch.linalg.matrix_norm(yc.T @ yc) ** 2)
    kx, ky = (xc * xc).sum(1), (yc * yc).sum(1)
    moments = _Moments(
        n=xc.shape[0],
        xy=xy,
        xx=xx,
        yy=yy,
        sum_kx=float(kx.sum()),
        sum_ky=float(ky.sum()),
        kx_kx=float(kx @ kx),
        ky_ky=float(ky @ ky),
        kx_ky=float(kx @ ky),
    )
    return moments, xs.shape[1], ys.shape[1]


def minibatch_cka(x: ArrayLike, y: ArrayLike, batch_size: int = 1024) -> float:
    """Minibatch CKA (Nguyen et al., 2021) over materialised features, batches in row order.

    Rows ``[0, batch_size)``, ``[batch_size, 2 batch_size)``, ... form the batches (shuffle
    first if the order is meaningful); see :class:`MinibatchCKA` for the estimator. Every
    batch, including the last, needs at least 4 rows.

    Args:
        x: (n, d1) features.
        y: (n, d2) features of the same n examples.
        batch_size: rows per batch, at least 4.

    Returns:
        The minibatch CKA; equals :func:`debiased_cka` when ``batch_size >= n``.

    Example:
        >>> import torch
        >>> x = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
        >>> round(minibatch_cka(x, x, batch_size=100), 6)
        1.0
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 4:
        raise ValueError(f"Expected batch_size to be an integer >= 4, but got {batch_size!r}")
    xs = _native(x, "x", min_rows=_UNBIASED_MIN_ROWS)
    ys = _native(y, "y", min_rows=_UNBIASED_MIN_ROWS)
    n = xs.shape[0]
    if ys.shape[0] != n:
        paired(xs, ys)  # raises the standard message
    not_constant(xs, "x")
    not_constant(ys, "y")
    tail = n % batch_size
    if 0 < tail < _UNBIASED_MIN_ROWS:
        raise ValueError(
            f"Expected every batch to have at least {_UNBIASED_MIN_ROWS} rows, but n = {n} with "
            f"batch_size = {batch_size} leaves a last batch of {tail}; pick another batch_size"
        )
    metric = MinibatchCKA()
    for start in range(0, n, batch_size):
        metric.update(xs[start : start + batch_size], ys[start : start + batch_size])
    return metric.compute()


# --------------------------------------------------------------------------------------------
# CCA family
# --------------------------------------------------------------------------------------------


def _svd_basis(x: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left singular vectors and singular values of the centred x, numerically-zero ones
    dropped (relative tolerance 1e-10), plus the centred x itself, scaled by a power of two
    (see :func:`_centred_unit`; no CCA-family metric depends on the scale)."""
    xc = _centred_unit(x)
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
            f"{kx} + {ky} + 1), but got {n}: {_CCA_REASON}"
        )


def _cca_parts(
    x: ArrayLike, y: ArrayLike, metric: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Canonical correlations (descending), x's basis, its rotation to canonical variates, Xc."""
    xs, ys = paired(x, y, min_rows=1)
    _enough_samples(xs.shape[0], metric)
    not_constant(xs, "x")
    not_constant(ys, "y")
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
    xs, ys = paired(x, y, min_rows=1)
    _enough_samples(xs.shape[0], "svcca")
    not_constant(xs, "x")
    not_constant(ys, "y")
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
    total = _positive(float(weights.sum()), "the projection weights", "x")
    return float((weights / total * rho).sum())


# --------------------------------------------------------------------------------------------
# All pairs of variants
# --------------------------------------------------------------------------------------------

_METRICS: dict[str, tuple[Callable[[ArrayLike, ArrayLike], float], bool]] = {
    "linear_cka": (linear_cka, True),
    "rbf_cka": (rbf_cka, True),
    "debiased_cka": (debiased_cka, True),
    "cca_r2": (cca_r2, True),
    "cca_mean": (cca_mean, True),
    "svcca": (svcca, True),
    "pwcca": (pwcca, False),
}


@dataclass(frozen=True, eq=False)
class SimilarityMatrix:
    """Pairwise similarities between variants: ``values[i, j] = metric(names[i], names[j])``.

    Rows are the first argument (x), columns the second (y); this matters for ``pwcca``.
    ``values`` is read-only.
    """

    names: tuple[str, ...]
    values: np.ndarray = field(repr=False)
    metric: str

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64)
        k = len(self.names)
        if values.shape != (k, k):
            raise ValueError(
                f"Expected values to have shape ({k}, {k}) for {k} names, but got {values.shape}"
            )
        values.flags.writeable = False
        object.__setattr__(self, "values", values)

    def __getitem__(self, pair: tuple[str, str]) -> float:
        """``matrix["clean", "blur"]``: the similarity with ``"clean"`` as x."""
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise KeyError(f"Expected a (row name, column name) pair, but got {pair!r}")
        row, column = pair
        try:
            return float(self.values[self.names.index(row), self.names.index(column)])
        except ValueError:
            raise KeyError(f"Unknown variant in {pair!r}; known: {self.names}") from None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready ``{"metric": ..., "names": [...], "values": [[...], ...]}``."""
        return {"metric": self.metric, "names": list(self.names), "values": self.values.tolist()}


def similarity_matrix(
    features_by_variant: Mapping[str, ArrayLike],
    metric: str | Callable[[ArrayLike, ArrayLike], float] = "linear_cka",
    *,
    symmetric: bool | None = None,
) -> SimilarityMatrix:
    """Similarity of every ordered pair of variants' features of the same examples.

    The named metrics are ``linear_cka``, ``rbf_cka``, ``debiased_cka``, ``cca_r2``,
    ``cca_mean``, ``svcca`` and ``pwcca``; a callable ``f(x, y) -> float`` is used as given.
    Symmetric metrics are computed once per unordered pair (diagonal included); ``pwcca``, and
    callables unless ``symmetric=True``, are computed in both orders.

    Args:
        features_by_variant: variant name -> (n, d_v) features; every variant shares n (the
            same examples in the same order), widths may differ.
        metric: a metric name or callable.
        symmetric: override whether ``metric(x, y) == metric(y, x)`` may be assumed.

    Returns:
        A :class:`SimilarityMatrix` with the names in the mapping's order.

    Example:
        >>> import torch
        >>> x = torch.randn(100, 8, generator=torch.Generator().manual_seed(0))
        >>> m = similarity_matrix({"clean": x, "scaled": 2 * x})
        >>> m.names, round(m["clean", "scaled"], 6)
        (('clean', 'scaled'), 1.0)
    """
    if isinstance(metric, str):
        if metric not in _METRICS:
            raise ValueError(f"Expected metric to be one of {tuple(_METRICS)}, but got {metric!r}")
        function, known_symmetric = _METRICS[metric]
        metric_name = metric
    elif callable(metric):
        function, known_symmetric = metric, False
        metric_name = getattr(metric, "__name__", repr(metric))
    else:
        raise ValueError(f"Expected metric to be a name or a callable, but got {metric!r}")
    is_symmetric = known_symmetric if symmetric is None else bool(symmetric)
    if not features_by_variant:
        raise ValueError("Expected at least one variant, but got an empty mapping")
    names = tuple(features_by_variant)
    # Checked shapes only: the metrics convert (and chunk) the data themselves.
    blocks = [_native(features_by_variant[name], name, min_rows=1) for name in names]
    for name, block in zip(names[1:], blocks[1:], strict=True):
        if block.shape[0] != blocks[0].shape[0]:
            raise ValueError(
                f"Expected every variant to have the same number of rows (examples), but "
                f"{names[0]!r} has {blocks[0].shape[0]} and {name!r} has {block.shape[0]}"
            )
    k = len(names)
    values = np.empty((k, k), dtype=np.float64)
    for i in range(k):
        for j in range(i if is_symmetric else 0, k):
            try:
                values[i, j] = float(function(blocks[i], blocks[j]))
            except ValueError as exc:
                raise ValueError(f"{exc} (x = {names[i]!r}, y = {names[j]!r})") from exc
            if is_symmetric:
                values[j, i] = values[i, j]
    return SimilarityMatrix(names=names, values=values, metric=metric_name)
