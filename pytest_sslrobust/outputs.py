"""Session-end outputs as plugin objects: the JSON file, the baseline gate, the HTML report.

Each is registered in ``pytest_configure`` only when its option is given, and never on an
xdist worker (pytest's junitxml and cacheprovider do the same), and owns its
``pytest_sessionfinish``. They run in a fixed order: the JSON first (``tryfirst``), then the
gate, then the report (``trylast``). A run fails at session end only through
:func:`fail_session`, the one place that decides the exit status.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_sslrobust.results import ResultCollector
    from pytest_sslrobust.session import SslRobustRun
    from pytest_sslrobust.settings import Settings

OUTPUT_NAMES = ("sslrobust-json", "sslrobust-baseline", "sslrobust-report")


def register_outputs(
    config: pytest.Config, run: SslRobustRun, collector: ResultCollector, *, runs_tests: bool
) -> None:
    """Register the outputs the run's options ask for (on the controller only)."""
    settings = run.settings
    manager = config.pluginmanager
    if settings.json is not None:
        manager.register(JsonOutput(settings.json, collector), OUTPUT_NAMES[0])
    if settings.save is not None or settings.compare is not None:
        manager.register(BaselineGate(settings, collector, run), OUTPUT_NAMES[1])
    if settings.report is not None and runs_tests:
        manager.register(HtmlReport(run, collector), OUTPUT_NAMES[2])


def fail_session(session: pytest.Session) -> None:
    """The run fails at session end (a gate that failed, a baseline that was not written)."""
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


class JsonOutput:
    """``--sslrobust-json``: every recorded result, by test id (schema: results-schema.md)."""

    def __init__(self, path: Path, collector: ResultCollector) -> None:
        self.path = path
        self.collector = collector

    # After the baseline gate, so that the document holds its comparison.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = self.collector.document()
        self.path.write_text(json.dumps(document, indent=2, sort_keys=True))


class BaselineGate:
    """``--sslrobust-save``, ``--sslrobust-compare`` (with ``-fail``, ``-models``,
    ``-missing``, ``-confidence``) and ``--sslrobust-baseline-update``; the comparison's
    lines go to the terminal summary through the collector."""

    def __init__(
        self, settings: Settings, collector: ResultCollector, run: SslRobustRun | None = None
    ) -> None:
        self.settings = settings
        self.collector = collector
        self.run = run
        self.table: dict[str, Any] | None = None  # the compared rows, for the report

    def _features(self, key: str) -> Any:
        """A feature set's features from this run's cache (memory, then disk) by its key,
        for CKA and CCA rows decided paired; ``None`` when it is not there."""
        if self.run is None:
            return None
        tensors = self.run.cache.peek(key)
        return None if tensors is None or "features" not in tensors else tensors["features"]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_sslrobust.baselines import BaselineError, save_baseline
        from pytest_sslrobust.results import environment

        settings, collector = self.settings, self.collector
        if settings.save is not None:
            try:
                save_baseline(settings.save, collector.results, environment=environment())
            except BaselineError as exc:
                collector.set_comparison([f"could not save the baseline: {exc}"])
                fail_session(session)
        if settings.compare is not None:
            lines, failed = self._compare(settings.compare)
            collector.set_comparison(lines, self.table)
            if failed:
                fail_session(session)

    def _compare(self, path: Path) -> tuple[list[str], bool]:
        from pytest_sslrobust.baselines import (
            BaselineError,
            compare,
            load_baseline,
            parse_tolerances,
            unmatched_tolerances,
        )

        settings, collector = self.settings, self.collector
        try:
            baseline = load_baseline(path)
        except BaselineError as exc:
            return [str(exc)], True
        tolerances = parse_tolerances(settings.compare_fail) if settings.compare_fail else None
        try:
            comparison = compare(
                collector.results,
                baseline,
                tolerances,
                models=settings.compare_models,
                missing_fails=settings.compare_missing == "fail",
                confidence=settings.compare_confidence,
                seed=settings.seed,
                features=self._features,
            )
        except BaselineError as exc:
            return [str(exc)], True
        unmatched = unmatched_tolerances(
            tolerances or {}, collector.results, list(baseline.results.values())
        )
        self.table = {
            "baseline": str(path),
            "rows": [dataclasses.asdict(row) for row in comparison.rows],
        }
        lines = [f"compared with {path}: {comparison.summary()}"]
        lines += [*comparison.notes, *comparison.lines()]
        lines += [
            f"--sslrobust-compare-fail {metric!r}: no result of this run or of the baseline "
            "records this metric, so its tolerance gates nothing; check the spelling"
            for metric in unmatched
        ]
        if settings.baseline_update:
            update, written = self._update(path, comparison)
            return lines + update, not written
        if settings.compare_fail and comparison.failed:
            missing = len(comparison.missing) if comparison.missing_fails else 0
            lines.append(
                f"sslrobust gate FAILED: {len(comparison.regressions)} regression(s) beyond "
                f"{settings.compare_fail}, {len(comparison.refused)} comparison(s) refused, "
                f"{missing} baseline result(s) missing (--sslrobust-compare-missing=warn "
                "to only list those)"
            )
            return lines, True
        return lines, False

    def _update(self, path: Path, comparison: Any) -> tuple[list[str], bool]:
        """Rewrite the compared baseline from this run; say what was stale and is now gone."""
        from pytest_sslrobust.baselines import BaselineError, save_baseline
        from pytest_sslrobust.results import environment

        results = self.collector.results
        stale = [row.key for row in comparison.missing]
        try:
            save_baseline(path, results, environment=environment())
        except BaselineError as exc:
            return [f"could not update the baseline: {exc}"], False
        lines = [f"baseline {path} rewritten from this run: {len(results)} result(s)"]
        if stale:
            lines.append(f"{len(stale)} stale result(s) removed (no test produced them):")
            lines += [f"  {key}" for key in stale]
        return lines, True


# Written at the end of every report: how many tests its run executed, so that a later run
# that executed fewer (a -k selection, a failed setup) does not replace it.
_COVERAGE = re.compile(r"<!-- sslrobust-coverage executed=(\d+) -->")


def report_coverage(path: Path) -> int | None:
    """How many tests the run that wrote the report at ``path`` executed, if it says."""
    try:
        found = _COVERAGE.search(path.read_text(encoding="utf-8", errors="replace")[-4096:])
    except OSError:
        return None
    return int(found.group(1)) if found else None


def loading_facts(stats: Mapping[str, float], run: SslRobustRun) -> dict[str, Any]:
    """The report's ``run.loading``: resolved loader processes, where JPEGs were decoded,
    the seconds waiting for batches and in the forward pass, and which was the limit."""
    from pytest_sslrobust.progress import bound_by

    wait = round(float(stats.get("loader_wait_s", 0.0)), 2)
    forward = round(float(stats.get("forward_s", 0.0)), 2)
    return {
        "workers": run.loader_workers_shown(),
        "workers_setting": str(run.settings.workers),
        "decode": run.settings.decode,
        "loader_wait_s": wait,
        "forward_s": forward,
        "bound": bound_by(wait, forward) if stats.get("forward_images") else None,
    }


class HtmlReport:
    """``--sslrobust-report``: written only by a run that executed tests, never over the
    report of a run that executed more (``NAME.partial.html`` beside it instead)."""

    def __init__(self, run: SslRobustRun, collector: ResultCollector) -> None:
        self.run = run
        self.collector = collector

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_sslrobust.report import build_document
        from pytest_sslrobust.report.render import render_report

        collector, settings = self.collector, self.run.settings
        assert settings.report is not None
        reporter = session.config.pluginmanager.getplugin("terminalreporter")
        outcomes = {
            name: len(reporter.stats.get(name, [])) if reporter is not None else 0
            for name in ("passed", "failed", "skipped", "error")
        }
        executed = outcomes["passed"] + outcomes["failed"]
        if executed == 0:
            collector.add_note(
                f"no test ran to the end, so the report was not written ({settings.report} is "
                "left as it was)"
            )
            return
        target = settings.report
        previous = report_coverage(target) if target.exists() else None
        if previous is not None and executed < previous:
            target = target.with_name(f"{target.stem}.partial{target.suffix}")
        stats = self.run.stats()
        document = build_document(
            collector,
            {
                "models": list(collector.backbones.values()),
                "data": settings.data,
                "device": collector.devices() or settings.device,
                "seed": settings.seed,
                "max_images": settings.max_images,
                "wall_time_s": round(time.time() - collector.started, 1),
                "cache": {
                    "computed": stats["misses"],
                    "memory_hits": stats["memory_hits"],
                    "disk_hits": stats["disk_hits"],
                    "forward_images": stats["forward_images"],
                },
                "loading": loading_facts(stats, self.run),
                "outcomes": outcomes,
            },
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        html = render_report(document) + f"\n<!-- sslrobust-coverage executed={executed} -->\n"
        temporary.write_text(html, encoding="utf-8")
        os.replace(temporary, target)
        if target == settings.report:
            collector.add_note(f"report written to {target}")
        else:
            collector.add_note(
                f"report of this run ({executed} tests) written to {target}; {settings.report} "
                f"covers more tests ({previous}) and is kept"
            )
