"""Robustness contracts as assertions: the public entry to the contract families of
``pytest_sslrobust.contracts`` (each records a ContractResult and explains its failures)."""

from __future__ import annotations

from pytest_sslrobust.contracts.accuracy import (
    assert_accuracy_above,
    assert_accuracy_drop_below,
    assert_balanced_accuracy_above,
)
from pytest_sslrobust.contracts.adversarial import assert_robust_accuracy_above
from pytest_sslrobust.contracts.attribution import (
    assert_focus_shift_below,
    assert_foreground_focus_above,
)
from pytest_sslrobust.contracts.background import assert_bg_gap_below
from pytest_sslrobust.contracts.corruption import assert_mce_below, assert_relative_mce_below
from pytest_sslrobust.contracts.neighbours import assert_neighbour_consistency_above
from pytest_sslrobust.contracts.regression import assert_no_regression
from pytest_sslrobust.contracts.similarity import assert_cca_between, assert_cka_between

__all__ = [
    "assert_accuracy_above",
    "assert_accuracy_drop_below",
    "assert_balanced_accuracy_above",
    "assert_bg_gap_below",
    "assert_cca_between",
    "assert_cka_between",
    "assert_focus_shift_below",
    "assert_foreground_focus_above",
    "assert_mce_below",
    "assert_neighbour_consistency_above",
    "assert_no_regression",
    "assert_relative_mce_below",
    "assert_robust_accuracy_above",
]
