"""Paired baseline decisions for the studies beyond accuracy and mCE: BG-Gap, neighbour
consistency, robust accuracy (per-image outcomes) and CKA/CCA (recomputed on both runs'
cached features)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_sslrobust import (
    assert_bg_gap_below,
    assert_cca_between,
    assert_cka_between,
    assert_neighbour_consistency_above,
    assert_robust_accuracy_above,
)
from pytest_sslrobust.baselines import Baseline, compare, parse_tolerances
from pytest_sslrobust.features.store import FeatureSet
from pytest_sslrobust.metrics.attacks import AttackResult
from pytest_sslrobust.metrics.similarity import linear_cka
from pytest_sslrobust.outcomes import Outcomes, ids_digest
from pytest_sslrobust.results import SCHEMA_VERSION

IDS = tuple(f"n0/{i:04d}.JPEG" for i in range(240))


def baseline_of(*results: Any) -> Baseline:
    return Baseline(
        path=Path("b.json"),
        schema_version=SCHEMA_VERSION,
        environment={},
        results={r.key: r for r in results},
    )


def reproduced(result: Any) -> Outcomes:
    outcomes = Outcomes.from_dict(result.outcomes, digest=result.protocol.get("ids_digest"))
    assert outcomes.reproduces(result.value), (outcomes.value(), result.value)
    return outcomes


def feature_set(values: Any, variant: str, *, key: str, ids: tuple[str, ...] = IDS) -> FeatureSet:
    tensor = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    return FeatureSet(
        features=tensor,
        logits=None,
        labels=torch.zeros(len(ids), dtype=torch.int64),
        ids=ids,
        split="test",
        variant=variant,
        key=key,
        protocol={"data": "d", "split": "test", "variant": variant, "ids_digest": ids_digest(ids)},
    )


# ----------------------------------------------------------------------------- BG-Gap


def swaps(seed: int, *, rand_accuracy: float = 0.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 9, size=len(IDS))
    same = np.where(rng.random(len(IDS)) < 0.8, truth, (truth + 1) % 9)
    rand = np.where(rng.random(len(IDS)) < rand_accuracy, truth, (truth + 2) % 9)
    return truth, same, rand


def labels_of(truth: np.ndarray) -> FeatureSet:
    made = feature_set(np.random.default_rng(0).normal(size=(len(IDS), 4)), "original", key="k")
    return dataclasses.replace(made, labels=torch.as_tensor(truth))


def test_bg_gap_from_predictions_records_both_swaps_per_image() -> None:
    truth, same, rand = swaps(0)
    result = assert_bg_gap_below(same, rand, 1.0, labels=labels_of(truth), confidence=0.95)
    expected = float((same == truth).mean() - (rand == truth).mean())
    assert result.value == pytest.approx(expected)
    outcomes = reproduced(result)
    assert [part.name for part in outcomes.parts] == ["mixed_same", "mixed_rand"]
    assert outcomes.sets["images"].ids == IDS
    # the interval is paired (one resample of images for both swaps) and holds the value
    assert result.interval["low"] < expected < result.interval["high"]
    # summary numbers keep their old contract; arrays without labels are refused, clearly
    with pytest.raises(ValueError, match="give labels= too"):
        assert_bg_gap_below(same, rand, 0.1)
    with pytest.raises(ValueError, match="no images to resample"):
        assert_bg_gap_below(0.8, 0.6, 0.3, confidence=0.95)
    with pytest.raises(ValueError, match="use 0.05"):
        assert_bg_gap_below(same, rand, 5.0, labels=truth)


def test_a_bg_gap_that_grows_on_the_same_images_is_a_paired_regression() -> None:
    truth, same, rand = swaps(0)
    base = assert_bg_gap_below(same, rand, 1.0, labels=labels_of(truth))
    worse_rand = rand.copy()
    right = np.flatnonzero(rand == truth)[:30]
    worse_rand[right] = (truth[right] + 4) % 9  # 30 images now fail on a random background
    worse = assert_bg_gap_below(same, worse_rand, 1.0, labels=labels_of(truth))
    row = compare([worse], baseline_of(base), parse_tolerances("bg_gap:+0.0")).rows[0]
    assert row.paired and row.status == "regression", row
    assert row.delta == pytest.approx(30 / len(IDS))
    assert row.worst_parts == ("mixed_rand",) and set(row.flipped) <= set(right_ids(right))
    # two summary numbers carry no images: compared by value, and the row says why
    before, after = assert_bg_gap_below(0.7, 0.6, 1.0), assert_bg_gap_below(0.8, 0.6, 1.0)
    row = compare([after], baseline_of(before), parse_tolerances("bg_gap:+0.0")).rows[0]
    assert not row.paired and row.status == "regression"
    assert "unpaired: bg_gap results carry no per-image outcomes" in row.note


def right_ids(rows: np.ndarray) -> list[str]:
    return [IDS[i] for i in rows]


# ------------------------------------------------------------------ neighbour consistency


def brute_force_counts(pool: np.ndarray, owner: np.ndarray, k: int) -> np.ndarray:
    """Same-variant neighbours per sample by sorting every cosine row (independent of topk)."""
    unit = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    score = unit @ unit.T
    np.fill_diagonal(score, -np.inf)
    nearest = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return (owner[nearest] == owner[:, None]).sum(axis=1)


def test_neighbour_consistency_records_the_worst_variants_per_image_fractions() -> None:
    rng = np.random.default_rng(3)
    n = 60
    ids = IDS[:n]
    original = rng.normal(size=(n, 8))
    masked = original + rng.normal(scale=1.5, size=(n, 8))
    sets = {
        "original": feature_set(original, "original", key="a", ids=ids),
        "masked": feature_set(masked, "masked", key="b", ids=ids),
    }
    result = assert_neighbour_consistency_above(sets, 0.0, k=5)
    outcomes = reproduced(result)
    pool, owner = np.concatenate([original, masked]), np.repeat([0, 1], n)
    expected = brute_force_counts(pool, owner, 5) / 5
    worst = 0 if expected[:n].mean() <= expected[n:].mean() else 1
    assert outcomes.parts[0].name == f"variant {['original', 'masked'][worst]}"
    np.testing.assert_allclose(outcomes.parts[0].values, expected[worst * n : (worst + 1) * n])
    assert outcomes.sets["images"].ids == ids
    # the same run again pairs and is unchanged; given scores, nothing is recorded per image
    row = compare([result], baseline_of(result), parse_tolerances("*:0")).rows[0]
    assert row.paired and row.status == "unchanged"
    assert assert_neighbour_consistency_above({"a": 0.5}, 0.0).outcomes is None


# -------------------------------------------------------------------- robust accuracy


def attacked(correct: np.ndarray, *, ids: tuple[str, ...] | None = IDS) -> AttackResult:
    protocol = {"data": "d", "ids_digest": ids_digest(ids)} if ids is not None else {}
    return AttackResult.of_outcomes(
        correct.astype(np.float64),
        [0.0, 2 / 255],
        metric="robust_accuracy",
        attack="pgd",
        norm="linf",
        steps=10,
        clean=float(correct[0].mean()),
        ids=ids,
        protocol={**protocol, "attack": {"attack": "pgd", "eps": [0.0, 2 / 255]}},
    )


def test_robust_accuracy_is_decided_paired_on_the_attacked_images() -> None:
    rng = np.random.default_rng(5)
    correct = np.stack([rng.random(len(IDS)) < 0.9, rng.random(len(IDS)) < 0.5])
    base = assert_robust_accuracy_above(attacked(correct), 0.0, eps=2 / 255)
    outcomes = reproduced(base)
    assert outcomes.sets["images"].ids == IDS and base.protocol["attack"]["attack"] == "pgd"
    weaker = correct.copy()
    lost = np.flatnonzero(correct[1])[:20]
    weaker[1, lost] = False
    worse = assert_robust_accuracy_above(attacked(weaker), 0.0, eps=2 / 255)
    row = compare([worse], baseline_of(base), parse_tolerances("robust_accuracy:-0.0")).rows[0]
    assert row.paired and row.status == "regression" and (row.lost, row.gained) == (20, 0)
    assert row.test == "exact McNemar" and set(row.flipped) <= {IDS[i] for i in lost}
    # as_dict (the report's record) stays free of ids and protocol
    assert "ids" not in attacked(correct).as_dict()
    # a hand-made result without ids is recorded, but nothing proves the images the same
    bare = assert_robust_accuracy_above(attacked(weaker, ids=None), 0.0, eps=2 / 255)
    row = compare(
        [bare],
        baseline_of(dataclasses.replace(base, protocol=bare.protocol)),
        parse_tolerances("robust_accuracy:-0.0"),
    ).rows[0]
    assert not row.paired and "no item ids" in row.unpaired


# ------------------------------------------------------------------------- CKA and CCA


def two_runs(seed: int, *, damage: float) -> dict[str, np.ndarray]:
    """Features of 'original' and 'altered' for a baseline model and a candidate, keyed as a
    cache would be; ``damage`` mixes noise into the candidate's altered features."""
    rng = np.random.default_rng(seed)
    n = len(IDS)
    clean = rng.normal(size=(n, 16))
    altered = clean + 0.5 * rng.normal(size=(n, 16))
    candidate = altered + damage * rng.normal(size=(n, 16))
    return {"base-x": clean, "base-y": altered, "cand-x": clean.copy(), "cand-y": candidate}


def cka_results(cache: dict[str, np.ndarray], **kwargs: Any) -> tuple[Any, Any]:
    results = []
    for side in ("base", "cand"):
        x = feature_set(cache[f"{side}-x"], "original", key=f"{side}-x")
        y = feature_set(cache[f"{side}-y"], "altered", key=f"{side}-y")
        results.append(assert_cka_between(x, y, 0.0, 1.0, **kwargs))
    return results[0], results[1]


def reader(cache: dict[str, np.ndarray]) -> Any:
    return lambda key: torch.as_tensor(cache[key], dtype=torch.float32) if key in cache else None


def test_cka_is_recomputed_paired_on_both_runs_cached_features() -> None:
    cache = two_runs(0, damage=1.5)
    base, cand = cka_results(cache)
    assert base.outcomes["format"] == "features" and base.outcomes["x"] == "base-x"
    row = compare(
        [cand], baseline_of(base), parse_tolerances("cka:-0.0"), seed=7, features=reader(cache)
    ).rows[0]
    assert row.paired and row.status == "regression", row
    assert "recomputed on both runs' cached features of the same 240 images" in row.note
    assert row.interval is not None and row.interval[1] < 0 < row.p_value < 0.01
    # An independent paired bootstrap (other seed, own loop) agrees on the interval.
    rng = np.random.default_rng(123)
    draws = []
    for _ in range(1000):
        idx = rng.integers(0, len(IDS), len(IDS))
        after = linear_cka(cache["cand-x"][idx], cache["cand-y"][idx])
        before = linear_cka(cache["base-x"][idx], cache["base-y"][idx])
        draws.append(after - before)
    low, high = np.quantile(draws, [0.025, 0.975])
    assert row.interval[0] == pytest.approx(low, abs=0.01)
    assert row.interval[1] == pytest.approx(high, abs=0.01)
    assert row.delta == pytest.approx(cand.value - base.value)


def test_cka_without_both_runs_features_is_compared_by_value_and_says_why() -> None:
    cache = two_runs(0, damage=1.5)
    base, cand = cka_results(cache)
    tolerance = parse_tolerances("cka:-0.0")
    missing = {k: v for k, v in cache.items() if not k.startswith("base")}
    for features, reason in (
        (None, "no feature cache"),
        (reader(missing), "the baseline's features (x) are not in the cache"),
    ):
        row = compare([cand], baseline_of(base), tolerance, features=features).rows[0]
        assert not row.paired and row.status == "regression", row
        assert reason in row.unpaired and f"unpaired: {reason}" in row.note
    # features that do not give the recorded value are never used
    other = dict(cache, **{"base-y": cache["base-y"][::-1].copy()})
    row = compare([cand], baseline_of(base), tolerance, features=reader(other)).rows[0]
    assert not row.paired and "not its value" in row.unpaired
    # another kernel is another measure
    rbf = assert_cka_between(
        feature_set(cache["cand-x"], "original", key="cand-x"),
        feature_set(cache["cand-y"], "altered", key="cand-y"),
        0.0,
        1.0,
        kernel="rbf",
    )
    row = compare([rbf], baseline_of(base), tolerance, features=reader(cache)).rows[0]
    assert "another measure (linear_cka vs rbf_cka)" in row.unpaired
    # bare arrays record no features to recompute
    assert assert_cka_between(cache["cand-x"], cache["cand-y"], 0.0, 1.0).outcomes is None


def test_cca_pairs_with_its_reduction_and_an_unchanged_run_is_unchanged() -> None:
    cache = two_runs(1, damage=0.0)
    results = []
    for side in ("base", "cand"):
        x = feature_set(cache[f"{side}-x"], "original", key=f"{side}-x")
        y = feature_set(cache[f"{side}-y"], "altered", key=f"{side}-y")
        results.append(assert_cca_between(x, y, 0.0, 1.0))
    base, cand = results
    assert base.outcomes["measure"] == "cca_r2" and base.outcomes["reduce"] == "auto"
    row = compare(
        [cand], baseline_of(base), parse_tolerances("cca:-0.0"), features=reader(cache)
    ).rows[0]
    assert row.paired and row.status == "unchanged" and row.interval == (0.0, 0.0)
    # stored and read back as JSON, the reference still pairs
    stored = json.loads(json.dumps(base.to_dict()))
    assert stored["outcomes"]["x"] == "base-x"


def test_resampled_linear_cka_in_gram_form_equals_the_direct_computation() -> None:
    """Wide features on few images take the Gram-matrix form of the resampled linear CKA
    (what makes a paired CKA row on 2,000 x 512 features take seconds, not minutes); each
    resample must give the value linear_cka gives on that resample's rows."""
    from pytest_sslrobust.metrics.statistics import _gram_linear_cka, cka_difference_resamples

    rng = np.random.default_rng(5)
    x = rng.normal(size=(90, 40))
    y = x @ rng.normal(size=(40, 40)) + rng.normal(size=(90, 40))
    y2 = y + rng.normal(size=(90, 40))
    fast = cka_difference_resamples(x, y, x, y2, resamples=30, seed=2)
    # A wrapper is not linear_cka itself, so it takes the direct path.
    slow = cka_difference_resamples(
        x, y, x, y2, lambda a, b: linear_cka(a, b), resamples=30, seed=2
    )
    assert fast[0] == pytest.approx(slow[0], abs=1e-12)
    np.testing.assert_allclose(fast[1], slow[1], atol=1e-12)
    assert np.std(fast[1]) > 0.001  # the resamples differ, so agreement means something

    indices = rng.integers(0, 90, size=(4, 90))
    direct = [linear_cka(x[row], y[row]) for row in indices]
    np.testing.assert_allclose(_gram_linear_cka(x, y)(indices), direct, atol=1e-12)
    # A resample repeating one image makes the measure undefined; it is refused, not averaged.
    one_image = np.zeros((2, 90), dtype=np.int64)
    assert not np.isfinite(_gram_linear_cka(x, y)(one_image)).any()
    with pytest.raises(ValueError, match="finite on every resample"):
        cka_difference_resamples(x[:3], y[:3], x[:3], y2[:3], resamples=2000, seed=0)


CKA_SUITE = """
from pytest_sslrobust import assert_cka_between


def test_noise_keeps_the_representation(sslrobust):
    clean = sslrobust.features("original", split="test")
    noisy = sslrobust.features("gaussian_noise-s1", split="test")
    assert_cka_between(clean, noisy, 0.0, 1.0)
"""


def _weights(path: Path, noise: float) -> None:
    """The bundled supervised ResNet's weights, each tensor plus seeded noise of ``noise``
    times its spread (0: the weights as shipped)."""
    from safetensors.torch import load_file, save_file

    import pytest_sslrobust.backbones

    source = Path(pytest_sslrobust.backbones.__file__).parent / "weights"
    weights = load_file(str(source / "bundled-supervised.safetensors"))
    generator = torch.Generator().manual_seed(1)
    for tensor in weights.values():
        if noise and tensor.is_floating_point() and tensor.numel() > 1:
            tensor.add_(noise * tensor.std() * torch.randn(tensor.shape, generator=generator))
    save_file(weights, str(path))


def test_a_cka_row_pairs_through_the_plugin_when_both_runs_share_the_cache(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path as a user runs it (two weight files, docs/gating-in-ci.md's commands):
    save a baseline, compare a candidate. With the default cache both runs' features are on
    disk and the CKA row is decided paired; a candidate run on another cache directory
    cannot read the baseline's features, and its row is compared by value, saying why."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makepyfile(test_cka=CKA_SUITE)
    _weights(pytester.path / "release.safetensors", 0.0)
    _weights(pytester.path / "candidate.safetensors", 0.05)
    small = ["-p", "no:randomly", "--sslrobust-arch=test_resnet"]
    small += ["--sslrobust-max-images=60", "--sslrobust-severities=1"]
    saved = pytester.runpytest_subprocess(
        *small, "--sslrobust-model=file:release.safetensors", "--sslrobust-save=base.json"
    )
    saved.assert_outcomes(passed=1)

    def compared(*extra: str) -> dict[str, Any]:
        run = pytester.runpytest_subprocess(
            *small,
            "--sslrobust-model=file:candidate.safetensors",
            "--sslrobust-compare=base.json",
            "--sslrobust-json=out.json",
            *extra,
        )
        assert run.ret == pytest.ExitCode.OK, run.stdout.str()
        rows = json.loads((pytester.path / "out.json").read_text())["comparison"]["rows"]
        (row,) = [r for r in rows if r["metric"].endswith("cka")]
        return row

    paired = compared()
    assert "recomputed on both runs' cached features of the same 60 images" in str(paired)
    assert paired["delta"] != 0.0 and paired["interval"][0] < paired["interval"][1], paired

    unpaired = compared(f"--sslrobust-cache-dir={pytester.path / 'elsewhere'}")
    assert "not in the cache" in unpaired["unpaired"], unpaired
    assert "recomputed" not in str(unpaired)
