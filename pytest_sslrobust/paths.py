"""User-given paths: ``~`` expanded, impossible names refused with one line (stdlib only)."""

from __future__ import annotations

import os
import re
from pathlib import Path

NAME_MAX = 255  # bytes per path component on Linux, macOS and Windows file systems
# An fsspec URL (s3://bucket/prefix, gs://..., file:///abs, memory://...): a scheme of two or
# more characters, so that a Windows drive (C:\...) stays a path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(value: object) -> bool:
    """Whether ``value`` is an fsspec URL rather than a local path."""
    return isinstance(value, str) and _URL.match(value) is not None


def user_path(text: str | os.PathLike[str]) -> Path:
    """``text`` as a path with ``~``/``~user`` expanded.

    Raises ``ValueError`` (one line, naming the path and the fix) when ``~user`` names no
    user on this machine or a component is longer than the file system allows, instead of
    the ``RuntimeError`` or ``OSError: [Errno 36]`` that would surface later as a traceback.
    """
    raw = os.fspath(text)
    path = Path(raw)
    if raw.startswith("~"):
        try:
            path = path.expanduser()
        except RuntimeError:
            user = raw[1:].split("/", 1)[0].split(os.sep, 1)[0]
            who = f"user {user!r}" if user else "the current user"
            raise ValueError(
                f"path {raw!r}: the home directory of {who} is unknown on this machine; "
                "write the path out in full"
            ) from None
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise ValueError(
                f"path {raw[:60]!r}...: the name {part[:40]!r}... is {size} bytes long, more "
                f"than file systems allow ({NAME_MAX}); choose a shorter name"
            )
    return path
