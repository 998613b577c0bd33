"""Contracts: one module per family (``corruption``, ``similarity``, ``accuracy``,
``neighbours``, ``adversarial``, ``background``, ``regression``, ``attribution``), the decision
point (``decision``), the explanations (``explain``) and the metric facts (``facts``).

Importing the package loads only the facts, which the baselines read at configure time; the
families load numpy and torch and are imported by ``pytest_sslrobust.assertions``, the public
entry.
"""

from pytest_sslrobust.contracts.facts import METRICS, MetricFact, direction_of

__all__ = ["METRICS", "MetricFact", "direction_of"]
