"""The fixtures a robustness test asks for, and the ``sslrobust`` facade that ties them."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sslrobust.markers import MarkerOptions, options_of
from pytest_sslrobust.session import RUN_KEY, SslRobustRun, fail_explained
from pytest_sslrobust.settings import Settings
from pytest_sslrobust.vocabulary import DataError, VariantError

if TYPE_CHECKING:
    import torch

    from pytest_sslrobust.attribution.sets import AttributionSet
    from pytest_sslrobust.backbones.base import Backbone
    from pytest_sslrobust.data.base import Dataset, IndexedSource
    from pytest_sslrobust.evaluate import Readout
    from pytest_sslrobust.features.store import FeatureSet, FeatureStore
    from pytest_sslrobust.metrics.attacks import AttackResult
    from pytest_sslrobust.metrics.corruption import CorruptionErrors
    from pytest_sslrobust.report import ReportRecorder
    from pytest_sslrobust.variants.base import Variant
    from pytest_sslrobust.variants.corruptions import Corruption


def _run(config: pytest.Config) -> SslRobustRun:
    return config.stash[RUN_KEY]


@contextlib.contextmanager
def _explained() -> Iterator[None]:
    """Problems with what the test asked for (data that cannot be read, a variant id that
    does not parse) fail the test with their one-line message, without a traceback."""
    try:
        yield
    except (DataError, VariantError) as exc:
        fail_explained(f"sslrobust: {exc}")


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
    data = options_of(request.node).data
    dataset = run.dataset(data) if data else sslrobust_dataset
    return run.store(sslrobust_backbone, dataset)


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
        self,
        settings: Settings,
        store: FeatureStore,
        options: MarkerOptions | None = None,
        run: SslRobustRun | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.options = options if options is not None else MarkerOptions()
        self._run = run
        self.train_data_applies = True

    def with_model(self, spec: str) -> SslRobust:
        """The same data and marker seen through another backbone (a reference model for
        mCE, say), loaded once per run like the run's own models."""
        if self._run is None:
            raise RuntimeError("with_model needs the facade from the sslrobust fixture")
        store = self._run.store(self._run.backbone(spec), self.dataset)
        return SslRobust(self.settings, store, self.options, self._run)

    def with_data(self, spec: str) -> SslRobust:
        """The same backbone and marker on another dataset (a far transfer target, say:
        ``sslrobust.with_data(sslrobust.settings.far_data)``), loaded once per run."""
        if self._run is None:
            raise RuntimeError("with_data needs the facade from the sslrobust fixture")
        from pytest_sslrobust.settings import parse_data

        try:
            spec = parse_data(spec)
        except argparse.ArgumentTypeError as exc:
            fail_explained(f"sslrobust: with_data: {exc}")
        store = self._run.store(self.backbone, self._run.dataset(spec))
        other = SslRobust(self.settings, store, self.options, self._run)
        other.train_data_applies = False  # another dataset fits on its own train split
        return other

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
        with _explained():
            return self.store.get(variant, split=split)

    def cv_features(self, variant: Any = "original") -> tuple[torch.Tensor, torch.Tensor]:
        """Features and labels a cross-validated probe is scored over: the test split, or
        with ``--sslrobust-probe-cv=all`` the whole labelled set (train and test together,
        as the masking study does)."""
        import torch

        splits = ["test"]
        if self.settings.probe_cv == "all":
            splits = [s for s in ("train", "test") if s in self.dataset.splits]
        sets = [self.features(variant, split=split) for split in splits]
        return torch.cat([fs.features for fs in sets]), torch.cat([fs.labels for fs in sets])

    def corruptions(self) -> list[Corruption]:
        """The corruption sweep for this test (options, or the test's sslrobust marker)."""
        return self.options.sweep(self.settings)

    @property
    def report(self) -> ReportRecorder:
        """Hands tables, matrices and thumbnails of this test to ``--sslrobust-report``."""
        from pytest_sslrobust.report import ReportRecorder

        return ReportRecorder(self.store)

    def readout(self, kind: str = "auto", *, train_split: str = "train") -> Readout:
        """A readout (``auto``, ``head``, ``linear-probe`` or ``knn``), fitted once per run
        on the clean ``train_split`` and shared by all tests.

        With ``--sslrobust-train-data`` the default ``train`` split is that data's (classes
        matched by name); ``--sslrobust-train-per-class`` fits on at most N images a class.
        """
        from pytest_sslrobust.evaluate import Readout

        train_store = None
        # The train data stands in for the test's data (the run's, an overridden fixture's,
        # a marker's), not for other data the test reads through with_data (a far target).
        if (
            self.settings.train_data
            and train_split == "train"
            and self.train_data_applies
            and self._run is not None
        ):
            with _explained():
                train_data = self._run.dataset(self.settings.train_data)
            train_store = self._run.store(self.backbone, train_data)
        key = kind if train_split == "train" else f"{kind}@{train_split}"
        if key not in self.store.readouts:
            head = None
            if self.settings.head is not None and kind in ("auto", "linear-probe"):
                from pytest_sslrobust.heads import HeadError, HeadFile

                try:
                    head = HeadFile.read(self.settings.head)
                except HeadError as exc:
                    fail_explained(f"sslrobust: {exc}")
            self.store.readouts[key] = Readout(
                self.store,
                kind,
                train_split=train_split,
                train_store=train_store,
                train_per_class=self.settings.train_per_class,
                head_file=head,
                save_probe=self._probe_path(kind, train_split),
            )
        return self.store.readouts[key]  # type: ignore[no-any-return]

    def _probe_path(self, kind: str, train_split: str) -> Path | None:
        """Where ``--sslrobust-save-probe`` writes this backbone's default probe."""
        path = self.settings.save_probe
        if path is None or kind not in ("auto", "linear-probe") or train_split != "train":
            return None
        if len(self.settings.model) > 1:
            from pytest_sslrobust.backbones.registry import model_id

            return path.with_name(f"{path.stem}-{model_id(self.backbone.spec)}{path.suffix}")
        return path

    def predictions(
        self,
        variant: Any = "original",
        split: str = "test",
        readout: str = "auto",
        *,
        train_split: str = "train",
    ) -> Any:
        """Predicted labels of ``split`` under ``variant`` through ``readout`` (fitted on the
        clean ``train_split``)."""
        from pytest_sslrobust.evaluate import Predictions

        fitted = self.readout(readout, train_split=train_split)
        features = self.features(variant, split=split)
        protocol = {**features.protocol, "readout": dict(fitted.params)}
        return Predictions.of(fitted.predict(features), protocol)

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
        from pytest_sslrobust.evaluate import corruption_errors
        from pytest_sslrobust.variants.corruptions import parse_corruptions

        with _explained():
            if corruptions is None:
                names = tuple(dict.fromkeys(v.name for v in self.corruptions()))
            elif isinstance(corruptions, str):
                names = parse_corruptions(corruptions)
            else:
                names = tuple(corruptions)
            levels = tuple(severities) if severities is not None else (1, 2, 3, 4, 5)
            return corruption_errors(
                self.store, names, levels, readout=self.readout(readout), split=split
            )

    def attribution(
        self,
        variant: Any = "original",
        split: str = "test",
        *,
        method: str = "gradcam",
        target: str = "auto",
        images: int | None = 64,
    ) -> AttributionSet:
        """Attribution maps of ``images`` items of ``split`` (spread over the selection) under
        ``variant``: ``method`` ``gradcam`` (CNN last stage, ViT last block) or ``rollout``
        (ViTs); ``target`` a readout (``auto``, ``head``, ``linear-probe``: the true class)
        or ``similarity`` (label-free: the embedding's agreement with the clean one).
        Cached like features; see ``pytest_sslrobust.attribution``."""
        from pytest_sslrobust.attribution.sets import attribution_set

        readout = None if target == "similarity" else self.readout(target)
        with _explained():
            return attribution_set(
                self.store, readout, variant, split, method=method, target=target, images=images
            )

    def attack(
        self,
        eps: Sequence[float],
        *,
        metric: str = "robust_accuracy",
        attack: str = "pgd",
        norm: str = "linf",
        steps: int = 10,
        images: int | None = 128,
        readout: str = "auto",
        split: str = "test",
    ) -> AttackResult:
        """Robust accuracy through ``readout`` (or, ``metric="feature_drift"``, label-free
        embedding drift) at each budget in ``eps`` (pixel units of [0, 1] images) on
        ``images`` clean items of ``split``; cached per image like features."""
        from pytest_sslrobust.attacks import attack_result

        fitted = None if metric == "feature_drift" else self.readout(readout)
        return attack_result(
            self.store,
            fitted,
            eps,
            metric=metric,
            attack=attack,
            norm=norm,
            steps=steps,
            images=images,
            split=split,
        )

    def variant(self, text: str) -> Variant:
        """A variant from its id (``fog-s2``, ``center-r0.50``, ``foreground``, ``mixed_rand``)
        under this run's corruption protocol and segmenter."""
        from pytest_sslrobust.variants import parse_variant

        with _explained():
            return parse_variant(
                text,
                protocol=self.settings.corruption_protocol,
                segmenter=self.settings.segmenter,
            )

    def preview(
        self, variants: Sequence[Any], split: str = "test", index: int = 0
    ) -> tuple[Any, list[str]]:
        """A uint8 grid of one item, clean and under each variant, and the tile ids."""
        with _explained():
            return self.store.preview(variants, split=split, index=index)

    def items(self, split: str = "test") -> IndexedSource:
        """The deterministic subset of ``split`` that features are computed on."""
        return self.store.selection(split)

    def __repr__(self) -> str:
        return f"SslRobust(backbone={self.backbone!r}, data={self.dataset.spec!r})"


class SslRobustModels:
    """Every model of the run on one dataset, for contracts that compare models.

    ``sslrobust_models["bundled-simclr"]`` is that model's ``SslRobust`` facade;
    ``.by_paradigm("contrastive")`` finds the run's models whose paradigm mentions a word;
    ``.pair(a, b)`` returns two of them or skips the test saying what the run lacks, so a
    comparison suite still runs (and skips with its reason) on a single user model.
    """

    def __init__(
        self,
        run: SslRobustRun,
        specs: Sequence[str],
        dataset: Dataset,
        options: MarkerOptions | None = None,
    ) -> None:
        self._run = run
        self.specs = tuple(specs)
        self.dataset = dataset
        self.options = options if options is not None else MarkerOptions()
        self._facades: dict[str, SslRobust] = {}

    def __getitem__(self, spec: str) -> SslRobust:
        if spec not in self.specs:
            raise KeyError(
                f"model {spec!r} is not part of this run ({', '.join(self.specs)}); add it to "
                "--sslrobust-model or @pytest.mark.sslrobust(models=...)"
            )
        if spec not in self._facades:
            store = self._run.store(self._run.backbone(spec), self.dataset)
            self._facades[spec] = SslRobust(self._run.settings, store, self.options, self._run)
        return self._facades[spec]

    def __iter__(self) -> Any:
        return (self[spec] for spec in self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def by_paradigm(self, word: str) -> list[SslRobust]:
        """The run's models whose registered paradigm contains ``word`` (case-insensitive).

        "supervised" does not match "self-supervised": the word must start the paradigm or
        follow a space or parenthesis.
        """
        import re

        from pytest_sslrobust.backbones.registry import get_alias, parse_spec

        pattern = re.compile(rf"(^|[\s(]){re.escape(word.lower())}")
        found = []
        for spec in self.specs:
            parsed = parse_spec(spec)  # an @PARADIGM or an alias says it without loading
            alias = get_alias(parsed.alias) if parsed.alias else None
            paradigm = parsed.paradigm or (alias.paradigm if alias is not None else None)
            if paradigm is None:
                paradigm = self[spec].backbone.paradigm
            if pattern.search(paradigm.lower()):
                found.append(self[spec])
        return found

    def pair(self, first: str, second: str) -> tuple[SslRobust, SslRobust]:
        """One model of paradigm ``first`` and one of ``second``, or skip saying why."""
        a, b = self.by_paradigm(first), self.by_paradigm(second)
        if not a or not b:
            lacking = first if not a else second
            pytest.skip(
                f"needs a {first} and a {second} model in --sslrobust-model; this run has "
                f"no {lacking} model among {', '.join(self.specs)}"
            )
        return a[0], b[0]


@pytest.fixture
def sslrobust_models(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config
) -> SslRobustModels:
    """All models of the run (``--sslrobust-model=a,b`` or the marker's ``models=``) on the
    test's dataset (the marker's ``data=``, else ``sslrobust_dataset``, overridden or not),
    each with its own facade; for contracts across models and paradigms."""
    run = _run(pytestconfig)
    options = options_of(request.node)
    if options.data:
        dataset = run.dataset(options.data)
    else:  # the fixture, so a conftest's own dataset reaches every model
        dataset = request.getfixturevalue("sslrobust_dataset")
    return SslRobustModels(run, options.models_or(run.settings.model), dataset, options)


@pytest.fixture
def sslrobust(
    request: pytest.FixtureRequest, sslrobust_settings: Settings, sslrobust_features: FeatureStore
) -> SslRobust:
    """The facade: ``sslrobust.features("original", split="test")``, ``.corruptions()``,
    ``.variant(id)``, ``.backbone``, ``.dataset``, ``.items(split)``, ``.settings``."""
    options = options_of(request.node)
    return SslRobust(sslrobust_settings, sslrobust_features, options, _run(request.config))
