"""What the cache tests compute: small known tensors, and a compute function that counts."""

from __future__ import annotations

import threading
import time

import torch


def known_tensors(value: float = 1.0) -> dict[str, torch.Tensor]:
    return {"features": torch.full((4, 3), value), "logits": torch.arange(8.0).reshape(4, 2)}


class Counting:
    """A compute function for ``FeatureCache.get`` that counts its calls (thread-safe) and
    takes ``delay`` seconds."""

    def __init__(self, value: float = 1.0, delay: float = 0.0) -> None:
        self.calls = 0
        self.value = value
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self) -> dict[str, torch.Tensor]:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        return known_tensors(self.value)
