"""The feature cache's disk tier on object storage (fsspec): a real S3 API served by moto on
loopback, plus ``file://`` and ``memory://`` through the same code path."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from cache_helpers import Counting
from cache_helpers import known_tensors as _tensors
from ray_helpers import needs_ray

from pytest_sslrobust.features.cache import FeatureCache, SslRobustCacheWarning
from pytest_sslrobust.features.cachedir import MARKER, CacheDirError
from pytest_sslrobust.paths import is_url

BUCKET = "sslrobust-test"
KEY = "ab" + "1" * 62
OTHER_KEY = "cd" + "2" * 62
CREDENTIALS = {"key": "testing", "secret": "testing"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free loopback port with the bucket ``sslrobust-test``."""
    for module in ("moto", "s3fs", "fsspec"):
        try:
            __import__(module)
        except ImportError as exc:
            pytest.skip(f"{module} is not installed ({exc}); it is in the ray extra")
    import s3fs

    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        s3fs.S3FileSystem(endpoint_url=url, **CREDENTIALS).mkdir(BUCKET)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _options(endpoint: str, **more: Any) -> dict[str, Any]:
    return {"endpoint_url": endpoint, **CREDENTIALS, **more}


def _cache(endpoint: str, prefix: str, **kwargs: Any) -> Any:
    from pytest_sslrobust.features.objectstore import ObjectStoreCache

    return ObjectStoreCache(f"s3://{BUCKET}/{prefix}", storage_options=_options(endpoint), **kwargs)


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def _lease(owner: str, age: float) -> bytes:
    record = {"owner": owner, "host": "elsewhere", "pid": 1, "time": time.time() - age}
    return json.dumps(record).encode()


# -- S3 (moto) ----------------------------------------------------------------------------


def test_a_miss_is_written_and_a_fresh_cache_reads_it_bit_identical(
    s3_endpoint: str, prefix: str
) -> None:
    compute = Counting(value=0.1)
    first = _cache(s3_endpoint, prefix)
    got = first.get(KEY, compute, describe={"variant": "original"})
    assert compute.calls == 1 and first.stats["misses"] == 1 and first.stats["writes"] == 1
    assert first.stats["lease_waits"] == 0
    names = sorted(first.fs.find(f"{BUCKET}/{prefix}"))
    assert names == [
        f"{BUCKET}/{prefix}/{MARKER}",
        f"{BUCKET}/{prefix}/{KEY[:2]}/{KEY}.safetensors",  # the lease went after publishing
    ]

    second = _cache(s3_endpoint, prefix)  # another controller: empty memory
    again = second.get(KEY, compute)
    assert compute.calls == 1 and second.stats["disk_hits"] == 1 and second.stats["misses"] == 0
    for name in got:
        assert again[name].dtype == got[name].dtype
        assert again[name].numpy().tobytes() == got[name].numpy().tobytes()
    assert second.peek(KEY) is not None and second.peek(OTHER_KEY) is None


def test_the_entry_carries_the_checksum_and_a_flipped_byte_is_recomputed(
    s3_endpoint: str, prefix: str
) -> None:
    from safetensors import safe_open

    cache = _cache(s3_endpoint, prefix)
    cache.get(KEY, Counting())
    path = cache.path(KEY)
    data = bytearray(cache.fs.cat_file(path))
    local = Path(f"/tmp/{prefix}.safetensors")
    try:
        local.write_bytes(bytes(data))
        with safe_open(str(local), framework="pt") as handle:
            metadata = handle.metadata()
    finally:
        local.unlink(missing_ok=True)
    assert len(metadata["checksum"]) == 64 and metadata["cache_format"] == "2"

    data[-3] ^= 0xFF  # inside the tensor bytes: still parses, checksum differs
    cache.fs.rm_file(path)
    cache.fs.pipe_file(path, bytes(data))
    compute = Counting()
    fresh = _cache(s3_endpoint, prefix)
    with pytest.warns(SslRobustCacheWarning, match="is damaged.*checksum mismatch"):
        got = fresh.get(KEY, compute)
    assert compute.calls == 1 and fresh.stats["corrupt"] == 1 and fresh.stats["writes"] == 1
    assert torch.equal(got["features"], _tensors()["features"])
    assert _cache(s3_endpoint, prefix).peek(KEY) is not None  # rewritten whole


WORKER = """
import json, os, sys, time
import torch
from pytest_sslrobust.features.objectstore import ObjectStoreCache

url, endpoint, counts, key = sys.argv[1:5]
def compute():
    with open(counts, "a") as handle:
        handle.write(f"{os.getpid()}\\n")
    time.sleep(1.0)
    return {"features": torch.arange(12.0).reshape(4, 3) * 0.1}

cache = ObjectStoreCache(
    url, storage_options={"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
)
with open(os.path.join(os.path.dirname(counts), f"ready-{os.getpid()}"), "w"):
    pass
while len([n for n in os.listdir(os.path.dirname(counts)) if n.startswith("ready-")]) < 2:
    time.sleep(0.01)
tensors = cache.get(key, compute)
print(json.dumps({"stats": dict(cache.stats), "bytes": tensors["features"].numpy().tobytes().hex()}))
"""


def test_two_processes_on_one_bucket_compute_an_entry_once(
    s3_endpoint: str, prefix: str, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    counts = tmp_path / "counts.txt"
    url = f"s3://{BUCKET}/{prefix}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), url, s3_endpoint, str(counts), KEY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert len(counts.read_text().split()) == 1  # computed exactly once
    assert outputs[0]["bytes"] == outputs[1]["bytes"]
    stats = [output["stats"] for output in outputs]
    assert sorted(s.get("misses", 0) for s in stats) == [0, 1]
    assert sorted(s.get("lease_waits", 0) for s in stats) == [0, 1]
    assert sum(s.get("disk_hits", 0) for s in stats) == 1


def test_two_threads_compute_an_entry_once(s3_endpoint: str, prefix: str) -> None:
    compute = Counting(delay=0.5)
    caches = [_cache(s3_endpoint, prefix) for _ in range(2)]
    results: list[dict[str, torch.Tensor]] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(c.get(KEY, compute))) for c in caches
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert compute.calls == 1 and len(results) == 2
    assert torch.equal(results[0]["features"], results[1]["features"])


def test_a_stale_lease_is_taken_over(s3_endpoint: str, prefix: str) -> None:
    cache = _cache(s3_endpoint, prefix, lease_timeout=60)
    lease = cache.path(KEY) + ".lease"
    cache.fs.pipe_file(lease, _lease("crashed-controller", age=3600))
    compute = Counting()
    started = time.monotonic()
    got = cache.get(KEY, compute)
    assert time.monotonic() - started < 10
    assert compute.calls == 1 and cache.stats["leases_taken_over"] == 1
    assert torch.equal(got["features"], _tensors()["features"])
    with pytest.raises(FileNotFoundError):
        cache.fs.cat_file(lease)  # our own lease went after publishing; the stale one too


def test_a_fresh_lease_of_another_owner_makes_the_reader_wait_then_read(
    s3_endpoint: str, prefix: str
) -> None:
    reader = _cache(s3_endpoint, prefix, poll_max=0.2)
    writer = _cache(s3_endpoint, prefix)
    lease = reader.path(KEY) + ".lease"
    reader.fs.pipe_file(lease, _lease(writer.owner, age=1))

    def publish() -> None:
        time.sleep(1.0)
        writer._write(writer.path(KEY), _tensors(7.0), KEY, {})
        writer._release(lease)

    thread = threading.Thread(target=publish)
    thread.start()
    compute = Counting()
    started = time.monotonic()
    got = reader.get(KEY, compute)
    waited = time.monotonic() - started
    thread.join()
    assert compute.calls == 0 and reader.stats["lease_waits"] == 1
    assert reader.stats["disk_hits"] == 1 and waited >= 0.9
    assert torch.equal(got["features"], _tensors(7.0)["features"])
    with pytest.raises(FileNotFoundError):
        reader.fs.cat_file(lease)


def test_a_lease_held_past_lock_timeout_is_computed_around(s3_endpoint: str, prefix: str) -> None:
    cache = _cache(s3_endpoint, prefix, lock_timeout=0.5, poll_max=0.1)
    lease = cache.path(KEY) + ".lease"
    cache.fs.pipe_file(lease, _lease("slow-controller", age=0))
    compute = Counting()
    cache.get(KEY, compute)
    assert compute.calls == 1 and cache.stats["writes"] == 1
    assert json.loads(cache.fs.cat_file(lease))["owner"] == "slow-controller"  # not ours


def test_an_unreachable_endpoint_disables_the_disk_tier_once() -> None:
    pytest.importorskip("s3fs", reason="s3fs is in the ray extra")
    from pytest_sslrobust.features.objectstore import ObjectStoreCache

    options = _options(
        f"http://127.0.0.1:{_free_port()}",
        retries=1,
        config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2},
    )
    cache = ObjectStoreCache(f"s3://{BUCKET}/nowhere", storage_options=options)
    with pytest.warns(SslRobustCacheWarning) as record:
        first = cache.get(KEY, Counting(1.0))
        second = cache.get(OTHER_KEY, Counting(2.0))
    assert len(record) == 1 and "cannot be used" in str(record[0].message)
    assert "FSSPEC_S3_ENDPOINT_URL" in str(record[0].message)
    assert cache.directory is None and cache.stats["disk_disabled"] == 1
    assert torch.equal(first["features"], _tensors(1.0)["features"])
    assert torch.equal(second["features"], _tensors(2.0)["features"])
    assert cache.sweep() == 0 and cache.peek(KEY) is not None  # memory still serves it


def test_a_missing_bucket_disables_the_disk_tier_once_and_leaves_nothing(
    s3_endpoint: str,
) -> None:
    from pytest_sslrobust.features.objectstore import ObjectStoreCache

    cache = ObjectStoreCache("s3://no-such-bucket/p", storage_options=_options(s3_endpoint))
    with pytest.warns(SslRobustCacheWarning, match="no-such-bucket.*bucket does not exist"):
        got = [cache.get(key, Counting(float(i))) for i, key in enumerate((KEY, OTHER_KEY))]
    assert cache.stats["disk_disabled"] == 1 and cache.stats["misses"] == 2
    assert torch.equal(got[1]["features"], _tensors(1.0)["features"])
    assert not cache.fs.exists("no-such-bucket")  # nothing created on the way


def test_a_store_that_fails_after_computing_keeps_the_tensors(
    s3_endpoint: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = _cache(s3_endpoint, prefix)

    def denied(*args: Any, **kwargs: Any) -> None:
        raise PermissionError("Access Denied")

    lease = cache.path(KEY) + ".lease"
    monkeypatch.setattr(cache, "_write", denied)
    compute = Counting()
    with pytest.warns(SslRobustCacheWarning, match="Access Denied"):
        got = cache.get(KEY, compute)
    assert compute.calls == 1 and torch.equal(got["features"], _tensors()["features"])
    with pytest.raises(FileNotFoundError):
        cache.fs.cat_file(lease)  # the lease went too


def test_clear_deletes_only_our_objects(s3_endpoint: str, prefix: str) -> None:
    cache = _cache(s3_endpoint, prefix)
    cache.get(KEY, Counting())
    cache.get(OTHER_KEY, Counting())
    cache.fs.pipe_file(cache.path(OTHER_KEY) + ".lease", _lease("x", age=0))
    foreign = [f"{BUCKET}/{prefix}/notes.txt", f"{BUCKET}/{prefix}/{KEY[:2]}/README"]
    for name in foreign:
        cache.fs.pipe_file(name, b"mine, not the cache's")
    assert cache.clear_store() == 3
    left = sorted(cache.fs.find(f"{BUCKET}/{prefix}"))
    assert left == sorted([*foreign, f"{BUCKET}/{prefix}/{MARKER}"])
    cache.clear()
    assert not cache.memory


def test_clear_refuses_an_unmarked_prefix_with_foreign_objects(
    s3_endpoint: str, prefix: str
) -> None:
    cache = _cache(s3_endpoint, prefix)
    cache.get(KEY, Counting())
    cache.fs.rm_file(f"{BUCKET}/{prefix}/{MARKER}")
    cache.fs.pipe_file(f"{BUCKET}/{prefix}/data.csv", b"keep me")
    with pytest.raises(CacheDirError, match="is not a pytest-sslrobust cache.*data.csv"):
        cache.clear_store()
    assert cache.fs.cat_file(cache.path(KEY))  # nothing deleted at all
    cache.fs.rm_file(f"{BUCKET}/{prefix}/data.csv")
    assert cache.clear_store() == 1  # only entries: ours, marker or not


def test_sweep_removes_stale_leases_only(s3_endpoint: str, prefix: str) -> None:
    cache = _cache(s3_endpoint, prefix, lease_timeout=60)
    cache.get(KEY, Counting())
    stale, fresh = cache.path(KEY) + ".lease", cache.path(OTHER_KEY) + ".lease"
    cache.fs.pipe_file(stale, _lease("gone", age=3600))
    cache.fs.pipe_file(fresh, _lease("busy", age=1))
    assert cache.sweep() == 1
    assert cache.fs.cat_file(fresh) and cache.fs.cat_file(cache.path(KEY))
    with pytest.raises(FileNotFoundError):
        cache.fs.cat_file(stale)


def _pytest_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "FSSPEC_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.mark.slow
def test_the_plugin_runs_twice_on_a_bucket_and_the_second_run_only_hits(
    s3_endpoint: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pytest_env(monkeypatch, pytester.path)
    pytester.makepyfile(
        test_a="def test_a(sslrobust):\n    assert len(sslrobust.features()) == 8\n"
    )
    args = (
        "-p",
        "no:randomly",
        "--sslrobust-model=bundled-supervised",
        "--sslrobust-max-images=8",
        f"--sslrobust-cache-dir=s3://{BUCKET}/run1",
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # botocore's own variable
    first = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(
        [f"sslrobust: cache=s3://{BUCKET}/run1", "*feature sets: 1 computed*0 disk hits*"]
    )
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", s3_endpoint)  # fsspec's configuration
    second = pytester.runpytest_subprocess(*args)
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["*feature sets: 0 computed, 0 memory hits, 1 disk hits*"])
    assert "SslRobustCacheWarning" not in second.stdout.str()

    cleared = pytester.runpytest_subprocess(*args, "--sslrobust-cache-clear")
    cleared.assert_outcomes(passed=1)
    cleared.stdout.fnmatch_lines(["*feature sets: 1 computed*0 disk hits*"])


# -- other fsspec filesystems: no moto needed ---------------------------------------------


def test_a_file_url_goes_through_the_object_store_tier_with_the_local_layout(
    tmp_path: Path,
) -> None:
    pytest.importorskip("fsspec", reason="fsspec is in the ray extra")
    from pytest_sslrobust.features.objectstore import ObjectStoreCache

    url = f"file://{tmp_path / 'cache'}"
    compute = Counting()
    first = ObjectStoreCache(url)
    assert not first.atomic_create  # published by temporary name and move
    first.get(KEY, compute)
    second = ObjectStoreCache(url)
    second.get(KEY, compute)
    assert compute.calls == 1 and second.stats["disk_hits"] == 1
    entry = tmp_path / "cache" / KEY[:2] / f"{KEY}.safetensors"
    assert entry.is_file() and (tmp_path / "cache" / MARKER).is_file()
    assert sorted(p.name for p in (tmp_path / "cache" / KEY[:2]).iterdir()) == [entry.name]
    local = FeatureCache(tmp_path / "cache")  # the same bytes as a local cache's
    assert torch.equal(local.get(KEY, compute)["features"], _tensors()["features"])
    assert compute.calls == 1
    (tmp_path / "cache" / "keep.txt").write_text("mine")
    assert second.clear_store() == 1 and (tmp_path / "cache" / "keep.txt").exists()


def test_a_memory_url_publishes_by_conditional_create() -> None:
    pytest.importorskip("fsspec", reason="fsspec is in the ray extra")
    from pytest_sslrobust.features.objectstore import ObjectStoreCache

    url = f"memory://sslrobust-{uuid.uuid4().hex[:8]}"
    first = ObjectStoreCache(url)
    assert first.atomic_create
    compute = Counting()
    first.get(KEY, compute)
    ObjectStoreCache(url).get(KEY, compute)
    assert compute.calls == 1
    with pytest.raises(FileExistsError):
        first.fs.pipe_file(first.path(KEY), b"other", mode="create")


# -- the option ---------------------------------------------------------------------------


def test_urls_are_told_from_paths() -> None:
    assert is_url("s3://bucket/prefix") and is_url("file:///tmp/x") and is_url("memory://x")
    assert not is_url("/tmp/cache") and not is_url("C:\\cache") and not is_url(Path("s3://x"))
    assert not is_url("relative/dir")


def test_cache_url_parse_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fsspec", reason="fsspec is in the ray extra")
    import fsspec

    from pytest_sslrobust.settings import parse_cache_dir

    assert parse_cache_dir("memory://x") == "memory://x"
    assert parse_cache_dir("/tmp/dir") == Path("/tmp/dir")
    with pytest.raises(argparse.ArgumentTypeError, match="fsspec has no 'foo' filesystem"):
        parse_cache_dir("foo://x")
    with pytest.raises(argparse.ArgumentTypeError, match="names no bucket"):
        parse_cache_dir("s3://")

    def missing(protocol: str) -> None:
        raise ImportError("Install s3fs to access S3")

    monkeypatch.setattr(fsspec, "get_filesystem_class", missing)
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse_cache_dir("s3://bucket/p")
    message = str(info.value)
    assert "\n" not in message and "pip install s3fs" in message and ".[test,ray]" in message


def test_an_unknown_protocol_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytest.importorskip("fsspec", reason="fsspec is in the ray extra")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--sslrobust-cache-dir=foo://x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--sslrobust-cache-dir*cache URL 'foo://x': fsspec has no 'foo' filesystem*"]
    )


def test_a_filesystem_that_fails_to_start_disables_the_tier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("fsspec", reason="fsspec is in the ray extra")
    import fsspec.core

    from pytest_sslrobust.features.objectstore import ObjectStoreCache

    def broken(url: str, **options: Any) -> None:
        raise ValueError("bad FSSPEC_S3_CONFIG_KWARGS")

    monkeypatch.setattr(fsspec.core, "url_to_fs", broken)
    with pytest.warns(SslRobustCacheWarning, match="s3://b/p cannot be used.*bad FSSPEC"):
        cache = ObjectStoreCache("s3://b/p")
    compute = Counting()
    assert torch.equal(cache.get(KEY, compute)["features"], _tensors()["features"])
    assert compute.calls == 1 and cache.sweep() == 0 and cache.peek(OTHER_KEY) is None


@pytest.mark.slow
def test_ray_actors_publish_units_to_the_bucket_and_the_controller_reads_them(
    s3_endpoint: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The many-hosts layout on one machine: a local Ray cluster whose actors publish each
    unit to S3; the controller assembles the set from the bucket and a second run only reads."""
    needs_ray()
    import s3fs

    _pytest_env(monkeypatch, pytester.path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # inherited by the Ray actors
    pytester.makepyfile(
        test_a=(
            "def test_a(sslrobust):\n"
            "    assert len(sslrobust.features('gaussian_noise-s1', split='test')) == 24\n"
        )
    )
    args = (
        "-p",
        "no:randomly",
        "--sslrobust-model=bundled-supervised",
        "--sslrobust-max-images=24",
        "--sslrobust-batch-size=8",
        f"--sslrobust-cache-dir=s3://{BUCKET}/ray1",
        "--sslrobust-executor=ray",
    )
    first = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*feature sets: 1 computed*0 disk hits*"])
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, **CREDENTIALS)
    entries = [p for p in fs.find(f"{BUCKET}/ray1") if p.endswith(".safetensors")]
    assert len(entries) == 1  # the set; its 3 units (one per batch of 8) went once it was stored
    second = pytester.runpytest_subprocess(*args)
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["*feature sets: 0 computed, 0 memory hits, 1 disk hits*"])
