"""The release gate of docs/gating-in-ci.md, run as documented on two weight files."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "gating-in-ci.md"
# The documented runs use a DINOv2 ViT; the same commands on timm's tiny test_resnet keep
# this test within a CPU's budget. Nothing else in the commands is changed.
DOC_ARCH = "vit_small_patch14_dinov2"
ARCH = "test_resnet"

SUITE = """
from pytest_sslrobust import (
    assert_accuracy_above,
    assert_accuracy_drop_below,
    assert_balanced_accuracy_above,
)


def test_clean_accuracy(sslrobust):
    test = sslrobust.features("original", split="test")
    predictions = sslrobust.predictions("original", readout="linear-probe")
    assert_balanced_accuracy_above(predictions, 0.0, labels=test)
    assert_accuracy_above(predictions, test, 0.0)


def test_noise_drop(sslrobust):
    clean = sslrobust.predictions("original", readout="linear-probe")
    noisy = sslrobust.predictions("gaussian_noise-s1", readout="linear-probe")
    assert_accuracy_drop_below(clean, noisy, 1.0, labels=sslrobust.features("original"))
"""


def documented_runs() -> list[list[str]]:
    """The arguments of the two pytest commands of the page's numbered steps, in order."""
    text = DOC.read_text(encoding="utf-8")
    steps = text.split("## GitHub Actions")[0]
    runs = []
    for block in re.findall(r"```bash\n(.*?)```", steps, flags=re.S):
        command = re.sub(r"\\\n\s*", " ", block)
        for line in command.splitlines():
            words = shlex.split(line)
            if words[:1] == ["pytest"]:
                runs.append([word.replace(DOC_ARCH, ARCH) for word in words[1:]])
    return runs


def write_weights(path: Path, *, broken: bool) -> None:
    """The bundled supervised ResNet's weights; ``broken`` replaces the convolutions of its last
    three stages by seeded noise of the same scale (features still vary: a probe on constant
    features is refused rather than scored, so zeroed weights would not reach the gate)."""
    import torch
    from safetensors.torch import load_file, save_file

    import pytest_sslrobust.backbones

    source = Path(pytest_sslrobust.backbones.__file__).parent / "weights"
    weights = load_file(str(source / "bundled-supervised.safetensors"))
    if broken:
        generator = torch.Generator().manual_seed(0)
        for name, tensor in weights.items():
            if name.startswith(("layer2.", "layer3.", "layer4.")) and ".conv" in name:
                noise = torch.randn(tensor.shape, generator=generator)
                tensor.copy_(noise * tensor.std())
    save_file(weights, str(path))


def test_documented_flow_fails_a_regressed_candidate(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The subprocesses import this checkout's plugin, whichever copy is installed.
    monkeypatch.setenv("PYTHONPATH", str(DOC.parents[1]))
    release, candidate = documented_runs()
    assert any(arg.startswith("--sslrobust-save=") for arg in release), release
    assert any(arg.startswith("--sslrobust-compare-fail=") for arg in candidate), candidate
    pytester.makepyfile(**{"robustness/test_contracts": SUITE})
    write_weights(pytester.path / "release-1.4.safetensors", broken=False)
    small = ["-p", "no:randomly", "--sslrobust-max-images=100", "--sslrobust-severities=1"]
    saved = pytester.runpytest_subprocess(*release, *small)
    saved.assert_outcomes(passed=2)
    assert (pytester.path / "baselines" / "release.json").is_file()

    # The same weights under the candidate's name: every result is compared, none fails.
    write_weights(pytester.path / "candidate.safetensors", broken=False)
    same = pytester.runpytest_subprocess(*candidate, *small)
    assert same.ret == pytest.ExitCode.OK, same.stdout.str()
    same.stdout.fnmatch_lines(["*compared with baselines/release.json: 3 unchanged*"])

    # A candidate whose convolutions are noise reads far worse: the gate must fail on it.
    write_weights(pytester.path / "candidate.safetensors", broken=True)
    broken = pytester.runpytest_subprocess(*candidate, *small)
    broken.assert_outcomes(passed=2)  # its own contracts are lax; the baseline is not
    assert broken.ret == pytest.ExitCode.TESTS_FAILED
    broken.stdout.fnmatch_lines(
        [
            "compared with baselines/release.json: 2 regression, 1 improved",
            "*regression*accuracy[[]candidate[]]::accuracy*paired: * images became wrong*wrong now: *",
            "*regression*accuracy[[]candidate[]]::balanced_accuracy*0.55*release-1.4*",
            "*sslrobust gate FAILED: * regression(s)*",
        ]
    )
    assert (pytester.path / "out" / "junit.xml").is_file()
