"""The frozen run settings, built once from options and ini keys."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_sslrobust.paths import is_url, user_path
from pytest_sslrobust.vocabulary import (
    BACKENDS,
    PROTOCOLS,
    VariantError,
    parse_corruptions,
    parse_severities,
)

DEFAULT_MODEL = "efficientnet-lite0"
DEFAULT_DATA = "bundled:textured-digits"
# The generalisability study's far target: other objects on photographs the digits do not use.
DEFAULT_FAR_DATA = "bundled:textured-shapes"
DEFAULT_BATCH_SIZE = 32
DEFAULT_SEED = 0

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+(,\d+)*)?)$")


def parse_models(value: str) -> tuple[str, ...]:
    """Split ``a,b,c`` into model specs, refusing empty and repeated entries."""
    specs = tuple(part.strip() for part in value.split(","))
    if not value.strip() or any(not spec for spec in specs):
        raise argparse.ArgumentTypeError(
            f"Could not parse model list {value!r}: expected SPEC[,SPEC...] with no empty entry"
        )
    repeated = sorted({spec for spec in specs if specs.count(spec) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(
            f"Could not parse model list {value!r}: {', '.join(repeated)} given more than once"
        )
    return specs


def parse_reference_model(value: str) -> str:
    """One model spec, checked like ``--sslrobust-model``'s."""
    from pytest_sslrobust.backbones.registry import validate_spec

    specs = parse_models(value)
    if len(specs) != 1:
        raise argparse.ArgumentTypeError(
            f"Could not parse reference model {value!r}: give one model spec"
        )
    spec = specs[0]
    problem = validate_spec(spec)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return spec


def parse_device(value: str) -> str:
    """Accept ``auto``, ``cpu``, ``mps``, ``cuda``, ``cuda:N`` or ``cuda:N,M,...`` (the GPUs
    xdist workers take in turn)."""
    text = value.strip().lower().replace(" ", "")
    if not _DEVICE_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"Could not parse device {value!r}: expected auto, cpu, cuda, cuda:N, "
            "cuda:N,M,... or mps"
        )
    return text


def _integer(value: str, what: str, minimum: int) -> int:
    try:
        number: int | None = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise argparse.ArgumentTypeError(
            f"Could not parse {what} {value!r}: expected a whole number >= {minimum}"
        )
    return number


def parse_arch_option(value: str) -> str:
    """Accept ``TIMM_NAME[:key=value,...]`` (checked here, parsed again where it is used)."""
    from pytest_sslrobust.backbones.registry import SpecError, parse_arch

    try:
        parse_arch(value)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value.strip()


def parse_image_size(value: str) -> int:
    return _integer(value, "image size", 16)


def parse_batch_size(value: str) -> int:
    return _integer(value, "batch size", 1)


def parse_max_images(value: str) -> int:
    return _integer(value, "max images", 1)


def parse_train_per_class(value: str) -> int:
    return _integer(value, "train images per class", 1)


def parse_seed(value: str) -> int:
    return _integer(value, "seed", 0)


def parse_data(value: str) -> str:
    """Check a data spec's syntax and that its paths exist; loading happens later."""
    from pytest_sslrobust.data.specs import validate_data_spec

    problem = validate_data_spec(value.strip())
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value.strip()


def parse_corruption_list(value: str) -> tuple[str, ...]:
    """Corruption names and groups (``common``, ``noise,fog``) -> names."""
    try:
        return parse_corruptions(value)
    except VariantError as exc:
        raise argparse.ArgumentTypeError(f"Could not parse corruptions {value!r}: {exc}") from None


def parse_severity_list(value: str) -> tuple[int, ...]:
    """``1-5``, ``1,3`` -> severities."""
    try:
        return parse_severities(value)
    except VariantError as exc:
        raise argparse.ArgumentTypeError(f"Could not parse severities {value!r}: {exc}") from None


PROBE_CV_SCOPES = ("test", "all")


def parse_probe_cv(value: str) -> str:
    text = value.strip()
    if text not in PROBE_CV_SCOPES:
        raise argparse.ArgumentTypeError(
            f"Could not parse probe cross-validation scope {value!r}: expected "
            f"{' or '.join(PROBE_CV_SCOPES)}"
        )
    return text


def parse_protocol(value: str) -> str:
    text = value.strip()
    if text not in PROTOCOLS:
        raise argparse.ArgumentTypeError(
            f"Could not parse corruption protocol {value!r}: expected {' or '.join(PROTOCOLS)}"
        )
    return text


def parse_backend(value: str) -> str:
    text = value.strip().lower()
    if text not in BACKENDS:
        raise argparse.ArgumentTypeError(
            f"Could not parse corruption backend {value!r}: expected {' or '.join(BACKENDS)}"
        )
    return text


def parse_callable_spec(value: str) -> str:
    from pytest_sslrobust.backbones.registry import MODULE_SPEC

    text = value.strip()
    if not MODULE_SPEC.match(text):
        raise argparse.ArgumentTypeError(
            f"Could not parse segmenter {value!r}: expected module.path:callable"
        )
    return text


def parse_workers(value: str) -> int | str:
    """``auto`` (resolved once the device is known: ``session.loader_workers``) or N >= 0."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        return _integer(value, "workers", 0)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"Could not parse workers {value!r}: expected auto or a whole number >= 0"
        ) from None


def parse_executor(value: str) -> str:
    """``local``, ``ray`` (a local cluster for the run), ``ray:auto`` (the running cluster)
    or ``ray:ADDRESS``."""
    text = str(value).strip()
    kind, _, address = text.partition(":")
    if text in ("local", "ray") or (kind == "ray" and address.strip()):
        return text if text in ("local", "ray") else f"ray:{address.strip()}"
    raise argparse.ArgumentTypeError(
        f"Could not parse executor {value!r}: expected local (this process), ray (a local "
        "Ray cluster), ray:auto (the running cluster) or ray:ADDRESS (e.g. ray:10.0.0.5:6379)"
    )


def parse_decode(value: str) -> str:
    text = str(value).strip().lower()
    if text not in ("cpu", "gpu"):
        raise argparse.ArgumentTypeError(f"Could not parse decode {value!r}: expected cpu or gpu")
    return text


def parse_compare_fail(value: str) -> str:
    """Check a tolerance expression such as ``mce:+1.0,cka:-0.02,accuracy:-1%``."""
    from pytest_sslrobust.baselines import parse_tolerances

    try:
        parse_tolerances(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"Could not parse --sslrobust-compare-fail {value!r}: {exc}"
        ) from None
    return value.strip()


def parse_compare_models(value: str) -> tuple[tuple[str, str | None], ...]:
    """Check a model mapping such as ``release-1.4`` or ``release-1.4=candidate,a=b``."""
    from pytest_sslrobust.baselines import parse_model_mapping

    try:
        return parse_model_mapping(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"Could not parse --sslrobust-compare-models {value!r}: {exc}"
        ) from None


def parse_compare_confidence(value: str) -> float:
    try:
        level = float(str(value).strip())
    except ValueError:
        level = -1.0
    if not 0.0 < level < 1.0:
        raise argparse.ArgumentTypeError(
            f"Could not parse --sslrobust-compare-confidence {value!r}: expected a number "
            "between 0 and 1, e.g. 0.95"
        )
    return level


def parse_compare_missing(value: str) -> str:
    text = value.strip().lower()
    if text not in ("fail", "warn"):
        raise argparse.ArgumentTypeError(
            f"Could not parse --sslrobust-compare-missing {value!r}: expected fail or warn"
        )
    return text


def parse_path(value: str) -> Path:
    try:
        return user_path(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_cache_dir(value: str) -> Path | str:
    """A directory (as ``parse_path``), or an fsspec URL (``s3://BUCKET/PREFIX``, ``gs://``,
    ``file:///ABS``, ``memory://``) kept as a string; a URL's filesystem must be installed."""
    if not is_url(value.strip()):
        return parse_path(value)
    from pytest_sslrobust.features.objectstore import check_url

    problem = check_url(value.strip())
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value.strip()


def parse_existing_file(value: str) -> Path:
    path = parse_path(value)
    if not path.is_file():
        state = "does not exist" if not path.exists() else "is not a file"
        raise argparse.ArgumentTypeError(f"Could not read {value!r}: it {state}")
    return path


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise argparse.ArgumentTypeError(f"Could not parse boolean {value!r}: expected true or false")


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting: its command-line flag, ini key, parser, default and help."""

    name: str
    parse: Callable[[str], Any] | None
    default: Any
    metavar: str | None
    help: str

    @property
    def flag(self) -> str:
        return "--sslrobust-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "sslrobust_" + self.name

    @property
    def dest(self) -> str:
        return "sslrobust_" + self.name


OPTIONS: tuple[Option, ...] = (
    Option(
        "model",
        parse_models,
        (DEFAULT_MODEL,),
        "SPEC[,SPEC...]",
        "backbone(s) to test: [ALIAS=]BODY[@PARADIGM] with BODY an alias (see docs), "
        "timm:NAME[.tag], file:PATH or module.path:callable; several parametrize the tests "
        f"(default: {DEFAULT_MODEL})",
    ),
    Option(
        "reference_model",
        parse_reference_model,
        None,
        "SPEC",
        "the reference model that mCE normalises by when AlexNet's table does not apply "
        "(default: a supervised model of the run, else bundled-supervised)",
    ),
    Option(
        "arch",
        parse_arch_option,
        None,
        "TIMM_NAME[:KEY=VALUE,...]",
        "timm architecture that bare file: weights are loaded into, with optional timm "
        "settings (e.g. resnet50, vit_small_patch16_224:num_heads=12)",
    ),
    Option(
        "image_size",
        parse_image_size,
        None,
        "N",
        "input size of every model in the run (default: the alias's size, else the size the "
        "aliases use for the architecture, e.g. 224 for DINOv2, else timm's pretrained size)",
    ),
    Option(
        "data",
        parse_data,
        DEFAULT_DATA,
        "SPEC",
        "dataset: bundled:NAME, imagefolder:PATH[,masks=DIR], imagenet-c:PATH,clean=DIR, "
        f"cifar-c:PATH, in9:PATH, hf:PATH (default: {DEFAULT_DATA})",
    ),
    Option(
        "far_data",
        parse_data,
        DEFAULT_FAR_DATA,
        "SPEC",
        "the far transfer target of the generalisability suite, read by tests through "
        f"sslrobust.with_data(settings.far_data) (default: {DEFAULT_FAR_DATA})",
    ),
    Option(
        "device",
        parse_device,
        "auto",
        "auto|cpu|cuda[:N[,M...]]|mps",
        "device for feature extraction (default: auto, the first of cuda, mps, cpu); under "
        "pytest-xdist, cuda gives worker i the GPU i mod count, cuda:N,M,... those GPUs in turn",
    ),
    Option(
        "batch_size",
        parse_batch_size,
        DEFAULT_BATCH_SIZE,
        "N",
        f"images per forward pass (default: {DEFAULT_BATCH_SIZE})",
    ),
    Option(
        "max_images",
        parse_max_images,
        None,
        "N",
        "use a deterministic, class-stratified subset of at most N images per split (default: all)",
    ),
    Option(
        "train_data",
        parse_data,
        None,
        "SPEC",
        "labelled data that linear-probe and kNN readouts are fitted on (its train split; "
        "classes matched to the test data's by name), e.g. ImageNet train for ImageNet-C "
        "(default: the test data's own train split)",
    ),
    Option(
        "train_per_class",
        parse_train_per_class,
        None,
        "N",
        "fit readouts on a deterministic subset of at most N images per class of the train "
        "data (default: all; independent of --sslrobust-max-images)",
    ),
    Option(
        "head",
        parse_existing_file,
        None,
        "PATH",
        "a linear classifier for the backbone's pooled features (safetensors: weight, bias, "
        "metadata classes), used as the linear-probe readout instead of fitting one",
    ),
    Option(
        "save_probe",
        parse_path,
        None,
        "PATH",
        "save each fitted linear probe in the --sslrobust-head format (several models: "
        "PATH's stem gets -MODEL)",
    ),
    Option(
        "seed",
        parse_seed,
        DEFAULT_SEED,
        "N",
        f"seed for subsets, splits and random alterations (default: {DEFAULT_SEED})",
    ),
    Option(
        "cache_dir",
        parse_cache_dir,
        None,
        "DIR|URL",
        "where cached features live: a directory, or an fsspec URL such as s3://BUCKET/PREFIX "
        "(extra ray; credentials and endpoint from AWS_* / FSSPEC_S3_* variables) (default: "
        "sslrobust/ under pytest's cache dir)",
    ),
    Option(
        "corruptions",
        parse_corruption_list,
        None,
        "NAMES",
        "corruptions for sweeps: names and groups (common, validation, all, noise, blur, "
        "weather, digital), comma-separated (default: common)",
    ),
    Option(
        "severities",
        parse_severity_list,
        (1, 2, 3, 4, 5),
        "LEVELS",
        "corruption severities, e.g. 1-5 or 1,3,5 (default: 1-5)",
    ),
    Option(
        "probe_cv",
        parse_probe_cv,
        "test",
        "test|all",
        "images the masking study's 5-fold probe table runs over: the test split, or the "
        "whole labelled set (train and test, as in the paper) (default: test)",
    ),
    Option(
        "corruption_protocol",
        parse_protocol,
        "on-the-fly",
        "on-the-fly|imagenet-c",
        "corrupt at the model's input resolution without JPEG (on-the-fly), or as the "
        "released ImageNet-C files were made: resize 256, crop 224, corrupt, JPEG q=85 "
        "(default: on-the-fly)",
    ),
    Option(
        "corruption_backend",
        parse_backend,
        "imagecorruptions",
        "imagecorruptions|torch",
        "what makes corrupted images: imagecorruptions per image on the CPU (the reference), "
        "or the batched torch implementation (docs/corruption-backends.md: its fidelity to "
        "the reference); recorded in every result's protocol (default: imagecorruptions)",
    ),
    Option(
        "segmenter",
        parse_callable_spec,
        None,
        "MODULE:CALLABLE",
        "foreground masks for data without them: a callable taking a uint8 HxWx3 image and "
        "returning an HxW mask",
    ),
    Option(
        "workers",
        parse_workers,
        "auto",
        "N|auto",
        "processes that decode, load and alter images (0: one loader thread); auto is 0 on "
        "the CPU and min(8, cores - 1) on a GPU, the cores split between xdist workers "
        "(default: auto)",
    ),
    Option(
        "executor",
        parse_executor,
        "local",
        "local|ray|ray:ADDRESS",
        "where missing feature sets are computed: this process, a local Ray cluster started "
        "for the run, or a running one (ray:auto, ray:HOST:PORT), on actors that keep the "
        "model loaded (needs the ray extra) (default: local)",
    ),
    Option(
        "decode",
        parse_decode,
        "cpu",
        "cpu|gpu",
        "where the JPEG files of clean and released sets are decoded: by PIL in the loader "
        "(cpu), or by torchvision.io.decode_jpeg on the run's CUDA device (gpu; altered "
        "sets are always decoded on the CPU) (default: cpu)",
    ),
    Option(
        "json",
        parse_path,
        None,
        "PATH",
        "write every contract result (values, bounds, intervals, protocols) as JSON",
    ),
    Option(
        "report",
        parse_path,
        None,
        "PATH",
        "write a self-contained HTML robustness report at session end",
    ),
    Option(
        "save",
        parse_path,
        None,
        "PATH",
        "save this run's contract results as a baseline file at session end",
    ),
    Option(
        "compare",
        parse_path,
        None,
        "PATH",
        "compare this run's contract results with a baseline file (report only)",
    ),
    Option(
        "compare_fail",
        parse_compare_fail,
        None,
        "EXPR",
        "with --sslrobust-compare: fail the session on regressions beyond these tolerances, "
        "e.g. mce:+1.0,cka:-0.02,accuracy:-1%% (sign = direction of worsening; * = any metric)",
    ),
    Option(
        "compare_models",
        parse_compare_models,
        None,
        "BASELINE[=MODEL,...]",
        "with --sslrobust-compare: which baseline model (its id in the baseline's test ids) "
        "each model under test is compared with: BASELINE with one model under test, "
        "BASELINE=MODEL pairs for several (default: the same id, else the only model of each)",
    ),
    Option(
        "compare_confidence",
        parse_compare_confidence,
        0.95,
        "LEVEL",
        "with --sslrobust-compare-fail: confidence of paired decisions; a paired row fails "
        "only when its worsening beyond the tolerance is significant after Holm's correction "
        "across the session's paired rows (default: 0.95)",
    ),
    Option(
        "compare_missing",
        parse_compare_missing,
        "fail",
        "fail|warn",
        "with --sslrobust-compare-fail: a baseline result this run did not produce fails the "
        "gate (fail) or is only listed (warn) (default: fail)",
    ),
    Option(
        "baseline_update",
        None,
        False,
        None,
        "with --sslrobust-compare: rewrite that baseline from this run after comparing (the "
        "gate does not fail); baseline results no test produced are listed as stale and removed",
    ),
    Option("cache_clear", None, False, None, "remove all cached features before the run"),
    Option("no_cache", None, False, None, "neither read nor write the disk cache for this run"),
)


# Each setting's default is stated once, in OPTIONS; the dataclass takes it from there.
_DEFAULTS: dict[str, Any] = {option.name: option.default for option in OPTIONS}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run of the plugin depends on, fixed at configure time (one field per
    entry of ``OPTIONS``, with its default)."""

    model: tuple[str, ...] = _DEFAULTS["model"]
    reference_model: str | None = _DEFAULTS["reference_model"]
    arch: str | None = _DEFAULTS["arch"]
    image_size: int | None = _DEFAULTS["image_size"]
    data: str = _DEFAULTS["data"]
    far_data: str = _DEFAULTS["far_data"]
    device: str = _DEFAULTS["device"]
    batch_size: int = _DEFAULTS["batch_size"]
    max_images: int | None = _DEFAULTS["max_images"]
    train_data: str | None = _DEFAULTS["train_data"]
    train_per_class: int | None = _DEFAULTS["train_per_class"]
    head: Path | None = _DEFAULTS["head"]
    save_probe: Path | None = _DEFAULTS["save_probe"]
    seed: int = _DEFAULTS["seed"]
    # A Path, or an fsspec URL string (``paths.is_url`` tells them apart).
    cache_dir: Path | str | None = _DEFAULTS["cache_dir"]
    corruptions: tuple[str, ...] | None = _DEFAULTS["corruptions"]
    severities: tuple[int, ...] = _DEFAULTS["severities"]
    probe_cv: str = _DEFAULTS["probe_cv"]
    corruption_protocol: str = _DEFAULTS["corruption_protocol"]
    corruption_backend: str = _DEFAULTS["corruption_backend"]
    segmenter: str | None = _DEFAULTS["segmenter"]
    workers: int | str = _DEFAULTS["workers"]
    executor: str = _DEFAULTS["executor"]
    decode: str = _DEFAULTS["decode"]
    json: Path | None = _DEFAULTS["json"]
    report: Path | None = _DEFAULTS["report"]
    save: Path | None = _DEFAULTS["save"]
    compare: Path | None = _DEFAULTS["compare"]
    compare_fail: str | None = _DEFAULTS["compare_fail"]
    compare_models: tuple[tuple[str, str | None], ...] | None = _DEFAULTS["compare_models"]
    compare_confidence: float = _DEFAULTS["compare_confidence"]
    compare_missing: str = _DEFAULTS["compare_missing"]
    baseline_update: bool = _DEFAULTS["baseline_update"]
    cache_clear: bool = _DEFAULTS["cache_clear"]
    no_cache: bool = _DEFAULTS["no_cache"]

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Read each option from the command line, else its ini key, else its default."""
        values: dict[str, Any] = {}
        for option in OPTIONS:
            value = config.getoption(option.dest)
            if value is None or value is False:
                raw = config.getini(option.ini)
                if raw not in (None, "", []):
                    parse = option.parse or parse_bool
                    try:
                        value = parse(raw)
                    except argparse.ArgumentTypeError as exc:
                        raise pytest.UsageError(f"ini key {option.ini}: {exc}") from None
            values[option.name] = option.default if value is None else value
        if values["corruptions"] is None:
            values["corruptions"] = parse_corruption_list("common")
        settings = cls(**values)
        settings.check()
        if settings.cache_dir is None and not settings.no_cache:
            cache = getattr(config, "cache", None)
            directory = (
                cache.mkdir("sslrobust")
                if cache is not None
                else config.rootpath / ".pytest_cache" / "sslrobust"
            )
            settings = dataclasses.replace(settings, cache_dir=Path(directory))
        return settings

    def check(self) -> None:
        """Refuse unknown models and combinations that make no sense together."""
        from pytest_sslrobust.backbones.registry import validate_spec

        for spec in self.model:
            problem = validate_spec(spec)
            if problem:
                raise pytest.UsageError(problem)
        from pytest_sslrobust.backbones.registry import parse_spec

        file_models = [
            spec
            for spec in self.model
            if (parsed := parse_spec(spec)).kind == "file" and parsed.alias is None
        ]
        if file_models and not self.arch:
            raise pytest.UsageError(
                f"{file_models[0]} needs --sslrobust-arch=TIMM_NAME (the architecture the "
                "weights belong to, e.g. resnet50 or vit_small_patch14_dinov2)"
            )
        if self.arch and not file_models:
            raise pytest.UsageError(
                "--sslrobust-arch applies only to file: models without an alias; none was given "
                "in --sslrobust-model (ALIAS=file:PATH takes the alias's architecture)"
            )
        if self.compare_fail and not self.compare:
            raise pytest.UsageError(
                "--sslrobust-compare-fail needs --sslrobust-compare=PATH (the baseline to "
                "compare with)"
            )
        if self.baseline_update and not self.compare:
            raise pytest.UsageError(
                "--sslrobust-baseline-update needs --sslrobust-compare=PATH (the baseline to "
                "rewrite); to write a new one, use --sslrobust-save=PATH"
            )
        if self.compare_models and not self.compare:
            raise pytest.UsageError(
                "--sslrobust-compare-models needs --sslrobust-compare=PATH (the baseline to "
                "compare with)"
            )
        if self.cache_clear and self.no_cache:
            raise pytest.UsageError(
                "--sslrobust-cache-clear and --sslrobust-no-cache contradict each other: "
                "give one of them"
            )
