"""Cores shared by the xdist workers that are extracting at the moment (``cores.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pytest_sslrobust.cores import CoreShare


def test_a_lone_worker_takes_every_core_and_two_split_them(tmp_path: Path) -> None:
    share = CoreShare(tmp_path / "run", cores=4)
    assert share.threads() == 4  # nobody extracting: the whole machine
    with share.computing():
        assert share.active() == 1 and share.threads() == 4
        other = tmp_path / "run" / f"{os.getppid()}.computing"  # a live process: pytest's parent
        other.touch()
        assert share.active() == 2 and share.threads() == 2
        other.unlink()
        assert share.threads() == 4  # the other finished: this one takes its cores back
    assert not share.marker.exists()


def test_a_dead_workers_marker_is_dropped_and_foreign_files_are_left(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    directory = tmp_path / "run"
    directory.mkdir()
    stale = directory / f"{dead.stdout.strip()}.computing"
    stale.touch()
    foreign = directory / "notes.txt"
    foreign.write_text("not ours")
    share = CoreShare(directory, cores=2)
    assert share.active() == 1 and share.threads() == 2
    assert not stale.exists() and foreign.exists()
    share.close()
    assert directory.exists()  # not empty: a file that is not ours stays, and so does it


def test_nested_extractions_keep_the_marker_until_the_outer_one_ends(tmp_path: Path) -> None:
    share = CoreShare(tmp_path / "run", cores=2)
    with share.computing():
        with share.computing():
            assert share.marker.exists()
        assert share.marker.exists()
    assert not share.marker.exists()
    share.close()
    assert not (tmp_path / "run").exists()  # empty: removed


def test_apply_sets_torchs_threads_to_the_share(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    share = CoreShare(tmp_path / "run", cores=2)
    try:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / f"{os.getppid()}.computing").touch()
        with share.computing():
            assert share.apply() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_xdist_workers_extract_with_a_share_and_leave_no_markers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("TMPDIR", str(pytester.path / "tmp"))
    (pytester.path / "tmp").mkdir()
    pytester.makepyfile(
        test_one="""
        import pytest

        @pytest.mark.parametrize("variant", ["original", "gaussian_noise-s1"])
        def test_one(sslrobust, variant):
            share = sslrobust.store.cores
            assert share is not None and share.cores >= 1
            assert len(sslrobust.features(variant, split="test")) == 20
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:randomly", "--sslrobust-model=bundled-supervised",
        "--sslrobust-max-images=20", f"--sslrobust-cache-dir={pytester.path / 'cache'}",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    assert list((pytester.path / "tmp").glob("sslrobust-cores-*")) == []
