"""Bootstrap intervals in the contracts' own units: accuracy fractions, relative mCE, means."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_sslrobust.metrics.corruption import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    CorruptionErrors,
    ReferenceLike,
    relative_mce,
)
from pytest_sslrobust.metrics.statistics import (
    Interval,
    bootstrap,
    common_wrong,
    correct_vector,
    counted_interval,
    counts,
    paired_correct,
)
from pytest_sslrobust.vocabulary import COMMON, SEVERITIES

__all__ = [
    "accuracy_drop_interval",
    "balanced_accuracy_interval",
    "fraction_correct_interval",
    "mean_interval",
    "reference_rates",
    "relative_mce_interval",
]


def fraction_correct_interval(
    correct: Any, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Bootstrap interval of an accuracy as a fraction in [0, 1] (``accuracy_interval`` gives
    percent).

    Args:
        correct: 0/1 or boolean array (n,), whether each image was classified correctly.
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` of mean(correct), shown with 4 decimals.

    Example:
        >>> print(fraction_correct_interval([1, 1, 1, 0] * 50, resamples=500))  # doctest: +ELLIPSIS
        0.7500 [...] (95% bootstrap)
    """
    values = correct_vector(correct, "correct")
    n = values.shape[0]
    return counted_interval(lambda w: (w @ values) / n, n, resamples, confidence, seed, 4)


def accuracy_drop_interval(
    correct_clean: Any,
    correct_altered: Any,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Paired bootstrap interval of accuracy(clean) - accuracy(altered), in fractions.

    The images are resampled once for both (see ``accuracy_difference_interval``, which
    gives the same interval in points).

    Args:
        correct_clean: 0/1 array (n,) on the clean images.
        correct_altered: 0/1 array (n,) on the altered images, the same images in order.
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` of mean(correct_clean) - mean(correct_altered), 4 decimals.

    Example:
        >>> a = [1, 0, 1, 1] * 25
        >>> accuracy_drop_interval(a, a, resamples=100).high
        0.0
    """
    a, b = paired_correct(correct_clean, correct_altered)
    n = a.shape[0]
    return counted_interval(lambda w: (w @ a) / n - (w @ b) / n, n, resamples, confidence, seed, 4)


def balanced_accuracy_interval(
    truth: Any,
    correct: Any,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of balanced accuracy (mean per-class recall), a fraction.

    A class that a resample misses does not count in that resample, as in scikit-learn's
    ``balanced_accuracy_score``.

    Args:
        truth: (n,) true class labels.
        correct: 0/1 array (n,), whether each image was classified correctly.
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` shown with 4 decimals.

    Example:
        >>> truth = np.array([0, 0, 0, 1] * 25)
        >>> balanced_accuracy_interval(truth, truth == 0, resamples=100).estimate
        0.5
    """
    classes, inverse = np.unique(np.asarray(truth), return_inverse=True)
    count = len(classes)
    hits = correct_vector(correct, "correct")

    def statistic(indices: np.ndarray) -> np.ndarray:
        k = indices.shape[0]
        slots = (inverse[indices] + count * np.arange(k)[:, None]).ravel()
        totals = np.bincount(slots, minlength=k * count).reshape(k, count)
        good = np.bincount(slots, weights=hits[indices].ravel(), minlength=k * count)
        present = totals > 0
        recall = np.where(present, good.reshape(k, count) / np.maximum(totals, 1), 0.0)
        return recall.sum(axis=1) / present.sum(axis=1)

    return bootstrap(
        statistic,
        inverse.shape[0],
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        vectorized=True,
        digits=4,
    )


def mean_interval(
    values: Any, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Bootstrap interval of the mean of one value per image.

    Args:
        values: (n,) per-image values, e.g. foreground focus or rank shift of each map.
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` of mean(values), shown with 4 decimals.

    Example:
        >>> mean_interval(np.full(20, 0.25), resamples=100).width
        0.0
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1:
        raise ValueError(f"Expected values to have shape (n,), but got {data.shape}")
    return bootstrap(
        lambda idx: data[idx].mean(axis=-1),
        data.shape[0],
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        vectorized=True,
        digits=4,
    )


def reference_rates(
    reference: ReferenceLike, reference_clean_error: float | None = None
) -> tuple[Mapping[str, Sequence[float]], float]:
    """The reference's error table and clean error, as :func:`relative_mce` uses them (call
    it first: this does not validate)."""
    if isinstance(reference, str):
        return ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR
    table = reference.errors if isinstance(reference, CorruptionErrors) else reference
    clean = reference_clean_error
    if clean is None and isinstance(reference, CorruptionErrors):
        clean = reference.clean_error
    return table, float(clean)  # type: ignore[arg-type]


def relative_mce_interval(
    errors: CorruptionErrors,
    clean_error: float | None = None,
    reference: ReferenceLike = "alexnet",
    reference_clean_error: float | None = None,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of relative mCE over images, in percent.

    Every common cell and the clean error are recomputed from the same resampled images
    (``errors.correct`` and ``errors.clean_correct``); an explicit ``clean_error`` is held
    fixed instead. The reference is held fixed, as in ``mce_interval``.

    Args:
        errors: a CorruptionErrors with ``correct`` for the 15 common corruptions.
        clean_error: the model's clean error to hold fixed; None resamples
            ``errors.clean_correct``.
        reference: ``"alexnet"`` or a reference model's errors, as in :func:`relative_mce`.
        reference_clean_error: the reference's clean error, as in :func:`relative_mce`.
        resamples: number of resamples.
        confidence: nominal coverage in (0, 1).
        seed: seed of the generator.

    Returns:
        An :class:`Interval` whose estimate is the relative mCE (up to float rounding).

    Example:
        >>> from pytest_sslrobust.metrics.corruption import errors_from_predictions
        >>> rng = np.random.default_rng(0)
        >>> labels = rng.integers(1, 10, 200)
        >>> guess = lambda s: np.where(rng.random(200) < 0.15 * s, 0, labels)
        >>> preds = {name: [guess(s) for s in range(1, 6)] for name in COMMON}
        >>> errors = errors_from_predictions(
        ...     preds, labels, clean_predictions=labels, protocol={"source": "released-imagenet-c"}
        ... )
        >>> interval = relative_mce_interval(errors, resamples=200)
        >>> interval.low < relative_mce(errors) < interval.high
        True
    """
    relative_mce(errors, clean_error, reference, reference_clean_error)  # validates
    wrong = common_wrong(errors)
    if clean_error is None and errors.clean_correct is None:
        raise ValueError(
            "Expected errors.clean_correct (per-image correctness on the clean images) for a "
            "relative mCE interval, or an explicit clean_error to hold fixed, but got neither"
        )
    table, reference_clean = reference_rates(reference, reference_clean_error)
    denominators = np.array(
        [math.fsum(e - reference_clean for e in table[name]) for name in COMMON]
    )
    n = errors.n
    clean_wrong = (
        None if clean_error is not None else 1.0 - np.asarray(errors.clean_correct, np.float64)
    )

    def statistic(indices: np.ndarray) -> np.ndarray:
        weights = counts(indices, n)
        cells = ((weights @ wrong.T) / n).reshape(-1, len(COMMON), len(SEVERITIES))
        if clean_wrong is None:
            clean = np.full((weights.shape[0], 1, 1), float(clean_error))  # type: ignore[arg-type]
        else:
            clean = ((weights @ clean_wrong) / n)[:, None, None]
        return 100.0 * ((cells - clean).sum(axis=2) / denominators).mean(axis=1)

    return bootstrap(
        statistic, n, resamples=resamples, confidence=confidence, seed=seed, vectorized=True
    )
