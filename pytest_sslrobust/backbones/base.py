"""The Backbone value: a model in eval mode, its preprocessing and its fingerprint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pytest_sslrobust.data.base import stable_hash


class BackboneError(Exception):
    """A backbone cannot be built as specified; the message says what to pass instead."""


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Eval-time preprocessing, as timm's data config describes it.

    Images are resized so that their shorter side is ``resize_to`` (``input_size /
    crop_pct``), centre-cropped to ``input_size``, scaled to [0, 1] and normalised.
    """

    input_size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def resize_to(self) -> int:
        return int(np.floor(self.input_size / self.crop_pct))

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_data_config(cls, config: dict[str, Any], input_size: int | None) -> Preprocessing:
        size = input_size if input_size is not None else int(config["input_size"][-1])
        interpolation = str(config.get("interpolation", "bicubic"))
        if interpolation not in ("bilinear", "bicubic", "nearest"):
            interpolation = "bicubic"
        return cls(
            input_size=size,
            crop_pct=float(config.get("crop_pct", 0.875) or 1.0),
            interpolation=interpolation,
            mean=tuple(float(v) for v in config.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
            std=tuple(float(v) for v in config.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
        )

    def geometry(
        self, image: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Resize (shorter side to ``resize_to``) and centre-crop to the input size.

        uint8 HxWx3 in, uint8 SxSx3 out; a foreground mask follows the same geometry
        (nearest neighbour). Variants are applied after this step, at the resolution the
        model sees. An image already at the input size is returned as it is.
        """
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        size = [self.input_size, self.input_size]
        if image.shape[:2] == tuple(size):  # already what the model sees (see __call__)
            return image, mask
        tensor = torch.from_numpy(np.require(image, np.uint8, ["C", "W"])).permute(2, 0, 1)
        tensor = F.resize(
            tensor,
            [self.resize_to],
            interpolation=InterpolationMode(self.interpolation),
            antialias=True,
        )
        result = F.center_crop(tensor, size).permute(1, 2, 0).numpy()
        if mask is None:
            return result, None
        plane = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))[None]
        plane = F.resize(plane, [self.resize_to], interpolation=InterpolationMode.NEAREST)
        return result, F.center_crop(plane, size)[0].numpy() > 0

    def normalise(self, image: np.ndarray) -> torch.Tensor:
        """uint8 HxWx3 -> float32 3xHxW scaled to [0, 1] and normalised."""
        from torchvision.transforms.v2 import functional as F

        tensor = torch.from_numpy(np.require(image, np.uint8, ["C", "W"])).permute(2, 0, 1)
        tensor = tensor.to(torch.float32).div_(255.0)
        return F.normalize(tensor, list(self.mean), list(self.std))

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """uint8 HxWx3 -> normalised float32 3 x input_size x input_size.

        An image already at the input size (square) is only normalised, not resized and
        cropped again: altered images come out of ``geometry`` at that size, and released
        ImageNet-C files are 224x224 crops meant to be read as they are.
        """
        if image.shape[:2] != (self.input_size, self.input_size):
            image = self.geometry(image)[0]
        return self.normalise(image)

    def tensor(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 3xHxW on any device (a JPEG decoded on the GPU) -> normalised float32
        3 x input_size x input_size on that device: the same resize, crop and normalisation
        as :meth:`__call__`, done by the same torchvision functions on the tensor."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        size = [self.input_size, self.input_size]
        if tuple(image.shape[-2:]) != tuple(size):
            # Channels last in memory, as the numpy path hands its HxWx3 images to resize.
            image = image.permute(1, 2, 0).contiguous().permute(2, 0, 1)
            image = F.resize(
                image,
                [self.resize_to],
                interpolation=InterpolationMode(self.interpolation),
                antialias=True,
            )
            image = F.center_crop(image, size)
        image = image.to(torch.float32).div_(255.0)
        return F.normalize(image, list(self.mean), list(self.std))

    @property
    def fill(self) -> tuple[int, int, int]:
        """The uint8 colour that normalises to zero (the mean), for masked-out pixels."""
        return tuple(int(round(m * 255)) for m in self.mean)  # type: ignore[return-value]

    def batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.stack([self(image) for image in images])


# Settings whose effect the fingerprint already sees elsewhere: the head's width in the
# tensors, the preprocessing in its own record, the image size in both.
_SEEN_ELSEWHERE = frozenset({"num_classes", "pretrained_cfg_overlay", "img_size"})


def architecture_key(architecture: str, settings: Sequence[tuple[str, object]]) -> str:
    """The architecture as the fingerprint sees it: timm name without its weight tag, plus
    the constructor settings that change the network without changing tensor shapes
    (``num_heads``, ``output_stride``...)."""
    name = architecture.split(".")[0]
    extra = sorted(f"{k}={v!r}" for k, v in settings if k not in _SEEN_ELSEWHERE)
    return name + (":" + ",".join(extra) if extra else "")


def state_dict_digest(model: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}\0{data.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Embedding(torch.nn.Module):
    """Normalised images -> pooled features (n, d), gradients allowed.

    timm models are read through ``forward_features`` / ``forward_head(pre_logits=True)``,
    the pooled representation a linear probe would see; other modules are called directly
    and their output is taken as the features.
    """

    def __init__(self, model: torch.nn.Module, name: str, *, timm_api: bool) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.timm_api = timm_api

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.timm_api:
            tokens = self.model.forward_features(batch)
            features = self.model.forward_head(tokens, pre_logits=True)
        else:
            features = self.model(batch)
        if features.ndim != 2:
            raise BackboneError(
                f"backbone {self.name!r} returned features of shape {tuple(features.shape)}; "
                "expected (batch, dim): make the model pool its output"
            )
        return features  # type: ignore[no-any-return]


class Backbone:
    """A vision model that maps uint8 images to pooled features (n, d) and maybe logits.

    Features come through ``embedding_module()`` (see ``Embedding``), logits through the
    timm classifier on them.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        spec: str,
        name: str,
        architecture: str,
        preprocessing: Preprocessing,
        weights: str,
        paradigm: str = "unknown",
        label_space: str | None = None,
        notes: Sequence[str] = (),
        settings: Sequence[tuple[str, object]] = (),
        layout: str | None = None,
    ) -> None:
        self.model = model.eval()
        self.spec = spec
        self.name = name
        self.architecture = architecture
        self.preprocessing = preprocessing
        self.weights = weights
        self.paradigm = paradigm
        self.notes = tuple(notes)
        self.settings = tuple(settings)
        self.layout = layout
        self.device = torch.device("cpu")
        self._timm_api = hasattr(model, "forward_features") and hasattr(model, "forward_head")
        self.num_classes = int(getattr(model, "num_classes", 0) or 0) if self._timm_api else 0
        self.label_space = label_space if self.num_classes else None
        self.fingerprint = stable_hash(
            "backbone",
            architecture_key(architecture, self.settings),
            state_dict_digest(model),
            json.dumps(preprocessing.describe(), sort_keys=True),
        )

    @property
    def has_head(self) -> bool:
        return self.num_classes > 0

    def to(self, device: torch.device | str) -> Backbone:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "name": self.name,
            "architecture": self.architecture,
            "weights": self.weights,
            "paradigm": self.paradigm,
            "settings": {key: repr(value) for key, value in self.settings},
            "checkpoint_layout": self.layout,
            "fingerprint": self.fingerprint,
            "num_classes": self.num_classes,
            "label_space": self.label_space,
            "preprocessing": self.preprocessing.describe(),
        }

    def embedding_module(self) -> Embedding:
        """The model as a differentiable module: normalised batch -> pooled features (n, d).

        The one path through the network: ``forward`` runs it without gradients, attacks
        and attribution maps take gradients through it. The model is shared, not copied.
        """
        return Embedding(self.model, self.name, timm_api=self._timm_api)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Preprocessed batch on any device -> (features, logits or None), float32."""
        # Asynchronous only from pinned memory (the loader pins batches for a CUDA device);
        # from pageable memory a non-blocking copy is synchronous anyway.
        pinned = self.device.type == "cuda" and batch.device.type == "cpu" and batch.is_pinned()
        batch = batch.to(self.device, non_blocking=pinned)
        with _autocast(self.device):
            features = self.embedding_module()(batch)
            logits = self.model.get_classifier()(features) if self.num_classes else None
        return features.float(), None if logits is None else logits.float()

    def embed(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 HxWx3 images -> pooled features (n, d) on the backbone's device."""
        return self.forward(self.preprocessing.batch(images))[0]

    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, {self.architecture}, {self.fingerprint[:12]})"


def _autocast(device: torch.device) -> Any:
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def precision(device: torch.device) -> str:
    """What arithmetic the forward pass uses on ``device`` (part of the cache key)."""
    if device.type == "cuda":
        return "autocast-bf16" if torch.cuda.is_bf16_supported() else "autocast-fp16"
    return "fp32"
