"""Batched feature extraction with loading overlapped with the forward pass."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from pytest_sslrobust.backbones.base import Backbone
from pytest_sslrobust.data.base import Item, Source

# An item transform returns the image to feed the model and named per-item measurements
# (e.g. SSIM to the clean image) that are kept beside the features.
ItemTransform = Callable[[Item], tuple[np.ndarray, dict[str, float]]]
Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]
ProgressCallback = Callable[[int, int], None]
UPSCALED = "_upscaled"  # a per-item flag that travels with the batch; never stored


def _load_item(
    source: Source, index: int, backbone: Backbone, transform: ItemTransform | None
) -> tuple[torch.Tensor, dict[str, float]]:
    item = source.load(int(index))
    # Whether preprocessing had to enlarge the source image (counted, then warned once).
    small = {UPSCALED: float(min(item.image.shape[:2]) < backbone.preprocessing.input_size)}
    if transform is None:
        return backbone.preprocessing(item.image), small
    image, measures = transform(item)
    return backbone.preprocessing(image), {**measures, **small}


def _collate(rows: Sequence[tuple[torch.Tensor, dict[str, float]]]) -> Batch:
    images = torch.stack([row[0] for row in rows])
    names = rows[0][1].keys() if rows else ()
    extras = {n: torch.tensor([row[1][n] for row in rows], dtype=torch.float32) for n in names}
    return images, extras


def _load_batch(
    source: Source,
    indices: Sequence[int],
    backbone: Backbone,
    transform: ItemTransform | None,
) -> Batch:
    images, extras = _collate([_load_item(source, i, backbone, transform) for i in indices])
    return (images.pin_memory() if backbone.device.type == "cuda" else images), extras


def _prefetched(
    source: Source,
    indices: np.ndarray,
    backbone: Backbone,
    transform: ItemTransform | None,
    batch_size: int,
    depth: int,
) -> Iterator[Batch]:
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
                    pool.submit(_load_batch, source, chunks[next_chunk], backbone, transform)
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
    ) -> None:
        self.source, self.indices = source, indices
        self.backbone, self.transform = backbone, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, dict[str, float]]:
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
) -> Iterator[Batch]:
    """Batches loaded by ``workers`` forked processes (torch DataLoader), in order.

    Per-item seeds make the result independent of which process loads which item.
    """
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _Items(source, indices, backbone, transform),  # type: ignore[arg-type]
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_one_thread,
        multiprocessing_context="fork",
        pin_memory=backbone.device.type == "cuda",
        prefetch_factor=2,
    )
    yield from loader


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
) -> dict[str, torch.Tensor]:
    """Features (and logits, when the backbone has a head) of ``source`` items at ``indices``.

    Returns a dict with ``features`` (n, d) float32 and, for backbones with a classifier,
    ``logits`` (n, classes), in the order of ``indices``, on the backbone's device.
    Per-item measurements of the transform (e.g. ``ssim``) come as (n,) tensors on the CPU.
    ``stats`` (if given) counts forward batches and images. ``workers`` > 0 loads items in
    that many processes (for costly alterations); 0 uses one loader thread.
    ``on_upscaled(count, total)`` is called when ``count`` source images were smaller than
    the backbone's input size (preprocessing enlarged them).
    """
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    measures: dict[str, list[torch.Tensor]] = collections.defaultdict(list)
    done = 0
    if workers > 0:
        batches = _worker_batches(source, indices, backbone, transform, batch_size, workers)
    else:
        batches = _prefetched(source, indices, backbone, transform, batch_size, prefetch)
    for batch, extras in batches:
        size = len(batch)
        for name, values in extras.items():
            measures[name].append(values)
        feats, logs = backbone.forward(batch)
        features.append(feats)
        if logs is not None:
            logits.append(logs)
        done += size
        if stats is not None:
            stats["forward_batches"] += 1
            stats["forward_images"] += size
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
