"""LinearProbe.as_module: the fitted probe as a differentiable layer, features -> logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_sslrobust.metrics.readouts import fit_linear_probe


def _data(seed=0, n=90, d=6, classes=3):
    """Features far from standard (mean 5 + offsets, scales 0.1..30) with a learnable label."""
    rng = np.random.default_rng(seed)
    scale = np.geomspace(0.1, 30.0, d)
    offset = 5.0 + np.arange(d)
    y = np.arange(n) % classes
    centres = rng.normal(size=(classes, d))
    x = (centres[y] + rng.normal(size=(n, d))) * scale + offset
    return x, y


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
@pytest.mark.parametrize("classes", [2, 3])
def test_module_gives_the_decision_function(backend, classes):
    x, y = _data(classes=classes)
    probe = fit_linear_probe(x, y, backend=backend, device="cpu")
    assert probe.scale.min() < 1 < probe.scale.max()  # standardisation matters here
    layer = probe.as_module()
    assert isinstance(layer, torch.nn.Module)
    assert layer.weight.dtype == torch.float32
    with torch.no_grad():
        logits = layer(torch.as_tensor(x, dtype=torch.float32))
    expected = probe.decision_function(x)
    assert logits.shape == expected.shape == (len(x), len(probe.classes))
    tolerance = 1e-4 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-4, atol=tolerance)
    np.testing.assert_array_equal(probe.classes[logits.argmax(dim=1).numpy()], probe.predict(x))


def test_module_on_fresh_rows():
    x, y = _data(seed=1)
    probe = fit_linear_probe(x, y)
    fresh, _ = _data(seed=2, n=40)
    with torch.no_grad():
        logits = probe.as_module()(torch.as_tensor(fresh, dtype=torch.float32))
    expected = probe.decision_function(fresh)
    tolerance = 1e-4 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-4, atol=tolerance)


def test_module_is_a_frozen_copy_with_gradients_to_its_input():
    x, y = _data()
    probe = fit_linear_probe(x, y)
    weight = probe.weight.clone()
    layer = probe.as_module()
    assert not layer.training
    assert not any(p.requires_grad for p in layer.parameters())
    rows = torch.as_tensor(x[:5], dtype=torch.float32).requires_grad_(True)
    layer(rows)[:, 1].sum().backward()
    assert rows.grad is not None and rows.grad.abs().sum() > 0
    with torch.no_grad():
        layer.weight.zero_()
    assert torch.equal(probe.weight, weight)
    assert probe.as_module().weight.abs().sum() > 0


def test_module_in_float64_is_float64():
    x, y = _data()
    probe = fit_linear_probe(x, y)
    layer = probe.as_module(torch.float64)
    assert layer.weight.dtype == torch.float64
    assert layer.bias.dtype == torch.float64
    with torch.no_grad():
        logits = layer(torch.as_tensor(x, dtype=torch.float64))
    np.testing.assert_allclose(logits.numpy(), probe.decision_function(x), rtol=1e-10, atol=1e-9)


def test_the_probe_is_fitted_where_the_features_are():
    from types import SimpleNamespace

    from pytest_sslrobust.evaluate import probe_backend

    assert probe_backend(torch.zeros(2, 3)) == "sklearn"
    on_gpu = SimpleNamespace(device=torch.device("cuda", 0))
    assert probe_backend(on_gpu) == "torch"  # type: ignore[arg-type]
    assert probe_backend(SimpleNamespace(device=torch.device("mps"))) == "torch"  # type: ignore[arg-type]
