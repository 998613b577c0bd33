"""Baseline files, tolerance parsing and the comparison that gates a release."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sslrobust import baselines
from pytest_sslrobust.baselines import (
    IGNORED_PROTOCOL_KEYS,
    KNOWN_DIRECTIONS,
    Baseline,
    BaselineError,
    Tolerance,
    compare,
    load_baseline,
    parse_tolerances,
    save_baseline,
    unmatched_tolerances,
)
from pytest_sslrobust.results import SCHEMA_VERSION, ContractResult

ENV = {"python": "3.11.0", "platform": "test", "versions": {"numpy": "2.0"}}
PROTOCOL = {
    "data": "bundled:textured-digits",
    "split": "test",
    "subset": {"max_images": 64, "seed": 0, "n": 64},
    "ids_digest": "abc",
    "backbone": "resnet18",
    "backbone_fingerprint": "f1",
    "versions": {"torch": "2.4"},
}


def result(
    value: float,
    *,
    metric: str = "mce",
    label: str | None = None,
    test: str = "tests/test_x.py::test_x[m]",
    better: str | None = None,
    protocol: dict[str, Any] | None = None,
    interval: dict[str, Any] | None = None,
) -> ContractResult:
    return ContractResult(
        test=test,
        name=f"{metric}_check",
        metric=metric,
        label=label or metric,
        value=value,
        passed=True,
        better=better or KNOWN_DIRECTIONS.get(metric, "none"),
        interval=interval,
        protocol=dict(PROTOCOL if protocol is None else protocol),
    )


def baseline_of(*results: ContractResult) -> Baseline:
    return Baseline(Path("b.json"), SCHEMA_VERSION, ENV, {r.key: r for r in results})


def only_row(current: ContractResult, old: ContractResult, tolerances: str | None = None):
    comparison = compare([current], baseline_of(old), parse_tolerances(tolerances or ""))
    assert len(comparison.rows) == 1
    return comparison.rows[0]


# --- saving and loading ------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
json_leaf = st.none() | st.booleans() | st.integers() | finite | st.text(max_size=8)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
contract_results = st.builds(
    ContractResult,
    test=st.text(min_size=1, max_size=20),
    name=st.text(max_size=10),
    metric=st.sampled_from(sorted(KNOWN_DIRECTIONS)) | st.text(min_size=1, max_size=8),
    label=st.text(max_size=10),
    value=finite,
    passed=st.booleans(),
    low=st.none() | finite,
    high=st.none() | finite,
    better=st.sampled_from(["lower", "higher", "none"]),
    unit=st.sampled_from(["", "%", " pp"]),
    interval=st.none()
    | st.fixed_dictionaries(
        {"low": finite, "high": finite, "confidence": finite, "resamples": st.integers(1, 10_000)}
    ),
    decided_on=st.sampled_from(["value", "interval"]),
    model=st.none() | st.text(max_size=10),
    protocol=st.dictionaries(st.text(max_size=8), json_value, max_size=4),
    details=st.lists(st.dictionaries(st.text(max_size=5), json_value, max_size=3), max_size=2).map(
        tuple
    ),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(contract_results, max_size=5, unique_by=lambda r: r.key))
def test_save_load_round_trip_is_exact(results: list[ContractResult]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "deep" / "baseline.json"
        save_baseline(path, results, environment=ENV)
        loaded = load_baseline(path)
    assert loaded.schema_version == SCHEMA_VERSION
    assert loaded.environment == ENV
    assert loaded.path == path
    assert dict(loaded.results) == {r.key: r for r in results}
    for r in results:  # equal floats could still differ in sign of zero; exactness is repr
        assert repr(loaded.results[r.key].value) == repr(r.value)


def test_saved_file_is_sorted_versioned_and_carries_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    save_baseline(path, [result(2.0, label="z"), result(1.0, label="a")], environment=ENV)
    document = json.loads(path.read_text())
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["kind"] == "pytest-sslrobust-baseline"
    assert document["environment"] == ENV
    assert [r["label"] for r in document["results"]] == ["a", "z"]
    assert path.read_text() == json.dumps(document, indent=2, sort_keys=True) + "\n"
    umask = os.umask(0)
    os.umask(umask)
    # The mode open() would give, not the owner-only mode of a temporary file.
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_save_defaults_to_this_environment(tmp_path: Path) -> None:
    save_baseline(tmp_path / "b.json", [result(1.0)])
    assert "python" in load_baseline(tmp_path / "b.json").environment


@pytest.mark.parametrize("failing", ["dump", "replace"])
def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    path = tmp_path / "b.json"
    save_baseline(path, [result(1.0)], environment=ENV)
    original = path.read_bytes()

    def half_dump(obj: Any, handle: Any, **kwargs: Any) -> None:
        handle.write(json.dumps(obj, **kwargs)[:20])
        raise OSError(28, "No space left on device")

    def no_replace(src: Any, dst: Any) -> None:
        raise OSError(18, "Invalid cross-device link")

    if failing == "dump":
        monkeypatch.setattr(json, "dump", half_dump)
    else:
        monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(BaselineError, match=r"could not write baseline .*b\.json"):
        save_baseline(path, [result(5.0), result(6.0, label="other")], environment=ENV)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temporary left behind


def test_save_interrupted_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_baseline(tmp_path / "b.json", [result(1.0)], environment=ENV)
    assert list(tmp_path.iterdir()) == []


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    twins = [result(1.0, label="same"), result(2.0, label="same")]
    with pytest.raises(BaselineError, match=r"two results with the key '.*::same'.*label="):
        save_baseline(tmp_path / "b.json", twins, environment=ENV)
    assert not (tmp_path / "b.json").exists()


def test_other_schema_version_asks_to_regenerate(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    save_baseline(path, [result(1.0)], environment=ENV)
    document = json.loads(path.read_text())
    document["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(document))
    with pytest.raises(BaselineError) as info:
        load_baseline(path)
    assert str(info.value) == (
        f"baseline {path} was written with schema version {SCHEMA_VERSION + 1}; this "
        f"pytest-sslrobust writes version {SCHEMA_VERSION}: regenerate it with "
        f"--sslrobust-save={path}"
    )


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(BaselineError, match=r"nope\.json does not exist: .*--sslrobust-save="):
        load_baseline(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"is not valid JSON \(.* at line 1 column 2\)"),
        ("[1, 2]", r"is not a pytest-sslrobust baseline"),
        (
            json.dumps({"schema_version": SCHEMA_VERSION, "environment": {}, "results": []}),
            r"lacks \"kind\".*looks like a --sslrobust-json results file",
        ),
        (
            json.dumps({"schema_version": 1, "kind": "pytest-sslrobust-baseline", "results": 3}),
            r"is damaged: \"results\" must be a list",
        ),
        (
            json.dumps(
                {"schema_version": 1, "kind": "pytest-sslrobust-baseline", "results": [{"x": 1}]}
            ),
            r"result 0 is not a contract result .*unknown result fields \['x'\]",
        ),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(text)
    with pytest.raises(BaselineError, match=message):
        load_baseline(path)


# --- tolerances --------------------------------------------------------------------------


def test_parse_tolerances() -> None:
    parsed = parse_tolerances(" mce:+1.0, cka:-0.02,accuracy:-1%, *:-0.5, my_metric:+3 ,")
    assert parsed == {
        "mce": Tolerance("mce", 1.0, False, "lower"),
        "cka": Tolerance("cka", 0.02, False, "higher"),
        "accuracy": Tolerance("accuracy", 1.0, True, "higher"),
        "*": Tolerance("*", 0.5, False),
        "my_metric": Tolerance("my_metric", 3.0, False, "lower"),
    }
    assert str(parsed["accuracy"]) == "accuracy:-1%"
    assert parsed["accuracy"].allowed(80.0) == pytest.approx(0.8)
    assert parse_tolerances("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "mce:-1.0",
            "tolerance 'mce:-1.0' has the wrong sign: mce gets worse upwards: write mce:+1.0",
        ),
        ("cka:+0.02", "cka gets worse downwards: write cka:-0.02"),
        ("accuracy:+1%", "accuracy gets worse downwards: write accuracy:-1%"),
        ("mce:1.0", "tolerance 'mce:1.0' has no sign"),
        ("mce:1.0", "mce gets worse upwards: write mce:+1.0"),
        ("foo:2", "write foo:+2 if lower is better, or foo:-2 if higher is better"),
        ("mce", "tolerance 'mce' is not METRIC:AMOUNT"),
        (":+1", "is not METRIC:AMOUNT"),
        ("mce:+x", "'+x' is not a finite number"),
        ("mce:+-1", "'+-1' is not a finite number"),
        ("mce:+inf", "'+inf' is not a finite number"),
        ("mce:+1,mce:+2", "tolerance for 'mce' given twice ('mce:+2')"),
        ("a b:+1", "the metric name 'a b' has spaces"),
    ],
)
def test_bad_tolerances(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_tolerances(text)


# --- comparison --------------------------------------------------------------------------


def test_improved_unchanged_and_worse_without_tolerance() -> None:
    assert only_row(result(40.0), result(42.0)).status == "improved"
    assert only_row(result(0.9, metric="cka"), result(0.8, metric="cka")).status == "improved"
    assert only_row(result(42.0), result(42.0)).status == "unchanged"
    row = only_row(result(50.0), result(42.0))
    assert (row.status, row.delta, row.allowed) == ("worse", 8.0, None)


def test_worse_within_tolerance_and_regression_beyond() -> None:
    within = only_row(result(42.5), result(42.0), "mce:+1.0")
    assert (within.status, within.allowed) == ("worse", 1.0)
    beyond = only_row(result(43.5), result(42.0), "mce:+1.0")
    assert (beyond.status, beyond.delta) == ("regression", 1.5)
    # Exactly the tolerance, despite 0.4 - 0.3 rounding to a hair above 0.1.
    edge = only_row(result(0.3, metric="cka"), result(0.4, metric="cka"), "cka:-0.1")
    assert edge.status == "worse"
    assert only_row(result(0.27, metric="cka"), result(0.4, metric="cka"), "cka:-0.1").status == (
        "regression"
    )


def test_relative_tolerance_and_default() -> None:
    old = result(80.0, metric="accuracy")
    assert only_row(result(79.3, metric="accuracy"), old, "accuracy:-1%").status == "worse"
    row = only_row(result(79.1, metric="accuracy"), old, "accuracy:-1%")
    assert (row.status, row.allowed) == ("regression", pytest.approx(0.8))
    assert only_row(result(79.1, metric="accuracy"), old, "*:0.5").status == "regression"
    assert only_row(result(79.1, metric="accuracy"), old, "*:2").status == "worse"
    assert only_row(result(79.1, metric="accuracy"), old, "*:2,accuracy:-0.1").status == (
        "regression"
    )


def test_direction_comes_from_the_result_then_the_table() -> None:
    mine = {"metric": "my_score", "better": "higher"}
    assert only_row(result(0.5, **mine), result(0.9, **mine), "*:0.1").status == "regression"
    loose = {"metric": "my_score", "better": "none"}
    assert only_row(result(0.5, **loose), result(0.9, **loose), "*:0.1").status == "changed"
    assert only_row(result(0.9, **loose), result(0.9, **loose)).status == "unchanged"
    # With no direction anywhere else, the sign of the metric's tolerance declares one.
    assert only_row(result(0.5, **loose), result(0.9, **loose), "my_score:-0.1").status == (
        "regression"
    )
    # A tolerance whose sign contradicts the result is refused, not applied backwards.
    row = only_row(result(0.5, **mine), result(0.9, **mine), "my_score:+0.1")
    assert row.status == "refused"
    assert "my_score:+0.1 says my_score gets worse upwards" in row.note


def test_new_and_missing() -> None:
    kept, gone, fresh = result(1.0), result(2.0, label="gone"), result(3.0, label="fresh")
    comparison = compare([kept, fresh], baseline_of(kept, gone))
    statuses = {row.key: (row.status, row.baseline_value, row.value) for row in comparison.rows}
    assert statuses == {
        kept.key: ("unchanged", 1.0, 1.0),
        gone.key: ("missing", 2.0, None),
        fresh.key: ("new", None, 3.0),
    }
    # A baseline result the run did not produce fails the gate (syrupy's unused snapshots)...
    assert comparison.failed and [row.key for row in comparison.missing] == [gone.key]
    # ...unless missing results are only to be listed.
    assert not compare([kept, fresh], baseline_of(kept, gone), missing_fails=False).failed
    assert not compare([kept, gone], baseline_of(kept, gone)).failed


def measured(value: float, model: str, *, metric: str = "accuracy", params: str = "") -> Any:
    """A result as record() makes it for a test parametrized by the backbone ``model``."""
    base = "tests/test_x.py::test_acc"
    ids = "-".join(filter(None, [model, params]))
    return dataclasses.replace(
        result(value, metric=metric, test=f"{base}[{ids}]"),
        model_id=model,
        measure=f"{base}[{params}]" if params else base,
    )


def test_results_of_two_models_are_matched_by_what_was_measured() -> None:
    old = [measured(0.9, "release-1.4"), measured(0.8, "release-1.4", params="fog-s3")]
    now = [measured(0.7, "candidate"), measured(0.8, "candidate", params="fog-s3")]
    comparison = compare(now, baseline_of(*old), parse_tolerances("accuracy:-0.01"))
    rows = {row.key: row for row in comparison.rows}
    assert sorted(rows) == sorted(r.key for r in now)  # nothing new, nothing missing
    regressed = rows[now[0].key]
    assert (regressed.status, regressed.baseline_value, regressed.value) == ("regression", 0.9, 0.7)
    assert f"baseline: {old[0].key}" in regressed.note
    assert rows[now[1].key].status == "unchanged"
    assert comparison.failed


def test_several_models_need_a_mapping_unless_ids_agree() -> None:
    old = [measured(0.9, "a"), measured(0.9, "b")]
    now = [measured(0.9, "a"), measured(0.5, "c")]
    comparison = compare(now, baseline_of(*old))
    statuses = {row.key: row.status for row in comparison.rows}
    assert statuses == {now[0].key: "unchanged", now[1].key: "new", old[1].key: "missing"}
    note = next(row.note for row in comparison.rows if row.status == "missing")
    assert "--sslrobust-compare-models=b=MODEL" in note
    mapped = compare(
        now, baseline_of(*old), parse_tolerances("accuracy:-0.1"), models=(("b", "c"),)
    )
    # Only b is compared (with c): a of this run is new, a of the baseline missing.
    statuses = sorted((row.status, row.key) for row in mapped.rows)
    assert statuses == [("missing", old[0].key), ("new", now[0].key), ("regression", now[1].key)]
    # Naming a model neither side has is an error, not an empty comparison.
    with pytest.raises(BaselineError, match="the baseline has no results of model 'x'"):
        compare(now, baseline_of(*old), models=(("x", "a"),))
    with pytest.raises(BaselineError, match="needs exactly one model under test"):
        compare(now, baseline_of(*old), models=(("a", None),))


def test_lone_baseline_model_mapping() -> None:
    old = [measured(0.9, "a"), measured(0.6, "b")]
    comparison = compare([measured(0.9, "new")], baseline_of(*old), models=(("b", None),))
    row = next(row for row in comparison.rows if row.value is not None)
    assert (row.status, row.baseline_value) == ("improved", 0.6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("release-1.4", (("release-1.4", None),)),
        (" a=b , c=d", (("a", "b"), ("c", "d"))),
    ],
)
def test_parse_model_mapping(text: str, expected: Any) -> None:
    assert baselines.parse_model_mapping(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no empty entry"),
        ("a=", "is not BASELINE=MODEL"),
        ("a,b=c", "each must be BASELINE=MODEL"),
        ("a=b,a=c", "baseline model a mapped more than once"),
        ("a=c,b=c", "model c mapped more than once"),
    ],
)
def test_bad_model_mappings(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        baselines.parse_model_mapping(text)


def test_version_1_baselines_still_compare_by_key(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    save_baseline(path, [result(42.0)], environment=ENV)
    document = json.loads(path.read_text())
    document["schema_version"] = 1
    path.write_text(json.dumps(document))
    comparison = compare([result(41.0)], load_baseline(path))
    assert [row.status for row in comparison.rows] == ["improved"]
    assert "schema version 1: results are matched by test id" in comparison.notes[0]


def test_protocol_mismatch_is_refused_naming_each_field() -> None:
    old = result(42.0)
    other = {
        **PROTOCOL,
        "data": "imagefolder:/data/val",
        "subset": {"max_images": 128, "seed": 0, "n": 128},
    }
    row = only_row(result(60.0, protocol=other), old, "mce:+1.0")
    assert row.status == "refused"
    assert "data: bundled:textured-digits vs imagefolder:/data/val" in row.note
    assert (
        'subset: {"max_images": 64, "n": 64, "seed": 0} vs {"max_images": 128, "n": 128, "seed": 0}'
        in row.note
    )
    assert "split" not in row.note
    comparison = compare(
        [result(60.0, protocol=other)], baseline_of(old), parse_tolerances("mce:+1")
    )
    assert comparison.refused == [row] and comparison.regressions == []
    assert comparison.failed


def test_ignored_and_unshared_protocol_keys_do_not_refuse() -> None:
    old = result(42.0, protocol={**PROTOCOL, "only_then": 1})
    changed = {key: f"new-{key}" for key in IGNORED_PROTOCOL_KEYS}
    now = result(41.0, protocol={**PROTOCOL, **changed, "only_now": 2})
    assert only_row(now, old).status == "improved"


def test_tuples_and_lists_are_the_same_protocol(tmp_path: Path) -> None:
    # The baseline's protocol went through JSON; this run's still holds tuples.
    now = result(42.0, protocol={**PROTOCOL, "image_size": (224, 224)})
    save_baseline(tmp_path / "b.json", [now], environment=ENV)
    row = compare([now], load_baseline(tmp_path / "b.json")).rows[0]
    assert row.status == "unchanged"


def test_interval_noise_is_not_a_regression() -> None:
    old = result(42.0)
    noisy = {"low": 42.5, "high": 45.0, "confidence": 0.95}
    # The point value alone would be a regression...
    assert only_row(result(43.5), old, "mce:+1.0").status == "regression"
    # ...but the interval's favourable end is within tolerance: bootstrap noise.
    row = only_row(result(43.5, interval=noisy), old, "mce:+1.0")
    assert row.status == "worse"
    assert "interval low end 42.5 is within tolerance" in row.note
    # When even the favourable end is beyond the tolerance, it is a regression.
    sure = {"low": 43.2, "high": 44.0}
    assert only_row(result(43.5, interval=sure), old, "mce:+1.0").status == "regression"
    # Higher is better: the favourable end is the high one.
    cka = result(0.90, metric="cka")
    near = result(0.85, metric="cka", interval={"low": 0.80, "high": 0.89})
    assert only_row(near, cka, "cka:-0.02").status == "worse"
    far = result(0.85, metric="cka", interval={"low": 0.80, "high": 0.87})
    assert only_row(far, cka, "cka:-0.02").status == "regression"


def test_non_finite_values() -> None:
    assert only_row(result(float("nan")), result(42.0), "mce:+1").status == "regression"
    assert only_row(result(float("nan")), result(42.0)).status == "worse"
    assert only_row(result(42.0), result(float("nan")), "mce:+1").status == "changed"


def test_duplicate_current_keys_are_refused() -> None:
    twins = [result(1.0, label="x"), result(2.0, label="x")]
    comparison = compare(twins, baseline_of(result(1.0, label="x")))
    assert [row.status for row in comparison.rows] == ["refused"]
    assert "several results with this key" in comparison.rows[0].note


def test_lines_put_regressions_first() -> None:
    names = ("a_improved", "b_regressed", "c_same", "d_gone")
    old = [result(42.0, label=name) for name in names]
    now = [result(40.0, label="a_improved"), result(45.0, label="b_regressed")]
    now.append(result(42.0, label="c_same"))
    comparison = compare(now, baseline_of(*old), parse_tolerances("mce:+1.0"))
    statuses = [row.status for row in comparison.rows]
    assert statuses == ["improved", "regression", "unchanged", "missing"]  # key order
    assert [row.key for row in comparison.regressions] == [now[1].key]
    assert [row.key for row in comparison.improved] == [now[0].key]
    assert comparison.failed
    assert comparison.summary() == "1 regression, 1 missing, 1 improved, 1 unchanged"
    lines = comparison.lines()
    assert lines[0].split() == ["status", "contract", "baseline", "now", "delta", "allowed", "note"]
    unpaired = "unpaired: mce results carry no per-image outcomes".split()
    assert lines[1].split() == ["regression", now[1].key, "42", "45", "+3", "+1", *unpaired]
    assert lines[2].split() == [
        "missing",
        old[3].key,
        "42",
        "-",
        "-",
        "-",
        *"not run this time".split(),
    ]
    assert lines[3].startswith("improved  ")
    assert lines[4].startswith("unchanged  ")
    # Aligned: every column starts at the same offset on every line.
    for column in ("contract", "baseline", "now", "delta", "allowed", "note"):
        offset = lines[0].index(column)
        assert all(line[offset - 2 : offset] == "  " for line in lines if len(line) > offset)
        assert lines[2][offset] != " "  # and each cell starts right there
    assert compare([], baseline_of()).lines() == []


def test_lines_truncate_long_keys_and_show_allowed_with_its_sign() -> None:
    long_test = "tests/" + "x" * 200 + ".py::test_cka"
    old = result(0.9, metric="cka", test=long_test)
    comparison = compare(
        [result(0.85, metric="cka", test=long_test)],
        baseline_of(old),
        parse_tolerances("cka:-0.02"),
    )
    header, line = comparison.lines(width=100)
    status, key, old_value, now, delta, allowed, *note = line.split()
    assert " ".join(note) == "unpaired: cka results carry no per-image outcomes"
    assert (status, old_value, now, delta, allowed) == (
        "regression",
        "0.9",
        "0.85",
        "-0.05",
        "-0.02",
    )
    assert key.startswith("...") and key.endswith("test_cka::cka")
    # The columns fit; the note is free text and runs on.
    assert len(line.split("  unpaired:")[0]) <= 100 and len(header) <= 100


def test_module_imports_no_torch() -> None:
    source = Path(baselines.__file__).read_text()
    assert "import torch" not in source


# --- paired decisions --------------------------------------------------------------------


def with_outcomes(correct: Any, *, digest: str | None = "abc", label: str = "accuracy") -> Any:
    import numpy as np

    from pytest_sslrobust.paired import pack_outcomes

    values = np.asarray(correct, dtype=bool)
    protocol = (
        {**PROTOCOL, "ids_digest": digest}
        if digest
        else {k: v for k, v in PROTOCOL.items() if k != "ids_digest"}
    )
    return dataclasses.replace(
        result(float(values.mean()), metric="accuracy", label=label, protocol=protocol),
        outcomes={"correct": pack_outcomes(values), "n": int(values.size)},
    )


def flipped(base: Any, lost: int, gained: int) -> Any:
    import numpy as np

    now = np.array(base, dtype=bool)
    now[np.flatnonzero(now)[:lost]] = False
    now[np.flatnonzero(~np.array(base, dtype=bool))[:gained]] = True
    return now


BASE = [True] * 800 + [False] * 200


def test_a_paired_drop_beyond_noise_is_a_regression() -> None:
    row = only_row(with_outcomes(flipped(BASE, 30, 0)), with_outcomes(BASE), "accuracy:-0.0")
    assert (row.status, row.paired, row.lost, row.gained) == ("regression", True, 30, 0)
    assert row.p_value == pytest.approx(0.5**30)
    assert "paired: 30 of 1000 images became wrong, 0 right" in row.note
    assert "significant at 95% (Holm over 1)" in row.note


def test_a_paired_drop_within_noise_is_only_worse() -> None:
    # 3 lost, 1 gained: the value is worse, but p = P(X >= 3 | 4) = 5/16.
    row = only_row(with_outcomes(flipped(BASE, 3, 1)), with_outcomes(BASE), "accuracy:-0.0")
    assert row.status == "worse" and row.p_value == pytest.approx(5 / 16)
    assert "not significant at 95%" in row.note


def test_tolerance_keeps_its_meaning_under_pairing() -> None:
    # 30 lost of 1000 is a 3-point drop: beyond a 1-point tolerance, and significantly so.
    beyond = only_row(with_outcomes(flipped(BASE, 30, 0)), with_outcomes(BASE), "accuracy:-0.01")
    assert beyond.status == "regression" and beyond.p_value < 0.001
    within = only_row(with_outcomes(flipped(BASE, 30, 0)), with_outcomes(BASE), "accuracy:-0.05")
    assert within.status == "worse" and within.p_value is not None and within.p_value > 0.99


def test_holm_keeps_many_small_effects_from_failing_the_session() -> None:
    # Each row alone: 8 lost, 0 gained, p = 2**-8 = 0.0039 < 0.05; over 20 rows Holm asks
    # for 0.05 / 20 = 0.0025, so none is significant.
    old = [with_outcomes(BASE, label=f"cell{i}") for i in range(20)]
    now = [with_outcomes(flipped(BASE, 8, 0), label=f"cell{i}") for i in range(20)]
    comparison = compare(now, baseline_of(*old), parse_tolerances("accuracy:-0.0"))
    assert {row.status for row in comparison.rows} == {"worse"}
    alone = compare(now[:1], baseline_of(old[0]), parse_tolerances("accuracy:-0.0"))
    assert alone.rows[0].status == "regression"
    # A lower confidence makes them significant again.
    loose = compare(now, baseline_of(*old), parse_tolerances("accuracy:-0.0"), confidence=0.9)
    assert {row.status for row in loose.rows} == {"regression"}
    strict = compare(
        now[:1], baseline_of(old[0]), parse_tolerances("accuracy:-0.0"), confidence=0.999
    )
    assert strict.rows[0].status == "worse"


def test_without_the_same_ids_the_comparison_is_unpaired() -> None:
    row = only_row(
        with_outcomes(flipped(BASE, 3, 1), digest=None),
        with_outcomes(BASE, digest=None),
        "accuracy:-0.0",
    )
    assert not row.paired and row.p_value is None and row.status == "regression"


def test_paired_bootstrap_is_seeded() -> None:
    from pytest_sslrobust.paired import paired_worsening_p

    first = paired_worsening_p(40, 10, 1000, 0.02, seed=3)
    assert first == paired_worsening_p(40, 10, 1000, 0.02, seed=3)
    assert 0.0 < first < 1.0
    # A 3-point drop is surely beyond 1 point and surely not beyond 5.
    assert paired_worsening_p(40, 10, 1000, 0.01, seed=0) < 0.01
    assert paired_worsening_p(40, 10, 1000, 0.05, seed=0) > 0.99


def test_paired_rows_name_the_images_that_became_wrong() -> None:
    from pytest_sslrobust.outcomes import ids_digest
    from pytest_sslrobust.paired import pack_ids

    ids = [f"img{i:04d}" for i in range(len(BASE))]
    old = with_outcomes(BASE, digest=ids_digest(ids))  # a version 2 baseline's form
    old = dataclasses.replace(old, outcomes={**old.outcomes, "ids": pack_ids(ids)})
    row = only_row(
        with_outcomes(flipped(BASE, 30, 0), digest=ids_digest(ids)), old, "accuracy:-0.0"
    )
    assert row.flipped == ("img0000", "img0001", "img0002", "img0003", "img0004")
    assert "(wrong now: img0000, img0001, img0002, img0003, img0004, ...)" in row.note


@pytest.mark.parametrize("bare", ["baseline", "current"])
def test_a_result_without_protocol_is_refused_against_one_with_a_protocol(bare: str) -> None:
    with_protocol, without = result(50.0), result(50.0, protocol={})
    old, current = (without, with_protocol) if bare == "baseline" else (with_protocol, without)
    row = only_row(current, old, "mce:+1.0")
    assert row.status == "refused"
    side = "the baseline's" if bare == "baseline" else "this run's"
    assert f"{side} result has no protocol (a contract on bare arrays)" in row.note


def test_results_without_protocol_on_both_sides_are_compared_by_value_and_say_so() -> None:
    row = only_row(result(60.0, protocol={}), result(50.0, protocol={}), "mce:+1.0")
    assert row.status == "regression"
    assert "no protocol on either side" in row.note and "unchecked" in row.note
    same = only_row(result(50.0, protocol={}), result(50.0, protocol={}), "mce:+1.0")
    assert same.status == "unchanged" and "no protocol on either side" in same.note


def test_tolerances_of_own_metrics_that_match_nothing_are_listed() -> None:
    tolerances = parse_tolerances("mce:+1.0,cka:-0.02,my_metric:+3,*:-1")
    current = [result(50.0)]
    old = [result(50.0, metric="my_other")]
    # Built-in metrics the run did not produce (cka) and * are never listed.
    assert unmatched_tolerances(tolerances, current, old) == ["my_metric"]
    assert unmatched_tolerances(tolerances, [result(1.0, metric="my_metric")]) == []


@pytest.mark.parametrize(("text", "suggestion"), [("mcee:+1", "mce"), ("ckaa:-0.1", "cka")])
def test_a_misspelt_built_in_metric_is_refused_with_the_closest(text: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean {suggestion!r}"):
        parse_tolerances(text)
