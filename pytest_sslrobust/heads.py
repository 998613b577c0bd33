"""Linear heads as files: ``--sslrobust-head=PATH`` reads one, ``--sslrobust-save-probe=PATH``
writes the fitted probe in the same format.

The format is a safetensors file with ``weight`` (classes x feature dim) and ``bias``
(classes), float32, and the metadata key ``classes``: a JSON list of the class names the rows
predict, in row order (ImageNet wnids, or the dataset's class names). A released
linear-evaluation head converted to it reads the same way. Classes are matched to the test
data's by name, never by row index; the file's sha256 keys everything computed through it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from pytest_sslrobust.metrics.readouts import LinearProbe


class HeadError(ValueError):
    """A head file that cannot be read or does not fit the backbone or the data."""


@dataclasses.dataclass(frozen=True, eq=False)
class HeadFile:
    """A linear classifier read from ``path``: ``weight`` (K, d), ``bias`` (K,), the class
    name of each row, and the file's sha256."""

    path: Path
    weight: torch.Tensor
    bias: torch.Tensor
    classes: tuple[str, ...]
    sha256: str

    @classmethod
    def read(cls, path: Path) -> HeadFile:
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as handle:
                names = set(handle.keys())
                missing = sorted({"weight", "bias"} - names)
                if missing:
                    raise HeadError(
                        f"head {path}: no tensor {missing[0]!r} (has {', '.join(sorted(names))}); "
                        "a head file holds weight (classes x dim) and bias (classes)"
                    )
                weight, bias = handle.get_tensor("weight"), handle.get_tensor("bias")
                metadata = handle.metadata() or {}
        except (OSError, SafetensorError) as exc:
            raise HeadError(f"head {path}: cannot read it as safetensors ({exc})") from None
        if weight.ndim != 2 or bias.ndim != 1 or bias.shape[0] != weight.shape[0]:
            raise HeadError(
                f"head {path}: weight {tuple(weight.shape)} and bias {tuple(bias.shape)} do not "
                "make a linear layer (weight classes x dim, bias classes)"
            )
        try:
            classes = tuple(str(c) for c in json.loads(metadata["classes"]))
        except (KeyError, ValueError, TypeError):
            raise HeadError(
                f"head {path}: metadata 'classes' (a JSON list of the class name of each row) "
                "is missing or not a list"
            ) from None
        if len(classes) != weight.shape[0]:
            raise HeadError(f"head {path}: {weight.shape[0]} rows but {len(classes)} class names")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return cls(path, weight.float(), bias.float(), classes, digest)

    def probe(self, dim: int, test_classes: Sequence[str], spec: str) -> LinearProbe:
        """The head as a ``LinearProbe`` over features of width ``dim`` whose classes are the
        test data's label indices (rows matched by class name, sorted by label)."""
        from pytest_sslrobust.metrics.readouts import LinearProbe

        if self.weight.shape[1] != dim:
            raise HeadError(
                f"head {self.path} takes {self.weight.shape[1]}-dim features, but the backbone "
                f"gives {dim}: use the head trained on this backbone's pooled features"
            )
        position = {name: i for i, name in enumerate(test_classes)}
        unknown = [name for name in self.classes if name not in position]
        if unknown:
            shown = ", ".join(repr(n) for n in unknown[:5])
            raise HeadError(
                f"head {self.path} predicts {len(unknown)} class(es) that {spec} does not have "
                f"({shown}); classes are matched by name"
            )
        labels = np.asarray([position[name] for name in self.classes], dtype=np.int64)
        order = np.argsort(labels, kind="stable")
        return LinearProbe(
            classes=labels[order],
            mean=torch.zeros(dim),
            scale=torch.ones(dim),
            weight=self.weight[torch.as_tensor(order)],
            bias=self.bias[torch.as_tensor(order)],
            backend="file",
            params={"head": self.path.name, "head_sha256": self.sha256},
        )


def save_probe(path: Path, probe: LinearProbe, class_names: Sequence[str]) -> Path:
    """Write ``probe`` (standardisation folded in) as a head file; ``class_names`` names the
    data's label indices. Written to a temporary file and moved into place."""
    from safetensors.torch import save_file

    layer = probe.as_module(torch.float32)
    names = [str(class_names[int(label)]) for label in probe.classes]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tensors = {
        "weight": layer.weight.detach().cpu().contiguous(),
        "bias": layer.bias.detach().cpu().contiguous(),
    }
    save_file(tensors, str(temporary), metadata={"classes": json.dumps(names)})
    os.replace(temporary, path)
    return path


def head_params(head: HeadFile | None) -> dict[str, Any]:
    return {} if head is None else {"head_file": head.path.name, "head_sha256": head.sha256}
