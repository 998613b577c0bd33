"""The plugin's names and grammars, at the bottom layer: standard library only.

Everything that the command line, the ini file, markers and test ids spell lives here:
corruption names and groups, severities, corruption protocols, ImageNet-9 variant names,
the variant-id format and its parser, the data-spec grammar, bundled dataset names, and the
error type the plugin's own errors build on. ``pytest_configure`` and option parsing use
only this module, so an installed plugin costs a project that does not use it no torch,
numpy or scikit-learn import.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import numbers
import re
from importlib import metadata
from typing import Any


class SslRobustError(Exception):
    """Base of the plugin's errors about what a user asked for; the message names the
    thing and the fix."""


class VariantError(SslRobustError, ValueError):
    """A variant cannot be built or applied as asked; the message says what would work."""


class DataError(SslRobustError):
    """A dataset cannot be read as given; the message names the file and the fix."""


# ImageNet-C (Hendrycks & Dietterich 2019): 15 common corruptions in 4 families, and the 4
# held-out validation corruptions.
COMMON = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
VALIDATION = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = COMMON + VALIDATION
GROUPS: dict[str, tuple[str, ...]] = {
    "common": COMMON,
    "validation": VALIDATION,
    "all": ALL,
    "noise": COMMON[0:3],
    "blur": COMMON[3:7],
    "weather": COMMON[7:11],
    "digital": COMMON[11:15],
}
SEVERITIES = (1, 2, 3, 4, 5)
PROTOCOLS = ("on-the-fly", "imagenet-c")

# ImageNet-9 (Xiao et al. 2020): the released variant folders, also the swap variants' ids.
IN9_RELEASED = (
    "only_fg",
    "no_fg",
    "only_bg_b",
    "only_bg_t",
    "mixed_same",
    "mixed_rand",
    "mixed_next",
)
SWAPS = IN9_RELEASED
MASK_REGIONS = ("foreground", "background")
CIRCLE_REGIONS = ("center", "border")
DEFAULT_RADIUS = 0.5

BUNDLED_DATASETS = ("textured-digits", "textured-shapes")


def check_corruption(name: str) -> str:
    if name not in ALL:
        close = difflib.get_close_matches(name, ALL, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise VariantError(
            f"unknown corruption {name!r}{hint}; valid: {', '.join(ALL)}; groups: "
            f"{', '.join(GROUPS)}"
        )
    return name


def check_severity(severity: Any) -> int:
    # numpy's integer types register as numbers.Integral; bool is refused explicitly.
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral):
        raise VariantError(f"severity must be an integer 1..5, got {severity!r}")
    if int(severity) not in SEVERITIES:
        raise VariantError(f"severity must be 1..5, got {severity}")
    return int(severity)


# What makes corrupted pixels: imagecorruptions per image (the reference), or the torch
# backend (pytest_sslrobust.variants.torch_corruptions), batched on any device. The run's
# choice (--sslrobust-corruption-backend) is the default of every Corruption built in it.
BACKENDS = ("imagecorruptions", "torch")
_active_backend = ["imagecorruptions"]


def corruption_backend() -> str:
    """The run's corruption backend (default ``imagecorruptions``)."""
    return _active_backend[0]


def use_corruption_backend(name: str) -> None:
    """Make ``name`` the backend of Corruptions built from now on (the plugin sets the run's
    at configure and restores the default at unconfigure)."""
    if name not in BACKENDS:
        raise VariantError(f"unknown corruption backend {name!r}; use one of {', '.join(BACKENDS)}")
    _active_backend[0] = name


def generator_version(backend: str | None = None) -> str:
    """Name and version of what made the corrupted pixels, recorded with every corrupted
    result: results of another backend or version are never compared."""
    backend = backend or corruption_backend()
    if backend == "torch":
        return _torch_generator_version()
    return _library_version()


@functools.lru_cache(maxsize=1)
def _library_version() -> str:
    try:
        return f"imagecorruptions-imaug {metadata.version('imagecorruptions-imaug')}"
    except metadata.PackageNotFoundError:
        return "imagecorruptions (unknown version)"


# The torch backend's own version: bumped whenever its pixels change.
TORCH_BACKEND_VERSION = "pytest-sslrobust torch corruptions v1"


@functools.lru_cache(maxsize=1)
def _torch_generator_version() -> str:
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "unknown"
    return f"{TORCH_BACKEND_VERSION} (torch {torch_version})"


def parse_corruptions(text: str) -> tuple[str, ...]:
    """``common``, ``noise,blur``, ``gaussian_noise,fog`` -> corruption names, in order."""
    names: list[str] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            raise VariantError(f"empty entry in corruption list {text!r}")
        for name in GROUPS.get(part, (part,)):
            if check_corruption(name) not in names:
                names.append(name)
    return tuple(names)


def parse_severities(text: str) -> tuple[int, ...]:
    """``1-5``, ``1,3,5`` or ``2`` -> sorted severities."""
    found: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        low, dash, high = part.partition("-")
        try:
            values = range(int(low), int(high) + 1) if dash else [int(part)]
        except ValueError:
            raise VariantError(f"cannot parse severities {text!r}: use e.g. 1-5 or 1,3,5") from None
        if not values:
            raise VariantError(f"cannot parse severities {text!r}: empty range {part}")
        found.update(check_severity(v) for v in values)
    return tuple(sorted(found))


# --- variant ids: one formatter per kind, one parser -------------------------------------

ORIGINAL = "original"


def corruption_id(name: str, severity: int) -> str:
    """``gaussian_noise-s3``."""
    return f"{name}-s{severity}"


def circle_id(region: str, radius: float) -> str:
    """``center-r0.50``: the radius as a fraction of the half side, two decimals."""
    return f"{region}-r{radius:.2f}"


def augment_id(view: int) -> str:
    """``augment`` for the first view, ``augment-v2`` after it."""
    return "augment" if view == 1 else f"augment-v{view}"


@dataclasses.dataclass(frozen=True)
class VariantId:
    """A parsed variant id: ``kind`` is original, corruption, circle, mask, swap or augment."""

    kind: str
    name: str
    severity: int | None = None
    radius: float | None = None
    view: int | None = None


_CORRUPTION_ID = re.compile(r"^(?P<name>[a-z_]+)-s(?P<severity>\d+)$")
_CIRCLE_ID = re.compile(r"^(?P<region>center|border)(-r(?P<radius>[0-9.]+))?$")
_AUGMENT_ID = re.compile(r"^augment(-v(?P<view>\d+))?$")


def parse_variant_id(text: str) -> VariantId:
    """The one parser of variant ids (options, markers, report rows, released files).

    The corruption's name and severity are not checked here (``check_corruption``,
    ``check_severity`` do it where a variant is built), so a report can still read the id
    of a result recorded by another version.

    Example:
        >>> parse_variant_id("fog-s2")
        VariantId(kind='corruption', name='fog', severity=2, radius=None, view=None)
        >>> parse_variant_id("center").radius
        0.5
    """
    if text == ORIGINAL:
        return VariantId("original", text)
    corruption = _CORRUPTION_ID.match(text)
    if corruption:
        return VariantId("corruption", corruption["name"], severity=int(corruption["severity"]))
    circle = _CIRCLE_ID.match(text)
    if circle:
        radius = float(circle["radius"]) if circle["radius"] else DEFAULT_RADIUS
        return VariantId("circle", circle["region"], radius=radius)
    if text in MASK_REGIONS:
        return VariantId("mask", text)
    if text in SWAPS:
        return VariantId("swap", text)
    augment = _AUGMENT_ID.match(text)
    if augment:
        return VariantId("augment", "augment", view=int(augment["view"] or 1))
    raise VariantError(
        f"unknown variant {text!r}: expected original, CORRUPTION-sN (e.g. gaussian_noise-s3), "
        f"center[-rR], border[-rR], foreground, background, augment[-vN] or one of "
        f"{', '.join(SWAPS)}"
    )


def corruption_cell(variant: str) -> tuple[str, int] | None:
    """(corruption, severity) when ``variant`` is a corruption id, else None.

    Example:
        >>> corruption_cell("fog-s3"), corruption_cell("center-r0.50")
        (('fog', 3), None)
    """
    try:
        parsed = parse_variant_id(variant)
    except VariantError:
        return None
    if parsed.kind != "corruption" or not parsed.severity:
        return None
    return parsed.name, parsed.severity


# --- data specs ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """``scheme:target[,key=value...]`` split into its parts."""

    scheme: str
    target: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def option_dict(self) -> dict[str, str]:
        return dict(self.options)


# scheme -> (option keys allowed, keys required, whether target is a path)
SCHEMES: dict[str, tuple[frozenset[str], frozenset[str], bool]] = {
    "bundled": (frozenset(), frozenset(), False),
    "imagefolder": (frozenset({"masks", "classes"}), frozenset(), True),
    "imagenet-c": (frozenset({"clean"}), frozenset({"clean"}), True),
    "cifar-c": (frozenset({"clean", "train", "train_labels"}), frozenset(), True),
    "in9": (frozenset(), frozenset(), True),
    "hf": (frozenset({"split", "image", "label"}), frozenset(), True),
}
# Options whose value is a path (checked to exist); the others are names.
PATH_OPTIONS = frozenset({"masks", "clean", "train", "train_labels"})


def parse_data_spec(text: str) -> DataSpec:
    """Split a spec; raises ``ValueError`` with the reason when it is malformed."""
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ValueError(
            f"Could not parse data spec {text!r}: expected one of "
            f"{', '.join(s + ':...' for s in SCHEMES)}"
        )
    target, *pairs = rest.split(",")
    options: list[tuple[str, str]] = []
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key or not value:
            raise ValueError(f"Could not parse data spec {text!r}: {pair!r} is not key=value")
        options.append((key.strip(), value.strip()))
    allowed, required, _ = SCHEMES[scheme]
    unknown = [key for key, _ in options if key not in allowed]
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise ValueError(
            f"data spec {text!r}: unknown option {unknown[0]!r} for {scheme}: (accepted: {accepted})"
        )
    missing = sorted(required - {key for key, _ in options})
    if missing:
        raise ValueError(f"data spec {text!r}: {scheme}: needs {missing[0]}=PATH")
    if not target:
        raise ValueError(f"Could not parse data spec {text!r}: nothing after {scheme}:")
    return DataSpec(scheme, target, tuple(options))
