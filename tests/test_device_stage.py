"""Torch-backend corruptions applied to whole batches on the model's device inside
extraction (``features/device_stage.py``): the same bytes as the per-item loader path on
the CPU, SSIM as scikit-image computes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_sslrobust.features.device_stage import on_device, ssim_batch
from pytest_sslrobust.variants.corruptions import Corruption


def test_ssim_batch_is_scikit_images_ssim() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    clean = rng.integers(0, 256, (5, 40, 48, 3), dtype=np.uint8)
    noisy = np.clip(clean.astype(int) + rng.integers(-60, 60, clean.shape), 0, 255)
    altered = noisy.astype(np.uint8)
    altered[4] = clean[4]  # identical pair: exactly 1
    expected = np.array(
        [
            structural_similarity(c, a, channel_axis=2, data_range=255)
            for c, a in zip(clean, altered, strict=True)
        ],
        dtype=np.float32,
    )
    ours = ssim_batch(
        torch.from_numpy(clean).permute(0, 3, 1, 2), torch.from_numpy(altered).permute(0, 3, 1, 2)
    )
    assert ours.dtype == torch.float32 and np.array_equal(ours.numpy(), expected)
    assert ours[4] == 1.0
    tiny = torch.zeros(2, 3, 6, 6, dtype=torch.uint8)
    assert torch.isnan(ssim_batch(tiny, tiny)).all()  # smaller than the 7 x 7 window


def test_the_device_path_is_chosen_for_torch_corruptions_at_the_models_geometry_only() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    torch_noise = Corruption("gaussian_noise", 2, backend="torch")
    assert on_device(torch_noise, cuda, None) and not on_device(torch_noise, cpu, None)
    assert on_device(torch_noise, cpu, True) and not on_device(torch_noise, cuda, False)
    reference = Corruption("gaussian_noise", 2, backend="imagecorruptions")
    assert not on_device(reference, cuda, True)  # imagecorruptions works on numpy images
    released_recipe = Corruption("gaussian_noise", 2, backend="torch", protocol="imagenet-c")
    assert not on_device(released_recipe, cuda, True)  # corrupts before the resize, then JPEG
    assert not on_device("original", cuda, True)


@pytest.fixture(scope="module")
def model_and_data():
    from pytest_sslrobust.backbones.loading import load_backbone
    from pytest_sslrobust.data.bundled import load_bundled

    return load_backbone("bundled-supervised"), load_bundled("textured-digits")


def _store(model_and_data, corrupt_on_device):
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

    backbone, dataset = model_and_data
    return FeatureStore(
        backbone,
        dataset,
        FeatureCache(None),
        max_images=40,
        batch_size=16,
        corrupt_on_device=corrupt_on_device,
    )


@pytest.mark.parametrize("name", ["gaussian_noise", "glass_blur", "jpeg_compression", "frost"])
def test_on_the_cpu_the_batched_path_gives_the_per_item_bytes(model_and_data, name: str) -> None:
    variant = Corruption(name, 4, backend="torch")
    per_item = _store(model_and_data, False).get(variant)
    batched_store = _store(model_and_data, True)
    plan = batched_store.plan(variant)
    assert plan.stage == (name, 4) and len(plan.seeds) == len(plan)
    batched = batched_store.get(variant)
    assert batched.key == per_item.key  # on the CPU the bytes are the same: one key
    assert torch.equal(batched.features, per_item.features)
    assert torch.equal(batched.logits, per_item.logits)
    assert torch.equal(batched.ssim, per_item.ssim)
    # A range that starts on a batch boundary (a Ray unit) takes its items' own seeds.
    part = plan.extract(batched_store, 16, 40)
    assert torch.equal(part["features"], per_item.features[16:40])


def test_the_device_path_marks_its_key_off_the_cpu(model_and_data) -> None:
    from pytest_sslrobust.features.store import feature_key

    plan = _store(model_and_data, True).plan(Corruption("fog", 1, backend="torch"))
    on_cpu = feature_key(plan.provenance, torch.device("cpu"))
    assert plan.key == on_cpu
    on_gpu = feature_key(plan.provenance, torch.device("cuda"), corrupted_on="device")
    assert on_gpu != feature_key(plan.provenance, torch.device("cuda")) != on_cpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_batch_is_corrupted_on_the_gpu_close_to_the_cpu(model_and_data) -> None:
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

    backbone, dataset = model_and_data
    variant = Corruption("gaussian_noise", 3, backend="torch")
    cpu = _store(model_and_data, False).get(variant)
    gpu_store = FeatureStore(
        backbone.to(torch.device("cuda")), dataset, FeatureCache(None), max_images=40
    )
    try:
        assert gpu_store.plan(variant).stage is not None  # chosen by default on CUDA
        gpu = gpu_store.get(variant)
    finally:
        backbone.to(torch.device("cpu"))
    assert gpu.key != cpu.key
    assert torch.allclose(gpu.ssim, cpu.ssim, atol=0.02)
