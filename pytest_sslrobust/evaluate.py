"""Readouts on cached features: predictions per variant and corruption error tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pytest_sslrobust.classmaps import label_map
from pytest_sslrobust.features.derived import derived_entry
from pytest_sslrobust.features.provenance import Provenance
from pytest_sslrobust.heads import HeadFile, head_params
from pytest_sslrobust.vocabulary import corruption_id

if TYPE_CHECKING:
    from pytest_sslrobust.features.store import FeatureSet, FeatureStore
    from pytest_sslrobust.metrics.corruption import CorruptionErrors

READOUTS = ("auto", "head", "linear-probe", "knn")


def head_applies(backbone: Any, dataset: Any) -> bool:
    """Whether the backbone's classifier head predicts the dataset's labels: the same label
    space, or one that maps onto it (ImageNet-1k onto ImageNet-9's superclasses)."""
    if not (backbone.has_head and backbone.label_space is not None):
        return False
    same = dataset.label_space == backbone.label_space
    return bool(same or label_map(backbone.label_space, dataset.label_space) is not None)


class ColumnSubset(torch.nn.Module):
    """Head logits -> the columns of the data's classes (ImageNet-R/A's 200)."""

    def __init__(self, columns: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("columns", torch.as_tensor(list(columns), dtype=torch.int64))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, self.columns]


class SuperclassLogits(torch.nn.Module):
    """Head logits -> one logit per dataset class (logsumexp over the head classes that make
    it), so gradients through a mapped head target the superclass, not a head class."""

    def __init__(self, mapping: tuple[int, ...]) -> None:
        super().__init__()
        classes = max(mapping) + 1
        member = torch.full((classes, len(mapping)), float("-inf"))
        for column, target in enumerate(mapping):
            if target >= 0:
                member[target, column] = 0.0
        self.register_buffer("member", member)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        member = self.member.to(logits.dtype)
        return torch.logsumexp(logits[:, None, :] + member[None], dim=2)


class Predictions(np.ndarray):
    """Predicted class indices that remember how they were made (``protocol``): the
    features' protocol plus the readout. ``sslrobust.predictions()`` returns these, so an
    accuracy contract on them records a protocol and its baseline comparison can refuse a
    different seed, subset or readout."""

    protocol: dict[str, Any]

    @classmethod
    def of(cls, values: np.ndarray, protocol: dict[str, Any]) -> Predictions:
        made = np.asarray(values).view(cls)
        made.protocol = protocol
        return made

    def __array_finalize__(self, obj: Any) -> None:
        self.protocol = getattr(obj, "protocol", {})


class Readout:
    """Turns a feature set into predicted labels: the model's head, or a probe/kNN fitted
    once on the clean features of the training split.

    ``auto`` uses the head when the dataset's labels are the head's classes (ImageNet
    folders with an ImageNet classifier), otherwise a linear probe.
    """

    def __init__(
        self,
        store: FeatureStore,
        kind: str = "auto",
        *,
        train_split: str = "train",
        probe_c: float = 1.0,
        knn_k: int = 20,
        train_store: FeatureStore | None = None,
        train_per_class: int | None = None,
        head_file: HeadFile | None = None,
        save_probe: Path | None = None,
    ) -> None:
        if kind not in READOUTS:
            raise ValueError(
                f"Expected readout to be one of {', '.join(READOUTS)}, but got {kind!r}"
            )
        backbone, dataset = store.backbone, store.dataset
        if head_file is not None and kind in ("auto", "linear-probe"):
            kind = "linear-probe"  # the given head is the probe: nothing is fitted
        elif kind == "auto":
            kind = "head" if head_applies(backbone, dataset) else "linear-probe"
        if kind == "head" and not head_applies(backbone, dataset):
            raise ValueError(
                f"readout 'head' needs the dataset's labels to be the classes of "
                f"{backbone.name}'s head ({backbone.label_space}), but {dataset.spec} has "
                f"{dataset.label_space or 'its own classes'}: use linear-probe or knn"
            )
        self.store = store
        self.kind = kind
        self.train_split = train_split
        # A head whose classes map onto the data's (ImageNet-1k -> ImageNet-9), or None.
        self.label_map = (
            label_map(backbone.label_space, dataset.label_space) if kind == "head" else None
        )
        # Where probes and kNN are fitted: the test data's own store, or that of the run's
        # --sslrobust-train-data (the same backbone on other labelled data).
        self.train_store = train_store if train_store is not None else store
        self.train_per_class = train_per_class
        self.head_file = head_file if kind == "linear-probe" else None
        self.save_probe = save_probe if self.head_file is None else None
        self._saved = False
        self.params: dict[str, Any] = {"readout": kind}
        if self.label_map is not None:
            self.params["label_map"] = f"{backbone.label_space}->{dataset.label_space}"
        # ImageNet-R/A: the head predicts among the data's 200 classes only.
        self.head_subset = getattr(dataset, "head_subset", None) if kind == "head" else None
        if self.head_subset is not None:
            from pytest_sslrobust.data.base import stable_hash

            self.params["head_subset"] = (
                f"{len(self.head_subset)} classes ({stable_hash(*self.head_subset)[:12]})"
            )
        self._probe: Any = None
        self._train: FeatureSet | None = None
        if self.head_file is not None:
            # The file's digest keys everything computed through it.
            self.params.update(head_params(self.head_file))
        elif kind == "linear-probe":
            self.params.update(train_split=train_split, C=probe_c)
        if kind == "knn":
            self.params.update(train_split=train_split, k=knn_k, temperature=0.07)
        if kind in ("linear-probe", "knn") and self.head_file is None:
            # Recorded only when used, so readouts fitted as before keep their keys.
            if self.train_store is not store:
                self.params["train_data"] = self.train_store.dataset.spec
                train_space = self.train_store.dataset.label_space
                if label_map(train_space, dataset.label_space) is not None:
                    self.params["train_label_map"] = f"{train_space}->{dataset.label_space}"
            if train_per_class is not None:
                self.params["train_per_class"] = train_per_class
        self.probe_c, self.knn_k = probe_c, knn_k

    def _train_features(self) -> FeatureSet:
        if self._train is None:
            data = self.train_store.dataset
            if self.train_split not in data.splits:
                hint = (
                    "; give labelled training data with --sslrobust-train-data=SPEC (e.g. "
                    "ImageNet train for ImageNet-C, IN-9L for ImageNet-9, cifar-c:...,train= "
                    "for CIFAR-C)"
                    if self.train_store is self.store
                    else ""
                )
                raise ValueError(
                    f"readout {self.kind!r} is fitted on the clean {self.train_split!r} split, "
                    f"which {data.spec} does not have (splits: "
                    f"{', '.join(data.splits) or 'none'}){hint}"
                )
            train = self.train_store.get(
                "original", split=self.train_split, per_class=self.train_per_class
            )
            if self.train_store is not self.store:
                train = relabelled(train, data, self.store.dataset)
            self._train = train
            self._warn_if_little_to_fit(self._train)
        return self._train

    def _warn_if_little_to_fit(self, train: FeatureSet) -> None:
        from pytest_sslrobust.data.base import MIN_TRAIN_PER_CLASS, warn_once

        labels = train.labels.cpu().numpy()
        counts = np.bincount(labels) if labels.size else np.zeros(0, dtype=np.int64)
        present = counts[counts > 0]
        fewest = int(present.min()) if present.size else 0
        if fewest < MIN_TRAIN_PER_CLASS:
            spec = self.train_store.dataset.spec
            warn_once(
                ("readout", spec, self.train_split, self.kind),
                f"sslrobust: the {self.kind} readout is fitted on {len(labels)} "
                f"{self.train_split!r} images of {spec!r} in {present.size} classes, the "
                f"smallest with {fewest}; below {MIN_TRAIN_PER_CLASS} per class its accuracy "
                "says more about the few images than about the features",
            )

    def predict(self, features: FeatureSet) -> np.ndarray:
        """Predicted class indices for every item of ``features``."""
        if self.kind == "head":
            assert features.logits is not None
            logits = features.logits
            if self.head_subset is not None:
                subset = np.asarray(self.head_subset)
                return subset[logits[:, torch.as_tensor(subset)].argmax(dim=1).cpu().numpy()]
            predicted = logits.argmax(dim=1).cpu().numpy()
            if self.label_map is not None:
                # A head class outside every superclass is wrong for every image: it becomes
                # one index past the data's classes (labels are never negative).
                table = np.asarray(self.label_map, dtype=np.int64)
                table[table < 0] = table.max() + 1
                return table[predicted]
            return predicted
        if self.head_file is not None:
            _, cached = derived_entry(
                self.store.cache,
                {"test": features},
                {"readout": self.params},
                lambda: {"predictions": torch.as_tensor(self._compute(features, features))},
            )
            return cached["predictions"].cpu().numpy()
        train = self._train_features()
        if self.save_probe is not None and not self._saved:
            self._fitted_probe(train)  # a warm run reads predictions, but the file is asked for
        # Predictions are cached like features, keyed by both feature sets and the readout:
        # a warm run neither refits the probe nor searches neighbours again.
        _, cached = derived_entry(
            self.store.cache,
            {"train": train, "test": features},
            {"readout": self.params},
            lambda: {"predictions": torch.as_tensor(self._compute(train, features))},
        )
        return cached["predictions"].cpu().numpy()

    def head_module(self) -> tuple[torch.nn.Module, np.ndarray]:
        """The readout as a differentiable layer (features -> logits) and the class label of
        each output column, for gradients through it (attribution maps, attacks).

        ``head`` gives the model's classifier; ``linear-probe`` the probe fitted on the clean
        training features (fitted now if a warm run only read cached predictions); ``knn``
        has no gradient and is refused.
        """
        if self.kind == "head":
            classifier = self.store.backbone.model.get_classifier()
            if self.head_subset is not None:
                columns = ColumnSubset(self.head_subset)
                chosen = torch.nn.Sequential(classifier, columns).to(self.store.backbone.device)
                return chosen.eval(), np.asarray(self.head_subset)
            if self.label_map is not None:
                pooled = torch.nn.Sequential(classifier, SuperclassLogits(self.label_map))
                pooled = pooled.to(self.store.backbone.device).eval()
                return pooled, np.arange(max(self.label_map) + 1)
            return classifier, np.arange(self.store.backbone.num_classes)
        if self.kind == "knn":
            raise ValueError(
                "readout 'knn' has no gradient to follow: use readout='linear-probe' or 'head' "
                "for attribution maps and attacks"
            )
        train = None if self.head_file is not None else self._train_features()
        probe = self._fitted_probe(train)
        return probe.as_module(), np.asarray(probe.classes)

    def columns(self, labels: np.ndarray) -> np.ndarray:
        """The output column of ``head_module()`` for each label; a label the readout has no
        output for is refused (a probe fitted on a split that lacks the class)."""
        _, classes = self.head_module()
        labels = np.asarray(labels)
        columns = np.clip(np.searchsorted(classes, labels), 0, max(len(classes) - 1, 0))
        if len(classes) == 0 or not np.array_equal(classes[columns], labels):
            missing = sorted(set(labels.tolist()) - set(np.asarray(classes).tolist()))
            raise ValueError(
                f"the {self.kind} readout has no output for label(s) {missing[:5]} (it knows "
                f"{len(classes)} classes): fit it on a split with every class, or use a "
                "label-free measure"
            )
        return columns

    def _fitted_probe(self, train: FeatureSet | None) -> Any:
        if self._probe is None and self.head_file is not None:
            dim = self.store.get("original", split="test").features.shape[1]
            data = self.store.dataset
            self._probe = self.head_file.probe(dim, data.classes, data.spec)
        if self._probe is None:
            from pytest_sslrobust.metrics.readouts import fit_linear_probe

            assert train is not None
            self._probe = fit_linear_probe(
                train.features,
                train.labels,
                C=self.probe_c,
                backend=probe_backend(train.features),
            )
        if self.save_probe is not None and not self._saved:
            from pytest_sslrobust.heads import save_probe

            save_probe(self.save_probe, self._probe, self.store.dataset.classes)
            self._saved = True
        return self._probe

    def _compute(self, train: FeatureSet, features: FeatureSet) -> np.ndarray:
        if self.kind == "knn":
            from pytest_sslrobust.metrics.readouts import knn_classify

            return np.asarray(
                knn_classify(train.features, train.labels, features.features, k=self.knn_k)
            )
        probe = self._fitted_probe(None if self.head_file is not None else train)
        return np.asarray(probe.predict(features.features), dtype=np.int64)


def probe_backend(features: torch.Tensor) -> str:
    """Where a probe is fitted: where the features are. On a GPU the torch solver (the same
    objective as scikit-learn's; ``benchmarks/bench_probe.py`` measures their agreement), on
    the CPU scikit-learn. The features' device is in their cache key, so the predictions of
    the two backends never share an entry."""
    return "sklearn" if features.device.type == "cpu" else "torch"


def relabelled(train: FeatureSet, source: Any, target: Any) -> FeatureSet:
    """``train`` (features of ``source`` data) with its labels in ``target``'s label space,
    matched by class identity (ImageNet wnids, class names), never by index. A class of the
    training images that the target data does not have is refused, naming it. Where a label
    space maps onto the target's (ImageNet-1k training images for ImageNet-9), labels go
    through that table and images of classes outside it are left out of the fit."""
    import dataclasses

    table = label_map(source.label_space, target.label_space)
    if table is not None:
        mapped = np.asarray(table, dtype=np.int64)[train.labels.numpy()]
        keep = np.flatnonzero(mapped >= 0)
        if keep.size == 0:
            raise ValueError(
                f"none of the train data {source.spec}'s images is of a class that maps onto "
                f"{target.spec} ({source.label_space} -> {target.label_space})"
            )
        rows = torch.as_tensor(keep)
        return dataclasses.replace(
            train,
            features=train.features[rows.to(train.features.device)],
            logits=None if train.logits is None else train.logits[rows.to(train.logits.device)],
            labels=torch.as_tensor(mapped[keep]),
            ids=tuple(train.ids[i] for i in keep),
            ssim=None if train.ssim is None else train.ssim[rows.to(train.ssim.device)],
        )
    position = {name: i for i, name in enumerate(target.classes)}
    present = sorted(set(train.labels.tolist()))
    names = {label: source.classes[label] for label in present}
    unknown = [names[label] for label in present if names[label] not in position]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5])
        raise ValueError(
            f"the train data {source.spec} has {len(unknown)} class(es) that {target.spec} "
            f"does not ({shown}{', ...' if len(unknown) > 5 else ''}); classes are matched "
            f"by name ({', '.join(repr(n) for n in target.classes[:5])}, ... in the test "
            "data): give train data with the same classes"
        )
    mapping = np.zeros(max(present) + 1 if present else 0, dtype=np.int64)
    for label in present:
        mapping[label] = position[names[label]]
    labels = torch.as_tensor(mapping[train.labels.numpy()], dtype=torch.int64)
    return dataclasses.replace(train, labels=labels)


def _source(store: FeatureStore, features: FeatureSet) -> str:
    provenance = Provenance.of(features)
    if provenance.origin == "released files":
        return "released-imagenet-c" if store.dataset.spec.startswith("imagenet-c:") else "released"
    params = provenance.variant_params
    return "imagenet-c-recipe" if params.get("protocol") == "imagenet-c" else "on-the-fly"


def corruption_errors(
    store: FeatureStore,
    corruptions: Iterable[str],
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    *,
    readout: Readout | str = "auto",
    split: str = "test",
) -> CorruptionErrors:
    """Top-1 errors of every (corruption, severity) through a readout, with the clean error.

    The result records the protocol (data, subset, image size, corruption source and
    generator, readout) so that ``mce`` can refuse comparisons across protocols.
    """
    from pytest_sslrobust.metrics.corruption import errors_from_predictions

    reader = readout if isinstance(readout, Readout) else Readout(store, readout)
    if tuple(severities) != (1, 2, 3, 4, 5):
        raise ValueError(
            f"Expected severities 1..5 for a corruption error table, but got {tuple(severities)}"
        )
    corruptions = list(corruptions)
    # With --sslrobust-executor=ray the whole sweep is in flight at once; in process a no-op.
    store.prefetch(
        ["original", *(corruption_id(n, sev) for n in corruptions for sev in severities)], split
    )
    clean = store.get("original", split=split)
    predictions: dict[str, list[np.ndarray]] = {}
    sources = set()
    generators = set()
    for name in corruptions:
        per_severity = []
        for severity in severities:
            altered = store.get(corruption_id(name, severity), split=split)
            sources.add(_source(store, altered))
            generator = Provenance.of(altered).variant_params.get("generator")
            if generator:
                generators.add(str(generator))
            per_severity.append(reader.predict(altered))
        predictions[name] = per_severity
    if len(sources) != 1:
        raise ValueError(f"corruptions came from mixed sources {sorted(sources)}; use one")
    if len(generators) > 1:
        raise ValueError(
            f"corruptions came from mixed generators {sorted(generators)}; use one "
            "--sslrobust-corruption-backend"
        )
    made = Provenance.of(clean)
    protocol = {
        "source": sources.pop(),
        "data": made.data,
        "dataset_fingerprint": made.dataset_fingerprint,
        "split": split,
        "subset": made.subset.to_dict(),
        "ids_digest": made.ids_digest,
        "image_size": made.image_size,
        "seed": made.seed,
        "backbone": made.backbone,
        "backbone_fingerprint": made.backbone_fingerprint,
        # The readout is part of the protocol: an error table read by a probe is not
        # comparable with one read by kNN or the model's head.
        **{f"readout_{k}" if k != "readout" else k: v for k, v in reader.params.items()},
    }
    if generators:  # what made the pixels, as the variants recorded it
        protocol["generator"] = generators.pop()
    return errors_from_predictions(
        predictions,
        clean.labels.numpy(),
        reader.predict(clean),
        readout=reader.kind,
        protocol=protocol,
        ids=clean.ids,
    )
