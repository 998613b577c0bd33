"""Representational similarity of every pair of variants, and the CKA and CCA metrics it names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from pytest_sslrobust.metrics._checks import ArrayLike
from pytest_sslrobust.metrics.cca import cca_mean, cca_r2, pwcca, svcca
from pytest_sslrobust.metrics.cka import (
    RBF_MAX_ROWS,
    MinibatchCKA,
    debiased_cka,
    linear_cka,
    minibatch_cka,
    rbf_cka,
)
from pytest_sslrobust.metrics.linalg import MIN_SAMPLES, native

__all__ = [
    "MIN_SAMPLES",
    "RBF_MAX_ROWS",
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
    blocks = [native(features_by_variant[name], name, min_rows=1) for name in names]
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
