"""The background contract: ImageNet-9 BG-Gap, acc(mixed_same) - acc(mixed_rand)."""

from __future__ import annotations

from pytest_sslrobust.contracts.decision import conclude
from pytest_sslrobust.contracts.explain import fmt
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.background import bg_gap
from pytest_sslrobust.results import ContractResult

__all__ = ["assert_bg_gap_below"]


def assert_bg_gap_below(
    acc_mixed_same: float,
    acc_mixed_rand: float,
    limit: float,
    *,
    label: str | None = None,
    confidence: float | None = None,
) -> ContractResult:
    """Assert that the BG-Gap, acc(mixed_same) - acc(mixed_rand), is at most ``limit``.

    The caller's scale is kept: fractions give a gap in fractions, percent a gap in points,
    and ``limit`` must be on the same scale (a limit above 1 with two fractional accuracies
    is refused as a likely mix-up).

    Args:
        acc_mixed_same: accuracy on ImageNet-9 mixed_same.
        acc_mixed_rand: accuracy on ImageNet-9 mixed_rand.
        limit: the largest acceptable gap, on the accuracies' scale.
        label: tells several results of one test apart (default ``"bg_gap"``).
        confidence: not supported for two summary numbers; must be None.
    """
    __tracebackhide__ = True
    bound = _checks.number(limit, "limit")
    _checks.no_confidence(confidence, "two summary accuracies have no images to resample")
    value = bg_gap(acc_mixed_same, acc_mixed_rand)
    same, rand = float(acc_mixed_same), float(acc_mixed_rand)
    fractions = max(same, rand) <= 1.0
    if fractions and abs(bound) > 1.0:
        raise ValueError(
            f"Expected limit on the accuracies' scale, but got {bound:g} with fractional "
            f"accuracies {same:g} and {rand:g}; use {bound / 100:g} or pass percent accuracies"
        )
    decimals = 4 if fractions else 2
    rows = [
        ("mixed_same accuracy", fmt(same, decimals), "", "", ""),
        ("mixed_rand accuracy", fmt(rand, decimals), "", "", ""),
    ]
    return conclude(
        "assert_bg_gap_below",
        metric="bg_gap",
        shown="BG-Gap",
        value=value,
        high=bound,
        better="lower",
        label=_checks.name_or_default(label, "bg_gap"),
        decimals=decimals,
        context="accuracy fractions" if fractions else "accuracy points",
        rows=rows,
        details=[{"item": "mixed_same", "value": same}, {"item": "mixed_rand", "value": rand}],
    )
