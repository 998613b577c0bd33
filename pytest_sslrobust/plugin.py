"""The pytest11 entry point: options, ini keys, configuration, header and summary."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from pytest_sslrobust import hookspecs
from pytest_sslrobust.fixtures import (  # noqa: F401 - registered as fixtures by import
    sslrobust,
    sslrobust_backbone,
    sslrobust_corruption,
    sslrobust_dataset,
    sslrobust_features,
    sslrobust_settings,
)
from pytest_sslrobust.session import RUN_KEY, SslRobustRun
from pytest_sslrobust.settings import OPTIONS, Settings


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sslrobust", "robustness of vision backbones (pytest-sslrobust)")
    for option in OPTIONS:
        if option.parse is None:
            group.addoption(option.flag, action="store_true", dest=option.dest, help=option.help)
            parser.addini(option.ini, option.help, type="bool", default=False)
        else:
            group.addoption(
                option.flag,
                dest=option.dest,
                metavar=option.metavar,
                type=option.parse,
                default=None,
                help=option.help,
            )
            parser.addini(option.ini, option.help, type="string", default="")


def pytest_configure(config: pytest.Config) -> None:
    from pytest_sslrobust.backbones.registry import register_backbone

    config.hook.pytest_sslrobust_register_backbones(register=register_backbone)
    settings = Settings.from_config(config)
    if settings.cache_clear and not hasattr(config, "workerinput") and settings.cache_dir:
        shutil.rmtree(settings.cache_dir, ignore_errors=True)
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
    config.stash[RUN_KEY] = SslRobustRun(config, settings)
    config.addinivalue_line(
        "markers",
        "sslrobust(corruptions=..., severities=..., protocol=...): override the corruption "
        "sweep of --sslrobust-corruptions/--sslrobust-severities for one test",
    )
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistStats(config), "sslrobust-xdist")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = metafunc.config.stash[RUN_KEY].settings
    if "sslrobust_backbone" in metafunc.fixturenames:
        from pytest_sslrobust.backbones.registry import model_id

        metafunc.parametrize(
            "sslrobust_backbone",
            settings.model,
            indirect=True,
            ids=[model_id(spec) for spec in settings.model],
            scope="session",
        )
    if "sslrobust_corruption" in metafunc.fixturenames:
        from pytest_sslrobust.fixtures import sweep_from_marker

        variants = sweep_from_marker(settings, metafunc.definition.get_closest_marker("sslrobust"))
        metafunc.parametrize("sslrobust_corruption", variants, ids=[v.id for v in variants])


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[RUN_KEY].settings
    cache = "off" if settings.no_cache else str(settings.cache_dir)
    subset = "all" if settings.max_images is None else f"<= {settings.max_images} per split"
    return [
        f"sslrobust: model={','.join(settings.model)} data={settings.data} "
        f"device={settings.device} images={subset} seed={settings.seed}",
        f"sslrobust: cache={cache}",
    ]


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    run = config.stash.get(RUN_KEY, None)
    workeroutput = getattr(config, "workeroutput", None)
    if run is not None and workeroutput is not None:
        workeroutput["sslrobust_stats"] = dict(run.stats())


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    stats = run.stats()
    if not any(stats.values()):
        return
    terminalreporter.write_sep("-", "sslrobust")
    terminalreporter.write_line(
        f"feature sets: {stats['misses']} computed, {stats['memory_hits']} memory hits, "
        f"{stats['disk_hits']} disk hits, {stats['corrupt']} damaged entries recomputed; "
        f"forward passes: {stats['forward_batches']} batches, {stats['forward_images']} images"
    )


class XdistStats:
    """Adds the cache counters that workers send back to the controller's summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        stats = getattr(node, "workeroutput", {}).get("sslrobust_stats", {})
        self.config.stash[RUN_KEY].worker_stats.update(stats)
