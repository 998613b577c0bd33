"""The section registry and the typed payloads: one list of sections, lossless JSON forms."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from pytest_sslrobust.report.document import PayloadError
from pytest_sslrobust.report.render import SECTIONS
from pytest_sslrobust.report.sections import PAYLOADS, REGISTRY

TEMPLATES = Path(__file__).resolve().parents[1] / "pytest_sslrobust" / "report" / "templates"

PAYLOAD_EXAMPLES: dict[str, dict[str, Any]] = {
    "corruption_errors": {
        "errors": {"fog": [0.1, 0.2, 0.3, 0.4, 0.5]},
        "clean_error": 0.05,
        "n": 100,
        "readout": "head",
        "protocol": {"source": "on-the-fly"},
        "reference": "alexnet",
        "ce": None,
        "mce": None,
        "relative_mce": None,
        "reference_note": "Expected the 15 common corruptions",
        "ssim": {"fog": [0.9, 0.8, 0.7, 0.6, 0.5]},
    },
    "similarity_matrix": {"metric": "cka", "names": ["a", "b"], "values": [[1.0, 0.5], [0.5, 1]]},
    "probe_table": {"metric": "accuracy", "variants": ["a"], "mean": [0.5], "std": ["nan"]},
    "neighbours": {"scores": {"a": 0.4}, "chance": {"a": 0.1}},
    "embedding": {"points": [[0.0, 1.0], [2.0, 3.0]], "groups": ["a", "b"], "method": "PCA"},
    "background": {"accuracy": {"mixed_same": 0.8, "mixed_rand": 0.6}, "bg_gap": 0.2},
    "reliability": {
        "confidence": [0.25, 0.75],
        "accuracy": [0.2, 0.8],
        "counts": [10, 30],
        "ece": 0.05,
        "confidence_by_variant": {"original": 0.7},
    },
    "attack": {
        "eps": [0.0, 4 / 255],
        "values": [0.9, 0.2],
        "metric": "robust_accuracy",
        "attack": "pgd",
        "norm": "linf",
        "steps": 10,
        "n": 50,
        "clean": 0.9,
    },
    "attribution": {
        "method": "gradcam",
        "target": "head",
        "images": 3,
        "split": "test",
        "top_k": 0.1,
        "measures": [{"variant": "original", "entropy": 0.5, "degenerate": 0}],
        "severity": {"fog": [0.1, None, 0.3, None, None]},
        "overlays": [{"item": "a", "tiles": [{"id": "original", "uri": "data:image/png;base64,"}]}],
        "protocol": {"data": "d"},
    },
    "preview": {"images": [{"id": "original", "uri": "data:image/png;base64,"}], "source": "s"},
    "transfer": {
        "target": "far",
        "metric": "balanced_accuracy",
        "data": "bundled:textured-shapes",
        "accuracy": 0.62,
        "interval": {"low": 0.58, "high": 0.66},
        "chance": 0.25,
        "confidence": 0.7,
        "invariance": 0.8,
    },
}


def test_the_page_order_is_the_registry() -> None:
    assert SECTIONS == tuple((section.id, section.title) for section in REGISTRY)
    assert len({section.id for section in REGISTRY}) == len(REGISTRY)
    assert len({section.name for section in REGISTRY}) == len(REGISTRY)
    for section in REGISTRY:
        assert (TEMPLATES / section.template).is_file(), section.template


def test_every_artifact_kind_has_one_payload_type() -> None:
    kinds = [payload.KIND for section in REGISTRY for payload in section.payloads]
    assert len(kinds) == len(set(kinds)) == len(PAYLOADS)
    assert set(PAYLOADS) == set(PAYLOAD_EXAMPLES)


@pytest.mark.parametrize("kind", sorted(PAYLOAD_EXAMPLES))
def test_payloads_round_trip_through_their_json_form(kind: str) -> None:
    data = PAYLOAD_EXAMPLES[kind]
    payload = PAYLOADS[kind].from_dict(data)
    assert _plain(payload.to_dict()) == _plain(data)
    assert PAYLOADS[kind].from_dict(payload.to_dict()).to_dict() == payload.to_dict()


def _plain(value: Any) -> Any:
    """``value`` as the transport writes it: NaN as the string "nan", tuples as lists."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("kind", "data", "field"),
    [
        ("corruption_errors", {"errors": [0.1]}, "errors"),
        ("probe_table", {"variants": "a"}, "variants"),
        ("neighbours", {}, "scores"),
        ("background", {"accuracy": 0.5}, "accuracy"),
        ("preview", {"images": None}, "images"),
        ("reliability", {}, "confidence"),
        ("attack", {"eps": [0.1]}, "values"),
    ],
)
def test_a_malformed_payload_is_refused_naming_the_field(
    kind: str, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(PayloadError, match=rf"{kind} payload field.*'{field}'"):
        PAYLOADS[kind].from_dict(data)
