"""Seeded, paired percentile-bootstrap intervals over images for accuracy, mCE and CKA."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.corruption import (
    CorruptionErrors,
    ReferenceLike,
    check_protocols,
    mce,
    reference_table_of,
)
from pytest_sslrobust.vocabulary import COMMON

__all__ = [
    "Interval",
    "accuracy_difference_interval",
    "accuracy_interval",
    "bootstrap",
    "cka_difference_interval",
    "cka_interval",
    "common_wrong",
    "correct_vector",
    "counted_interval",
    "counts",
    "mce_difference_interval",
    "mce_interval",
    "paired_correct",
]

# Resampled indices are drawn in blocks of about this many entries, so memory stays bounded
# for ImageNet-sized n; the block size depends only on n, so a seed always gives the same draws.
_BLOCK_ENTRIES = 1 << 22
_MIN_RESAMPLES = 10

Metric = Callable[[Any, Any], float]


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided bootstrap interval.

    Args:
        estimate: the statistic on the original sample.
        low: lower percentile bound.
        high: upper percentile bound.
        confidence: nominal coverage, e.g. 0.95.
        resamples: number of bootstrap resamples.
        seed: seed of ``np.random.default_rng`` that drew them.
        digits: decimals shown by ``str`` (2 for percentages, 4 for values in [0, 1]).

    Example:
        >>> print(Interval(76.7, 75.9, 77.52, 0.95, 1000, 0))
        76.70 [75.90, 77.52] (95% bootstrap)
    """

    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int
    digits: int = 2

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the closed interval [low, high]."""
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low

    def __str__(self) -> str:
        d = self.digits
        return (
            f"{self.estimate:.{d}f} [{self.low:.{d}f}, {self.high:.{d}f}] "
            f"({100 * self.confidence:g}% bootstrap)"
        )


def _check_options(n: int, resamples: int, confidence: float, seed: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"Expected n to be an integer >= 2, but got {n!r}")
    if (
        isinstance(resamples, bool)
        or not isinstance(resamples, (int, np.integer))
        or resamples < _MIN_RESAMPLES
    ):
        raise ValueError(
            f"Expected resamples to be an integer >= {_MIN_RESAMPLES} (use >= 1000 for stable "
            f"95% bounds), but got {resamples!r}"
        )
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float, np.floating))
        or not 0.0 < float(confidence) < 1.0
    ):
        raise ValueError(f"Expected confidence in the open interval (0, 1), but got {confidence!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Expected seed to be a non-negative integer, but got {seed!r}")


def _resampled(
    statistic: Callable[[np.ndarray], Any], n: int, resamples: int, seed: int, vectorized: bool
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ENTRIES // n)
    values: list[np.ndarray] = []
    for start in range(0, resamples, block):
        indices = rng.integers(0, n, size=(min(block, resamples - start), n))
        if vectorized:
            out = np.asarray(statistic(indices), dtype=np.float64).reshape(-1)
            if out.shape[0] != indices.shape[0]:
                raise ValueError(
                    f"Expected a vectorized statistic to return {indices.shape[0]} values, but "
                    f"got {out.shape[0]}"
                )
            values.append(out)
        else:
            values.append(np.array([float(statistic(row)) for row in indices]))
    result = np.concatenate(values)
    bad = int((~np.isfinite(result)).sum())
    if bad:
        raise ValueError(
            f"Expected the statistic to be finite on every resample, but {bad} of {resamples} "
            f"gave NaN or inf (a resample repeating few images can make it undefined)"
        )
    return result


def _interval(
    estimate: float,
    values: np.ndarray,
    confidence: float,
    resamples: int,
    seed: int,
    digits: int = 2,
) -> Interval:
    alpha = 1.0 - float(confidence)
    low, high = np.quantile(values, [alpha / 2, 1.0 - alpha / 2])
    return Interval(
        float(estimate),
        float(low),
        float(high),
        float(confidence),
        int(resamples),
        int(seed),
        digits,
    )


def bootstrap(
    statistic: Callable[[np.ndarray], Any],
    n: int,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    vectorized: bool = False,
    digits: int = 2,
) -> Interval:
    """Percentile bootstrap interval of a statistic over ``n`` images.

    The statistic receives the resampled image indices rather than data, so any number of
    arrays can be indexed with the same draw: that is what makes an interval *paired* (two
    models scored on the same resampled images). The interval is the plain percentile
    interval (the alpha/2 and 1 - alpha/2 quantiles of the resampled statistic, numpy's
    linear interpolation); no bias correction. Draws come from ``np.random.default_rng(seed)``,
    so the same arguments give the same interval, bit for bit.

    Args:
        statistic: ``statistic(indices) -> float`` with ``indices`` an int array of shape (n,);
            with ``vectorized=True`` it gets shape (k, n) and returns k values.
        n: number of images (at least 2).
        resamples: number of resamples (at least 10; use 1000 or more for 95% bounds).
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.
        vectorized: whether ``statistic`` takes a block of resamples at once (much faster).
        digits: decimals shown by the interval's ``str``.

    Returns:
        An :class:`Interval` whose estimate is the statistic on ``arange(n)``.

    Example:
        >>> data = np.arange(10.0)
        >>> interval = bootstrap(lambda idx: data[idx].mean(), 10, resamples=200, seed=1)
        >>> interval.estimate, interval.contains(4.5), interval.low < interval.high
        (4.5, True, True)
    """
    _check_options(n, resamples, confidence, seed)
    identity = np.arange(n)
    if vectorized:
        estimate = float(np.asarray(statistic(identity[None, :]), dtype=np.float64).reshape(-1)[0])
    else:
        estimate = float(statistic(identity))
    values = _resampled(statistic, n, resamples, seed, vectorized)
    return _interval(estimate, values, confidence, resamples, seed, digits)


def counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each image occurs in each resample, shape (k, n): means become matmuls.

    Example:
        >>> counts(np.array([[0, 0, 2]]), 3)
        array([[2., 0., 1.]])
    """
    k = indices.shape[0]
    flat = (indices + n * np.arange(k)[:, None]).ravel()
    return np.bincount(flat, minlength=k * n).reshape(k, n).astype(np.float64)


def correct_vector(value: Any, name: str) -> np.ndarray:
    """A 0/1 (or boolean) vector (n,) as float64."""
    array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if array.ndim != 1:
        raise ValueError(f"Expected {name} to have shape (n,), but got {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(
            f"Expected {name} to hold only 0 and 1 (or booleans), but got other values"
        )
    return array.astype(np.float64)


def counted_interval(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    resamples: int,
    confidence: float,
    seed: int,
    digits: int = 2,
) -> Interval:
    """Bootstrap a statistic of per-image count weights (k, n) -> k values."""
    _check_options(n, resamples, confidence, seed)
    # The estimate goes through the same arithmetic as the resamples, so a degenerate sample
    # (every resample equal) still gives an interval that contains its estimate.
    estimate = float(statistic(np.ones((1, n)))[0])
    values = _resampled(lambda idx: statistic(counts(idx, n)), n, resamples, seed, vectorized=True)
    return _interval(estimate, values, confidence, resamples, seed, digits)


def paired_correct(correct_a: Any, correct_b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two 0/1 vectors of the same images (see :func:`correct_vector`)."""
    a = correct_vector(correct_a, "correct_a")
    b = correct_vector(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(
            f"Expected correct_a and correct_b for the same images, but got {a.shape[0]} and "
            f"{b.shape[0]} values"
        )
    return a, b


def accuracy_interval(
    correct: Any, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Bootstrap interval of an accuracy, in percent.

    Args:
        correct: 0/1 or boolean array (n,), whether each image was classified correctly.
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` of 100 * mean(correct).

    Example:
        >>> print(accuracy_interval([1, 1, 1, 0] * 50, resamples=500))  # doctest: +ELLIPSIS
        75.00 [...] (95% bootstrap)
    """
    values = correct_vector(correct, "correct")
    n = values.shape[0]
    return counted_interval(lambda w: 100.0 * (w @ values) / n, n, resamples, confidence, seed)


def accuracy_difference_interval(
    correct_a: Any,
    correct_b: Any,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Paired bootstrap interval of accuracy(a) - accuracy(b) in points, on the same images.

    Both models are scored on the same resampled images, so image difficulty, shared by both,
    cancels; the interval is much narrower than one from independent resamples when the
    models agree on most images.

    Args:
        correct_a: 0/1 array (n,) for model a.
        correct_b: 0/1 array (n,) for model b, the same images in the same order.
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` of 100 * (mean(correct_a) - mean(correct_b)).

    Example:
        >>> a = [1, 0, 1, 1] * 25
        >>> accuracy_difference_interval(a, a, resamples=100).high
        0.0
    """
    a, b = paired_correct(correct_a, correct_b)
    n = a.shape[0]
    return counted_interval(
        lambda w: 100.0 * (w @ a) / n - 100.0 * (w @ b) / n, n, resamples, confidence, seed
    )


def common_wrong(errors: CorruptionErrors) -> np.ndarray:
    """Per-image wrongness (1 - correct) of the 15 common corruptions, (15 * 5, n) float64,
    corruption-major, severity 1..5 within: each cell's error is its mean over images."""
    if not isinstance(errors, CorruptionErrors):
        raise ValueError(
            f"Expected a CorruptionErrors with per-image correctness, but got "
            f"{type(errors).__name__}"
        )
    correct = errors.correct or {}
    missing = [name for name in COMMON if name not in correct]
    if missing:
        raise ValueError(
            f"Expected per-image correctness (errors.correct) for all 15 common corruptions, "
            f"but it is missing for: {', '.join(missing)}"
        )
    # Wrong counts over n, as errors_from_predictions computes the stored rates.
    return 1.0 - np.concatenate([correct[name] for name in COMMON]).astype(np.float64)


def _mce_of_counts(
    errors: CorruptionErrors, reference: ReferenceLike
) -> Callable[[np.ndarray], np.ndarray]:
    """mCE (percent) as a function of per-image count weights (k, n), reference held fixed."""
    wrong = common_wrong(errors)
    # Validates protocols and the reference table once, up front.
    mce(errors, reference)
    table, _ = reference_table_of(errors, reference)
    reference_sums = np.array([sum(table[name]) for name in COMMON])
    n, shape = errors.n, (len(COMMON), len(table[COMMON[0]]))

    def statistic(weights: np.ndarray) -> np.ndarray:
        error = (weights @ wrong.T) / n
        summed = error.reshape(-1, *shape).sum(axis=2)
        return 100.0 * (summed / reference_sums).mean(axis=1)

    return statistic


def mce_interval(
    errors: CorruptionErrors,
    reference: ReferenceLike = "alexnet",
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of mCE over images, in percent.

    Images are resampled jointly across all 75 common cells (the same image index in every
    corruption and severity, since every cell shows the same images), and each cell's error is
    recomputed from ``errors.correct``. The reference's errors are held fixed: AlexNet's are
    published constants; a measured reference's own sampling noise is not included.

    Args:
        errors: a CorruptionErrors with ``correct`` for the 15 common corruptions.
        reference: ``"alexnet"`` or a reference model's errors, with :func:`mce`'s protocol rules.
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` whose estimate is ``mce(errors, reference)`` (up to float
        rounding: it is computed by the same vectorised arithmetic as the resamples).

    Example:
        >>> from pytest_sslrobust.metrics.corruption import errors_from_predictions
        >>> rng = np.random.default_rng(0)
        >>> labels = rng.integers(1, 10, 200)
        >>> guess = lambda s: np.where(rng.random(200) < 0.15 * s, 0, labels)
        >>> preds = {name: [guess(s) for s in range(1, 6)] for name in COMMON}
        >>> source = {"source": "released-imagenet-c"}
        >>> errors = errors_from_predictions(preds, labels, protocol=source)
        >>> interval = mce_interval(errors, resamples=200)
        >>> interval.low < mce(errors) < interval.high
        True
    """
    statistic = _mce_of_counts(errors, reference)
    return counted_interval(statistic, errors.n, resamples, confidence, seed)


def mce_difference_interval(
    a: CorruptionErrors,
    b: CorruptionErrors,
    reference: ReferenceLike = "alexnet",
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Paired bootstrap interval of mCE(a) - mCE(b) in points, over the same images.

    ``a`` and ``b`` must have been measured on the same images in the same order (only the
    count ``n`` can be checked here) and under the same protocol (checked, model keys aside).

    Args:
        a: CorruptionErrors of model a, with ``correct``.
        b: CorruptionErrors of model b, with ``correct``.
        reference: ``"alexnet"`` or a reference model's errors.
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` whose estimate is ``mce(a, reference) - mce(b, reference)`` (up
        to float rounding).

    Example:
        >>> from pytest_sslrobust.metrics.corruption import errors_from_predictions
        >>> labels = np.arange(40) % 2
        >>> preds = {name: [labels, 1 - labels] * 2 + [labels] for name in COMMON}
        >>> e = errors_from_predictions(preds, labels, protocol={"source": "released-imagenet-c"})
        >>> mce_difference_interval(e, e, resamples=100).width
        0.0
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, CorruptionErrors):
            raise ValueError(
                f"Expected {name} to be a CorruptionErrors, but got {type(value).__name__}"
            )
    if a.n != b.n:
        raise ValueError(
            f"Expected a and b to be measured on the same images, but got n={a.n} and n={b.n}"
        )
    check_protocols(a, b, "a and b")
    stat_a = _mce_of_counts(a, reference)
    stat_b = _mce_of_counts(b, reference)
    return counted_interval(
        lambda w: stat_a(w) - stat_b(w),
        a.n,
        resamples,
        confidence,
        seed,
    )


def _rows(value: Any, checked: torch.Tensor) -> Callable[[np.ndarray], Any]:
    """Row indexing in the caller's own kind: tensors stay on their device, arrays stay numpy."""
    if isinstance(value, torch.Tensor):
        return lambda idx: checked[torch.as_tensor(idx, device=checked.device)]
    array = checked.numpy()
    return lambda idx: array[idx]


def _default_metric(metric: Metric | None) -> Metric:
    if metric is not None:
        if not callable(metric):
            raise ValueError(f"Expected metric to be callable, but got {type(metric).__name__}")
        return metric
    # Imported here: similarity.py is optional for callers who pass their own metric.
    from pytest_sslrobust.metrics.similarity import linear_cka

    return linear_cka


# The vectorised linear-CKA bootstrap holds three n x n float64 matrices (about 100 MB at
# this n); above it each resample is computed on its own, in feature space.
_GRAM_ROWS = 2048


def _linear_cka_resamples(a: torch.Tensor, b: torch.Tensor) -> Callable[[np.ndarray], Any]:
    """Linear CKA of every resample of a block at once (indices (k, n) -> k values).

    With ``w`` the resample's counts of each image, the centred cross-covariance of the
    resampled rows is ``sum_i w_i x~_i y~_i^T`` (``x~`` centred on the resample's mean), and
    its squared Frobenius norm reduces to ``w^T (K o L) w - 2n sum_i w_i p_i q_i + n^2 P Q``
    with the Gram matrices ``K = X X^T``, ``L = Y Y^T``, ``p = K w / n``, ``q = L w / n``,
    ``P = w . p / n``, ``Q = w . q / n``: a few (k, n) x (n, n) products per block instead
    of k feature-space CKAs. Same draws, same values as :func:`linear_cka` on each
    resample to rounding (tested).
    """

    def gram(t: torch.Tensor) -> np.ndarray:
        rows = t.detach().to("cpu", torch.float64).numpy()
        rows = rows - rows.mean(axis=0)
        scale = float(np.abs(rows).max())
        rows = rows / scale if scale > 0 else rows
        return rows @ rows.T

    k_gram, l_gram = gram(a), gram(b)
    n = k_gram.shape[0]
    products = {"xy": k_gram * l_gram, "xx": k_gram * k_gram, "yy": l_gram * l_gram}

    def statistic(indices: np.ndarray) -> np.ndarray:
        w = counts(np.atleast_2d(indices), n)
        p, q = w @ k_gram / n, w @ l_gram / n
        big_p, big_q = (w * p).sum(axis=1) / n, (w * q).sum(axis=1) / n

        def hsic(name: str, u: np.ndarray, v: np.ndarray, cu: np.ndarray, cv: np.ndarray):  # type: ignore[no-untyped-def]
            return (
                ((w @ products[name]) * w).sum(axis=1)
                - 2 * n * (w * u * v).sum(axis=1)
                + n * n * cu * cv
            )

        xy = hsic("xy", p, q, big_p, big_q)
        xx = hsic("xx", p, p, big_p, big_p)
        yy = hsic("yy", q, q, big_q, big_q)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = xy / np.sqrt(xx * yy)
        # A degenerate resample (one side constant) gives NaN, which bootstrap refuses.
        return np.where(np.isfinite(value), np.clip(value, 0.0, 1.0), np.nan)

    return statistic


def cka_interval(
    x: Any,
    y: Any,
    metric: Metric | None = None,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of a representation similarity, resampling rows of x and y jointly.

    Resampling duplicates rows, which biases CKA-type statistics upward somewhat; the
    interval measures sampling spread, not that bias. Resamples where the metric is undefined
    (e.g. too few distinct rows) raise ValueError rather than being dropped.

    Args:
        x: features (n, d1), numpy or torch; row i is image i.
        y: features (n, d2) of the same images.
        metric: ``metric(x, y) -> float``; defaults to
            :func:`pytest_sslrobust.metrics.similarity.linear_cka`. It receives float64 rows of
            the same kind as the inputs (numpy arrays, or tensors on the inputs' device).
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` (shown with 4 decimals).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(50, 4))
        >>> corr = lambda a, b: float(np.corrcoef(a[:, 0], b[:, 0])[0, 1])
        >>> round(cka_interval(x, 2 * x, corr, resamples=100).low, 6)
        1.0
    """
    a, b = _checks.paired(x, y)
    fn = _default_metric(metric)
    vectorized = fn is _default_metric(None) and a.shape[0] <= _GRAM_ROWS
    if vectorized:
        statistic = _linear_cka_resamples(a, b)
    else:
        rows_x, rows_y = _rows(x, a), _rows(y, b)

        def statistic(idx: np.ndarray) -> float:
            return float(fn(rows_x(idx), rows_y(idx)))

    return bootstrap(
        statistic,
        a.shape[0],
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        vectorized=vectorized,
        digits=4,
    )


def cka_difference_interval(
    x1: Any,
    y1: Any,
    x2: Any,
    y2: Any,
    metric: Metric | None = None,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Paired bootstrap interval of metric(x1, y1) - metric(x2, y2) over the same images.

    All four matrices are indexed with the same resampled rows, e.g. the similarity of clean
    and corrupted features for two backbones on the same images.

    Args:
        x1: features (n, d) of the first pair.
        y1: features (n, d') of the first pair.
        x2: features (n, e) of the second pair, the same images in the same order.
        y2: features (n, e') of the second pair.
        metric: ``metric(x, y) -> float``; defaults to linear CKA (see :func:`cka_interval`).
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` of the difference (shown with 4 decimals).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(30, 3))
        >>> corr = lambda a, b: float(np.corrcoef(a[:, 0], b[:, 0])[0, 1])
        >>> cka_difference_interval(x, x, x, x, corr, resamples=100).width
        0.0
    """
    estimate, values = cka_difference_resamples(
        x1, y1, x2, y2, metric, resamples=resamples, seed=seed, confidence=confidence
    )
    return _interval(estimate, values, confidence, resamples, seed, 4)


def cka_difference_resamples(
    x1: Any,
    y1: Any,
    x2: Any,
    y2: Any,
    metric: Metric | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, np.ndarray]:
    """``metric(x1, y1) - metric(x2, y2)`` on all images, and on each of ``resamples``
    paired resamples (the draws of :func:`cka_difference_interval`, which is their
    percentile interval): what a p-value of the difference is read from. ``confidence``
    is only checked."""
    a1, b1 = _checks.paired(x1, y1)
    a2, b2 = _checks.paired(x2, y2)
    if a1.shape[0] != a2.shape[0]:
        raise ValueError(
            f"Expected both pairs to cover the same images, but got {a1.shape[0]} and "
            f"{a2.shape[0]} rows"
        )
    n = int(a1.shape[0])
    _check_options(n, resamples, confidence, seed)
    fn = _default_metric(metric)
    first = _resampler(fn, x1, y1, a1, b1)
    second = _resampler(fn, x2, y2, a2, b2)

    def difference(indices: np.ndarray) -> np.ndarray:
        return first(indices) - second(indices)

    # The estimate is the metric's own call, so a degenerate input gets the metric's message.
    everything = np.arange(n)
    estimate = float(fn(_rows(x1, a1)(everything), _rows(y1, b1)(everything))) - float(
        fn(_rows(x2, a2)(everything), _rows(y2, b2)(everything))
    )
    return estimate, _resampled(difference, n, resamples, seed, True)


# Largest n for the Gram-matrix form of resampled linear CKA: it holds five n x n float64
# matrices per pair (32 MB each at this n).
_GRAM_RESAMPLE_LIMIT = 2048


def _resampler(
    fn: Metric, x: Any, y: Any, a: torch.Tensor, b: torch.Tensor
) -> Callable[[np.ndarray], np.ndarray]:
    """``indices (B, n) -> fn on each resample (B,)``. Linear CKA of wide features on at most
    ``_GRAM_RESAMPLE_LIMIT`` images takes the Gram-matrix form (the same values, O(n^2) per
    resample instead of O(n d^2)); any other metric is called on each resample's rows."""
    from pytest_sslrobust.metrics.similarity import linear_cka

    n, d1, d2 = a.shape[0], a.shape[1], b.shape[1]
    if fn is linear_cka and n <= _GRAM_RESAMPLE_LIMIT and 5 * n < d1 * d1 + d2 * d2 + d1 * d2:
        return _gram_linear_cka(a.detach().cpu().numpy(), b.detach().cpu().numpy())
    rows_x, rows_y = _rows(x, a), _rows(y, b)
    return lambda indices: np.array([float(fn(rows_x(row), rows_y(row))) for row in indices])


def _gram_linear_cka(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Linear CKA of resampled rows from the Gram matrices ``K = X X^T``, ``L = Y Y^T``.

    A resample is the weights ``w = counts / n``; centring by the weighted mean gives
    ``||Xc^T W Yc||_F^2 = w^T (K o L) w - 2 sum_i w_i (Kw)_i (Lw)_i + (w^T K w)(w^T L w)``
    (``o`` elementwise), likewise for x with x and y with y, and CKA is the first over the
    root of the product of the other two. Features are centred and scaled first so the
    subtraction keeps its digits."""
    x = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    y = y.astype(np.float64) - y.astype(np.float64).mean(axis=0)
    x /= max(float(np.linalg.norm(x)), np.finfo(np.float64).tiny)
    y /= max(float(np.linalg.norm(y)), np.finfo(np.float64).tiny)
    gram_x, gram_y = x @ x.T, y @ y.T
    kl, kk, ll = gram_x * gram_y, gram_x * gram_x, gram_y * gram_y
    n = x.shape[0]

    def statistic(indices: np.ndarray) -> np.ndarray:
        w = counts(indices, n) / n
        kw, lw = w @ gram_x, w @ gram_y
        s, t = (kw * w).sum(axis=1), (lw * w).sum(axis=1)
        xy = ((w @ kl) * w).sum(axis=1) - 2.0 * (w * kw * lw).sum(axis=1) + s * t
        xx = ((w @ kk) * w).sum(axis=1) - 2.0 * (w * kw * kw).sum(axis=1) + s * s
        yy = ((w @ ll) * w).sum(axis=1) - 2.0 * (w * lw * lw).sum(axis=1) + t * t
        with np.errstate(divide="ignore", invalid="ignore"):
            return xy / np.sqrt(xx * yy)

    return statistic
