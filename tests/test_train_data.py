"""Readouts fitted on other labelled data (``--sslrobust-train-data``), classes matched by
name, and a class-stratified training subset (``--sslrobust-train-per-class``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_sslrobust.data.base import per_class_indices

CONFTEST = """
from pytest_sslrobust import BackboneAlias

def pytest_sslrobust_register_backbones(register):
    register(BackboneAlias("tiny-t", "resnet18", weights="random", input_size=32))
"""

TESTS = """
import numpy as np
from pytest_sslrobust.features.provenance import Provenance

def test_fitted_elsewhere(sslrobust):
    readout = sslrobust.readout("linear-probe")
    predictions = sslrobust.predictions("original", readout="linear-probe")
    train = readout._train_features()
    print("PARAMS", sorted(readout.params.items()))
    print("TRAIN_LABELS", sorted(set(train.labels.tolist())))
    print("TRAIN_N", len(train.ids), "SUBSET", Provenance.of(train).subset.to_dict())
    print("PREDICTED", sorted(set(np.asarray(predictions).tolist())))
    print("PROTOCOL_READOUT", sorted(predictions.protocol["readout"].items()))
"""


def write_cifar_c(root: Path, n: int = 12) -> None:
    """A CIFAR-10-C test set without a train split: labels 1 (automobile) and 3 (cat)."""
    root.mkdir(parents=True)
    labels = np.array([1, 3] * (n // 2))
    np.save(root / "labels.npy", np.tile(labels, 5))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(5 * n, 32, 32, 3), dtype=np.uint8)
    np.save(root / "fog.npy", images)
    np.save(root.parent / "clean.npy", images[:n])


def write_folder(root: Path, classes: dict[str, int]) -> None:
    rng = np.random.default_rng(1)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_fit=TESTS)
    write_cifar_c(pytester.path / "CIFAR-10-C")
    return pytester


def run(project: pytest.Pytester, *options: str) -> pytest.RunResult:
    data = project.path / "CIFAR-10-C"
    return project.runpytest_subprocess(
        "--sslrobust-model=tiny-t",
        f"--sslrobust-data=cifar-c:{data},clean={project.path / 'clean.npy'}",
        "--sslrobust-no-cache",
        "-p",
        "no:randomly",
        "-s",
        *options,
    )


def test_data_without_a_train_split_names_the_option(project: pytest.Pytester) -> None:
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*'linear-probe' is fitted on the clean 'train' split*--sslrobust-train-data=SPEC*"]
    )


def test_probe_fitted_on_other_data_with_classes_matched_by_name(
    project: pytest.Pytester,
) -> None:
    # Folder classes sort to automobile=0, cat=1; CIFAR-10 has them at 1 and 3.
    write_folder(project.path / "train-images" / "train", {"automobile": 6, "cat": 6})
    write_folder(project.path / "train-images" / "val", {"automobile": 1, "cat": 1})
    spec = f"imagefolder:{project.path / 'train-images'}"
    result = run(project, f"--sslrobust-train-data={spec}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"*PARAMS *('train_data', '{spec}')*",
            "*TRAIN_LABELS [[]1, 3[]]",
            "*TRAIN_N 12 SUBSET {'max_images': None, 'seed': 0, 'n': 12}",
            "*PREDICTED *",
            f"*PROTOCOL_READOUT *('train_data', '{spec}')*",
        ]
    )
    predicted = result.stdout.str().split("PREDICTED ", 1)[1].split("\n", 1)[0]
    assert set(eval(predicted)) <= {1, 3}  # the probe speaks the test data's label space

    subset = run(project, f"--sslrobust-train-data={spec}", "--sslrobust-train-per-class=2")
    subset.assert_outcomes(passed=1)
    subset.stdout.fnmatch_lines(
        [
            "*PARAMS *('train_per_class', 2)*",
            "*TRAIN_N 4 SUBSET {'max_images': None, 'seed': 0, 'n': 4, 'per_class': 2}",
        ]
    )


def test_a_class_the_test_data_lacks_is_refused_by_name(project: pytest.Pytester) -> None:
    write_folder(project.path / "other" / "train", {"cat": 3, "zebra": 3})
    write_folder(project.path / "other" / "val", {"cat": 1, "zebra": 1})
    result = run(project, f"--sslrobust-train-data=imagefolder:{project.path / 'other'}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*has 1 class(es) that cifar-c:* does not ('zebra'); classes are matched by name*"]
    )


def test_per_class_indices_are_stratified_deterministic_and_bounded() -> None:
    labels = np.array([0] * 10 + [1] * 3 + [2] * 7)
    ids = [f"img{i}" for i in range(len(labels))]
    picked = per_class_indices(labels, ids, 4, seed=0)
    assert np.bincount(labels[picked]).tolist() == [4, 3, 4]
    assert picked.tolist() == sorted(picked.tolist())
    assert np.array_equal(picked, per_class_indices(labels, ids, 4, seed=0))
    assert not np.array_equal(picked, per_class_indices(labels, ids, 4, seed=1))
    # The choice follows the ids, not their order in the source.
    order = np.random.default_rng(0).permutation(len(labels))
    again = per_class_indices(labels[order], [ids[i] for i in order], 4, seed=0)
    assert sorted(ids[order[i]] for i in again) == sorted(ids[i] for i in picked)


def test_other_data_read_through_with_data_fits_on_its_own_split(
    project: pytest.Pytester,
) -> None:
    write_folder(project.path / "train-images" / "train", {"automobile": 3, "cat": 3})
    write_folder(project.path / "train-images" / "val", {"automobile": 1, "cat": 1})
    project.makepyfile(
        test_far="""
        def test_far(sslrobust):
            assert "train_data" in sslrobust.readout("linear-probe").params
            far = sslrobust.with_data("bundled:textured-shapes")
            assert "train_data" not in far.readout("linear-probe").params
        """
    )
    result = run(project, f"--sslrobust-train-data=imagefolder:{project.path / 'train-images'}")
    result.assert_outcomes(passed=2)
