"""Deliberately broken backbones, for showing that a contract can fail.

A robustness contract that a broken model also passes gates nothing. These controls have the
bundled backbones' architecture, stride and preprocessing, so they run wherever the bundled
models run; name them as factories::

    pytest --sslrobust-model=pytest_sslrobust.backbones.controls:random_init example_suites/
    pytest --sslrobust-model=pytest_sslrobust.backbones.controls:zeroed_block@contrastive,\\
bundled-supervised example_suites/

- ``random_init``: seeded random weights (seed 1; the training scripts start from seed 0),
  i.e. what the network knows before any training.
- ``zeroed_block``: ``bundled-simclr`` with the residual branch of its third stage set to
  zero (every weight of ``layer3``'s convolutions and their batch norms; the shortcut stays),
  i.e. a trained model whose checkpoint lost one block.

Each is its own network with its own fingerprint (the tensors differ), so nothing it computes
can be mistaken in the cache for the trained model's features.
"""

from __future__ import annotations

import torch

from pytest_sslrobust.backbones.base import Backbone


def _bundled_alias(name: str):  # type: ignore[no-untyped-def]
    from pytest_sslrobust.backbones.registry import get_alias

    alias = get_alias(name)
    assert alias is not None, name
    return alias


def _control(model: torch.nn.Module, spec: str, weights: str) -> Backbone:
    from pytest_sslrobust.backbones.loading import wrap_module

    alias = _bundled_alias("bundled-simclr")
    return wrap_module(
        model.eval(),
        spec,
        alias.timm_name,
        weights,
        alias.input_size,
        "none (broken control)",
        None,
        settings=alias.extra,
    )


def random_init() -> Backbone:
    """The bundled architecture with seeded random weights (seed 1)."""
    import timm

    alias = _bundled_alias("bundled-simclr")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = timm.create_model(alias.timm_name, pretrained=False, **alias.create_kwargs)
    return _control(model, "control-random-init", "random (seed 1)")


def zeroed_block() -> Backbone:
    """``bundled-simclr`` with ``layer3``'s residual branch zeroed (the shortcut kept)."""
    from pytest_sslrobust.backbones.loading import load_backbone

    model = load_backbone("bundled-simclr").model
    with torch.no_grad():
        for name, tensor in model.layer3.named_parameters():
            if not name.split(".")[1].startswith("downsample"):
                tensor.zero_()
    return _control(model, "control-zeroed-block", "bundled-simclr, layer3 residual branch zeroed")
