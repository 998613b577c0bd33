"""Centred kernel alignment: linear, RBF, debiased and minibatch CKA."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pytest_sslrobust.metrics._checks import (
    ArrayLike,
    features,
    integer_at_least,
    not_constant,
    paired,
    positive_number,
)
from pytest_sslrobust.metrics.linalg import (
    UNBIASED_MIN_ROWS,
    centred_unit,
    enough_samples,
    exponent,
    native,
    positive_denominator,
)

__all__ = ["RBF_MAX_ROWS", "MinibatchCKA", "debiased_cka", "linear_cka", "minibatch_cka", "rbf_cka"]


# Rows per chunk in the feature-space pass: a float64 chunk of 16,384 x 1,024 is 128 MB, so
# the peak memory stays O(d^2 + chunk * d) however many examples there are.
_CHUNK_ROWS = 16_384

# rbf_cka holds about three n x n float64 matrices at once (9.6 GB at this n).
RBF_MAX_ROWS = 20_000

# A self-HSIC below this fraction of its scale (sum(k)^2 / (n (n - 3)), which bounds every
# term of the estimator) has lost more than half of its float64 digits to cancellation:
# the ratio would be rounding noise (3.5 was measured at n = 4), not a similarity.
_UNBIASED_RTOL = 1e-8


def _chunk64(tensor: torch.Tensor, start: int, stop: int, name: str) -> torch.Tensor:
    """Rows ``start:stop`` as a checked float64 tensor."""
    try:
        return features(tensor[start:stop], name, min_rows=1)
    except ValueError:
        features(tensor, name)  # re-raise with the count over the whole input
        raise


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

    @classmethod
    def of(
        cls, n: int, xy: float, xx: float, yy: float, kx: torch.Tensor, ky: torch.Tensor
    ) -> _Moments:
        """From the Frobenius products and the Gram diagonals ``kx``, ``ky``."""
        return cls(
            n=n,
            xy=xy,
            xx=xx,
            yy=yy,
            sum_kx=float(kx.sum()),
            sum_ky=float(ky.sum()),
            kx_kx=float(kx @ kx),
            ky_ky=float(ky @ ky),
            kx_ky=float(kx @ ky),
        )


def _moments(x: ArrayLike, y: ArrayLike, metric: str) -> _Moments:
    """Centred linear-kernel statistics of x and y without n x n matrices when n >= d.

    Each side is scaled by a power of two as in :func:`centred_unit` (CKA ignores the
    scale), so the statistics stay finite and nonzero for any finite input.
    """
    tx = native(x, "x", min_rows=1)
    ty = native(y, "y", min_rows=1)
    n = tx.shape[0]
    if ty.shape[0] != n:
        paired(tx, ty, min_rows=1)  # raises the standard message
    enough_samples(n, metric)
    d1, d2 = tx.shape[1], ty.shape[1]
    device = tx.device
    if max(d1, d2) > n:
        # Wide features: the n x n Gram matrices are the smaller objects.
        xc, yc = paired(tx, ty, min_rows=1)
        not_constant(xc, "x")
        not_constant(yc, "y")
        xc, yc = centred_unit(xc), centred_unit(yc)
        gram_x, gram_y = xc @ xc.T, yc @ yc.T
        kx, ky = gram_x.diagonal(), gram_y.diagonal()
        return _Moments.of(
            n,
            float(torch.dot(gram_x.reshape(-1), gram_y.reshape(-1))),
            float(torch.dot(gram_x.reshape(-1), gram_x.reshape(-1))),
            float(torch.dot(gram_y.reshape(-1), gram_y.reshape(-1))),
            kx,
            ky,
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
    raw_x, raw_y = exponent(top_x), exponent(top_y)

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
    centred_x, centred_y = exponent(top_x), exponent(top_y)

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
    denominator = math.sqrt(positive_denominator(m.xx, "||Xc^T Xc||", "x")) * math.sqrt(
        positive_denominator(m.yy, "||Yc^T Yc||", "y")
    )
    # Cauchy-Schwarz bounds it by 1; clip the last-bit rounding excess.
    return min(1.0, max(0.0, m.xy / denominator))


def _rbf_centred_gram(x: torch.Tensor, threshold: float, name: str) -> torch.Tensor:
    """Centred RBF Gram matrix H K H, built in place to hold one n x n buffer."""
    # Distances are translation-invariant, centring limits cancellation, and the median
    # bandwidth makes the kernel scale-invariant: a power-of-two scale keeps squares finite.
    x = centred_unit(x)
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
    positive_number(threshold, "threshold")
    xs, ys = paired(x, y, min_rows=1)
    enough_samples(xs.shape[0], "rbf_cka")
    # Before the constant check: a too-large input is refused for its size, whatever it holds.
    if xs.shape[0] > RBF_MAX_ROWS:
        raise ValueError(
            f"Expected at most {RBF_MAX_ROWS} rows for rbf_cka (it needs O(n^2) memory), but got "
            f"{xs.shape[0]}; use linear_cka or minibatch_cka for large n"
        )
    not_constant(xs, "x")
    not_constant(ys, "y")
    kc = _rbf_centred_gram(xs, float(threshold), "x")
    norm_x = positive_denominator(
        float(torch.linalg.vector_norm(kc)), "the centred RBF Gram norm", "x"
    )
    lc = _rbf_centred_gram(ys, float(threshold), "y")
    norm_y = positive_denominator(
        float(torch.linalg.vector_norm(lc)), "the centred RBF Gram norm", "y"
    )
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
        positive_denominator(value, f"the unbiased HSIC({side}, {side})", side)
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
    xs, ys = native(x, "x_batch", min_rows=1), native(y, "y_batch", min_rows=1)
    if xs.shape[0] < UNBIASED_MIN_ROWS or ys.shape[0] < UNBIASED_MIN_ROWS:
        raise ValueError(
            f"Expected every batch to have at least {UNBIASED_MIN_ROWS} rows (the unbiased HSIC "
            f"divides by n - 3), but batch {index} has {xs.shape[0]} and {ys.shape[0]}"
        )
    xs, ys = paired(xs, ys, min_rows=UNBIASED_MIN_ROWS)
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
    return _Moments.of(xc.shape[0], xy, xx, yy, kx, ky), xs.shape[1], ys.shape[1]


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
    integer_at_least(batch_size, "batch_size", UNBIASED_MIN_ROWS)
    xs = native(x, "x", min_rows=UNBIASED_MIN_ROWS)
    ys = native(y, "y", min_rows=UNBIASED_MIN_ROWS)
    n = xs.shape[0]
    if ys.shape[0] != n:
        paired(xs, ys)  # raises the standard message
    not_constant(xs, "x")
    not_constant(ys, "y")
    tail = n % batch_size
    if 0 < tail < UNBIASED_MIN_ROWS:
        raise ValueError(
            f"Expected every batch to have at least {UNBIASED_MIN_ROWS} rows, but n = {n} with "
            f"batch_size = {batch_size} leaves a last batch of {tail}; pick another batch_size"
        )
    metric = MinibatchCKA()
    for start in range(0, n, batch_size):
        metric.update(xs[start : start + batch_size], ys[start : start + batch_size])
    return metric.compute()
