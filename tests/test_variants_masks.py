"""Circular and region masks, ImageNet-9 background swaps and the BG-Gap, on synthetic data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sslrobust.data.base import FunctionSource, Item
from pytest_sslrobust.variants import parse_variant
from pytest_sslrobust.variants.base import VariantContext, VariantError
from pytest_sslrobust.variants.masks import CircularMask, RegionMask, circular_mask
from pytest_sslrobust.variants.swaps import (
    SWAPS,
    BackgroundSwap,
    bg_gap,
    bounding_box,
    choose_donor,
)

SIZE = 64
FILL = (124, 116, 104)
# a colour no background pixel has, so foreground pixels can be recognised by colour
FG_COLOUR = np.array([255, 0, 255], dtype=np.uint8)
N_ITEMS, N_CLASSES = 12, 3


def make_item(index: int, size: int = SIZE) -> Item:
    """Random background (channels < 200) with a rectangular foreground of one colour."""
    rng = np.random.default_rng(1000 + index)
    image = rng.integers(0, 200, size=(size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=bool)
    top, left = 8 + index % 5, 10 + index % 7
    mask[top : top + 24, left : left + 20] = True
    image[mask] = FG_COLOUR
    return Item(image, index % N_CLASSES, f"item-{index:02d}", mask)


def make_source(size: int = SIZE) -> FunctionSource:
    return FunctionSource(
        [f"item-{i:02d}" for i in range(N_ITEMS)],
        [i % N_CLASSES for i in range(N_ITEMS)],
        lambda i: make_item(i, size),
    )


def context(source: FunctionSource | None = None, geometry=None) -> VariantContext:
    return VariantContext(fill=FILL, source=source, geometry=geometry)


def kept(out: np.ndarray, image: np.ndarray) -> np.ndarray:
    return (out == image).all(axis=2)


# circular masks


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(8, 80),
    width=st.integers(8, 80),
    radius=st.floats(0.05, 1.5, allow_nan=False),
)
def test_center_and_border_partition_the_image(height: int, width: int, radius: float) -> None:
    image = np.random.default_rng(height * 100 + width).integers(
        0, 256, (height, width, 3), dtype=np.uint8
    )
    # a fill absent from the image makes "kept" unambiguous
    image[(image == 7).all(axis=2)] = 8
    item = Item(image, 0, "x")
    fill = (7, 7, 7)
    center = CircularMask("center", radius, fill).apply(item, 0)
    border = CircularMask("border", radius, fill).apply(item, 0)
    keep_c, keep_b = kept(center, image), kept(border, image)
    assert not (keep_c & keep_b).any()
    assert (keep_c | keep_b).all()
    assert (center[~keep_c] == 7).all() and (border[~keep_b] == 7).all()
    disc = circular_mask((height, width), radius)
    assert (keep_c == disc).all()
    assert disc.sum() <= np.pi * (radius * min(height, width) / 2 + 1) ** 2


@pytest.mark.parametrize("shape", [(9, 9), (10, 10), (12, 17), (31, 20)])
def test_circular_mask_is_centred_and_sized(shape: tuple[int, int]) -> None:
    disc = circular_mask(shape, 0.5)
    assert disc.shape == shape and disc.dtype == bool
    # symmetric about the centre on odd and even sizes
    assert (disc == disc[::-1]).all() and (disc == disc[:, ::-1]).all()
    rows = np.flatnonzero(disc.any(axis=1))
    half = 0.5 * min(shape) / 2
    assert 2 * half - 1 <= rows.size <= 2 * half + 1
    # 1.5 half-sides reach past the corners of a square
    side = min(shape)
    assert circular_mask((side, side), 1.5).all()


def test_circular_mask_exact_small_case() -> None:
    assert circular_mask((5, 5), 0.5).astype(int).tolist() == [
        [0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    # distance == R is inside: radius 0.8 on 5x5 -> R = 2 pixels
    edge = circular_mask((5, 5), 0.8)
    assert edge[2, 0] and edge[0, 2] and not edge[1, 0]


@pytest.mark.parametrize("radius", [0, -0.1, 1.51, float("nan"), "0.5", True])
def test_bad_radius_is_rejected(radius: object) -> None:
    with pytest.raises(VariantError, match="radius"):
        CircularMask("center", radius)  # type: ignore[arg-type]
    with pytest.raises(VariantError, match="radius"):
        circular_mask((8, 8), radius)  # type: ignore[arg-type]


def test_bad_region_and_fill_are_rejected() -> None:
    with pytest.raises(VariantError, match="center, border"):
        CircularMask("middle")
    with pytest.raises(VariantError, match="foreground, background"):
        RegionMask("object")
    with pytest.raises(VariantError, match="fill"):
        CircularMask("center", 0.5, (0, 0, 256))
    with pytest.raises(VariantError, match="fill"):
        RegionMask("foreground", (0, 0))  # type: ignore[arg-type]


def test_circular_ids_and_parse() -> None:
    assert CircularMask("center").id == "center-r0.50"
    assert CircularMask("border", 0.25).id == "border-r0.25"
    assert parse_variant("center").id == "center-r0.50"
    assert parse_variant("border-r0.75") == CircularMask("border", 0.75)
    assert RegionMask("foreground").id == "foreground"
    assert parse_variant("background") == RegionMask("background")
    assert parse_variant("mixed_rand").id == "mixed_rand"


def test_fill_defaults_to_context_fill_after_bind() -> None:
    item = make_item(0)
    variant = CircularMask("border", 0.5)
    assert variant.fill is None
    bound = variant.bind(context())
    assert bound.fill == FILL and bound.params["fill"] == FILL
    out = bound.apply(item, 0)
    disc = circular_mask((SIZE, SIZE), 0.5)
    assert (out[disc] == FILL).all()
    assert (out[~disc] == item.image[~disc]).all()
    # an explicit fill wins over the context's
    assert CircularMask("border", 0.5, (1, 2, 3)).bind(context()).fill == (1, 2, 3)
    region = RegionMask("foreground").bind(context())
    assert region.fill == FILL
    assert (region.apply(item, 0)[~item.mask] == FILL).all()


def test_unbound_mask_without_fill_errors() -> None:
    with pytest.raises(VariantError, match="bind"):
        CircularMask("center").apply(make_item(0), 0)


def test_masks_ignore_seed_and_leave_input_alone() -> None:
    item = make_item(1)
    before = item.image.copy()
    for variant in (CircularMask("center"), RegionMask("background")):
        bound = variant.bind(context())
        assert (bound.apply(item, 0) == bound.apply(item, 99)).all()
    assert (item.image == before).all()


# foreground / background masks


def test_foreground_and_background_partition_the_image() -> None:
    item = make_item(3)
    fg = RegionMask("foreground", (0, 0, 0)).apply(item, 0)
    bg = RegionMask("background", (0, 0, 0)).apply(item, 0)
    assert (fg[item.mask] == item.image[item.mask]).all()
    assert (fg[~item.mask] == 0).all()
    assert (bg[~item.mask] == item.image[~item.mask]).all()
    assert (bg[item.mask] == 0).all()
    # the two kept regions are disjoint and together are the whole image
    assert ((fg.astype(int) + bg.astype(int)) == item.image).all()


def test_missing_mask_names_the_segmenter_option() -> None:
    item = dataclasses.replace(make_item(0), mask=None)
    with pytest.raises(VariantError, match="--sslrobust-segmenter"):
        RegionMask("foreground", FILL).apply(item, 0)


def test_segmenter_spec_is_used(tmp_path, monkeypatch) -> None:
    (tmp_path / "sslrobust_test_segmenter.py").write_text(
        "import numpy as np\n"
        "CALLS = []\n"
        "def bright(image):\n"
        "    CALLS.append(image.shape)\n"
        "    return (image.max(axis=2) > 200).astype(np.uint8)\n"
        "def bright_hw1(image):\n"
        "    return bright(image)[:, :, None].astype(bool)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    truth = make_item(2)
    item = dataclasses.replace(truth, mask=None)
    variant = parse_variant("foreground", segmenter="sslrobust_test_segmenter:bright")
    assert variant.params["segmenter"] == "sslrobust_test_segmenter:bright"
    out = variant.bind(context()).apply(item, 0)
    assert (out[truth.mask] == FG_COLOUR).all()
    assert (out[~truth.mask] == FILL).all()
    # an HxWx1 answer is one mask too
    hw1 = RegionMask("background", FILL, "sslrobust_test_segmenter:bright_hw1")
    assert (hw1.apply(item, 0)[truth.mask] == FILL).all()
    # the item's own mask wins over the segmenter
    import sslrobust_test_segmenter as module

    calls = len(module.CALLS)
    variant.bind(context()).apply(truth, 0)
    assert len(module.CALLS) == calls


@pytest.mark.parametrize(
    "spec", ["no_such_module_xyz:segment", "numpy:no_such_function", "numpy", "numpy:pi"]
)
def test_bad_segmenter_spec_errors(spec: str) -> None:
    item = dataclasses.replace(make_item(0), mask=None)
    with pytest.raises(VariantError, match="segmenter"):
        RegionMask("foreground", FILL, segmenter=spec).apply(item, 0)


def test_wrong_shape_and_non_binary_masks_error() -> None:
    item = make_item(0)
    wrong = dataclasses.replace(item, mask=np.ones((SIZE, SIZE + 1), dtype=bool))
    with pytest.raises(VariantError, match="shape"):
        RegionMask("foreground", FILL).apply(wrong, 0)
    values = np.zeros((SIZE, SIZE), dtype=np.uint8)
    values[:4] = 1
    values[4:8] = 2
    ternary = dataclasses.replace(item, mask=values)
    with pytest.raises(VariantError, match="binary"):
        RegionMask("background", FILL).apply(ternary, 0)
    with pytest.raises(VariantError, match="binary"):
        BackgroundSwap("only_fg").apply(ternary, 0)
    with pytest.raises(VariantError, match="shape"):
        BackgroundSwap("no_fg").apply(wrong, 0)
    # 0/1 integers are accepted as a mask
    ok = dataclasses.replace(item, mask=item.mask.astype(np.uint8))
    assert (RegionMask("foreground", FILL).apply(ok, 0)[item.mask] == FG_COLOUR).all()


# background swaps


def bound_swap(name: str, source: FunctionSource | None = None) -> BackgroundSwap:
    return BackgroundSwap(name).bind(context(source or make_source()))


@pytest.mark.parametrize("name", SWAPS)
def test_every_swap_is_deterministic_and_shaped(name: str) -> None:
    item = make_item(4)
    variant = bound_swap(name)
    first = variant.apply(item, 12345)
    again = bound_swap(name).apply(item, 12345)
    assert first.dtype == np.uint8 and first.shape == item.image.shape
    assert (first == again).all()
    assert variant.id == name and parse_variant(name) == BackgroundSwap(name)
    assert variant.params == {"kind": "background", "name": name}


def test_simple_swaps_black_out_the_right_pixels() -> None:
    item = make_item(5)
    mask = item.mask
    out = bound_swap("only_fg").apply(item, 0)
    assert (out[mask] == item.image[mask]).all() and (out[~mask] == 0).all()
    out = bound_swap("no_fg").apply(item, 0)
    assert (out[mask] == 0).all() and (out[~mask] == item.image[~mask]).all()


def test_only_bg_b_blacks_out_the_bounding_box() -> None:
    item = make_item(6)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[20, 10] = mask[40, 30] = True  # a sparse mask: its box is larger than it
    item = dataclasses.replace(item, mask=mask)
    assert bounding_box(mask) == (20, 41, 10, 31)
    out = bound_swap("only_bg_b").apply(item, 0)
    box = np.zeros_like(mask)
    box[20:41, 10:31] = True
    assert (out[box] == 0).all()
    assert (out[~box] == item.image[~box]).all()


@pytest.mark.parametrize("index", range(6))
def test_only_bg_t_fills_the_box_with_background_texture(index: int) -> None:
    item = make_item(index)
    out = bound_swap("only_bg_t").apply(item, 0)
    top, bottom, left, right = bounding_box(item.mask)
    inside = out[top:bottom, left:right]
    assert not (inside == FG_COLOUR).all(axis=2).any()
    assert not (inside == 0).all()  # texture, not a black box
    outside = np.ones(item.mask.shape, dtype=bool)
    outside[top:bottom, left:right] = False
    assert (out[outside] == item.image[outside]).all()
    # every filled colour is one of the background's
    colours = {tuple(c) for c in item.image[~item.mask]}
    assert all(tuple(c) in colours for c in inside.reshape(-1, 3))


@pytest.mark.parametrize("transpose", [False, True])
def test_only_bg_t_tiles_the_largest_band_aligned_with_the_box(transpose: bool) -> None:
    image = np.random.default_rng(7).integers(0, 200, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), dtype=bool)
    # bands: above 20 rows, below 8, left 5 columns, right 4: the band above wins and,
    # being shorter than the 36-row box, has to be repeated
    mask[20:56, 5:60] = True
    if transpose:
        image, mask = image.transpose(1, 0, 2).copy(), mask.T.copy()
    image[mask] = FG_COLOUR
    out = BackgroundSwap("only_bg_t").apply(Item(image, 0, "t", mask), 0)
    if transpose:
        image, out = image.transpose(1, 0, 2), out.transpose(1, 0, 2)
    rows = np.arange(20, 56)
    assert (out[20:56, 5:60] == image[(rows - 20) % 20][:, 5:60]).all()
    assert (out[:20] == image[:20]).all() and (out[56:] == image[56:]).all()


def test_only_bg_t_full_box_falls_back_to_mean_then_grey() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[0, 0] = (10, 20, 30)
    image[7, 7] = (30, 40, 50)
    image[1:7, 1:7] = FG_COLOUR
    mask = np.zeros((8, 8), dtype=bool)
    mask[0, 7] = mask[7, 0] = True  # box = whole image
    mask[1:7, 1:7] = True
    out = BackgroundSwap("only_bg_t").apply(Item(image, 0, "a", mask), 0)
    expected = np.round(image[~mask].mean(axis=0)).astype(np.uint8)
    assert (out == expected).all()
    full = np.ones((8, 8), dtype=bool)
    out = BackgroundSwap("only_bg_t").apply(Item(image, 0, "b", full), 0)
    assert (out == 128).all()


@pytest.mark.parametrize("name", ["mixed_same", "mixed_rand", "mixed_next"])
def test_mixed_preserve_foreground_and_change_background(name: str) -> None:
    source = make_source()
    variant = bound_swap(name, source)
    for index in range(N_ITEMS):
        item = source.load(index)
        for seed in (0, 1, 2**63 + 5):
            out = variant.apply(item, seed)
            assert (out[item.mask] == item.image[item.mask]).all()
            background = ~item.mask
            assert (out[background] != item.image[background]).any()
            donor = source.load(choose_donor(name, item.label, item.id, source, seed))
            expected = bound_swap("only_bg_t").apply(donor, 0)
            assert (out[background] == expected[background]).all()


def test_mixed_donor_labels() -> None:
    source = make_source()
    seen: dict[str, set[int]] = {"mixed_same": set(), "mixed_rand": set(), "mixed_next": set()}
    for index in range(N_ITEMS):
        label, item_id = int(source.labels[index]), source.ids[index]
        for seed in range(20):
            same = choose_donor("mixed_same", label, item_id, source, seed)
            assert source.labels[same] == label and same != index
            rand = choose_donor("mixed_rand", label, item_id, source, seed)
            assert source.labels[rand] != label
            nxt = choose_donor("mixed_next", label, item_id, source, seed)
            assert source.labels[nxt] == (label + 1) % N_CLASSES
            seen["mixed_same"].add(same)
            seen["mixed_rand"].add(rand)
            seen["mixed_next"].add(nxt)
            assert choose_donor("mixed_rand", label, item_id, source, seed) == rand
    # the seed really picks among candidates rather than always the first
    assert all(len(indices) > N_CLASSES for indices in seen.values())


def test_mixed_next_skips_empty_classes_and_same_falls_back_to_self() -> None:
    labels = [0, 0, 2, 2, 5]
    source = FunctionSource([f"i{j}" for j in range(5)], labels, make_item)
    for seed in range(10):
        assert source.labels[choose_donor("mixed_next", 0, "i0", source, seed)] == 2
        assert source.labels[choose_donor("mixed_next", 2, "i2", source, seed)] == 5
        assert source.labels[choose_donor("mixed_next", 5, "i4", source, seed)] == 0
    assert choose_donor("mixed_same", 5, "i4", source, 0) == 4
    single = FunctionSource(["a", "b"], [1, 1], make_item)
    with pytest.raises(VariantError, match="two classes"):
        choose_donor("mixed_rand", 1, "a", single, 0)
    with pytest.raises(VariantError, match="takes no donor"):
        choose_donor("only_fg", 1, "a", single, 0)


def test_mixed_uses_geometry_and_checks_sizes() -> None:
    small = make_source(size=32)
    item = make_item(0)

    def upscale(donor: Item) -> Item:
        image = donor.image.repeat(2, axis=0).repeat(2, axis=1)
        return Item(image, donor.label, donor.id, donor.mask.repeat(2, 0).repeat(2, 1))

    out = BackgroundSwap("mixed_rand").bind(context(small, upscale)).apply(item, 3)
    assert out.shape == item.image.shape
    assert (out[item.mask] == item.image[item.mask]).all()
    with pytest.raises(VariantError, match="geometry"):
        BackgroundSwap("mixed_rand").bind(context(small)).apply(item, 3)


@pytest.mark.parametrize("name", ["mixed_same", "mixed_rand", "mixed_next"])
def test_unbound_mixed_errors(name: str) -> None:
    with pytest.raises(VariantError, match="dataset split"):
        BackgroundSwap(name).apply(make_item(0), 0)
    # the non-mixed swaps need no binding
    BackgroundSwap("only_bg_t").apply(make_item(0), 0)


def test_swap_without_mask_errors() -> None:
    item = dataclasses.replace(make_item(0), mask=None)
    with pytest.raises(VariantError, match="mask"):
        BackgroundSwap("only_fg").apply(item, 0)


def test_unknown_swap_name_errors() -> None:
    with pytest.raises(VariantError, match="mixed_rand") as info:
        BackgroundSwap("mixed_random")
    assert "only_bg_t" in str(info.value)


def test_bound_swap_equals_unbound_and_keeps_context_out_of_params() -> None:
    source = make_source()
    bound = BackgroundSwap("mixed_same").bind(context(source))
    assert bound == BackgroundSwap("mixed_same") and bound.source is source
    assert hash(bound) == hash(BackgroundSwap("mixed_same"))
    assert "source" not in repr(bound)


def test_bg_gap() -> None:
    assert bg_gap(86.2, 78.9) == pytest.approx(7.3)
    assert bg_gap(0.862, 0.789) == pytest.approx(0.073)
    assert bg_gap(0.5, 0.75) == pytest.approx(-0.25)
    for bad in (-0.1, 100.5, float("nan"), "high"):
        with pytest.raises(VariantError):
            bg_gap(bad, 0.5)  # type: ignore[arg-type]
        with pytest.raises(VariantError):
            bg_gap(0.5, bad)  # type: ignore[arg-type]
