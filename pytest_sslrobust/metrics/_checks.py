"""Argument checks shared by the metrics and the contracts: shapes, numbers, labels."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

ArrayLike = Any  # torch.Tensor, np.ndarray or anything np.asarray accepts


def as_tensor(value: ArrayLike, name: str, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A tensor of ``dtype`` on the value's own device (numpy and lists go to the CPU)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(dtype)
    try:
        return torch.as_tensor(np.asarray(value), dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Expected {name} to be an array or tensor, but got {type(value).__name__}"
        ) from exc


def features(value: ArrayLike, name: str = "x", *, min_rows: int = 2) -> torch.Tensor:
    """A finite float64 (n, d) matrix with at least ``min_rows`` rows."""
    tensor = as_tensor(value, name)
    if tensor.ndim != 2:
        raise ValueError(f"Expected {name} to have shape (n, d), but got {tuple(tensor.shape)}")
    if tensor.shape[0] < min_rows:
        raise ValueError(
            f"Expected {name} to have at least {min_rows} rows (examples), but got {tensor.shape[0]}"
        )
    if tensor.shape[1] < 1:
        raise ValueError(
            f"Expected {name} to have at least one column, but got shape {tuple(tensor.shape)}"
        )
    if not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"Expected {name} to be finite, but it has {bad} NaN or inf values")
    return tensor


def paired(x: ArrayLike, y: ArrayLike, *, min_rows: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Two feature matrices over the same examples (same n), on one device."""
    a = features(x, "x", min_rows=min_rows)
    b = features(y, "y", min_rows=min_rows)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"Expected x and y to have the same number of rows (examples), but got "
            f"{a.shape[0]} and {b.shape[0]}"
        )
    return a, b.to(a.device)


def labels(value: ArrayLike, n: int | None = None, name: str = "labels") -> torch.Tensor:
    """Integer class labels, one per example."""
    tensor = as_tensor(value, name, dtype=torch.float64)
    if tensor.ndim != 1:
        raise ValueError(f"Expected {name} to have shape (n,), but got {tuple(tensor.shape)}")
    if (
        not torch.isfinite(tensor).all()
        or not torch.equal(tensor, tensor.round())
        or (tensor < 0).any()
    ):
        raise ValueError(f"Expected {name} to be non-negative integers")
    if n is not None and tensor.shape[0] != n:
        raise ValueError(f"Expected {n} {name}, but got {tensor.shape[0]}")
    return tensor.to(torch.int64)


def not_constant(x: torch.Tensor, name: str) -> None:
    """Refuse an input whose rows are all identical (every similarity is undefined)."""
    if torch.all(x == x[0]):
        raise ValueError(f"Expected {name} to vary across examples, but every row is identical")


def is_scalar(value: Any) -> bool:
    """A real number: Python or numpy, or a 0-d array or tensor; bools are not numbers here."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    return isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0


def number(value: Any, name: str) -> float:
    """A finite real number (bools and strings are refused: they are always mistakes here)."""
    __tracebackhide__ = True
    if not is_scalar(value):
        raise ValueError(f"Expected {name} to be a finite number, but got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"Expected {name} to be a finite number, but got {result}")
    return result


def fraction(value: Any, name: str) -> float:
    """A number in [0, 1]; a percent-looking value gets a hint."""
    __tracebackhide__ = True
    result = number(value, name)
    if not 0.0 <= result <= 1.0:
        hint = f" (did you mean {result / 100:g}?)" if 1.0 < result <= 100.0 else ""
        raise ValueError(
            f"Expected {name} to be a fraction in [0, 1], but got {result:g}{hint}; accuracies "
            f"here are fractions of images, not percent"
        )
    return result


def number_range(low: Any, high: Any) -> tuple[float, float]:
    """Two finite numbers with ``low <= high``."""
    __tracebackhide__ = True
    lo, hi = number(low, "low"), number(high, "high")
    if lo > hi:
        raise ValueError(f"Expected low <= high, but got low={lo:g} and high={hi:g}")
    return lo, hi


def confidence(value: Any) -> float | None:
    """None (no interval), or an interval's confidence level in the open interval (0, 1)."""
    __tracebackhide__ = True
    if value is None:
        return None
    level = number(value, "confidence")
    if not 0.0 < level < 1.0:
        raise ValueError(
            f"Expected confidence in the open interval (0, 1), e.g. 0.95, but got {level:g}"
        )
    return level


def no_confidence(value: Any, why: str) -> None:
    """Refuse a confidence level where no interval can be computed, saying ``why``."""
    __tracebackhide__ = True
    if value is not None:
        raise ValueError(f"Expected confidence=None: {why}")


def name_or_default(value: Any, default: str, name: str = "label") -> str:
    """A non-empty string, or ``default`` for None."""
    __tracebackhide__ = True
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise ValueError(f"Expected {name} to be a non-empty string or None, but got {value!r}")
    return value


def predicted_labels(value: ArrayLike, name: str, n: int) -> torch.Tensor:
    """Predicted labels: (n,) integers as they are, or the argmax of (n, C) scores."""
    __tracebackhide__ = True
    if as_tensor(value, name).ndim == 2:
        scores = features(value, name, min_rows=1)
        if scores.shape[0] != n:
            raise ValueError(f"Expected {n} rows of {name}, but got {scores.shape[0]}")
        return scores.argmax(dim=1)
    return labels(value, n, name)


def positive_number(value: Any, name: str) -> float:
    """A finite Python int or float above 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"Expected {name} to be a positive finite number, but got {value!r}")
    return float(value)


def integer_at_least(value: Any, name: str, minimum: int = 1) -> int:
    """A Python int of at least ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Expected {name} to be an integer >= {minimum}, but got {value!r}")
    return value
