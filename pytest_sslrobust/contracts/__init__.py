"""Contracts: the facts every contract, baseline and report shares about each metric.

(The contracts themselves still live in ``pytest_sslrobust.assertions``; this package is
where they move, one module per family. It imports nothing heavy.)
"""

from pytest_sslrobust.contracts.facts import METRICS, MetricFact, direction_of

__all__ = ["METRICS", "MetricFact", "direction_of"]
