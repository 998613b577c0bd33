"""The fixtures a robustness test asks for, and the ``sslrobust`` facade that ties them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_sslrobust.session import RUN_KEY, SslRobustRun
from pytest_sslrobust.settings import Settings

if TYPE_CHECKING:
    from pytest_sslrobust.backbones.base import Backbone
    from pytest_sslrobust.data.base import Dataset, IndexedSource
    from pytest_sslrobust.features.store import FeatureSet, FeatureStore


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
    pytestconfig: pytest.Config, sslrobust_backbone: Backbone, sslrobust_dataset: Dataset
) -> FeatureStore:
    """Cached features of the current backbone on the dataset.

    ``sslrobust_features.get("original", split="test")`` returns a ``FeatureSet`` with
    ``features`` (n, d), ``logits`` (or None), ``labels``, ``ids`` and its ``protocol``.
    Each set is computed once per run (and once across runs, through the disk cache).
    """
    return _run(pytestconfig).store(sslrobust_backbone, sslrobust_dataset)


class SslRobust:
    """What a robustness test works with: the backbone, the data and their features."""

    def __init__(self, settings: Settings, store: FeatureStore) -> None:
        self.settings = settings
        self.store = store

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

    def items(self, split: str = "test") -> IndexedSource:
        """The deterministic subset of ``split`` that features are computed on."""
        return self.store.selection(split)

    def __repr__(self) -> str:
        return f"SslRobust(backbone={self.backbone!r}, data={self.dataset.spec!r})"


@pytest.fixture
def sslrobust(sslrobust_settings: Settings, sslrobust_features: FeatureStore) -> SslRobust:
    """The facade: ``sslrobust.features("original", split="test")``, ``sslrobust.backbone``,
    ``sslrobust.dataset``, ``sslrobust.items(split)``, ``sslrobust.settings``."""
    return SslRobust(sslrobust_settings, sslrobust_features)
