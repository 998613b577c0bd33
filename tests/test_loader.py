"""Loading at the accelerator's rate: the workers setting, loader processes for released files,
JPEG decoding by torchvision on the device, and the loader- or forward-bound verdict."""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import layout_builders as lb
import numpy as np
import pytest
import torch

from pytest_sslrobust.session import MAX_AUTO_LOADERS, loader_workers
from pytest_sslrobust.settings import parse_decode, parse_workers

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# The miniature sets hold 12 images: fewer than a gate wants, warned about, beside the point.
pytestmark = pytest.mark.filterwarnings("ignore:sslrobust. only")


# --sslrobust-workers -----------------------------------------------------------------------


def test_auto_is_no_loader_process_on_the_cpu_and_cores_less_one_on_a_gpu() -> None:
    assert loader_workers("auto", "cpu", 16, None) == 0
    assert loader_workers("auto", "mps", 16, None) == 0
    assert loader_workers("auto", "cuda", 16, None) == MAX_AUTO_LOADERS == 8
    assert loader_workers("auto", "cuda", 4, None) == 3
    assert loader_workers("auto", "cuda", 1, None) == 0


def test_auto_splits_the_cores_between_xdist_workers_and_n_stays_n() -> None:
    assert loader_workers("auto", "cuda", 16, (0, 4)) == 3  # 4 cores each, one for the parent
    assert loader_workers("auto", "cuda", 16, (1, 2)) == 7
    assert loader_workers("auto", "cuda", 2, (0, 4)) == 0
    assert loader_workers(5, "cpu", 2, None) == 5
    assert loader_workers(0, "cuda", 64, None) == 0


def test_workers_and_decode_options_parse() -> None:
    assert parse_workers("auto") == parse_workers(" AUTO ") == "auto"
    assert parse_workers("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="expected auto or a whole number"):
        parse_workers("-1")
    assert parse_decode("GPU") == "gpu"
    with pytest.raises(argparse.ArgumentTypeError, match="expected cpu or gpu"):
        parse_decode("nvjpeg")


def test_the_run_resolves_auto_once_and_shows_it() -> None:
    from types import SimpleNamespace

    from pytest_sslrobust.session import SslRobustRun
    from pytest_sslrobust.settings import Settings

    run = SslRobustRun(SimpleNamespace(), Settings(device="cpu"))  # type: ignore[arg-type]
    assert run.loader_workers_shown() is None
    run._device = torch.device("cpu")
    assert run.loader_workers() == 0 and run.loader_workers_shown() == "0"
    run.worker_loaders.update({"gw0": "0", "gw1": "2"})
    assert run.loader_workers_shown() == "0, 2"


# Loader processes give the bytes of one loader thread ----------------------------------------


def _released(root: Path) -> object:
    """A tiny ImageNet-C: 2 classes x 6 clean JPEGs and one released corruption of them."""
    from pytest_sslrobust.data.sources import imagenet_c

    for c, (wnid, photo) in enumerate(lb.IMAGENET_CLASSES[:2]):
        for k, image in enumerate(lb.crops(photo, 6, size=72, seed=c)):
            name = f"ILSVRC2012_val_{wnid[1:]}{k:02d}.JPEG"
            lb.save_jpeg(image, root / "val" / wnid / name)
            noisy = np.clip(image.astype(np.int16) + (k * 7 % 23) - 11, 0, 255).astype(np.uint8)
            lb.save_jpeg(noisy, root / "c" / "gaussian_noise" / "3" / wnid / name)
    return imagenet_c(root / "c", root / "val")


@pytest.fixture(scope="module")
def small_model() -> object:
    from pytest_sslrobust.backbones.loading import load_backbone

    return load_backbone("random-resnet18", image_size=48)  # 72 px files: resized and cropped


def _store(backbone: object, dataset: object, workers: int, decode: str = "cpu") -> object:
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

    return FeatureStore(
        backbone,  # type: ignore[arg-type]
        dataset,  # type: ignore[arg-type]
        FeatureCache(None),
        batch_size=5,
        workers=workers,
        decode=decode,
    )


def test_loader_processes_give_the_features_of_one_loader_thread(
    tmp_path: Path, small_model: object
) -> None:
    dataset = _released(tmp_path)
    serial, forked = _store(small_model, dataset, 0), _store(small_model, dataset, 2)
    for variant in ("gaussian_noise-s3", "original", "contrast-s2"):  # released, clean, altered
        one, two = serial.get(variant), forked.get(variant)  # type: ignore[attr-defined]
        assert torch.equal(one.features, two.features), variant
        assert one.key == two.key
        if variant == "contrast-s2":
            assert torch.equal(one.ssim, two.ssim)
    assert forked.cache.stats["forward_images"] == 3 * 12  # type: ignore[attr-defined]


def test_extract_counts_loader_wait_and_forward_seconds(
    tmp_path: Path, small_model: object
) -> None:
    from pytest_sslrobust.features.extract import extract

    dataset = _released(tmp_path)
    source = dataset.released["gaussian_noise-s3"]["test"]  # type: ignore[attr-defined]
    stats: collections.Counter[str] = collections.Counter()
    extract(small_model, source, np.arange(len(source)), batch_size=4, stats=stats)  # type: ignore[arg-type]
    assert stats["forward_batches"] == 3 and stats["forward_images"] == 12
    assert isinstance(stats["forward_s"], float) and stats["forward_s"] > 0
    assert isinstance(stats["loader_wait_s"], float) and stats["loader_wait_s"] >= 0
    total = collections.Counter({"forward_images": 1})
    total.update(dict(stats))  # as the controller merges what xdist workers send
    assert total["forward_s"] == stats["forward_s"]


# Decoding with torchvision in the main process ----------------------------------------------


def test_torchvision_decoding_matches_pil(tmp_path: Path) -> None:
    """torchvision's CPU decoder and PIL both bundle libjpeg-turbo with the same settings:
    bit-identical pixels with torch 2.14.1 / torchvision 0.29.1 / Pillow here (the test allows
    2 levels, as another libjpeg build could round an IDCT differently)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    from pytest_sslrobust.data.io import load_image

    for k, image in enumerate(lb.crops("astronaut", 3, size=97)):
        path = tmp_path / f"{k}.jpg"
        lb.save_jpeg(image, path)
        data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        ours = decode_jpeg(data, mode=ImageReadMode.RGB, device="cpu").permute(1, 2, 0)
        difference = np.abs(ours.numpy().astype(int) - load_image(path).astype(int))
        assert difference.max() <= 2, difference.max()


def test_preprocessing_a_tensor_is_preprocessing_its_array(small_model: object) -> None:
    preprocessing = small_model.preprocessing  # type: ignore[attr-defined]
    for image in lb.crops("coffee", 2, size=90) + lb.crops("rocket", 1, size=48):
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
        assert torch.equal(preprocessing.tensor(tensor), preprocessing(image))


def test_decoding_in_the_main_process_matches_decoding_in_the_loader(
    tmp_path: Path, small_model: object
) -> None:
    """``decode="gpu"`` on a CPU backbone runs the device path with torchvision's CPU decoder:
    the same features as PIL in the loader, within float rounding, for any loader."""
    dataset = _released(tmp_path)
    pil = _store(small_model, dataset, 0).get("gaussian_noise-s3")  # type: ignore[attr-defined]
    for workers in (0, 2):
        store = _store(small_model, dataset, workers, decode="gpu")
        decoded = store.get("gaussian_noise-s3")  # type: ignore[attr-defined]
        torch.testing.assert_close(decoded.features, pil.features, rtol=1e-4, atol=1e-4)
        assert decoded.key != pil.key  # another decoder: its own cache entry
        altered = store.get("contrast-s2")  # type: ignore[attr-defined]
        assert altered.key == _store(small_model, dataset, 0).get("contrast-s2").key  # type: ignore[attr-defined]


@needs_cuda
def test_decoding_on_the_gpu_matches_pil(tmp_path: Path) -> None:
    from pytest_sslrobust.backbones.loading import load_backbone

    backbone = load_backbone("random-resnet18", image_size=48).to("cuda")
    dataset = _released(tmp_path)
    pil = _store(backbone, dataset, 0).get("gaussian_noise-s3")  # type: ignore[attr-defined]
    gpu = _store(backbone, dataset, 2, decode="gpu").get("gaussian_noise-s3")  # type: ignore[attr-defined]
    assert gpu.features.device.type == "cuda"
    # nvJPEG's IDCT and chroma upsampling differ from libjpeg's by a few levels, and the
    # forward runs under autocast: close, not equal.
    torch.testing.assert_close(gpu.features, pil.features, rtol=0.05, atol=0.05)


def test_decode_gpu_without_cuda_is_one_line(pytester: pytest.Pytester) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    pytester.makepyfile(
        """
        def test_features(sslrobust_features):
            sslrobust_features.get("original")

        def test_more_features(sslrobust_features):  # not run on a CPU by mistake either
            sslrobust_features.get("original")
        """
    )
    result = pytester.runpytest(
        "--sslrobust-device=cpu", "--sslrobust-decode=gpu", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*--sslrobust-decode=gpu: decoding JPEG files on the GPU needs a CUDA device*"]
    )
    assert "Traceback" not in result.stdout.str()


# Loader- or forward-bound --------------------------------------------------------------------


def test_a_run_is_loader_bound_when_it_waited_longer_than_it_computed() -> None:
    from pytest_sslrobust.progress import bound_by, loading_text

    assert bound_by(2.0, 1.0) == "loader-bound"
    assert bound_by(1.0, 2.0) == bound_by(1.0, 1.0) == "forward-bound"
    stats = {"forward_images": 10, "loader_wait_s": 3.25, "forward_s": 1.0}
    assert loading_text(stats, "3", "auto", "gpu") == (
        "3 loader processes (workers=auto), JPEG decoding on the gpu; loader-bound: "
        "3.2 s waiting for batches, 1.0 s in the forward pass"
    )
    assert loading_text({**stats, "loader_wait_s": 0.5}, "0", 0, "cpu").startswith(
        "one loader thread, JPEG decoding on the cpu; forward-bound"
    )
    assert loading_text({}, None, "auto", "cpu") is None


def test_the_report_header_says_how_the_run_loaded() -> None:
    from pytest_sslrobust.report.sections.run import loading_fact

    loading = {
        "workers": "0",
        "workers_setting": "auto",
        "decode": "cpu",
        "loader_wait_s": 0.4,
        "forward_s": 2.5,
        "bound": "forward-bound",
    }
    assert loading_fact(loading) == (
        "one loader thread (workers=auto), JPEG decoding on the cpu; forward-bound "
        "(0.4 s waiting for batches, 2.5 s in the forward pass)"
    )
    assert loading_fact({**loading, "bound": None}) == ""


def test_header_summary_and_report_state_workers_and_bound(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        """
        def test_features(sslrobust_features):
            assert len(sslrobust_features.get("original")) > 0
        """
    )
    report = tmp_path / "report.html"
    result = pytester.runpytest(
        "--sslrobust-device=cpu",
        "--sslrobust-model=random-resnet18",
        "--sslrobust-image-size=32",
        "--sslrobust-max-images=40",
        "--sslrobust-no-cache",
        f"--sslrobust-report={report}",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "sslrobust: loading workers=0 (auto) decode=cpu",
            "loading: one loader thread (workers=auto), JPEG decoding on the cpu; *-bound: *",
        ]
    )
    html = report.read_text()
    assert "one loader thread (workers=auto), JPEG decoding on the cpu;" in html
