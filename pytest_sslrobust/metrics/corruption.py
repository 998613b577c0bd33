"""Corruption error (CE), mCE, relative mCE and mean accuracy over ImageNet-C style sweeps."""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.vocabulary import COMMON, SEVERITIES, generator_version

__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_ERRORS",
    "PROTOCOL_KEYS_IGNORED",
    "RELEASED_IMAGENET_C",
    "CorruptionErrors",
    "ProtocolMismatch",
    "ReferenceScores",
    "ce",
    "check_protocols",
    "errors_from_predictions",
    "mce",
    "mean_accuracy",
    "mean_ssim",
    "reference_scores",
    "reference_sums",
    "relative_mce",
    "unnormalised_mean_error",
]

# AlexNet top-1 error on the released ImageNet-C files, severities 1..5, copied from the
# hendrycks/robustness README at commit 76d9393 (the normaliser of every published mCE).
ALEXNET_ERRORS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
    "speckle_noise": (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
    "gaussian_blur": (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
    "spatter": (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
    "saturate": (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
}
# torchvision AlexNet clean top-1 accuracy 56.522 %, the normaliser of relative mCE.
ALEXNET_CLEAN_ERROR = 0.43478

# The protocol source under which the AlexNet table is valid.
RELEASED_IMAGENET_C = "released-imagenet-c"
# Keys that name the model rather than the measurement: a reference model differs there by
# design, so they never make two protocols incompatible.
PROTOCOL_KEYS_IGNORED = ("backbone", "backbone_fingerprint", "model")
# Sources whose corrupted images exist before any model's resize (the released files, or the
# ImageNet-C recipe applied at its own geometry): every model sees the same corrupted bytes
# and resizes them itself, so its input size describes the model, not the measurement.
SHARED_BYTES_SOURCES = ("released-imagenet-c", "released", "imagenet-c-recipe")
# Recorded error rates must agree with the stored per-image correctness up to float rounding.
_RATE_TOLERANCE = 1e-9
_N_SEVERITIES = len(SEVERITIES)
# CE divides by the reference's summed error (minus its clean error for relative CE). Rates
# agree with per-image counts only to _RATE_TOLERANCE, and a positive sum below it would take
# more than 10^9 images to measure: such a denominator (0, subnormal, or a rounding residue
# like 0.30000000000000004 - 0.3) is refused. It bounds every CE by 5 / 1e-9 * 100 = 5e11.
_MIN_REFERENCE_SUM = _RATE_TOLERANCE


class ProtocolMismatch(ValueError):
    """Two error tables come from measurements that must not be compared or normalised."""


@dataclasses.dataclass(frozen=True, eq=False)
class CorruptionErrors:
    """Top-1 error rates of one model over a corruption sweep, with the protocol that made them.

    Args:
        errors: corruption name -> five error rates in [0, 1], severities 1..5 in order.
        clean_error: error rate on the uncorrupted images, or None when not measured.
        n: images per (corruption, severity) cell.
        readout: how predictions were made, e.g. ``"head"``, ``"linear-probe"``, ``"knn"``.
        protocol: what produced the numbers; must contain ``"source"`` (e.g.
            ``"released-imagenet-c"``, ``"on-the-fly"``, ``"imagenet-c-recipe"``) and may record
            generator, resolution, crop, seed, subset and so on.
        correct: optional corruption name -> 0/1 array of shape (5, n), whether each image was
            classified correctly at each severity; needed for bootstrap intervals.
        clean_correct: optional 0/1 array of shape (n,) for the clean images.
        ids: optional item ids of the n images, in order; a baseline comparison names the
            images that changed by them.

    Example:
        >>> table = CorruptionErrors({"fog": (0.1, 0.2, 0.3, 0.4, 0.5)}, None, 100, "head",
        ...                          {"source": "on-the-fly"})
        >>> table.error("fog", 3)
        0.3
        >>> CorruptionErrors.from_dict(table.to_dict()) == table
        True
    """

    errors: Mapping[str, tuple[float, ...]]
    clean_error: float | None
    n: int
    readout: str
    protocol: Mapping[str, Any]
    correct: Mapping[str, np.ndarray] | None = None
    clean_correct: np.ndarray | None = None
    ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"Expected n to be a positive integer, but got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "errors", _rates_table(self.errors, "errors"))
        if self.clean_error is not None:
            object.__setattr__(self, "clean_error", _rate(self.clean_error, "clean_error"))
        if not isinstance(self.readout, str) or not self.readout:
            raise ValueError(f"Expected readout to be a non-empty string, but got {self.readout!r}")
        if not isinstance(self.protocol, Mapping) or not isinstance(
            self.protocol.get("source"), str
        ):
            raise ValueError(
                f"Expected protocol to be a mapping with a string 'source' (e.g. "
                f"{RELEASED_IMAGENET_C!r} or 'on-the-fly'), but got {self.protocol!r}"
            )
        object.__setattr__(self, "protocol", dict(self.protocol))
        if self.ids is not None:
            if len(self.ids) != self.n:
                raise ValueError(f"Expected {self.n} item ids, but got {len(self.ids)}")
            object.__setattr__(self, "ids", tuple(str(i) for i in self.ids))
        if self.correct is not None:
            object.__setattr__(self, "correct", self._checked_correct(self.correct))
        if self.clean_correct is not None:
            clean = _correctness(self.clean_correct, (self.n,), "clean_correct")
            measured = (self.n - int(clean.sum())) / self.n
            if self.clean_error is None:
                object.__setattr__(self, "clean_error", measured)
            elif abs(measured - self.clean_error) > _RATE_TOLERANCE:
                raise ValueError(
                    f"Expected clean_error to match clean_correct ({measured}), but got "
                    f"{self.clean_error}"
                )
            object.__setattr__(self, "clean_correct", clean)

    def _checked_correct(self, correct: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(correct, Mapping):
            raise ValueError(f"Expected correct to be a mapping, but got {type(correct).__name__}")
        checked: dict[str, np.ndarray] = {}
        for name, value in correct.items():
            if name not in self.errors:
                raise ValueError(
                    f"Expected correct to cover only corruptions in errors, but got {name!r}"
                )
            array = _correctness(value, (_N_SEVERITIES, self.n), f"correct[{name!r}]")
            measured = (self.n - array.sum(axis=1)) / self.n
            stated = np.asarray(self.errors[name])
            if np.abs(measured - stated).max() > _RATE_TOLERANCE:
                raise ValueError(
                    f"Expected errors[{name!r}] to match correct[{name!r}] "
                    f"({measured.tolist()}), but got {stated.tolist()}"
                )
            checked[name] = array
        return checked

    def error(self, corruption: str, severity: int) -> float:
        """Error rate of one cell; ``severity`` counts from 1."""
        if corruption not in self.errors:
            raise ValueError(
                f"Expected one of {', '.join(self.errors)}, but got corruption {corruption!r}"
            )
        if isinstance(severity, bool) or severity not in SEVERITIES:
            raise ValueError(f"Expected severity 1..5, but got {severity!r}")
        return self.errors[corruption][int(severity) - 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; per-image correctness is stored as base64 packed bits."""
        extra = {} if self.ids is None else {"ids": list(self.ids)}
        return {
            "errors": {name: list(rates) for name, rates in self.errors.items()},
            "clean_error": self.clean_error,
            "n": self.n,
            "readout": self.readout,
            "protocol": dict(self.protocol),
            "correct": None
            if self.correct is None
            else {name: _pack(array) for name, array in self.correct.items()},
            "clean_correct": None if self.clean_correct is None else _pack(self.clean_correct),
            **extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorruptionErrors:
        """Inverse of :meth:`to_dict`."""
        missing = [
            k for k in ("errors", "clean_error", "n", "readout", "protocol") if k not in data
        ]
        if missing:
            raise ValueError(
                f"Expected keys {', '.join(missing)} in the dict, but they are missing"
            )
        correct = data.get("correct")
        clean_correct = data.get("clean_correct")
        return cls(
            errors={name: tuple(rates) for name, rates in data["errors"].items()},
            clean_error=data["clean_error"],
            n=data["n"],
            readout=data["readout"],
            protocol=data["protocol"],
            correct=None
            if correct is None
            else {name: _unpack(packed) for name, packed in correct.items()},
            clean_correct=None if clean_correct is None else _unpack(clean_correct),
            ids=None if data.get("ids") is None else tuple(data["ids"]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CorruptionErrors):
            return NotImplemented
        # Compared through the JSON form because numpy arrays have no single truth value.
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


ErrorsLike = CorruptionErrors | Mapping[str, Sequence[float]]
ReferenceLike = str | CorruptionErrors | Mapping[str, Sequence[float]]


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"Expected {name} to be a number in [0, 1], but got {value!r}")
    rate = float(value)
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise ValueError(f"Expected {name} to be an error rate in [0, 1], but got {rate}")
    return rate


def _rates_table(table: Any, name: str) -> dict[str, tuple[float, ...]]:
    if isinstance(table, CorruptionErrors):
        return dict(table.errors)
    if not isinstance(table, Mapping):
        raise ValueError(
            f"Expected {name} to be a CorruptionErrors or a mapping corruption -> 5 error rates, "
            f"but got {type(table).__name__}"
        )
    if not table:
        raise ValueError(f"Expected {name} to hold at least one corruption, but it is empty")
    checked: dict[str, tuple[float, ...]] = {}
    for corruption, rates in table.items():
        if not isinstance(corruption, str) or not corruption:
            raise ValueError(f"Expected corruption names to be strings, but got {corruption!r}")
        values = np.asarray(rates, dtype=object) if _is_seq(rates) else None
        if values is None or values.ndim != 1 or values.shape[0] != _N_SEVERITIES:
            got = repr(rates) if values is None else f"shape {values.shape}"
            raise ValueError(
                f"Expected {name}[{corruption!r}] to hold 5 error rates (severities 1..5), "
                f"but got {got}"
            )
        checked[corruption] = tuple(
            _rate(v, f"{name}[{corruption!r}] severity {s}")
            for s, v in zip(SEVERITIES, values, strict=True)
        )
    return checked


def _is_seq(value: Any) -> bool:
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes))


def _correctness(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != shape:
        raise ValueError(f"Expected {name} to have shape {shape}, but got {array.shape}")
    if array.dtype != np.bool_:
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"Expected {name} to hold only 0 and 1, but got other values")
        array = array.astype(np.bool_)
    array = array.copy()
    array.flags.writeable = False  # the dataclass is frozen; so are its arrays
    return array


def _pack(array: np.ndarray) -> dict[str, Any]:
    bits = np.packbits(array.astype(np.uint8), axis=None)
    return {"shape": list(array.shape), "bits": base64.b64encode(bits.tobytes()).decode("ascii")}


def _unpack(packed: Any) -> np.ndarray:
    if not isinstance(packed, Mapping):
        # Plain nested lists of 0/1 are accepted too (hand-written files).
        return np.asarray(packed)
    shape = tuple(int(s) for s in packed["shape"])
    raw = np.frombuffer(base64.b64decode(packed["bits"]), dtype=np.uint8)
    count = int(np.prod(shape)) if shape else 1
    return np.unpackbits(raw, count=count).astype(np.bool_).reshape(shape)


def check_protocols(first: Any, second: Any, what: str = "errors and reference") -> None:
    """Refuse two CorruptionErrors whose shared protocol keys differ.

    Keys present in only one protocol are not compared (older records may lack them), and keys
    in ``PROTOCOL_KEYS_IGNORED`` name the model, not the measurement; so does ``image_size``
    when both were corrupted before the models' resize (``SHARED_BYTES_SOURCES``). Plain mappings carry no
    protocol and are accepted: the caller vouches for them.

    Raises:
        ProtocolMismatch: naming every differing key with both values.
    """
    if not (isinstance(first, CorruptionErrors) and isinstance(second, CorruptionErrors)):
        return
    ignored = set(PROTOCOL_KEYS_IGNORED)
    source = first.protocol.get("source")
    if source in SHARED_BYTES_SOURCES and second.protocol.get("source") == source:
        ignored.add("image_size")
    shared = [key for key in first.protocol if key in second.protocol and key not in ignored]
    differing = [key for key in shared if first.protocol[key] != second.protocol[key]]
    if differing:
        detail = "; ".join(
            f"{key}: {first.protocol[key]!r} vs {second.protocol[key]!r}" for key in differing
        )
        raise ProtocolMismatch(
            f"Expected {what} to be measured under the same protocol, but they differ in "
            f"{detail}. Normalising or comparing errors across protocols mixes the effect of the "
            f"model with the effect of the measurement; re-measure one of them under the other's "
            f"protocol."
        )


def reference_table_of(
    errors: Any, reference: Any
) -> tuple[dict[str, tuple[float, ...]], float | None]:
    """The reference's error table and clean error, after the protocol rules."""
    if isinstance(reference, str):
        if reference != "alexnet":
            raise ValueError(
                f"Expected reference to be 'alexnet', a CorruptionErrors or a mapping, but got "
                f"{reference!r}"
            )
        if isinstance(errors, CorruptionErrors) and errors.protocol["source"] != (
            RELEASED_IMAGENET_C
        ):
            raise ProtocolMismatch(
                f"Expected errors measured on the released ImageNet-C files (protocol source "
                f"{RELEASED_IMAGENET_C!r}) to normalise by AlexNet, but got source "
                f"{errors.protocol['source']!r}. AlexNet's published errors were measured on the "
                f"released ImageNet-C JPEGs; corruptions generated on the fly (or re-generated "
                f"with the ImageNet-C recipe) differ from those files (users report ~10 accuracy "
                f"points on gaussian_noise severity 3), so an AlexNet-normalised number would "
                f"not be an mCE. Measure a reference model under the same protocol and pass its "
                f"CorruptionErrors as reference=, or report mean_accuracy / "
                f"unnormalised_mean_error instead."
            )
        return dict(ALEXNET_ERRORS), ALEXNET_CLEAN_ERROR
    check_protocols(errors, reference)
    table = _rates_table(reference, "reference")
    clean = reference.clean_error if isinstance(reference, CorruptionErrors) else None
    return table, clean


def _require(table: Mapping[str, Any], names: Sequence[str], what: str) -> None:
    missing = [name for name in names if name not in table]
    if missing:
        raise ValueError(
            f"Expected {what} to have all of {len(names)} corruptions, but these are missing: "
            f"{', '.join(missing)}"
        )


def _ce_ratios(
    table: Mapping[str, tuple[float, ...]],
    reference: Mapping[str, tuple[float, ...]],
    names: Sequence[str],
    clean: float = 0.0,
    reference_clean: float = 0.0,
) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        denominator = math.fsum(e - reference_clean for e in reference[name])
        if not denominator > _MIN_REFERENCE_SUM:
            raise ValueError(
                f"Expected the reference's summed error on {name} to be above "
                f"{_MIN_REFERENCE_SUM:g} (above its clean error for relative CE), but got "
                f"{denominator!r}: a zero, subnormal or rounding-level reference error makes the "
                f"ratio undefined or overflow"
            )
        # Ratio first, then scale: a table against itself gives exactly 100.
        out[name] = 100.0 * (math.fsum(e - clean for e in table[name]) / denominator)
    return out


def ce(errors: ErrorsLike, reference: ReferenceLike = "alexnet") -> dict[str, float]:
    """Corruption error per corruption: 100 * sum_s E(f, s, c) / sum_s E(ref, s, c).

    Computed for every corruption in ``errors``, validation corruptions included. The protocol
    rules are those of :func:`mce`. A reference whose summed error on a corruption is not
    above 1e-9 (zero, subnormal, or float rounding: more than 10^9 images would be needed to
    measure it) is refused with a ValueError naming the corruption, so every CE is finite.

    Args:
        errors: a CorruptionErrors or a mapping corruption -> 5 error rates.
        reference: ``"alexnet"`` (the published table) or a reference model's errors measured
            under the same protocol.

    Returns:
        Corruption name -> CE in percent (100 = as bad as the reference).

    Example:
        >>> ce({"fog": [e / 2 for e in ALEXNET_ERRORS["fog"]]})
        {'fog': 50.0}
    """
    table = _rates_table(errors, "errors")
    reference_table, _ = reference_table_of(errors, reference)
    missing = [name for name in table if name not in reference_table]
    if missing:
        raise ValueError(
            f"Expected the reference to have errors for every corruption in errors, but it has "
            f"none for: {', '.join(missing)}"
        )
    return _ce_ratios(table, reference_table, list(table))


def mce(errors: ErrorsLike, reference: ReferenceLike = "alexnet") -> float:
    """Mean corruption error over the 15 common ImageNet-C corruptions, in percent.

    Validation corruptions (speckle_noise, gaussian_blur, spatter, saturate) present in
    ``errors`` are ignored, as in Hendrycks & Dietterich (2019); :func:`ce` reports them.

    Protocol rules: with ``reference="alexnet"`` a CorruptionErrors must come from the released
    ImageNet-C files (``protocol["source"] == "released-imagenet-c"``), otherwise
    :class:`ProtocolMismatch` is raised; a plain mapping carries no protocol and is accepted,
    the caller vouching that it was measured on the released files. With a CorruptionErrors
    reference, every protocol key present in both must agree (``PROTOCOL_KEYS_IGNORED`` aside).

    Args:
        errors: a CorruptionErrors or a mapping corruption -> 5 error rates (severities 1..5).
        reference: ``"alexnet"`` or a reference model's errors under the same protocol.

    Returns:
        mCE in percent (the reference itself scores 100), finite: a reference summed error
        not above 1e-9 on a common corruption is refused as in :func:`ce`.

    Example:
        >>> round(mce({name: [0.767 * e for e in ALEXNET_ERRORS[name]] for name in COMMON}), 6)
        76.7
    """
    table = _rates_table(errors, "errors")
    _require(table, COMMON, "errors")
    reference_table, _ = reference_table_of(errors, reference)
    _require(reference_table, COMMON, "the reference")
    ratios = _ce_ratios(table, reference_table, COMMON)
    return math.fsum(ratios.values()) / len(COMMON)


def _relative_inputs(
    errors: ErrorsLike,
    clean_error: float | None,
    reference: ReferenceLike,
    reference_clean_error: float | None,
) -> tuple[dict[str, tuple[float, ...]], dict[str, tuple[float, ...]], float, float]:
    """The tables and clean errors relative CE is computed from, after the protocol rules."""
    table = _rates_table(errors, "errors")
    _require(table, COMMON, "errors")
    if clean_error is None and isinstance(errors, CorruptionErrors):
        clean_error = errors.clean_error
    if clean_error is None:
        raise ValueError("Expected clean_error (or errors.clean_error), but got None")
    clean = _rate(clean_error, "clean_error")
    reference_table, stated_clean = reference_table_of(errors, reference)
    _require(reference_table, COMMON, "the reference")
    if isinstance(reference, str):
        # The AlexNet table has exactly one clean error; another value would be a silent mix.
        if reference_clean_error is not None and reference_clean_error != ALEXNET_CLEAN_ERROR:
            raise ValueError(
                f"Expected reference_clean_error None or {ALEXNET_CLEAN_ERROR} with the AlexNet "
                f"reference, but got {reference_clean_error}"
            )
        reference_clean = ALEXNET_CLEAN_ERROR
    else:
        chosen = reference_clean_error if reference_clean_error is not None else stated_clean
        if chosen is None:
            raise ValueError(
                "Expected reference_clean_error (or reference.clean_error) for a non-AlexNet "
                "reference, but got None"
            )
        reference_clean = _rate(chosen, "reference_clean_error")
    return table, reference_table, clean, reference_clean


def reference_sums(
    errors: ErrorsLike,
    reference: ReferenceLike = "alexnet",
    *,
    relative: bool = False,
    clean_error: float | None = None,
    reference_clean_error: float | None = None,
) -> dict[str, float]:
    """What each common corruption's summed error is divided by: ``sum_s E(ref, s, c)`` for
    mCE, ``sum_s (E(ref, s, c) - E_clean(ref))`` for relative mCE (arguments and protocol
    rules as in :func:`mce` / :func:`relative_mce`). A baseline comparison writes the mCE as
    per-image terms weighted by these (``pytest_sslrobust.outcomes``)."""
    if relative:
        _, table, _, reference_clean = _relative_inputs(
            errors, clean_error, reference, reference_clean_error
        )
    else:
        table, reference_clean = reference_table_of(errors, reference)[0], 0.0
        _require(table, COMMON, "the reference")
    return {name: math.fsum(e - reference_clean for e in table[name]) for name in COMMON}


def relative_ce(
    errors: ErrorsLike,
    clean_error: float | None = None,
    reference: ReferenceLike = "alexnet",
    reference_clean_error: float | None = None,
) -> dict[str, float]:
    """Relative CE per common corruption, in percent (the terms :func:`relative_mce` averages).

    Arguments and protocol rules are those of :func:`relative_mce`.
    """
    table, reference_table, clean, reference_clean = _relative_inputs(
        errors, clean_error, reference, reference_clean_error
    )
    return _ce_ratios(table, reference_table, COMMON, clean, reference_clean)


def relative_mce(
    errors: ErrorsLike,
    clean_error: float | None = None,
    reference: ReferenceLike = "alexnet",
    reference_clean_error: float | None = None,
) -> float:
    """Relative mCE: how much error the corruptions add, relative to the reference, in percent.

    Relative CE(f, c) = sum_s (E(f, s, c) - E_clean(f)) / sum_s (E(ref, s, c) - E_clean(ref)),
    averaged over the 15 common corruptions. Protocol rules as in :func:`mce`. A reference
    whose summed excess over its clean error is not above 1e-9 on some corruption (including
    rounding residues of equal rates) is refused with a ValueError naming it, as in :func:`ce`.

    Args:
        errors: a CorruptionErrors or a mapping corruption -> 5 error rates.
        clean_error: the model's clean error; defaults to ``errors.clean_error``.
        reference: ``"alexnet"`` or a reference model's errors under the same protocol.
        reference_clean_error: the reference's clean error; for ``"alexnet"`` it is
            ``ALEXNET_CLEAN_ERROR``, otherwise it defaults to ``reference.clean_error``.

    Returns:
        Relative mCE in percent (the reference itself scores 100).

    Example:
        >>> relative_mce(ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR)
        100.0
    """
    ratios = relative_ce(errors, clean_error, reference, reference_clean_error)
    return math.fsum(ratios.values()) / len(COMMON)


def _mean_cells(errors: ErrorsLike, corruptions: Sequence[str] | None) -> float:
    table = _rates_table(errors, "errors")
    names = list(table) if corruptions is None else list(corruptions)
    if not names:
        raise ValueError("Expected at least one corruption, but got none")
    _require(table, names, "errors")
    return math.fsum(e for name in names for e in table[name]) / (len(names) * _N_SEVERITIES)


def unnormalised_mean_error(
    errors: ErrorsLike, corruptions: Sequence[str] | None = COMMON
) -> float:
    """Plain mean of the error cells, in percent. This is NOT mCE.

    mCE divides each corruption's summed error by AlexNet's (or a reference's) before
    averaging, so corruptions that are hard for every model do not dominate; this mean does
    no normalisation and is not comparable with published mCE numbers (a frequent confusion).

    Args:
        errors: a CorruptionErrors or a mapping corruption -> 5 error rates.
        corruptions: which corruptions to average (default the 15 common; None for all present).

    Returns:
        100 * mean error over the chosen corruptions and severities 1..5.

    Example:
        >>> round(unnormalised_mean_error({"fog": [0.1, 0.2, 0.3, 0.4, 0.5]}, ["fog"]), 6)
        30.0
    """
    return 100.0 * _mean_cells(errors, corruptions)


def mean_accuracy(errors: ErrorsLike, corruptions: Sequence[str] | None = COMMON) -> float:
    """Mean accuracy over corruptions and severities, in percent (the CIFAR-10-C/100-C convention).

    CIFAR-C results are never AlexNet-normalised (AlexNet was never measured there); they are
    reported as mean accuracy, as RobustBench does over the 15 common corruptions.

    Args:
        errors: a CorruptionErrors or a mapping corruption -> 5 error rates.
        corruptions: which corruptions to average (default the 15 common; None for all present).

    Returns:
        100 * (1 - mean error).

    Example:
        >>> round(mean_accuracy({"fog": [0.1, 0.2, 0.3, 0.4, 0.5]}, corruptions=None), 6)
        70.0
    """
    return 100.0 * (1.0 - _mean_cells(errors, corruptions))


def errors_from_predictions(
    predictions: Mapping[str, Sequence[Any]],
    labels: Any,
    clean_predictions: Any = None,
    *,
    readout: str = "head",
    protocol: Mapping[str, Any],
    ids: Sequence[str] | None = None,
) -> CorruptionErrors:
    """Error rates and per-image correctness from predicted labels.

    For the ``"on-the-fly"`` and ``"imagenet-c-recipe"`` sources the corruption library's
    version is recorded under ``"generator"`` unless the protocol already says it, since
    results from different generator versions are not comparable.

    Args:
        predictions: corruption name -> five arrays of predicted labels (shape (n,)), one per
            severity 1..5 in order.
        labels: true labels, shape (n,), the same images in the same order in every cell.
        clean_predictions: optional predicted labels on the clean images, shape (n,).
        readout: how predictions were made (``"head"``, ``"linear-probe"``, ``"knn"``, ...).
        protocol: what produced the images; must contain ``"source"``.
        ids: optional item ids of the images, in order.

    Returns:
        A CorruptionErrors with ``correct`` (and ``clean_correct``) filled in.

    Example:
        >>> result = errors_from_predictions(
        ...     {"fog": [[0, 1, 1, 0]] * 5}, [0, 1, 0, 0], readout="knn",
        ...     protocol={"source": "released-imagenet-c"})
        >>> result.errors["fog"]
        (0.25, 0.25, 0.25, 0.25, 0.25)
    """
    truth = _checks.labels(labels).cpu().numpy()
    n = truth.shape[0]
    if n < 1:
        raise ValueError("Expected at least one label, but got none")
    if not isinstance(predictions, Mapping) or not predictions:
        raise ValueError(
            f"Expected predictions to be a non-empty mapping corruption -> 5 arrays, but got "
            f"{predictions!r}"
        )
    correct: dict[str, np.ndarray] = {}
    for name, per_severity in predictions.items():
        if not _is_seq(per_severity) or len(per_severity) != _N_SEVERITIES:
            got = len(per_severity) if _is_seq(per_severity) else repr(per_severity)
            raise ValueError(
                f"Expected predictions[{name!r}] to hold 5 arrays (severities 1..5), but got {got}"
            )
        correct[name] = np.stack(
            [
                _checks.labels(p, n, f"predictions[{name!r}] severity {s}").cpu().numpy() == truth
                for s, p in zip(SEVERITIES, per_severity, strict=True)
            ]
        )
    clean_correct = None
    if clean_predictions is not None:
        clean_correct = _checks.labels(clean_predictions, n, "clean_predictions").cpu().numpy()
        clean_correct = clean_correct == truth
    recorded = dict(protocol) if isinstance(protocol, Mapping) else protocol
    if (
        isinstance(recorded, dict)
        and recorded.get("source") in ("on-the-fly", "imagenet-c-recipe")
        and "generator" not in recorded
    ):
        recorded["generator"] = generator_version()
    return CorruptionErrors(
        # Wrong counts over n, not 1 - accuracy: 2 wrong of 10 is exactly 0.2.
        errors={name: tuple((n - c.sum(axis=1)) / n) for name, c in correct.items()},
        clean_error=None if clean_correct is None else (n - int(clean_correct.sum())) / n,
        n=n,
        readout=readout,
        protocol=recorded,  # type: ignore[arg-type]
        correct=correct,
        clean_correct=clean_correct,
        ids=None if ids is None else tuple(ids),
    )


@dataclasses.dataclass(frozen=True)
class ReferenceScores:
    """CE per corruption, mCE and relative mCE of one table against one reference; all None
    with ``note`` saying why when the reference does not apply (another protocol, missing
    corruptions, no clean error)."""

    ce: dict[str, float] | None
    mce: float | None
    relative_mce: float | None
    note: str = ""


def reference_scores(
    errors: CorruptionErrors, reference: ReferenceLike = "alexnet"
) -> ReferenceScores:
    """:func:`ce`, :func:`mce` and :func:`relative_mce` together, or why they are undefined.

    Example:
        >>> table = CorruptionErrors({"fog": (0.1, 0.2, 0.3, 0.4, 0.5)}, None, 100, "head",
        ...                          {"source": "on-the-fly"})
        >>> reference_scores(table).mce is None
        True
    """
    try:
        return ReferenceScores(
            ce(errors, reference), mce(errors, reference), relative_mce(errors, reference=reference)
        )
    except (ProtocolMismatch, ValueError) as exc:
        return ReferenceScores(None, None, None, str(exc))


def mean_ssim(cells: Sequence[Any]) -> list[float] | None:
    """The mean SSIM to the clean images of each cell (one array per severity; NaN entries
    ignored), or None when a cell has no SSIM recorded.

    Example:
        >>> mean_ssim([np.array([0.5, np.nan, 0.7]), [1.0]])
        [0.6, 1.0]
        >>> mean_ssim([[1.0], None]) is None
        True
    """
    if any(cell is None for cell in cells):
        return None
    arrays = [c.detach().cpu().numpy() if hasattr(c, "detach") else np.asarray(c) for c in cells]
    return [float(np.nanmean(array)) for array in arrays]
