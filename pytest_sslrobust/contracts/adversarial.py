"""The adversarial contract: robust accuracy of an attack result at one budget."""

from __future__ import annotations

from pytest_sslrobust.contracts.decision import conclude
from pytest_sslrobust.contracts.explain import fmt
from pytest_sslrobust.contracts.recorded import correctness_outcomes
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.attacks import AttackResult
from pytest_sslrobust.metrics.intervals import fraction_correct_interval
from pytest_sslrobust.results import ContractResult, run_seed

__all__ = ["assert_robust_accuracy_above"]

# Two budgets closer than this are the same eps (floats from 4 / 255 and friends).
_EPS_MATCH = 1e-12


def _eps_text(eps: float) -> str:
    # Budgets are usually k/255: show that form too, it is how papers state them.
    steps = eps * 255.0
    if eps > 0 and abs(steps - round(steps)) < 1e-6:
        return f"{eps:.4g} = {round(steps)}/255"
    return f"{eps:.4g}"


def assert_robust_accuracy_above(
    result: AttackResult,
    limit: float,
    *,
    eps: float,
    label: str | None = None,
    confidence: float | None = None,
    resamples: int = 1000,
    seed: int | None = None,
) -> ContractResult:
    """Assert that robust accuracy (a fraction) at budget ``eps`` is at least ``limit``.

    Args:
        result: an AttackResult of metric ``"robust_accuracy"`` (from ``robust_accuracy``).
        limit: the smallest acceptable robust accuracy, a fraction in [0, 1].
        eps: the budget to check; must be one of ``result.eps`` (to within 1e-12).
        label: tells several results of one test apart (default ``"robust_accuracy"``).
        confidence: e.g. 0.95 to decide on the lower end of the bootstrap interval; needs
            ``result.per_sample``.
        resamples: bootstrap resamples.
        seed: bootstrap seed (default: the run's ``--sslrobust-seed``; 0 outside a run).

    A result of ``sslrobust.attack`` carries the attacked images' ids and its protocol: the
    recorded result then holds each image's correctness at ``eps``, so a baseline
    comparison decides it paired (the same images, attacked the same way).
    """
    __tracebackhide__ = True
    bound = _checks.fraction(limit, "limit")
    level = _checks.confidence(confidence)
    if not isinstance(result, AttackResult) or result.metric != "robust_accuracy":
        got = result.metric if isinstance(result, AttackResult) else type(result).__name__
        raise ValueError(f"Expected an AttackResult of robust_accuracy, but got {got!r}")
    budget = _checks.number(eps, "eps")
    matches = [i for i, e in enumerate(result.eps) if abs(e - budget) <= _EPS_MATCH]
    if not matches:
        raise ValueError(
            f"Expected eps to be one of the measured budgets "
            f"{', '.join(f'{e!r}' for e in result.eps)}, but got {budget!r}"
        )
    row = matches[0]
    value = float(result.values[row])
    interval = None
    if level is not None:
        if result.per_sample is None:
            raise ValueError(
                "Expected result.per_sample (per-image correctness) for an interval, but it is None"
            )
        interval = fraction_correct_interval(
            result.per_sample[row], resamples=resamples, confidence=level, seed=run_seed(seed)
        )
    rows = [("clean", fmt(result.clean, 4), "", "", "")]
    rows += [
        (f"eps {_eps_text(e)}", fmt(v, 4), "", "", "<- checked" if i == row else "")
        for i, (e, v) in enumerate(zip(result.eps, result.values, strict=True))
    ]
    details = [
        {"item": f"eps {e:g}", "eps": e, "value": v, "checked": i == row}
        for i, (e, v) in enumerate(zip(result.eps, result.values, strict=True))
    ]
    return conclude(
        "assert_robust_accuracy_above",
        metric="robust_accuracy",
        shown="robust accuracy",
        value=value,
        low=bound,
        better="higher",
        label=_checks.name_or_default(label, "robust_accuracy"),
        decimals=4,
        interval=interval,
        context=f"eps {_eps_text(result.eps[row])}; {result.attack}, {result.norm}, "
        f"{result.steps} steps, n={result.n}",
        rows=rows,
        details=details,
        protocol=result.protocol,
        outcomes=None
        if result.per_sample is None
        else correctness_outcomes(result.per_sample[row] > 0.5, result),
    )
