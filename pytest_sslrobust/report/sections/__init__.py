"""The report's sections in page order: the one list the page, the renderer and the tests read."""

from __future__ import annotations

from pytest_sslrobust.report.document import Payload
from pytest_sslrobust.report.sections import (
    adversarial,
    attribution,
    background,
    calibration,
    comparison,
    contracts,
    corruption,
    examples,
    generalisability,
    representations,
    run,
    summary,
)
from pytest_sslrobust.report.sections.base import Section

__all__ = ["PAYLOADS", "REGISTRY", "Section"]

# Page order. A new study is one module here (its payload, ``record``, ``render`` and
# ``SECTION``) and one line below.
REGISTRY: tuple[Section, ...] = (
    run.SECTION,
    summary.SECTION,
    contracts.SECTION,
    corruption.SECTION,
    representations.SECTION,
    background.SECTION,
    calibration.SECTION,
    adversarial.SECTION,
    generalisability.SECTION,
    attribution.SECTION,
    comparison.SECTION,
    examples.SECTION,
)

# Artifact kind -> the payload type that reads it.
PAYLOADS: dict[str, type[Payload]] = {
    payload.KIND: payload for section in REGISTRY for payload in section.payloads
}
