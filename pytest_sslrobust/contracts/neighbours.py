"""The neighbour-consistency contract: how often a variant's nearest neighbours share its variant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_sslrobust.contracts.decision import conclude
from pytest_sslrobust.contracts.explain import fmt, signed
from pytest_sslrobust.contracts.inputs import features_of, protocol_of
from pytest_sslrobust.contracts.recorded import mean_outcomes
from pytest_sslrobust.metrics import _checks
from pytest_sslrobust.metrics.geometry import consistency_of, neighbour_chance, neighbour_counts
from pytest_sslrobust.results import ContractResult

__all__ = ["assert_neighbour_consistency_above"]


def assert_neighbour_consistency_above(
    features_by_variant_or_scores: Mapping[str, Any],
    limit: float,
    *,
    k: int = 10,
    variants: Sequence[str] | None = None,
    label: str | None = None,
    confidence: float | None = None,
) -> ContractResult:
    """Assert that each variant's neighbour consistency (a fraction) is at least ``limit``.

    Args:
        features_by_variant_or_scores: variant -> features (FeatureSet or (n_v, d)), pooled
            for ``neighbour_consistency``; or variant -> an already computed score.
        limit: the smallest acceptable same-variant fraction of the k nearest neighbours.
        k: neighbours per sample (with features only).
        variants: which variants must meet the limit (default all); all are shown.
        label: tells several results of one test apart (default ``"neighbour_consistency"``).
        confidence: not supported (resampling would make duplicated samples each other's
            nearest neighbours); must be None.

    Returns:
        The recorded ContractResult, whose value is the lowest checked score. With features,
        it holds that variant's per-image same-variant fractions (on the pool as it is), so
        a baseline comparison decides it paired when the variant's images are the same.
    """
    __tracebackhide__ = True
    bound = _checks.fraction(limit, "limit")
    _checks.no_confidence(
        confidence,
        "a bootstrap of neighbour consistency would duplicate samples, which become each "
        "other's nearest neighbours",
    )
    given = features_by_variant_or_scores
    if not isinstance(given, Mapping) or not given:
        raise ValueError(
            f"Expected a non-empty mapping variant -> features or variant -> score, but got "
            f"{given!r}"
        )
    kinds = {_checks.is_scalar(value) for value in given.values()}
    if len(kinds) != 1:
        raise ValueError("Expected either all features or all scores in the mapping, not a mix")
    chance: dict[str, float] = {}
    per_image: dict[str, Any] = {}
    if kinds == {True}:
        scores = {
            name: _checks.fraction(value, f"score of {name!r}") for name, value in given.items()
        }
        protocol: dict[str, Any] = {}
    else:
        features = {name: features_of(value) for name, value in given.items()}
        counts = neighbour_counts(features, k)
        scores = consistency_of(counts, k)
        per_image = {name: same / k for name, same in counts.items()}
        chance = neighbour_chance(features)
        protocol = protocol_of(*given.values())
    checked = list(given) if variants is None else list(variants)
    unknown = [name for name in checked if name not in scores]
    if not checked or unknown:
        raise ValueError(
            f"Expected variants among {', '.join(map(str, scores))}, but got "
            f"{', '.join(map(str, unknown)) if unknown else 'none'}"
        )
    value = min(scores[name] for name in checked)
    lowest = min(checked, key=lambda name: scores[name])
    rows = []
    details = []
    for name, score in scores.items():
        is_checked = name in checked
        notes = [f"chance {chance[name]:.4f}"] if name in chance else []
        if is_checked and score < bound:
            notes.append("<- below the limit")
        elif not is_checked:
            notes.append("(not checked)")
        rows.append(
            (
                f"variant {name}",
                fmt(score, 4),
                f">= {fmt(bound, 4)}" if is_checked else "",
                signed(score - bound, 4) if is_checked else "",
                "  ".join(notes),
            )
        )
        row: dict[str, Any] = {"item": name, "value": score, "checked": is_checked}
        if name in chance:
            row["chance"] = chance[name]
        details.append(row)
    context = f"lowest: {lowest}" + (f", k={k}" if chance else "")
    return conclude(
        "assert_neighbour_consistency_above",
        metric="neighbour_consistency",
        shown="neighbour consistency",
        value=value,
        low=bound,
        better="higher",
        label=_checks.name_or_default(label, "neighbour_consistency"),
        decimals=4,
        context=context,
        rows=rows,
        protocol=protocol,
        details=details,
        outcomes=mean_outcomes(per_image[lowest], given[lowest], name=f"variant {lowest}")
        if per_image
        else None,
    )
