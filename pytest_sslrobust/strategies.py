"""Hypothesis strategies over variants, for property-style robustness contracts.

Example: "for every corruption at severity <= 2 the clean/corrupted CKA stays above 0.8"::

    from hypothesis import given, settings
    from pytest_sslrobust import strategies as st

    @settings(max_examples=10, deadline=None)
    @given(variant=st.corruptions(severities=st.severities(max_value=2)))
    def test_mild_corruptions_keep_structure(sslrobust, variant):
        ...

Features are cached per variant, so a shrinking or repeated example costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    from hypothesis import strategies as st
except ImportError:  # an extra since hypothesis is needed here only
    raise ImportError(
        "pytest_sslrobust.strategies needs hypothesis, which is an extra: "
        "pip install 'pytest-sslrobust[hypothesis]' (or pip install hypothesis)"
    ) from None

from pytest_sslrobust.variants.base import Variant
from pytest_sslrobust.variants.corruptions import (
    ALL,
    GROUPS,
    PROTOCOLS,
    Corruption,
    check_corruption,
    check_severity,
)
from pytest_sslrobust.variants.masks import CircularMask, RegionMask
from pytest_sslrobust.variants.swaps import SWAPS, BackgroundSwap


def severities(min_value: int = 1, max_value: int = 5) -> st.SearchStrategy[int]:
    """Severities in ``[min_value, max_value]`` (within 1..5)."""
    check_severity(min_value)
    check_severity(max_value)
    return st.integers(min_value=min_value, max_value=max_value)


def corruption_names(group: str | Sequence[str] = "all") -> st.SearchStrategy[str]:
    """Corruption names from a group (``common``, ``noise``...) or an explicit list."""
    names = GROUPS[group] if isinstance(group, str) and group in GROUPS else group
    if isinstance(names, str):
        names = (check_corruption(names),)
    return st.sampled_from(tuple(check_corruption(name) for name in names))


def corruptions(
    group: str | Sequence[str] = "all",
    severities: st.SearchStrategy[int] | None = None,
    protocol: str = "on-the-fly",
) -> st.SearchStrategy[Corruption]:
    """Corruption variants; shrinks towards the first name of the group and severity 1."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    levels = severities if severities is not None else globals()["severities"]()
    return st.builds(
        lambda name, level: Corruption(name, level, protocol), corruption_names(group), levels
    )


def circular_masks(
    regions: Sequence[str] = ("center", "border"),
    min_radius: float = 0.1,
    max_radius: float = 1.0,
) -> st.SearchStrategy[CircularMask]:
    """Centre/border circular masks with radii on a 0.05 grid (so ids and caches repeat)."""
    steps = range(round(min_radius / 0.05), round(max_radius / 0.05) + 1)
    radii = st.sampled_from([round(step * 0.05, 2) for step in steps])
    return st.builds(CircularMask, st.sampled_from(tuple(regions)), radii)


def variants(
    *,
    include_masks: bool = True,
    include_regions: bool = False,
    include_swaps: bool = False,
) -> st.SearchStrategy[Variant]:
    """Any variant: corruptions, circular masks, and (opt-in, they need foreground masks)
    foreground/background and ImageNet-9 background swaps."""
    options: list[st.SearchStrategy[Variant]] = [corruptions()]
    if include_masks:
        options.append(circular_masks())
    if include_regions:
        options.append(st.sampled_from([RegionMask("foreground"), RegionMask("background")]))
    if include_swaps:
        options.append(st.sampled_from([BackgroundSwap(name) for name in SWAPS]))
    return st.one_of(*options)


__all__ = ["ALL", "circular_masks", "corruption_names", "corruptions", "severities", "variants"]
