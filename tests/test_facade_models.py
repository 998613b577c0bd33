"""sslrobust_models (models of a run by name and paradigm) and the facade's new entry points."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_sslrobust.backbones import registry
from pytest_sslrobust.backbones.registry import BackboneAlias
from pytest_sslrobust.fixtures import SslRobust, SslRobustModels

PARADIGMS = {
    "test-simclr": "self-supervised (contrastive)",
    "test-sup": "supervised",
    "test-dino": "self-supervised (distillation)",
}
# Not an alias: its paradigm comes from the loaded backbone.
MODULE_SPEC = "my_models.nets:make"


class FakeRun:
    """What SslRobustModels needs of the run: settings, backbone(spec), store(...)."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(model=(), corruption_protocol="on-the-fly")
        self.loaded: list[str] = []

    def backbone(self, spec: str) -> SimpleNamespace:
        self.loaded.append(spec)
        return SimpleNamespace(name=spec, paradigm="Supervised (fine-tuned)")

    def store(self, backbone: SimpleNamespace, dataset: object) -> SimpleNamespace:
        return SimpleNamespace(backbone=backbone, dataset=dataset)


@pytest.fixture
def models(monkeypatch):
    for name, paradigm in PARADIGMS.items():
        alias = BackboneAlias(name, "resnet18", weights="random", paradigm=paradigm)
        monkeypatch.setitem(registry._ALIASES, name, alias)
    run = FakeRun()
    dataset = object()
    return SslRobustModels(run, [*PARADIGMS, MODULE_SPEC], dataset, None)  # type: ignore[arg-type]


def names(facades):
    return [facade.backbone.name for facade in facades]


def test_lookup_by_name_builds_one_facade_per_model(models):
    assert len(models) == 4
    facade = models["test-sup"]
    assert isinstance(facade, SslRobust)
    assert facade.backbone.name == "test-sup"
    assert facade.dataset is models.dataset
    assert models["test-sup"] is facade
    assert models._run.loaded == ["test-sup"]
    assert names(models) == [*PARADIGMS, MODULE_SPEC]


def test_unknown_model_names_the_run_and_the_fix(models):
    with pytest.raises(KeyError, match="'dinov2' is not part of this run") as info:
        models["dinov2"]
    message = str(info.value)
    assert "test-simclr, test-sup, test-dino" in message
    assert "--sslrobust-model" in message and "models=" in message


def test_supervised_does_not_match_self_supervised(models):
    assert names(models.by_paradigm("supervised")) == ["test-sup", MODULE_SPEC]
    assert names(models.by_paradigm("self-supervised")) == ["test-simclr", "test-dino"]
    assert names(models.by_paradigm("contrastive")) == ["test-simclr"]
    assert names(models.by_paradigm("Distillation")) == ["test-dino"]
    assert names(models.by_paradigm("SUPERVISED")) == ["test-sup", MODULE_SPEC]
    # the word must start the paradigm or follow a space or parenthesis
    assert models.by_paradigm("vised") == []
    assert models.by_paradigm("masked") == []


def test_paradigm_search_loads_only_matches_and_non_aliases(models):
    models.by_paradigm("contrastive")
    # registered aliases are read from the registry; a module spec is loaded to ask it
    assert models._run.loaded == ["test-simclr", MODULE_SPEC]


def test_pair_returns_one_model_of_each_paradigm(models):
    contrastive, supervised = models.pair("contrastive", "supervised")
    assert contrastive.backbone.name == "test-simclr"
    assert supervised.backbone.name == "test-sup"


@pytest.mark.parametrize(
    ("first", "second", "lacking"),
    [("masked", "supervised", "masked"), ("contrastive", "generative", "generative")],
)
def test_pair_skips_naming_the_missing_paradigm(models, first, second, lacking):
    with pytest.raises(pytest.skip.Exception) as info:
        models.pair(first, second)
    reason = str(info.value)
    assert f"needs a {first} and a {second} model" in reason
    assert f"no {lacking} model among test-simclr" in reason


# ------------------------------------------------------------------ through the plugin


def test_models_and_facade_in_a_run(pytester):
    pytester.makepyfile(
        """
        import pytest
        from pytest_sslrobust.attribution import AttributionSet

        def test_pair_skips(sslrobust_models):
            sslrobust_models.pair("contrastive", "supervised")

        def test_models_by_name(sslrobust_models, sslrobust):
            assert len(sslrobust_models) == 1
            facade = sslrobust_models["random-resnet18"]
            assert facade.backbone.name == "random-resnet18"
            assert facade.store is sslrobust.store
            with pytest.raises(KeyError, match="'bundled-simclr' is not part of this run"):
                sslrobust_models["bundled-simclr"]
            assert sslrobust_models.by_paradigm("random") == [facade]
            assert sslrobust_models.by_paradigm("supervised") == []

        def test_attribution_through_the_facade(sslrobust):
            maps = sslrobust.attribution("original", target="linear-probe", images=4)
            assert isinstance(maps, AttributionSet)
            assert maps.maps.shape == (4, 64, 64) and maps.target == "linear-probe"
            assert maps.masks is not None and maps.masks.shape == (4, 64, 64)
            again = sslrobust.attribution("original", target="linear-probe", images=4)
            assert again.key == maps.key
            label_free = sslrobust.attribution("original", target="similarity", images=4)
            assert label_free.ids == maps.ids and label_free.target == "similarity"
            drift = sslrobust.attack((0.0, 2 / 255), metric="feature_drift", images=4, steps=2)
            assert drift.values[0] == 0.0 and drift.n == 4

        def test_with_model_and_train_split(sslrobust):
            other = sslrobust.with_model("random-resnet18")
            assert other.backbone.name == "random-resnet18"
            assert other.dataset is sslrobust.dataset
            biased = sslrobust.readout("linear-probe", train_split="biased-train")
            assert biased is not sslrobust.readout("linear-probe")
            assert biased is sslrobust.readout("linear-probe", train_split="biased-train")
            assert biased.params["train_split"] == "biased-train"
            predictions = sslrobust.predictions(readout="linear-probe", train_split="biased-train")
            assert len(predictions) == 30
        """
    )
    result = pytester.runpytest_subprocess(
        "--sslrobust-model=random-resnet18",
        "--sslrobust-max-images=30",
        f"--sslrobust-cache-dir={pytester.path / 'cache'}",
        "-rs",
    )
    result.assert_outcomes(passed=3, skipped=1)
    skipped = "*SKIPPED*needs a contrastive and a supervised model*no contrastive model among"
    result.stdout.fnmatch_lines([f"{skipped} random-resnet18*"])


def test_models_use_an_overridden_dataset_and_the_marker_data(pytester):
    pytester.makeconftest(
        """
        import numpy as np
        import pytest
        import pytest_sslrobust

        @pytest.fixture(scope="session")
        def sslrobust_dataset():
            rng = np.random.default_rng(0)
            images = rng.integers(0, 255, size=(40, 16, 16, 3), dtype=np.uint8)
            return pytest_sslrobust.from_arrays(images, np.arange(40) % 2)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        def test_overridden(sslrobust_models, sslrobust_dataset):
            assert sslrobust_models.dataset is sslrobust_dataset
            assert sslrobust_models.dataset.spec.startswith("arrays")

        @pytest.mark.sslrobust(data="bundled:textured-shapes")
        def test_marker_wins(sslrobust_models):
            assert sslrobust_models.dataset.spec == "bundled:textured-shapes"
        """
    )
    result = pytester.runpytest_subprocess("--sslrobust-model=random-resnet18", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_with_data_and_the_far_data_option(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_far(sslrobust):
            assert sslrobust.settings.far_data == "bundled:textured-digits"
            far = sslrobust.with_data("bundled:textured-shapes")
            assert far.backbone is sslrobust.backbone
            assert far.dataset.spec == "bundled:textured-shapes"
            assert far.dataset is sslrobust.with_data("bundled:textured-shapes").dataset
            assert sslrobust.dataset.spec == "bundled:textured-digits"

        def test_bad_spec(sslrobust):
            sslrobust.with_data("bundled:no-such-set")
        """
    )
    result = pytester.runpytest_subprocess(
        "--sslrobust-model=random-resnet18",
        "--sslrobust-far-data=bundled:textured-digits",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*sslrobust: with_data: *no bundled dataset 'no-such-set'*"])


def test_cv_features_cover_the_test_split_or_the_whole_labelled_set(pytester):
    pytester.makepyfile(
        """
        def test_cv(sslrobust):
            features, labels = sslrobust.cv_features("center")
            test = sslrobust.features("center", split="test")
            train = sslrobust.features("center", split="train")
            if sslrobust.settings.probe_cv == "all":
                assert len(labels) == len(test) + len(train)
                assert (features[len(train):] == test.features).all()
            else:
                assert (features == test.features).all() and len(labels) == len(test)
            print("CV_ROWS", len(labels))
        """
    )
    common = ["--sslrobust-model=random-resnet18", "--sslrobust-max-images=30", "-s"]
    cache = f"--sslrobust-cache-dir={pytester.path / 'cache'}"
    test_only = pytester.runpytest_subprocess(*common, cache)
    test_only.assert_outcomes(passed=1)
    test_only.stdout.fnmatch_lines(["*CV_ROWS 30*"])
    everything = pytester.runpytest_subprocess(*common, cache, "--sslrobust-probe-cv=all")
    everything.assert_outcomes(passed=1)
    everything.stdout.fnmatch_lines(["*CV_ROWS 60*"])
