"""The in-test regression contract: a value against a baseline value and a tolerance."""

from __future__ import annotations

from pytest_sslrobust.contracts.decision import conclude
from pytest_sslrobust.contracts.explain import distinct, fmt
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.results import ContractResult

__all__ = ["assert_no_regression"]


def assert_no_regression(
    value: float,
    *,
    baseline: float,
    tolerance: float,
    metric: str,
    better: str = "higher",
    label: str | None = None,
) -> ContractResult:
    """Assert that ``value`` is not worse than ``baseline`` by more than ``tolerance``.

    For explicit in-test comparisons (``--sslrobust-compare`` compares whole runs). The
    bound recorded is ``baseline - tolerance`` (low) when higher is better and
    ``baseline + tolerance`` (high) when lower is better.

    Args:
        value: the measured number.
        baseline: the number it is compared with, on the same scale.
        tolerance: the largest acceptable worsening, absolute, >= 0.
        metric: the metric's name (recorded, and the default label).
        better: ``"higher"`` or ``"lower"``.
        label: tells several results of one test apart (default ``metric``).
    """
    __tracebackhide__ = True
    measured = _checks.number(value, "value")
    base = _checks.number(baseline, "baseline")
    slack = _checks.number(tolerance, "tolerance")
    if slack < 0:
        raise ValueError(f"Expected tolerance >= 0, but got {slack:g}")
    if not isinstance(metric, str) or not metric:
        raise ValueError(f"Expected metric to be a non-empty string, but got {metric!r}")
    if better not in ("higher", "lower"):
        raise ValueError(f"Expected better to be 'higher' or 'lower', but got {better!r}")
    worse = base - measured if better == "higher" else measured - base
    shown_value, shown_base = distinct(measured, base, None)
    summary = (
        f"{metric} {shown_value} regressed from the baseline {shown_base} by "
        f"{fmt(worse, None)}, more than the tolerance {fmt(slack, None)}"
    )
    rows = [
        ("baseline", fmt(base, None), "", "", ""),
        ("tolerance", fmt(slack, None), "", "", f"{better} is better"),
    ]
    return conclude(
        "assert_no_regression",
        metric=metric,
        shown=metric,
        value=measured,
        low=base - slack if better == "higher" else None,
        high=base + slack if better == "lower" else None,
        better=better,
        label=_checks.name_or_default(label, metric),
        decimals=None,
        rows=rows,
        summary=summary,
        details=[{"item": "baseline", "value": base}, {"item": "tolerance", "value": slack}],
    )
