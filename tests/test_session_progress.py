"""The session-level progress line: position, work done, rate and time left, also under xdist."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from pytest_sslrobust.progress import COUNTS, SessionProgress, attach_counts, clock_text


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _teardown(worker: str | None = None, sets: int = 0, images: int = 0) -> SimpleNamespace:
    report = SimpleNamespace(when="teardown")
    if worker is not None:
        report.node = SimpleNamespace(gateway=SimpleNamespace(id=worker))
        setattr(report, COUNTS, {"sets": sets, "images": images})
    return report


def test_durations_read_at_a_glance() -> None:
    assert clock_text(42.4) == "42 s"
    assert clock_text(185) == "3 min 05 s"
    assert clock_text(3720) == "1 h 02 min"
    assert clock_text(-3) == "0 s"


def test_serial_lines_give_position_work_rate_and_time_left() -> None:
    clock, lines = Clock(), []
    local = {"misses": 0, "forward_images": 0}
    progress = SessionProgress(lines.append, lambda: local, delay=10, interval=30, clock=clock)
    progress.pytest_collection_finish(SimpleNamespace(items=[object()] * 10))  # type: ignore[arg-type]

    clock.now, local["forward_images"] = 5.0, 500
    progress.pytest_runtest_logreport(_teardown())  # type: ignore[arg-type]
    assert lines == []  # before the delay: a quick session prints nothing

    clock.now, local["misses"], local["forward_images"] = 20.0, 4, 2000
    progress.pytest_runtest_logreport(SimpleNamespace(when="call"))  # type: ignore[arg-type]
    progress.pytest_runtest_logreport(_teardown())  # type: ignore[arg-type]
    assert lines == [
        "[sslrobust] session: 2/10 tests, 4 feature sets, 2000 images computed (100 img/s), "
        "20 s so far, about 1 min 20 s left at this pace"
    ]
    clock.now = 30.0  # within the interval: no new line
    progress.pytest_runtest_logreport(_teardown())  # type: ignore[arg-type]
    assert len(lines) == 1
    clock.now = 60.0  # past the interval but nothing computed since (warm tests): none
    progress.pytest_runtest_logreport(_teardown())  # type: ignore[arg-type]
    assert len(lines) == 1
    local["forward_images"] = 2600
    clock.now = 61.0
    progress.pytest_runtest_logreport(_teardown())  # type: ignore[arg-type]
    assert len(lines) == 2 and lines[1].startswith("[sslrobust] session: 5/10 tests")


def test_under_xdist_the_latest_count_of_each_worker_is_summed() -> None:
    clock, lines = Clock(), []
    progress = SessionProgress(lines.append, lambda: {}, delay=0, interval=0, clock=clock)
    progress.pytest_xdist_node_collection_finished(None, ["a", "b", "c", "d"])
    clock.now = 10.0
    progress.pytest_runtest_logreport(_teardown("gw0", 1, 100))  # type: ignore[arg-type]
    progress.pytest_runtest_logreport(_teardown("gw1", 2, 300))  # type: ignore[arg-type]
    progress.pytest_runtest_logreport(_teardown("gw0", 3, 500))  # cumulative per worker
    assert progress.counts() == (5, 800)
    assert lines[-1].startswith("[sslrobust] session: 3/4 tests, 5 feature sets, 800 images")


def test_a_worker_attaches_its_running_totals() -> None:
    report = SimpleNamespace()
    attach_counts(report, {"misses": 7, "forward_images": 1234, "disk_hits": 3})  # type: ignore[arg-type]
    assert getattr(report, COUNTS) == {"sets": 7, "images": 1234}


FAST = """
import pytest

@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    progress = session.config.pluginmanager.get_plugin("sslrobust-progress")
    if progress is not None:
        progress.delay = progress.interval = 0
"""

TESTS = """
def test_a(sslrobust):
    assert sslrobust.features().features.shape[0] > 0

def test_b(sslrobust):
    assert sslrobust.features(variant="center-r0.50").features.shape[0] > 0

def test_c():
    pass
"""

LINE = re.compile(r"\[sslrobust\] session: (\d)/3 tests, (\d+) feature sets, (\d+) images computed")


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_the_line_shows_in_a_real_session(pytester: pytest.Pytester, workers: list[str]) -> None:
    if workers:
        pytest.importorskip("xdist", reason="pytest-xdist is a test extra")
    pytester.makeconftest(FAST)
    pytester.makepyfile(test_progress=TESTS)
    args = [*workers, "-p", "no:randomly", "--sslrobust-max-images=20"]
    result = pytester.runpytest_subprocess(
        *args, f"--sslrobust-cache-dir={pytester.path / 'cache'}"
    )
    result.assert_outcomes(passed=3)
    found = [LINE.search(line) for line in result.outlines]
    counts = [(int(m[1]), int(m[2]), int(m[3])) for m in found if m]
    assert counts, result.stdout.str()
    assert counts[-1][1] >= 2 and counts[-1][2] > 0  # both tests' sets were computed
    # Warm (the disk cache is filled): nothing computed, so no line at all.
    warm = pytester.runpytest_subprocess(*args, f"--sslrobust-cache-dir={pytester.path / 'cache'}")
    warm.assert_outcomes(passed=3)
    assert not any(LINE.search(line) for line in warm.outlines), warm.stdout.str()
