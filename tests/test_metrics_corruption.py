"""CE, mCE, relative mCE and their protocol rules; CorruptionErrors validation and round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sslrobust.metrics.corruption import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    PROTOCOL_KEYS_IGNORED,
    CorruptionErrors,
    ProtocolMismatch,
    ce,
    errors_from_predictions,
    mce,
    mean_accuracy,
    relative_mce,
    unnormalised_mean_error,
)
from pytest_sslrobust.variants.corruptions import ALL, COMMON, VALIDATION

RELEASED = {"source": "released-imagenet-c"}


def scaled(factor: float, names: tuple[str, ...] = COMMON) -> dict[str, list[float]]:
    return {name: [factor * e for e in ALEXNET_ERRORS[name]] for name in names}


def table(
    rates: dict[str, list[float]], protocol: dict | None = None, clean: float | None = 0.2
) -> CorruptionErrors:
    return CorruptionErrors(rates, clean, 100, "head", protocol or {"source": "on-the-fly"})


def test_alexnet_table_is_complete_and_ordered():
    assert tuple(ALEXNET_ERRORS) == ALL
    assert all(len(rates) == 5 for rates in ALEXNET_ERRORS.values())
    assert ALEXNET_ERRORS["gaussian_noise"][2] == 0.93554
    assert ALEXNET_ERRORS["saturate"] == (0.59342, 0.65514, 0.51174, 0.70834, 0.82260)
    assert ALEXNET_CLEAN_ERROR == 0.43478


def test_alexnet_against_itself_is_exactly_100():
    assert mce(ALEXNET_ERRORS) == 100.0
    assert relative_mce(ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR) == 100.0
    assert set(ce(ALEXNET_ERRORS).values()) == {100.0}
    released = CorruptionErrors(ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR, 50000, "head", RELEASED)
    assert mce(released) == 100.0
    assert relative_mce(released) == 100.0


def test_ce_by_hand():
    made_up = {
        "fog": [0.1, 0.2, 0.3, 0.4, 0.5],
        "snow": [0.5, 0.5, 0.5, 0.5, 0.5],
    }
    result = ce(made_up)
    assert result["fog"] == pytest.approx(
        100 * 1.5 / (0.67474 + 0.76050 + 0.84378 + 0.87260 + 0.945)
    )
    assert result["snow"] == pytest.approx(
        100 * 2.5 / (0.71726 + 0.88392 + 0.86468 + 0.91870 + 0.94952)
    )
    reference = {"fog": [0.3] * 5, "snow": [0.25] * 5}
    assert ce(made_up, reference) == pytest.approx({"fog": 100.0, "snow": 200.0})


def test_resnet50_like_scaling_gives_76_7():
    assert mce(scaled(0.767)) == pytest.approx(76.7, abs=1e-9)
    # Published ResNet-50 numbers are on released files, so a recorded protocol is accepted.
    recorded = table(scaled(0.767), RELEASED)
    assert mce(recorded) == pytest.approx(76.7, abs=1e-9)


def test_validation_corruptions_ignored_by_mce_but_in_ce():
    rates = scaled(0.5)
    rates.update({name: [1.0] * 5 for name in VALIDATION})
    assert mce(rates) == pytest.approx(50.0)
    per = ce(rates)
    assert set(per) == set(ALL)
    assert per["saturate"] > 100.0


def test_missing_common_corruption_is_listed():
    rates = scaled(0.5)
    del rates["fog"], rates["pixelate"]
    with pytest.raises(ValueError, match="fog, pixelate"):
        mce(rates)
    with pytest.raises(ValueError, match="fog, pixelate"):
        relative_mce(rates, 0.2)


def test_ce_refuses_corruption_missing_from_reference():
    with pytest.raises(ValueError, match="my_blur"):
        ce({"my_blur": [0.1] * 5})
    with pytest.raises(ValueError, match="snow"):
        ce({"fog": [0.1] * 5, "snow": [0.2] * 5}, {"fog": [0.3] * 5})


def test_alexnet_with_on_the_fly_protocol_is_refused():
    with pytest.raises(ProtocolMismatch, match="released ImageNet-C") as info:
        mce(table(scaled(0.7), {"source": "on-the-fly", "generator": "x"}))
    assert isinstance(info.value, ValueError)
    assert "same protocol" in str(info.value)
    for call in (ce, lambda e: relative_mce(e, 0.3)):
        with pytest.raises(ProtocolMismatch, match="released ImageNet-C"):
            call(table(scaled(0.7), {"source": "imagenet-c-recipe"}))


def test_reference_under_the_same_protocol_is_accepted():
    protocol = {"source": "on-the-fly", "generator": "imagecorruptions-imaug 1.1.5", "size": 224}
    model = table(scaled(0.4), {**protocol, "backbone": "dino_vits16"})
    reference = table(scaled(0.8), {**protocol, "backbone": "resnet50", "model": "r50"})
    assert set(PROTOCOL_KEYS_IGNORED) >= {"backbone", "model"}
    assert mce(model, reference) == pytest.approx(50.0)


def test_reference_with_mismatched_protocol_is_refused():
    model = table(scaled(0.4), {"source": "on-the-fly", "size": 224, "seed": 0})
    reference = table(scaled(0.8), {"source": "on-the-fly", "size": 160, "seed": 0})
    with pytest.raises(ProtocolMismatch, match=r"size: 224 vs 160") as info:
        mce(model, reference)
    assert "seed" not in str(info.value)
    # A key recorded on one side only is not a mismatch.
    partial = table(scaled(0.8), {"source": "on-the-fly"})
    assert mce(model, partial) == pytest.approx(50.0)


def test_relative_mce_with_reference_model():
    model = {name: [0.3, 0.35, 0.4, 0.45, 0.5] for name in COMMON}
    reference = table({name: [0.5, 0.6, 0.7, 0.8, 0.9] for name in COMMON}, clean=0.4)
    # (sum(model) - 5 * 0.2) / (sum(reference) - 5 * 0.4) = (2.0 - 1.0) / (3.5 - 2.0)
    assert relative_mce(model, 0.2, reference) == pytest.approx(100 / 1.5)
    assert relative_mce(model, 0.2, reference, reference_clean_error=0.5) == pytest.approx(100)
    with pytest.raises(ValueError, match="reference_clean_error"):
        relative_mce(model, 0.2, {name: [0.5] * 5 for name in COMMON})
    with pytest.raises(ValueError, match="clean_error"):
        relative_mce(model)
    with pytest.raises(ValueError, match="AlexNet"):
        relative_mce(model, 0.2, reference_clean_error=0.3)


def test_relative_mce_by_hand_against_alexnet():
    model = scaled(0.5)
    expected = np.mean(
        [
            (sum(model[c]) - 5 * 0.1) / (sum(ALEXNET_ERRORS[c]) - 5 * ALEXNET_CLEAN_ERROR)
            for c in COMMON
        ]
    )
    assert relative_mce(model, 0.1) == pytest.approx(100 * expected)


def test_unnormalised_mean_error_is_not_mce():
    # Hard corruptions for AlexNet dominate the plain mean but not mCE.
    rates = {name: [0.5] * 5 for name in COMMON}
    plain = unnormalised_mean_error(rates)
    assert plain == pytest.approx(50.0)
    assert abs(mce(rates) - plain) > 5
    assert mean_accuracy(rates) == pytest.approx(50.0)
    assert mean_accuracy({"fog": [0.1, 0.2, 0.3, 0.4, 0.5]}, corruptions=None) == pytest.approx(70)
    with pytest.raises(ValueError, match="missing"):
        mean_accuracy({"fog": [0.1] * 5})


@pytest.mark.parametrize(
    ("rates", "match"),
    [
        ([-0.1, 0.2, 0.3, 0.4, 0.5], r"\[0, 1\]"),
        ([0.1, 0.2, 0.3, 0.4, 1.5], r"\[0, 1\]"),
        ([0.1, 0.2, 0.3, 0.4], "5 error rates"),
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "5 error rates"),
        ([0.1, 0.2, math.nan, 0.4, 0.5], r"\[0, 1\]"),
        ([0.1, 0.2, "x", 0.4, 0.5], "number"),
        (0.3, "5 error rates"),
    ],
)
def test_invalid_rates_are_refused(rates, match):
    with pytest.raises(ValueError, match=match):
        table({"fog": rates})
    with pytest.raises(ValueError, match=match):
        ce({"fog": rates})


def test_invalid_fields_are_refused():
    good = {"fog": [0.1] * 5}
    with pytest.raises(ValueError, match="n to be a positive integer"):
        CorruptionErrors(good, None, 0, "head", RELEASED)
    with pytest.raises(ValueError, match="source"):
        CorruptionErrors(good, None, 10, "head", {"generator": "x"})
    with pytest.raises(ValueError, match="clean_error"):
        CorruptionErrors(good, 1.2, 10, "head", RELEASED)
    with pytest.raises(ValueError, match="readout"):
        CorruptionErrors(good, None, 10, "", RELEASED)
    with pytest.raises(ValueError, match="match correct"):
        CorruptionErrors(good, None, 2, "head", RELEASED, correct={"fog": np.ones((5, 2))})
    with pytest.raises(ValueError, match="shape"):
        CorruptionErrors(good, None, 2, "head", RELEASED, correct={"fog": np.ones((4, 2))})
    with pytest.raises(ValueError, match="'resnet50'"):
        ce(good, reference="resnet50")


def test_error_lookup():
    result = table({"fog": [0.1, 0.2, 0.3, 0.4, 0.5]})
    assert result.error("fog", 1) == 0.1
    assert result.error("fog", 5) == 0.5
    with pytest.raises(ValueError, match="severity"):
        result.error("fog", 0)
    with pytest.raises(ValueError, match="snow"):
        result.error("snow", 1)


rate = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def corruption_errors(draw: st.DrawFn) -> CorruptionErrors:
    names = draw(st.lists(st.sampled_from(ALL), min_size=1, max_size=4, unique=True))
    n = draw(st.integers(1, 20))
    with_correct = draw(st.booleans())
    protocol = {"source": draw(st.sampled_from(["released-imagenet-c", "on-the-fly"]))}
    protocol["seed"] = draw(st.integers(0, 2**31))
    if with_correct:
        seed = draw(st.integers(0, 2**16))
        rng = np.random.default_rng(seed)
        correct = {name: rng.random((5, n)) < 0.6 for name in names}
        clean = rng.random(n) < 0.8
        errors = {name: tuple((1 - c.mean(axis=1)).tolist()) for name, c in correct.items()}
        return CorruptionErrors(errors, None, n, "knn", protocol, correct, clean)
    errors = {name: tuple(draw(st.lists(rate, min_size=5, max_size=5))) for name in names}
    clean_error = draw(st.none() | rate)
    return CorruptionErrors(errors, clean_error, n, "linear-probe", protocol)


@settings(max_examples=60, deadline=None)
@given(corruption_errors())
def test_to_dict_from_dict_round_trip(result):
    data = json.loads(json.dumps(result.to_dict()))
    back = CorruptionErrors.from_dict(data)
    assert back == result
    assert back.errors == result.errors
    assert back.clean_error == result.clean_error
    if result.correct is not None:
        for name, array in result.correct.items():
            np.testing.assert_array_equal(back.correct[name], array)
        np.testing.assert_array_equal(back.clean_correct, result.clean_correct)


def test_errors_from_predictions_counts():
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    wrong = (labels + 1) % 10
    predictions = {
        "fog": [
            labels,
            np.where(np.arange(10) < 2, wrong, labels),
            np.where(np.arange(10) < 5, wrong, labels),
            np.where(np.arange(10) < 7, wrong, labels),
            wrong,
        ],
        "snow": [labels] * 5,
    }
    clean = np.where(np.arange(10) == 3, wrong, labels)
    result = errors_from_predictions(
        predictions, labels, clean, readout="knn", protocol={"source": "on-the-fly"}
    )
    assert result.errors["fog"] == (0.0, 0.2, 0.5, 0.7, 1.0)
    assert result.errors["snow"] == (0.0,) * 5
    assert result.clean_error == pytest.approx(0.1)
    assert result.n == 10
    assert result.readout == "knn"
    assert result.protocol["generator"].startswith("imagecorruptions")
    assert result.correct["fog"].shape == (5, 10)
    assert result.correct["fog"][1].tolist() == [False, False] + [True] * 8
    assert result.clean_correct.tolist() == [i != 3 for i in range(10)]
    released = errors_from_predictions(predictions, labels, protocol=RELEASED)
    assert "generator" not in released.protocol
    assert released.clean_error is None


def test_errors_from_predictions_bad_input():
    labels = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="5 arrays"):
        errors_from_predictions({"fog": [labels] * 4}, labels, protocol=RELEASED)
    with pytest.raises(ValueError, match="Expected 3"):
        errors_from_predictions({"fog": [labels] * 4 + [labels[:2]]}, labels, protocol=RELEASED)
    with pytest.raises(ValueError, match="source"):
        errors_from_predictions({"fog": [labels] * 5}, labels, protocol={})


def test_relative_ce_terms_average_to_relative_mce():
    from pytest_sslrobust.metrics import (
        ALEXNET_CLEAN_ERROR,
        ALEXNET_ERRORS,
        relative_ce,
        relative_mce,
    )

    table = {name: tuple(e * 0.8 for e in rates) for name, rates in ALEXNET_ERRORS.items()}
    terms = relative_ce(table, 0.25)
    assert set(terms) == set(COMMON)
    assert sum(terms.values()) / len(COMMON) == pytest.approx(relative_mce(table, 0.25))
    assert relative_ce(ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR)["fog"] == pytest.approx(100.0)


def test_input_size_is_a_model_property_when_the_corrupted_bytes_are_shared():
    """Released files and the imagenet-c recipe corrupt before each model's resize: a 96 px
    model and a 64 px reference saw the same corrupted images. On-the-fly corruptions come
    after the resize, so there the sizes differ in what was measured and are refused."""
    from pytest_sslrobust.metrics.corruption import check_protocols

    def table(source: str, size: int) -> CorruptionErrors:
        return CorruptionErrors(
            errors={"fog": (0.1, 0.2, 0.3, 0.4, 0.5)},
            clean_error=0.05,
            n=10,
            readout="head",
            protocol={"source": source, "image_size": size, "seed": 0},
        )

    for source in ("imagenet-c-recipe", "released-imagenet-c", "released"):
        check_protocols(table(source, 96), table(source, 64))
    with pytest.raises(ProtocolMismatch, match=r"image_size: 96 vs 64"):
        check_protocols(table("on-the-fly", 96), table("on-the-fly", 64))
    with pytest.raises(ProtocolMismatch, match=r"source"):
        check_protocols(table("imagenet-c-recipe", 96), table("released", 64))
