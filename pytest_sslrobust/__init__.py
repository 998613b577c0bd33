"""pytest-sslrobust: robustness contracts for vision backbones, as pytest tests."""

from __future__ import annotations

import importlib
import sys
from importlib import metadata
from typing import Any

from pytest_sslrobust.backbones.registry import BackboneAlias, list_backbones, register_backbone
from pytest_sslrobust.vocabulary import DataError

try:
    __version__ = metadata.version("pytest-sslrobust")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# Heavy names (they import numpy or torch) load on first access, so that `pytest --help`, an
# unrelated project's run and the collection of a suite that imports contracts stay light.
_LAZY = {
    "Dataset": "pytest_sslrobust.data.base",
    "Item": "pytest_sslrobust.data.base",
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
    "list_backbones",
    "register_backbone",
    *_LAZY,
]


class _DeferredContract:
    """A contract (``assert_*``) whose module, and torch with it, is imported at the first
    call: ``from pytest_sslrobust import assert_cka_between`` at the top of a test file costs
    nothing at collection. Documentation and signature are the real function's."""

    def __init__(self, name: str) -> None:
        self.__name__ = self.__qualname__ = name
        self.__module__ = "pytest_sslrobust.assertions"

    def _real(self) -> Any:
        return getattr(importlib.import_module("pytest_sslrobust.assertions"), self.__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        return self._real()(*args, **kwargs)

    @property  # type: ignore[override]
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self._real().__doc__  # type: ignore[no-any-return]

    @property
    def __signature__(self) -> Any:
        import inspect

        return inspect.signature(self._real())

    # No ``__wrapped__``: pytest (9.2) unwraps module attributes while collecting, which
    # would import the contracts, and torch with them.

    def __repr__(self) -> str:
        return f"<contract {self.__name__} (pytest_sslrobust.assertions)>"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = _LAZY[name]
        if module == "pytest_sslrobust.assertions" and module not in sys.modules:
            value: Any = _DeferredContract(name)
        else:
            value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # one object per name from now on
        return value
    raise AttributeError(f"module 'pytest_sslrobust' has no attribute {name!r}")
