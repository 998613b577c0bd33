"""The pytest11 entry point: options, ini keys, configuration, header and summary."""

from __future__ import annotations

import time
from collections.abc import Generator
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
from pytest_sslrobust.vocabulary import BACKENDS, use_corruption_backend

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


def _xdist_processes(config: pytest.Config) -> bool:
    """Whether this process is, or will start, xdist workers."""
    if hasattr(config, "workerinput"):
        return True
    try:
        return bool(config.getoption("numprocesses", None))
    except ValueError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    from pytest_sslrobust.backbones.registry import register_backbone

    config.hook.pytest_sslrobust_register_backbones(register=register_backbone)
    settings = Settings.from_config(config)
    if settings.executor != "local" and _xdist_processes(config):
        # Each xdist worker would size its pool of actors to the whole cluster, and the
        # second worker's actors would wait for the GPUs the first one's hold.
        raise pytest.UsageError(
            f"--sslrobust-executor={settings.executor} and -n do not combine: every xdist "
            "worker would start its own Ray actors for the whole cluster; drop -n, Ray "
            "spreads the work over the cluster's CPUs and GPUs"
        )
    if settings.cache_clear and settings.cache_dir and _runs_tests(config):
        from pytest_sslrobust.features.cachedir import CacheDirError, clear
        from pytest_sslrobust.paths import is_url

        try:
            if is_url(settings.cache_dir):
                from pytest_sslrobust.features.objectstore import clear_url

                clear_url(str(settings.cache_dir))
            else:
                clear(settings.cache_dir)
        except CacheDirError as exc:
            raise pytest.UsageError(str(exc)) from None
    # Corruptions built in this run (by id, by the sweep, by tests) default to its backend.
    use_corruption_backend(settings.corruption_backend)
    config.stash[RUN_KEY] = SslRobustRun(config, settings)
    collector = ResultCollector(started=time.time())
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
    if not hasattr(config, "workerinput"):  # outputs are written once, by the controller
        from pytest_sslrobust.outputs import register_outputs

        register_outputs(config, config.stash[RUN_KEY], collector, runs_tests=_runs_tests(config))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A model or dataset that failed to load is explained at the first test that needed it;
    later tests (pytest re-raises a failed session fixture's error) show one pointer line."""
    report = yield
    run = item.config.stash.get(RUN_KEY, None)
    if run is not None and run.is_worker and report.when == "teardown":  # once per test
        from pytest_sslrobust.progress import attach_counts

        attach_counts(report, run.stats())
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
    from pytest_sslrobust.markers import MarkerOptions

    names = ("sslrobust_backbone", "sslrobust_corruption", "sslrobust_variant")
    if not any(name in metafunc.fixturenames for name in names):
        return  # the marker is still checked, for every item, at collection's end
    settings = metafunc.config.stash[RUN_KEY].settings
    options = MarkerOptions.parse(metafunc.definition.get_closest_marker("sslrobust"))
    if "sslrobust_backbone" in metafunc.fixturenames:
        from pytest_sslrobust.backbones.registry import model_id

        models = options.models_or(settings.model)
        metafunc.parametrize(
            "sslrobust_backbone",
            models,
            indirect=True,
            ids=[model_id(spec) for spec in models],
            scope="session",
        )
    if "sslrobust_corruption" in metafunc.fixturenames:
        variants = options.sweep(settings)
        metafunc.parametrize("sslrobust_corruption", variants, ids=[v.id for v in variants])
    if "sslrobust_variant" in metafunc.fixturenames:
        variants = options.variant_list(settings)
        metafunc.parametrize("sslrobust_variant", variants, ids=[v.id for v in variants])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Check every sslrobust marker up front (a typo is a usage error, not a late failure) and
    stash each item's parsed options for its fixtures."""
    from pytest_sslrobust.markers import check_items

    check_items(items)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[RUN_KEY].settings
    cache = "off" if settings.no_cache else str(settings.cache_dir)
    subset = "all" if settings.max_images is None else f"<= {settings.max_images} per split"
    return (
        [
            f"sslrobust: model={','.join(settings.model)} data={settings.data} "
            f"device={settings.device} images={subset} seed={settings.seed}",
            f"sslrobust: cache={cache}",
            f"sslrobust: loading workers={_workers_shown(settings)} decode={settings.decode}",
        ]
        + (
            [f"sslrobust: feature sets computed by {settings.executor} (Ray actors)"]
            if settings.executor != "local"
            else []
        )
        + (
            [f"sslrobust: corruptions by the {settings.corruption_backend} backend"]
            if settings.corruption_backend != BACKENDS[0]
            else []
        )
    )


def _workers_shown(settings: Settings) -> str:
    """The loader processes as far as the header can know them without importing torch:
    ``auto`` on the CPU is 0; on a GPU (or ``device=auto``) the terminal summary and the
    report give the number each process resolved."""
    if settings.workers == "auto" and settings.device == "cpu":
        return "0 (auto)"
    return str(settings.workers)


def pytest_unconfigure(config: pytest.Config) -> None:
    use_corruption_backend(BACKENDS[0])
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.close()
    from pytest_sslrobust.outputs import OUTPUT_NAMES

    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None and config.pluginmanager.is_registered(collector):
        config.pluginmanager.unregister(collector)
    for name in OUTPUT_NAMES:
        output = config.pluginmanager.get_plugin(name)
        if output is not None:
            config.pluginmanager.unregister(output)


def pytest_sessionstart(session: pytest.Session) -> None:
    """On the controller of a run that executes tests: the session-level progress line
    (the terminal reporter exists by now; at configure time it may not yet)."""
    config = session.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    run = config.stash.get(RUN_KEY, None)
    if run is None or run.is_worker or reporter is None or not _runs_tests(config):
        return
    from pytest_sslrobust.progress import SessionProgress

    def write(line: str) -> None:
        # On a line of its own: after pytest's progress dots too (xdist leaves no path shown).
        reporter.ensure_newline()
        if config.get_terminal_writer().width_of_current_line:
            reporter.write("\n")
        reporter.write_line(line)

    config.pluginmanager.register(SessionProgress(write, run.stats), "sslrobust-progress")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand cache counters and report material to the controller. The
    controller's outputs are the plugin objects of ``outputs.py``."""
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    workeroutput = getattr(config, "workeroutput", None)
    if run is None or workeroutput is None:
        return
    workeroutput["sslrobust_stats"] = dict(run.stats())
    workeroutput["sslrobust_loaders"] = run.loader_workers_shown()
    workeroutput["sslrobust_report"] = config.stash[COLLECTOR_KEY].worker_payload()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    collector = config.stash.get(COLLECTOR_KEY, None)
    width = config.get_terminal_writer().fullwidth
    table = collector.summary_lines(width) if collector else []
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
        if stats["ray_units"]:
            terminalreporter.write_line(
                f"Ray: {stats['ray_units']} work units on actors ({stats['ray_misses']} "
                f"computed, {stats['ray_disk_hits']} read from the shared cache)"
            )
        from pytest_sslrobust.progress import loading_text

        loading = loading_text(
            stats, run.loader_workers_shown(), run.settings.workers, run.settings.decode
        )
        if loading:
            terminalreporter.write_line(f"loading: {loading}")
    for note in notes:
        terminalreporter.write_line(note)


class XdistStats:
    """Adds the cache counters that workers send back to the controller's summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {})
        run = self.config.stash[RUN_KEY]
        run.worker_stats.update(output.get("sslrobust_stats", {}))
        loaders = output.get("sslrobust_loaders")
        if loaders is not None:
            run.worker_loaders[str(getattr(node.gateway, "id", id(node)))] = loaders
        self.config.stash[COLLECTOR_KEY].merge_worker(output.get("sslrobust_report", "{}"))
