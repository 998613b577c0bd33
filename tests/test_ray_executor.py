"""The Ray executor: units of a feature set on actors of a real local Ray instance (2 CPUs),
bit-identical to extraction in this process, whole after a worker dies mid-unit."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
import torch
from ray_helpers import needs_ray

from pytest_sslrobust.features.ray_executor import (
    ExecutorError,
    RayExecutor,
    WorkerSpec,
    unit_ranges,
)

TESTS = Path(__file__).parent


def test_units_start_on_batch_boundaries_and_cover_the_set() -> None:
    ranges = unit_ranges(100, 16, 3)
    assert ranges == [(0, 48), (48, 96), (96, 100)]
    assert all(start % 16 == 0 for start, _ in ranges)
    assert unit_ranges(10, 16, 8) == [(0, 10)]  # never a unit smaller than a batch
    assert unit_ranges(0, 16, 4) == []
    covered = [i for start, stop in unit_ranges(1000, 32, 7) for i in range(start, stop)]
    assert covered == list(range(1000))


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip(
        "ray", reason='Ray is not installed: pip install -c constraints.txt -e ".[test,ray]"'
    )
    paths = os.pathsep.join(p for p in [str(TESTS), *sys.path] if p and os.path.isdir(p))
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": paths}},
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model_and_data():
    from pytest_sslrobust.backbones.loading import load_backbone
    from pytest_sslrobust.data.bundled import load_bundled

    return load_backbone("bundled-supervised"), load_bundled("textured-digits")


def _store(model_and_data, cache_dir: Path | None, executor=None):
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

    backbone, dataset = model_and_data
    return FeatureStore(
        backbone,
        dataset,
        FeatureCache(cache_dir),
        max_images=60,
        batch_size=16,
        executor=executor,
    )


def _spec(store) -> WorkerSpec:
    return WorkerSpec.of(store)


def _same(a, b) -> None:
    assert a.key == b.key and a.ids == b.ids
    assert torch.equal(a.features, b.features)
    assert (a.logits is None) == (b.logits is None)
    if a.logits is not None:
        assert torch.equal(a.logits, b.logits)
    if a.ssim is not None or b.ssim is not None:
        assert torch.equal(a.ssim, b.ssim)


@pytest.mark.slow
@pytest.mark.parametrize("shared_cache", [False, True], ids=["object-store", "shared-cache"])
def test_features_from_ray_actors_are_bit_identical_to_in_process(
    ray_instance, model_and_data, tmp_path: Path, shared_cache: bool
) -> None:
    local = _store(model_and_data, None)
    executor = RayExecutor(None, _spec, actors=2)
    remote = _store(model_and_data, tmp_path / "cache" if shared_cache else None, executor)
    try:
        for variant in ("original", "gaussian_noise-s3"):
            _same(remote.get(variant), local.get(variant))
    finally:
        executor.shutdown()
    stats = remote.cache.stats
    # 60 items in batches of 16 over 2 actors x 4 units: 4 units of one batch, per set.
    assert stats["ray_units"] == 8 and stats["misses"] == 2
    assert stats["forward_images"] == 120  # the actors' forward passes, counted here
    assert stats["ray_misses"] == 8  # each unit was computed once
    if shared_cache:
        entries = list((tmp_path / "cache").glob("*/*.safetensors"))
        assert len(entries) == 2  # the whole sets; their 8 units went once the sets were stored
        assert stats["ray_units_released"] == 8
        # A second run reads the whole sets: no actor works.
        again = _store(model_and_data, tmp_path / "cache", RayExecutor(None, _spec))
        _same(again.get("gaussian_noise-s3"), local.get("gaussian_noise-s3"))
        assert again.cache.stats["disk_hits"] == 1 and again.cache.stats["ray_units"] == 0


@pytest.mark.slow
def test_stores_of_other_settings_share_one_pool_of_actors(ray_instance, model_and_data) -> None:
    """Two stores (other subset sizes: two specs) on one executor whose actors hold every CPU
    of the cluster: the second store's units run on the same actors (a pool per spec would
    wait for CPUs forever)."""
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

    backbone, dataset = model_and_data
    executor = RayExecutor(None, _spec, actors=2)
    try:
        for max_images in (30, 50):
            local = FeatureStore(backbone, dataset, FeatureCache(None), max_images=max_images)
            remote = FeatureStore(
                backbone, dataset, FeatureCache(None), max_images=max_images, executor=executor
            )
            _same(remote.get("original"), local.get("original"))
        assert list(executor.pools) == ["cpu"] and len(executor.pools["cpu"]) == 2
    finally:
        executor.shutdown()


@pytest.mark.slow
def test_a_worker_killed_mid_unit_is_restarted_and_the_set_is_whole(
    ray_instance, model_and_data, tmp_path: Path
) -> None:
    from ray_helpers import ExitOnce

    marker = tmp_path / "died"
    local = _store(model_and_data, None).get(ExitOnce(marker, armed=False))
    executor = RayExecutor(None, _spec, actors=2)
    try:
        remote = _store(model_and_data, tmp_path / "cache", executor).get(
            ExitOnce(marker, armed=True)
        )
    finally:
        executor.shutdown()
    assert marker.exists()  # an actor did die with a unit in hand
    _same(remote, local)
    assert len(list((tmp_path / "cache").glob("*/*.safetensors"))) == 1  # the set, not units
    # Nothing partial was published: every unit entry is whole and checks out.
    from pytest_sslrobust.features.cache import FeatureCache

    cache = FeatureCache(tmp_path / "cache")
    assert cache.peek(remote.key) is not None and cache.stats["corrupt"] == 0


@pytest.mark.slow
def test_an_actor_with_other_weights_refuses_with_one_line(ray_instance, model_and_data) -> None:
    def wrong(store) -> WorkerSpec:
        return dataclasses.replace(_spec(store), backbone_fingerprint="0" * 64)

    executor = RayExecutor(None, wrong, actors=1)
    store = _store(model_and_data, None, executor)
    try:
        with pytest.raises(
            ExecutorError,
            match=r"items 0:16 of .*: model .bundled-supervised. on Ray host .* has fingerprint 654de56d7440, the controller.s 000000000000",
        ):
            store.get("original")
    finally:
        executor.shutdown()


def test_a_cluster_address_where_nothing_listens_is_one_clear_error(
    pytester: pytest.Pytester,
) -> None:
    needs_ray()
    pytester.makepyfile(
        test_one="""
        def test_one(sslrobust):
            sslrobust.features("original", split="test")
        """
    )
    result = pytester.runpytest_subprocess(
        "--sslrobust-model=bundled-supervised",
        "--sslrobust-max-images=10",
        "--sslrobust-no-cache",
        "--sslrobust-executor=ray:127.0.0.1:1",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*--sslrobust-executor=ray:127.0.0.1:1: no Ray cluster there (Connection refused)*"]
    )


def test_executor_values_parse_and_bad_ones_say_the_forms(pytester: pytest.Pytester) -> None:
    from pytest_sslrobust.settings import parse_executor

    assert parse_executor("ray") == "ray"
    assert parse_executor(" ray:auto ") == "ray:auto"
    assert parse_executor("ray:10.0.0.5:6379") == "ray:10.0.0.5:6379"
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--sslrobust-executor=dask")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*Could not parse executor 'dask': expected local*ray:auto*"])


@pytest.mark.parametrize("executor", ["ray", "ray:auto"])
def test_ray_under_xdist_is_refused(pytester: pytest.Pytester, executor: str) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-n", "2", f"--sslrobust-executor={executor}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--sslrobust-executor={executor} and -n do not combine*drop -n*"]
    )


@pytest.mark.slow
def test_the_plugin_computes_sets_on_a_local_ray_cluster(pytester: pytest.Pytester) -> None:
    needs_ray()
    pytester.makepyfile(
        test_one="""
        def test_one(sslrobust):
            assert sslrobust.features("gaussian_noise-s2", split="test").features.shape[0] == 40
        """
    )
    args = [
        "--sslrobust-model=bundled-supervised",
        "--sslrobust-max-images=40",
        "--sslrobust-batch-size=8",
        f"--sslrobust-cache-dir={pytester.path / 'cache'}",
        "--sslrobust-executor=ray",
    ]
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(
        [
            "*feature sets computed by ray (Ray actors)*",
            "*feature sets: 1 computed*",
            "Ray: 5 work units on actors (5 computed, 0 read from the shared cache)",
        ]
    )
    again = pytester.runpytest_subprocess(*args)
    assert again.ret == pytest.ExitCode.OK
    again.stdout.fnmatch_lines(["*feature sets: 0 computed, 0 memory hits, 1 disk hits*"])


@pytest.mark.slow
def test_a_sweep_is_prefetched_in_one_submission_and_matches_in_process(
    ray_instance, model_and_data, tmp_path: Path
) -> None:
    from pytest_sslrobust.evaluate import corruption_errors

    names = ["gaussian_noise", "contrast"]
    local = _store(model_and_data, None)
    executor = RayExecutor(None, _spec, actors=2)
    remote = _store(model_and_data, tmp_path / "cache", executor)
    try:
        # The readout fits on the train split first; then the sweep's 11 sets are prefetched.
        assert remote.prefetch(["original", "gaussian_noise-s1"]) == 2
        assert remote.prefetch(["original", "gaussian_noise-s1"]) == 0  # all cached now
        table = corruption_errors(remote, names, readout="knn")
    finally:
        executor.shutdown()
    reference = corruption_errors(local, names, readout="knn")
    assert set(table.errors) == set(reference.errors) == set(names)
    for name in names:
        assert list(table.errors[name]) == list(reference.errors[name])
    stats = remote.cache.stats
    # 11 test sets and the readout's train split, 4 units of one batch each, each computed once.
    assert stats["ray_units"] == stats["ray_misses"] == 4 * 12


@pytest.mark.slow
def test_an_actor_whose_cache_cannot_be_written_sends_its_units_through_ray(
    ray_instance, model_and_data, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")

    def elsewhere(store) -> WorkerSpec:  # the actors' cache path lies under a file
        return dataclasses.replace(_spec(store), cache=str(blocked / "cache"))

    local = _store(model_and_data, None).get("original")
    executor = RayExecutor(None, elsewhere, actors=2)
    try:
        remote = _store(model_and_data, tmp_path / "cache", executor).get("original")
    finally:
        executor.shutdown()
    _same(remote, local)
    assert blocked.read_text() == "not a directory"
