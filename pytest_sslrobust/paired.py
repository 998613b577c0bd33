"""Paired decisions for the release gate: per-image outcomes packed, exact McNemar, Holm."""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Sequence

import numpy as np

__all__ = [
    "McNemar",
    "bootstrap_sums",
    "holm",
    "mcnemar_worse",
    "pack_ids",
    "pack_outcomes",
    "paired_worsening_p",
    "unpack_ids",
    "unpack_outcomes",
]

RESAMPLES = 9999


def pack_outcomes(outcomes: np.ndarray) -> str:
    """Per-image booleans, ``(n,)`` or ``(cells, n)``, as bit-packed, zlib-compressed base64.

    Eight images per byte before compression, so 50,000 images x 75 cells take 469 kB
    packed and less compressed (benchmarks/bench_gate.py measures it).

    >>> unpack_outcomes(pack_outcomes(np.array([True, False, True])), (3,)).tolist()
    [True, False, True]
    """
    values = np.asarray(outcomes)
    if values.dtype != np.bool_:
        raise ValueError(f"Expected boolean outcomes, but got dtype {values.dtype}")
    packed = np.packbits(values.ravel())
    return base64.b64encode(zlib.compress(packed.tobytes(), 9)).decode("ascii")


def unpack_outcomes(text: str, shape: Sequence[int]) -> np.ndarray:
    """The booleans :func:`pack_outcomes` packed, in ``shape``; ``ValueError`` if damaged."""
    count = math.prod(shape)
    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"Expected packed outcomes, but the data is damaged ({exc})") from None
    if len(raw) != (count + 7) // 8:
        raise ValueError(
            f"Expected {count} packed outcomes ({(count + 7) // 8} bytes), but got {len(raw)} bytes"
        )
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=count)
    return bits.astype(np.bool_).reshape(tuple(shape))


def pack_ids(ids: Sequence[str]) -> str:
    """Item ids, newline-joined, zlib-compressed, base64: named when images flip."""
    if any("\n" in item for item in ids):
        raise ValueError("Expected item ids without newlines")
    return base64.b64encode(zlib.compress("\n".join(ids).encode("utf-8"), 9)).decode("ascii")


def unpack_ids(text: str) -> list[str]:
    """The ids :func:`pack_ids` packed; ``ValueError`` if damaged."""
    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"Expected packed item ids, but the data is damaged ({exc})") from None
    return raw.decode("utf-8").split("\n") if raw else []


class McNemar:
    """The exact one-sided McNemar test of a worsening: ``lost`` images the candidate gets
    wrong that the baseline got right, ``gained`` the other way, ``p`` the probability of
    at least ``lost`` of the ``lost + gained`` discordant images under no worsening."""

    __slots__ = ("gained", "lost", "p")

    def __init__(self, lost: int, gained: int, p: float) -> None:
        self.lost, self.gained, self.p = lost, gained, p

    def __repr__(self) -> str:
        return f"McNemar(lost={self.lost}, gained={self.gained}, p={self.p:.3g})"


def mcnemar_worse(baseline: np.ndarray, candidate: np.ndarray) -> McNemar:
    """Exact McNemar test that ``candidate`` is right on fewer of the same images.

    Args:
        baseline: ``(n,)`` booleans, per-image correctness of the baseline.
        candidate: ``(n,)`` booleans of the candidate on the same images in the same order.

    Returns:
        The discordant counts and the one-sided p-value, ``P(X >= lost)`` for ``X ~
        Binomial(lost + gained, 1/2)`` (1.0 when no image changed).

    >>> mcnemar_worse(np.array([True] * 10), np.array([False] * 10)).p
    0.0009765625
    """
    base, cand = np.asarray(baseline, np.bool_), np.asarray(candidate, np.bool_)
    if base.shape != cand.shape or base.ndim != 1:
        raise ValueError(
            f"Expected two (n,) outcome arrays of one shape, but got {base.shape} and {cand.shape}"
        )
    lost = int(np.count_nonzero(base & ~cand))
    gained = int(np.count_nonzero(~base & cand))
    return McNemar(lost, gained, _binomial_tail(lost, lost + gained))


def _binomial_tail(k: int, n: int) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, 1/2)``."""
    if k <= 0:
        return 1.0
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, 0.5))


def paired_worsening_p(lost: int, gained: int, n: int, allowed: float, *, seed: int = 0) -> float:
    """p-value of "the accuracy fell by more than ``allowed``" from the discordant counts.

    At ``allowed`` 0 the exact McNemar tail; otherwise a paired bootstrap of the difference:
    resampling n images with replacement draws (lost, gained, rest) counts from a
    multinomial, so the bootstrap is exact and cheap; ``p`` is the share of resamples
    whose worsening ``(lost - gained) / n`` is within ``allowed`` (with the usual +1).
    """
    if allowed <= 0.0:
        return _binomial_tail(lost, lost + gained)
    rng = np.random.default_rng(seed)
    shares = [lost / n, gained / n, max(0.0, 1.0 - (lost + gained) / n)]
    draws = rng.multinomial(n, shares, size=RESAMPLES)
    worsening = (draws[:, 0] - draws[:, 1]) / n
    return float((1 + np.count_nonzero(worsening <= allowed)) / (RESAMPLES + 1))


# Above this many distinct per-image values, resampling draws indices (fewer resamples).
_EXACT_DISTINCT = 4096
_INDEX_RESAMPLES = 2000


def bootstrap_sums(groups: Sequence[np.ndarray], *, seed: int = 0) -> np.ndarray:
    """Resampled ``sum_g mean(groups[g])``: each group's images resampled with replacement,
    groups independently (the paired bootstrap of a difference that decomposes over images).

    A group with few distinct values (correctness differences take three) is resampled
    exactly and cheaply as multinomial counts of its distinct values; with many distinct
    values, by drawing indices. Returns :data:`RESAMPLES` sums (or 2,000 when any group has
    more than 4,096 distinct values), the same for the same ``seed``.

    >>> sums = bootstrap_sums([np.array([1.0, 1.0, 1.0])], seed=0)
    >>> bool((sums == 1.0).all())
    True
    """
    rng = np.random.default_rng(seed)
    uniques = [np.unique(np.asarray(g, np.float64), return_counts=True) for g in groups]
    exact = all(len(values) <= _EXACT_DISTINCT for values, _ in uniques)
    resamples = RESAMPLES if exact else _INDEX_RESAMPLES
    total = np.zeros(resamples)
    for group, (values, counts) in zip(groups, uniques, strict=True):
        n = int(counts.sum())
        if len(values) <= _EXACT_DISTINCT:
            draws = rng.multinomial(n, counts / n, size=resamples)
            total += draws @ values / n
            continue
        data = np.asarray(group, np.float64)
        for start in range(0, resamples, 100):  # bounded memory: 100 x n indices at a time
            rows = min(100, resamples - start)
            total[start : start + rows] += data[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    return total


def holm(pvalues: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections at family-wise error rate ``alpha``, in input order.

    The smallest p-value is compared with ``alpha / m``, the next with ``alpha / (m - 1)``
    and so on; testing stops at the first that is not below its level. Valid under any
    dependence between the tests (cells of one model on one set of images are dependent).

    >>> holm([0.001, 0.04, 0.03], 0.05)
    [True, False, False]
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"Expected alpha in the open interval (0, 1), but got {alpha:g}")
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    for rank, index in enumerate(order):
        if pvalues[index] > alpha / (len(pvalues) - rank):
            break
        rejected[index] = True
    return rejected
