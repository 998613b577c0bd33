"""What a contract reads from its inputs: the protocol they carry, the features of a set."""

from __future__ import annotations

from typing import Any

from pytest_sslrobust.evaluate import Predictions
from pytest_sslrobust.features.store import FeatureSet
from pytest_sslrobust.metrics.corruption import CorruptionErrors

__all__ = ["features_of", "protocol_of"]


def protocol_of(*inputs: Any) -> dict[str, Any]:
    """The protocol of the first input that carries one (FeatureSet, CorruptionErrors, the
    ``Predictions`` of ``sslrobust.predictions``); empty for bare arrays."""
    for value in inputs:
        if isinstance(value, (FeatureSet, CorruptionErrors, Predictions)):
            return dict(value.protocol)
    return {}


def features_of(value: Any) -> Any:
    """The features of a FeatureSet; anything else as it is."""
    return value.features if isinstance(value, FeatureSet) else value
