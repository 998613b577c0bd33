"""``@pytest.mark.sslrobust(...)``: its keywords, checked once at collection.

``pytest_collection_modifyitems`` parses the closest marker of every item into a
``MarkerOptions`` and keeps it in the item's stash; the fixtures read it from there
(``options_of``). ``pytest_generate_tests`` parses the definition's marker once, before the
items exist. No torch or numpy: this runs at collection.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_sslrobust.settings import Settings
    from pytest_sslrobust.variants.corruptions import Corruption

KEYWORDS = ("models", "data", "corruptions", "severities", "protocol", "variants")
# The masking study's altered variants, swept by ``sslrobust_variant`` unless a marker says.
DEFAULT_VARIANTS = ("foreground", "background", "center", "border")


@dataclasses.dataclass(frozen=True)
class MarkerOptions:
    """The checked keywords of one ``sslrobust`` marker; ``None`` where the marker is silent
    (the run's settings apply). ``models`` are parsed and validated model specs, ``data`` a
    parsed data spec; the sweep keywords are kept as given and parsed by ``sweep``."""

    models: tuple[str, ...] | None = None
    data: str | None = None
    corruptions: Any = None
    severities: Any = None
    protocol: str | None = None
    variants: Any = None

    @classmethod
    def parse(cls, marker: pytest.Mark | None) -> MarkerOptions:
        """The marker's keywords, checked; a bad one is a ``pytest.UsageError``."""
        if marker is None:
            return cls()
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.sslrobust takes keywords only ({', '.join(k + '=' for k in KEYWORDS)})"
            )
        unknown = sorted(set(marker.kwargs) - set(KEYWORDS))
        if unknown:
            raise pytest.UsageError(
                f"@pytest.mark.sslrobust got unknown keyword {unknown[0]!r}; accepted: "
                f"{', '.join(sorted(KEYWORDS))}"
            )
        options = dict(marker.kwargs)
        try:
            if "models" in options:
                options["models"] = _models(options["models"])
            if "data" in options:
                from pytest_sslrobust.settings import parse_data

                options["data"] = parse_data(str(options["data"]))
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"@pytest.mark.sslrobust: {exc}") from None
        return cls(**options)

    def models_or(self, default: Sequence[str]) -> tuple[str, ...]:
        return self.models if self.models is not None else tuple(default)

    def sweep(self, settings: Settings) -> list[Corruption]:
        """The corruption sweep: the marker's keywords over the run's settings."""
        from pytest_sslrobust.variants.corruptions import corruption_variants
        from pytest_sslrobust.vocabulary import VariantError

        try:
            return corruption_variants(
                _given(self.corruptions, settings.corruptions),
                _given(self.severities, settings.severities),
                _given(self.protocol, settings.corruption_protocol),
            )
        except VariantError as exc:
            raise pytest.UsageError(f"@pytest.mark.sslrobust: {exc}") from None

    def variant_list(self, settings: Settings) -> list[Any]:
        """The variants a ``sslrobust_variant`` test runs over (``variants=``, else
        foreground, background, center, border)."""
        from pytest_sslrobust.variants import parse_variant
        from pytest_sslrobust.vocabulary import VariantError

        wanted = _given(self.variants, DEFAULT_VARIANTS)
        if isinstance(wanted, str):
            wanted = [part.strip() for part in wanted.split(",")]
        protocol = _given(self.protocol, settings.corruption_protocol)
        try:
            return [
                parse_variant(v, protocol=protocol, segmenter=settings.segmenter)
                if isinstance(v, str)
                else v
                for v in wanted
            ]
        except VariantError as exc:
            raise pytest.UsageError(f"@pytest.mark.sslrobust: {exc}") from None


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def _models(value: Any) -> tuple[str, ...]:
    from pytest_sslrobust.backbones.registry import validate_spec
    from pytest_sslrobust.settings import parse_models

    models = parse_models(value if isinstance(value, str) else ",".join(value))
    for spec in models:
        problem = validate_spec(spec)
        if problem:
            raise argparse.ArgumentTypeError(problem)
    return tuple(models)


OPTIONS_KEY = pytest.StashKey[MarkerOptions]()


def check_items(items: Sequence[pytest.Item]) -> None:
    """Check every ``sslrobust`` marker of every item (a typo is a usage error at collection,
    not a late failure) and stash the closest one's options on the item."""
    for item in items:
        for marker in item.iter_markers("sslrobust"):
            MarkerOptions.parse(marker)
        item.stash[OPTIONS_KEY] = MarkerOptions.parse(item.get_closest_marker("sslrobust"))


def options_of(node: pytest.Item | Any) -> MarkerOptions:
    """The stashed marker options of a test item (parsed now for a node collection did not
    see, such as one made by a plugin after ``pytest_collection_modifyitems``)."""
    stash = getattr(node, "stash", None)
    if stash is not None and OPTIONS_KEY in stash:
        return stash[OPTIONS_KEY]
    options = MarkerOptions.parse(node.get_closest_marker("sslrobust"))
    if stash is not None:
        stash[OPTIONS_KEY] = options
    return options
