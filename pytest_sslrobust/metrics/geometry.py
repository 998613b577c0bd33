"""Embedding geometry: neighbour consistency across variants, invariance, alignment and uniformity."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from pytest_sslrobust.metrics._checks import (
    ArrayLike,
    features,
    integer_at_least,
    not_constant,
    paired,
)

# Pairwise blocks are computed a few hundred rows at a time: the full similarity matrix of
# 5 x 10,000 samples is 20 GB in float64, a block of this many entries is 128 MB.
_BLOCK_ENTRIES = 2**24

_METRICS = ("cosine", "euclidean")


def block_rows(columns: int) -> int:
    """How many rows of a (rows, columns) float64 block fit in the memory budget."""
    return max(1, _BLOCK_ENTRIES // max(1, columns))


def unit_rows(x: torch.Tensor, name: str) -> torch.Tensor:
    """Rows scaled to unit L2 norm; a zero row has no direction, so it is refused."""
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    zero = int((norms == 0).sum())
    if zero:
        raise ValueError(
            f"Expected {name} to have no all-zero rows (cosine is undefined), but got {zero}"
        )
    return x / norms


def _rows_paired(x: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (n, d) matrices with the same n and d, for per-row comparisons."""
    a, b = paired(x, y, min_rows=1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"Expected x and y to have the same number of columns, but got {a.shape[1]} "
            f"and {b.shape[1]}"
        )
    return a, b


def neighbour_consistency(
    features_by_variant: Mapping[str, ArrayLike], k: int = 10, *, metric: str = "cosine"
) -> dict[str, float]:
    """Mean fraction of each sample's nearest neighbours that come from its own variant.

    All variants' features are pooled; for every sample its ``k`` nearest neighbours in the
    pool, itself excluded, are found and the fraction belonging to the sample's variant is
    averaged per variant (the k-nearest-neighbour analysis of the masking study). A value near
    1 means the variant forms its own region of the embedding; the chance level, when the
    embedding ignores the variant, is ``(n_v - 1) / (N - 1)`` for a variant of ``n_v`` samples
    in a pool of ``N`` (see :func:`neighbour_chance`). Ties in distance are broken by
    :func:`torch.topk` in an unspecified order. The distances are computed in blocks of rows,
    so a pool of 5 x 10,000 samples needs about 128 MB at a time.

    Args:
        features_by_variant: variant name -> (n_v, d) features; all variants share ``d``.
        k: number of neighbours, ``1 <= k <= N - 1``.
        metric: ``"cosine"`` (largest cosine similarity) or ``"euclidean"`` (smallest L2
            distance).

    Returns:
        Variant name -> mean same-variant fraction, in ``[0, 1]``, in the mapping's order.

    Example:
        >>> import torch
        >>> a = torch.tensor([[1.0, 0.1], [1.0, 0.2], [1.0, 0.3]])
        >>> b = torch.tensor([[-1.0, 0.1], [-1.0, 0.2], [-1.0, 0.3]])
        >>> neighbour_consistency({"a": a, "b": b}, k=2)
        {'a': 1.0, 'b': 1.0}
    """
    return consistency_of(neighbour_counts(features_by_variant, k, metric=metric), k)


def consistency_of(counts: Mapping[str, np.ndarray], k: int) -> dict[str, float]:
    """Each variant's score from :func:`neighbour_counts`: integer counts of same-variant
    neighbours, so each fraction is one exact division."""
    return {name: int(same.sum()) / (k * same.size) for name, same in counts.items()}


def neighbour_counts(
    features_by_variant: Mapping[str, ArrayLike], k: int = 10, *, metric: str = "cosine"
) -> dict[str, np.ndarray]:
    """Per sample, how many of its ``k`` nearest pooled neighbours share its variant.

    The per-image terms of :func:`neighbour_consistency` (whose score is their mean divided
    by ``k``), in the mapping's order; what a baseline stores to compare two runs image by
    image. The arguments and their checks are :func:`neighbour_consistency`'s.
    """
    if metric not in _METRICS:
        raise ValueError(f"Expected metric to be one of {_METRICS}, but got {metric!r}")
    if not features_by_variant:
        raise ValueError("Expected at least one variant, but got an empty mapping")
    names = list(features_by_variant)
    blocks = [features(features_by_variant[name], name, min_rows=1) for name in names]
    device = blocks[0].device
    widths = {block.shape[1] for block in blocks}
    if len(widths) != 1:
        raise ValueError(
            f"Expected every variant to have the same feature dimension, but got {sorted(widths)}"
        )
    pool = torch.cat([block.to(device) for block in blocks])
    total = pool.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= total - 1:
        raise ValueError(
            f"Expected k to be an integer in [1, {total - 1}] (pool size minus the sample "
            f"itself), but got {k!r}"
        )
    not_constant(pool, "the pooled features")
    owner = torch.cat(
        [torch.full((b.shape[0],), i, dtype=torch.int64) for i, b in enumerate(blocks)]
    ).to(device)
    if metric == "cosine":
        pool = unit_rows(pool, "the pooled features")

    same = torch.empty(total, dtype=torch.int64, device=device)
    step = block_rows(total)
    for start in range(0, total, step):
        rows = torch.arange(start, min(start + step, total), device=device)
        if metric == "cosine":
            # larger is nearer: the sample itself gets -inf so it is never its own neighbour
            score = pool[rows] @ pool.T
            score[torch.arange(len(rows), device=device), rows] = -math.inf
        else:
            score = -torch.cdist(pool[rows], pool)
            score[torch.arange(len(rows), device=device), rows] = -math.inf
        nearest = score.topk(k, dim=1).indices
        same[rows] = (owner[nearest] == owner[rows].unsqueeze(1)).sum(dim=1)
    counts = same.cpu().numpy()
    sizes = np.cumsum([0] + [block.shape[0] for block in blocks])
    return {name: counts[sizes[i] : sizes[i + 1]] for i, name in enumerate(names)}


def neighbour_chance(sizes: Mapping[str, int | ArrayLike]) -> dict[str, float]:
    """Chance level of :func:`neighbour_consistency`: ``(n_v - 1) / (N - 1)`` per variant.

    It is the expected same-variant fraction when neighbours are drawn at random from the
    pool, the sample itself excluded.

    Args:
        sizes: variant name -> number of samples ``n_v``, or the (n_v, d) features themselves.

    Returns:
        Variant name -> chance-level fraction.

    Example:
        >>> neighbour_chance({"original": 101, "foreground": 100})
        {'original': 0.5, 'foreground': 0.495}
    """
    counts: dict[str, int] = {}
    for name, value in sizes.items():
        if isinstance(value, bool) or (isinstance(value, int) and value < 1):
            raise ValueError(f"Expected {name} to have at least one sample, but got {value!r}")
        counts[name] = (
            value if isinstance(value, int) else features(value, name, min_rows=1).shape[0]
        )
    total = sum(counts.values())
    if total < 2:
        raise ValueError(f"Expected a pool of at least 2 samples, but got {total}")
    return {name: (count - 1) / (total - 1) for name, count in counts.items()}


def cosine_similarities(clean: ArrayLike, altered: ArrayLike) -> np.ndarray:
    """Cosine similarity between each image's clean and altered embedding.

    Args:
        clean: (n, d) features of the unaltered images.
        altered: (n, d) features of the same images after the alteration, rows aligned.

    Returns:
        (n,) float64 array of similarities in ``[-1, 1]``.

    Example:
        >>> import torch
        >>> cosine_similarities(torch.tensor([[1.0, 0.0], [0.0, 2.0]]),
        ...                     torch.tensor([[3.0, 0.0], [2.0, 0.0]]))
        array([1., 0.])
    """
    x, y = _rows_paired(clean, altered)
    sims = (unit_rows(x, "clean") * unit_rows(y, "altered")).sum(dim=1)
    # rounding can push the similarity of parallel vectors just past 1
    return sims.clamp(-1.0, 1.0).cpu().numpy()


def invariance(clean: ArrayLike, altered: ArrayLike) -> float:
    """Mean cosine similarity between the clean and altered embedding of each image.

    1 means the alteration leaves every embedding's direction unchanged.

    Args:
        clean: (n, d) features of the unaltered images.
        altered: (n, d) features of the same images after the alteration, rows aligned.

    Returns:
        Mean of :func:`cosine_similarities`, in ``[-1, 1]``.

    Example:
        >>> import torch
        >>> x = torch.randn(8, 4)
        >>> round(invariance(x, 2 * x), 6)
        1.0
    """
    return float(cosine_similarities(clean, altered).mean())


def alignment(x: ArrayLike, y: ArrayLike, alpha: float = 2) -> float:
    """Alignment of positive pairs (Wang & Isola, 2020): ``E ||f(x) - f(y)||^alpha``.

    Computed on L2-normalised features, so it lies in ``[0, 2^alpha]``; lower is better
    aligned.

    Args:
        x: (n, d) features of one view of each example.
        y: (n, d) features of the other view (the positive), rows aligned with ``x``.
        alpha: exponent of the distance, ``alpha > 0``.

    Returns:
        The mean powered distance between the normalised pairs.

    Example:
        >>> import torch
        >>> alignment(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        1.0
    """
    if not alpha > 0:
        raise ValueError(f"Expected alpha to be positive, but got {alpha!r}")
    a, b = _rows_paired(x, y)
    # squared distances raised to alpha / 2: exact for the usual alpha = 2, no sqrt round trip
    squared = (unit_rows(a, "x") - unit_rows(b, "y")).square().sum(dim=1)
    return float(squared.pow(alpha / 2).mean())


def uniformity(x: ArrayLike, t: float = 2, *, max_samples: int = 10_000, seed: int = 0) -> float:
    """Uniformity on the hypersphere (Wang & Isola, 2020): ``log E exp(-t ||f_i - f_j||^2)``.

    The expectation runs over all pairs of distinct rows of the L2-normalised features; lower
    (more negative) is more uniform, 0 means all points coincide. With more than
    ``max_samples`` rows a random subset of that many rows (without replacement, drawn with
    ``seed``) is used, since the pair count grows as n^2; the pairs are computed in blocks of
    rows and accumulated with a log-sum-exp, so memory stays bounded.

    Args:
        x: (n, d) features, ``n >= 2``.
        t: temperature of the Gaussian potential, ``t > 0``.
        max_samples: largest number of rows used, ``>= 2``.
        seed: seed of the subset drawn when ``n > max_samples``.

    Returns:
        The log of the mean Gaussian potential over distinct pairs, in ``[-4t, 0]``.

    Example:
        >>> import torch
        >>> uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        -8.0
    """
    if not t > 0:
        raise ValueError(f"Expected t to be positive, but got {t!r}")
    integer_at_least(max_samples, "max_samples", 2)
    points = unit_rows(features(x, "x", min_rows=2), "x")
    n = points.shape[0]
    if n > max_samples:
        generator = torch.Generator().manual_seed(seed)
        keep = torch.randperm(n, generator=generator)[:max_samples].to(points.device)
        points, n = points[keep], max_samples

    partials = []
    step = block_rows(n)
    for start in range(0, n - 1, step):
        stop = min(start + step, n - 1)
        # on the unit sphere ||a - b||^2 = 2 - 2 a.b; each pair i < j is counted once
        squared = (2 - 2 * points[start:stop] @ points.T).clamp_min(0)
        upper = (
            torch.arange(n, device=points.device)[None, :]
            > torch.arange(start, stop, device=points.device)[:, None]
        )
        partials.append(torch.logsumexp(-t * squared[upper], dim=0))
    log_sum = torch.logsumexp(torch.stack(partials), dim=0)
    return float(log_sum) - math.log(n * (n - 1) / 2)
