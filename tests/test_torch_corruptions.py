"""The torch corruption backend: shapes, determinism, the option, the protocol, fidelity."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from pytest_sslrobust.variants.corruptions import Corruption, corrupt
from pytest_sslrobust.variants.torch_corruptions import corrupt_batch, corrupt_image
from pytest_sslrobust.vocabulary import (
    ALL,
    VariantError,
    corruption_backend,
    generator_version,
    use_corruption_backend,
)

# Corruptions whose output depends on the seed (the others are deterministic functions).
RANDOM = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "elastic_transform",
    "spatter",
}


def _photos(size: int, count: int = 3) -> torch.Tensor:
    """Real photographs that ship with scikit-image, resized, as a uint8 (B, 3, H, W) batch."""
    import skimage.data
    from skimage.transform import resize

    names = ("astronaut", "chelsea", "coffee", "rocket")[:count]
    images = [
        (resize(getattr(skimage.data, n)(), (size, size), anti_aliasing=True) * 255).astype(
            np.uint8
        )
        for n in names
    ]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def photos48() -> torch.Tensor:
    return _photos(48)


@pytest.mark.parametrize("name", ALL)
def test_every_severity_gives_a_uint8_batch_of_the_same_shape(
    name: str, photos48: torch.Tensor
) -> None:
    small = photos48[:, :, :32, :40].contiguous()  # the smallest side allowed, not square
    for severity in range(1, 6):
        out = corrupt_batch(small, name, severity, seeds=[0, 1, 2])
        assert out.dtype == torch.uint8 and out.shape == small.shape
    assert not torch.equal(corrupt_batch(small, name, 5, [0, 1, 2]), small)


@pytest.mark.parametrize("name", ALL)
def test_the_same_bytes_for_any_batch_size_or_order(name: str, photos48: torch.Tensor) -> None:
    seeds = [11, 22, 33]
    together = corrupt_batch(photos48, name, 3, seeds)
    alone = torch.cat(
        [corrupt_batch(photos48[i : i + 1], name, 3, [s]) for i, s in enumerate(seeds)]
    )
    reversed_ = corrupt_batch(photos48.flip(0), name, 3, seeds[::-1]).flip(0)
    assert torch.equal(together, alone) and torch.equal(together, reversed_)
    again = corrupt_batch(photos48, name, 3, seeds)
    assert torch.equal(together, again)
    other = corrupt_batch(photos48, name, 3, [s + 1 for s in seeds])
    assert torch.equal(together, other) == (name not in RANDOM)


def test_one_image_goes_through_the_batch_path(photos48: torch.Tensor) -> None:
    image = photos48[0].permute(1, 2, 0).contiguous().numpy()
    out = corrupt_image(image, "fog", 2, seed=5)
    expected = corrupt_batch(photos48[:1], "fog", 2, [5])[0].permute(1, 2, 0).numpy()
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    ("images", "name", "severity", "seeds", "message"),
    [
        (torch.zeros((1, 3, 40, 40)), "fog", 1, [0], "uint8"),
        (torch.zeros((1, 40, 40, 3), dtype=torch.uint8), "fog", 1, [0], r"\(B, 3, H, W\)"),
        (torch.zeros((1, 3, 31, 40), dtype=torch.uint8), "fog", 1, [0], "at least 32x32"),
        (torch.zeros((2, 3, 40, 40), dtype=torch.uint8), "fog", 1, [0], "expected 2 seeds"),
        (torch.zeros((1, 3, 40, 40), dtype=torch.uint8), "fgo", 1, [0], "fog"),
        (torch.zeros((1, 3, 40, 40), dtype=torch.uint8), "fog", 6, [0], "1..5"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(
    images: torch.Tensor, name: str, severity: int, seeds: list[int], message: str
) -> None:
    with pytest.raises(VariantError, match=message):
        corrupt_batch(images, name, severity, seeds)


def test_the_backend_is_a_corruption_field_and_part_of_its_protocol() -> None:
    assert corruption_backend() == "imagecorruptions"
    reference, torch_made = Corruption("fog", 2), Corruption("fog", 2, backend="torch")
    assert reference.id == torch_made.id == "fog-s2"
    assert reference.params["generator"].startswith("imagecorruptions")
    assert torch_made.params["generator"] == generator_version("torch")
    assert "torch corruptions" in torch_made.params["generator"]
    assert "backend" not in reference.params  # keys of earlier runs are unchanged
    try:
        use_corruption_backend("torch")
        assert Corruption("fog", 2).backend == "torch"
    finally:
        use_corruption_backend("imagecorruptions")
    with pytest.raises(VariantError, match="imagecorruptions, torch"):
        Corruption("fog", 2, backend="kornia")
    with pytest.raises(VariantError, match="imagecorruptions, torch"):
        use_corruption_backend("cv2")


def test_the_torch_variant_corrupts_with_the_torch_backend(photos48: torch.Tensor) -> None:
    from pytest_sslrobust.data.base import Item

    image = photos48[1].permute(1, 2, 0).contiguous().numpy()
    item = Item(image=image, label=0, id="x")
    made = Corruption("impulse_noise", 3, backend="torch").apply(item, seed=7)
    np.testing.assert_array_equal(made, corrupt_image(image, "impulse_noise", 3, 7))
    reference = Corruption("impulse_noise", 3).apply(item, seed=7)
    np.testing.assert_array_equal(reference, corrupt(image, "impulse_noise", 3, 7))


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


# The largest |SSIM(torch) - SSIM(reference)| to clean allowed, averaged over 3 photographs x
# 2 seeds (frost 12) at 96 px, per corruption and severity; from the measured table in
# docs/corruption-backends.md (benchmarks/bench_torch_corruptions.py), with headroom.
TOLERANCE = {name: 0.03 for name in ALL} | {
    "frost": 0.08,  # which of the six frost photographs a seed picks differs
    "fog": 0.05,
    "snow": 0.06,
    "spatter": 0.05,  # Canny, distance transform, equalisation approximated
}


@pytest.mark.parametrize("name", ALL)
def test_fidelity_to_imagecorruptions_on_real_photographs(name: str) -> None:
    photos = _photos(96)
    for severity in (1, 3, 5):
        reference, made = [], []
        for i in range(photos.shape[0]):
            clean = photos[i].permute(1, 2, 0).contiguous().numpy()
            # frost: which of six photographs a seed picks dominates; average over more.
            for seed in range(12 if name == "frost" else 2):
                reference.append(_ssim(clean, corrupt(clean, name, severity, seed)))
                made.append(_ssim(clean, corrupt_image(clean, name, severity, seed)))
        gap = abs(float(np.mean(made)) - float(np.mean(reference)))
        assert gap <= TOLERANCE[name], (name, severity, np.mean(reference), np.mean(made))


SUITE = """
import json, os
from pytest_sslrobust.features.provenance import Provenance

def test_sweep(sslrobust):
    errors = sslrobust.corruption_errors(["fog", "glass_blur"], readout="knn")
    made = Provenance.of(sslrobust.features("fog-s2")).variant_params["generator"]
    out = os.path.join(os.environ["PROBE_OUT"], os.environ["PROBE_NAME"])
    with open(out, "w") as handle:
        json.dump({"generator": errors.protocol["generator"], "made": made,
                   "errors": errors.errors}, handle)
"""


def test_the_option_makes_the_run_corrupt_with_torch_and_record_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("PROBE_OUT", str(pytester.path))
    pytester.makepyfile(test_sweep=SUITE)
    common = ["-p", "no:randomly", "--sslrobust-max-images=30", "--sslrobust-image-size=48"]
    common.append(f"--sslrobust-cache-dir={pytester.path / 'cache'}")
    # The ini key (every option has one, tests/test_options.py) chooses it as the option would.
    pytester.makeini("[pytest]\nsslrobust_corruption_backend = torch\n")
    monkeypatch.setenv("PROBE_NAME", "torch.json")
    made = pytester.runpytest_subprocess(*common)
    made.assert_outcomes(passed=1)
    made.stdout.fnmatch_lines(["sslrobust: corruptions by the torch backend"])
    monkeypatch.setenv("PROBE_NAME", "reference.json")
    reference = pytester.runpytest_subprocess(
        *common, "--sslrobust-corruption-backend=imagecorruptions"
    )
    reference.assert_outcomes(passed=1)
    # Another backend is another protocol and other cache entries: computed afresh.
    computed = re.search(r"feature sets: (\d+) computed", reference.stdout.str())
    assert computed is not None and int(computed[1]) >= 10, reference.stdout.str()
    by_torch = json.loads((pytester.path / "torch.json").read_text())
    by_library = json.loads((pytester.path / "reference.json").read_text())
    assert by_torch["generator"] == by_torch["made"] == generator_version("torch")
    assert by_library["generator"] == by_library["made"] == generator_version("imagecorruptions")
    assert by_torch["errors"].keys() == by_library["errors"].keys() == {"fog", "glass_blur"}


@pytest.mark.parametrize("severity", [1, 2, 3, 5])
def test_glass_blur_moves_pixels_as_the_sequential_walk_does(
    severity: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """imagecorruptions' glass blur walks the image from the bottom-right corner and copies
    into each pixel the value now at a random offset; the batched chain gives every pixel
    the same value (checked with the blurs switched off and the same draws)."""
    from pytest_sslrobust.variants import torch_corruptions as tc

    _, delta, iterations = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))[
        severity - 1
    ]
    height, width = 37, 41
    rng = np.random.default_rng(severity)
    clean = torch.from_numpy(rng.integers(0, 256, (2, 3, height, width)).astype(np.float32))
    clean = clean / 255
    monkeypatch.setattr(tc, "_gaussian", lambda x, sigma, **_: x)
    seeds = [7, 8]
    made = tc._glass_blur(
        clean.clone(), severity - 1, [torch.Generator().manual_seed(s) for s in seeds]
    )
    for i, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(seed)
        walked = (torch.floor(clean[i] * 255) / 255).permute(1, 2, 0).numpy().copy()
        for _ in range(iterations):
            shifts = torch.randint(-delta, delta, (2, height, width), generator=generator).numpy()
            for h in range(height - delta, delta, -1):
                for w in range(width - delta, delta, -1):
                    walked[h, w] = walked[h + shifts[0, h, w], w + shifts[1, h, w]]
        np.testing.assert_array_equal(made[i].permute(1, 2, 0).numpy(), walked)
