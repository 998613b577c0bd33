"""Linear heads as files: ``--sslrobust-save-probe`` writes the fitted probe, and
``--sslrobust-head`` reads it back (or a released head) as the readout, classes by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pytest_sslrobust.heads import HeadError, HeadFile

CONFTEST = """
from pytest_sslrobust import BackboneAlias

def pytest_sslrobust_register_backbones(register):
    register(BackboneAlias("tiny-h", "resnet18", weights="random", input_size=32))
"""

TESTS = """
import numpy as np

def test_predict(sslrobust):
    readout = sslrobust.readout("linear-probe")
    predictions = sslrobust.predictions("original", readout="linear-probe")
    print("PARAMS", sorted(readout.params))
    print("PREDICTIONS", np.asarray(predictions).tolist())
"""

DIGITS = [str(i) for i in range(10)]


def write_head(path: Path, rows: int, dim: int, classes: list[str] | None = None) -> Path:
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "weight": torch.randn(rows, dim, generator=generator),
        "bias": torch.zeros(rows),
    }
    names = classes if classes is not None else DIGITS[:rows]
    save_file(tensors, str(path), metadata={"classes": json.dumps(names)})
    return path


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_head=TESTS)
    return pytester


def run(project: pytest.Pytester, *options: str) -> pytest.RunResult:
    return project.runpytest_subprocess(
        "--sslrobust-model=tiny-h",
        "--sslrobust-max-images=60",
        f"--sslrobust-cache-dir={project.path / 'cache'}",
        "-p",
        "no:randomly",
        "-s",
        *options,
    )


def line(result: pytest.RunResult, tag: str) -> str:
    return result.stdout.str().split(f"{tag} ", 1)[1].split("\n", 1)[0]


def test_a_saved_probe_reads_back_as_the_same_readout(project: pytest.Pytester) -> None:
    saved = project.path / "probes" / "probe.safetensors"
    fitted = run(project, f"--sslrobust-save-probe={saved}")
    fitted.assert_outcomes(passed=1)
    head = HeadFile.read(saved)
    assert head.classes == tuple(DIGITS) and head.weight.shape == (10, 512)

    # A warm run reads its predictions from the cache and still writes the file it was asked for.
    saved.unlink()
    run(project, f"--sslrobust-save-probe={saved}").assert_outcomes(passed=1)
    assert HeadFile.read(saved).sha256 == head.sha256

    read = run(project, f"--sslrobust-head={saved}")
    read.assert_outcomes(passed=1)
    assert "'head_sha256'" in line(read, "PARAMS") and "'C'" not in line(read, "PARAMS")
    assert line(read, "PREDICTIONS") == line(fitted, "PREDICTIONS")


def test_head_rows_are_matched_to_the_data_by_class_name(project: pytest.Pytester) -> None:
    # Rows in reverse order: predictions must come back in the data's label indices.
    saved = project.path / "probe.safetensors"
    fitted = run(project, f"--sslrobust-save-probe={saved}")
    head = HeadFile.read(saved)
    reversed_head = project.path / "reversed.safetensors"
    save_file(
        {"weight": head.weight.flip(0).contiguous(), "bias": head.bias.flip(0).contiguous()},
        str(reversed_head),
        metadata={"classes": json.dumps(list(reversed(head.classes)))},
    )
    read = run(project, f"--sslrobust-head={reversed_head}")
    read.assert_outcomes(passed=1)
    assert line(read, "PREDICTIONS") == line(fitted, "PREDICTIONS")


@pytest.mark.parametrize(
    ("rows", "dim", "classes", "message"),
    [
        (10, 64, None, "*takes 64-dim features, but the backbone gives 512*"),
        (
            2,
            512,
            ["0", "cat"],
            "*predicts 1 class(es) that bundled:textured-digits does not have ('cat')*",
        ),
    ],
)
def test_a_head_that_does_not_fit_is_one_line(project, rows, dim, classes, message) -> None:
    head = write_head(project.path / "head.safetensors", rows, dim, classes)
    result = run(project, f"--sslrobust-head={head}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])


def test_bad_head_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(HeadError, match="cannot read it as safetensors"):
        HeadFile.read(tmp_path / "junk.safetensors")
    save_file({"weight": torch.zeros(2, 3)}, str(tmp_path / "nobias.safetensors"))
    with pytest.raises(HeadError, match="no tensor 'bias'"):
        HeadFile.read(tmp_path / "nobias.safetensors")
    save_file({"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, str(tmp_path / "n.st"))
    with pytest.raises(HeadError, match="metadata 'classes'"):
        HeadFile.read(tmp_path / "n.st")
    write_head(tmp_path / "short.st", 3, 4, ["a", "b"])
    with pytest.raises(HeadError, match="3 rows but 2 class names"):
        HeadFile.read(tmp_path / "short.st")
