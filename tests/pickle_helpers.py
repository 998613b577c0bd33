"""A pickled payload whose unpickling leaves a file: proof that code ran during loading."""

from __future__ import annotations

from pathlib import Path


def leave_mark(path: str) -> str:
    Path(path).write_text("unpickled")
    return path


class Payload:
    """Unpickling this calls ``leave_mark``; a safe loader must refuse it first."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (leave_mark, (self.marker,))
