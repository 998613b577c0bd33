"""Assertion helpers: decisions, recorded results, failure messages, intervals, hidden frames."""

from __future__ import annotations

import contextlib
import math
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
import torch
from _contract_helpers import recording

from pytest_sslrobust.assertions import (
    assert_accuracy_above,
    assert_accuracy_drop_below,
    assert_balanced_accuracy_above,
    assert_bg_gap_below,
    assert_cca_between,
    assert_cka_between,
    assert_mce_below,
    assert_neighbour_consistency_above,
    assert_no_regression,
    assert_relative_mce_below,
    assert_robust_accuracy_above,
)
from pytest_sslrobust.features.store import FeatureSet
from pytest_sslrobust.metrics import (
    ALEXNET_ERRORS,
    AttackResult,
    CorruptionErrors,
    ProbeResult,
    ProtocolMismatch,
    accuracy_interval,
    balanced_accuracy,
    errors_from_predictions,
    linear_cka,
    mce,
    mce_interval,
    relative_mce,
)
from pytest_sslrobust.results import ContractResult, results_from_properties
from pytest_sslrobust.variants.corruptions import COMMON

RELEASED = {"source": "released-imagenet-c", "backbone": "toy-net"}


def scaled(factor: float, **per_corruption: float) -> CorruptionErrors:
    """AlexNet's table times ``factor`` (or a corruption's own factor): mCE is 100 x factor."""
    errors = {
        name: tuple(per_corruption.get(name, factor) * e for e in rates)
        for name, rates in ALEXNET_ERRORS.items()
    }
    return CorruptionErrors(errors, 0.2, 1000, "head", RELEASED)


def with_correct(factor: float, n: int = 200, seed: int = 0) -> CorruptionErrors:
    """About AlexNet x factor, with per-image correctness (for intervals)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    predictions = {}
    for name in COMMON:
        cells = []
        for rate in ALEXNET_ERRORS[name]:
            wrong = rng.random(n) < factor * rate
            cells.append(np.where(wrong, (labels + 1) % 10, labels))
        predictions[name] = cells
    clean = np.where(rng.random(n) < 0.2, (labels + 1) % 10, labels)
    return errors_from_predictions(predictions, labels, clean, protocol=RELEASED)


def feature_set(features: Any, variant: str = "original", labels: Any = None) -> FeatureSet:
    features = torch.as_tensor(features, dtype=torch.float32)
    n = features.shape[0]
    return FeatureSet(
        features=features,
        logits=None,
        labels=torch.as_tensor(labels if labels is not None else np.zeros(n), dtype=torch.int64),
        ids=tuple(str(i) for i in range(n)),
        split="test",
        variant=variant,
        key="k",
        protocol={"backbone": "toy-net", "variant": variant},
    )


def lines_of(info: pytest.ExceptionInfo[AssertionError]) -> list[str]:
    return str(info.value).splitlines()


def noisy_predictions(n: int = 400, error: float = 0.25, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, n)
    return np.where(rng.random(n) < error, (labels + 1) % 5, labels), labels


# --- mCE ------------------------------------------------------------------------------------


def test_mce_passes_and_records_the_contract() -> None:
    with recording() as results:
        returned = assert_mce_below(scaled(0.7), 75)
    (result,) = results
    assert result == returned
    assert result.passed and result.metric == "mce" and result.label == "mce"
    assert math.isclose(result.value, 70.0)
    assert (result.low, result.high, result.better, result.unit) == (None, 75.0, "lower", "")
    assert result.name == "mce_below"
    assert result.test == "tests/fake.py::test_contract"
    assert result.model == "toy-net"
    assert result.protocol["source"] == "released-imagenet-c"
    assert result.decided_on == "value" and result.interval is None
    assert [row["item"] for row in result.details] == sorted(COMMON)  # all equal: by name


def test_mce_failure_lists_every_common_corruption_worst_first() -> None:
    errors = scaled(0.8, fog=0.95, snow=0.9, contrast=0.85)
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_mce_below(errors, 75)
    lines = lines_of(info)
    assert lines[0] == "mCE 82.0 is above the limit 75.0 (reference: alexnet)"
    assert lines[1].split() == ["item", "obtained", "required", "gap"]
    assert lines[2].split() == ["mCE", "82.0", "<=", "75.0", "+7.0"]
    rows = [line.split() for line in lines[3:]]
    assert len(rows) == len(COMMON)
    assert [row[1] for row in rows[:4]] == ["fog", "snow", "contrast", "brightness"]
    assert [row[-1] for row in rows[:3]] == ["worst"] * 3
    assert sum("<- worst" in line for line in lines) == 3
    assert "speckle_noise" not in str(info.value)  # validation corruptions are not in mCE
    # columns line up
    assert len({line.index("<- worst") for line in lines if "<- worst" in line}) == 1
    (result,) = results
    assert not result.passed and result.value == pytest.approx(82.0)
    assert [row["item"] for row in result.details[:3]] == ["fog", "snow", "contrast"]


def test_mce_message_shows_enough_digits_to_tell_value_and_limit_apart() -> None:
    with recording(), pytest.raises(AssertionError, match=r"^mCE 75.04 is above the limit 75.00"):
        assert_mce_below(scaled_map(0.7504), 75)


def scaled_map(factor: float) -> dict[str, tuple[float, ...]]:
    return {name: tuple(factor * e for e in ALEXNET_ERRORS[name]) for name in COMMON}


def test_mce_accepts_a_plain_mapping_with_an_empty_protocol() -> None:
    with recording() as results:
        assert_mce_below(scaled_map(0.5), 60, label="mapping")
    (result,) = results
    assert result.protocol == {} and result.model is None and result.label == "mapping"


def test_mce_interval_decides_on_its_upper_end() -> None:
    errors = with_correct(0.7)
    value = mce(errors)
    interval = mce_interval(errors, resamples=1000, seed=0)
    assert interval.low < value < interval.high
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_mce_below(errors, (value + interval.high) / 2, confidence=0.95)
    message = str(info.value)
    assert message.splitlines()[0].startswith(f"mCE {value:.1f} is not reliably below the limit")
    assert f"decided on the 95% bootstrap interval [{interval.low:.1f}, {interval.high:.1f}]" in (
        message
    )
    assert "<- decides" in message
    with recording() as passing:
        assert_mce_below(errors, interval.high + 0.1, confidence=0.95, label="loose")
    failed, passed = results[0], passing[0]
    assert not failed.passed and passed.passed
    assert passed.decided_on == "interval"
    assert passed.interval is not None
    assert passed.interval["high"] == pytest.approx(interval.high)
    assert passed.interval["confidence"] == 0.95 and passed.interval["resamples"] == 1000


def test_mce_interval_needs_per_image_correctness() -> None:
    with pytest.raises(ValueError, match="per-image correctness.*sslrobust.corruption_errors"):
        assert_mce_below(scaled(0.7), 75, confidence=0.95)
    with pytest.raises(ValueError, match="per-image correctness"):
        assert_mce_below(scaled_map(0.7), 75, confidence=0.95)


def test_mce_refuses_generated_corruptions_against_alexnet() -> None:
    errors = CorruptionErrors(scaled_map(0.7), None, 10, "head", {"source": "on-the-fly"})
    with pytest.raises(ProtocolMismatch):
        assert_mce_below(errors, 75)


def test_relative_mce_pass_fail_and_interval() -> None:
    errors = with_correct(0.8)
    value = relative_mce(errors)
    with recording() as results:
        assert_relative_mce_below(errors, value + 1)
        assert_relative_mce_below(errors, value + 30, confidence=0.9, resamples=200)
    assert [r.passed for r in results] == [True, True]
    assert results[0].metric == "relative_mce" and results[0].better == "lower"
    interval = results[1].interval
    assert interval is not None
    assert interval["low"] < value < interval["high"]
    assert interval["estimate"] == pytest.approx(value)
    with recording(), pytest.raises(AssertionError) as info:
        assert_relative_mce_below(errors, value - 1)
    lines = lines_of(info)
    assert lines[0].startswith(f"relative mCE {value:.1f} is above the limit {value - 1:.1f}")
    assert "reference: alexnet" in lines[0]
    assert sum(line.lstrip().startswith("relative CE ") for line in lines) == len(COMMON)
    # an explicit clean error is held fixed, so the table needs no clean_correct
    fixed = CorruptionErrors(errors.errors, None, errors.n, "head", RELEASED, errors.correct)
    with recording() as held:
        assert_relative_mce_below(fixed, 1000, clean_error=0.2, confidence=0.9, resamples=50)
    assert held[0].passed
    with pytest.raises(ValueError, match="clean_correct"):
        assert_relative_mce_below(
            CorruptionErrors(errors.errors, 0.2, errors.n, "head", RELEASED, errors.correct),
            1000,
            confidence=0.9,
        )


# --- similarity -----------------------------------------------------------------------------


def gaussian(n: int = 100, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("kernel", ["linear", "rbf", "debiased"])
def test_cka_of_a_rotation_passes(kernel: str) -> None:
    x = gaussian()
    q, _ = np.linalg.qr(gaussian(8, 8, seed=1))
    with recording() as results:
        assert_cka_between(x, x @ q, 0.99, 1.0, kernel=kernel)
    (result,) = results
    assert result.passed and result.metric == "cka" and result.better == "higher"
    assert (result.low, result.high) == (0.99, 1.0)


def test_cka_failure_message_and_feature_set_protocol() -> None:
    x = gaussian()
    y = x + gaussian(seed=2)
    expected = linear_cka(x, y)
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_cka_between(feature_set(x), feature_set(y, "gaussian_noise-s3"), 0.9, 1.0)
    lines = lines_of(info)
    assert lines[0] == f"linear CKA {expected:.4f} is outside the range [0.9000, 1.0000] (n=100)"
    assert lines[2].split()[:5] == ["linear", "CKA", f"{expected:.4f}", "in", "[0.9000,"]
    assert ["n", "100"] in [line.split() for line in lines]
    assert ["metric", "linear_cka"] in [line.split() for line in lines]
    assert any(line.split()[-3:] == ["toy-net", "/", "gaussian_noise-s3"] for line in lines)
    (result,) = results
    assert result.model == "toy-net" and result.protocol["variant"] == "original"
    assert result.value == pytest.approx(expected, rel=1e-5)


def test_cka_interval_must_lie_inside_the_range() -> None:
    x = gaussian(60)
    y = x + 0.5 * gaussian(60, seed=3)
    with recording() as results:
        assert_cka_between(x, y, 0.0, 1.0, confidence=0.9, resamples=100, label="wide")
    interval = results[0].interval
    assert interval is not None
    with recording(), pytest.raises(AssertionError) as info:
        # the value is inside, the interval's low end is not
        assert_cka_between(x, y, (interval["low"] + interval["estimate"]) / 2, 1.0,
                           confidence=0.9, resamples=100)  # fmt: skip
    message = str(info.value)
    assert "is not reliably inside the range" in message
    assert "decided on the 90% bootstrap interval [" in message


def test_cca_kinds() -> None:
    x = gaussian(200, 4)
    mixing = np.array([[2.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 3, 1], [1, 0, 0, 1]])
    with recording() as results:
        assert_cca_between(x, x @ mixing, 0.999, 1.0)
        assert_cca_between(torch.as_tensor(x), x @ mixing, 0.999, 1.0, kind="mean", label="mean")
    assert [(r.metric, r.label, r.passed) for r in results] == [
        ("cca", "cca", True),
        ("cca", "mean", True),
    ]
    with recording(), pytest.raises(AssertionError, match=r"^\[low\] CCA R\^2 0\.\d{4} is out"):
        assert_cca_between(x, gaussian(200, 4, seed=5), 0.5, 1.0, label="low")


# --- accuracy -------------------------------------------------------------------------------


def test_accuracy_passes_with_labels_logits_or_a_feature_set() -> None:
    predictions, labels = noisy_predictions()
    logits = np.eye(5)[predictions]
    expected = float((predictions == labels).mean())
    with recording() as results:
        assert_accuracy_above(predictions, labels, 0.7)
        assert_accuracy_above(torch.as_tensor(logits), torch.as_tensor(labels), 0.7, label="l")
        assert_accuracy_above(predictions, feature_set(gaussian(400), labels=labels), 0.7,
                              label="fs")  # fmt: skip
    assert [r.value for r in results] == [pytest.approx(expected)] * 3
    assert results[2].model == "toy-net"
    assert {row["class"] for row in results[0].details} == set(range(5))


def test_accuracy_failure_shows_the_worst_classes() -> None:
    predictions, labels = noisy_predictions()
    value = float((predictions == labels).mean())
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_accuracy_above(predictions, labels, 0.8)
    lines = lines_of(info)
    assert (
        lines[0]
        == f"accuracy {value:.4f} is below the limit 0.8000 (fraction of 400 images correct)"
    )
    assert lines[2].split() == ["accuracy", f"{value:.4f}", ">=", "0.8000", f"{value - 0.8:+.4f}"]
    class_lines = [line for line in lines if line.lstrip().startswith("class ")]
    assert len(class_lines) == 5
    assert class_lines[0].endswith("<- worst")
    shown = [float(line.split()[3]) for line in class_lines]
    assert shown == sorted(shown)
    assert not results[0].passed


def test_accuracy_table_is_capped_but_the_record_keeps_every_class() -> None:
    labels = np.arange(300) % 30
    predictions = np.where(np.arange(300) % 7 == 0, 0, labels)
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_accuracy_above(predictions, labels, 0.99)
    assert "... 20 more classes" in str(info.value)
    assert len(results[0].details) == 30


def test_accuracy_interval_is_in_fractions() -> None:
    predictions, labels = noisy_predictions()
    correct = predictions == labels
    percent = accuracy_interval(correct, resamples=1000, seed=0)
    with recording() as results, pytest.raises(AssertionError) as info:
        assert_accuracy_above(predictions, labels, (percent.low / 100 + correct.mean()) / 2,
                              confidence=0.95)  # fmt: skip
    interval = results[0].interval
    assert interval is not None
    assert interval["low"] == pytest.approx(percent.low / 100)
    assert interval["high"] == pytest.approx(percent.high / 100)
    assert f"[{percent.low / 100:.4f}, {percent.high / 100:.4f}]" in str(info.value)
    assert "is not reliably above the limit" in lines_of(info)[0]


def test_accuracy_limit_is_a_fraction() -> None:
    predictions, labels = noisy_predictions()
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\].*did you mean 0.8"):
        assert_accuracy_above(predictions, labels, 80)


def test_accuracy_drop_is_paired_and_in_fractions() -> None:
    _, labels = noisy_predictions()
    altered, _ = noisy_predictions(error=0.25)
    drop = 1.0 - float((altered == labels).mean())
    with recording() as results:
        assert_accuracy_drop_below(labels, altered, drop + 0.1, labels=labels, confidence=0.95)
    interval = results[0].interval
    assert results[0].value == pytest.approx(drop)
    assert interval is not None and interval["low"] <= drop <= interval["high"] < 1
    with recording(), pytest.raises(AssertionError) as info:
        assert_accuracy_drop_below(labels, altered, 0.1, labels=labels)
    lines = lines_of(info)
    assert lines[0] == (
        f"accuracy drop {drop:.4f} is above the limit 0.1000 (accuracy fractions, 400 paired "
        f"images)"
    )
    rows = {line.split("  ")[1].strip(): line for line in lines[2:]}
    assert "1.0000" in rows["clean accuracy"]
    assert rows["became wrong"].split()[2] == str(int((altered != labels).sum()))
    with pytest.raises(ValueError, match="max_drop in"):
        assert_accuracy_drop_below(labels, altered, 5, labels=labels)


def test_balanced_accuracy_from_a_probe_result() -> None:
    probe = ProbeResult(0.86, 0.02, (0.84, 0.88, 0.86), "balanced_accuracy", "linear_probe")
    with recording() as results:
        assert_balanced_accuracy_above(probe, 0.8)
    assert results[0].passed and results[0].value == 0.86
    assert [row["value"] for row in results[0].details] == [0.84, 0.88, 0.86]
    with recording(), pytest.raises(AssertionError) as info:
        assert_balanced_accuracy_above(probe, 0.9)
    lines = lines_of(info)
    assert lines[0] == (
        "balanced accuracy 0.8600 is below the limit 0.9000 (linear_probe, mean (std) "
        "0.8600 (0.0200) over 3 folds)"
    )
    assert lines[3].split() == ["fold", "1", "0.8400", "<-", "worst"]
    assert ["std", "over", "folds", "0.0200"] in [line.split() for line in lines]
    with pytest.raises(ValueError, match="per-image predictions"):
        assert_balanced_accuracy_above(probe, 0.8, confidence=0.95)
    with pytest.raises(ValueError, match="labels=None"):
        assert_balanced_accuracy_above(probe, 0.8, labels=[0, 1])


def test_balanced_accuracy_from_predictions_with_interval() -> None:
    predictions, labels = noisy_predictions()
    value = balanced_accuracy(predictions, labels)
    with recording() as results:
        assert_balanced_accuracy_above(predictions, 0.5, labels=labels, confidence=0.95)
    (result,) = results
    assert result.value == pytest.approx(value)
    assert result.interval is not None
    assert result.interval["estimate"] == pytest.approx(value)
    assert result.interval["low"] < value < result.interval["high"]
    with pytest.raises(ValueError, match="Expected labels"):
        assert_balanced_accuracy_above(predictions, 0.5)


# --- geometry, attacks, backgrounds, regressions --------------------------------------------


def test_neighbour_consistency_from_features() -> None:
    rng = np.random.default_rng(0)
    apart = {"original": rng.normal(size=(30, 4)) + 5, "masked": rng.normal(size=(30, 4)) - 5}
    with recording() as results:
        assert_neighbour_consistency_above(apart, 0.9, k=5)
    assert results[0].passed and results[0].value == 1.0
    assert results[0].details[0]["chance"] == pytest.approx(29 / 59)
    mixed = {"original": feature_set(rng.normal(size=(30, 4))), "masked": rng.normal(size=(30, 4))}
    with recording() as failed, pytest.raises(AssertionError) as info:
        assert_neighbour_consistency_above(mixed, 0.9, k=5)
    assert "chance 0.4915" in str(info.value)
    assert "<- below the limit" in str(info.value)
    assert failed[0].model == "toy-net"


def test_neighbour_consistency_from_scores_checks_the_listed_variants() -> None:
    scores = {"original": 0.95, "center-r0.50": 0.4, "foreground": 0.8}
    with recording() as results:
        assert_neighbour_consistency_above(scores, 0.7, variants=["original", "foreground"])
    assert results[0].passed and results[0].value == 0.8
    with recording(), pytest.raises(AssertionError) as info:
        assert_neighbour_consistency_above(scores, 0.7)
    lines = lines_of(info)
    assert lines[0] == (
        "neighbour consistency 0.4000 is below the limit 0.7000 (lowest: center-r0.50)"
    )
    assert any("center-r0.50" in line and line.endswith("<- below the limit") for line in lines)
    with pytest.raises(ValueError, match="Expected variants among.*but got nope"):
        assert_neighbour_consistency_above(scores, 0.7, variants=["nope"])
    with pytest.raises(ValueError, match="not a mix"):
        assert_neighbour_consistency_above({"a": 0.5, "b": np.zeros((3, 2))}, 0.7)
    with pytest.raises(ValueError, match="confidence=None"):
        assert_neighbour_consistency_above(scores, 0.7, confidence=0.95)


def attack_result() -> AttackResult:
    per_sample = np.array([[1.0] * 90 + [0.0] * 10, [1.0] * 60 + [0.0] * 40, [1.0] * 20 + [0] * 80])
    return AttackResult(
        eps=(0.0, 2 / 255, 4 / 255),
        values=(0.9, 0.6, 0.2),
        metric="robust_accuracy",
        attack="pgd",
        norm="linf",
        steps=10,
        clean=0.9,
        n=100,
        per_sample=per_sample,
    )


def test_robust_accuracy_picks_the_budget() -> None:
    result = attack_result()
    with recording() as results:
        assert_robust_accuracy_above(result, 0.5, eps=2 / 255, confidence=0.95)
    assert results[0].value == 0.6 and results[0].decided_on == "interval"
    with recording(), pytest.raises(AssertionError) as info:
        assert_robust_accuracy_above(result, 0.5, eps=4 / 255)
    lines = lines_of(info)
    assert lines[0] == (
        "robust accuracy 0.2000 is below the limit 0.5000 "
        "(eps 0.01569 = 4/255; pgd, linf, 10 steps, n=100)"
    )
    checked = [line for line in lines if line.endswith("<- checked")]
    assert len(checked) == 1 and "= 4/255" in checked[0] and "0.2000" in checked[0]
    assert ["clean", "0.9000"] in [line.split() for line in lines]
    with pytest.raises(ValueError, match=r"one of the measured budgets 0\.0, "):
        assert_robust_accuracy_above(result, 0.5, eps=8 / 255)


def test_bg_gap_keeps_the_callers_scale() -> None:
    with recording() as results:
        assert_bg_gap_below(0.862, 0.789, 0.1)
        assert_bg_gap_below(86.2, 78.9, 10.0, label="percent")
    assert [round(r.value, 6) for r in results] == [0.073, 7.3]
    with recording(), pytest.raises(AssertionError) as info:
        assert_bg_gap_below(86.2, 78.9, 5.0)
    lines = lines_of(info)
    assert lines[0] == "BG-Gap 7.30 is above the limit 5.00 (accuracy points)"
    assert ["mixed_rand", "accuracy", "78.90"] in [line.split() for line in lines]
    with pytest.raises(ValueError, match="accuracies' scale.*use 0.05"):
        assert_bg_gap_below(0.862, 0.789, 5)


@pytest.mark.parametrize(
    ("value", "better", "passed", "bounds"),
    [
        (0.745, "higher", True, (0.74, None)),
        (0.73, "higher", False, (0.74, None)),
        (0.755, "lower", True, (None, 0.76)),
        (0.77, "lower", False, (None, 0.76)),
    ],
)
def test_no_regression(value: float, better: str, passed: bool, bounds: tuple) -> None:
    with recording() as results, contextlib.ExitStack() as stack:
        if not passed:
            info = stack.enter_context(pytest.raises(AssertionError))
        assert_no_regression(value, baseline=0.75, tolerance=0.01, metric="top1", better=better)
    (result,) = results
    assert result.passed is passed and result.better == better
    assert result.low == (None if bounds[0] is None else pytest.approx(bounds[0]))
    assert result.high == (None if bounds[1] is None else pytest.approx(bounds[1]))
    if not passed:
        head = lines_of(info)[0]
        assert head.startswith(f"top1 {value:g} regressed from the baseline 0.75 by 0.02")
        assert head.endswith("more than the tolerance 0.01")


# --- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda: assert_cka_between(gaussian(), gaussian(), 0.9, 0.1), "low <= high"),
        (lambda: assert_mce_below(scaled(0.7), 75, confidence=1.5), "open interval"),
        (lambda: assert_mce_below(scaled(0.7), 75, confidence=True), "finite number"),
        (lambda: assert_mce_below(scaled(0.7), float("nan")), "limit to be a finite"),
        (lambda: assert_mce_below(scaled(0.7), "75"), "limit to be a finite"),
        (lambda: assert_mce_below(scaled(0.7), 75, label=""), "label"),
        (lambda: assert_cka_between(gaussian(), gaussian(), 0, 1, kernel="poly"), "kernel"),
        (lambda: assert_cca_between(gaussian(), gaussian(), 0, 1, kind="pw"), "kind"),
        (lambda: assert_no_regression(1.0, baseline=1, tolerance=-1, metric="m"), "tolerance"),
        (
            lambda: assert_no_regression(1.0, baseline=1, tolerance=0, metric="m", better="none"),
            "better",
        ),  # fmt: skip
        (lambda: assert_accuracy_above([0, 1], [0, 1, 1], 0.5), "Expected 3"),
    ],
)
def test_bad_arguments(call: Any, pattern: str) -> None:
    with recording() as results, pytest.raises(ValueError, match=pattern):
        call()
    assert results == []


# --- in a pytest run -------------------------------------------------------------------------

CONTRACTS = """
import numpy as np
from pytest_sslrobust.assertions import (
    assert_accuracy_above, assert_cka_between, assert_mce_below, assert_no_regression,
)
from pytest_sslrobust.metrics import ALEXNET_ERRORS

def table(factor, fog=None):
    return {
        name: [(fog if fog and name == "fog" else factor) * e for e in rates]
        for name, rates in ALEXNET_ERRORS.items()
    }

LABELS = np.arange(100) % 4
WRONG = np.where(np.arange(100) < 30, (LABELS + 1) % 4, LABELS)
X = np.random.default_rng(0).normal(size=(50, 6))

def test_mce_passes():
    assert_mce_below(table(0.7), 75.0)

def test_mce_fails():
    assert_mce_below(table(0.813, fog=0.95), 75.0)

def test_accuracy_passes():
    assert_accuracy_above(LABELS, LABELS, 0.9)

def test_accuracy_fails():
    assert_accuracy_above(WRONG, LABELS, 0.9)

def test_cka_passes():
    assert_cka_between(X, 2 * X, 0.99, 1.0)

def test_cka_fails():
    assert_cka_between(X, X ** 2, 0.9, 1.0, label="squared")

def test_no_regression_fails():
    assert_no_regression(0.70, baseline=0.75, tolerance=0.01, metric="top1")
"""


def test_in_a_pytest_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_contracts=CONTRACTS)
    report = pytester.path / "report.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", f"--junitxml={report}"
    )
    result.assert_outcomes(passed=3, failed=4)
    result.stdout.fnmatch_lines(
        [
            "E *AssertionError: mCE 82.2 is above the limit 75.0 (reference: alexnet)",
            "E *item * obtained  required * gap",
            "E *mCE * 82.2  <= 75.0 * +7.2",
            "E *CE fog * 95.0 * <- worst",
            "E *CE brightness * 81.3",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E *AssertionError: accuracy 0.7000 is below the limit 0.9000 (fraction of 100 "
            "images correct)",
            "E *accuracy * 0.7000  >= 0.9000  -0.2000",
            "E *class 0 (n=25) * 0.6800 * <- worst",
        ]
    )
    result.stdout.fnmatch_lines(
        ["E *AssertionError: [[]squared] linear CKA 0.* is outside the range [[]0.9000, 1.0000]*"]
    )
    result.stdout.fnmatch_lines(
        [
            "E *AssertionError: top1 0.7 regressed from the baseline 0.75 by 0.05, more than "
            "the tolerance 0.01"
        ]
    )
    # the helpers' frames are hidden: tracebacks end in the test, not in assertions.py
    assert "assertions.py" not in result.stdout.str()
    assert "contracts/" not in result.stdout.str()
    result.stdout.fnmatch_lines(["test_contracts.py:*: AssertionError"])

    # every call was recorded on its test, passing or failing (xunit2: suite properties)
    root = ET.parse(report).getroot()
    properties = [
        (p.get("name"), p.get("value")) for p in root.iterfind("testsuite/properties/property")
    ]
    recorded: dict[str, list[ContractResult]] = {}
    for result in results_from_properties(properties):
        recorded.setdefault(result.test.rsplit("::", 1)[1], []).append(result)
    assert [r.passed for r in recorded["test_mce_passes"]] == [True]
    assert [r.passed for r in recorded["test_mce_fails"]] == [False]
    assert recorded["test_cka_fails"][0].label == "squared"
    assert recorded["test_accuracy_fails"][0].test.endswith(
        "test_contracts.py::test_accuracy_fails"
    )
