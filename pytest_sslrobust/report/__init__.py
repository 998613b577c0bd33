"""The HTML report: what tests hand to it (``ReportRecorder``) and the document it is built from."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_sslrobust.report.chance import chance_of
from pytest_sslrobust.report.sections import (
    adversarial,
    attribution,
    background,
    calibration,
    corruption,
    examples,
    generalisability,
    representations,
)
from pytest_sslrobust.results import ResultCollector
from pytest_sslrobust.vocabulary import SEVERITIES, corruption_id

if TYPE_CHECKING:
    from pytest_sslrobust.attribution.sets import AttributionSet
    from pytest_sslrobust.features.store import FeatureStore
    from pytest_sslrobust.metrics.attacks import AttackResult
    from pytest_sslrobust.metrics.corruption import CorruptionErrors
    from pytest_sslrobust.metrics.readouts import ProbeResult
    from pytest_sslrobust.metrics.similarity import SimilarityMatrix


class ReportRecorder:
    """``sslrobust.report``: hands tables, matrices and images of a test to the report.

    Each method records one artifact under the current model; the report shows several
    models side by side. Nothing is recorded outside a running test.
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    @property
    def model(self) -> str:
        return self.store.backbone.name

    @property
    def chance(self) -> float | None:
        """What a guess scores with a readout over the data's classes (1/k), recorded with
        accuracies so that the report can say when a model is near it."""
        dataset = getattr(self.store, "dataset", None)
        return chance_of(getattr(dataset, "classes", None) or ())

    def corruption(
        self, errors: CorruptionErrors, *, reference: Any = "alexnet", split: str = "test"
    ) -> None:
        """An error table; mCE/CE shown when ``reference`` is valid for its protocol, and the
        mean SSIM per cell read from the cached altered features. Relative mCE is shown
        n/a where the reference barely degrades (what it divides by is near zero)."""
        from pytest_sslrobust.metrics.corruption import mean_ssim, reference_scores

        ssim = {}
        for name in errors.errors:
            cells = [self.store.get(corruption_id(name, s), split=split).ssim for s in SEVERITIES]
            means = mean_ssim(cells)
            if means is not None:
                ssim[name] = means
        corruption.record(
            errors,
            reference_scores(errors, reference),
            reference=_reference_name(reference),
            ssim=ssim,
            model=self.model,
            reference_excess=_reference_excess(errors, reference),
            chance=self.chance,
        )

    def similarity(self, matrix: SimilarityMatrix, *, label: str = "") -> None:
        representations.record_similarity(matrix, model=self.model, label=label)

    def probe_table(self, results: Mapping[str, ProbeResult]) -> None:
        """Linear-evaluation results per variant (the masking study's table)."""
        representations.record_probes(results, model=self.model, chance=self.chance)

    def neighbours(
        self, scores: Mapping[str, float], chance: Mapping[str, float] | None = None
    ) -> None:
        representations.record_neighbours(scores, chance, model=self.model)

    def embedding(
        self, features_by_variant: Mapping[str, Any], *, fraction: float = 0.1, seed: int = 0
    ) -> None:
        """A 2-D embedding of a seeded sample of the points, coloured by variant: UMAP when
        the optional ``umap-learn`` package is installed, PCA otherwise (said on the plot)."""
        from pytest_sslrobust.metrics.embedding import project_2d

        features = {
            name: getattr(value, "features", value) for name, value in features_by_variant.items()
        }
        projection = project_2d(features, fraction=fraction, seed=seed)
        representations.record_embedding(projection, model=self.model)

    def background(self, accuracy: Mapping[str, float], *, condition: str = "") -> None:
        """Accuracy per background variant and the BG-Gap; ``condition`` names a probe that
        is not the study's default (``"biased probe"``: fitted where backgrounds predict the
        class), so that both show side by side."""
        from pytest_sslrobust.metrics.background import bg_gap

        gap = None
        if "mixed_same" in accuracy and "mixed_rand" in accuracy:
            gap = bg_gap(accuracy["mixed_same"], accuracy["mixed_rand"])
        background.record(accuracy, gap, model=self.model, condition=condition, chance=self.chance)

    def reliability(
        self,
        logits: Any,
        labels: Any,
        *,
        confidence_by_variant: Mapping[str, float] | None = None,
        bins: int = 15,
    ) -> None:
        from pytest_sslrobust.metrics.readouts import reliability_diagram

        diagram = reliability_diagram(logits, labels, bins=bins)
        calibration.record(diagram, confidence_by_variant, model=self.model, chance=self.chance)

    def attack(self, result: AttackResult) -> None:
        adversarial.record(result, model=self.model, chance=self.chance)

    def transfer(
        self,
        target: str,
        accuracy: Any = None,
        *,
        confidence: float | None = None,
        invariance: float | None = None,
        interval: tuple[float, float] | None = None,
        metric: str = "balanced_accuracy",
    ) -> None:
        """The generalisability study's numbers on one target (``"near"``: the run's data,
        ``"far"``: another dataset, from ``sslrobust.with_data(...).report``): the probe's
        accuracy (a number, or the ``ContractResult`` an accuracy contract returned, whose
        interval comes along), its mean confidence, and the invariance of the features to
        augmented views. Chance is 1/k over the data's classes."""
        value = getattr(accuracy, "value", accuracy)
        recorded = getattr(accuracy, "interval", None)
        if interval is None and isinstance(recorded, Mapping):
            interval = (recorded.get("low"), recorded.get("high"))
        if hasattr(accuracy, "metric"):
            metric = str(accuracy.metric)
        dataset = getattr(self.store, "dataset", None)
        payload = generalisability.TransferPayload(
            target=str(target),
            data=str(getattr(dataset, "spec", "") or ""),
            metric=metric,
            accuracy=None if value is None else float(value),
            interval=None
            if interval is None
            else {"low": float(interval[0]), "high": float(interval[1])},
            chance=self.chance,
            confidence=None if confidence is None else float(confidence),
            invariance=None if invariance is None else float(invariance),
        )
        generalisability.record(payload, model=self.model)

    def attribution(
        self,
        clean: AttributionSet,
        altered: Sequence[AttributionSet] = (),
        *,
        overlays: int = 3,
        overlay_variants: int = 4,
        top_k: float = 0.1,
        max_side: int = 96,
    ) -> None:
        """Focus measures per variant (shift from ``clean``, foreground focus, entropy), the
        shift against severity for corruption variants, and maps laid over the first
        ``overlays`` images: clean and under the ``overlay_variants`` variants whose maps
        moved most (the worst corruptions), so the report stays small for full sweeps."""
        rows, curves, order = attribution.measure_rows(clean, altered, top_k)
        shown = [altered[i] for i in order[:overlay_variants]]
        tiles = self._overlays(clean, shown, overlays, max_side)
        attribution.record(clean, rows, curves, tiles, top_k=top_k, model=self.model)

    def _overlays(
        self,
        clean: AttributionSet,
        altered: Sequence[AttributionSet],
        count: int,
        max_side: int,
    ) -> list[dict[str, Any]]:
        from pytest_sslrobust.attribution.sets import overlay
        from pytest_sslrobust.report.plots import thumbnail_png

        selection = self.store.selection(clean.split, clean.variant)
        position = {item_id: i for i, item_id in enumerate(selection.ids)}
        result = []
        for index, item_id in enumerate(clean.ids[:count]):
            item = selection.load(position[item_id])
            tiles = []
            for attributed in [clean, *altered]:
                image = self.store.altered_image(item, attributed.variant, clean.split)
                uri = thumbnail_png(overlay(image, attributed.maps[index]), max_side)
                tiles.append({"id": attributed.variant, "uri": uri})
            result.append({"item": item_id, "tiles": tiles})
        return result

    def preview(
        self, variants: Sequence[Any], *, split: str = "test", index: int = 0, max_side: int = 96
    ) -> None:
        """Thumbnails of one item, clean and under each variant, as the model sees it."""
        from pytest_sslrobust.report.plots import thumbnail_png

        pairs = self.store.preview_images(variants, split, index)
        images = [{"id": vid, "uri": thumbnail_png(image, max_side)} for vid, image in pairs]
        item_id = self.store.selection(split).ids[index]
        examples.record(images, f"{split} item {item_id}", model=self.model)


def _reference_name(reference: Any) -> str:
    """``alexnet``, or the backbone a reference table was measured with."""
    if isinstance(reference, str):
        return reference
    protocol = getattr(reference, "protocol", None) or {}
    return str(protocol.get("backbone") or "reference model")


def _reference_excess(errors: Any, reference: Any) -> dict[str, float] | None:
    """What relative CE divides by per common corruption (the reference's summed error over
    its clean error), or None where relative mCE is undefined anyway."""
    from pytest_sslrobust.metrics.corruption import reference_sums

    try:
        return reference_sums(errors, reference, relative=True)
    except ValueError:  # ProtocolMismatch included: the note says why
        return None


def build_document(
    collector: ResultCollector,
    run_info: Mapping[str, Any],
    *,
    title: str = "pytest-sslrobust report",
) -> dict[str, Any]:
    """Everything the template needs, as plain JSON-able data."""
    from pytest_sslrobust.results import environment

    return {
        "title": title,
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run": {**run_info, "versions": environment()["versions"]},
        "results": [result.to_dict() for result in collector.results],
        "artifacts": list(collector.artifacts),
        "comparison": collector.comparison,
    }
