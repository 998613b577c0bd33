"""The fixtures a robustness test asks for, and the ``sslrobust`` facade that ties them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sslrobust.session import RUN_KEY, SslRobustRun
from pytest_sslrobust.settings import Settings

if TYPE_CHECKING:
    from pytest_sslrobust.backbones.base import Backbone
    from pytest_sslrobust.data.base import Dataset, IndexedSource
    from pytest_sslrobust.evaluate import Readout
    from pytest_sslrobust.features.store import FeatureSet, FeatureStore
    from pytest_sslrobust.metrics.corruption import CorruptionErrors
    from pytest_sslrobust.report import ReportRecorder
    from pytest_sslrobust.variants.base import Variant
    from pytest_sslrobust.variants.corruptions import Corruption


def _run(config: pytest.Config) -> SslRobustRun:
    return config.stash[RUN_KEY]


@pytest.fixture(scope="session")
def sslrobust_settings(pytestconfig: pytest.Config) -> Settings:
    """The run's frozen settings (``--sslrobust-*`` options and ``sslrobust_*`` ini keys)."""
    return _run(pytestconfig).settings


@pytest.fixture(scope="session")
def sslrobust_backbone(request: pytest.FixtureRequest) -> Backbone:
    """The backbone under test, loaded once per session and moved to the chosen device.

    With ``--sslrobust-model=a,b`` every test using it runs once per model; the model's id
    is part of the test id (``test_x[dinov2]``).
    """
    run = _run(request.config)
    spec = getattr(request, "param", run.settings.model[0])
    return run.backbone(spec)


@pytest.fixture(scope="session")
def sslrobust_dataset(pytestconfig: pytest.Config) -> Dataset:
    """The dataset named by ``--sslrobust-data`` (default: the bundled textured digits).

    Override it in a conftest to test on your own arrays::

        @pytest.fixture(scope="session")
        def sslrobust_dataset():
            return pytest_sslrobust.data.from_arrays(images, labels)
    """
    return _run(pytestconfig).dataset()


@pytest.fixture
def sslrobust_features(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    sslrobust_backbone: Backbone,
    sslrobust_dataset: Dataset,
) -> FeatureStore:
    """Cached features of the current backbone on the dataset (the test's
    ``@pytest.mark.sslrobust(data=...)`` wins over ``--sslrobust-data``).

    ``sslrobust_features.get("original", split="test")`` returns a ``FeatureSet`` with
    ``features`` (n, d), ``logits`` (or None), ``labels``, ``ids`` and its ``protocol``.
    Each set is computed once per run (and once across runs, through the disk cache).
    """
    run = _run(pytestconfig)
    data = marker_options(request.node.get_closest_marker("sslrobust")).get("data")
    dataset = run.dataset(data) if data else sslrobust_dataset
    return run.store(sslrobust_backbone, dataset)


_MARKER_KEYS = frozenset({"models", "data", "corruptions", "severities", "protocol", "variants"})
# The masking study's altered variants, swept by ``sslrobust_variant`` unless a marker says.
DEFAULT_VARIANTS = ("foreground", "background", "center", "border")


def marker_options(marker: pytest.Mark | None) -> dict[str, Any]:
    """The keywords of ``@pytest.mark.sslrobust(...)``, checked; a bad one is a usage error."""
    import argparse

    from pytest_sslrobust.settings import parse_data, parse_models

    options = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise pytest.UsageError(
            "@pytest.mark.sslrobust takes keywords only (models=, data=, corruptions=, "
            "severities=, protocol=, variants=)"
        )
    unknown = sorted(set(options) - _MARKER_KEYS)
    if unknown:
        raise pytest.UsageError(
            f"@pytest.mark.sslrobust got unknown keyword {unknown[0]!r}; accepted: "
            f"{', '.join(sorted(_MARKER_KEYS))}"
        )
    try:
        if "models" in options:
            models = options["models"]
            models = parse_models(models if isinstance(models, str) else ",".join(models))
            from pytest_sslrobust.backbones.registry import validate_spec

            for spec in models:
                problem = validate_spec(spec)
                if problem:
                    raise argparse.ArgumentTypeError(problem)
            options["models"] = models
        if "data" in options:
            options["data"] = parse_data(str(options["data"]))
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"@pytest.mark.sslrobust: {exc}") from None
    return options


def sweep_from_marker(settings: Settings, marker: pytest.Mark | None) -> list[Corruption]:
    """The corruption sweep of a test: settings, overridden by ``@pytest.mark.sslrobust``."""
    from pytest_sslrobust.variants.base import VariantError
    from pytest_sslrobust.variants.corruptions import corruption_variants

    options = marker_options(marker)
    try:
        return corruption_variants(
            options.get("corruptions", settings.corruptions),
            options.get("severities", settings.severities),
            options.get("protocol", settings.corruption_protocol),
        )
    except VariantError as exc:
        raise pytest.UsageError(f"@pytest.mark.sslrobust: {exc}") from None


def variants_from_marker(settings: Settings, marker: pytest.Mark | None) -> list[Any]:
    """The variants a ``sslrobust_variant`` test runs over (marker ``variants=``, else
    foreground, background, center, border)."""
    from pytest_sslrobust.variants import parse_variant
    from pytest_sslrobust.variants.base import VariantError

    options = marker_options(marker)
    wanted = options.get("variants", DEFAULT_VARIANTS)
    if isinstance(wanted, str):
        wanted = [part.strip() for part in wanted.split(",")]
    protocol = options.get("protocol", settings.corruption_protocol)
    try:
        return [
            parse_variant(v, protocol=protocol, segmenter=settings.segmenter)
            if isinstance(v, str)
            else v
            for v in wanted
        ]
    except VariantError as exc:
        raise pytest.UsageError(f"@pytest.mark.sslrobust: {exc}") from None


@pytest.fixture
def sslrobust_variant(request: pytest.FixtureRequest) -> Any:
    """One variant; a test using it runs once per variant of its
    ``@pytest.mark.sslrobust(variants=[...])`` (default: foreground, background, center,
    border), with ids such as ``test_x[dinov2-center-r0.50]``."""
    return request.param


@pytest.fixture
def sslrobust_corruption(request: pytest.FixtureRequest) -> Corruption:
    """One corruption at one severity; a test using it runs once per pair of the sweep
    (``--sslrobust-corruptions`` x ``--sslrobust-severities``, or the test's
    ``@pytest.mark.sslrobust(corruptions=..., severities=...)``), with ids such as
    ``test_x[efficientnet-lite0-gaussian_noise-s3]``."""
    return request.param  # type: ignore[no-any-return]


class SslRobust:
    """What a robustness test works with: the backbone, the data and their features."""

    def __init__(
        self, settings: Settings, store: FeatureStore, marker: pytest.Mark | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.marker = marker

    @property
    def backbone(self) -> Backbone:
        return self.store.backbone

    @property
    def dataset(self) -> Dataset:
        return self.store.dataset

    def features(self, variant: Any = "original", split: str = "test") -> FeatureSet:
        """Features of ``split`` under ``variant`` (see ``FeatureStore.get``).

        Data problems found while reading (an unreadable file, a released variant that
        lacks images) fail the test with the message alone.
        """
        from pytest_sslrobust.data.base import DataError

        try:
            return self.store.get(variant, split=split)
        except DataError as exc:
            pytest.fail(f"sslrobust: {exc}", pytrace=False)

    def corruptions(self) -> list[Corruption]:
        """The corruption sweep for this test (options, or the test's sslrobust marker)."""
        return sweep_from_marker(self.settings, self.marker)

    @property
    def report(self) -> ReportRecorder:
        """Hands tables, matrices and thumbnails of this test to ``--sslrobust-report``."""
        from pytest_sslrobust.report import ReportRecorder

        return ReportRecorder(self.store)

    def readout(self, kind: str = "auto") -> Readout:
        """A readout (``auto``, ``head``, ``linear-probe`` or ``knn``), fitted once per run
        on the clean training split and shared by all tests."""
        from pytest_sslrobust.evaluate import Readout

        if kind not in self.store.readouts:
            self.store.readouts[kind] = Readout(self.store, kind)
        return self.store.readouts[kind]  # type: ignore[no-any-return]

    def predictions(
        self, variant: Any = "original", split: str = "test", readout: str = "auto"
    ) -> Any:
        """Predicted labels of ``split`` under ``variant`` through ``readout``."""
        return self.readout(readout).predict(self.features(variant, split=split))

    def corruption_errors(
        self,
        corruptions: str | Sequence[str] | None = None,
        severities: Sequence[int] | range | None = None,
        *,
        readout: str = "auto",
        split: str = "test",
    ) -> CorruptionErrors:
        """The error table of a corruption sweep (default: this test's sweep), with the
        clean error and per-image correctness for intervals. Severities must be 1..5."""
        from pytest_sslrobust.data.base import DataError
        from pytest_sslrobust.evaluate import corruption_errors
        from pytest_sslrobust.variants.corruptions import parse_corruptions

        if corruptions is None:
            names = tuple(dict.fromkeys(v.name for v in self.corruptions()))
        elif isinstance(corruptions, str):
            names = parse_corruptions(corruptions)
        else:
            names = tuple(corruptions)
        levels = tuple(severities) if severities is not None else (1, 2, 3, 4, 5)
        try:
            return corruption_errors(
                self.store, names, levels, readout=self.readout(readout), split=split
            )
        except DataError as exc:
            pytest.fail(f"sslrobust: {exc}", pytrace=False)

    def variant(self, text: str) -> Variant:
        """A variant from its id (``fog-s2``, ``center-r0.50``, ``foreground``, ``mixed_rand``)
        under this run's corruption protocol and segmenter."""
        from pytest_sslrobust.variants import parse_variant

        return parse_variant(
            text,
            protocol=self.settings.corruption_protocol,
            segmenter=self.settings.segmenter,
        )

    def preview(
        self, variants: Sequence[Any], split: str = "test", index: int = 0
    ) -> tuple[Any, list[str]]:
        """A uint8 grid of one item, clean and under each variant, and the tile ids."""
        return self.store.preview(variants, split=split, index=index)

    def items(self, split: str = "test") -> IndexedSource:
        """The deterministic subset of ``split`` that features are computed on."""
        return self.store.selection(split)

    def __repr__(self) -> str:
        return f"SslRobust(backbone={self.backbone!r}, data={self.dataset.spec!r})"


@pytest.fixture
def sslrobust(
    request: pytest.FixtureRequest, sslrobust_settings: Settings, sslrobust_features: FeatureStore
) -> SslRobust:
    """The facade: ``sslrobust.features("original", split="test")``, ``.corruptions()``,
    ``.variant(id)``, ``.backbone``, ``.dataset``, ``.items(split)``, ``.settings``."""
    marker = request.node.get_closest_marker("sslrobust")
    return SslRobust(sslrobust_settings, sslrobust_features, marker)
