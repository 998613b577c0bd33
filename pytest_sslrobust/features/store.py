"""Features of (backbone, dataset split, variant), keyed on everything that changes them."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from pytest_sslrobust.backbones.base import Backbone, precision
from pytest_sslrobust.data.base import (
    MIN_EVALUATED,
    DataError,
    Dataset,
    IndexedSource,
    Item,
    Source,
    per_class_indices,
    stable_hash,
    subset_indices,
    warn_once,
)
from pytest_sslrobust.features.cache import FeatureCache, cache_key
from pytest_sslrobust.features.device_stage import DeviceCorruption, on_device
from pytest_sslrobust.features.extract import ItemTransform, ProgressCallback, extract
from pytest_sslrobust.features.provenance import Provenance, Subset

ORIGINAL = "original"


class Executor(Protocol):
    """Computes a planned feature set somewhere else (a Ray cluster) and returns it whole."""

    def extract(self, store: FeatureStore, plan: ExtractionPlan) -> dict[str, torch.Tensor]: ...

    def extract_many(
        self, store: FeatureStore, plans: Sequence[ExtractionPlan]
    ) -> Iterator[tuple[ExtractionPlan, dict[str, torch.Tensor]]]: ...

    def release(self, store: FeatureStore, plan: ExtractionPlan) -> int: ...


@runtime_checkable
class VariantLike(Protocol):
    """What the store needs of an alteration: a readable id and a seeded ``apply``.

    Optional: ``params`` (recorded and keyed), ``raw`` (true to receive the item before
    the model's resize and crop) and ``bind(context)`` (see ``VariantContext``).
    """

    @property
    def id(self) -> str: ...

    def apply(self, item: Item, seed: int) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureSet:
    """Features of one split under one variant, with the protocol that produced them.

    The store gives ``provenance``, the typed record, and ``protocol`` is derived from it
    (the plain mapping users and outputs read); a hand-made set may give only ``protocol``.
    """

    features: torch.Tensor
    logits: torch.Tensor | None
    labels: torch.Tensor
    ids: tuple[str, ...]
    split: str
    variant: str
    key: str
    protocol: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    ssim: torch.Tensor | None = None
    provenance: Provenance | None = None

    def __post_init__(self) -> None:
        if self.provenance is not None:
            derived = self.provenance.to_dict()
            # dataclasses.replace passes both back; only a contradicting pair is refused.
            if self.protocol and dict(self.protocol) != derived:
                raise TypeError("give a FeatureSet its provenance or its protocol, not both")
            object.__setattr__(self, "protocol", derived)

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass(frozen=True, eq=False)
class ExtractionPlan:
    """One feature set before it is computed (see :meth:`FeatureStore.plan`)."""

    variant: Any  # as asked for: an id or a variant object
    split: str
    per_class: int | None
    variant_id: str
    chosen: IndexedSource
    source: Source
    indices: np.ndarray
    transform: ItemTransform | None
    provenance: Provenance
    key: str
    label: str
    stage: tuple[str, int] | None = None  # (corruption, severity) applied on the device
    seeds: tuple[int, ...] = ()  # the items' seeds, for the device stage

    def __len__(self) -> int:
        return len(self.indices)

    def extract(
        self,
        store: FeatureStore,
        start: int = 0,
        stop: int | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> dict[str, torch.Tensor]:
        """Features of the plan's items at positions ``start:stop`` (all by default), in
        ``store``'s batches: a range that starts on a batch boundary is computed in the same
        batches as the whole set, so its rows are the whole set's rows bit for bit."""
        return extract(
            store.backbone,
            self.source,
            self.indices[start:stop],
            transform=self.transform,
            batch_size=store.batch_size,
            progress=progress,
            stats=store.cache.stats,
            workers=store.workers,
            decode=store.decode if self.transform is None else "cpu",
            on_upscaled=store._warn_upscaled,
            stage=(
                DeviceCorruption(*self.stage, self.seeds[start:stop], store.backbone.preprocessing)
                if self.stage
                else None
            ),
        )


def item_seed(seed: int, item_id: str, variant_id: str) -> int:
    """The seed for one item under one variant: independent of order, batch and worker."""
    return int(stable_hash("item-seed", seed, item_id, variant_id)[:16], 16)


def feature_key(
    provenance: Provenance,
    device: torch.device,
    decode: str = "cpu",
    corrupted_on: str | None = None,
) -> str:
    """The cache key of the features ``provenance`` describes, computed on ``device``
    (``decode="gpu"``: JPEGs decoded by torchvision on the device, whose pixels may differ;
    ``corrupted_on="device"``: a torch corruption run on a GPU, whose bytes may differ from
    the CPU's). Keys of the default paths are those of earlier versions."""
    extra: dict[str, str] = {"decode": decode} if decode != "cpu" else {}
    if corrupted_on is not None:
        extra["corrupted_on"] = corrupted_on
    return cache_key({**provenance.to_dict(), "device_type": device.type, **extra})


@functools.lru_cache(maxsize=1)
def library_versions() -> tuple[tuple[str, str], ...]:
    """Versions of the libraries whose behaviour changes feature bytes."""
    names = ("pytest-sslrobust", "torch", "torchvision", "timm", "numpy", "pillow")
    versions = []
    for name in names:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, "absent"))
    return tuple(versions)


class FeatureStore:
    """Get features of a backbone on a dataset, computing each set once across the run.

    Args:
        backbone: the model, already on its device.
        dataset: where items come from.
        cache: the shared two-tier cache.
        seed: global seed (subsets and per-item alteration seeds derive from it).
        max_images: size of the stratified subset per split, or None for all.
        batch_size: images per forward pass.
        progress: makes a progress callback for a label, or None for silence.
        workers: loader processes (0: one loader thread).
        decode: ``"gpu"`` decodes the JPEG files of unaltered sets on the backbone's device
            (altered items are altered as numpy images on the CPU, so decoded there).
        segmenter: ``module:callable`` giving foreground masks when items have none.
        corruption_protocol: how corruption names given as strings are applied.
        executor: computes missing sets elsewhere (``--sslrobust-executor=ray``); None
            extracts in this process.
        corrupt_on_device: torch-backend corruptions applied to whole batches on the
            backbone's device inside extraction (True), per item in the loader (False), or
            on CUDA only (None, the default).
    """

    def __init__(
        self,
        backbone: Backbone,
        dataset: Dataset,
        cache: FeatureCache,
        *,
        seed: int = 0,
        max_images: int | None = None,
        batch_size: int = 32,
        progress: Callable[[str], ProgressCallback] | None = None,
        workers: int = 0,
        segmenter: str | None = None,
        corruption_protocol: str = "on-the-fly",
        executor: Executor | None = None,
        decode: str = "cpu",
        corrupt_on_device: bool | None = None,
    ) -> None:
        self.backbone = backbone
        self.dataset = dataset
        self.cache = cache
        self.seed = seed
        self.max_images = max_images
        self.batch_size = batch_size
        self.progress = progress
        self.workers = workers
        self.segmenter = segmenter
        self.corruption_protocol = corruption_protocol
        self.executor = executor
        self.corrupt_on_device = corrupt_on_device
        self.decode = decode
        # Fitted readouts (probes, kNN banks) by kind, shared by every test of the run.
        self.readouts: dict[str, Any] = {}

    def _base_source(self, split: str, variant: str) -> Source:
        if split in self.dataset.splits:
            return self.dataset.splits[split]
        if variant in self.dataset.released and split in self.dataset.released[variant]:
            return self.dataset.released[variant][split]
        return self.dataset.split(split)

    def _warn_upscaled(self, count: int, total: int) -> None:
        size = self.backbone.preprocessing.input_size
        warn_once(
            ("upscaled", self.dataset.spec, str(size)),
            f"sslrobust: {count} of {total} images of {self.dataset.spec!r} are smaller than "
            f"{self.backbone.name}'s {size} px input and were upscaled to it (counted in the "
            "first set computed); a study's numbers at another resolution may not compare",
        )

    def selection(
        self, split: str, variant: str = ORIGINAL, per_class: int | None = None
    ) -> IndexedSource:
        """The deterministic, stratified subset of ``split`` this run evaluates (with
        ``per_class``: at most that many images of each class, for a readout's training
        split, whatever ``--sslrobust-max-images`` says)."""
        base = self._base_source(split, variant)
        spec = self.dataset.spec
        if len(base) == 0:
            sizes = ", ".join(
                f"{name} {len(source)}" for name, source in self.dataset.splits.items()
            )
            raise DataError(
                f"dataset {spec!r}: the {split!r} split holds no images (splits: {sizes}); "
                "without split folders each class keeps its first image for training, so a "
                f"class needs 2 or more images to reach {split!r}: add images, or give the "
                "folder train/ and test/ subfolders"
            )
        if per_class is not None:
            picked = per_class_indices(base.labels, base.ids, per_class, self.seed)
            return IndexedSource(base, picked)
        chosen = IndexedSource(
            base, subset_indices(base.labels, base.ids, self.max_images, self.seed)
        )
        if len(chosen) < MIN_EVALUATED:
            cause = (
                f"--sslrobust-max-images={self.max_images}"
                if self.max_images is not None and len(base) > len(chosen)
                else f"the split has {len(base)}"
            )
            warn_once(
                ("evaluated", spec, split),
                f"sslrobust: only {len(chosen)} {split!r} images of {spec!r} are evaluated "
                f"({cause}); intervals, CKA/CCA and accuracies on fewer than {MIN_EVALUATED} "
                "images are too unstable to gate on",
            )
        return chosen

    def get(
        self,
        variant: str | VariantLike = ORIGINAL,
        split: str = "test",
        *,
        per_class: int | None = None,
    ) -> FeatureSet:
        """Features of ``split`` under ``variant``.

        ``variant`` is ``"original"``; a variant id (``"gaussian_noise-s3"``,
        ``"center-r0.50"``, ``"foreground"``, ``"mixed_rand"``), read from the dataset's
        released files when it has them and made on the fly otherwise; or a variant object.
        Altered sets carry ``ssim``, each item's SSIM to its clean image. ``per_class`` takes
        at most that many images of each class instead of the run's subset (readouts'
        training data, ``--sslrobust-train-per-class``); it is part of the provenance.
        """
        plan = self.plan(variant, split, per_class=per_class)
        chosen = plan.chosen

        def compute() -> dict[str, torch.Tensor]:
            if self.executor is not None:
                return self.executor.extract(self, plan)
            return plan.extract(self, progress=self.progress(plan.label) if self.progress else None)

        tensors = self.cache.get(
            plan.key, compute, describe=plan.provenance.to_dict(), device=self.backbone.device
        )
        if self.executor is not None:
            self.executor.release(self, plan)
        return FeatureSet(
            features=tensors["features"],
            logits=tensors.get("logits"),
            labels=torch.as_tensor(chosen.labels, dtype=torch.int64),
            ids=chosen.ids,
            split=split,
            variant=plan.variant_id,
            key=plan.key,
            ssim=tensors.get("ssim"),
            provenance=plan.provenance,
        )

    def prefetch(self, variants: Sequence[str | VariantLike], split: str = "test") -> int:
        """Compute the sets of ``variants`` on ``split`` that the cache lacks, all at once,
        when an executor computes elsewhere (a sweep's units all in flight, so the actors
        never wait for the controller to ask for the next set); return how many were
        computed. In process it does nothing: :meth:`get` computes each set when asked."""
        if self.executor is None:
            return 0
        plans: dict[str, ExtractionPlan] = {}
        for variant in variants:
            plan = self.plan(variant, split)
            if plan.key not in plans and not self.cache.contains(plan.key):
                plans[plan.key] = plan
        if not plans:
            return 0
        computed = self.executor.extract_many(self, list(plans.values()))
        for plan, tensors in computed:
            self.cache.get(
                plan.key,
                lambda tensors=tensors: tensors,
                describe=plan.provenance.to_dict(),
                device=self.backbone.device,
            )
            self.executor.release(self, plan)
        return len(plans)

    def plan(
        self,
        variant: str | VariantLike = ORIGINAL,
        split: str = "test",
        *,
        per_class: int | None = None,
    ) -> ExtractionPlan:
        """What :meth:`get` would compute for ``variant`` on ``split``: the items, the
        alteration, the provenance and the cache key, without computing anything. A Ray
        actor rebuilds the same plan from the same settings and extracts a range of it."""
        variant_id, source, transform, params, origin, bound = self._resolve(variant, split)
        chosen = self.selection(split, variant_id, per_class=per_class)
        if source is None:
            source, indices = chosen.base, chosen.indices
        else:
            position = source.index_of()
            missing = [item_id for item_id in chosen.ids if item_id not in position]
            if missing:
                raise DataError(
                    f"variant {variant_id!r} of {self.dataset.spec!r} lacks {len(missing)} "
                    f"of the selected {split} items (first: {missing[:3]}); the released "
                    "files must cover every clean image"
                )
            indices = np.asarray([position[i] for i in chosen.ids], dtype=np.int64)
        provenance = Provenance(
            data=self.dataset.spec,
            dataset_fingerprint=self.dataset.fingerprint,
            split=split,
            variant=variant_id,
            variant_params=params,
            origin=origin,
            subset=Subset(
                max_images=None if per_class is not None else self.max_images,
                seed=self.seed,
                n=len(chosen),
                per_class=per_class,
            ),
            ids_digest=stable_hash(*chosen.ids),
            backbone=self.backbone.name,
            backbone_fingerprint=self.backbone.fingerprint,
            preprocessing=self.backbone.preprocessing.describe(),
            precision=precision(self.backbone.device),
            seed=self.seed,
            versions=dict(library_versions()),
            image_size=self.backbone.preprocessing.input_size,
        )
        stage = None
        if bound is not None and on_device(bound, self.backbone.device, self.corrupt_on_device):
            # The loader gives clean images at the model's geometry; extraction corrupts,
            # measures and normalises each batch on the device (features/device_stage.py).
            stage = (bound.name, bound.severity)
            transform = self._clean_transform
        return ExtractionPlan(
            variant=variant,
            split=split,
            per_class=per_class,
            variant_id=variant_id,
            chosen=chosen,
            source=source,
            indices=indices,
            transform=transform,
            provenance=provenance,
            key=feature_key(
                provenance,
                self.backbone.device,
                self.decode if transform is None else "cpu",
                corrupted_on="device" if stage and self.backbone.device.type != "cpu" else None,
            ),
            label=f"{self.backbone.name} / {split} / {variant_id}",
            stage=stage,
            seeds=tuple(item_seed(self.seed, i, variant_id) for i in chosen.ids) if stage else (),
        )

    def _clean_transform(self, item: Item) -> tuple[np.ndarray, dict[str, float]]:
        return self.clean_geometry(item).image, {}

    def _resolve(
        self, variant: str | VariantLike, split: str
    ) -> tuple[str, Source | None, ItemTransform | None, dict[str, Any], str, Any]:
        if isinstance(variant, str):
            if variant == ORIGINAL:
                return ORIGINAL, None, None, {}, "clean", None
            if variant in self.dataset.released:
                released = self.dataset.released_split(variant, split)
                return variant, released, None, {}, "released files", None
            from pytest_sslrobust.variants import parse_variant

            variant = parse_variant(
                variant, protocol=self.corruption_protocol, segmenter=self.segmenter
            )
        if not isinstance(variant, VariantLike):
            raise TypeError(
                f"expected a variant id or an object with .id and .apply(item, seed), got "
                f"{type(variant).__name__}"
            )
        bound = self._bind(variant, split)
        seed = self.seed
        variant_id = bound.id
        preprocessing = self.backbone.preprocessing
        raw = bool(getattr(bound, "raw", False))

        params = dict(getattr(bound, "params", {}) or {})
        # Everything the altered pixels depend on besides the item: another backbone with
        # the same geometry and fill reuses them (ImageMemo) instead of altering again.
        memo = stable_hash(
            self.dataset.fingerprint,
            split,
            variant_id,
            json.dumps(params, sort_keys=True, default=str),
            seed,
            json.dumps(preprocessing.describe(), sort_keys=True),
            preprocessing.fill,
        )
        images = self.cache.images

        def transform(item: Item) -> tuple[np.ndarray, dict[str, float]]:
            hit = images.get((memo, item.id))
            if hit is not None:
                return hit[0], dict(hit[1])
            clean = self.clean_geometry(item)
            altered = bound.apply(item if raw else clean, item_seed(seed, item.id, variant_id))
            if altered.shape[:2] != (preprocessing.input_size,) * 2:
                altered = preprocessing.geometry(altered)[0]
            extras = {"ssim": _ssim(clean.image, altered)}
            images.put((memo, item.id), (altered, extras))
            return altered, extras

        return variant_id, None, transform, params, "on-the-fly", bound

    def altered_image(
        self, item: Item, variant: str | VariantLike = ORIGINAL, split: str = "test"
    ) -> np.ndarray:
        """The uint8 image the model sees for ``item`` under ``variant`` (for previews)."""
        if variant == ORIGINAL:
            return self.clean_geometry(item).image
        variant_id, source, transform, _, _, _ = self._resolve(variant, split)
        if source is not None:
            return self.clean_geometry(source.load(source.index_of()[item.id])).image
        assert transform is not None
        return transform(item)[0]

    def preview_images(
        self, variants: Sequence[str | VariantLike], split: str = "test", index: int = 0
    ) -> list[tuple[str, np.ndarray]]:
        """(variant id, image the model sees) for item ``index`` of the split's selection,
        clean first; ids as the features know them (``center`` -> ``center-r0.50``)."""
        from pytest_sslrobust.variants import parse_variant

        item = self.selection(split).load(index)
        images = [(ORIGINAL, self.altered_image(item, ORIGINAL, split))]
        for variant in variants:
            if (
                isinstance(variant, str)
                and variant != ORIGINAL
                and variant not in self.dataset.released
            ):
                variant = parse_variant(
                    variant, protocol=self.corruption_protocol, segmenter=self.segmenter
                )
            images.append(
                (str(getattr(variant, "id", variant)), self.altered_image(item, variant, split))
            )
        return images

    def preview(
        self,
        variants: Sequence[str | VariantLike],
        split: str = "test",
        index: int = 0,
        columns: int = 8,
    ) -> tuple[np.ndarray, list[str]]:
        """A grid of item ``index`` of the split's selection, clean and under each variant."""
        from pytest_sslrobust.variants.preview import tile

        pairs = self.preview_images(variants, split, index)
        return tile([image for _, image in pairs], columns), [variant_id for variant_id, _ in pairs]

    def clean_geometry(self, item: Item) -> Item:
        """``item`` resized and cropped as the model sees it (mask too), before any variant."""
        image, mask = self.backbone.preprocessing.geometry(item.image, item.mask)
        return Item(image, item.label, item.id, mask)

    def _bind(self, variant: VariantLike, split: str) -> VariantLike:
        bind = getattr(variant, "bind", None)
        if bind is None:
            return variant
        from pytest_sslrobust.variants.base import VariantContext

        context = VariantContext(
            fill=self.backbone.preprocessing.fill,
            source=self._base_source(split, ORIGINAL),
            geometry=self.clean_geometry,
        )
        return bind(context)  # type: ignore[no-any-return]


def _ssim(clean: np.ndarray, altered: np.ndarray) -> float:
    """Structural similarity of two uint8 RGB images (scikit-image's implementation)."""
    from skimage.metrics import structural_similarity

    if clean.shape != altered.shape or min(clean.shape[:2]) < 7:
        return float("nan")
    return float(structural_similarity(clean, altered, channel_axis=2, data_range=255))
