"""What the contract tests share: a stand-in pytest item and ``recording()``, which collects
the ContractResults the contracts record."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pytest_sslrobust.results import ContractResult, current_item, results_from_properties


class FakeItem:
    """What ``record`` needs of a pytest item."""

    def __init__(self) -> None:
        self.nodeid = "tests/fake.py::test_contract"
        self.user_properties: list[tuple[str, Any]] = []


@contextlib.contextmanager
def recording() -> Iterator[list[ContractResult]]:
    """Collect what the helpers record; filled in when the block ends.

    Set inside the test body: the plugin sets ``current_item`` itself around the call phase,
    which would override a value set by a fixture.
    """
    item = FakeItem()
    token = current_item.set(item)
    results: list[ContractResult] = []
    try:
        yield results
    finally:
        current_item.reset(token)
        results.extend(results_from_properties(item.user_properties))
