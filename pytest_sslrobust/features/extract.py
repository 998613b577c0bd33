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

ItemTransform = Callable[[Item], np.ndarray]
ProgressCallback = Callable[[int, int], None]


def _load_batch(
    source: Source,
    indices: Sequence[int],
    backbone: Backbone,
    transform: ItemTransform | None,
) -> torch.Tensor:
    images = []
    for index in indices:
        item = source.load(int(index))
        images.append(item.image if transform is None else transform(item))
    batch = backbone.preprocessing.batch(images)
    return batch.pin_memory() if backbone.device.type == "cuda" else batch


def _prefetched(
    source: Source,
    indices: np.ndarray,
    backbone: Backbone,
    transform: ItemTransform | None,
    batch_size: int,
    depth: int,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (batch size, preprocessed batch) while the next batches load in a thread.

    Decoding, alteration and resizing run in the worker while the caller's forward pass
    runs; both release the GIL for their heavy parts. At most ``depth`` batches are
    waiting, so memory stays bounded whatever the dataset size.
    """
    chunks = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sslrobust-load") as pool:
        pending: list[Future[torch.Tensor]] = []
        next_chunk = 0
        for _ in range(len(chunks)):
            while next_chunk < len(chunks) and len(pending) < depth:
                pending.append(
                    pool.submit(_load_batch, source, chunks[next_chunk], backbone, transform)
                )
                next_chunk += 1
            future = pending.pop(0)
            batch = future.result()
            yield len(batch), batch


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
) -> dict[str, torch.Tensor]:
    """Features (and logits, when the backbone has a head) of ``source`` items at ``indices``.

    Returns a dict with ``features`` (n, d) float32 and, for backbones with a classifier,
    ``logits`` (n, classes), in the order of ``indices``, on the backbone's device.
    ``stats`` (if given) counts forward batches and images.
    """
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    done = 0
    for size, batch in _prefetched(source, indices, backbone, transform, batch_size, prefetch):
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
