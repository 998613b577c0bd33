"""Confidence and calibration of a classifier's probabilities: reliability diagrams and ECE."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pytest_sslrobust.metrics._checks import ArrayLike, integer_at_least
from pytest_sslrobust.metrics._checks import features as check_features
from pytest_sslrobust.metrics._checks import labels as check_labels

__all__ = [
    "ReliabilityDiagram",
    "confidence",
    "expected_calibration_error",
    "prediction_confidence",
    "reliability_diagram",
]


def _probabilities(values: ArrayLike, from_logits: bool, name: str) -> torch.Tensor:
    """(n, C) float64 class probabilities from logits or checked probabilities."""
    scores = check_features(values, name, min_rows=1)
    if scores.shape[1] < 2:
        raise ValueError(
            f"Expected {name} to have one column per class (at least 2), but got {scores.shape[1]}"
        )
    if from_logits:
        return torch.softmax(scores, dim=1)
    # 1e-4 lets float32 probabilities through; larger gaps mean logits passed as probabilities
    if (scores < 0).any() or (scores > 1).any() or ((scores.sum(dim=1) - 1).abs() > 1e-4).any():
        raise ValueError(
            f"Expected {name} to hold probabilities in [0, 1] with rows summing to 1, but "
            f"they do not (pass from_logits=True for logits)"
        )
    return scores


def prediction_confidence(logits_or_probs: ArrayLike, *, from_logits: bool = True) -> np.ndarray:
    """Per-sample confidence: the largest class probability.

    Args:
        logits_or_probs: (n, C) logits, or probabilities when ``from_logits=False``.
        from_logits: whether to apply a softmax first.

    Returns:
        (n,) float64 array in ``[1/C, 1]``.

    Example:
        >>> prediction_confidence([[0.7, 0.3], [0.2, 0.8]], from_logits=False)
        array([0.7, 0.8])
    """
    return _probabilities(logits_or_probs, from_logits, "logits_or_probs").amax(1).cpu().numpy()


def confidence(logits_or_probs: ArrayLike, *, from_logits: bool = True) -> float:
    """Mean confidence: the average over samples of the largest class probability.

    Args:
        logits_or_probs: (n, C) logits, or probabilities when ``from_logits=False``.
        from_logits: whether to apply a softmax first.

    Returns:
        The mean of :func:`prediction_confidence`, in ``[1/C, 1]``.

    Example:
        >>> import torch
        >>> confidence(torch.zeros(4, 10))
        0.1
    """
    return float(prediction_confidence(logits_or_probs, from_logits=from_logits).mean())


@dataclass(frozen=True, eq=False)
class ReliabilityDiagram:
    """Per-bin confidence and accuracy of a classifier, the data of a reliability plot.

    Bin ``b`` holds the samples whose confidence lies in ``(edges[b], edges[b + 1]]``.

    Attributes:
        edges: (bins + 1,) bin edges, equally spaced from 0 to 1.
        confidence: (bins,) mean confidence in each bin, NaN where the bin is empty.
        accuracy: (bins,) fraction of correct predictions in each bin, NaN where empty.
        counts: (bins,) number of samples in each bin.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: ``sum_b (n_b / n) |acc_b - conf_b|``."""
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.counts[filled] / self.counts.sum() * gaps).sum())


def reliability_diagram(
    probs_or_logits: ArrayLike, labels: ArrayLike, *, bins: int = 15, from_logits: bool = True
) -> ReliabilityDiagram:
    """Bin predictions by confidence and compare each bin's accuracy with its confidence.

    The prediction is the most probable class and its probability the confidence; bins are
    equal-width over ``[0, 1]`` and closed on the right, as in Guo et al. (2017).

    Args:
        probs_or_logits: (n, C) logits, or probabilities when ``from_logits=False``.
        labels: (n,) true labels in ``[0, C)``.
        bins: number of bins, ``>= 1``.
        from_logits: whether to apply a softmax first.

    Returns:
        A :class:`ReliabilityDiagram`.

    Example:
        >>> diagram = reliability_diagram([[0.9, 0.1], [0.6, 0.4]], [0, 1], bins=2,
        ...                               from_logits=False)
        >>> diagram.counts, diagram.accuracy
        (array([0, 2]), array([nan, 0.5]))
    """
    integer_at_least(bins, "bins")
    probs = _probabilities(probs_or_logits, from_logits, "probs_or_logits")
    truth = check_labels(labels, probs.shape[0], "labels").to(probs.device)
    if int(truth.max()) >= probs.shape[1]:
        raise ValueError(
            f"Expected labels in [0, {probs.shape[1]}) to match the {probs.shape[1]} "
            f"columns, but got {int(truth.max())}"
        )
    top, predicted = probs.max(dim=1)
    conf = top.cpu().numpy()
    correct = (predicted == truth).cpu().numpy().astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # searchsorted on the left puts a value equal to an edge into the bin below: (lo, hi]
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=conf, minlength=bins) / counts
        mean_acc = np.bincount(index, weights=correct, minlength=bins) / counts
    return ReliabilityDiagram(edges=edges, confidence=mean_conf, accuracy=mean_acc, counts=counts)


def expected_calibration_error(
    probs_or_logits: ArrayLike, labels: ArrayLike, *, bins: int = 15, from_logits: bool = True
) -> float:
    """Expected calibration error (Guo et al., 2017) over equal-width confidence bins.

    ``ECE = sum_b (n_b / n) |acc_b - conf_b|`` where ``acc_b`` and ``conf_b`` are the
    accuracy and mean confidence of the ``n_b`` samples in bin ``b``; see
    :func:`reliability_diagram` for the binning.

    Args:
        probs_or_logits: (n, C) logits, or probabilities when ``from_logits=False``.
        labels: (n,) true labels in ``[0, C)``.
        bins: number of bins, ``>= 1``.
        from_logits: whether to apply a softmax first.

    Returns:
        The ECE, in ``[0, 1]``.

    Example:
        >>> expected_calibration_error([[0.9, 0.1], [0.6, 0.4]], [0, 1], bins=2,
        ...                            from_logits=False)
        0.25
    """
    return reliability_diagram(probs_or_logits, labels, bins=bins, from_logits=from_logits).ece
