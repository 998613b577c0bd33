"""The session-level progress line: tests done of all, feature sets and images computed, rate
and an estimate of the time left, on the controller, serial or under pytest-xdist.

A feature set's own progress line (``features.extract.TerminalProgress``) says how far one
extraction is; it cannot say where the session is, and xdist workers have no terminal at
all. This plugin object lives on the controller only. Serial, it reads the run's cache
counters; under xdist each worker attaches its running counters to its test reports
(:func:`attach_counts`, the report's ``sslrobust_counts``, which xdist carries home with
the report) and the controller sums the latest of each worker. A line is written at most
every ``interval`` seconds, only once the session has run ``delay`` seconds and only when
images were computed since the last line (a warm run prints none). Imports no torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

COUNTS = "sslrobust_counts"  # the TestReport attribute a worker fills


def attach_counts(report: pytest.TestReport, stats: Mapping[str, int]) -> None:
    """On an xdist worker: the worker's running totals, carried home with the report."""
    setattr(
        report,
        COUNTS,
        {"sets": int(stats.get("misses", 0)), "images": int(stats.get("forward_images", 0))},
    )


def _worker_of(report: pytest.TestReport) -> str:
    """The xdist worker a report came from (``gw0``), as the controller knows it."""
    node = getattr(report, "node", None)
    return str(getattr(getattr(node, "gateway", None), "id", None) or id(node))


def clock_text(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: durations a person reads at a glance."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class SessionProgress:
    """Writes ``[sslrobust] session: ...`` lines through ``write`` (the terminal reporter's
    ``write_line``); ``local`` gives this process's counters (the serial case)."""

    def __init__(
        self,
        write: Callable[[str], None],
        local: Callable[[], Mapping[str, int]],
        *,
        delay: float = 10.0,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write, self.local = write, local
        self.delay, self.interval, self.clock = delay, interval, clock
        self.start = clock()
        self.last = float("-inf")
        self.total = 0
        self.done = 0
        self.shown_images = 0
        self.workers: dict[str, tuple[int, int]] = {}

    # Serial: the controller collected the items itself.
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = max(self.total, len(session.items))

    # xdist: every worker collects the same ids; the controller never collects.
    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.total = max(self.total, len(ids))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        counts = getattr(report, COUNTS, None)
        if isinstance(counts, Mapping):
            self.workers[_worker_of(report)] = (
                int(counts.get("sets", 0)),
                int(counts.get("images", 0)),
            )
        if report.when == "teardown":
            self.done += 1
            self.maybe_write()

    def counts(self) -> tuple[int, int]:
        """(feature sets computed, images forwarded) in the session so far."""
        if self.workers:
            return sum(s for s, _ in self.workers.values()), sum(
                i for _, i in self.workers.values()
            )
        stats = self.local()
        return int(stats.get("misses", 0)), int(stats.get("forward_images", 0))

    def line(self) -> str:
        elapsed = self.clock() - self.start
        sets, images = self.counts()
        rate = images / elapsed if elapsed > 0 else 0.0
        parts = [f"[sslrobust] session: {self.done}/{self.total or '?'} tests"]
        parts.append(f"{sets} feature sets, {images} images computed ({rate:.0f} img/s)")
        parts.append(f"{clock_text(elapsed)} so far")
        if 0 < self.done < self.total:
            left = elapsed / self.done * (self.total - self.done)
            parts.append(f"about {clock_text(left)} left at this pace")
        return ", ".join(parts)

    def maybe_write(self) -> None:
        now = self.clock()
        if now - self.start < self.delay or now - self.last < self.interval:
            return
        _, images = self.counts()
        if images <= self.shown_images:  # nothing computed since the last line (warm)
            return
        self.last, self.shown_images = now, images
        self.write(self.line())


def bound_by(loader_wait_s: float, forward_s: float) -> str:
    """``loader-bound`` when the forward pass waited longer for its batches than it computed,
    else ``forward-bound``."""
    return "loader-bound" if loader_wait_s > forward_s else "forward-bound"


def loading_text(
    stats: Mapping[str, float], workers: str | None, setting: object, decode: str
) -> str | None:
    """How this run loaded its images and whether loading or the forward pass was the limit
    (``extract``'s ``loader_wait_s`` and ``forward_s``, summed over processes); None when no
    image went through a model."""
    if not stats.get("forward_images"):
        return None
    wait, forward = float(stats.get("loader_wait_s", 0.0)), float(stats.get("forward_s", 0.0))
    if workers is None:
        loaders = f"--sslrobust-workers={setting}"
    elif workers == "0":
        loaders = "one loader thread"
    else:
        loaders = f"{workers} loader processes"
    if setting == "auto" and workers is not None:
        loaders += " (workers=auto)"
    return (
        f"{loaders}, JPEG decoding on the {decode}; {bound_by(wait, forward)}: "
        f"{wait:.1f} s waiting for batches, {forward:.1f} s in the forward pass"
    )
