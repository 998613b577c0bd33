"""The pytest11 entry point: options, ini keys, configuration, header and summary."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_sslrobust import hookspecs
from pytest_sslrobust.fixtures import (  # noqa: F401 - registered as fixtures by import
    sslrobust,
    sslrobust_backbone,
    sslrobust_corruption,
    sslrobust_dataset,
    sslrobust_features,
    sslrobust_models,
    sslrobust_settings,
    sslrobust_variant,
)
from pytest_sslrobust.results import COLLECTOR_KEY, ResultCollector, current_item
from pytest_sslrobust.session import RUN_KEY, SslRobustRun, repeated_failure
from pytest_sslrobust.settings import OPTIONS, Settings

# Before anything imports it, so that plain `assert`s inside the helpers are rewritten too.
pytest.register_assert_rewrite("pytest_sslrobust.assertions")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sslrobust", "robustness of vision backbones (pytest-sslrobust)")
    for option in OPTIONS:
        if option.parse is None:
            group.addoption(option.flag, action="store_true", dest=option.dest, help=option.help)
            # Read as a string and parsed by parse_bool: pytest's own bool parsing raises
            # before the plugin can name the key (pytest 9.2), and its wording differs.
            parser.addini(option.ini, option.help.replace("%%", "%"), type="string", default="")
        else:
            group.addoption(
                option.flag,
                dest=option.dest,
                metavar=option.metavar,
                type=option.parse,
                default=None,
                help=option.help,
            )
            parser.addini(option.ini, option.help.replace("%%", "%"), type="string", default="")


def _runs_tests(config: pytest.Config) -> bool:
    """False on xdist workers (the controller clears once) and for runs that only look:
    ``--collect-only``, ``--fixtures``, ``--markers``, ``--help``, ``--version``."""
    option = config.option
    looking = ("collectonly", "showfixtures", "show_fixtures_per_test", "markers", "help")
    return not hasattr(config, "workerinput") and not any(
        getattr(option, name, False) for name in (*looking, "version")
    )


def pytest_configure(config: pytest.Config) -> None:
    from pytest_sslrobust.backbones.registry import register_backbone

    config.hook.pytest_sslrobust_register_backbones(register=register_backbone)
    settings = Settings.from_config(config)
    if settings.cache_clear and settings.cache_dir and _runs_tests(config):
        from pytest_sslrobust.features.cachedir import CacheDirError, clear

        try:
            clear(settings.cache_dir)
        except CacheDirError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[RUN_KEY] = SslRobustRun(config, settings)
    collector = ResultCollector()
    collector.started = time.time()
    config.stash[COLLECTOR_KEY] = collector
    config.pluginmanager.register(collector, "sslrobust-results")
    config.addinivalue_line(
        "markers",
        "sslrobust(models=..., data=..., corruptions=..., severities=..., protocol=..., "
        "variants=...): override the run's models, data, corruption sweep or variant list "
        "for one test",
    )
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistStats(config), "sslrobust-xdist")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A model or dataset that failed to load is explained at the first test that needed it;
    later tests (pytest re-raises a failed session fixture's error) show one pointer line."""
    report = yield
    load = getattr(call.excinfo.value, "sslrobust_load", None) if call.excinfo else None
    if load is not None:
        kind, spec, first_seen = load
        if first_seen != item.nodeid:
            report.longrepr = repeated_failure(kind, spec, first_seen)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    token = current_item.set(item)
    try:
        return (yield)
    finally:
        current_item.reset(token)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    from pytest_sslrobust.fixtures import marker_options, sweep_from_marker, variants_from_marker

    settings = metafunc.config.stash[RUN_KEY].settings
    marker = metafunc.definition.get_closest_marker("sslrobust")
    if "sslrobust_backbone" in metafunc.fixturenames:
        from pytest_sslrobust.backbones.registry import model_id

        models = marker_options(marker).get("models", settings.model)
        metafunc.parametrize(
            "sslrobust_backbone",
            models,
            indirect=True,
            ids=[model_id(spec) for spec in models],
            scope="session",
        )
    if "sslrobust_corruption" in metafunc.fixturenames:
        variants = sweep_from_marker(settings, marker)
        metafunc.parametrize("sslrobust_corruption", variants, ids=[v.id for v in variants])
    if "sslrobust_variant" in metafunc.fixturenames:
        variants = variants_from_marker(settings, marker)
        metafunc.parametrize("sslrobust_variant", variants, ids=[v.id for v in variants])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Check every sslrobust marker up front: a typo is a usage error, not a late failure."""
    from pytest_sslrobust.fixtures import marker_options

    for item in items:
        for marker in item.iter_markers("sslrobust"):
            marker_options(marker)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[RUN_KEY].settings
    cache = "off" if settings.no_cache else str(settings.cache_dir)
    subset = "all" if settings.max_images is None else f"<= {settings.max_images} per split"
    return [
        f"sslrobust: model={','.join(settings.model)} data={settings.data} "
        f"device={settings.device} images={subset} seed={settings.seed}",
        f"sslrobust: cache={cache}",
    ]


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None and config.pluginmanager.is_registered(collector):
        config.pluginmanager.unregister(collector)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    workeroutput = getattr(config, "workeroutput", None)
    collector = config.stash[COLLECTOR_KEY] if run is not None else None
    if collector is not None and workeroutput is not None:
        import json

        workeroutput["sslrobust_stats"] = dict(run.stats())
        # Report material travels as one JSON string (execnet carries plain types only).
        workeroutput["sslrobust_report"] = json.dumps(
            {"artifacts": collector.artifacts, "backbones": collector.backbones}
        )
    if collector is None or workeroutput is not None:
        return
    _write_outputs(session, run.settings, collector)
    if run.settings.report is not None and _runs_tests(config):
        _write_report(session, run, collector)


# Written at the end of every report: how many tests its run executed, so that a later run
# that executed fewer (a -k selection, a failed setup) does not replace it.
_COVERAGE = re.compile(r"<!-- sslrobust-coverage executed=(\d+) -->")


def _report_coverage(path: Path) -> int | None:
    try:
        found = _COVERAGE.search(path.read_text(encoding="utf-8", errors="replace")[-4096:])
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _write_report(session: pytest.Session, run: SslRobustRun, collector: ResultCollector) -> None:
    from pytest_sslrobust.report import build_document
    from pytest_sslrobust.report.render import render_report

    reporter = session.config.pluginmanager.getplugin("terminalreporter")
    outcomes = {
        name: len(reporter.stats.get(name, [])) if reporter is not None else 0
        for name in ("passed", "failed", "skipped", "error")
    }
    settings = run.settings
    assert settings.report is not None
    executed = outcomes["passed"] + outcomes["failed"]
    if executed == 0:
        collector.notes.append(
            f"no test ran to the end, so the report was not written ({settings.report} is "
            "left as it was)"
        )
        return
    target = settings.report
    previous = _report_coverage(target) if target.exists() else None
    if previous is not None and executed < previous:
        target = target.with_name(f"{target.stem}.partial{target.suffix}")
    stats = run.stats()
    document = build_document(
        collector,
        {
            "models": list(collector.backbones.values()),
            "data": settings.data,
            "device": settings.device,
            "seed": settings.seed,
            "max_images": settings.max_images,
            "wall_time_s": round(time.time() - collector.started, 1),
            "cache": {
                "computed": stats["misses"],
                "memory_hits": stats["memory_hits"],
                "disk_hits": stats["disk_hits"],
                "forward_images": stats["forward_images"],
            },
            "outcomes": outcomes,
        },
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    html = render_report(document) + f"\n<!-- sslrobust-coverage executed={executed} -->\n"
    temporary.write_text(html, encoding="utf-8")
    os.replace(temporary, target)
    if target == settings.report:
        collector.notes.append(f"report written to {target}")
    else:
        collector.notes.append(
            f"report of this run ({executed} tests) written to {target}; {settings.report} "
            f"covers more tests ({previous}) and is kept"
        )


def _write_outputs(session: pytest.Session, settings: Settings, collector: ResultCollector) -> None:
    """JSON, baseline and comparison: written once, on the controller, at session end."""
    import dataclasses
    import json

    from pytest_sslrobust.baselines import (
        BaselineError,
        compare,
        load_baseline,
        parse_tolerances,
        save_baseline,
        unmatched_tolerances,
    )
    from pytest_sslrobust.results import environment

    if settings.json is not None:
        settings.json.parent.mkdir(parents=True, exist_ok=True)
        settings.json.write_text(json.dumps(collector.document(), indent=2, sort_keys=True))
    if settings.save is not None:
        try:
            save_baseline(settings.save, collector.results, environment=environment())
        except BaselineError as exc:
            collector.comparison_lines = [f"could not save the baseline: {exc}"]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if settings.compare is not None:
        try:
            baseline = load_baseline(settings.compare)
        except BaselineError as exc:
            collector.comparison_lines = [str(exc)]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
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
            )
        except BaselineError as exc:
            collector.comparison_lines = [str(exc)]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        unmatched = unmatched_tolerances(
            tolerances or {}, collector.results, list(baseline.results.values())
        )
        collector.comparison = {
            "baseline": str(settings.compare),
            "rows": [dataclasses.asdict(row) for row in comparison.rows],
        }
        lines = [f"compared with {settings.compare}: {comparison.summary()}"]
        lines += [*comparison.notes, *comparison.lines()]
        lines += [
            f"--sslrobust-compare-fail {metric!r}: no result of this run or of the baseline "
            "records this metric, so its tolerance gates nothing; check the spelling"
            for metric in unmatched
        ]
        if settings.baseline_update:
            update, written = _update_baseline(settings.compare, collector, comparison)
            lines += update
            if not written:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif settings.compare_fail and comparison.failed:
            missing = len(comparison.missing) if comparison.missing_fails else 0
            lines.append(
                f"sslrobust gate FAILED: {len(comparison.regressions)} regression(s) beyond "
                f"{settings.compare_fail}, {len(comparison.refused)} comparison(s) refused, "
                f"{missing} baseline result(s) missing (--sslrobust-compare-missing=warn "
                "to only list those)"
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        collector.comparison_lines = lines


def _update_baseline(
    path: Any, collector: ResultCollector, comparison: Any
) -> tuple[list[str], bool]:
    """Rewrite the compared baseline from this run; say what was stale and is now gone."""
    from pytest_sslrobust.baselines import BaselineError, save_baseline
    from pytest_sslrobust.results import environment

    stale = [row.key for row in comparison.missing]
    try:
        save_baseline(path, collector.results, environment=environment())
    except BaselineError as exc:
        return [f"could not update the baseline: {exc}"], False
    lines = [f"baseline {path} rewritten from this run: {len(collector.results)} result(s)"]
    if stale:
        lines.append(f"{len(stale)} stale result(s) removed (no test produced them):")
        lines += [f"  {key}" for key in stale]
    return lines, True


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    collector = config.stash.get(COLLECTOR_KEY, None)
    table = collector.summary_lines(terminalreporter._tw.fullwidth) if collector else []
    if table:
        terminalreporter.write_sep("-", "sslrobust contracts")
        for line in table:
            terminalreporter.write_line(line)
    comparison = collector.comparison_lines if collector else []
    if comparison:
        terminalreporter.write_sep("-", "sslrobust baseline comparison")
        for line in comparison:
            terminalreporter.write_line(line)
    stats = run.stats()
    notes = collector.notes if collector else []
    if not any(stats.values()) and not notes:
        return
    terminalreporter.write_sep("-", "sslrobust")
    if any(stats.values()):
        terminalreporter.write_line(
            f"feature sets: {stats['misses']} computed, {stats['memory_hits']} memory hits, "
            f"{stats['disk_hits']} disk hits, {stats['corrupt']} damaged entries recomputed; "
            f"forward passes: {stats['forward_batches']} batches, {stats['forward_images']} images"
        )
    for note in notes:
        terminalreporter.write_line(note)


class XdistStats:
    """Adds the cache counters that workers send back to the controller's summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        import json

        output = getattr(node, "workeroutput", {})
        self.config.stash[RUN_KEY].worker_stats.update(output.get("sslrobust_stats", {}))
        report = json.loads(output.get("sslrobust_report", "{}"))
        collector = self.config.stash[COLLECTOR_KEY]
        collector.artifacts.extend(report.get("artifacts", []))
        collector.backbones.update(report.get("backbones", {}))
