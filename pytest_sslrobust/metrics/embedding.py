"""2-D projections of feature sets for plotting: a seeded sample of each, UMAP or PCA."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_sslrobust.metrics import _checks

__all__ = ["Projection", "project_2d"]


@dataclasses.dataclass(frozen=True)
class Projection:
    """Points in 2-D, the group (variant) of each, and the method that placed them."""

    points: list[list[float]]
    groups: list[str]
    method: str


def project_2d(
    features_by_group: Mapping[str, Any], *, fraction: float = 0.1, seed: int = 0
) -> Projection:
    """Project a seeded sample of each group's ``(n, d)`` features onto two dimensions.

    UMAP when the optional ``umap-learn`` package is installed, PCA otherwise; the method
    used is returned, so that a plot can say it.

    Args:
        features_by_group: group name -> ``(n, d)`` features (tensor or array).
        fraction: share of each group's rows kept (at least one row each).
        seed: seeds the sample and the projection.

    Returns:
        A ``Projection`` with the groups' points in the order given.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> shown = project_2d({"a": rng.normal(size=(20, 4)), "b": rng.normal(size=(20, 4))},
        ...                    fraction=0.5)
        >>> len(shown.points), shown.groups.count("b")
        (20, 10)
    """
    if not features_by_group:
        raise ValueError("Expected at least one group of features, but got none")
    rng = np.random.default_rng(seed)
    points, groups = [], []
    for name, features in features_by_group.items():
        array = _checks.as_tensor(features, str(name)).cpu().numpy()
        take = max(1, int(round(len(array) * fraction)))
        chosen = np.sort(rng.choice(len(array), size=min(take, len(array)), replace=False))
        points.append(array[chosen])
        groups.extend([str(name)] * len(chosen))
    stacked = np.concatenate(points)
    try:
        import umap  # type: ignore[import-not-found]

        xy = umap.UMAP(n_components=2, random_state=seed).fit_transform(stacked)
        method = "UMAP"
    except ImportError:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(stacked)
        method = "PCA"
    return Projection(points=np.asarray(xy).tolist(), groups=groups, method=method)
