"""Contract results: the record every assertion leaves, and the session's collection of them."""

from __future__ import annotations

import contextvars
import dataclasses
import json
import math
import platform
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

import pytest

SCHEMA_VERSION = 3
# Baselines of these versions are still read (version 1 results carry no model_id/measure;
# version 2 stores per-image outcomes only for single accuracies, as {"correct", "n"}).
READABLE_SCHEMA_VERSIONS = (1, 2, 3)
PROPERTY = "sslrobust"
BETTER = ("lower", "higher", "none")

# The test being run, set by the plugin around each test call so that assertions can
# attach their results to it (and from there to its report, which xdist carries home).
current_item: contextvars.ContextVar[Any] = contextvars.ContextVar("sslrobust_item", default=None)


def _json_safe(value: Any) -> Any:
    """Plain JSON types only: floats stay floats (NaN/inf as strings), tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return _json_safe(value.item())
    return str(value)


@dataclasses.dataclass(frozen=True)
class ContractResult:
    """One measured number, what it was required to be, and how it was produced.

    ``better`` says which direction is an improvement (``lower`` for mCE, ``higher`` for
    accuracy); ``decided_on`` is ``"value"`` or ``"interval"`` (the bootstrap bound that
    the decision used). ``label`` tells several results of one test apart. ``model_id`` is
    the id the test was parametrized with (``release-1.4`` in ``test_x[release-1.4]``) and
    ``measure`` the test id without it: what was measured, whichever model measured it.
    ``outcomes`` holds per-image outcomes for paired comparisons, for every result that
    decomposes over images: ``pytest_sslrobust.outcomes.Outcomes.to_dict`` (version 2
    stored ``{"correct": packed, "n": n}`` for a single accuracy, still read).
    """

    test: str
    name: str
    metric: str
    label: str
    value: float
    passed: bool
    low: float | None = None
    high: float | None = None
    better: str = "none"
    unit: str = ""
    interval: Mapping[str, Any] | None = None
    decided_on: str = "value"
    model: str | None = None
    protocol: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    details: Sequence[Mapping[str, Any]] = ()
    model_id: str | None = None
    measure: str | None = None
    outcomes: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise ValueError(f"Expected better to be one of {BETTER}, but got {self.better!r}")

    @property
    def key(self) -> str:
        """What identifies the result across runs: the test id and the label."""
        return f"{self.test}::{self.label}"

    @property
    def measured_key(self) -> str:
        """The key without the model's id: matches one measurement across two models."""
        return f"{self.measure or self.test}::{self.label}"

    def bounds_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"[{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f">= {self.low:g}" if self.better != "lower" else f"> {self.low:g}"
        if self.high is not None:
            return f"<= {self.high:g}"
        return "-"

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(dataclasses.asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContractResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown result fields {unknown}")
        values = dict(data)
        values["value"] = float(values["value"])
        values["details"] = tuple(values.get("details", ()))
        return cls(**values)


def run_seed(seed: int | None) -> int:
    """``seed`` when given, else the running test's ``--sslrobust-seed`` (0 outside a run):
    bootstrap intervals follow the run's seed like everything else it draws."""
    if seed is not None:
        return seed
    item = current_item.get()
    if item is None:
        return 0
    from pytest_sslrobust.session import RUN_KEY

    config = getattr(item, "config", None)  # a test double of an item may have none
    run = config.stash.get(RUN_KEY, None) if config is not None else None
    return int(run.settings.seed) if run is not None else 0


def record(result: ContractResult) -> ContractResult:
    """Attach a result to the running test (no-op outside a pytest test)."""
    item = current_item.get()
    if item is not None:
        if result.model is None:
            # A contract on bare arrays still belongs to the backbone the test runs on.
            backbone = getattr(item, "funcargs", {}).get("sslrobust_backbone")
            if backbone is not None:
                result = dataclasses.replace(result, model=backbone.name)
        result = dataclasses.replace(result, **_measured(item))
        item.user_properties.append((PROPERTY, json.dumps(result.to_dict(), sort_keys=True)))
    return result


def _measured(item: Any) -> dict[str, str | None]:
    """``model_id`` and ``measure`` of a test parametrized by ``sslrobust_backbone``."""
    callspec = getattr(item, "callspec", None)
    params = getattr(callspec, "params", {})
    if "sslrobust_backbone" not in params:
        return {}
    from pytest_sslrobust.backbones.registry import model_id

    ident = model_id(params["sslrobust_backbone"])
    # pytest joins one id per parametrized argument with "-"; drop the backbone's own.
    ids = list(getattr(callspec, "_idlist", ()))
    if ident not in ids:
        return {"model_id": ident}
    ids.remove(ident)
    base = item.nodeid.split("[", 1)[0]
    return {"model_id": ident, "measure": f"{base}[{'-'.join(ids)}]" if ids else base}


def record_artifact(
    kind: str, payload: Mapping[str, Any], *, model: str | None = None, label: str = ""
) -> None:
    """Keep data for the HTML report (tables, matrices, thumbnails) from the running test.

    Artifacts stay out of the test's user properties (JUnit files would carry them);
    xdist workers send theirs to the controller at the end of the session instead.
    """
    item = current_item.get()
    if item is None:
        return
    collector = item.config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:
        collector.add_artifact(
            {
                "kind": kind,
                "test": item.nodeid,
                "model": model,
                "label": label,
                "payload": _json_safe(payload),
            }
        )


def current_test_id() -> str:
    item = current_item.get()
    return item.nodeid if item is not None else "<outside pytest>"


def results_from_properties(properties: Iterable[tuple[str, Any]]) -> list[ContractResult]:
    """The results carried in a test report's user properties."""
    return [
        ContractResult.from_dict(json.loads(value))
        for name, value in properties
        if name == PROPERTY
    ]


def environment() -> dict[str, Any]:
    """Versions and machine facts stored beside results (never used to refuse a compare)."""
    versions = {}
    for name in (
        "pytest-sslrobust",
        "torch",
        "timm",
        "numpy",
        "scikit-learn",
        "imagecorruptions-imaug",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def _xunit2_log(config: pytest.Config | None) -> Any:
    """pytest's JUnit writer (``LogXML``) of this process when it writes xunit2, else None.

    Workers of xdist have none: the controller writes the file.
    """
    if config is None:
        return None
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - a pytest without it keeps per-test properties
        return None
    log = config.stash.get(xml_key, None)
    return log if log is not None and getattr(log, "family", "xunit1") != "xunit1" else None


class ResultCollector:
    """What the session gathered, behind a small API; the one place it accumulates.

    Registered as a plugin for the session (controller side, so xdist workers count): it
    takes results from every teardown report and, with ``--junitxml`` under xunit2, moves
    them to the suite's properties (see docs/results-schema.md). Writers: ``add_report``
    (a test report's properties), ``add_artifact`` (report material of the running test),
    ``add_backbone`` (a loaded model's description), ``merge_worker`` (what an xdist worker
    sent, from its ``worker_payload``), ``set_comparison`` and ``add_note`` (session-end
    outputs). Readers see tuples and copies: ``results``, ``artifacts``, ``backbones``,
    ``comparison``, ``comparison_lines``, ``notes``, ``started``.
    """

    def __init__(self, started: float = 0.0) -> None:
        self._results: list[ContractResult] = []
        self._artifacts: list[dict[str, Any]] = []
        self._backbones: dict[str, dict[str, Any]] = {}
        self._comparison_lines: list[str] = []
        self._comparison: dict[str, Any] | None = None
        self._notes: list[str] = []
        self.started = started
        self.config: pytest.Config | None = None

    @property
    def results(self) -> tuple[ContractResult, ...]:
        return tuple(self._results)

    @property
    def artifacts(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._artifacts)

    @property
    def backbones(self) -> dict[str, dict[str, Any]]:
        return {name: dict(description) for name, description in self._backbones.items()}

    @property
    def comparison(self) -> dict[str, Any] | None:
        return self._comparison

    @property
    def comparison_lines(self) -> tuple[str, ...]:
        return tuple(self._comparison_lines)

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(self._notes)

    def add_artifact(self, artifact: Mapping[str, Any]) -> None:
        self._artifacts.append(dict(artifact))

    def add_backbone(self, name: str, description: Mapping[str, Any]) -> None:
        """A loaded model's description; loaded again elsewhere (another xdist worker), its
        ``device`` lists every device that computed with it (``cuda:0 (gw0), cuda:1 (gw1)``)."""
        described = dict(description)
        known = self._backbones.get(name, {}).get("device")
        if known and described.get("device") and known != described["device"]:
            devices = set(str(known).split(", ")) | set(str(described["device"]).split(", "))
            described["device"] = ", ".join(sorted(devices))
        self._backbones[name] = described

    def devices(self) -> str:
        """Every device a loaded model computed on, for the report's header."""
        seen: set[str] = set()
        for described in self._backbones.values():
            seen.update(d for d in str(described.get("device") or "").split(", ") if d)
        return ", ".join(sorted(seen))

    def set_comparison(
        self, lines: Iterable[str], comparison: Mapping[str, Any] | None = None
    ) -> None:
        """The baseline comparison's summary lines and, when it compared, its table."""
        self._comparison_lines = list(lines)
        if comparison is not None:
            self._comparison = dict(comparison)

    def add_note(self, line: str) -> None:
        self._notes.append(line)

    def worker_payload(self) -> str:
        """Report material of an xdist worker, as one JSON string (execnet carries plain
        types only); the controller's collector takes it with ``merge_worker``."""
        return json.dumps({"artifacts": self._artifacts, "backbones": self._backbones})

    def merge_worker(self, payload: str) -> None:
        report = json.loads(payload or "{}")
        self._artifacts.extend(report.get("artifacts", []))
        for name, described in report.get("backbones", {}).items():
            self.add_backbone(name, described)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.config = session.config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: Any) -> None:
        # Teardown reports carry every property the test recorded (setup and call
        # included); under xdist they reach the controller with the worker's properties.
        if report.when == "teardown":
            self.add_report(report.user_properties)
        # JUnit's xunit2 schema has no properties inside a testcase: there the results go to
        # the suite's properties instead, and leave the report before junitxml (which runs
        # after this tryfirst hook, and only on the controller) would copy them into the
        # testcase. Every phase's report loses them: a failed call's report is written too.
        log = _xunit2_log(self.config)
        if log is None or not any(name == PROPERTY for name, _ in report.user_properties):
            return
        if report.when == "teardown":
            for name, value in report.user_properties:
                if name == PROPERTY:
                    log.add_global_property(PROPERTY, value)
        report.user_properties = [p for p in report.user_properties if p[0] != PROPERTY]

    def add_report(self, properties: Iterable[tuple[str, Any]]) -> None:
        self._results.extend(results_from_properties(properties))

    def document(self) -> dict[str, Any]:
        """The JSON document of ``--sslrobust-json`` (schema in docs/results-schema.md)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "environment": environment(),
            # By test id (stable within a test): the same file with and without -n.
            "results": [result.to_dict() for result in sorted(self._results, key=lambda r: r.test)],
            # With --sslrobust-compare: the compared rows (docs/results-schema.md).
            **({"comparison": _json_safe(self._comparison)} if self._comparison else {}),
        }

    def summary_lines(self, width: int = 100) -> list[str]:
        """An aligned table: outcome, test and label, value, bounds."""
        if not self._results:
            return []
        rows = [
            (
                "passed" if r.passed else "FAILED",
                f"{r.test} [{r.label}]",
                f"{r.value:.4g}{r.unit}",
                r.bounds_text() + (" (interval)" if r.decided_on == "interval" else ""),
            )
            for r in self._results
        ]
        header = ("outcome", "contract", "value", "required")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
        widths[1] = min(widths[1], max(20, width - widths[0] - widths[2] - widths[3] - 6))

        def line(row: tuple[str, ...]) -> str:
            contract = row[1] if len(row[1]) <= widths[1] else "..." + row[1][-widths[1] + 3 :]
            cells = (row[0], contract, row[2], row[3])
            return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

        return [line(header), *(line(row) for row in rows)]


COLLECTOR_KEY = pytest.StashKey[ResultCollector]()
