"""Baseline files: versioned JSON of contract results, written atomically; version 1 still read."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_sslrobust.results import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, ContractResult
from pytest_sslrobust.results import environment as current_environment

__all__ = ["KIND", "Baseline", "BaselineError", "load_baseline", "save_baseline"]

KIND = "pytest-sslrobust-baseline"


class BaselineError(Exception):
    """A baseline file that cannot be written, read or trusted."""


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A loaded baseline file; ``results`` maps each result's key to the result."""

    path: Path
    schema_version: int
    environment: Mapping[str, Any]
    results: Mapping[str, ContractResult]


def _by_key(results: Sequence[ContractResult], where: str) -> dict[str, ContractResult]:
    by_key: dict[str, ContractResult] = {}
    for result in results:
        if result.key in by_key:
            raise BaselineError(
                f"{where} has two results with the key {result.key!r} (the same test and "
                "label): give each result of a test its own label="
            )
        by_key[result.key] = result
    return by_key


def save_baseline(
    path: str | os.PathLike[str],
    results: Sequence[ContractResult],
    *,
    environment: Mapping[str, Any] | None = None,
) -> None:
    """Write ``results`` as a baseline file, sorted by key, replacing ``path`` atomically.

    The document is written to a temporary file beside ``path`` and moved over it, so a
    crash or a full disk leaves the previous baseline intact rather than half a file.
    """
    path = Path(path)
    by_key = _by_key(results, "this run")
    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "environment": dict(environment if environment is not None else current_environment()),
        "results": [by_key[key].to_dict() for key in sorted(by_key)],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            dir=path.parent,
            prefix=f".{path.name}.",
            suffix=".tmp",
            delete=False,
        )
    except OSError as exc:
        raise BaselineError(f"could not write baseline {path}: {exc}") from exc
    temporary = Path(handle.name)
    try:
        with handle:
            json.dump(document, handle, indent=2, sort_keys=True, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        # NamedTemporaryFile creates the file readable by its owner only; a baseline is
        # shared (committed, read by CI), so give it the mode a plain open() would.
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        # TypeError/ValueError: something in the environment or a protocol is not JSON.
        if isinstance(exc, (OSError, TypeError, ValueError)):
            raise BaselineError(f"could not write baseline {path}: {exc}") from exc
        raise


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, else the umask's default for a new file."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read a baseline file written by :func:`save_baseline`, refusing anything else."""
    path = Path(path)
    regenerate = f"--sslrobust-save={path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(
            f"baseline {path} does not exist: create it from a reference run with {regenerate}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"could not read baseline {path}: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"baseline {path} is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}): regenerate it with {regenerate}"
        ) from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        # A --sslrobust-json results file looks much like a baseline; say which it is.
        hint = (
            " (it looks like a --sslrobust-json results file)"
            if isinstance(document, dict) and "results" in document
            else ""
        )
        raise BaselineError(
            f'baseline {path} is not a pytest-sslrobust baseline: it lacks "kind": "{KIND}"'
            f"{hint}; write one with {regenerate}"
        )
    version = document.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise BaselineError(
            f"baseline {path} was written with schema version {version}; this "
            f"pytest-sslrobust writes version {SCHEMA_VERSION}: regenerate it with {regenerate}"
        )
    entries = document.get("results")
    env = document.get("environment", {})
    if not isinstance(entries, list) or not isinstance(env, dict):
        raise BaselineError(
            f'baseline {path} is damaged: "results" must be a list and "environment" an '
            f"object; regenerate it with {regenerate}"
        )
    results = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise TypeError(f"expected an object, got {type(entry).__name__}")
            results.append(ContractResult.from_dict(entry))
        except (TypeError, ValueError, KeyError) as exc:
            raise BaselineError(
                f"baseline {path} is damaged: result {index} is not a contract result "
                f"({type(exc).__name__}: {exc}); regenerate it with {regenerate}"
            ) from None
    return Baseline(
        path=path,
        schema_version=version,
        environment=env,
        results=_by_key(results, f"baseline {path}"),
    )
