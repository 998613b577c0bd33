"""Variants for the Ray executor's tests; importable by the actors (the tests' directory is
on the path the executor hands them)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest


def needs_ray() -> None:
    """Skip without Ray, but do not import it in this process: Ray imported here, then a
    Ray cluster started and stopped by a subprocess, make a later ``ray.init`` here crash
    (a segmentation fault in Ray 2.60's connect, seen in CI when the S3 tests ran first)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip('Ray is not installed: the ray extra (pip install -e ".[test,ray]")')


class ExitOnce:
    """Inverts the image; the first time any process applies it with ``armed``, that process
    dies at once (``os._exit``), as a host losing power would: the marker file, created
    exclusively, says it has happened."""

    id = "exit-once"
    params: dict[str, str] = {}

    def __init__(self, marker: Path, *, armed: bool) -> None:
        self.marker = str(marker)
        self.armed = armed

    def apply(self, item, seed: int) -> np.ndarray:  # noqa: ANN001 - an Item
        if self.armed:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(17)
        return (255 - item.image).astype(np.uint8)
