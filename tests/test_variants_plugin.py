"""Variants through the plugin: options, parametrization, marker, strategies, preview."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from pytest_sslrobust import strategies as st
from pytest_sslrobust.variants import (
    BackgroundSwap,
    CircularMask,
    Corruption,
    RegionMask,
    Variant,
    VariantError,
    parse_variant,
)
from pytest_sslrobust.variants.masks import circular_mask

TINY = ["--sslrobust-model=random-resnet18", "--sslrobust-max-images=10", "-p", "no:randomly"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--sslrobust-corruptions=gausian_noise", "did you mean 'gaussian_noise'"),
        ("--sslrobust-corruptions=noise,,blur", "empty entry"),
        ("--sslrobust-severities=0-3", "1..5"),
        ("--sslrobust-severities=high", "cannot parse severities"),
        ("--sslrobust-corruption-protocol=jpeg", "on-the-fly or imagenet-c"),
        ("--sslrobust-segmenter=not a spec", "module.path:callable"),
        ("--sslrobust-workers=-1", ">= 0"),
    ],
)
def test_bad_variant_options_are_usage_errors(pytester, option, message):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_corruption_fixture_parametrizes_with_readable_ids(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_sweep(sslrobust_backbone, sslrobust_corruption):
            assert sslrobust_corruption.severity in (2, 4)

        @pytest.mark.sslrobust(corruptions="fog", severities=[5])
        def test_marked(sslrobust_corruption):
            assert sslrobust_corruption.id == "fog-s5"
        """
    )
    result = pytester.runpytest_subprocess(
        *TINY, "--sslrobust-corruptions=noise", "--sslrobust-severities=2,4", "-v"
    )
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        [
            "*test_sweep[[]random-resnet18-gaussian_noise-s2[]] PASSED*",
            "*test_sweep[[]random-resnet18-impulse_noise-s4[]] PASSED*",
            "*test_marked[[]fog-s5[]] PASSED*",
        ]
    )


def test_ini_keys_for_the_sweep(pytester):
    pytester.makeini("[pytest]\nsslrobust_corruptions = digital\nsslrobust_severities = 3\n")
    pytester.makepyfile(
        """
        def test_sweep(sslrobust):
            assert [v.id for v in sslrobust.corruptions()] == [
                "contrast-s3", "elastic_transform-s3", "pixelate-s3", "jpeg_compression-s3"]
        """
    )
    pytester.runpytest_subprocess(*TINY).assert_outcomes(passed=1)


def test_unknown_marker_keyword_is_a_usage_error(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.sslrobust(corruption="fog")
        def test_x():
            pass
        """
    )
    result = pytester.runpytest_subprocess(*TINY)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "unknown keyword 'corruption'; accepted: corruptions, data, models" in result.stderr.str()
    )


def test_marker_overrides_models_data_and_variants(pytester):
    pytester.makeconftest(
        """
        from pytest_sslrobust import BackboneAlias

        def pytest_sslrobust_register_backbones(register):
            register(BackboneAlias("tiny-b", "resnet18", weights="random", input_size=32))
        """
    )
    from PIL import Image

    for cls in ("cat", "dog"):
        folder = pytester.path / "pets" / cls
        folder.mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (40, 40), (60 * i, 100 if cls == "cat" else 200, 0)).save(
                folder / f"{i}.png"
            )
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.sslrobust(models="tiny-b")
        def test_model(sslrobust):
            assert sslrobust.backbone.name == "tiny-b"

        @pytest.mark.sslrobust(data="imagefolder:{pytester.path / "pets"}")
        def test_data(sslrobust):
            assert sslrobust.dataset.classes == ("cat", "dog")
            assert len(sslrobust.features("original", split="all")) == 8

        @pytest.mark.sslrobust(variants=["center-r0.30", "fog-s1"])
        def test_variants(sslrobust, sslrobust_variant):
            assert sslrobust.features(sslrobust_variant).variant == sslrobust_variant.id

        def test_default_variants(sslrobust_variant):
            pass
        """
    )
    result = pytester.runpytest_subprocess(*TINY, "-v")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        [
            "*test_model[[]tiny-b[]] PASSED*",
            "*test_data[[]random-resnet18[]] PASSED*",
            "*test_variants[[]random-resnet18-center-r0.30[]] PASSED*",
            "*test_variants[[]random-resnet18-fog-s1[]] PASSED*",
            "*test_default_variants[[]foreground[]] PASSED*",
            "*test_default_variants[[]border-r0.50[]] PASSED*",
        ]
    )


def test_marker_with_a_bad_model_or_data_is_a_usage_error(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.sslrobust(models="no-such-model")
        def test_x():
            pass
        """
    )
    result = pytester.runpytest_subprocess(*TINY)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Unknown model 'no-such-model'" in result.stderr.str()


def test_features_of_every_kind_of_variant(pytester):
    pytester.makepyfile(
        """
        import torch

        def test_variants(sslrobust):
            clean = sslrobust.features("original")
            for name in ("center", "border-r0.30", "foreground", "background", "mixed_rand",
                         "contrast-s4"):
                altered = sslrobust.features(name)
                assert altered.ids == clean.ids
                assert altered.protocol["origin"] == "on-the-fly"
                assert not torch.allclose(altered.features, clean.features), name
                assert altered.ssim.shape == (len(clean),) and (altered.ssim < 1).all(), name
            assert sslrobust.features("center").protocol["variant"] == "center-r0.50"
        """
    )
    result = pytester.runpytest_subprocess(*TINY)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*feature sets: 7 computed, 1 memory hits*"])


def test_no_mask_names_the_segmenter_option(pytester):
    pytester.makepyfile(
        """
        import numpy as np
        import pytest
        import pytest_sslrobust

        @pytest.fixture(scope="session")
        def sslrobust_dataset():
            images = np.random.default_rng(0).integers(0, 255, (20, 40, 40, 3), np.uint8)
            return pytest_sslrobust.from_arrays(images, np.arange(20) % 2)

        def test_x(sslrobust):
            sslrobust.features("foreground")
        """
    )
    result = pytester.runpytest_subprocess(*TINY)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*--sslrobust-segmenter=module:callable*"])


# -- strategies ----------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(variant=st.variants(include_regions=True, include_swaps=True))
def test_strategies_build_valid_variants_whose_ids_round_trip(variant):
    assert isinstance(variant, Variant)
    rebuilt = parse_variant(variant.id)
    assert rebuilt.id == variant.id
    if isinstance(variant, Corruption):
        assert rebuilt == variant


@settings(max_examples=30, deadline=None)
@given(
    mask=st.circular_masks(regions=("center",)),
    height=hst.integers(8, 64),
    width=hst.integers(8, 64),
)
def test_center_and_border_strategy_partition_images(mask, height, width):
    from pytest_sslrobust.data.base import Item

    inside = circular_mask((height, width), mask.radius)
    border = CircularMask("border", mask.radius, fill=(0, 0, 0))

    image = np.full((height, width, 3), 200, np.uint8)
    kept_center = (
        CircularMask("center", mask.radius, fill=(0, 0, 0)).apply(Item(image, 0, "i"), 0) == 200
    ).all(-1)
    kept_border = (border.apply(Item(image, 0, "i"), 0) == 200).all(-1)
    assert not (kept_center & kept_border).any() and (kept_center | kept_border).all()
    assert np.array_equal(kept_center, inside)


@settings(max_examples=20, deadline=None)
@given(
    level=st.severities(max_value=2), variant=st.corruptions("noise", st.severities(max_value=2))
)
def test_severity_bounds_are_respected(level, variant):
    assert 1 <= level <= 2 and variant.severity <= 2 and variant.name.endswith("noise")


def test_strategy_arguments_are_checked():
    with pytest.raises(VariantError):
        st.severities(max_value=6)
    with pytest.raises(VariantError, match="did you mean"):
        st.corruption_names(["fogg"])


# -- preview -------------------------------------------------------------------------


def test_preview_grid_shows_what_the_model_sees():
    from pytest_sslrobust.backbones.loading import load_backbone
    from pytest_sslrobust.data.bundled import load_bundled
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

    backbone = load_backbone("random-resnet18")
    store = FeatureStore(
        backbone, load_bundled("textured-digits"), FeatureCache(None), max_images=10
    )
    variants = [
        "fog-s3",
        CircularMask("center"),
        RegionMask("foreground"),
        BackgroundSwap("only_fg"),
    ]
    grid, ids = store.preview(variants)
    size = backbone.preprocessing.input_size
    assert ids == ["original", "fog-s3", "center-r0.50", "foreground", "only_fg"]
    assert grid.shape == (size, 5 * size + 4 * 2, 3) and grid.dtype == np.uint8
    item = store.selection("test").load(0)
    fog_tile = grid[:, size + 2 : 2 * size + 2]
    assert np.array_equal(fog_tile, store.altered_image(item, "fog-s3"))
    only_fg = grid[:, 4 * (size + 2) :]
    assert (only_fg == 0).all(-1).mean() > 0.3  # black background around the digit
