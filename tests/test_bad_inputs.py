"""Bad input gets one clear line naming the thing and the fix, printed once.

The table is the bad inputs of the hardening issue that reach the plugin from a command line
or a test (paths, names, variant ids, weights, hubs, tiny or small data, tolerances); each
row gives the arguments, the test file, the exit code and a fragment of the message. The
usage errors of the options themselves are tabled in ``test_options.py``; degenerate metric
inputs (CKA at n = 2, a probe on constant features, ...) in
``test_metric_degenerate_inputs.py``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

LONG = "a" * 300

ONE_FEATURES_TEST = """
def test_features(sslrobust):
    assert sslrobust.features().features.shape[0] > 0
"""

TWO_FEATURES_TESTS = """
def test_first(sslrobust):
    sslrobust.features()

def test_second(sslrobust):
    sslrobust.features()

def test_third(sslrobust_backbone):
    pass
"""

VARIANT_TEST = """
def test_variant(sslrobust):
    sslrobust.features("nonsense-x")
"""

PROBE_TEST = """
def test_probe(sslrobust):
    assert sslrobust.predictions("original", readout="linear-probe").shape[0] > 0
"""


@dataclasses.dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    fragment: str
    ret: int
    test: str = ONE_FEATURES_TEST
    env: tuple[tuple[str, str], ...] = ()


def _photos(folder: Path, per_class: int, size: int = 40, classes: int = 2) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{i}.png")


CASES = {
    "model-path-of-unknown-user": Case(
        ("--sslrobust-model=file:~nosuchuser/w.safetensors", "--sslrobust-arch=resnet18"),
        "the home directory of user 'nosuchuser' is unknown on this machine; write the path",
        pytest.ExitCode.USAGE_ERROR,
    ),
    "cache-dir-of-unknown-user": Case(
        ("--sslrobust-cache-dir=~nosuchuser/cache",),
        "the home directory of user 'nosuchuser' is unknown",
        pytest.ExitCode.USAGE_ERROR,
    ),
    "data-path-of-unknown-user": Case(
        ("--sslrobust-data=imagefolder:~nosuchuser/photos",),
        "the home directory of user 'nosuchuser' is unknown",
        pytest.ExitCode.USAGE_ERROR,
    ),
    "report-name-over-255-bytes": Case(
        (f"--sslrobust-report={LONG}.html",),
        "is 305 bytes long, more than file systems allow (255); choose a shorter name",
        pytest.ExitCode.USAGE_ERROR,
    ),
    "json-folder-over-255-bytes": Case(
        (f"--sslrobust-json={LONG}/results.json",),
        "is 300 bytes long, more than file systems allow (255)",
        pytest.ExitCode.USAGE_ERROR,
    ),
    "misspelt-compare-fail-metric": Case(
        ("--sslrobust-compare={tmp}/baseline.json", "--sslrobust-compare-fail=mcee:+1.0"),
        "no contract records the metric 'mcee'; did you mean 'mce'?",
        pytest.ExitCode.USAGE_ERROR,
    ),
    "unknown-variant-id": Case(
        ("--sslrobust-model=bundled-supervised", "--sslrobust-max-images=4"),
        "sslrobust: unknown variant 'nonsense-x': expected original, CORRUPTION-sN",
        pytest.ExitCode.TESTS_FAILED,
        test=VARIANT_TEST,
    ),
    "corrupt-safetensors-weights": Case(
        ("--sslrobust-model=file:{tmp}/corrupt.safetensors", "--sslrobust-arch=resnet18"),
        "cannot read {tmp}/corrupt.safetensors as .safetensors: Error while deserializing",
        pytest.ExitCode.TESTS_FAILED,
        test=TWO_FEATURES_TESTS,
    ),
    "offline-hub-without-cached-weights": Case(
        ("--sslrobust-model=dinov2",),
        "which are not in the local Hugging Face cache, and HF_HUB_OFFLINE is set; download "
        "them where there is network (hf download timm/vit_small_patch14_dinov2.lvd142m)",
        pytest.ExitCode.TESTS_FAILED,
        test=TWO_FEATURES_TESTS,
        env=(("HF_HUB_OFFLINE", "1"), ("HF_HOME", "{tmp}/hf-home")),
    ),
    "folder-too-small-for-a-test-split": Case(
        ("--sslrobust-model=bundled-supervised", "--sslrobust-data=imagefolder:{tmp}/two"),
        "dataset 'imagefolder:{tmp}/two': the 'test' split holds no images (splits: train 2, "
        "test 0",
        pytest.ExitCode.TESTS_FAILED,
    ),
    "tiny-folder-warns-about-evaluated-images": Case(
        ("--sslrobust-model=bundled-supervised", "--sslrobust-data=imagefolder:{tmp}/twenty"),
        "images of 'imagefolder:{tmp}/twenty' are evaluated (the split has 6); intervals, "
        "CKA/CCA and accuracies on fewer than 30",
        pytest.ExitCode.OK,
        test=PROBE_TEST,
    ),
    "small-images-are-upscaled-with-a-warning": Case(
        ("--sslrobust-model=bundled-supervised", "--sslrobust-data=imagefolder:{tmp}/twenty"),
        "of 'imagefolder:{tmp}/twenty' are smaller than bundled-supervised's 64 px input and "
        "were upscaled",
        pytest.ExitCode.OK,
    ),
}


@pytest.fixture
def workspace(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The subprocesses import this checkout's plugin, whichever copy is installed.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    tmp = pytester.path
    (tmp / "corrupt.safetensors").write_bytes(np.random.default_rng(0).bytes(100))
    _photos(tmp / "two", per_class=1)
    _photos(tmp / "twenty", per_class=10, size=40)
    (tmp / "baseline.json").write_text("{}")
    return tmp


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_gets_one_clear_line(
    pytester: pytest.Pytester, workspace: Path, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    tmp = str(workspace)
    for name, value in case.env:
        monkeypatch.setenv(name, value.replace("{tmp}", tmp))
    pytester.makepyfile(test_input=case.test)
    args = [arg.replace("{tmp}", tmp) for arg in case.args]
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "-rN",
        f"--sslrobust-cache-dir={tmp}/cache", *args,
    )  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    fragment = case.fragment.replace("{tmp}", tmp)
    assert result.ret == case.ret, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    assert "During handling of the above exception" not in output, output
    assert output.count(fragment) == 1, output


def test_a_model_that_fails_to_load_is_explained_once_and_tried_once(
    pytester: pytest.Pytester, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later tests point at the first one; through ``sslrobust_models`` too, where the
    loading is not a cached session fixture and would otherwise be retried per test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(workspace / "hf-home"))
    pytester.makepyfile(
        test_models="""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_through_models(sslrobust_models, n):
            sslrobust_models["dinov2"].features()
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "-rN", "--sslrobust-model=dinov2",
        f"--sslrobust-cache-dir={workspace}/cache",
    )  # fmt: skip
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert output.count("HF_HUB_OFFLINE is set") == 1, output
    first = "test_models.py::test_through_models[0]"
    pointer = f"sslrobust: could not load model 'dinov2'; the reason was given once, at {first}"
    assert output.count(pointer) == 2, output


def test_warnings_about_small_data_are_given_once_per_dataset(
    pytester: pytest.Pytester, workspace: Path
) -> None:
    pytester.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("variant", ["original", "gaussian_noise-s1", "center"])
        def test_variant(sslrobust, variant):
            sslrobust.features(variant)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "--sslrobust-model=bundled-supervised",
        f"--sslrobust-data=imagefolder:{workspace}/twenty", f"--sslrobust-cache-dir={workspace}/c",
    )  # fmt: skip
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, output
    assert output.count("are evaluated (the split has 6)") == 1, output
    assert output.count("were upscaled") == 1, output


def test_a_probe_on_too_few_images_per_class_warns(
    pytester: pytest.Pytester, workspace: Path
) -> None:
    pytester.makepyfile(test_input=PROBE_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "--sslrobust-model=bundled-supervised",
        "--sslrobust-data=bundled:textured-digits", "--sslrobust-max-images=30",
        f"--sslrobust-cache-dir={workspace}/c",
    )  # fmt: skip
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, output
    assert "the linear-probe readout is fitted on 30 'train' images" in output, output
    assert "the smallest with 3; below 5 per class" in output, output


def test_paths_helper_refuses_with_value_errors() -> None:
    from pytest_sslrobust.paths import user_path

    assert user_path("~") == Path(os.path.expanduser("~"))
    with pytest.raises(ValueError, match="home directory of user 'nosuchuser' is unknown"):
        user_path("~nosuchuser/x")
    with pytest.raises(ValueError, match="300 bytes long"):
        user_path(f"/tmp/{LONG}")
    assert user_path("é" * 127) == Path("é" * 127)  # 254 bytes: allowed
    with pytest.raises(ValueError, match="256 bytes long"):
        user_path("é" * 128)
