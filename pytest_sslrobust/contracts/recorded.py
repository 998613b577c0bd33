"""The per-image outcomes each contract records, so a baseline comparison can pair them.

Each builder returns :meth:`pytest_sslrobust.outcomes.Outcomes.to_dict` of parts that
reproduce the contract's value exactly (the comparison checks it); the images are named by
the item ids of the FeatureSet (or CorruptionErrors) the contract read, and proven the same
across runs by their digest. Bare arrays carry no ids: their outcomes are recorded, but a
comparison will not pair them (nothing proves the images are the same).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_sslrobust.metrics.corruption import CorruptionErrors
from pytest_sslrobust.outcomes import ImageSet, Outcomes, Part
from pytest_sslrobust.vocabulary import COMMON

__all__ = [
    "balanced_outcomes",
    "correctness_outcomes",
    "corruption_outcomes",
    "drop_outcomes",
    "images_of",
    "mean_outcomes",
]


def images_of(n: int, *sources: Any) -> ImageSet:
    """The image set of ``n`` images named by the first source with ids of that length
    (FeatureSet, CorruptionErrors, AttributionSet), else with the ``ids_digest`` its
    protocol records."""
    digest = None
    for source in sources:
        ids = getattr(source, "ids", None)
        if isinstance(ids, (tuple, list)) and len(ids) == n:
            return ImageSet.of(n, ids)
        protocol = getattr(source, "protocol", None)
        if digest is None and isinstance(protocol, Mapping) and protocol.get("ids_digest"):
            digest = str(protocol["ids_digest"])
    return ImageSet.of(n, None, digest)


def correctness_outcomes(correct: np.ndarray, *sources: Any) -> dict[str, Any]:
    """An accuracy: the per-image correctness, one part."""
    values = np.asarray(correct, np.bool_)
    images = images_of(values.shape[0], *sources)
    return Outcomes((Part("accuracy", "images", 1.0, values),), {"images": images}).to_dict()


def drop_outcomes(
    clean: np.ndarray,
    altered: np.ndarray,
    *sources: Any,
    names: tuple[str, str] = ("clean", "altered"),
) -> dict[str, Any]:
    """An accuracy drop: clean correctness (weight 1) minus altered (weight -1), one set of
    images seen both ways (a BG-Gap too: mixed_same minus mixed_rand, ``names``)."""
    images = images_of(len(clean), *sources)
    parts = (
        Part(names[0], "images", 1.0, np.asarray(clean, np.bool_)),
        Part(names[1], "images", -1.0, np.asarray(altered, np.bool_)),
    )
    return Outcomes(parts, {"images": images}).to_dict()


def balanced_outcomes(truth: np.ndarray, correct: np.ndarray, *sources: Any) -> dict[str, Any]:
    """Balanced accuracy: each class's correctness on the set of its images, weight 1/K, so
    classes are resampled apart (stratified, as the contract's own interval)."""
    everything = images_of(truth.shape[0], *sources)
    classes = np.unique(truth)
    parts, sets = [], {}
    for label in classes.tolist():
        rows = np.flatnonzero(truth == label)
        name = f"class {label}"
        if everything.ids is not None:
            sets[name] = ImageSet.of(rows.size, [everything.ids[i] for i in rows])
        else:
            # The class's images follow from the set's ids and labels: digest both.
            digest = None
            if everything.digest is not None:
                from pytest_sslrobust.data.base import stable_hash

                digest = stable_hash(everything.digest, name, rows.size)
            sets[name] = ImageSet.of(rows.size, None, digest)
        parts.append(Part(name, name, 1.0 / classes.size, np.asarray(correct, np.bool_)[rows]))
    return Outcomes(tuple(parts), sets).to_dict()


def corruption_outcomes(
    errors: CorruptionErrors,
    sums: Mapping[str, float],
    *,
    relative: bool = False,
    clean_error: float | None = None,
) -> dict[str, Any] | None:
    """mCE or relative mCE as per-image terms: each common (corruption, severity) cell's
    correctness, weight ``w_c = -100 / (15 * sums[c])`` (``sums`` from
    :func:`pytest_sslrobust.metrics.corruption.reference_sums`), error being one minus
    correctness. Relative mCE subtracts ``5 * E_clean`` per corruption: the clean images
    are a part of weight ``-5 * sum_c w_c``, or ``clean_error``, when given, is held fixed.
    ``None`` when the errors have no per-image correctness to decompose."""
    correct = errors.correct
    if correct is None or any(name not in correct for name in COMMON):
        return None
    if relative and clean_error is None and errors.clean_correct is None:
        return None
    parts, offset = [], 0.0
    weights = {name: -100.0 / (len(COMMON) * sums[name]) for name in COMMON}
    for name in COMMON:
        for severity, row in enumerate(np.asarray(correct[name], np.bool_), start=1):
            parts.append(Part(f"{name}/{severity}", "images", weights[name], row))
            offset -= weights[name]  # the cell's error: 1 - mean correctness
    if relative:
        total = sum(weights.values())
        if clean_error is not None:
            offset += 5 * total * clean_error
        else:
            offset += 5 * total
            parts.append(Part("clean", "images", -5 * total, np.asarray(errors.clean_correct)))
    images = images_of(errors.n, errors)
    return Outcomes(tuple(parts), {"images": images}, offset).to_dict()


def mean_outcomes(values: Sequence[float] | np.ndarray, *sources: Any, name: str) -> dict[str, Any]:
    """A mean of per-image numbers (a focus measure, a neighbour score): one part."""
    array = np.asarray(values, np.float64)
    images = images_of(array.shape[0], *sources)
    return Outcomes((Part(name, "images", 1.0, array),), {"images": images}).to_dict()
