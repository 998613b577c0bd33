"""Batched feature extraction with loading overlapped with the forward pass."""

from __future__ import annotations

import collections
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from pytest_sslrobust.backbones.base import Backbone
from pytest_sslrobust.data.base import DataError, Item, Source
from pytest_sslrobust.features.device_stage import DeviceCorruption, RawLoading

# An item transform returns the image to feed the model and named per-item measurements
# (e.g. SSIM to the clean image) that are kept beside the features.
ItemTransform = Callable[[Item], tuple[np.ndarray, dict[str, float]]]
Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]
ProgressCallback = Callable[[int, int], None]
UPSCALED = "_upscaled"  # a per-item flag that travels with the batch; never stored


Row = tuple[torch.Tensor, dict[str, float]]
DECODES = ("cpu", "gpu")


def _load_item(
    source: Source, index: int, backbone: Backbone, transform: ItemTransform | None
) -> Row:
    item = source.load(int(index))
    # Whether preprocessing had to enlarge the source image (counted, then warned once).
    small = {UPSCALED: float(min(item.image.shape[:2]) < backbone.preprocessing.input_size)}
    if transform is None:
        return backbone.preprocessing(item.image), small
    image, measures = transform(item)
    return backbone.preprocessing(image), {**measures, **small}


def _load_encoded(source: Source, index: int, backbone: Backbone) -> Row:
    """A JPEG file's bytes (1-D uint8), to be decoded in the main process on the device;
    other files decoded and preprocessed here as :func:`_load_item` does."""
    encoded = getattr(source, "encoded", None)
    data = encoded(int(index)) if encoded is not None else None
    if data is None:
        return _load_item(source, index, backbone, None)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8), {}


def _collate(rows: Sequence[Row]) -> Batch:
    images = torch.stack([row[0] for row in rows])
    names = rows[0][1].keys() if rows else ()
    extras = {n: torch.tensor([row[1][n] for row in rows], dtype=torch.float32) for n in names}
    return images, extras


def _rows(rows: Sequence[Row]) -> list[Row]:
    # Rows of encoded files and decoded images do not stack: decoded in the main process.
    return list(rows)


def _load_batch(
    source: Source,
    indices: Sequence[int],
    backbone: Backbone,
    transform: ItemTransform | None,
    encoded: bool = False,
) -> Batch | list[Row]:
    if encoded:
        return [_load_encoded(source, i, backbone) for i in indices]
    images, extras = _collate([_load_item(source, i, backbone, transform) for i in indices])
    return (images.pin_memory() if backbone.device.type == "cuda" else images), extras


def _decode_jpegs(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """uint8 3xHxW images on ``device`` from JPEG bytes, by torchvision (nvJPEG on CUDA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its decoders in favour of TorchCodec, warning on every
        # call; nothing a test suite's author can act on, so not repeated in their runs.
        warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
        try:
            return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            pass  # one file the batched decoder refuses (CMYK, progressive on some builds)
        images = []
        for one in data:
            try:
                images.append(decode_jpeg(one, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                images.append(_decode_with_pil(one).to(device))
        return images


def _decode_with_pil(data: torch.Tensor) -> torch.Tensor:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot decode a JPEG file of this set ({exc})") from None
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)


def _decoded(rows: Sequence[Row], backbone: Backbone) -> Batch:
    """A batch on the backbone's device from rows of JPEG bytes and preprocessed images:
    the JPEGs decoded together on the device, then resized, cropped and normalised there."""
    device, preprocessing = backbone.device, backbone.preprocessing
    images = [row[0] for row in rows]
    extras = [dict(row[1]) for row in rows]
    positions = [i for i, image in enumerate(images) if image.ndim == 1]
    if positions:
        decoded = _decode_jpegs([images[i] for i in positions], device)
        for position, image in zip(positions, decoded, strict=True):
            small = float(min(image.shape[-2:]) < preprocessing.input_size)
            extras[position] = {UPSCALED: small}
            images[position] = preprocessing.tensor(image)
    pinned = device.type == "cuda"
    batch = torch.stack([image.to(device, non_blocking=pinned) for image in images])
    names = extras[0].keys() if extras else ()
    return batch, {n: torch.tensor([e[n] for e in extras], dtype=torch.float32) for n in names}


def _prefetched(
    source: Source,
    indices: np.ndarray,
    backbone: Backbone,
    transform: ItemTransform | None,
    batch_size: int,
    depth: int,
    encoded: bool = False,
) -> Iterator[Batch | list[Row]]:
    """Yield preprocessed batches while the next ones load in a thread.

    Decoding, alteration and resizing run in the worker while the caller's forward pass
    runs; both release the GIL for their heavy parts. At most ``depth`` batches are
    waiting, so memory stays bounded whatever the dataset size.
    """
    chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sslrobust-load") as pool:
        pending: list[Future[Batch]] = []
        next_chunk = 0
        for _ in range(len(chunks)):
            while next_chunk < len(chunks) and len(pending) < depth:
                pending.append(
                    pool.submit(
                        _load_batch, source, chunks[next_chunk], backbone, transform, encoded
                    )
                )
                next_chunk += 1
            yield pending.pop(0).result()


class _Items:
    """Map-style dataset over (source, indices) for torch's DataLoader worker processes."""

    def __init__(
        self,
        source: Source,
        indices: np.ndarray,
        backbone: Backbone,
        transform: ItemTransform | None,
        encoded: bool = False,
    ) -> None:
        self.source, self.indices = source, indices
        self.backbone, self.transform = backbone, transform
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> Row:
        if self.encoded:
            return _load_encoded(self.source, self.indices[position], self.backbone)
        return _load_item(self.source, self.indices[position], self.backbone, self.transform)


def _one_thread(_: int) -> None:
    # Each loader process works on its own items; intra-op threads would only oversubscribe.
    torch.set_num_threads(1)


def _worker_batches(
    source: Source,
    indices: np.ndarray,
    backbone: Backbone,
    transform: ItemTransform | None,
    batch_size: int,
    workers: int,
    encoded: bool = False,
) -> Iterator[Batch | list[Row]]:
    """Batches loaded by ``workers`` forked processes (torch DataLoader), in order.

    Per-item seeds make the result independent of which process loads which item, and
    decoding a file gives the same pixels in any process: the features are the bytes of a
    run with one loader thread.
    """
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _Items(source, indices, backbone, transform, encoded),  # type: ignore[arg-type]
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_rows if encoded else _collate,
        worker_init_fn=_one_thread,
        multiprocessing_context="fork",
        pin_memory=backbone.device.type == "cuda",
        prefetch_factor=2,
    )
    yield from loader


def load_batches(
    backbone: Backbone,
    source: Source,
    indices: np.ndarray,
    *,
    transform: ItemTransform | None = None,
    batch_size: int = 32,
    prefetch: int = 2,
    workers: int = 0,
    decode: str = "cpu",
) -> Iterator[Batch]:
    """The batches :func:`extract` feeds to the forward pass, in order: preprocessed on the
    CPU (pinned for a CUDA device) by one loader thread or ``workers`` processes, or with
    ``decode="gpu"`` decoded, resized and normalised on the backbone's device."""
    if decode not in DECODES:
        raise ValueError(f"decode must be one of {', '.join(DECODES)}, got {decode!r}")
    encoded = decode == "gpu"
    if encoded and transform is not None:
        raise ValueError("decode='gpu' reads unaltered files only; alterations work on the CPU")
    if workers > 0:
        batches = _worker_batches(
            source, indices, backbone, transform, batch_size, workers, encoded
        )
    else:
        batches = _prefetched(source, indices, backbone, transform, batch_size, prefetch, encoded)
    for loaded in batches:
        yield _decoded(loaded, backbone) if encoded else loaded  # type: ignore[misc,arg-type]


def extract(
    backbone: Backbone,
    source: Source,
    indices: np.ndarray,
    *,
    transform: ItemTransform | None = None,
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    prefetch: int = 2,
    stats: collections.Counter[str] | None = None,
    workers: int = 0,
    on_upscaled: Callable[[int, int], None] | None = None,
    decode: str = "cpu",
    stage: DeviceCorruption | None = None,
) -> dict[str, torch.Tensor]:
    """Features (and logits, when the backbone has a head) of ``source`` items at ``indices``.

    Returns a dict with ``features`` (n, d) float32 and, for backbones with a classifier,
    ``logits`` (n, classes), in the order of ``indices``, on the backbone's device.
    Per-item measurements of the transform (e.g. ``ssim``) come as (n,) tensors on the CPU.
    ``workers`` > 0 loads items in that many processes (decoding files, altering them); 0
    uses one loader thread; the features are the same bytes either way. ``decode="gpu"``
    (no ``transform``) reads JPEG files as bytes in the loader and decodes them with
    ``torchvision.io.decode_jpeg`` on the backbone's device in this process (on a CPU
    backbone, torchvision's CPU decoder), then resizes and normalises them there.
    ``stats`` (if given) counts forward batches and images, and adds the seconds spent
    waiting for the next batch (``loader_wait_s``, device decoding included) and in the
    forward pass (``forward_s``; on CUDA up to its end, the device synchronised).
    ``on_upscaled(count, total)`` is called when ``count`` source images were smaller than
    the backbone's input size (preprocessing enlarged them). ``stage`` (the torch corruption
    backend on the device, ``device_stage.py``): the loader gives the clean uint8 images at
    the model's geometry and each batch is corrupted, measured (SSIM) and normalised on the
    backbone's device before its forward pass.
    """
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    measures: dict[str, list[torch.Tensor]] = collections.defaultdict(list)
    done = 0
    iterator = load_batches(
        backbone if stage is None else RawLoading(backbone),  # type: ignore[arg-type]
        source,
        indices,
        transform=transform,
        batch_size=batch_size,
        prefetch=prefetch,
        workers=workers,
        decode=decode,
    )
    synchronise = backbone.device.type == "cuda"
    clock = time.perf_counter
    while True:
        asked = clock()
        loaded = next(iterator, None)
        if loaded is None:
            break
        batch, extras = loaded
        if stage is not None:
            pinned = backbone.device.type == "cuda"
            batch, measured = stage(batch.to(backbone.device, non_blocking=pinned))
            extras = {**measured, **extras}
        ready = clock()
        size = len(batch)
        for name, values in extras.items():
            measures[name].append(values)
        feats, logs = backbone.forward(batch)
        if synchronise:
            # Kernels run asynchronously: without this the forward's time would be counted
            # as the next batch's loader wait.
            torch.cuda.synchronize(backbone.device)
        finished = clock()
        features.append(feats)
        if logs is not None:
            logits.append(logs)
        done += size
        if stats is not None:
            stats["forward_batches"] += 1
            stats["forward_images"] += size
            stats["loader_wait_s"] += ready - asked  # type: ignore[assignment]
            stats["forward_s"] += finished - ready  # type: ignore[assignment]
        if progress is not None:
            progress(done, len(indices))
    if not features:
        raise ValueError("nothing to extract: the selection of items is empty")
    result = {"features": torch.cat(features)}
    if logits:
        result["logits"] = torch.cat(logits)
    upscaled = int(torch.cat(measures.pop(UPSCALED)).sum()) if UPSCALED in measures else 0
    if upscaled and on_upscaled is not None:
        on_upscaled(upscaled, len(indices))
    result.update({name: torch.cat(values) for name, values in measures.items()})
    return result


class TerminalProgress:
    """A progress display that appears once an extraction runs past ``delay`` s.

    On a terminal one line is redrawn in place (carriage return) every ``interval`` s; in a
    log (``tty=False``) a whole line is written every ``log_interval`` s, so CI logs stay
    readable. ``write`` gets the text; the plugin routes it around pytest's capture.
    """

    def __init__(
        self,
        label: str,
        write: Callable[[str], None],
        *,
        delay: float = 2.0,
        interval: float = 0.5,
        tty: bool = True,
        log_interval: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.write = write
        self.delay = delay
        self.interval = interval if tty else log_interval
        self.tty = tty
        self.clock = clock
        self.start = clock()
        self.last = float("-inf")
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        elapsed = now - self.start
        finished = done >= total
        if elapsed < self.delay or (now - self.last < self.interval and not finished):
            return
        self.last = now
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        text = (
            f"[sslrobust] {self.label}: {done}/{total} images "
            f"({rate:.1f} img/s, {'done in' if finished else 'eta'} "
            f"{elapsed if finished else eta:.0f} s)"
        )
        if self.tty:
            # The first line starts afresh so that it does not overwrite pytest's own line.
            text = ("\n" if not self.shown else "\r") + text + ("\n" if finished else "")
        else:
            text = ("\n" if not self.shown else "") + text + "\n"
        self.write(text)
        self.shown = True
