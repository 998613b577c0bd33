"""pytest-sslrobust: robustness contracts for vision backbones, as pytest tests."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from pytest_sslrobust.backbones.registry import BackboneAlias, list_backbones, register_backbone
from pytest_sslrobust.data.base import DataError, Dataset, Item

try:
    __version__ = metadata.version("pytest-sslrobust")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# Heavy names (they import torch) load on first access, so `pytest --help` stays fast.
_LAZY = {
    "Backbone": "pytest_sslrobust.backbones.base",
    "BackboneError": "pytest_sslrobust.backbones.base",
    "load_backbone": "pytest_sslrobust.backbones.loading",
    "FeatureSet": "pytest_sslrobust.features.store",
    "FeatureStore": "pytest_sslrobust.features.store",
    "FeatureCache": "pytest_sslrobust.features.cache",
    "load_dataset": "pytest_sslrobust.data.specs",
    "from_arrays": "pytest_sslrobust.data.sources",
    "assert_mce_below": "pytest_sslrobust.assertions",
    "assert_relative_mce_below": "pytest_sslrobust.assertions",
    "assert_cka_between": "pytest_sslrobust.assertions",
    "assert_cca_between": "pytest_sslrobust.assertions",
    "assert_accuracy_above": "pytest_sslrobust.assertions",
    "assert_accuracy_drop_below": "pytest_sslrobust.assertions",
    "assert_balanced_accuracy_above": "pytest_sslrobust.assertions",
    "assert_neighbour_consistency_above": "pytest_sslrobust.assertions",
    "assert_robust_accuracy_above": "pytest_sslrobust.assertions",
    "assert_bg_gap_below": "pytest_sslrobust.assertions",
    "assert_no_regression": "pytest_sslrobust.assertions",
    "assert_focus_shift_below": "pytest_sslrobust.assertions",
    "assert_foreground_focus_above": "pytest_sslrobust.assertions",
}

__all__ = [
    "BackboneAlias",
    "DataError",
    "Dataset",
    "Item",
    "list_backbones",
    "register_backbone",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pytest_sslrobust' has no attribute {name!r}")
