"""Under pytest-xdist each worker takes its own GPU and its share of the CPU cores."""

from __future__ import annotations

import argparse
import json
import os
from types import SimpleNamespace

import pytest

from pytest_sslrobust.results import ResultCollector
from pytest_sslrobust.session import (
    cpu_threads_for_worker,
    gpu_for_worker,
    split_cpu_threads,
    xdist_worker,
)
from pytest_sslrobust.settings import parse_device


def _config(**workerinput: object) -> pytest.Config:
    return SimpleNamespace(workerinput=workerinput)  # type: ignore[return-value]


def test_the_worker_index_and_count_come_from_xdist() -> None:
    assert xdist_worker(SimpleNamespace()) is None  # type: ignore[arg-type]
    assert xdist_worker(_config(workerid="gw3", workercount=4)) == (3, 4)
    assert xdist_worker(_config(workerid="gw0", workercount=1)) == (0, 1)


def test_workers_take_the_gpus_in_turn() -> None:
    assert [gpu_for_worker([0, 1], (i, 4)) for i in range(4)] == [0, 1, 0, 1]
    assert [gpu_for_worker([2, 5, 7], (i, 3)) for i in range(3)] == [2, 5, 7]
    assert gpu_for_worker([3, 1], None) == 3  # outside xdist: the first listed
    with pytest.raises(ValueError, match="at least one GPU"):
        gpu_for_worker([], (0, 1))


def test_the_cores_are_split_between_workers() -> None:
    assert cpu_threads_for_worker(2, None) is None  # serial: torch's default stands
    assert cpu_threads_for_worker(2, (0, 2)) == 1
    assert cpu_threads_for_worker(16, (3, 4)) == 4
    assert cpu_threads_for_worker(2, (5, 8)) == 1  # never fewer than one


def test_a_list_of_gpus_is_a_device_and_a_typo_is_refused() -> None:
    assert parse_device("cuda:0,2") == "cuda:0,2"
    assert parse_device(" CUDA:1, 3 ") == "cuda:1,3"
    with pytest.raises(argparse.ArgumentTypeError, match="cuda:N,M"):
        parse_device("cuda:0;1")
    with pytest.raises(argparse.ArgumentTypeError, match="cuda:N,M"):
        parse_device("cuda:")


def test_the_report_names_every_device_a_model_computed_on() -> None:
    controller = ResultCollector()
    for worker, device in (("gw0", "cuda:0"), ("gw1", "cuda:1"), ("gw2", "cuda:0")):
        other = ResultCollector()
        other.add_backbone("m", {"name": "m", "device": f"{device} ({worker})"})
        controller.merge_worker(other.worker_payload())
    assert controller.backbones["m"]["device"] == "cuda:0 (gw0), cuda:0 (gw2), cuda:1 (gw1)"
    assert controller.devices() == "cuda:0 (gw0), cuda:0 (gw2), cuda:1 (gw1)"


PROBE = """
import json, os
import torch

def test_threads(sslrobust):
    assert sslrobust.features().features.shape[0] > 0
    worker = os.environ.get("PYTEST_XDIST_WORKER", "serial")
    out = os.path.join(os.environ["PROBE_OUT"], f"threads-{worker}.json")
    open(out, "w").write(json.dumps({"threads": torch.get_num_threads()}))

def test_other(sslrobust):
    assert sslrobust.features().features.shape[0] > 0
"""


def test_a_users_omp_num_threads_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        split_cpu_threads((0, 8))
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        split_cpu_threads((0, 8))
        assert torch.get_num_threads() == 1
        split_cpu_threads(None)  # serial: left alone
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_xdist_workers_on_the_cpu_split_the_cores(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a test extra")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("PROBE_OUT", str(pytester.path))
    pytester.makepyfile(test_probe=PROBE)
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "-p",
        "no:randomly",
        "--sslrobust-device=cpu",
        "--sslrobust-max-images=20",
        f"--sslrobust-cache-dir={pytester.path / 'cache'}",
    )
    result.assert_outcomes(passed=2)
    seen = [json.loads(p.read_text())["threads"] for p in pytester.path.glob("threads-gw*.json")]
    assert len(seen) == 1
    cores = len(os.sched_getaffinity(0))
    assert seen[0] == max(1, cores // 2), (seen, cores)
