"""Parsing ``--sslrobust-data`` specs and building the dataset they name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_sslrobust.paths import user_path
from pytest_sslrobust.vocabulary import (
    BUNDLED_DATASETS,
    PATH_OPTIONS,
    SCHEMES,
    DataError,
    DataSpec,
    parse_data_spec,
)

if TYPE_CHECKING:
    from pytest_sslrobust.data.base import Dataset

__all__ = ["SCHEMES", "DataSpec", "load_dataset", "parse_data_spec", "validate_data_spec"]


def validate_data_spec(text: str) -> str | None:
    """Return why ``text`` cannot name a dataset, or ``None``; checks that paths exist."""
    try:
        spec = parse_data_spec(text)
    except ValueError as exc:
        return str(exc)
    if spec.scheme == "bundled":
        if spec.target not in BUNDLED_DATASETS:
            have = ", ".join(BUNDLED_DATASETS)
            return f"data spec {text!r}: no bundled dataset {spec.target!r} (have: {have})"
        return None
    paths = [("path", spec.target)] + [(k, v) for k, v in spec.options if k in PATH_OPTIONS]
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
        options = {
            key: user_path(value) if key in PATH_OPTIONS else value for key, value in spec.options
        }
        path = user_path(spec.target)
    except ValueError as exc:
        raise DataError(f"data spec {text!r}: {exc}") from None
    if spec.scheme == "bundled":
        from pytest_sslrobust.data.bundled import load_bundled

        return load_bundled(spec.target)
    from pytest_sslrobust.data import sources

    if spec.scheme == "imagefolder":
        return sources.imagefolder(
            path, masks=options.get("masks"), spec=text, classes=options.get("classes")
        )
    if spec.scheme == "imagenet-c":
        return sources.imagenet_c(path, clean=options["clean"], spec=text)
    if spec.scheme == "hf":
        from pytest_sslrobust.data.hf import hf_dataset

        return hf_dataset(
            path,
            split=options.get("split"),
            image=options.get("image"),
            label=options.get("label"),
            spec=text,
        )
    if spec.scheme == "cifar-c":
        from pytest_sslrobust.data.cifar import cifar_c

        return cifar_c(
            path,
            clean=options.get("clean"),
            spec=text,
            train=options.get("train"),
            train_labels=options.get("train_labels"),
        )
    return sources.in9(path, spec=text)
