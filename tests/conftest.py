"""Hypothesis profiles for this test suite.

``ci`` (what ``.ci/run`` selects with ``HYPOTHESIS_PROFILE=ci``, and any run with ``CI`` set)
is deterministic: examples derive from each test's source (``derandomize``), and no example
database is read or written, so a failure found in one clone is never replayed into another
and every clone runs the same examples. Elsewhere hypothesis' own defaults apply (random
examples, the local ``.hypothesis/`` database), which is how new failures get found.
"""

from __future__ import annotations

import os

# Loaded before any pytester test takes its sys.modules snapshot: pytester removes modules
# first imported inside a test, and numpy's and torch's C extensions cannot be loaded twice
# in one process. (The plugin no longer imports them at startup, so a -k selection that
# starts with a pytester test would otherwise unload them.)
import numpy  # noqa: F401
import torch  # noqa: F401
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
)
