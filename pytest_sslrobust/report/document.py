"""The report document, typed: each part checked once, by a ``from_dict``, before rendering."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from pytest_sslrobust.report.formatting import as_float

# Documents arrive as plain JSON (from ``build_document``, a stored file, a test); artifacts
# travel from xdist workers as the same dicts. A malformed part raises ``PayloadError`` saying
# what was expected; the renderer leaves that part out rather than lose the report.

__all__ = [
    "NO_MODEL",
    "Artifact",
    "Entry",
    "Payload",
    "PayloadError",
    "ReportDocument",
    "floats",
    "mapping_of",
    "number",
    "numbers",
    "records",
    "require_mapping",
    "text",
]


class PayloadError(ValueError):
    """A report document part that does not match its schema."""


# --------------------------------------------------------------------------- field checks


def number(value: Any) -> Any:
    """A number field: ``None`` stays (not measured), ints and floats as they are (ints
    print without a decimal point), numeric text (``"nan"`` from JSON) as a float, anything
    else NaN."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if hasattr(value, "item"):  # numpy scalars in documents built by hand
        return number(value.item())
    return as_float(value)


def floats(value: Any) -> list[float]:
    """A list of numbers (NaN where one is not); empty when ``value`` is not a list."""
    return [as_float(v) for v in value] if isinstance(value, (list, tuple)) else []


def numbers(value: Any) -> dict[str, float]:
    """A mapping of numbers; empty when ``value`` is not a mapping."""
    return {str(k): as_float(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def mapping_of(value: Any) -> dict[str, Any] | None:
    """An optional mapping field: ``None`` when absent or not a mapping."""
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else None


def records(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a list field, others left out."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, (list, tuple)) else []


def text(value: Any, default: str = "") -> str:
    return default if value is None or value == "" else str(value)


def require_mapping(data: Mapping[str, Any], key: str, kind: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise PayloadError(
            f"Expected {kind} payload field {key!r} to be a mapping, but got {type(value).__name__}"
        )
    return value


def require_list(data: Mapping[str, Any], key: str, kind: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, (list, tuple)):
        raise PayloadError(
            f"Expected {kind} payload field {key!r} to be a list, but got {type(value).__name__}"
        )
    return list(value)


# --------------------------------------------------------------------------- artifacts


class Payload(Protocol):
    """What a section records: a schema with a JSON form (the xdist transport) read back,
    and checked, by ``from_dict``; ``KIND`` is the artifact kind it is recorded under."""

    KIND: ClassVar[str]

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self: ...


P = TypeVar("P", bound=Payload)


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One recorded artifact's envelope: kind, test, model, label and the raw payload."""

    kind: str
    test: str
    model: str | None
    label: str
    payload: Mapping[str, Any]

    @classmethod
    def from_dict(cls, data: Any) -> Artifact:
        if not isinstance(data, Mapping):
            raise PayloadError(
                f"Expected an artifact to be a mapping, but got {type(data).__name__}"
            )
        if not isinstance(data.get("payload"), Mapping):
            raise PayloadError(
                f"Expected the {data.get('kind')!r} artifact's payload to be a mapping, but got "
                f"{type(data.get('payload')).__name__}"
            )
        model = data.get("model")
        return cls(
            kind=str(data.get("kind", "")),
            test=str(data.get("test", "")),
            model=str(model) if model else None,
            label=text(data.get("label")),
            payload=data["payload"],
        )

    @property
    def protocol(self) -> dict[str, Any] | None:
        return mapping_of(self.payload.get("protocol"))


NO_MODEL = "(no model)"


@dataclasses.dataclass(frozen=True)
class Entry(Generic[P]):
    """An artifact with its payload checked against its section's schema."""

    artifact: Artifact
    payload: P

    @property
    def model(self) -> str:
        return self.artifact.model or NO_MODEL

    def caption(self, *extra: str) -> str:
        parts = [self.model, *(str(e) for e in extra if e)]
        if self.artifact.label and self.artifact.label not in parts:
            parts.append(self.artifact.label)
        return " · ".join(parts)


@dataclasses.dataclass(frozen=True)
class ReportDocument:
    """A document's parts; run, results and comparison are read by their sections."""

    title: str
    generated: str
    run: Mapping[str, Any]
    results: list[Mapping[str, Any]]
    artifacts: list[Artifact]
    comparison: Mapping[str, Any] | None
    model_order: dict[str, int]

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ReportDocument:
        run = document.get("run") if isinstance(document.get("run"), Mapping) else {}
        raw = document.get("artifacts") or ()
        artifacts = []
        for data in raw:
            try:
                artifacts.append(Artifact.from_dict(data))
            except PayloadError:
                continue
        # Models in run order, then by first appearance, so that one model sits in the same
        # column of every figure row.
        order: dict[str, int] = {}
        for model in run.get("models") or ():
            if isinstance(model, Mapping) and model.get("name") is not None:
                order.setdefault(str(model["name"]), len(order))
        for data in raw:
            if isinstance(data, Mapping):
                order.setdefault(str(data.get("model") or NO_MODEL), len(order))
        comparison = document.get("comparison")
        return cls(
            title=str(document.get("title") or "pytest-sslrobust report"),
            generated=str(document.get("generated") or ""),
            run=run,
            results=records(document.get("results")),
            artifacts=artifacts,
            comparison=comparison if isinstance(comparison, Mapping) else None,
            model_order=order,
        )

    def entries(self, payload_type: type[P]) -> list[Entry[P]]:
        """The artifacts of one payload type that pass its ``from_dict``, grouped by model
        (sorted() is stable: one model's artifacts keep the order they were recorded in)."""
        kind = payload_type.KIND
        entries = []
        for artifact in self.artifacts:
            if artifact.kind != kind:
                continue
            try:
                payload = payload_type.from_dict(artifact.payload)
            except PayloadError:
                continue
            entries.append(Entry(artifact, payload))
        last = len(self.model_order)
        return sorted(entries, key=lambda e: self.model_order.get(e.model, last))

    def protocols(self) -> Iterator[Mapping[str, Any]]:
        """Every protocol the document carries: the run's, the results', the artifacts'."""
        if isinstance(self.run.get("protocol"), Mapping):
            yield self.run["protocol"]
        for result in self.results:
            if isinstance(result.get("protocol"), Mapping):
                yield result["protocol"]
        for artifact in self.artifacts:
            if artifact.protocol is not None:
                yield artifact.protocol
