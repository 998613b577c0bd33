"""A small feature store on the bundled digits, shared by the tests of attribution and attacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def small_store(
    cache_dir: Path, backbone: Any = None, dataset: Any = None, max_images: int = 40
) -> Any:
    """A FeatureStore of random-resnet18 (or ``backbone``) on textured-digits (or
    ``dataset``), ``max_images`` per split, caching in ``cache_dir``."""
    from pytest_sslrobust.backbones.loading import load_backbone
    from pytest_sslrobust.data.bundled import load_bundled
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

    return FeatureStore(
        backbone if backbone is not None else load_backbone("random-resnet18"),
        dataset if dataset is not None else load_bundled("textured-digits"),
        FeatureCache(cache_dir),
        max_images=max_images,
    )
