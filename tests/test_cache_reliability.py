"""The disk cache is an optimisation: keys bound to entries, shared caches, unusable
directories and leftovers of killed writes never fail a run or serve wrong data."""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path

import pytest
import torch

from pytest_sslrobust.features.cache import FeatureCache, SslRobustCacheWarning

KEY_A, KEY_B = "aa" + "1" * 62, "bb" + "2" * 62


def _set(value: float) -> dict[str, torch.Tensor]:
    return {"features": torch.full((3, 2), value)}


def test_swapped_entry_files_are_not_served_as_each_other(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.get(KEY_A, lambda: _set(1.0))
    cache.get(KEY_B, lambda: _set(2.0))
    a, b = cache.path(KEY_A), cache.path(KEY_B)
    swap = tmp_path / "swap"
    shutil.move(a, swap)
    shutil.move(b, a)
    shutil.move(swap, b)

    fresh = FeatureCache(tmp_path)
    with pytest.warns(SslRobustCacheWarning, match="the entry of another key"):
        got = fresh.get(KEY_A, lambda: _set(1.0))
    assert got["features"][0, 0] == 1.0 and fresh.stats["corrupt"] == 1


def test_entries_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        FeatureCache(tmp_path).get(KEY_A, lambda: _set(1.0))
    finally:
        os.umask(old)
    assert FeatureCache(tmp_path).path(KEY_A).stat().st_mode & 0o777 == 0o664


def test_an_unreadable_entry_is_another_users_not_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FeatureCache(tmp_path).get(KEY_A, lambda: _set(1.0))
    entry = FeatureCache(tmp_path).path(KEY_A)
    before = entry.read_bytes()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == entry else real_access(p, mode)
    )
    cache = FeatureCache(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SslRobustCacheWarning)  # "damaged" would be wrong
        got = cache.get(KEY_A, lambda: _set(5.0))
    assert got["features"][0, 0] == 5.0  # computed here, in memory
    assert cache.stats["unreadable"] >= 1 and cache.stats["corrupt"] == 0
    assert entry.read_bytes() == before  # neither deleted nor rewritten


def test_an_unusable_cache_directory_warns_once_and_the_run_goes_on(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    cache = FeatureCache(blocked / "cache")  # cannot be created: its parent is a file
    with pytest.warns(SslRobustCacheWarning) as record:
        first = cache.get(KEY_A, lambda: _set(1.0))
        second = cache.get(KEY_B, lambda: _set(2.0))
    assert len(record) == 1 and str(blocked / "cache") in str(record[0].message)
    assert first["features"][0, 0] == 1.0 and second["features"][0, 0] == 2.0
    assert cache.directory is None and cache.stats["disk_disabled"] == 1


def test_stale_temporaries_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.get(KEY_A, lambda: _set(1.0))
    shard = cache.path(KEY_A).parent
    stale = shard / f".{KEY_A}.safetensors.999.{'d' * 32}.tmp"
    fresh = shard / f".{KEY_A}.safetensors.998.{'e' * 32}.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    long_ago = time.time() - 7 * 3600
    os.utime(stale, (long_ago, long_ago))

    assert cache.sweep() == 1
    assert not stale.exists() and fresh.exists() and cache.path(KEY_A).exists()


def test_a_locked_entrys_temporary_is_not_swept(tmp_path: Path) -> None:
    from filelock import FileLock

    cache = FeatureCache(tmp_path)
    cache.get(KEY_A, lambda: _set(1.0))
    stale = cache.path(KEY_A).parent / f".{KEY_A}.safetensors.999.{'d' * 32}.tmp"
    stale.write_bytes(b"half")
    long_ago = time.time() - 7 * 3600
    os.utime(stale, (long_ago, long_ago))
    with FileLock(str(cache.path(KEY_A)) + ".lock"):
        assert cache.sweep() == 0
    assert stale.exists()


def test_in_place_changes_never_reach_the_next_caller(tmp_path: Path) -> None:
    for directory in (tmp_path, None):
        cache = FeatureCache(directory)
        first = cache.get(KEY_A, lambda: _set(1.0))
        first["features"].add_(100.0)  # a test that modifies what it got
        second = cache.get(KEY_A, lambda: _set(9.0))
        assert cache.stats["memory_hits"] == 1
        assert torch.equal(second["features"], torch.full((3, 2), 1.0))


def test_a_full_disk_reported_by_safetensors_falls_back_to_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """safetensors reports ENOSPC as its own SafetensorError, not OSError."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args: object, **kwargs: object) -> None:
        raise SafetensorError("Error while serializing: I/O error: No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    cache = FeatureCache(tmp_path / "cache")
    with pytest.warns(SslRobustCacheWarning) as record:
        first = cache.get(KEY_A, lambda: _set(1.0))
        second = cache.get(KEY_B, lambda: _set(2.0))
    assert len(record) == 1 and "No space left" in str(record[0].message)
    assert first["features"][0, 0] == 1.0 and second["features"][0, 0] == 2.0
    assert cache.directory is None
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]  # nothing half-written


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A real 64 KiB file system (root can mount tmpfs here; elsewhere the test says why)."""
    import subprocess

    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 64 KiB tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk_falls_back_to_memory(tiny_tmpfs: Path) -> None:
    cache = FeatureCache(tiny_tmpfs / "cache")
    big = {"features": torch.arange(64 * 128, dtype=torch.float32).reshape(64, 128)}
    with pytest.warns(SslRobustCacheWarning) as record:
        got = [cache.get(f"{i:02d}" + "a" * 62, lambda: dict(big)) for i in range(4)]
    assert len(record) == 1 and str(tiny_tmpfs / "cache") in str(record[0].message)
    assert all(torch.equal(g["features"], big["features"]) for g in got)
    assert not list(tiny_tmpfs.rglob("*.tmp"))


def test_xdist_runs_sweep_stale_temporaries(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a test extra")
    cache_dir = pytester.path / "cache"
    FeatureCache(cache_dir).get(KEY_A, lambda: _set(1.0))
    stale = cache_dir / KEY_A[:2] / f".{KEY_A}.safetensors.999.{'d' * 32}.tmp"
    stale.write_bytes(b"half")
    long_ago = time.time() - 7 * 3600
    os.utime(stale, (long_ago, long_ago))
    pytester.makepyfile(
        """
        def test_uses_the_cache(sslrobust):
            assert sslrobust.features().features.shape[0] > 0
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:randomly", f"--sslrobust-cache-dir={cache_dir}",
        "--sslrobust-model=bundled-supervised", "--sslrobust-max-images=4",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    assert not stale.exists()
