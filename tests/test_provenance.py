"""The provenance record keys features exactly as the protocol dict it replaced did, and
entries derived from features are keyed one way."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from pytest_sslrobust.features.cache import cache_key
from pytest_sslrobust.features.derived import derived_entry
from pytest_sslrobust.features.provenance import Provenance, Subset
from pytest_sslrobust.features.store import FeatureSet, feature_key

# The protocol dict as FeatureStore.get built it by hand before the record existed, field
# for field and in its order. If this test fails after a field change, the change moves
# every feature key: bump CACHE_FORMAT (features/cache.py) and say so in the CHANGELOG.
OLD_PROTOCOL: dict[str, Any] = {
    "data": "bundled:textured-digits",
    "dataset_fingerprint": "d" * 64,
    "split": "test",
    "variant": "gaussian_noise-s3",
    "variant_params": {"corruption": "gaussian_noise", "severity": 3, "protocol": "on-the-fly"},
    "origin": "on-the-fly",
    "subset": {"max_images": 40, "seed": 0, "n": 40},
    "ids_digest": "i" * 64,
    "backbone": "random-resnet18",
    "backbone_fingerprint": "b" * 64,
    "preprocessing": {
        "input_size": 64,
        "crop_pct": 1.0,
        "interpolation": "bicubic",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
    },
    "precision": "fp32",
    "seed": 0,
    "versions": {"pytest-sslrobust": "1.0", "torch": "2.5.0", "numpy": "2.1.0"},
    "image_size": 64,
}


def record() -> Provenance:
    return Provenance(
        data="bundled:textured-digits",
        dataset_fingerprint="d" * 64,
        split="test",
        variant="gaussian_noise-s3",
        variant_params={"corruption": "gaussian_noise", "severity": 3, "protocol": "on-the-fly"},
        origin="on-the-fly",
        subset=Subset(max_images=40, seed=0, n=40),
        ids_digest="i" * 64,
        backbone="random-resnet18",
        backbone_fingerprint="b" * 64,
        preprocessing={
            "input_size": 64,
            "crop_pct": 1.0,
            "interpolation": "bicubic",
            "mean": (0.5, 0.5, 0.5),
            "std": (0.25, 0.25, 0.25),
        },
        precision="fp32",
        seed=0,
        versions={"pytest-sslrobust": "1.0", "torch": "2.5.0", "numpy": "2.1.0"},
        image_size=64,
    )


def test_the_record_is_the_old_protocol_dict_field_for_field_in_order() -> None:
    protocol = record().to_dict()
    assert protocol == OLD_PROTOCOL
    assert list(protocol) == list(OLD_PROTOCOL)
    assert json.dumps(protocol, sort_keys=True) == json.dumps(OLD_PROTOCOL, sort_keys=True)


def test_the_feature_key_is_the_old_dicts_key() -> None:
    old = cache_key({**OLD_PROTOCOL, "device_type": "cpu"})
    assert feature_key(record(), torch.device("cpu")) == old
    assert feature_key(record(), torch.device("meta")) != old


def test_the_feature_key_is_pinned() -> None:
    # The old code's key for OLD_PROTOCOL on the CPU (cache format 2), as a literal: a change
    # to the record, to cache_key or to CACHE_FORMAT shows here.
    assert (
        feature_key(record(), torch.device("cpu"))
        == "dff927c98d38b7ba96b458241700ad6c450f1bb825a6b0fc044f2d455e4d206c"
    )


def test_to_dict_hands_out_fresh_containers() -> None:
    made = record()
    protocol = made.to_dict()
    protocol["subset"]["n"] = 1
    protocol["variant_params"]["severity"] = 5
    protocol["versions"]["torch"] = "0"
    assert made.to_dict() == OLD_PROTOCOL


def test_from_dict_round_trips_and_survives_json() -> None:
    made = record()
    assert Provenance.from_dict(made.to_dict()) == made
    assert Provenance.from_dict(OLD_PROTOCOL) == made
    # JSON turns tuples into lists; the record read back still keys the same features.
    read = Provenance.from_dict(json.loads(json.dumps(made.to_dict())))
    assert read.subset == Subset(max_images=40, seed=0, n=40)
    assert feature_key(read, torch.device("cpu")) == feature_key(made, torch.device("cpu"))


def test_from_dict_names_what_is_missing() -> None:
    partial = {k: v for k, v in OLD_PROTOCOL.items() if k not in ("seed", "origin")}
    with pytest.raises(ValueError, match="lacks origin, seed"):
        Provenance.from_dict(partial)


def _feature_set(**given: Any) -> FeatureSet:
    return FeatureSet(
        features=torch.zeros(2, 3),
        logits=None,
        labels=torch.zeros(2, dtype=torch.int64),
        ids=("a", "b"),
        split="test",
        variant="gaussian_noise-s3",
        key="k",
        **given,
    )


def test_a_feature_set_derives_its_protocol_from_its_provenance() -> None:
    made = _feature_set(provenance=record())
    assert made.protocol == OLD_PROTOCOL
    assert Provenance.of(made) is made.provenance


def test_a_hand_made_feature_set_keeps_its_protocol() -> None:
    made = _feature_set(protocol={"backbone": "toy-net"})
    assert made.provenance is None and made.protocol == {"backbone": "toy-net"}
    assert Provenance.of(_feature_set(protocol=OLD_PROTOCOL)) == record()
    with pytest.raises(TypeError, match="not both"):
        _feature_set(protocol={"backbone": "toy-net"}, provenance=record())


class RecordingCache:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    def get(self, key: str, compute: Any, *, describe: Any = None, device: Any = None) -> Any:
        self.calls.append((key, describe, device))
        return compute()


def _keyed(key: str) -> FeatureSet:
    return FeatureSet(
        features=torch.zeros(1, 1),
        logits=None,
        labels=torch.zeros(1, dtype=torch.int64),
        ids=("a",),
        split="test",
        variant="original",
        key=key,
    )


@pytest.mark.parametrize(
    ("of", "by", "old"),
    [
        (
            {"train": "t" * 64, "test": "s" * 64},
            {"readout": {"readout": "linear-probe", "train_split": "train", "C": 1.0}},
            {
                "readout": {"readout": "linear-probe", "train_split": "train", "C": 1.0},
                "train": "t" * 64,
                "test": "s" * 64,
            },
        ),
        (
            {"attack_of": "c" * 64},
            {"attack": {"metric": "feature_drift", "eps": [0.0, 0.01], "steps": 3}},
            {
                "attack_of": "c" * 64,
                "attack": {"metric": "feature_drift", "eps": [0.0, 0.01], "steps": 3},
            },
        ),
        (
            {"attribution_of": "f" * 64},
            {"attribution": {"method": "gradcam", "images": 4}},
            {"attribution_of": "f" * 64, "attribution": {"method": "gradcam", "images": 4}},
        ),
    ],
    ids=["readout", "attack", "attribution"],
)
def test_derived_entries_keep_the_keys_each_place_built_by_hand(
    of: dict[str, str], by: dict[str, Any], old: dict[str, Any]
) -> None:
    cache = RecordingCache()
    sets = {role: _keyed(key) for role, key in of.items()}
    key, tensors = derived_entry(cache, sets, by, lambda: {"x": torch.ones(1)})  # type: ignore[arg-type]
    assert key == cache_key(old)
    assert cache.calls == [(key, old, None)]
    assert torch.equal(tensors["x"], torch.ones(1))


def test_a_derived_entry_records_what_it_is_told_to_describe() -> None:
    cache = RecordingCache()
    cpu = torch.device("cpu")
    derived_entry(
        cache,  # type: ignore[arg-type]
        {"attack_of": _keyed("c")},
        {"attack": {"steps": 3}},
        dict,
        describe={"steps": 3},
        device=cpu,
    )
    assert cache.calls == [
        (cache_key({"attack_of": "c", "attack": {"steps": 3}}), {"steps": 3}, cpu)
    ]


def test_a_role_that_is_also_a_setting_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\['test'\] in both"):
        derived_entry(RecordingCache(), {"test": _keyed("k")}, {"test": 1}, dict)  # type: ignore[arg-type]
