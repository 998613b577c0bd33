"""The comparison that gates a release: each result of the run against its baseline result."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_sslrobust.baselines.files import Baseline
from pytest_sslrobust.baselines.models import model_ids, resolve_models
from pytest_sslrobust.baselines.tolerances import KNOWN_DIRECTIONS, Tolerance, worse_word
from pytest_sslrobust.results import ContractResult

__all__ = [
    "FLIPPED_SHOWN",
    "IGNORED_PROTOCOL_KEYS",
    "NO_PROTOCOL",
    "STATUSES",
    "Comparison",
    "ComparisonRow",
    "compare",
]

# Protocol fields expected to differ between the baseline's model and the candidate: a new
# release has new weights and may run on newer libraries, which is the point of comparing.
IGNORED_PROTOCOL_KEYS = ("backbone", "backbone_fingerprint", "model", "versions", "environment")

# The note of a row whose results came from bare arrays on both sides.
NO_PROTOCOL = (
    "no protocol on either side (contracts on bare arrays): compared by value only; the "
    "data, model and subset behind the values are unchecked"
)

# In the order the table shows them: what fails the gate first, then what needs a look.
STATUSES = ("regression", "refused", "missing", "worse", "changed", "new", "improved", "unchanged")


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    """One contract result next to its baseline.

    ``delta`` is now minus baseline; ``allowed`` the absolute worsening the tolerance
    permits (``None`` without a tolerance). ``status`` is one of :data:`STATUSES`. A
    ``paired`` row was decided on the same images: ``interval`` is the paired bootstrap
    interval of ``delta``, ``p_value`` that of a worsening beyond the tolerance by ``test``,
    ``flipped`` the images that worsened most (for one accuracy: became wrong; ``lost`` and
    ``gained`` count them), ``worst_parts`` the cells, classes or variants that did. An
    unpaired row compared by value says why in ``unpaired`` (and in its note when it is
    worse).
    """

    key: str
    metric: str
    baseline_value: float | None
    value: float | None
    delta: float | None
    allowed: float | None
    status: str
    note: str = ""
    better: str = "none"
    paired: bool = False
    p_value: float | None = None
    lost: int | None = None
    gained: int | None = None
    flipped: tuple[str, ...] = ()
    interval: tuple[float, float] | None = None
    worst_parts: tuple[str, ...] = ()
    test: str = ""
    unpaired: str = ""


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The rows of a comparison, in key order, and what they mean for the gate."""

    rows: tuple[ComparisonRow, ...]
    missing_fails: bool = True
    notes: tuple[str, ...] = ()

    def with_status(self, status: str) -> list[ComparisonRow]:
        return [row for row in self.rows if row.status == status]

    @property
    def regressions(self) -> list[ComparisonRow]:
        return self.with_status("regression")

    @property
    def refused(self) -> list[ComparisonRow]:
        return self.with_status("refused")

    @property
    def improved(self) -> list[ComparisonRow]:
        return self.with_status("improved")

    @property
    def missing(self) -> list[ComparisonRow]:
        return self.with_status("missing")

    @property
    def failed(self) -> bool:
        """Regressions fail the gate; so do refused pairs, which could not be compared, and
        (unless ``missing_fails`` is false) baseline results this run did not produce."""
        return bool(self.regressions or self.refused or (self.missing_fails and self.missing))

    def summary(self) -> str:
        """``1 regression, 3 unchanged, ...`` in table order."""
        counts = [(status, len(self.with_status(status))) for status in STATUSES]
        return ", ".join(f"{count} {status}" for status, count in counts if count) or "nothing"

    def lines(self, width: int = 100) -> list[str]:
        """An aligned table for the terminal, regressions first, then refused, missing..."""
        if not self.rows:
            return []
        order = {status: index for index, status in enumerate(STATUSES)}
        rows = sorted(self.rows, key=lambda row: (order.get(row.status, len(order)), row.key))
        has_notes = any(row.note for row in rows)
        header = ("status", "contract", "baseline", "now", "delta", "allowed")
        header += ("note",) if has_notes else ("",)
        cells = [
            (
                row.status,
                row.key,
                _number(row.baseline_value),
                _number(row.value),
                _number(row.delta, signed=True),
                _allowed(row),
                row.note,
            )
            for row in rows
        ]
        widths = [max(len(cell[i]) for cell in [header, *cells]) for i in range(6)]
        # The key gives way so that the columns fit; notes are free text and may run on.
        others = sum(widths) - widths[1] + 2 * 5 + (len("  note") if has_notes else 0)
        widths[1] = min(widths[1], max(20, width - others))

        def line(cell: tuple[str, ...]) -> str:
            key = cell[1] if len(cell[1]) <= widths[1] else "..." + cell[1][-widths[1] + 3 :]
            padded = [c.ljust(w) for c, w in zip((cell[0], key, *cell[2:6]), widths, strict=True)]
            return "  ".join([*padded, cell[6]]).rstrip()

        return [line(header), *(line(cell) for cell in cells)]


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.6g}" if signed else f"{value:.6g}"


def _allowed(row: ComparisonRow) -> str:
    if row.allowed is None:
        return "-"
    # Shown with the sign of the worsening it allows, as tolerances are written.
    return f"{row.allowed:+.6g}" if row.better != "higher" else f"{-row.allowed:+.6g}"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _protocol_differences(baseline: ContractResult, current: ContractResult) -> list[str]:
    """``field: baseline vs now`` for every shared, non-ignored protocol field that differs."""
    # Compare the JSON forms: the baseline's protocol went through JSON (tuples became
    # lists, NaN a string) while the current one is still in memory.
    old = baseline.to_dict()["protocol"]
    new = current.to_dict()["protocol"]
    differences = []
    if baseline.metric != current.metric:
        differences.append(f"metric: {baseline.metric} vs {current.metric}")
    for field in sorted(set(old) & set(new)):
        if field in IGNORED_PROTOCOL_KEYS or old[field] == new[field]:
            continue
        differences.append(f"{field}: {_plain(old[field])} vs {_plain(new[field])}")
    return differences


def _interval_end(result: ContractResult, direction: str) -> float | None:
    """The end of the current run's interval most favourable to it, if it has one."""
    interval = result.interval
    if not isinstance(interval, Mapping):
        return None
    try:
        end = float(interval["low" if direction == "lower" else "high"])
    except (KeyError, TypeError, ValueError):
        return None
    return end if math.isfinite(end) else None


def _beyond(worsening: float, allowed: float) -> bool:
    # Subtraction rounding (0.4 - 0.3 = 0.10000000000000003) must not turn a worsening of
    # exactly the tolerance into a regression.
    return worsening > allowed and not math.isclose(worsening, allowed, rel_tol=1e-9, abs_tol=1e-12)


def _same(same: bool) -> str:
    return "unchanged" if same else "changed"


# How many of the images that became wrong a row names.
FLIPPED_SHOWN = 5

# Reads a feature set's features from the cache by its key, or None when it is not there.
FeatureReader = Callable[[str], Any]


@dataclasses.dataclass(frozen=True)
class _FeaturePairing:
    """Both runs' features of a similarity result (CKA, CCA), rows the same images."""

    measure: Callable[[Any, Any], float]
    baseline: tuple[Any, Any]
    current: tuple[Any, Any]


def _is_features(outcomes: Any) -> bool:
    from pytest_sslrobust.contracts.similarity import FEATURES_FORMAT

    return isinstance(outcomes, Mapping) and outcomes.get("format") == FEATURES_FORMAT


def _feature_pairing(
    baseline: ContractResult, current: ContractResult, features: FeatureReader | None
) -> _FeaturePairing | str:
    """Both runs' cached features when the measure can be recomputed on the same images,
    else why not (then the row is decided by value and tolerance, and says so)."""
    from pytest_sslrobust.contracts.similarity import similarity_measure

    old, new = baseline.outcomes, current.outcomes
    if not (_is_features(old) and _is_features(new)):
        side = "the baseline" if not _is_features(old) else "this run"
        return f"{side} records no cached features for {current.metric}"
    assert isinstance(old, Mapping) and isinstance(new, Mapping)
    if (old.get("measure"), old.get("reduce")) != (new.get("measure"), new.get("reduce")):
        return f"another measure ({old.get('measure')} vs {new.get('measure')})"
    if (old.get("n"), old.get("digest")) != (new.get("n"), new.get("digest")):
        return "other images (item ids differ)"
    if features is None:
        return "no feature cache to read both runs' features from"
    try:
        measure = similarity_measure(str(new["measure"]), new.get("reduce"))
    except KeyError:
        return f"unknown measure {new.get('measure')!r}"
    sides = []
    for name, result, reference in (
        ("the baseline's", baseline, old),
        ("this run's", current, new),
    ):
        pair = []
        for axis in ("x", "y"):
            loaded = features(str(reference[axis]))
            if loaded is None:
                return (
                    f"{name} features ({axis}) are not in the cache (run the baseline with "
                    "the same --sslrobust-cache-dir to compare paired)"
                )
            if int(loaded.shape[0]) != int(reference["n"]):
                return f"{name} cached features ({axis}) have {loaded.shape[0]} rows, not {reference['n']}"
            pair.append(loaded)
        recomputed = float(measure(pair[0], pair[1]))
        if not math.isclose(recomputed, result.value, rel_tol=1e-5, abs_tol=1e-6):
            return f"{name} cached features give {recomputed:.6g}, not its value"
        sides.append((pair[0], pair[1]))
    return _FeaturePairing(measure, sides[0], sides[1])


def _pairing(
    baseline: ContractResult, current: ContractResult, features: FeatureReader | None = None
) -> tuple[Any, Any] | _FeaturePairing | str:
    """Both results' per-image outcomes (or, for CKA and CCA, both runs' cached features)
    when they can be compared image by image, else why not (the row says ``unpaired:`` and
    that reason)."""
    from pytest_sslrobust.outcomes import Outcomes, unpaired_reason

    if _is_features(baseline.outcomes) or _is_features(current.outcomes):
        return _feature_pairing(baseline, current, features)
    if current.outcomes is None and baseline.outcomes is None:
        return f"{current.metric} results carry no per-image outcomes"
    if baseline.outcomes is None:
        return "the baseline stores no per-image outcomes (saved by an older version)"
    if current.outcomes is None:
        return "this run's result carries no per-image outcomes"
    sides = []
    for name, result in (("the baseline's", baseline), ("this run's", current)):
        digest = result.protocol.get("ids_digest")
        try:
            outcomes = Outcomes.from_dict(
                result.outcomes,  # type: ignore[arg-type]
                digest=None if digest is None else str(digest),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return f"{name} per-image outcomes cannot be read ({exc})"
        if not outcomes.reproduces(result.value):
            return f"{name} per-image outcomes give {outcomes.value():.6g}, not its value"
        sides.append(outcomes)
    reason = unpaired_reason(sides[0], sides[1])
    return reason if reason is not None else (sides[0], sides[1])


def _paired_row(
    common: dict[str, Any],
    worsening: float,
    allowed: float | None,
    pairing: tuple[Any, Any] | _FeaturePairing,
    seed: int,
    confidence: float,
) -> ComparisonRow:
    """A paired row; ``compare`` turns its provisional regression into a decision."""
    from pytest_sslrobust.outcomes import paired_difference, similarity_difference

    decision = {"better": common["better"], "allowed": allowed, "confidence": confidence}
    if isinstance(pairing, _FeaturePairing):
        paired = similarity_difference(
            pairing.baseline, pairing.current, pairing.measure, **decision, seed=seed
        )
    else:
        paired = paired_difference(*pairing, **decision, seed=seed)
    single = paired.parts[0] if len(paired.parts) == 1 else None
    fields = {
        **common,
        "allowed": allowed,
        "paired": True,
        "lost": None if single is None else single.lost,
        "gained": None if single is None else single.gained,
        "flipped": paired.images,
        "interval": (paired.low, paired.high),
        "worst_parts": tuple(part.name for part in paired.parts if part.worsening > 0)[:3],
        "test": paired.test,
    }
    note = paired.describe()
    if allowed is None:
        status = "improved" if worsening < 0 else "unchanged" if worsening == 0 else "worse"
        return ComparisonRow(**fields, status=status, note=f"{note}; no tolerance given")
    status = (
        "improved"
        if worsening < 0
        else "unchanged"
        if worsening == 0
        else "regression"
        if _beyond(worsening, allowed)
        else "worse"
    )
    return ComparisonRow(
        **fields, status=status, note=f"{note}; p={paired.p:.3g}", p_value=paired.p
    )


def _compare_pair(
    baseline: ContractResult,
    current: ContractResult,
    tolerances: Mapping[str, Tolerance],
    seed: int = 0,
    confidence: float = 0.95,
    features: FeatureReader | None = None,
) -> ComparisonRow:
    tolerance = tolerances.get(current.metric, tolerances.get("*"))
    direction = next(
        (
            d
            for d in (
                current.better,
                baseline.better,
                KNOWN_DIRECTIONS.get(current.metric),
                tolerance.better if tolerance is not None else None,
            )
            if d in ("lower", "higher")
        ),
        "none",
    )
    base, value = baseline.value, current.value
    delta = value - base
    common: dict[str, Any] = {
        "key": current.key,
        "metric": current.metric,
        "baseline_value": base,
        "value": value,
        "delta": delta,
        "better": direction,
    }
    differences = _protocol_differences(baseline, current)
    if differences:
        return ComparisonRow(
            **common,
            allowed=None,
            status="refused",
            note="protocol differs (baseline vs now): " + "; ".join(differences),
        )
    if bool(baseline.protocol) != bool(current.protocol):
        side = "the baseline's" if not baseline.protocol else "this run's"
        return ComparisonRow(
            **common,
            allowed=None,
            status="refused",
            note=(
                f"{side} result has no protocol (a contract on bare arrays), so nothing says "
                "both measured the same data, model and subset; pass sslrobust.features() "
                "or sslrobust.predictions() to the contract"
            ),
        )
    row = _decide(common, baseline, current, tolerance, direction, seed, confidence, features)
    if not baseline.protocol:
        # Neither side knows what produced it: the values are compared, and the row says so.
        return dataclasses.replace(row, note="; ".join(filter(None, [row.note, NO_PROTOCOL])))
    return row


def _decide(
    common: dict[str, Any],
    baseline: ContractResult,
    current: ContractResult,
    tolerance: Tolerance | None,
    direction: str,
    seed: int,
    confidence: float,
    features: FeatureReader | None = None,
) -> ComparisonRow:
    base, value, delta = common["baseline_value"], common["value"], common["delta"]
    if tolerance is not None and tolerance.better not in (None, direction):
        return ComparisonRow(
            **common,
            allowed=None,
            status="refused",
            note=(
                f"tolerance {tolerance} says {current.metric} gets worse "
                f"{worse_word(tolerance.better)}, but the result says {direction} is better"
            ),
        )
    allowed = tolerance.allowed(base) if tolerance is not None else None
    if not math.isfinite(base):
        same = base == value or (math.isnan(base) and math.isnan(value))
        note = "" if same else "the baseline is not a finite number"
        return ComparisonRow(**common, allowed=allowed, status=_same(same), note=note)
    if not math.isfinite(value):
        # A metric that became NaN or infinite is broken, not noisy: it fails a gate.
        status = "changed" if direction == "none" else "worse" if allowed is None else "regression"
        return ComparisonRow(**common, allowed=allowed, status=status, note="not a finite number")
    if direction == "none":
        return ComparisonRow(**common, allowed=allowed, status=_same(delta == 0))
    worsening = delta if direction == "lower" else -delta
    pairing = _pairing(baseline, current, features)
    if not isinstance(pairing, str):
        return _paired_row(common, worsening, allowed, pairing, seed, confidence)
    row = dataclasses.replace(
        _unpaired(common, current, worsening, allowed, direction), unpaired=pairing
    )
    if row.status not in ("worse", "regression"):
        return row  # the reason is in the row (JSON, report); the terminal says it where it matters
    return dataclasses.replace(
        row, note="; ".join(filter(None, [row.note, f"unpaired: {pairing}"]))
    )


def _unpaired(
    common: dict[str, Any],
    current: ContractResult,
    worsening: float,
    allowed: float | None,
    direction: str,
) -> ComparisonRow:
    """Today's rule, by value: the candidate's own interval end against the tolerance."""
    base = common["baseline_value"]
    if worsening < 0:
        return ComparisonRow(**common, allowed=allowed, status="improved")
    if worsening == 0:
        return ComparisonRow(**common, allowed=allowed, status="unchanged")
    if allowed is None:
        return ComparisonRow(**common, allowed=None, status="worse", note="no tolerance given")
    end = _interval_end(current, direction)
    if end is None:
        if _beyond(worsening, allowed):
            return ComparisonRow(**common, allowed=allowed, status="regression")
        return ComparisonRow(**common, allowed=allowed, status="worse")
    # The interval end most favourable to this run: only if even that is worse than the
    # baseline by more than the tolerance is the worsening more than bootstrap noise.
    end_worsening = min(worsening, end - base if direction == "lower" else base - end)
    interval = f"interval {'low' if direction == 'lower' else 'high'} end {end:.6g}"
    if _beyond(end_worsening, allowed):
        return ComparisonRow(**common, allowed=allowed, status="regression", note=interval)
    note = f"{interval} is within tolerance" if _beyond(worsening, allowed) else ""
    return ComparisonRow(**common, allowed=allowed, status="worse", note=note)


def _match_key(result: ContractResult, model: str | None) -> tuple[str, str | None]:
    """What a result is matched on: its measurement and the run's model that made it."""
    if model is None or result.measure is None:
        return (result.key, None)
    return (result.measured_key, model)


def compare(
    current: Sequence[ContractResult],
    baseline: Baseline,
    tolerances: Mapping[str, Tolerance] | None = None,
    *,
    models: Sequence[tuple[str, str | None]] | None = None,
    missing_fails: bool = True,
    confidence: float = 0.95,
    seed: int = 0,
    features: FeatureReader | None = None,
) -> Comparison:
    """Compare this run's results with a baseline, matching them by what was measured.

    A result is matched on its test without the model's id, its label, and the model:
    each baseline model is paired with a model of this run by :func:`resolve_models`
    (``models``, else the same id, else the only model of each side), so a candidate's
    ``test_x[candidate]`` is compared with the release's ``test_x[release-1.4]``. Results of
    tests not parametrized by the backbone, and results of version 1 baselines (which do
    not record the model's id), are matched by their key. A baseline result this run did
    not produce is ``missing``, which fails the gate unless ``missing_fails`` is false.

    Each pair is first checked for the same protocol: every field present in both results'
    ``protocol`` must be equal, except :data:`IGNORED_PROTOCOL_KEYS`; otherwise the pair is
    ``refused`` (never silently compared) and the note names each differing field with the
    baseline's and this run's value. The direction of improvement is the result's
    ``better``, else :data:`KNOWN_DIRECTIONS`, else the sign of its tolerance; with none, a
    difference is only reported as ``changed``.

    A worsening is a ``regression`` when it exceeds the metric's tolerance (or the ``*``
    default); without a tolerance it is reported as ``worse`` and never fails. When the
    current result carries a bootstrap ``interval`` (``low``/``high``), the worsening is
    measured from the interval end most favourable to the current run, so a difference
    within the run's own noise is not a regression. That interval is the current run's
    own, over its images; it errs in the run's favour.

    When both results carry per-image correctness (``outcomes``) of the same images (equal
    ``ids_digest``), the pair is decided paired instead: the p-value of a worsening beyond
    the tolerance (exact McNemar at tolerance 0, else a paired bootstrap of the difference
    seeded by ``seed``), and a worsening beyond the tolerance is a ``regression`` only when
    it stays significant at ``confidence`` after Holm's correction across every paired row
    of the comparison; otherwise ``worse``, saying why. CKA and CCA do not decompose over
    images: they are decided paired when ``features`` (the run's cache, key -> features)
    has both runs' feature sets of the same images, the measure recomputed on the same
    resampled images for both; otherwise by value, the row saying why.

    Two current results with one key are refused (which of them would be compared?).
    """
    tolerances = tolerances or {}
    old_results = list(baseline.results.values())
    pairing = resolve_models(model_ids(old_results), model_ids(list(current)), models)
    old_by_match: dict[tuple[str, str | None], ContractResult] = {}
    unmapped: list[ContractResult] = []
    for old in old_results:
        if old.model_id is not None and old.measure is not None and old.model_id not in pairing:
            unmapped.append(old)
            continue
        target = pairing.get(old.model_id) if old.model_id is not None else None
        old_by_match[_match_key(old, target)] = old
    rows: dict[str, ComparisonRow] = {}
    seen: dict[str, ContractResult] = {}
    duplicated: set[str] = set()
    for result in current:
        if result.key in seen:
            duplicated.add(result.key)
        seen[result.key] = result
    matched: set[str] = set()
    for key, result in seen.items():
        old = old_by_match.get(_match_key(result, result.model_id))
        if old is not None:
            matched.add(old.key)
        if key in duplicated:
            rows[key] = ComparisonRow(
                key,
                result.metric,
                old.value if old is not None else None,
                None,
                None,
                None,
                "refused",
                "this run has several results with this key (the same test and label): "
                "give each its own label=",
            )
        elif old is None:
            rows[key] = ComparisonRow(
                key, result.metric, None, result.value, None, None, "new", "not in the baseline"
            )
        else:
            row = _compare_pair(old, result, tolerances, seed, confidence, features)
            if old.key != key:
                row = dataclasses.replace(
                    row, note="; ".join(filter(None, [row.note, f"baseline: {old.key}"]))
                )
            rows[key] = row
    unmapped_keys = {old.key for old in unmapped}
    for old in old_results:
        if old.key in matched:
            continue
        note = "not run this time"
        if old.key in unmapped_keys:
            note = (
                f"baseline model {old.model_id} is compared with no model of this run "
                f"(--sslrobust-compare-models={old.model_id}=MODEL)"
            )
        # Keyed apart from this run's rows: under a mapping, the key may be one of theirs.
        rows[f"{old.key}\0baseline"] = ComparisonRow(
            old.key, old.metric, old.value, None, None, None, "missing", note
        )
    rows = _holm_decisions(rows, confidence)
    notes: tuple[str, ...] = ()
    if baseline.schema_version < 2:
        notes = (
            f"baseline {baseline.path} has schema version {baseline.schema_version}: results "
            "are matched by test id, model ids included; regenerate it with --sslrobust-save "
            "to match them by what was measured",
        )
    return Comparison(
        rows=tuple(rows[key] for key in sorted(rows)), missing_fails=missing_fails, notes=notes
    )


def _holm_decisions(rows: dict[str, ComparisonRow], confidence: float) -> dict[str, ComparisonRow]:
    """Paired regressions kept only when significant after Holm across the paired rows."""
    from pytest_sslrobust.paired import holm

    tested = [key for key, row in rows.items() if row.p_value is not None]
    if not tested:
        return rows
    rejected = holm([rows[key].p_value for key in tested], 1.0 - confidence)  # type: ignore[misc]
    decided = dict(rows)
    level = f"{100 * confidence:g}%"
    for key, significant in zip(tested, rejected, strict=True):
        row = rows[key]
        if row.status != "regression":
            continue
        if significant:
            note = f"{row.note}, significant at {level} (Holm over {len(tested)})"
            decided[key] = dataclasses.replace(row, note=note)
        else:
            note = f"{row.note}, not significant at {level} (Holm over {len(tested)})"
            decided[key] = dataclasses.replace(row, status="worse", note=note)
    return decided
