"""Baseline files of contract results, tolerances, and the comparison that gates a release."""

from __future__ import annotations

from pytest_sslrobust.baselines.comparison import (
    FLIPPED_SHOWN,
    IGNORED_PROTOCOL_KEYS,
    NO_PROTOCOL,
    STATUSES,
    Comparison,
    ComparisonRow,
    compare,
)
from pytest_sslrobust.baselines.files import (
    KIND,
    Baseline,
    BaselineError,
    load_baseline,
    save_baseline,
)
from pytest_sslrobust.baselines.models import parse_model_mapping, resolve_models
from pytest_sslrobust.baselines.tolerances import (
    KNOWN_DIRECTIONS,
    Tolerance,
    parse_tolerances,
    unmatched_tolerances,
)

__all__ = [
    "FLIPPED_SHOWN",
    "IGNORED_PROTOCOL_KEYS",
    "KIND",
    "KNOWN_DIRECTIONS",
    "NO_PROTOCOL",
    "STATUSES",
    "Baseline",
    "BaselineError",
    "Comparison",
    "ComparisonRow",
    "Tolerance",
    "compare",
    "load_baseline",
    "parse_model_mapping",
    "parse_tolerances",
    "resolve_models",
    "save_baseline",
    "unmatched_tolerances",
]
