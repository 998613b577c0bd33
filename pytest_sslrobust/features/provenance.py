"""Provenance: the typed record of everything that made a feature set (its cache key's input)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_sslrobust.features.store import FeatureSet


@dataclasses.dataclass(frozen=True)
class Subset:
    """Which images of a split were used: ``n`` of them, chosen by ``seed`` (stratified), at
    most ``max_images`` (None for all), or, for a readout's training split with
    ``--sslrobust-train-per-class``, at most ``per_class`` of each class (``max_images`` then
    does not apply). ``per_class`` is written only when set, so other keys stay as they were."""

    max_images: int | None
    seed: int
    n: int
    per_class: int | None = None

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"max_images": self.max_images, "seed": self.seed, "n": self.n}
        if self.per_class is not None:
            record["per_class"] = self.per_class
        return record


@dataclasses.dataclass(frozen=True)
class Provenance:
    """How one feature set was made: data, split, variant, items, backbone, arithmetic.

    ``to_dict()`` is the plain mapping users, JSON output, baselines and the report read as
    ``FeatureSet.protocol``; its canonical JSON (plus the device type) is the feature set's
    cache key, so the field names and their order here are the key's and must not change
    without a cache format bump (``tests/test_provenance.py`` pins them).
    """

    data: str
    dataset_fingerprint: str
    split: str
    variant: str
    variant_params: Mapping[str, Any]
    origin: str
    subset: Subset
    ids_digest: str
    backbone: str
    backbone_fingerprint: str
    preprocessing: Mapping[str, Any]
    precision: str
    seed: int
    versions: Mapping[str, str]
    image_size: int

    def to_dict(self) -> dict[str, Any]:
        """The plain protocol mapping (fresh containers: callers may change their copy)."""
        record = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        record.update(
            variant_params=dict(self.variant_params),
            subset=self.subset.to_dict(),
            preprocessing=dict(self.preprocessing),
            versions=dict(self.versions),
        )
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Provenance:
        """The record of a protocol mapping, as ``to_dict`` writes it (or JSON reads it back)."""
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in record]
        if missing:
            raise ValueError(
                f"Expected a feature protocol with {', '.join(names)}, but it lacks "
                f"{', '.join(missing)}"
            )
        values = {name: record[name] for name in names}
        values["subset"] = Subset(**record["subset"])
        return cls(**values)

    @classmethod
    def of(cls, features: FeatureSet) -> Provenance:
        """The record of ``features``: the store's own, or one read from a hand-made set's
        protocol mapping."""
        if features.provenance is not None:
            return features.provenance
        return cls.from_dict(features.protocol)
