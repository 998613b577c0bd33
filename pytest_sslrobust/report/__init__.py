"""The HTML report: what tests hand to it (``ReportRecorder``) and how the file is built."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_sslrobust.results import ResultCollector, record_artifact
from pytest_sslrobust.vocabulary import SEVERITIES, corruption_cell, corruption_id

if TYPE_CHECKING:
    from pytest_sslrobust.attribution.sets import AttributionSet
    from pytest_sslrobust.features.store import FeatureStore
    from pytest_sslrobust.metrics.attacks import AttackResult
    from pytest_sslrobust.metrics.corruption import CorruptionErrors
    from pytest_sslrobust.metrics.readouts import ProbeResult
    from pytest_sslrobust.metrics.similarity import SimilarityMatrix


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


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

    def corruption(
        self, errors: CorruptionErrors, *, reference: Any = "alexnet", split: str = "test"
    ) -> None:
        """An error table; mCE/CE shown when ``reference`` is valid for its protocol, and the
        mean SSIM per cell read from the cached altered features."""
        from pytest_sslrobust.metrics.corruption import ProtocolMismatch, ce, mce, relative_mce

        payload: dict[str, Any] = errors.to_dict()
        payload.pop("correct", None)
        payload.pop("clean_correct", None)
        payload["reference"] = reference if isinstance(reference, str) else "reference model"
        try:
            payload["ce"] = ce(errors, reference)
            payload["mce"] = mce(errors, reference)
            payload["relative_mce"] = relative_mce(errors, reference=reference)
        except (ProtocolMismatch, ValueError) as exc:
            payload["ce"], payload["mce"], payload["relative_mce"] = None, None, None
            payload["reference_note"] = str(exc)
        ssim = {}
        for name in errors.errors:
            cells = [self.store.get(corruption_id(name, s), split=split).ssim for s in SEVERITIES]
            if all(c is not None for c in cells):
                ssim[name] = [float(np.nanmean(_numpy(c))) for c in cells]
        if ssim:
            payload["ssim"] = ssim
        record_artifact("corruption_errors", payload, model=self.model)

    def similarity(self, matrix: SimilarityMatrix, *, label: str = "") -> None:
        record_artifact("similarity_matrix", matrix.to_dict(), model=self.model, label=label)

    def probe_table(self, results: Mapping[str, ProbeResult]) -> None:
        """Linear-evaluation results per variant (the masking study's table)."""
        variants = list(results)
        record_artifact(
            "probe_table",
            {
                "metric": next(iter(results.values())).metric if results else "balanced_accuracy",
                "variants": variants,
                "mean": [results[v].mean for v in variants],
                "std": [results[v].std for v in variants],
            },
            model=self.model,
        )

    def neighbours(
        self, scores: Mapping[str, float], chance: Mapping[str, float] | None = None
    ) -> None:
        record_artifact(
            "neighbours", {"scores": dict(scores), "chance": dict(chance or {})}, model=self.model
        )

    def embedding(
        self, features_by_variant: Mapping[str, Any], *, fraction: float = 0.1, seed: int = 0
    ) -> None:
        """A 2-D embedding of a seeded sample of the points, coloured by variant: UMAP when
        the optional ``umap-learn`` package is installed, PCA otherwise (said on the plot)."""
        rng = np.random.default_rng(seed)
        points, groups = [], []
        for name, features in features_by_variant.items():
            array = _numpy(getattr(features, "features", features)).astype(np.float64)
            take = max(1, int(round(len(array) * fraction)))
            chosen = np.sort(rng.choice(len(array), size=min(take, len(array)), replace=False))
            points.append(array[chosen])
            groups.extend([name] * len(chosen))
        stacked = np.concatenate(points)
        try:
            import umap  # type: ignore[import-not-found]

            xy = umap.UMAP(n_components=2, random_state=seed).fit_transform(stacked)
            method = "UMAP"
        except ImportError:
            from sklearn.decomposition import PCA

            xy = PCA(n_components=2, random_state=seed).fit_transform(stacked)
            method = "PCA"
        record_artifact(
            "embedding",
            {"points": xy.tolist(), "groups": groups, "method": method},
            model=self.model,
        )

    def background(self, accuracy: Mapping[str, float]) -> None:
        from pytest_sslrobust.variants.swaps import bg_gap

        gap = None
        if "mixed_same" in accuracy and "mixed_rand" in accuracy:
            gap = bg_gap(accuracy["mixed_same"], accuracy["mixed_rand"])
        record_artifact("background", {"accuracy": dict(accuracy), "bg_gap": gap}, model=self.model)

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
        record_artifact(
            "reliability",
            {
                "confidence": _numpy(diagram.confidence).tolist(),
                "accuracy": _numpy(diagram.accuracy).tolist(),
                "counts": _numpy(diagram.counts).tolist(),
                "ece": float(diagram.ece),
                "confidence_by_variant": dict(confidence_by_variant or {}),
            },
            model=self.model,
        )

    def attack(self, result: AttackResult) -> None:
        payload = dict(result.as_dict())
        payload.pop("per_sample", None)
        record_artifact(
            "attack",
            payload,
            model=self.model,
            label=f"{result.metric}-{result.attack}-{result.norm}",
        )

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
        rows = []
        curves: dict[str, dict[int, float]] = {}
        moved: list[tuple[float, int]] = []
        for index, attributed in enumerate([clean, *altered]):
            row: dict[str, Any] = {
                "variant": attributed.variant,
                "entropy": float(attributed.entropy().mean()),
                "degenerate": attributed.degenerate,
            }
            if index:
                shift = attributed.shift_from(clean, top_k=top_k)
                row["rank_shift"] = float(shift["rank_shift"].mean())
                row["topk_overlap"] = float(shift["topk_overlap"].mean())
                moved.append((row["rank_shift"], index - 1))
                cell = corruption_cell(attributed.variant)
                if cell is not None and cell[1] in SEVERITIES:
                    curves.setdefault(cell[0], {})[cell[1]] = row["rank_shift"]
            if attributed.masks is not None:
                try:
                    row["foreground_focus"] = float(attributed.foreground_focus().mean())
                    row["chance_focus"] = float(attributed.chance_focus().mean())
                except ValueError:  # an image without foreground: focus is not defined
                    pass
            rows.append(row)
        shown = [altered[i] for _, i in sorted(moved, key=lambda pair: -pair[0])]
        protocol = {
            key: clean.protocol.get(key)
            for key in ("data", "split", "backbone_fingerprint", "image_size", "seed", "subset")
            if key in clean.protocol
        }
        protocol.update(method=clean.method, readout=clean.target, images=len(clean))
        payload: dict[str, Any] = {
            "method": clean.method,
            "target": clean.target,
            "images": len(clean),
            "split": clean.split,
            "top_k": top_k,
            "measures": rows,
            "severity": {
                name: [points.get(s) for s in range(1, 6)] for name, points in curves.items()
            },
            "overlays": self._overlays(clean, shown[:overlay_variants], overlays, max_side),
            "protocol": protocol,
        }
        record_artifact(
            "attribution", payload, model=self.model, label=f"{clean.method}-{clean.target}"
        )

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
                tiles.append(
                    {
                        "id": attributed.variant,
                        "uri": thumbnail_png(overlay(image, attributed.maps[index]), max_side),
                    }
                )
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
        record_artifact(
            "preview", {"images": images, "source": f"{split} item {item_id}"}, model=self.model
        )


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
