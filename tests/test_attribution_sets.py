"""Attribution sets through the feature store: maps, masks, ids, cache keys, warm runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from store_helpers import small_store

from pytest_sslrobust.attribution.maps import Maps
from pytest_sslrobust.attribution.sets import AttributionSet, attribution_set, overlay, positions
from pytest_sslrobust.evaluate import Readout

N_IMAGES = 40
SHOWN = 8
SIZE = 64


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("attribution-cache")


def _store(cache_dir, backbone=None, dataset=None):
    return small_store(cache_dir, backbone, dataset, max_images=N_IMAGES)


@pytest.fixture(scope="module")
def store(cache_dir):
    return _store(cache_dir)


@pytest.fixture(scope="module")
def probe(store):
    return Readout(store, "linear-probe")


@pytest.fixture(scope="module")
def probe_set(store, probe):
    return attribution_set(store, probe, "original", method="gradcam", images=SHOWN)


@pytest.fixture(scope="module")
def similarity_set(store):
    return attribution_set(store, None, "original", target="similarity", images=SHOWN)


# ------------------------------------------------------------------------- the set itself


def test_maps_are_distributions_at_the_input_size(probe_set):
    assert isinstance(probe_set, AttributionSet)
    assert len(probe_set) == SHOWN
    assert probe_set.maps.shape == (SHOWN, SIZE, SIZE)
    assert probe_set.maps.dtype == torch.float32
    assert (probe_set.maps >= 0).all()
    sums = probe_set.maps.double().sum(dim=(1, 2))
    assert torch.allclose(sums, torch.ones(SHOWN, dtype=torch.float64), atol=1e-4)
    assert 0 <= probe_set.degenerate <= SHOWN
    entropy = probe_set.entropy()
    assert entropy.shape == (SHOWN,) and ((entropy >= 0) & (entropy <= 1)).all()


def test_masks_are_the_clean_foreground_masks(store, probe_set):
    masks = probe_set.masks
    assert masks is not None
    assert masks.dtype == torch.bool and masks.shape == (SHOWN, SIZE, SIZE)
    assert masks.flatten(1).any(dim=1).all()
    chosen = store.selection("test")
    index = {item_id: i for i, item_id in enumerate(chosen.ids)}
    for row, item_id in enumerate(probe_set.ids):
        expected = store.clean_geometry(chosen.load(index[item_id])).mask
        assert np.array_equal(masks[row].numpy(), expected)
    focus = probe_set.foreground_focus()
    assert focus.shape == (SHOWN,) and ((focus >= 0) & (focus <= 1)).all()
    chance = probe_set.chance_focus()
    np.testing.assert_allclose(chance, masks.flatten(1).double().mean(dim=1).numpy())
    assert ((chance > 0) & (chance < 1)).all()


def test_ids_and_labels_are_the_evenly_spread_items_of_the_selection(store, probe_set):
    chosen = store.selection("test")
    assert len(chosen) == N_IMAGES
    picked = positions(N_IMAGES, SHOWN)
    assert probe_set.ids == tuple(chosen.ids[int(p)] for p in picked)
    assert len(set(probe_set.ids)) == SHOWN
    clean = store.get("original", split="test")
    assert torch.equal(probe_set.labels, clean.labels[torch.as_tensor(picked)].cpu())
    assert probe_set.split == "test" and probe_set.variant == "original"


def test_protocol_records_method_and_target(store, probe_set, probe):
    described = probe_set.protocol["attribution"]
    assert described["method"] == "gradcam" == probe_set.method
    assert described["readout"] == "linear-probe" == probe_set.target
    assert described["images"] == SHOWN
    assert described["target"]["kind"] == "classes"
    assert described["target"]["head_digest"]
    assert "ids_digest" in described
    clean = store.get("original", split="test")
    assert probe_set.protocol["backbone"] == clean.protocol["backbone"]
    assert probe_set.protocol["subset"] == clean.protocol["subset"]
    assert isinstance(probe_set.key, str) and probe_set.key


def test_similarity_target_needs_no_readout(similarity_set, probe_set):
    assert similarity_set.target == "similarity"
    assert similarity_set.protocol["attribution"]["target"] == {
        "kind": "similarity",
        "measure": "projection",
    }
    assert similarity_set.protocol["attribution"]["readout"] == "similarity"
    # The projection has a gradient at the clean embedding itself: no empty maps.
    assert similarity_set.degenerate == 0
    assert similarity_set.ids == probe_set.ids
    assert similarity_set.key != probe_set.key


def test_warm_store_reads_maps_from_disk_without_recomputing(
    cache_dir, store, probe_set, monkeypatch
):
    import pytest_sslrobust.attribution.maps as maps_module

    def refuse(*args, **kwargs):
        raise AssertionError("attribution maps were recomputed on a warm cache")

    monkeypatch.setattr(maps_module, "attribution_maps", refuse)
    warm = _store(cache_dir, backbone=store.backbone, dataset=store.dataset)
    readout = Readout(warm, "linear-probe")
    warm.get("original", split="test")
    readout.head_module()  # refits the probe on the (cached) training features
    before = dict(warm.cache.stats)
    assert before.get("misses", 0) == 0
    again = attribution_set(warm, readout, "original", method="gradcam", images=SHOWN)
    after = warm.cache.stats
    assert after["disk_hits"] == before["disk_hits"] + 1
    assert after.get("misses", 0) == 0 and after.get("writes", 0) == 0
    assert again.key == probe_set.key
    assert torch.equal(again.maps, probe_set.maps)
    assert torch.equal(again.masks, probe_set.masks)
    assert again.ids == probe_set.ids and again.degenerate == probe_set.degenerate


# ------------------------------------------------------------------------------ cache keys


def test_key_follows_images_variant_and_target(store, probe, probe_set, similarity_set):
    fewer = attribution_set(store, probe, "original", images=4)
    assert fewer.key != probe_set.key and len(fewer) == 4
    centre = attribution_set(store, probe, "center", images=SHOWN)
    assert centre.variant == "center-r0.50"
    assert centre.key != probe_set.key
    assert centre.ids == probe_set.ids
    # The masks follow the clean geometry, whatever the variant hides.
    assert torch.equal(centre.masks, probe_set.masks)
    assert len({probe_set.key, fewer.key, centre.key, similarity_set.key}) == 4
    # A variant object and its id are the same variant.
    from pytest_sslrobust.variants import parse_variant

    same = attribution_set(store, probe, parse_variant("center"), images=SHOWN)
    assert same.key == centre.key
    assert torch.equal(same.maps, centre.maps)
    # "auto" resolves to the probe on this data, so it shares the probe's maps.
    auto = attribution_set(store, probe, "original", target="auto", images=SHOWN)
    assert auto.key == probe_set.key


def test_key_follows_the_method(store, probe, probe_set, monkeypatch):
    import pytest_sslrobust.attribution.maps as maps_module

    calls = []

    def uniform(backbone, images, target, *, method="gradcam", batch_size=32, layer=None):
        calls.append(method)
        n, size = images.shape[0], images.shape[-1]
        return Maps(torch.full((n, size, size), 1.0 / (size * size)), 0, method)

    monkeypatch.setattr(maps_module, "attribution_maps", uniform)
    rollout = attribution_set(store, probe, "original", method="rollout", images=SHOWN)
    assert calls == ["rollout"]
    assert rollout.method == "rollout"
    assert rollout.protocol["attribution"]["method"] == "rollout"
    assert rollout.key != probe_set.key
    # gradcam is already cached under its own key: the fake is not asked again.
    gradcam = attribution_set(store, probe, "original", method="gradcam", images=SHOWN)
    assert calls == ["rollout"] and gradcam.key == probe_set.key


def test_rollout_on_a_cnn_is_refused(store, probe):
    with pytest.raises(ValueError, match="needs a ViT"):
        attribution_set(store, probe, "original", method="rollout", images=2, split="train")


# ---------------------------------------------------------------------------- shift, focus


def test_shift_from_itself_is_nothing(probe_set, similarity_set):
    for attributed in (probe_set, similarity_set):
        shift = attributed.shift_from(attributed)
        np.testing.assert_allclose(shift["rank_shift"], np.zeros(SHOWN), atol=1e-12)
        np.testing.assert_array_equal(shift["topk_overlap"], np.ones(SHOWN))


def test_shift_between_variants_is_bounded(store, probe, probe_set):
    centre = attribution_set(store, probe, "center", images=SHOWN)
    shift = centre.shift_from(probe_set, top_k=0.2)
    assert shift["rank_shift"].shape == (SHOWN,)
    assert ((shift["rank_shift"] >= 0) & (shift["rank_shift"] <= 2)).all()
    assert ((shift["topk_overlap"] >= 0) & (shift["topk_overlap"] <= 1)).all()


def test_shift_from_other_items_is_refused(store, probe, probe_set):
    fewer = attribution_set(store, probe, "original", images=4)
    with pytest.raises(ValueError, match="same images"):
        fewer.shift_from(probe_set)
    shuffled = dataclasses.replace(probe_set, ids=tuple(reversed(probe_set.ids)))
    with pytest.raises(ValueError, match="different items"):
        shuffled.shift_from(probe_set)


def test_focus_needs_masks(probe_set):
    bare = dataclasses.replace(probe_set, masks=None)
    with pytest.raises(ValueError, match="foreground masks"):
        bare.foreground_focus()
    with pytest.raises(ValueError, match="foreground masks"):
        bare.chance_focus()
    # Measures that need no masks still work.
    assert bare.entropy().shape == (SHOWN,)


# -------------------------------------------------------------------------------- refusals


def test_knn_readout_has_no_gradient(store):
    with pytest.raises(ValueError, match="linear-probe"):
        attribution_set(store, Readout(store, "knn"), "original", images=2)


def test_classifier_target_needs_a_readout(store):
    with pytest.raises(ValueError, match="needs the fitted readout"):
        attribution_set(store, None, "original", target="linear-probe", images=2)


def test_unknown_method_and_target_are_refused(store, probe):
    with pytest.raises(ValueError, match="unknown attribution method 'saliency'"):
        attribution_set(store, probe, method="saliency", images=2)
    with pytest.raises(ValueError, match="unknown attribution target 'logit'"):
        attribution_set(store, probe, target="logit", images=2)
    with pytest.raises(ValueError, match="unknown attribution target"):
        attribution_set(store, probe, target="knn", images=2)


def test_readout_without_an_output_for_a_label_is_refused(store, probe):
    layer, classes = probe.head_module()

    from pytest_sslrobust.evaluate import Readout

    class MissingClass(Readout):
        def __init__(self):
            super().__init__(store, "linear-probe")

        def head_module(self):
            # Columns for classes 1..9 only: label 0 has no output.
            return torch.nn.Linear(layer.in_features, 9), np.arange(1, 10)

    picked = torch.as_tensor(positions(N_IMAGES, SHOWN))
    assert 0 in set(store.get("original", split="test").labels[picked].tolist())
    with pytest.raises(ValueError, match="no output for label"):
        attribution_set(store, MissingClass(), "original", images=SHOWN)


# ---------------------------------------------------------------------- the readout's layer


def test_probe_layer_predicts_like_the_readout(store, probe):
    layer, classes = probe.head_module()
    assert isinstance(layer, torch.nn.Module)
    test = store.get("original", split="test")
    with torch.no_grad():
        logits = layer(test.features.float())
    assert logits.shape == (N_IMAGES, len(classes))
    np.testing.assert_array_equal(classes[logits.argmax(dim=1).numpy()], probe.predict(test))


def test_knn_readout_refuses_a_layer(store):
    with pytest.raises(ValueError, match="linear-probe"):
        Readout(store, "knn").head_module()


# --------------------------------------------------------------------------------- overlay


def _picture(seed=0, size=16):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_overlay_is_a_uint8_picture_of_the_image_size():
    image = _picture()
    heat = torch.rand(16, 16)
    shown = overlay(image, heat)
    assert shown.shape == image.shape and shown.dtype == np.uint8
    # numpy maps work alike
    assert np.array_equal(overlay(image, heat.numpy()), shown)
    assert not np.array_equal(shown, image)


def test_overlay_without_alpha_is_the_image():
    image = _picture(1)
    heat = np.random.default_rng(2).random((16, 16))
    assert np.array_equal(overlay(image, heat, alpha=0.0), image)
    # an empty map is drawn as the colormap's lowest colour, not divided by zero
    flat = overlay(image, np.zeros((16, 16)), alpha=1.0)
    assert flat.dtype == np.uint8 and (flat == flat[0, 0]).all()


def test_overlay_refuses_a_map_of_another_size():
    with pytest.raises(ValueError, match="does not match"):
        overlay(_picture(), np.ones((8, 8)))
    with pytest.raises(ValueError, match="does not match"):
        overlay(_picture(), torch.ones(16, 15))


# ------------------------------------------------------------------------------- positions


def test_positions_take_everything_when_asked_for_enough():
    np.testing.assert_array_equal(positions(10, None), np.arange(10))
    np.testing.assert_array_equal(positions(10, 10), np.arange(10))
    np.testing.assert_array_equal(positions(10, 64), np.arange(10))


@pytest.mark.parametrize(("n", "images"), [(40, 8), (10, 9), (100, 7), (5, 1), (1000, 64)])
def test_positions_are_spread_and_unique(n, images):
    picked = positions(n, images)
    assert len(picked) == images
    assert len(np.unique(picked)) == images
    assert (np.diff(picked) > 0).all()
    assert picked[0] == 0
    assert 0 <= picked.min() and picked.max() <= n - 1
    if images > 1:
        assert picked[-1] == n - 1
        gaps = np.diff(picked)
        # evenly spread: gaps differ by at most one position
        assert gaps.max() - gaps.min() <= 1


def test_positions_refuse_no_images():
    with pytest.raises(ValueError, match="positive"):
        positions(10, 0)
    with pytest.raises(ValueError, match="positive"):
        positions(10, -3)
