"""Which baseline model each model of the run is compared with: ``--sslrobust-compare-models``."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_sslrobust.baselines.files import BaselineError
from pytest_sslrobust.results import ContractResult

__all__ = ["model_ids", "parse_model_mapping", "resolve_models"]


def parse_model_mapping(text: str) -> tuple[tuple[str, str | None], ...]:
    """Parse ``BASELINE`` or ``BASELINE=MODEL[,BASELINE=MODEL...]`` (model ids of test ids).

    A lone ``BASELINE`` (no ``=``) names the baseline's model that the run's only model is
    compared with; it is returned as ``(BASELINE, None)``. Raises ``ValueError`` saying what
    to write instead.
    """
    pairs: list[tuple[str, str | None]] = []
    entries = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not entry for entry in entries):
        raise ValueError("expected BASELINE or BASELINE=MODEL[,BASELINE=MODEL...], no empty entry")
    for entry in entries:
        old, equals, new = (part.strip() for part in entry.partition("="))
        if not old or (equals and not new):
            raise ValueError(f"{entry!r} is not BASELINE=MODEL (model ids as in test ids)")
        if not equals and len(entries) > 1:
            raise ValueError(
                f"{entry!r} has no =MODEL: with several entries each must be BASELINE=MODEL"
            )
        pairs.append((old, new if equals else None))
    for index, name in ((0, "baseline model"), (1, "model")):
        names = [pair[index] for pair in pairs if pair[index] is not None]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{name} {', '.join(map(str, repeated))} mapped more than once")
    return tuple(pairs)


def model_ids(results: Sequence[ContractResult]) -> list[str]:
    return sorted({r.model_id for r in results if r.model_id is not None})


def resolve_models(
    baseline_ids: Sequence[str],
    current_ids: Sequence[str],
    mapping: Sequence[tuple[str, str | None]] | None = None,
) -> dict[str, str]:
    """Which model of this run each baseline model is compared with, by model id.

    Without ``mapping``: a model id present in both is compared with itself, and when the
    baseline and the run each hold exactly one model, those two are compared whatever
    their names (a release baseline against a candidate). Raises ``BaselineError`` for a
    mapping that names a model neither side has.
    """
    if mapping is None:
        if len(baseline_ids) == 1 and len(current_ids) == 1:
            return {baseline_ids[0]: current_ids[0]}
        return {name: name for name in baseline_ids if name in current_ids}
    resolved: dict[str, str] = {}
    for old, new in mapping:
        if new is None:
            if len(current_ids) != 1:
                raise BaselineError(
                    f"--sslrobust-compare-models={old} needs exactly one model under test, but "
                    f"this run has {len(current_ids)} ({', '.join(current_ids) or 'none'}): "
                    "write BASELINE=MODEL pairs"
                )
            new = current_ids[0]
        if old not in baseline_ids:
            raise BaselineError(
                f"--sslrobust-compare-models: the baseline has no results of model {old!r}; "
                f"it has {', '.join(baseline_ids) or 'none'}"
            )
        if new not in current_ids:
            raise BaselineError(
                f"--sslrobust-compare-models: this run has no results of model {new!r}; it "
                f"has {', '.join(current_ids) or 'none'}"
            )
        resolved[old] = new
    return resolved
