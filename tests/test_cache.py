"""The two-tier feature cache: hits, atomic writes, damage recovery, invalidation, workers."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from cache_helpers import Counting
from cache_helpers import known_tensors as _tensors

from pytest_sslrobust.features import cache as cache_module
from pytest_sslrobust.features.cache import FeatureCache, SslRobustCacheWarning, cache_key
from pytest_sslrobust.features.cachedir import MARKER


def test_key_depends_on_every_part_and_not_on_order():
    base = {"backbone": "a", "variant": "original", "seed": 0}
    assert cache_key(base) == cache_key(dict(reversed(list(base.items()))))
    assert cache_key(base) != cache_key({**base, "seed": 1})
    assert cache_key(base) != cache_key({**base, "backbone": "b"})


def test_memory_then_disk_hits(tmp_path: Path):
    compute = Counting()
    first = FeatureCache(tmp_path)
    got = first.get("ab12", compute)
    assert torch.equal(got["features"], _tensors()["features"])
    first.get("ab12", compute)
    assert compute.calls == 1
    assert first.stats["misses"] == 1 and first.stats["memory_hits"] == 1

    second = FeatureCache(tmp_path)  # a later session
    again = second.get("ab12", compute)
    assert compute.calls == 1
    assert second.stats["disk_hits"] == 1 and second.stats["misses"] == 0
    assert torch.equal(again["logits"], _tensors()["logits"])


def test_no_disk_tier_when_disabled(tmp_path: Path):
    compute = Counting()
    cache = FeatureCache(None)
    cache.get("ab12", compute)
    cache.get("ab12", compute)
    assert compute.calls == 1
    assert list(tmp_path.iterdir()) == []


def test_failed_computation_leaves_no_entry(tmp_path: Path):
    cache = FeatureCache(tmp_path)

    def boom() -> dict[str, torch.Tensor]:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        cache.get("cd34", boom)
    assert not cache.path("cd34").exists()
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".tmp"]


def test_crash_during_write_leaves_old_state_intact(tmp_path: Path, monkeypatch):
    cache = FeatureCache(tmp_path)
    import safetensors.torch

    real_save = safetensors.torch.save_file

    def half_write(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as handle:
            handle.truncate(20)
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    compute = Counting()
    # a full disk is not a failure: one warning, the value, and the run goes on in memory
    with pytest.warns(SslRobustCacheWarning, match=r"cannot be used \(disk full\)"):
        tensors = cache.get("ef56", compute)
    torch.testing.assert_close(tensors["features"], _tensors(1.0)["features"])
    assert compute.calls == 1 and cache.directory is None
    assert not (tmp_path / "ef" / "ef56.safetensors").exists()
    leftovers = [
        p.name
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.name.endswith(".lock") and p.name != MARKER
    ]
    assert leftovers == []


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_entry_is_reported_and_recomputed(tmp_path: Path, damage: str):
    FeatureCache(tmp_path).get("aa00", Counting(1.0))
    path = FeatureCache(tmp_path).path("aa00")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[-5] ^= 0xFF  # inside the tensor payload: only the checksum can tell
        path.write_bytes(bytes(data))

    compute = Counting(2.0)
    cache = FeatureCache(tmp_path)
    with pytest.warns(SslRobustCacheWarning, match="damaged"):
        got = cache.get("aa00", compute)
    assert compute.calls == 1
    assert cache.stats["corrupt"] == 1
    assert torch.equal(got["features"], _tensors(2.0)["features"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FeatureCache(tmp_path).get("aa00", Counting())["features"][0, 0] == 2.0


def test_concurrent_caches_compute_once(tmp_path: Path):
    compute = Counting(delay=0.5)
    caches = [FeatureCache(tmp_path) for _ in range(3)]
    threads = [threading.Thread(target=c.get, args=("bb11", compute)) for c in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert compute.calls == 1
    assert sum(c.stats["disk_hits"] for c in caches) == 2


def test_entry_records_its_protocol(tmp_path: Path):
    from safetensors import safe_open

    cache = FeatureCache(tmp_path)
    cache.get("cc22", Counting(), describe={"variant": "original", "split": "test"})
    with safe_open(str(cache.path("cc22")), framework="pt") as handle:
        metadata = handle.metadata()
    assert '"variant": "original"' in metadata["describe"]
    assert metadata["cache_format"] == cache_module.CACHE_FORMAT


# -- the store on a real (tiny, random) backbone ------------------------------------------


@pytest.fixture(scope="module")
def tiny_backbone():
    from pytest_sslrobust.backbones.loading import load_backbone

    return load_backbone("random-resnet18")


@pytest.fixture(scope="module")
def bundled():
    from pytest_sslrobust.data.bundled import load_bundled

    return load_bundled("textured-digits")


def _store(backbone, dataset, directory, **kwargs):
    from pytest_sslrobust.features.store import FeatureStore

    options = {"max_images": 24, "batch_size": 8, **kwargs}
    return FeatureStore(backbone, dataset, FeatureCache(directory), **options)


def test_store_counts_forward_passes_and_reuses(tmp_path, tiny_backbone, bundled):
    store = _store(tiny_backbone, bundled, tmp_path)
    first = store.get("original", split="test")
    assert first.features.shape == (24, 512)
    assert store.cache.stats["forward_images"] == 24 and store.cache.stats["forward_batches"] == 3
    store.get("original", split="test")
    assert store.cache.stats["forward_images"] == 24

    warm = _store(tiny_backbone, bundled, tmp_path)
    again = warm.get("original", split="test")
    assert warm.cache.stats["forward_images"] == 0
    assert torch.equal(again.features, first.features)
    assert again.key == first.key and again.ids == first.ids


def test_batch_size_does_not_change_features(tmp_path, tiny_backbone, bundled):
    small = _store(tiny_backbone, bundled, None, batch_size=3).get("original", split="test")
    large = _store(tiny_backbone, bundled, None, batch_size=24).get("original", split="test")
    assert small.key == large.key  # batch size is not part of the protocol...
    torch.testing.assert_close(small.features, large.features, rtol=1e-4, atol=1e-5)  # ...rightly


def test_new_weights_are_never_served_stale_features(tmp_path, bundled):
    import timm

    from pytest_sslrobust.backbones.loading import load_backbone

    model = timm.create_model("resnet18", num_classes=0)
    weights = tmp_path / "weights.pth"
    torch.save(model.state_dict(), weights)
    spec = f"file:{weights}"
    before = _store(load_backbone(spec, arch="resnet18"), bundled, tmp_path / "c").get()

    state = model.state_dict()
    state["conv1.weight"] = state["conv1.weight"] * 0.5
    torch.save(state, weights)
    store = _store(load_backbone(spec, arch="resnet18"), bundled, tmp_path / "c")
    after = store.get()
    assert after.key != before.key
    assert store.cache.stats["misses"] == 1 and store.cache.stats["disk_hits"] == 0
    assert not torch.allclose(after.features, before.features)


def test_variant_objects_get_per_item_seeds(tmp_path, tiny_backbone, bundled):
    seen: dict[str, int] = {}

    class Noise:
        id = "noise-test"
        params = {"sigma": 20}

        def apply(self, item, seed):
            seen[item.id] = seed
            rng = np.random.default_rng(seed)
            noisy = item.image.astype(np.int16) + rng.normal(0, 20, item.image.shape)
            return np.clip(noisy, 0, 255).astype(np.uint8)

    store = _store(tiny_backbone, bundled, tmp_path)
    noisy = store.get(Noise(), split="test")
    clean = store.get("original", split="test")
    assert noisy.key != clean.key
    assert noisy.protocol["origin"] == "on-the-fly"
    assert noisy.protocol["variant_params"] == {"sigma": 20}
    assert len(set(seen.values())) == len(seen) == 24
    first_seeds = dict(seen)
    seen.clear()
    _store(tiny_backbone, bundled, None, batch_size=5).get(Noise(), split="test")
    assert seen == first_seeds  # same per-item seeds whatever the batching


def test_unknown_variant_names_the_available_ones(tiny_backbone, bundled):
    store = _store(tiny_backbone, bundled, None)
    with pytest.raises(ValueError, match="unknown variant 'fog-level-3'.*gaussian_noise-s3"):
        store.get("fog-level-3")


# -- several pytest-xdist workers -------------------------------------------------------


def test_xdist_workers_compute_each_entry_once(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_a="def test_a(sslrobust):\n    assert len(sslrobust.features()) == 16\n",
        test_b="def test_b(sslrobust):\n    assert len(sslrobust.features()) == 16\n",
    )
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "-p",
        "no:randomly",
        "--sslrobust-model=random-resnet18",
        "--sslrobust-max-images=16",
        f"--sslrobust-cache-dir={pytester.path / 'cache'}",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*feature sets: 1 computed*forward passes: * 16 images*"])


def test_memory_tier_is_bounded_when_disk_backs_it(tmp_path: Path):
    cache = FeatureCache(tmp_path, memory_limit=200)  # each entry: 12 + 8 floats = 80 bytes
    for key in ("k1", "k2", "k3", "k4"):
        cache.get(key, Counting())
    assert list(cache.memory) == ["k3", "k4"] and cache.memory_bytes() <= 200
    assert cache.stats["evicted"] == 2
    compute = Counting()
    cache.get("k1", compute)  # dropped from memory, still on disk
    assert compute.calls == 0 and cache.stats["disk_hits"] == 1
    unbounded = FeatureCache(None, memory_limit=100)
    for key in ("a", "b", "c"):
        unbounded.get(key, Counting())
    assert len(unbounded.memory) == 3  # nothing to re-read from: keep everything


def test_contains_says_what_get_would_find_without_reading(tmp_path: Path) -> None:
    key = "ef" + "3" * 62
    cache = FeatureCache(tmp_path / "c")
    assert not cache.contains(key)
    cache.get(key, lambda: {"features": torch.ones(2, 3)})
    assert cache.contains(key)
    fresh = FeatureCache(tmp_path / "c")  # nothing in memory: the disk entry answers
    assert fresh.contains(key) and fresh.stats["disk_hits"] == 0
    assert not FeatureCache(None).contains(key)


def test_discard_removes_the_entry_of_that_key_only(tmp_path: Path) -> None:
    keep, drop = "ab" + "4" * 62, "ab" + "5" * 62
    cache = FeatureCache(tmp_path / "c")
    for key in (keep, drop):
        cache.get(key, lambda: {"features": torch.zeros(1, 2)})
    foreign = tmp_path / "c" / "ab" / "notes.txt"
    foreign.write_text("mine")
    assert cache.discard(drop) and not cache.contains(drop)
    assert not cache.discard(drop)  # gone already: nothing to do, no error
    assert cache.contains(keep) and foreign.read_text() == "mine"
