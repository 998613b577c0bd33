"""Hooks that other plugins and conftest files implement to extend pytest-sslrobust."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.hookspec
def pytest_sslrobust_register_backbones(register: Callable[..., Any]) -> None:
    """Register backbone aliases before options are checked.

    Call ``register(BackboneAlias(...))`` for each alias; see
    ``pytest_sslrobust.backbones.registry.BackboneAlias``. Implement it in a plugin or in
    a ``conftest.py`` at the rootdir (conftests below it load too late for options).
    """
