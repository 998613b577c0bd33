"""Per-image outcomes of a result: what a baseline stores so a later run can be compared paired.

A result that decomposes over images is written as

    value = offset + sum over parts p of weight_p * mean_i x_p[i]

where each *part* is one vector over the images of one *image set*: per-image correctness
(booleans) for accuracy-type results, per-image numbers for focus measures and neighbour
consistency. Examples:

- top-1 accuracy: one part, the correctness, weight 1;
- an accuracy drop: two parts on one set, clean (weight 1) and altered (weight -1);
- balanced accuracy: one part per class, each on the set of that class's images, weight 1/K;
- mCE: one part per (corruption, severity) cell, weight ``-100 / (15 * sum_s A_c,s)`` with
  the reference's errors ``A``, and the offset that turns correctness into error;
- BG-Gap: mixed_same (weight 1) and mixed_rand (weight -1), each on its own set.

Parts on one set are resampled together (the same images for every part and for both
runs); different sets are resampled independently. An image set carries a digest of its
item ids in order, which is what proves that a baseline and a run scored the same images,
and (optionally) the ids themselves, so a comparison can name the images that changed.

:meth:`Outcomes.value` recomputes the result from its parts; a comparison refuses to pair
outcomes that do not reproduce the recorded value.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_sslrobust.paired import pack_ids, pack_outcomes, unpack_ids, unpack_outcomes

__all__ = [
    "FORMAT",
    "NAMED",
    "ImageSet",
    "Outcomes",
    "PairedDifference",
    "Part",
    "PartChange",
    "ids_digest",
    "paired_difference",
    "similarity_difference",
    "unpaired_reason",
]

# The "format" of Outcomes.to_dict; version 2 results stored {"correct", "n", "ids"} only.
FORMAT = "parts"


def ids_digest(ids: Sequence[str]) -> str:
    """The digest a feature set's protocol records as ``ids_digest`` for the same ids."""
    from pytest_sslrobust.data.base import stable_hash

    return stable_hash(*ids)


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """The images one or more parts are measured on: how many, and which (digest, ids)."""

    n: int
    digest: str | None = None
    ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"Expected an image set of at least one image, but got n={self.n!r}")
        if self.ids is not None:
            if len(self.ids) != self.n:
                raise ValueError(f"Expected {self.n} item ids, but got {len(self.ids)}")
            if self.digest is None:
                object.__setattr__(self, "digest", ids_digest(self.ids))

    @classmethod
    def of(cls, n: int, ids: Sequence[str] | None = None, digest: str | None = None) -> ImageSet:
        """A set of ``n`` images; ids of another length than ``n`` are not kept."""
        kept = tuple(str(i) for i in ids) if ids is not None and len(ids) == n else None
        return cls(int(n), None if kept is not None else digest, kept)


@dataclasses.dataclass(frozen=True, eq=False)
class Part:
    """One per-image vector: ``values`` (booleans or numbers) over the images of ``image_set``."""

    name: str
    image_set: str
    weight: float
    values: np.ndarray

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.ndim != 1:
            raise ValueError(f"Expected part {self.name!r} to be (n,), but got {values.shape}")
        if values.dtype != np.bool_:
            values = values.astype(np.float64)
            if not np.isfinite(values).all():
                raise ValueError(f"Expected finite per-image values in part {self.name!r}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "weight", float(self.weight))

    @property
    def is_correctness(self) -> bool:
        return bool(self.values.dtype == np.bool_)


@dataclasses.dataclass(frozen=True, eq=False)
class Outcomes:
    """The parts of a result, the image sets they are on, and the offset (see the module)."""

    parts: tuple[Part, ...]
    sets: Mapping[str, ImageSet]
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("Expected at least one part in the outcomes")
        names = [part.name for part in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(f"Expected distinct part names, but got {names}")
        for part in self.parts:
            image_set = self.sets.get(part.image_set)
            if image_set is None:
                raise ValueError(f"Part {part.name!r} is on unknown image set {part.image_set!r}")
            if part.values.shape[0] != image_set.n:
                raise ValueError(
                    f"Expected part {part.name!r} to have {image_set.n} values (its image set), "
                    f"but got {part.values.shape[0]}"
                )
        object.__setattr__(self, "sets", dict(self.sets))
        object.__setattr__(self, "parts", tuple(self.parts))

    @classmethod
    def single(
        cls,
        values: Any,
        *,
        ids: Sequence[str] | None = None,
        digest: str | None = None,
        name: str = "images",
    ) -> Outcomes:
        """One part of weight 1 on one set: an accuracy (booleans) or a mean (numbers)."""
        array = np.asarray(values)
        return cls(
            (Part(name, "images", 1.0, array),), {"images": ImageSet.of(len(array), ids, digest)}
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outcomes):
            return NotImplemented
        # Through the stored form: numpy arrays have no single truth value.
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def value(self) -> float:
        """The result these outcomes decompose: ``offset + sum_p weight_p * mean(x_p)``."""
        terms = [part.weight * float(np.mean(part.values)) for part in self.parts]
        return math.fsum([self.offset, *terms])

    def reproduces(self, value: float) -> bool:
        """Whether :meth:`value` is ``value`` to rounding (so the parts are the result's)."""
        return math.isclose(self.value(), value, rel_tol=1e-6, abs_tol=1e-9)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: booleans bit-packed, numbers as compressed float64, ids compressed."""
        sets = {}
        for name, image_set in self.sets.items():
            entry: dict[str, Any] = {"n": image_set.n, "digest": image_set.digest}
            if image_set.ids is not None:
                entry["ids"] = pack_ids(list(image_set.ids))
            sets[name] = entry
        parts = []
        for part in self.parts:
            entry = {"name": part.name, "set": part.image_set, "weight": part.weight}
            if part.is_correctness:
                entry["correct"] = pack_outcomes(part.values)
            else:
                raw = zlib.compress(part.values.astype("<f8").tobytes(), 9)
                entry["values"] = base64.b64encode(raw).decode("ascii")
            parts.append(entry)
        return {"format": FORMAT, "offset": self.offset, "sets": sets, "parts": parts}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, digest: str | None = None) -> Outcomes:
        """Inverse of :meth:`to_dict`; also reads version 2's single accuracy
        (``{"correct", "n", "ids"}``), whose set digest is the result's ``ids_digest``
        (``digest``). ``ValueError`` names what is damaged."""
        if data.get("format") != FORMAT:
            if "correct" not in data or "n" not in data:
                raise ValueError(f"Expected outcomes of format {FORMAT!r}, but got {sorted(data)}")
            n = int(data["n"])
            ids = unpack_ids(str(data["ids"])) if "ids" in data else None
            values = unpack_outcomes(str(data["correct"]), (n,))
            return cls.single(values, ids=ids, digest=digest, name="accuracy")
        sets = {}
        for name, entry in dict(data["sets"]).items():
            ids = unpack_ids(str(entry["ids"])) if "ids" in entry else None
            n = int(entry["n"])
            if ids is not None and len(ids) != n:
                raise ValueError(f"Expected {n} ids in image set {name!r}, but got {len(ids)}")
            stored = entry.get("digest")
            image_set = ImageSet(
                n, None if ids is not None else stored, tuple(ids) if ids else None
            )
            if ids is not None and stored is not None and image_set.digest != stored:
                raise ValueError(f"Image set {name!r}: its ids do not match its digest")
            sets[str(name)] = image_set
        parts = []
        for entry in data["parts"]:
            n = sets[str(entry["set"])].n if str(entry["set"]) in sets else 0
            if "correct" in entry:
                values = unpack_outcomes(str(entry["correct"]), (n,))
            else:
                try:
                    raw = zlib.decompress(base64.b64decode(str(entry["values"]), validate=True))
                except (ValueError, zlib.error) as exc:
                    raise ValueError(
                        f"Expected packed values, but the data is damaged ({exc})"
                    ) from None
                values = np.frombuffer(raw, dtype="<f8").astype(np.float64)
            parts.append(
                Part(str(entry["name"]), str(entry["set"]), float(entry["weight"]), values)
            )
        return cls(tuple(parts), sets, float(data.get("offset", 0.0)))


# How many images (and parts) a paired comparison names.
NAMED = 5


@dataclasses.dataclass(frozen=True)
class PartChange:
    """How one part moved: its share of the worsening, and for correctness how many images
    became wrong (``lost``) and right (``gained``)."""

    name: str
    worsening: float
    lost: int | None = None
    gained: int | None = None


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """A result's change from the baseline on the same images, with its paired evidence.

    ``delta`` is now minus baseline; ``low``/``high`` its paired bootstrap interval at
    ``confidence``; ``p`` the p-value of "worse by more than the tolerance" (``None``
    without one), by ``test``. ``worsened``/``improved`` count images whose contribution
    moved the wrong/right way; ``images`` names those that worsened most, ``parts`` the
    parts (cells, classes, variants) worst first. A result that does not decompose over
    images (CKA, CCA: recomputed on both runs' features) has no parts; ``basis`` says what
    was resampled.
    """

    delta: float
    low: float
    high: float
    confidence: float
    p: float | None
    test: str
    n: int
    worsened: int
    improved: int
    parts: tuple[PartChange, ...]
    images: tuple[str, ...]
    basis: str = ""

    def describe(self) -> str:
        """The row note: what changed, on how many images, and which."""
        level = f"{100 * self.confidence:g}%"
        interval = f"difference {self.delta:+.4g}, {level} paired interval [{self.low:+.4g}, {self.high:+.4g}]"
        if not self.parts:
            return f"paired: {self.basis}; {interval}"
        if len(self.parts) == 1 and self.parts[0].lost is not None:
            part = self.parts[0]
            text = f"paired: {part.lost} of {self.n} images became wrong, {part.gained} right"
            if self.images:
                more = ", ..." if (part.lost or 0) > len(self.images) else ""
                text += f" (wrong now: {', '.join(self.images)}{more})"
            return f"{text}; {interval}"
        text = (
            f"paired over {len(self.parts)} parts, {self.n} images: {self.worsened} worse, "
            f"{self.improved} better; {interval}"
        )
        worst = [part for part in self.parts if part.worsening > 0][:3]
        if worst:
            text += "; worst: " + ", ".join(_part_text(part) for part in worst)
        if self.images:
            more = ", ..." if self.worsened > len(self.images) else ""
            text += f"; images most worse: {', '.join(self.images)}{more}"
        return text


def _part_text(part: PartChange) -> str:
    if part.lost is None:
        return f"{part.name} ({part.worsening:+.3g})"
    return f"{part.name} ({part.lost} became wrong, {part.gained} right)"


def unpaired_reason(baseline: Outcomes, current: Outcomes) -> str | None:
    """Why the two cannot be compared image by image, or ``None`` when they can."""
    old_parts = {part.name: part for part in baseline.parts}
    new_parts = {part.name: part for part in current.parts}
    if set(old_parts) != set(new_parts):
        only = sorted(set(old_parts) ^ set(new_parts))[:3]
        return f"the outcomes have different parts ({', '.join(only)} on one side only)"
    for name, old in old_parts.items():
        new = new_parts[name]
        if old.weight != new.weight or old.is_correctness != new.is_correctness:
            return f"part {name} is weighted differently (another reference or class balance)"
        before, after = baseline.sets[old.image_set], current.sets[new.image_set]
        if before.digest is None or after.digest is None:
            return "no item ids on one side, so nothing proves the images are the same"
        if before.digest != after.digest:
            return f"part {name} is on other images (item ids differ)"
    if not math.isclose(baseline.offset, current.offset, rel_tol=1e-9, abs_tol=1e-12):
        return "the outcomes' offsets differ (another reference)"
    return None


def _worse_p(worsening: np.ndarray, allowed: float) -> float:
    """The bootstrap p-value of "worse by more than ``allowed``": the share of resampled
    worsenings within it, with the usual +1 (never 0)."""
    return float((1 + np.count_nonzero(worsening <= allowed)) / (len(worsening) + 1))


def paired_difference(
    baseline: Outcomes,
    current: Outcomes,
    *,
    better: str,
    allowed: float | None,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """The change from ``baseline`` to ``current`` decided on the same images.

    Call only when :func:`unpaired_reason` is ``None``. Per image set the per-image
    difference ``sum_p weight_p * (x_now - x_before)`` is resampled (paired bootstrap,
    :func:`pytest_sslrobust.paired.bootstrap_sums`); sets independently. The p-value of a
    worsening beyond ``allowed`` is the share of resamples whose worsening is within it
    (with the usual +1), except for a single correctness part at ``allowed`` 0, where it is
    the exact McNemar tail.
    """
    from pytest_sslrobust.paired import bootstrap_sums, mcnemar_worse, paired_worsening_p

    if better not in ("lower", "higher"):
        raise ValueError(f"Expected better 'lower' or 'higher', but got {better!r}")
    sign = 1.0 if better == "lower" else -1.0
    old_parts = {part.name: part for part in baseline.parts}
    groups: dict[str, np.ndarray] = {}
    counterpart: dict[str, str] = {}
    changes = []
    for new in current.parts:
        old = old_parts[new.name]
        counterpart[new.image_set] = old.image_set
        moved = new.values.astype(np.float64) - old.values.astype(np.float64)
        groups[new.image_set] = groups.get(new.image_set, 0.0) + new.weight * moved
        lost = gained = None
        if new.is_correctness:
            lost = int(np.count_nonzero(old.values & ~new.values))
            gained = int(np.count_nonzero(~old.values & new.values))
        changes.append(PartChange(new.name, sign * new.weight * float(moved.mean()), lost, gained))
    delta = current.value() - baseline.value()
    sums = bootstrap_sums(list(groups.values()), seed=seed)
    tail = (1.0 - confidence) / 2.0
    low, high = (float(q) for q in np.quantile(sums, [tail, 1.0 - tail]))
    single = changes[0] if len(changes) == 1 and changes[0].lost is not None else None
    p = None
    test = f"paired bootstrap, {len(sums)} resamples, seed {seed}"
    if allowed is not None:
        if single is not None and sign * current.parts[0].weight < 0:
            # Correctness is the good direction: the accuracy's own McNemar/multinomial.
            n = current.parts[0].values.shape[0]
            scale = abs(current.parts[0].weight)
            p = paired_worsening_p(single.lost, single.gained, n, allowed / scale, seed=seed)
            if allowed <= 0.0:
                old = baseline.parts[0].values
                p = mcnemar_worse(old, current.parts[0].values).p
                test = "exact McNemar"
        else:
            p = _worse_p(sign * sums, allowed)
    worsened = improved = 0
    ranked: list[tuple[float, int, str]] = []
    for name, difference in groups.items():
        per_image = sign * np.asarray(difference, np.float64)
        worsened += int(np.count_nonzero(per_image > 1e-12))
        improved += int(np.count_nonzero(per_image < -1e-12))
        # Either side's ids name the images (the digests say they are the same ones).
        ids = current.sets[name].ids or baseline.sets[counterpart[name]].ids
        if ids is not None:
            order = np.argsort(-per_image, kind="stable")[:NAMED]
            ranked += [(float(per_image[i]), int(i), ids[i]) for i in order if per_image[i] > 1e-12]
    ranked.sort(key=lambda item: (-item[0], item[1]))
    changes.sort(key=lambda change: (-change.worsening, change.name))
    return PairedDifference(
        delta=delta,
        low=low,
        high=high,
        confidence=confidence,
        p=p,
        test=test,
        n=sum(image_set.n for image_set in current.sets.values()),
        worsened=worsened,
        improved=improved,
        parts=tuple(changes),
        images=tuple(name for _, _, name in ranked[:NAMED]),
    )


def similarity_difference(
    baseline: tuple[Any, Any],
    current: tuple[Any, Any],
    measure: Any,
    *,
    better: str,
    allowed: float | None,
    confidence: float = 0.95,
    seed: int = 0,
    resamples: int = 1000,
) -> PairedDifference:
    """The change of a similarity (CKA, CCA) between two runs' features of the same images.

    ``baseline`` and ``current`` are each run's ``(x, y)`` features, rows the same images in
    the same order. The images are resampled once for both runs and ``measure`` recomputed
    on each (:func:`pytest_sslrobust.metrics.statistics.cka_difference_resamples`); the
    p-value of a worsening beyond ``allowed`` is the share of resamples whose worsening is
    within it (with the usual +1).
    """
    from pytest_sslrobust.metrics.statistics import cka_difference_resamples

    if better not in ("lower", "higher"):
        raise ValueError(f"Expected better 'lower' or 'higher', but got {better!r}")
    sign = 1.0 if better == "lower" else -1.0
    delta, draws = cka_difference_resamples(
        *current, *baseline, measure, resamples=resamples, seed=seed, confidence=confidence
    )
    tail = (1.0 - confidence) / 2.0
    low, high = (float(q) for q in np.quantile(draws, [tail, 1.0 - tail]))
    p = None if allowed is None else _worse_p(sign * draws, allowed)
    n = int(current[0].shape[0])
    return PairedDifference(
        delta=delta,
        low=low,
        high=high,
        confidence=confidence,
        p=p,
        test=f"paired bootstrap of the recomputed measure, {resamples} resamples, seed {seed}",
        n=n,
        worsened=0,
        improved=0,
        parts=(),
        images=(),
        basis=f"recomputed on both runs' cached features of the same {n} images",
    )
