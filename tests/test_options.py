"""Command-line options, ini keys, usage errors, header, summary and hooks of the plugin.

Every test drives a throwaway project through ``pytester``. None loads the real default
model: tests that need a backbone use the seeded random ResNet-18 on a 20-image subset.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

OPTION_FLAGS = (
    "--sslrobust-model",
    "--sslrobust-arch",
    "--sslrobust-data",
    "--sslrobust-device",
    "--sslrobust-batch-size",
    "--sslrobust-max-images",
    "--sslrobust-seed",
    "--sslrobust-cache-dir",
    "--sslrobust-cache-clear",
    "--sslrobust-no-cache",
)
INI_KEYS = tuple(
    "sslrobust_" + flag[len("--sslrobust-") :].replace("-", "_") for flag in OPTION_FLAGS
)


@pytest.fixture(scope="module", autouse=True)
def preloaded_heavy_modules() -> None:
    """Import torch and friends before ``pytester`` snapshots ``sys.modules``.

    In-process runs drop the modules they imported when they end; torch does not survive
    being imported a second time in one process (it crashes), so it must already be there.
    Keeping the data and backbone modules also keeps their in-memory caches across runs.
    """
    import importlib

    for name in (
        "torch",
        "torchvision",
        "timm",
        "safetensors.torch",
        "sklearn.datasets",
        "skimage.data",
        "skimage.transform",
        "pytest_sslrobust.backbones.loading",
        "pytest_sslrobust.data.bundled",
        "pytest_sslrobust.data.sources",
        "pytest_sslrobust.features.cache",
        "pytest_sslrobust.features.extract",
        "pytest_sslrobust.features.store",
    ):
        importlib.import_module(name)


def fast_args(pytester: pytest.Pytester, *extra: str) -> list[str]:
    """Options for a quick run: the random ResNet-18 on CPU, 20 images, a private cache."""
    return [
        "--sslrobust-model=random-resnet18",
        "--sslrobust-device=cpu",
        "--sslrobust-max-images=20",
        f"--sslrobust-cache-dir={pytester.path / 'sslrobust-cache'}",
        *extra,
    ]


def output_of(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def assert_usage_error(result: pytest.RunResult, pattern: str) -> None:
    """Exit code 4, the message on one line of stderr, and no Python traceback."""
    output = output_of(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    result.stderr.fnmatch_lines([pattern])


# --- 1. help and import cost ---------------------------------------------------------


def test_help_lists_every_option_in_one_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    lines = result.stdout.lines
    title = "robustness of vision backbones (pytest-sslrobust):"
    start = lines.index(title)
    # The group runs until the next blank line; every flag must be inside it.
    end = lines.index("", start)
    group = "\n".join(lines[start:end])
    for flag in OPTION_FLAGS:
        assert f"  {flag}" in group, f"{flag} missing from the sslrobust group"
    outside = "\n".join(lines[:start] + lines[end:])
    for flag in OPTION_FLAGS:
        assert f"  {flag}" not in outside
    # The ini keys are listed too.
    result.stdout.fnmatch_lines([f"  {key} *" for key in INI_KEYS], consecutive=False)


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, pytest_sslrobust.plugin; print('torch' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert completed.stdout.strip() == "False", completed.stdout + completed.stderr


# --- 2. usage errors -------------------------------------------------------------------

USAGE_ERRORS = [
    pytest.param(
        ["--sslrobust-device=gpu"],
        "*argument --sslrobust-device: Could not parse device 'gpu': expected auto, cpu, cuda*",
        id="bad-device",
    ),
    pytest.param(
        ["--sslrobust-batch-size=0"],
        "*argument --sslrobust-batch-size: Could not parse batch size '0': expected a whole number >= 1",
        id="batch-size-zero",
    ),
    pytest.param(
        ["--sslrobust-batch-size=abc"],
        "*argument --sslrobust-batch-size: Could not parse batch size 'abc'*",
        id="batch-size-text",
    ),
    pytest.param(
        ["--sslrobust-seed=-1"],
        "*argument --sslrobust-seed: Could not parse seed '-1': expected a whole number >= 0",
        id="negative-seed",
    ),
    pytest.param(
        ["--sslrobust-max-images=0"],
        "*argument --sslrobust-max-images: Could not parse max images '0'*",
        id="max-images-zero",
    ),
    pytest.param(
        ["--sslrobust-model=no-such-model"],
        "ERROR: Unknown model 'no-such-model': expected an alias (*efficientnet-lite0*random-resnet18*)*",
        id="unknown-alias",
    ),
    pytest.param(
        ["--sslrobust-model=a,,b"],
        "*argument --sslrobust-model: Could not parse model list 'a,,b'*no empty entry",
        id="empty-model-entry",
    ),
    pytest.param(
        ["--sslrobust-model=random-resnet18,random-resnet18"],
        "*Could not parse model list*: random-resnet18 given more than once",
        id="duplicated-model",
    ),
    pytest.param(
        ["--sslrobust-model=file:{tmp}/missing.safetensors", "--sslrobust-arch=resnet18"],
        "ERROR: model 'file:*missing.safetensors': no such file *",
        id="file-model-missing",
    ),
    pytest.param(
        ["--sslrobust-model=file:{tmp}/weights.safetensors"],
        "ERROR: file:*weights.safetensors needs --sslrobust-arch=TIMM_NAME*",
        id="file-model-without-arch",
    ),
    pytest.param(
        ["--sslrobust-arch=resnet18"],
        "ERROR: --sslrobust-arch applies only to file: models*",
        id="arch-without-file-model",
    ),
    pytest.param(
        ["--sslrobust-model=file:{tmp}/weights.safetensors", "--sslrobust-arch=resnet18:heads"],
        "*argument --sslrobust-arch: Could not parse architecture 'resnet18:heads': setting "
        "'heads' is not key=value",
        id="arch-setting-without-value",
    ),
    pytest.param(
        ["--sslrobust-image-size=8"],
        "*argument --sslrobust-image-size: Could not parse image size '8': expected a whole "
        "number >= 16",
        id="image-size-too-small",
    ),
    pytest.param(
        ["--sslrobust-model=swav"],
        "ERROR: model 'swav' is the authors' released file (swav_800ep_pretrain.pth.tar*); "
        "download it and pass --sslrobust-model=swav=file:PATH",
        id="released-file-alias-without-path",
    ),
    pytest.param(
        ["--sslrobust-model=swav=file:{tmp}/weights.safetensors", "--sslrobust-arch=resnet50"],
        "ERROR: --sslrobust-arch applies only to file: models without an alias*",
        id="arch-with-alias-file-model",
    ),
    pytest.param(
        [
            "--sslrobust-model=file:{tmp}/weights.safetensors@contrastiv",
            "--sslrobust-arch=resnet18",
        ],
        "ERROR: Could not parse model *: unknown paradigm 'contrastiv' after '@'; expected one "
        "of contrastive, distillation, *",
        id="unknown-paradigm",
    ),
    pytest.param(
        ["--sslrobust-reference-model=bundled-supervised,bundled-simclr"],
        "*argument --sslrobust-reference-model: Could not parse reference model *: give one "
        "model spec",
        id="two-reference-models",
    ),
    pytest.param(
        ["--sslrobust-head={tmp}/no-head.safetensors"],
        "*argument --sslrobust-head: Could not read '*no-head.safetensors': it does not exist",
        id="head-file-missing",
    ),
    pytest.param(
        ["--sslrobust-train-per-class=0"],
        "*argument --sslrobust-train-per-class: *",
        id="train-per-class-zero",
    ),
    pytest.param(
        ["--sslrobust-data=zip:{tmp}"],
        "*argument --sslrobust-data: Could not parse data spec 'zip:*': expected one of bundled:*",
        id="unknown-data-scheme",
    ),
    pytest.param(
        ["--sslrobust-data=imagefolder:{tmp}/nowhere"],
        "*argument --sslrobust-data: data spec 'imagefolder:*nowhere': path '*nowhere' does not exist",
        id="data-path-missing",
    ),
    pytest.param(
        ["--sslrobust-data=imagefolder:{tmp}/images,foo=1"],
        "*argument --sslrobust-data: data spec *: unknown option 'foo' for imagefolder*masks*",
        id="unknown-data-option",
    ),
    pytest.param(
        ["--sslrobust-data=imagenet-c:{tmp}/images"],
        "*argument --sslrobust-data: data spec *: imagenet-c: needs clean=PATH",
        id="imagenet-c-without-clean",
    ),
    pytest.param(
        ["--sslrobust-data=bundled:no-such-set"],
        "*argument --sslrobust-data: data spec *: no bundled dataset 'no-such-set'*textured-digits*",
        id="unknown-bundled-dataset",
    ),
    pytest.param(
        ["--sslrobust-cache-clear", "--sslrobust-no-cache"],
        "ERROR: --sslrobust-cache-clear and --sslrobust-no-cache contradict each other*",
        id="cache-clear-with-no-cache",
    ),
]


@pytest.mark.parametrize(("args", "pattern"), USAGE_ERRORS)
def test_usage_errors(pytester: pytest.Pytester, args: list[str], pattern: str) -> None:
    (pytester.path / "images").mkdir()
    (pytester.path / "weights.safetensors").write_bytes(b"not really weights")
    pytester.makepyfile("def test_never_runs():\n    raise AssertionError('collected')\n")
    result = pytester.runpytest(*(arg.format(tmp=pytester.path) for arg in args))
    assert_usage_error(result, pattern)
    assert "test_never_runs" not in output_of(result)


# --- 3. ini keys ---------------------------------------------------------------------


def test_every_option_works_as_an_ini_key(pytester: pytest.Pytester) -> None:
    weights = pytester.path / "weights.safetensors"
    weights.write_bytes(b"unused: settings only")
    images = pytester.path / "images"
    images.mkdir()
    cache = pytester.path / "my-cache"
    stale = cache / "ab" / ("ab" + "0" * 62 + ".safetensors")
    stale.parent.mkdir(parents=True)
    stale.write_text("cleared by sslrobust_cache_clear")
    pytester.makeini(
        f"""
        [pytest]
        sslrobust_model = file:{weights}
        sslrobust_arch = resnet18
        sslrobust_data = imagefolder:{images}
        sslrobust_device = cpu
        sslrobust_batch_size = 7
        sslrobust_max_images = 11
        sslrobust_seed = 3
        sslrobust_cache_dir = {cache}
        sslrobust_cache_clear = true
        """
    )
    pytester.makepyfile(
        f"""
        from pathlib import Path

        def test_settings(sslrobust_settings):
            s = sslrobust_settings
            assert s.model == ({f"file:{weights}"!r},)
            assert s.arch == "resnet18"
            assert s.data == {f"imagefolder:{images}"!r}
            assert s.device == "cpu"
            assert s.batch_size == 7
            assert s.max_images == 11
            assert s.seed == 3
            assert s.cache_dir == Path({str(cache)!r})
            assert s.cache_clear is True
            assert s.no_cache is False
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    # cache_clear did its job: the directory is there, the old entry is gone.
    assert cache.is_dir()
    assert not stale.exists()


def test_no_cache_ini_key(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        sslrobust_model = random-resnet18
        sslrobust_no_cache = true
        """
    )
    pytester.makepyfile(
        """
        def test_settings(sslrobust_settings):
            assert sslrobust_settings.no_cache is True
            assert sslrobust_settings.cache_dir is None
            assert sslrobust_settings.model == ("random-resnet18",)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["sslrobust: cache=off"])


BAD_INI_VALUES = [
    ("sslrobust_seed = -1", "ERROR: ini key sslrobust_seed: Could not parse seed '-1'*"),
    ("sslrobust_device = gpu", "ERROR: ini key sslrobust_device: Could not parse device 'gpu'*"),
    (
        "sslrobust_batch_size = many",
        "ERROR: ini key sslrobust_batch_size: Could not parse batch size 'many'*",
    ),
    (
        "sslrobust_max_images = 0",
        "ERROR: ini key sslrobust_max_images: Could not parse max images '0'*",
    ),
    ("sslrobust_model = a,,b", "ERROR: ini key sslrobust_model: Could not parse model list*"),
    ("sslrobust_data = zip:x", "ERROR: ini key sslrobust_data: Could not parse data spec*"),
    ("sslrobust_no_cache = maybe", "ERROR: ini key sslrobust_no_cache: *'maybe'*"),
    ("sslrobust_cache_clear = sometimes", "ERROR: ini key sslrobust_cache_clear: *'sometimes'*"),
]


@pytest.mark.parametrize(
    ("line", "pattern"),
    BAD_INI_VALUES,
    ids=[line.split(" =")[0] for line, _ in BAD_INI_VALUES],
)
def test_bad_ini_value_is_a_usage_error_naming_the_key(
    pytester: pytest.Pytester, line: str, pattern: str
) -> None:
    pytester.makeini(f"[pytest]\n{line}\n")
    pytester.makepyfile("def test_never_runs():\n    pass\n")
    result = pytester.runpytest()
    assert_usage_error(result, pattern)


def test_command_line_wins_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        sslrobust_model = random-resnet18
        sslrobust_seed = 3
        sslrobust_max_images = 11
        sslrobust_device = cpu
        sslrobust_batch_size = not-a-number
        """
    )
    pytester.makepyfile(
        """
        def test_settings(sslrobust_settings):
            # Zero is a real value: it must not fall back to the ini's 3.
            assert sslrobust_settings.seed == 0
            assert sslrobust_settings.max_images == 5
            assert sslrobust_settings.batch_size == 4
            # Not given on the command line: the ini value stays.
            assert sslrobust_settings.device == "cpu"
            assert sslrobust_settings.model == ("random-resnet18",)
        """
    )
    # The bad ini batch size is never read, because the command line gives one.
    result = pytester.runpytest(
        "--sslrobust-seed=0", "--sslrobust-max-images=5", "--sslrobust-batch-size=4"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["sslrobust: model=random-resnet18 * images=<= 5 per split seed=0"])


# --- 4. report header ------------------------------------------------------------------


def test_report_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest(
        "--sslrobust-model=random-resnet18",
        "--sslrobust-device=cpu",
        "--sslrobust-max-images=20",
        "--sslrobust-seed=4",
        "--sslrobust-no-cache",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "sslrobust: model=random-resnet18 data=bundled:textured-digits device=cpu "
            "images=<= 20 per split seed=4",
            "sslrobust: cache=off",
        ]
    )
    # Nothing asked for features, so there is no sslrobust summary section.
    assert "feature sets:" not in result.stdout.str()


# --- 5. several models, and aliases registered by a conftest hook --------------------


def test_models_parametrize_and_conftest_registers_an_alias(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_sslrobust.backbones import registry

    # The in-process run registers into this process's registry: undo it afterwards.
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    pytester.makeconftest(
        """
        from pytest_sslrobust import BackboneAlias

        def pytest_sslrobust_register_backbones(register):
            register(BackboneAlias("tiny-b", "resnet18", weights="random", input_size=32))
        """
    )
    pytester.makepyfile(
        """
        def test_x(sslrobust_backbone):
            sizes = {"random-resnet18": 64, "tiny-b": 32}
            assert sslrobust_backbone.preprocessing.input_size == sizes[sslrobust_backbone.name]
        """
    )
    result = pytester.runpytest(
        "-v", *fast_args(pytester, "--sslrobust-model=random-resnet18,tiny-b")
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "sslrobust: model=random-resnet18,tiny-b *",
            "*::test_x[[]random-resnet18] PASSED*",
            "*::test_x[[]tiny-b] PASSED*",
        ]
    )


def test_alias_unknown_without_the_registering_conftest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_never_runs():\n    pass\n")
    result = pytester.runpytest("--sslrobust-model=random-resnet18,tiny-b")
    assert_usage_error(result, "ERROR: Unknown model 'tiny-b'*")


# --- 6. the facade end to end, and the disk cache across sessions ----------------------

FACADE_TEST = """
def test_facade(sslrobust):
    fs = sslrobust.features("original", split="test")
    assert len(fs) == 20
    assert fs.features.ndim == 2 and fs.features.shape[0] == 20
    assert fs.labels.shape == (20,)
    assert fs.ids == sslrobust.items("test").ids
    assert sslrobust.backbone.name == "random-resnet18"
"""


def test_facade_features_and_cache_across_sessions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FACADE_TEST)
    cache = pytester.path / "sslrobust-cache"

    first = pytester.runpytest(*fast_args(pytester))
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(
        [
            "*feature sets: 1 computed, 0 memory hits, 0 disk hits*forward passes: 1 batches, 20 images"
        ]
    )
    assert len(list(cache.rglob("*.safetensors"))) == 1

    second = pytester.runpytest(*fast_args(pytester))
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(
        [
            "*feature sets: 0 computed, 0 memory hits, 1 disk hits*forward passes: 0 batches, 0 images"
        ]
    )


def test_no_cache_neither_reads_nor_writes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FACADE_TEST)
    cache = pytester.path / "sslrobust-cache"
    for _ in range(2):
        result = pytester.runpytest(*fast_args(pytester, "--sslrobust-no-cache"))
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*feature sets: 1 computed, 0 memory hits, 0 disk hits*"])
    assert not list(cache.rglob("*.safetensors"))


# --- 7. the max-images subset -----------------------------------------------------------


def test_max_images_subset_is_stratified_and_deterministic(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import json, os

        def test_write_ids(sslrobust):
            chosen = sslrobust.items("test")
            with open(os.environ["SSLROBUST_IDS_OUT"], "w") as handle:
                json.dump({"ids": list(chosen.ids), "labels": [int(v) for v in chosen.labels]}, handle)
        """
    )

    def subset(name: str, *extra: str) -> dict[str, list]:
        out = pytester.path / f"{name}.json"
        monkeypatch.setenv("SSLROBUST_IDS_OUT", str(out))
        pytester.runpytest(*fast_args(pytester, "--sslrobust-no-cache", *extra)).assert_outcomes(
            passed=1
        )
        return json.loads(out.read_text())

    first = subset("first")
    again = subset("again")
    explicit_zero = subset("zero", "--sslrobust-seed=0")
    other_seed = subset("other", "--sslrobust-seed=1")

    assert len(first["ids"]) == 20
    assert len(set(first["ids"])) == 20
    assert first == again == explicit_zero
    assert set(other_seed["ids"]) != set(first["ids"])
    for chosen in (first, other_seed):
        # Stratified: all ten digit classes, each with an equal share (20 / 10).
        counts = {label: chosen["labels"].count(label) for label in set(chosen["labels"])}
        assert sorted(counts) == list(range(10))
        assert set(counts.values()) == {2}


# --- 8. a device that is not there ---------------------------------------------------


def test_cuda_device_without_cuda_fails_with_a_message(pytester: pytest.Pytester) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    pytester.makepyfile("def test_x(sslrobust_backbone):\n    pass\n")
    # The later --sslrobust-device wins over fast_args' cpu.
    result = pytester.runpytest(*fast_args(pytester, "--sslrobust-device=cuda"))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--sslrobust-device=cuda: CUDA is not available*"])
    output = output_of(result)
    assert "Traceback" not in output
    assert "session.py" not in output
    assert "def device" not in output


def test_settings_fields_and_defaults_come_from_the_options_table() -> None:
    import dataclasses

    from pytest_sslrobust.settings import OPTIONS, Settings

    fields = {field.name: field.default for field in dataclasses.fields(Settings)}
    assert list(fields) == [option.name for option in OPTIONS]
    assert fields == {option.name: option.default for option in OPTIONS}
