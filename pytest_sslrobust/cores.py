"""The CPU cores of one host, shared by the xdist workers that are extracting at the moment.

Splitting the cores evenly between workers once (``session.split_cpu_threads``) stops two
workers from each taking every core, but it halves a worker's speed even while the other
one has nothing to compute, which is often: a feature set that both need is computed by
one while the other waits for its lock. Here each worker marks the time it spends in a
forward loop with a file named by its pid in a directory the run's workers share, and
before each batch takes ``cores // (workers extracting now)`` intra-op threads. Stdlib only;
torch is imported when threads are set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class CoreShare:
    """``threads()`` is this process's share of ``cores`` among the processes computing now.

    Args:
        directory: where the computing processes of one run leave their marker files (made
            on first use; only this class's own ``<pid>`` files are written or removed).
        cores: the cores to share (default: those this process may run on).
    """

    def __init__(self, directory: Path, cores: int | None = None) -> None:
        self.directory = Path(directory)
        self.cores = cores or usable_cores()
        self.depth = 0
        self.marker = self.directory / f"{os.getpid()}.computing"

    @contextlib.contextmanager
    def computing(self) -> Iterator[None]:
        """Mark this process as extracting for the duration (nestable)."""
        if self.depth == 0:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self.marker.touch()
            except OSError:
                pass  # no marker: the others count one worker fewer, nothing worse
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0:
                self.marker.unlink(missing_ok=True)

    def active(self) -> int:
        """Processes computing now (this one included while it does); markers of processes
        that died are removed."""
        count = 0
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 1
        for name in names:
            stem, _, suffix = name.partition(".")
            if suffix != "computing" or not stem.isdigit():
                continue
            if _alive(int(stem)):
                count += 1
            else:
                (self.directory / name).unlink(missing_ok=True)
        return max(1, count)

    def threads(self) -> int:
        return max(1, self.cores // self.active())

    def apply(self) -> int:
        """Set torch's intra-op threads to this process's share now; return it."""
        import torch

        share = self.threads()
        if torch.get_num_threads() != share:
            torch.set_num_threads(share)
        return share

    def close(self) -> None:
        """Remove this process's marker, and the directory once no marker is left in it."""
        self.marker.unlink(missing_ok=True)
        try:
            self.directory.rmdir()  # only when empty: the others' markers stay
        except OSError:
            pass
