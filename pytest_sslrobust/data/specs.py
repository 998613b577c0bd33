"""Parsing ``--sslrobust-data`` specs and building the dataset they name."""

from __future__ import annotations

import dataclasses

from pytest_sslrobust.data.base import DataError, Dataset
from pytest_sslrobust.paths import user_path


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """``scheme:target[,key=value...]`` split into its parts."""

    scheme: str
    target: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def option_dict(self) -> dict[str, str]:
        return dict(self.options)


# scheme -> (option keys allowed, keys required, whether target is a path)
SCHEMES: dict[str, tuple[frozenset[str], frozenset[str], bool]] = {
    "bundled": (frozenset(), frozenset(), False),
    "imagefolder": (frozenset({"masks"}), frozenset(), True),
    "imagenet-c": (frozenset({"clean"}), frozenset({"clean"}), True),
    "cifar-c": (frozenset({"clean"}), frozenset(), True),
    "in9": (frozenset(), frozenset(), True),
}


def parse_data_spec(text: str) -> DataSpec:
    """Split a spec; raises ``ValueError`` with the reason when it is malformed."""
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ValueError(
            f"Could not parse data spec {text!r}: expected one of "
            f"{', '.join(s + ':...' for s in SCHEMES)}"
        )
    target, *pairs = rest.split(",")
    options: list[tuple[str, str]] = []
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key or not value:
            raise ValueError(f"Could not parse data spec {text!r}: {pair!r} is not key=value")
        options.append((key.strip(), value.strip()))
    allowed, required, _ = SCHEMES[scheme]
    unknown = [key for key, _ in options if key not in allowed]
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise ValueError(
            f"data spec {text!r}: unknown option {unknown[0]!r} for {scheme}: (accepted: {accepted})"
        )
    missing = sorted(required - {key for key, _ in options})
    if missing:
        raise ValueError(f"data spec {text!r}: {scheme}: needs {missing[0]}=PATH")
    if not target:
        raise ValueError(f"Could not parse data spec {text!r}: nothing after {scheme}:")
    return DataSpec(scheme, target, tuple(options))


def validate_data_spec(text: str) -> str | None:
    """Return why ``text`` cannot name a dataset, or ``None``; checks that paths exist."""
    try:
        spec = parse_data_spec(text)
    except ValueError as exc:
        return str(exc)
    if spec.scheme == "bundled":
        from pytest_sslrobust.data.bundled import BUNDLED

        if spec.target not in BUNDLED:
            return f"data spec {text!r}: no bundled dataset {spec.target!r} (have: {', '.join(BUNDLED)})"
        return None
    paths = [("path", spec.target)] + list(spec.options)
    for key, value in paths:
        try:
            path = user_path(value)
        except ValueError as exc:
            return f"data spec {text!r}: {exc}"
        if not path.exists():
            return f"data spec {text!r}: {key} {value!r} does not exist"
    return None


def load_dataset(text: str) -> Dataset:
    """Build the dataset a spec names (reads directory listings, not pixels)."""
    spec = parse_data_spec(text)
    try:
        options = {key: user_path(value) for key, value in spec.options}
        path = user_path(spec.target)
    except ValueError as exc:
        raise DataError(f"data spec {text!r}: {exc}") from None
    if spec.scheme == "bundled":
        from pytest_sslrobust.data.bundled import load_bundled

        return load_bundled(spec.target)
    from pytest_sslrobust.data import sources

    if spec.scheme == "imagefolder":
        return sources.imagefolder(path, masks=options.get("masks"), spec=text)
    if spec.scheme == "imagenet-c":
        return sources.imagenet_c(path, clean=options["clean"], spec=text)
    if spec.scheme == "cifar-c":
        return sources.cifar_c(path, clean=options.get("clean"), spec=text)
    return sources.in9(path, spec=text)
