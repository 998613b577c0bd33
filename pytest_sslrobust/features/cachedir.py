"""What a cache directory holds and how to clear it, without touching anything else; stdlib only."""

from __future__ import annotations

import re
from pathlib import Path

# The marker every cache directory gets on its first write; clearing needs it (or a directory
# holding nothing but entries of our own naming, as caches written before the marker existed).
MARKER = "SSLROBUST-CACHE"
MARKER_TEXT = "A pytest-sslrobust feature cache. --sslrobust-cache-clear empties it.\n"
# Content digests of data files by path, size and mtime (``data.base.content_digest``).
DIGEST_MEMO = "file-digests.json"
SHARD_NAME = re.compile(r"^[0-9a-f]{2}$")
# Entries, their lock files (local) or leases (object stores), and temp files of writes.
ENTRY_NAME = re.compile(r"^\.?[0-9a-f]{64}\.safetensors(\.lock|\.lease|\.\d+\.[0-9a-f]{32}\.tmp)?$")
TEMPORARY_NAME = re.compile(r"^\.([0-9a-f]{64})\.safetensors\.\d+\.[0-9a-f]{32}\.tmp$")


class CacheDirError(Exception):
    """A directory that is not a pytest-sslrobust cache was about to be cleared."""


def mark(directory: Path) -> None:
    """Create ``directory`` with its marker, if it has none yet."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / MARKER
    if not marker.exists():
        marker.write_text(MARKER_TEXT)


def _ours(directory: Path) -> list[Path]:
    """The files of ``directory`` that the cache wrote: ``ab/<sha256>.safetensors`` entries,
    their lock files and the temp files of interrupted writes."""
    found = [directory / DIGEST_MEMO] if (directory / DIGEST_MEMO).is_file() else []
    for shard in directory.iterdir():
        if shard.is_dir() and not shard.is_symlink() and SHARD_NAME.match(shard.name):
            found.extend(p for p in shard.iterdir() if p.is_file() and ENTRY_NAME.match(p.name))
    return found


def _foreign(directory: Path, ours: list[Path]) -> list[Path]:
    mine = set(ours)
    foreign = []
    for path in directory.iterdir():
        if path.name == MARKER or path in mine:
            continue
        if path.is_dir() and not path.is_symlink() and SHARD_NAME.match(path.name):
            foreign.extend(p for p in path.iterdir() if p not in mine)
        else:
            foreign.append(path)
    return foreign


def clear(directory: Path) -> int:
    """Delete the entries the cache wrote in ``directory``; return how many files went.

    A directory without the marker is cleared only when everything in it is ours; otherwise
    it is refused, so that ``--sslrobust-cache-dir=.`` never deletes a project. Files that
    are not ours are never deleted, marker or not.
    """
    if not directory.exists():
        return 0
    if not directory.is_dir():
        raise CacheDirError(
            f"--sslrobust-cache-dir={directory} is not a directory; refusing to clear it"
        )
    ours = _ours(directory)
    foreign = _foreign(directory, ours)
    if foreign and not (directory / MARKER).exists():
        raise CacheDirError(
            f"--sslrobust-cache-dir={directory} is not a pytest-sslrobust cache (no {MARKER} "
            f"marker, and it holds {foreign[0].name!r} among {len(foreign)} other files); "
            "refusing to clear it: point the option at the cache directory"
        )
    for path in ours:
        path.unlink(missing_ok=True)
    for shard in {p.parent for p in ours} - {directory}:
        try:
            shard.rmdir()  # only when empty: another user's files stay
        except OSError:
            pass
    return len(ours)


def stale_temporaries(directory: Path, older_than: float) -> list[tuple[Path, Path]]:
    """Temp files of interrupted writes not touched for ``older_than`` seconds, with the
    entry each belongs to (whose lock a live writer would hold)."""
    import time

    if not directory.is_dir():
        return []
    now = time.time()
    found = []
    for path in _ours(directory):
        match = TEMPORARY_NAME.match(path.name)
        try:
            old = now - path.stat().st_mtime > older_than
        except OSError:
            continue
        if match and old:
            found.append((path, path.with_name(f"{match.group(1)}.safetensors")))
    return found
