"""Attribution maps of a backbone on a dataset variant, computed once and cached like features."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pytest_sslrobust.data.base import stable_hash
from pytest_sslrobust.features.derived import derived_entry, positions

if TYPE_CHECKING:
    from pytest_sslrobust.evaluate import Readout
    from pytest_sslrobust.features.store import FeatureStore, VariantLike

# Readouts a map can explain: a classifier (the model's head or the linear probe, for the
# true class of each image) or, label-free, the similarity of the embedding to the clean one.
TARGETS = ("auto", "head", "linear-probe", "similarity")
DEFAULT_IMAGES = 64


@dataclasses.dataclass(frozen=True)
class AttributionSet:
    """Attribution maps of some images of one split under one variant.

    ``maps`` is float32 (n, S, S) at the model's input size, non-negative, each summing to 1;
    ``masks`` the images' foreground masks at the same geometry (None when the data has
    none); ``degenerate`` counts maps that were all zero (no evidence at all) and were made
    uniform. ``protocol`` records how they were made (it enters the cache key).
    """

    maps: torch.Tensor
    masks: torch.Tensor | None
    ids: tuple[str, ...]
    labels: torch.Tensor
    variant: str
    split: str
    method: str
    target: str
    degenerate: int
    key: str
    protocol: Mapping[str, Any]

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    def foreground_focus(self) -> np.ndarray:
        """Per image, the share of the map's mass on the foreground (needs masks)."""
        from pytest_sslrobust.attribution.measures import foreground_focus

        if self.masks is None:
            raise ValueError(
                f"foreground focus needs foreground masks, which {self.protocol['data']} does "
                "not have: use data with masks or --sslrobust-segmenter"
            )
        return foreground_focus(self.maps, self.masks)

    def chance_focus(self) -> np.ndarray:
        """Per image, the foreground focus of a uniform map: the mask's area fraction."""
        if self.masks is None:
            raise ValueError(f"{self.protocol['data']} has no foreground masks")
        return self.masks.flatten(1).double().mean(dim=1).numpy()

    def entropy(self) -> np.ndarray:
        """Per image, the map's entropy over log(pixels): 1 uniform, 0 one pixel."""
        from pytest_sslrobust.attribution.measures import entropy

        return entropy(self.maps)

    def shift_from(self, clean: AttributionSet, *, top_k: float = 0.1) -> dict[str, np.ndarray]:
        """Per image, how far this set's maps moved from ``clean``'s maps of the same images:
        ``rank_shift`` (1 - Spearman correlation) and ``topk_overlap``."""
        from pytest_sslrobust.attribution.measures import focus_shift

        if clean.ids != self.ids:
            raise ValueError(
                f"focus shift compares maps of the same images, but {self.variant!r} and "
                f"{clean.variant!r} hold different items; compute both with the same split "
                "and images="
            )
        return focus_shift(clean.maps, self.maps, top_k=top_k)


def attribution_set(
    store: FeatureStore,
    readout: Readout | None,
    variant: str | VariantLike = "original",
    split: str = "test",
    *,
    method: str = "gradcam",
    target: str = "auto",
    images: int | None = DEFAULT_IMAGES,
) -> AttributionSet:
    """Maps of ``images`` items of ``split`` (spread evenly over the run's selection) under
    ``variant``, explaining ``target``; cached under the features' key, the method, the
    target (with the probe's weights) and the items.

    ``readout`` is the fitted readout whose layer a ``head`` / ``linear-probe`` target
    follows (``auto`` resolves as readouts do); ``similarity`` needs none.
    """
    from pytest_sslrobust.attribution.maps import METHODS, Target, attribution_maps

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; expected one of {METHODS}")
    if target not in TARGETS:
        raise ValueError(f"unknown attribution target {target!r}; expected one of {TARGETS}")
    features = store.get(variant, split=split)
    chosen = store.selection(split, features.variant)
    picked = positions(len(chosen), images)
    ids = tuple(chosen.ids[int(p)] for p in picked)
    labels = features.labels[torch.as_tensor(picked)]
    if target == "similarity":
        clean = store.get("original", split=split).features[torch.as_tensor(picked)]
        # "projection" (not cosine): the clean image's own map needs a non-zero gradient.
        explain = Target.similarity(
            clean.detach().to(store.backbone.device).float(), measure="projection"
        )
        target_kind = "similarity"
    else:
        if readout is None:
            raise ValueError(f"target {target!r} needs the fitted readout")
        head, _ = readout.head_module()
        columns = readout.columns(labels.numpy())
        explain = Target.classes(
            head.to(store.backbone.device), torch.as_tensor(columns, device=store.backbone.device)
        )
        target_kind = readout.kind
    made = {
        "method": method,
        "target": explain.describe(),
        "readout": target_kind,
        "images": len(ids),
        "ids_digest": stable_hash(*ids),
    }
    protocol = {**features.protocol, "attribution": made}

    def compute() -> dict[str, torch.Tensor]:
        shown, masks = [], []
        for p in picked:
            item = chosen.load(int(p))
            shown.append(store.altered_image(item, features.variant, split))
            masks.append(store.clean_geometry(item).mask)
        batch = store.backbone.preprocessing.batch(shown).to(store.backbone.device)
        result = attribution_maps(
            store.backbone, batch, explain, method=method, batch_size=store.batch_size
        )
        tensors = {
            "maps": result.maps.detach().float().cpu().contiguous(),
            "degenerate": torch.tensor([result.degenerate], dtype=torch.int64),
        }
        if all(m is not None for m in masks):
            tensors["masks"] = torch.from_numpy(np.stack(masks).astype(np.uint8))
        return tensors

    key, tensors = derived_entry(
        store.cache,
        {"attribution_of": features},
        {"attribution": made},
        compute,
        describe=protocol,
        device=torch.device("cpu"),
    )
    masks = tensors.get("masks")
    return AttributionSet(
        maps=tensors["maps"],
        masks=None if masks is None else masks.bool(),
        ids=ids,
        labels=labels.cpu(),
        variant=features.variant,
        split=split,
        method=method,
        target=target_kind,
        degenerate=int(tensors["degenerate"][0]),
        key=key,
        protocol=protocol,
    )


def overlay(
    image: np.ndarray, attribution: torch.Tensor | np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """A uint8 picture of ``attribution`` (H x W) laid over ``image`` (H x W x 3 uint8): the map
    scaled to its own maximum and coloured with matplotlib's ``inferno``."""
    from matplotlib import colormaps

    heat = np.asarray(attribution.detach().cpu() if hasattr(attribution, "detach") else attribution)
    heat = heat.astype(np.float64)
    if heat.shape != image.shape[:2]:
        raise ValueError(f"map of shape {heat.shape} does not match image {image.shape[:2]}")
    peak = heat.max()
    scaled = heat / peak if peak > 0 else heat
    coloured = colormaps["inferno"](scaled)[..., :3] * 255.0
    blended = (1 - alpha) * image.astype(np.float64) + alpha * coloured
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
