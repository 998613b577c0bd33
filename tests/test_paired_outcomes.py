"""Per-image outcomes of every decomposable contract, and the paired comparison built on them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sslrobust import (
    assert_accuracy_above,
    assert_accuracy_drop_below,
    assert_balanced_accuracy_above,
    assert_mce_below,
    assert_relative_mce_below,
)
from pytest_sslrobust.baselines import Baseline, compare, parse_tolerances
from pytest_sslrobust.metrics.corruption import (
    errors_from_predictions,
)
from pytest_sslrobust.outcomes import (
    ImageSet,
    Outcomes,
    Part,
    ids_digest,
    paired_difference,
    unpaired_reason,
)
from pytest_sslrobust.results import SCHEMA_VERSION
from pytest_sslrobust.vocabulary import COMMON

IDS = [f"n0/{i:05d}.JPEG" for i in range(300)]
PROTOCOL = {"data": "d", "ids_digest": ids_digest(IDS)}


def sweep(seed: int, *, accuracy: float = 0.7, flip: dict[str, int] | None = None) -> Any:
    """A 15 x 5 sweep of 300 images; ``flip`` turns that many right images wrong per cell."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=len(IDS))
    predictions: dict[str, list[np.ndarray]] = {}
    for name in COMMON:
        cells = []
        for severity in range(1, 6):
            right = rng.random(len(IDS)) < accuracy - 0.05 * severity
            cell = np.where(right, labels, (labels + 1) % 5)
            count = (flip or {}).get(f"{name}/{severity}", 0)
            cell[np.flatnonzero(cell == labels)[:count]] = (labels[cell == labels][:count] + 1) % 5
            cells.append(cell)
        predictions[name] = cells
    clean = np.where(rng.random(len(IDS)) < 0.9, labels, (labels + 2) % 5)
    protocol = {"source": "released-imagenet-c", **PROTOCOL}
    return errors_from_predictions(predictions, labels, clean, protocol=protocol, ids=IDS)


def reproduced(result: Any) -> float:
    outcomes = Outcomes.from_dict(result.outcomes, digest=result.protocol.get("ids_digest"))
    assert outcomes.reproduces(result.value), (outcomes.value(), result.value)
    return outcomes.value()


def test_every_decomposable_contract_records_outcomes_that_reproduce_its_value() -> None:
    errors = sweep(0)
    reference = sweep(1, accuracy=0.5)
    results = [
        assert_mce_below(errors, 1000.0),
        assert_mce_below(errors, 1e6, reference=reference),
        assert_relative_mce_below(errors, 1e6),
        assert_relative_mce_below(errors, 1e6, clean_error=0.2),
        assert_relative_mce_below(errors, 1e6, reference=reference),
    ]
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 4, size=200)
    predicted = np.where(rng.random(200) < 0.6, truth, (truth + 1) % 4)
    altered = np.where(rng.random(200) < 0.4, truth, (truth + 3) % 4)
    results += [
        assert_accuracy_above(predicted, truth, 0.0),
        assert_accuracy_drop_below(predicted, altered, 1.0, labels=truth),
        assert_balanced_accuracy_above(predicted, 0.0, labels=truth),
    ]
    for result in results:
        assert result.outcomes is not None, result.name
        reproduced(result)
    # mCE's parts are the 75 common cells, named, each on the one set of images.
    parts = [part["name"] for part in results[0].outcomes["parts"]]
    assert len(parts) == 75 and parts[0] == "gaussian_noise/1" and parts[-1] == "jpeg_compression/5"
    # Relative mCE resamples the clean images with the cells unless clean_error is given.
    assert "clean" in [p["name"] for p in results[2].outcomes["parts"]]
    assert "clean" not in [p["name"] for p in results[3].outcomes["parts"]]
    # Balanced accuracy: one part per class, on the class's own images.
    balanced = results[-1].outcomes
    assert sorted(balanced["sets"]) == [f"class {c}" for c in range(4)]
    assert sum(s["n"] for s in balanced["sets"].values()) == 200


def test_outcomes_round_trip_and_refuse_damage() -> None:
    values = np.linspace(0, 1, 7)
    outcomes = Outcomes(
        (
            Part("a", "x", 0.5, np.array([True, False, True])),
            Part("b", "y", -2.0, values),
        ),
        {"x": ImageSet.of(3, ["i", "j", "k"]), "y": ImageSet.of(7, None, "d")},
        offset=1.5,
    )
    again = Outcomes.from_dict(json.loads(json.dumps(outcomes.to_dict())))
    assert again == outcomes and again.value() == pytest.approx(1.5 + 0.5 * 2 / 3 - 2 * 0.5)
    damaged = outcomes.to_dict()
    damaged["sets"]["x"]["digest"] = "other"
    with pytest.raises(ValueError, match="ids do not match its digest"):
        Outcomes.from_dict(damaged)
    with pytest.raises(ValueError, match="to have 4 values"):
        Outcomes((Part("a", "x", 1.0, np.zeros(3)),), {"x": ImageSet.of(4)})
    with pytest.raises(ValueError, match="finite"):
        Part("a", "x", 1.0, np.array([np.nan]))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 200), st.sampled_from(["lower", "higher"]))
def test_paired_difference_matches_an_independent_bootstrap(seed: int, n: int, better: str) -> None:
    rng = np.random.default_rng(seed)
    before = [rng.random(n) < 0.6, rng.random(n)]
    after = [
        np.where(rng.random(n) < 0.9, before[0], ~before[0]),
        before[1] + rng.normal(0, 0.1, n),
    ]
    sets = {"s": ImageSet.of(n, [str(i) for i in range(n)])}
    weights = (0.7, -1.3)

    def outcomes(values: list[np.ndarray]) -> Outcomes:
        parts = tuple(
            Part(f"p{i}", "s", w, v) for i, (w, v) in enumerate(zip(weights, values, strict=True))
        )
        return Outcomes(parts, sets, offset=0.25)

    old, new = outcomes(before), outcomes(after)
    assert unpaired_reason(old, new) is None
    paired = paired_difference(old, new, better=better, allowed=0.01, seed=seed)
    # Independent: the same statistic recomputed on the same resampled images, by index.
    per_image = sum(
        w * (a.astype(float) - b.astype(float))
        for w, a, b in zip(weights, after, before, strict=True)
    )
    assert paired.delta == pytest.approx(per_image.mean(), abs=1e-9)
    draws = np.random.default_rng(seed + 1).integers(0, n, size=(4000, n))
    means = per_image[draws].mean(axis=1)
    sign = 1.0 if better == "lower" else -1.0
    p_independent = (1 + np.count_nonzero(sign * means <= 0.01)) / 4001
    assert paired.p == pytest.approx(p_independent, abs=0.035)
    low, high = np.quantile(means, [0.025, 0.975])
    spread = high - low
    assert abs(paired.low - low) <= 0.15 * spread + 1e-9
    assert abs(paired.high - high) <= 0.15 * spread + 1e-9


def test_unpaired_reasons_name_what_differs() -> None:
    one = Outcomes.single(np.array([True, False]), ids=["a", "b"])
    assert "other images" in unpaired_reason(
        one, Outcomes.single(np.array([True, False]), ids=["a", "c"])
    )
    assert "no item ids" in unpaired_reason(one, Outcomes.single(np.array([True, False])))
    other = Outcomes((Part("x", "images", 1.0, np.array([True, False])),), one.sets)
    assert "different parts" in unpaired_reason(one, other)
    heavier = Outcomes((Part("images", "images", 2.0, np.array([True, False])),), one.sets)
    assert "weighted differently" in unpaired_reason(one, heavier)


def baseline_of(*results: Any) -> Baseline:
    return Baseline(
        path=__import__("pathlib").Path("b.json"),
        schema_version=SCHEMA_VERSION,
        environment={},
        results={r.key: r for r in results},
    )


def test_an_mce_regression_is_paired_and_names_its_cells_and_images() -> None:
    base = assert_mce_below(sweep(0), 1e6)
    noisy_cells = {"fog/5": 40, "fog/4": 25, "contrast/3": 12}
    worse = assert_mce_below(sweep(0, flip=noisy_cells), 1e6)
    row = compare([worse], baseline_of(base), parse_tolerances("mce:+0.0")).rows[0]
    assert row.paired and row.status == "regression", row
    assert row.worst_parts == ("fog/5", "fog/4", "contrast/3")
    assert row.interval is not None and row.interval[0] > 0 and row.p_value < 0.001
    assert len(row.flipped) == 5 and set(row.flipped) <= set(IDS)
    assert "fog/5 (40 became wrong, 0 right)" in row.note
    # The same sweep again is unchanged; a tolerance wider than the change only worse.
    same = compare([base], baseline_of(base), parse_tolerances("mce:+0.0")).rows[0]
    assert (same.status, same.paired, same.delta) == ("unchanged", True, 0.0)
    wide = compare([worse], baseline_of(base), parse_tolerances("mce:+50")).rows[0]
    assert wide.status == "worse" and wide.p_value > 0.5


def test_a_small_mce_change_within_noise_is_not_a_regression() -> None:
    base = assert_mce_below(sweep(0), 1e6)
    worse = assert_mce_below(sweep(0, flip={"fog/5": 1}), 1e6)
    row = compare([worse], baseline_of(base), parse_tolerances("mce:+0.0")).rows[0]
    assert row.paired and row.delta > 0 and row.status == "worse", row
    assert "not significant" in row.note


def test_a_different_reference_or_other_images_is_compared_unpaired_and_says_so() -> None:
    base = assert_mce_below(sweep(0), 1e6)
    measured = assert_mce_below(sweep(0), 1e6, reference=sweep(1, accuracy=0.5))
    moved = dataclasses.replace(measured, value=base.value + 5.0)  # pretend a worse run
    row = compare([moved], baseline_of(base), parse_tolerances("mce:+0.0")).rows[0]
    assert not row.paired and "unpaired:" in row.note, row
    # A value the outcomes do not reproduce is never paired on them.
    assert "not its value" in row.unpaired


def test_version_2_accuracy_outcomes_still_pair() -> None:
    from pytest_sslrobust.paired import pack_outcomes

    truth = np.zeros(100, dtype=int)
    before = np.arange(100) < 90
    after = np.arange(100) < 60
    current = assert_accuracy_above(np.where(after, 0, 1), truth, 0.0)
    current = dataclasses.replace(current, protocol={"ids_digest": "d"})
    current = dataclasses.replace(
        current, outcomes=Outcomes.single(after, digest="d", name="accuracy").to_dict()
    )
    old = dataclasses.replace(
        current, value=0.9, outcomes={"correct": pack_outcomes(before), "n": 100}
    )
    row = compare([current], baseline_of(old), parse_tolerances("accuracy:-0.0")).rows[0]
    assert row.paired and (row.lost, row.gained) == (30, 0) and row.status == "regression"


def test_a_full_sweep_of_outcomes_stays_small() -> None:
    # 50,000 images x 75 cells, independent bits (compresses worst), ids included.
    rng = np.random.default_rng(0)
    n = 50_000
    ids = [
        f"n{c:08d}/ILSVRC2012_val_{i:08d}.JPEG"
        for c, i in zip(rng.integers(0, 10**8, n), range(n), strict=True)
    ]
    parts = tuple(
        Part(f"{name}/{s}", "images", -0.01, rng.random(n) < 0.6)
        for name in COMMON
        for s in range(1, 6)
    )
    stored = json.dumps(Outcomes(parts, {"images": ImageSet.of(n, ids)}).to_dict())
    assert len(stored) <= 2_000_000, len(stored)
