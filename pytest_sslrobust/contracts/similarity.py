"""Representation-similarity contracts: CKA and CCA of two representations of the same images."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pytest_sslrobust.contracts.decision import conclude
from pytest_sslrobust.contracts.inputs import features_of, protocol_of
from pytest_sslrobust.features.store import FeatureSet
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.cca import CCAValue
from pytest_sslrobust.metrics.similarity import cca_mean, cca_r2, debiased_cka, linear_cka, rbf_cka
from pytest_sslrobust.metrics.statistics import cka_interval
from pytest_sslrobust.results import ContractResult, run_seed

__all__ = ["FEATURES_FORMAT", "assert_cca_between", "assert_cka_between", "similarity_measure"]

# The ``outcomes`` format of a similarity result: not per-image terms (CKA and CCA do not
# decompose over images) but which cached features it was computed on, so a baseline
# comparison can recompute it on both runs' features of the same images.
FEATURES_FORMAT = "features"

_CKA_KERNELS: dict[str, Callable[[Any, Any], float]] = {
    "linear": linear_cka,
    "rbf": rbf_cka,
    "debiased": debiased_cka,
}


_CCA_KINDS: dict[str, Callable[..., CCAValue]] = {"r2": cca_r2, "mean": cca_mean}


_CCA_SHOWN = {"r2": "CCA R^2", "mean": "mean CCA"}


def similarity_measure(name: str, reduce: str | None = None) -> Callable[[Any, Any], float]:
    """The function a similarity result names (``linear_cka``, ``cca_r2``, ...), with the
    CCA reduction it was computed under. ``KeyError`` for an unknown name."""
    for fn in _CKA_KERNELS.values():
        if fn.__name__ == name:
            return fn
    for fn in _CCA_KINDS.values():
        if fn.__name__ == name:
            return functools.partial(fn, reduce=reduce or "auto")
    raise KeyError(name)


def _features_reference(
    x: Any, y: Any, metric_name: str, reduce: str | None
) -> dict[str, Any] | None:
    """What a comparison needs to recompute the measure: both sets' cache keys and images;
    ``None`` unless both are FeatureSets of the same images (bare arrays are not cached)."""
    if not (isinstance(x, FeatureSet) and isinstance(y, FeatureSet)) or x.ids != y.ids:
        return None
    from pytest_sslrobust.outcomes import ids_digest

    return {
        "format": FEATURES_FORMAT,
        "measure": metric_name,
        "reduce": reduce,
        "x": x.key,
        "y": y.key,
        "n": len(x.ids),
        "digest": ids_digest(x.ids),
    }


def _similarity(
    helper: str,
    x: Any,
    y: Any,
    low: float,
    high: float,
    *,
    fn: Callable[[Any, Any], float],
    metric_name: str,
    metric: str,
    shown: str,
    label: str | None,
    confidence: float | None,
    resamples: int,
    seed: int,
    reduce: str | None = None,
) -> ContractResult:
    __tracebackhide__ = True
    lo, hi = _checks.number_range(low, high)
    level = _checks.confidence(confidence)
    a, b = features_of(x), features_of(y)
    value = fn(a, b)
    interval = None
    if level is not None:
        interval = cka_interval(
            a, b, fn, resamples=resamples, confidence=level, seed=run_seed(seed)
        )
    n = int(_checks.as_tensor(a, "x").shape[0])
    dims = value if isinstance(value, CCAValue) else None
    rows = [("n", str(n), "", "", ""), ("metric", metric_name, "", "", "")]
    notes = [] if dims is None or not dims.reduced else [dims.statement()]
    details: list[dict[str, Any]] = []
    for index, (name, value_in) in enumerate((("x", x), ("y", y))):
        detail: dict[str, Any] = {"item": name}
        if isinstance(value_in, FeatureSet):
            backbone = value_in.protocol.get("backbone", "?")
            rows.append((name, f"{backbone} / {value_in.variant}", "", "", ""))
            detail.update(backbone=backbone, variant=value_in.variant)
        if dims is not None:
            width, kept = dims.widths[index], dims.kept[index]
            shown_dims = str(kept) if kept == width else f"{kept} of {width} (reduced)"
            rows.append((f"{name} dims", shown_dims, "", "", ""))
            detail.update(width=width, kept=kept, reduced=kept != width)
        if len(detail) > 1:
            details.append(detail)
    return conclude(
        helper,
        metric=metric,
        shown=shown,
        value=value,
        low=lo,
        high=hi,
        better="higher",
        label=_checks.name_or_default(label, metric),
        decimals=4,
        interval=interval,
        context=f"n={n}",
        rows=rows,
        notes=notes,
        protocol=protocol_of(x, y),
        details=details,
        outcomes=_features_reference(x, y, metric_name, reduce),
    )


def assert_cka_between(
    x: Any,
    y: Any,
    low: float,
    high: float,
    *,
    kernel: str = "linear",
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that the CKA between two representations of the same images is in [low, high].

    Args:
        x: FeatureSet or (n, d1) array/tensor.
        y: FeatureSet or (n, d2) array/tensor, the same images in the same order.
        low: the smallest acceptable CKA.
        high: the largest acceptable CKA.
        kernel: ``"linear"``, ``"rbf"`` or ``"debiased"`` (linear CKA, unbiased HSIC).
        label: tells several results of one test apart (default ``"cka"``).
        confidence: e.g. 0.95 to require the whole bootstrap interval (rows resampled
            jointly) inside [low, high].
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).
    """
    __tracebackhide__ = True
    if kernel not in _CKA_KERNELS:
        raise ValueError(f"Expected kernel to be one of {tuple(_CKA_KERNELS)}, but got {kernel!r}")
    return _similarity(
        "assert_cka_between",
        x,
        y,
        low,
        high,
        fn=_CKA_KERNELS[kernel],
        metric_name=_CKA_KERNELS[kernel].__name__,
        metric="cka",
        shown=f"{kernel} CKA",
        label=label,
        confidence=confidence,
        resamples=resamples,
        seed=run_seed(seed),
    )


def assert_cca_between(
    x: Any,
    y: Any,
    low: float,
    high: float,
    *,
    kind: str = "r2",
    reduce: str = "auto",
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that a CCA similarity of two representations is in [low, high].

    Args:
        x: FeatureSet or (n, d1) array/tensor.
        y: FeatureSet or (n, d2) array/tensor, the same images in the same order.
        low: the smallest acceptable value.
        high: the largest acceptable value.
        kind: ``"r2"`` (mean squared canonical correlation) or ``"mean"``.
        reduce: ``"auto"`` (default) reduces a side wider than ``max(4, (n - 1) // 10)``
            directions to its top principal directions, SVCCA-style, so that small n does
            not make unrelated features look similar; ``"refuse"`` raises a ValueError
            instead, ``"none"`` uses every direction (see
            :func:`pytest_sslrobust.metrics.cca.cca_r2`). The directions kept per side are
            in the result's details and the failure table, and a reduction is stated in
            the failure message.
        label: tells several results of one test apart (default ``"cca"``).
        confidence: e.g. 0.95 to require the whole bootstrap interval inside [low, high].
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).
    """
    __tracebackhide__ = True
    if kind not in _CCA_KINDS:
        raise ValueError(f"Expected kind to be one of {tuple(_CCA_KINDS)}, but got {kind!r}")
    return _similarity(
        "assert_cca_between",
        x,
        y,
        low,
        high,
        fn=functools.partial(_CCA_KINDS[kind], reduce=reduce),
        metric_name=_CCA_KINDS[kind].__name__,
        metric="cca",
        shown=_CCA_SHOWN[kind],
        label=label,
        confidence=confidence,
        resamples=resamples,
        seed=run_seed(seed),
        reduce=reduce,
    )
