"""assert_focus_shift_below and assert_foreground_focus_above on hand-built attribution sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _contract_helpers import recording

from pytest_sslrobust.assertions import assert_focus_shift_below, assert_foreground_focus_above
from pytest_sslrobust.attribution.sets import AttributionSet

SIDE = 8
PROTOCOL = {"data": "toy-data", "backbone": "toy-net"}


def ramps(n: int, seed: int = 0) -> torch.Tensor:
    """n maps with distinct pixel values (a random ranking each), each summing to 1."""
    rng = np.random.default_rng(seed)
    maps = np.stack([rng.permutation(SIDE * SIDE) + 1.0 for _ in range(n)])
    maps = maps.reshape(n, SIDE, SIDE)
    return torch.from_numpy(maps / maps.sum(axis=(1, 2), keepdims=True)).float()


def reversed_ranking(maps: torch.Tensor) -> torch.Tensor:
    """The same pixel values in the opposite order: rank shift 2, no top-k pixel shared."""
    flat = maps.flatten(1)
    order = flat.argsort(dim=1)
    out = torch.empty_like(flat)
    out.scatter_(1, order, flat.gather(1, order.flip(1)))
    return out.reshape(maps.shape)


def corner_masks(n: int, side: int = 4) -> torch.Tensor:
    masks = torch.zeros(n, SIDE, SIDE, dtype=torch.bool)
    masks[:, :side, :side] = True
    return masks


def make_set(
    maps: torch.Tensor,
    variant: str = "original",
    *,
    masks: torch.Tensor | None = None,
    ids: tuple[str, ...] | None = None,
    degenerate: int = 0,
) -> AttributionSet:
    n = int(maps.shape[0])
    return AttributionSet(
        maps=maps,
        masks=masks,
        ids=ids if ids is not None else tuple(f"item-{i}" for i in range(n)),
        labels=torch.zeros(n, dtype=torch.int64),
        variant=variant,
        split="test",
        method="gradcam",
        target="similarity",
        degenerate=degenerate,
        key=f"key-{variant}",
        protocol={**PROTOCOL, "attribution": {"method": "gradcam"}},
    )


# ----------------------------------------------------------------------------- focus shift


def test_identical_maps_do_not_shift():
    clean = make_set(ramps(6))
    same = make_set(clean.maps.clone(), "fog-s1")
    with recording() as results:
        result = assert_focus_shift_below(clean, same, 0.1)
    assert result.passed and result.value == pytest.approx(0.0, abs=1e-12)
    assert results == [result]
    recorded = results[0]
    assert recorded.name == "focus_shift_below" and recorded.metric == "focus_shift"
    assert recorded.label == "focus_shift" and recorded.better == "lower"
    assert recorded.high == 0.1 and recorded.low is None
    assert recorded.decided_on == "value" and recorded.interval is None
    assert recorded.model == "toy-net"
    assert recorded.test == "tests/fake.py::test_contract"
    assert recorded.details[0]["item"] == "fog-s1" and recorded.details[0]["images"] == 6


def test_reversed_maps_fail_naming_the_variant_and_the_limit():
    clean = make_set(ramps(6))
    flipped = make_set(reversed_ranking(clean.maps), "blurred")
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_focus_shift_below(clean, flipped, 0.5, label="shift-check")
    message = str(info.value)
    head = message.splitlines()[0]
    assert "blurred" in head and "0.5" in head
    assert head.startswith("[shift-check] rank shift of blurred 2.0000 is above the limit 0.5000")
    assert "measure rank_shift" in head and "6 images" in head
    assert "obtained" in message and "<= 0.5000" in message
    (recorded,) = results
    assert not recorded.passed and recorded.value == pytest.approx(2.0)
    assert recorded.label == "shift-check"


def test_several_variants_each_get_a_row():
    clean = make_set(ramps(5))
    quiet = make_set(clean.maps.clone(), "quiet")
    loud = make_set(reversed_ranking(clean.maps), "loud", degenerate=2)
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_focus_shift_below(clean, [quiet, loud], 0.5)
    message = str(info.value)
    head, *table = message.splitlines()
    assert "loud" in head  # the worst variant decides
    quiet_row = next(line for line in table if "variant quiet" in line)
    loud_row = next(line for line in table if "variant loud" in line)
    assert "<- fails" in loud_row and "<- fails" not in quiet_row
    assert "2 empty maps" in loud_row
    (recorded,) = results
    assert recorded.value == pytest.approx(2.0)
    assert [d["item"] for d in recorded.details] == ["quiet", "loud"]
    assert recorded.details[0]["value"] == pytest.approx(0.0, abs=1e-12)


def test_several_passing_variants_record_the_worst():
    clean = make_set(ramps(5))
    half = clean.maps.clone()
    half[:2] = reversed_ranking(clean.maps[:2])
    with recording() as results:
        result = assert_focus_shift_below(
            clean, (make_set(clean.maps.clone(), "a"), make_set(half, "b")), 1.0
        )
    assert result.passed and result.value == pytest.approx(0.8)
    assert results[0].details[1]["value"] == pytest.approx(0.8)
    # The worst variant's per-image shifts are recorded for a paired baseline comparison.
    from pytest_sslrobust.outcomes import Outcomes

    outcomes = Outcomes.from_dict(result.outcomes)
    assert [part.name for part in outcomes.parts] == ["variant b"]
    assert outcomes.reproduces(result.value) and outcomes.parts[0].values[:2].min() > 0


def test_topk_shift_measure():
    clean = make_set(ramps(4))
    with recording():
        same = assert_focus_shift_below(
            clean, make_set(clean.maps.clone(), "a"), 0.0, measure="topk_shift"
        )
    assert same.passed and same.value == 0.0
    flipped = make_set(reversed_ranking(clean.maps), "flipped")
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_focus_shift_below(clean, flipped, 0.5, measure="topk_shift", top_k=0.25)
    assert "top-0.25 shift of flipped" in str(info.value).splitlines()[0]
    assert results[0].value == pytest.approx(1.0)
    # Swapping two low-ranked pixels changes the ranks a little but not the top pixels.
    nudged = clean.maps.clone().flatten(1)
    order = nudged.argsort(dim=1)
    rows = torch.arange(4)
    low, next_low = order[:, 0], order[:, 1]
    nudged[rows, low], nudged[rows, next_low] = nudged[rows, next_low], nudged[rows, low]
    nudged_set = make_set(nudged.reshape(4, SIDE, SIDE), "nudged")
    with recording():
        topk = assert_focus_shift_below(clean, nudged_set, 0.0, measure="topk_shift")
        rank = assert_focus_shift_below(clean, nudged_set, 0.1)
    assert topk.value == 0.0 and 0.0 < rank.value < 0.1
    with pytest.raises(ValueError, match="measure"):
        assert_focus_shift_below(clean, nudged_set, 0.1, measure="spearman")


def test_confidence_decides_on_the_upper_end_of_the_interval():
    clean = make_set(ramps(10))
    altered = clean.maps.clone()
    altered[0] = reversed_ranking(clean.maps[:1])[0]  # one image of ten moves: mean 0.2
    shifted = make_set(altered, "one-off")
    with recording() as results:
        by_value = assert_focus_shift_below(clean, shifted, 0.3)
    assert by_value.passed and by_value.value == pytest.approx(0.2)
    assert results[0].decided_on == "value"
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_focus_shift_below(clean, shifted, 0.3, confidence=0.95, resamples=500, seed=3)
    (recorded,) = results
    assert not recorded.passed
    assert recorded.decided_on == "interval"
    interval = recorded.interval
    assert interval is not None
    assert interval["confidence"] == 0.95 and interval["resamples"] == 500
    assert interval["seed"] == 3
    assert interval["low"] <= 0.2 <= interval["high"] and interval["high"] > 0.3
    message = str(info.value)
    assert "is not reliably below the limit 0.3" in message.splitlines()[0]
    assert "<- decides" in message
    # A limit above the interval passes on it.
    with recording() as results:
        loose = assert_focus_shift_below(
            clean, shifted, interval["high"] + 0.01, confidence=0.95, resamples=500, seed=3
        )
    assert loose.passed and results[0].decided_on == "interval"


def test_focus_shift_argument_checks():
    clean = make_set(ramps(3))
    with pytest.raises(TypeError, match="AttributionSet"):
        assert_focus_shift_below(clean.maps, clean, 0.5)
    with pytest.raises(TypeError, match="AttributionSet"):
        assert_focus_shift_below(clean, [clean, clean.maps], 0.5)
    with pytest.raises(TypeError, match="non-empty"):
        assert_focus_shift_below(clean, [], 0.5)
    with pytest.raises(ValueError, match="confidence"):
        assert_focus_shift_below(clean, clean, 0.5, confidence=95)
    with pytest.raises(ValueError, match="limit"):
        assert_focus_shift_below(clean, clean, float("nan"))
    other = make_set(clean.maps.clone(), "other", ids=("x", "y", "z"))
    with pytest.raises(ValueError, match="same images"):
        assert_focus_shift_below(clean, other, 0.5)


# ------------------------------------------------------------------------ foreground focus


def test_map_on_the_object_has_full_focus():
    masks = corner_masks(5)
    maps = ramps(5) * masks  # all mass inside the mask
    maps = maps / maps.sum(dim=(1, 2), keepdim=True)
    with recording() as results:
        result = assert_foreground_focus_above(make_set(maps, masks=masks), 0.9)
    assert result.passed and result.value == pytest.approx(1.0)
    (recorded,) = results
    assert recorded.name == "foreground_focus_above" and recorded.metric == "foreground_focus"
    assert recorded.low == 0.9 and recorded.high is None and recorded.better == "higher"
    assert recorded.details[0]["chance"] == pytest.approx(0.25)


def test_uniform_map_scores_chance_and_fails():
    masks = corner_masks(4)
    uniform = torch.full((4, SIDE, SIDE), 1.0 / (SIDE * SIDE))
    attributed = make_set(uniform, "fog-s3", masks=masks)
    np.testing.assert_allclose(attributed.chance_focus(), np.full(4, 0.25))
    np.testing.assert_allclose(attributed.foreground_focus(), attributed.chance_focus())
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_foreground_focus_above(attributed, 0.9)
    message = str(info.value)
    head = message.splitlines()[0]
    assert "chance" in head and "0.2500" in head
    assert "foreground focus of fog-s3 0.2500 is below the limit 0.9000" in head
    (recorded,) = results
    assert not recorded.passed and recorded.value == pytest.approx(0.25)


def test_foreground_focus_table_and_interval():
    masks = corner_masks(10)
    inside = ramps(10) * masks
    inside = inside / inside.sum(dim=(1, 2), keepdim=True)
    uniform = torch.full((10, SIDE, SIDE), 1.0 / (SIDE * SIDE))
    mixed = inside.clone()
    mixed[0] = uniform[0]  # one image of ten at chance: mean 0.925
    focused = make_set(inside, "focused", masks=masks)
    slipping = make_set(mixed, "slipping", masks=masks)
    with recording():
        result = assert_foreground_focus_above([focused, slipping], 0.9)
    assert result.value == pytest.approx(0.925)
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_foreground_focus_above([focused, slipping], 0.9, confidence=0.95, seed=1)
    message = str(info.value)
    assert "slipping" in message.splitlines()[0]
    assert any("variant focused" in line for line in message.splitlines())
    assert "is not reliably above the limit 0.9" in message.splitlines()[0]
    assert results[0].decided_on == "interval" and results[0].interval["low"] < 0.9


def test_foreground_focus_argument_checks():
    masks = corner_masks(2)
    attributed = make_set(ramps(2), masks=masks)
    for limit in (1.5, -0.1, 90):
        with pytest.raises(ValueError, match=r"fraction in \[0, 1\]"):
            assert_foreground_focus_above(attributed, limit)
    with pytest.raises(TypeError, match="AttributionSet"):
        assert_foreground_focus_above(attributed.maps, 0.5)
    with pytest.raises(ValueError, match="foreground masks"):
        assert_foreground_focus_above(make_set(ramps(2)), 0.5)
