"""Argument checks shared by the metrics: shapes, finiteness, conversion to float64."""

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
