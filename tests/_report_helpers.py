"""What the report tests share: a realistic report document and a parser of the page."""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import numpy as np

from pytest_sslrobust.variants import ALL, SWAPS

XSS = "<script>alert(1)</script>"
MODELS = ("dinov2-vits14", "mae-vitb16", "resnet50-sup")
MASKS = ("center-r0.50", "border-r0.50", "foreground", "background")
GENERATED = "2025-01-02T03:04:05+00:00"


# --------------------------------------------------------------------------- document


def _image(rng: np.random.Generator, noise: float) -> np.ndarray:
    """A 224 px picture-like image: smooth random colour blocks plus pixel noise."""
    blocks = rng.random((7, 7, 3)) * 200 + 20
    smooth = np.kron(blocks, np.ones((32, 32, 1)))
    return np.clip(smooth + rng.normal(0, noise, smooth.shape), 0, 255).astype(np.uint8)


def _interval(value: float, width: float, seed: int) -> dict[str, Any]:
    return {
        "estimate": value,
        "low": value - width,
        "high": value + width,
        "confidence": 0.95,
        "resamples": 1000,
        "seed": seed,
    }


def _protocol(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "data": "bundled:imagenette-mini",
        "split": "test",
        "image_size": 224,
        "seed": 0,
        "backbone": model,
        "backbone_fingerprint": hashlib.sha256(model.encode()).hexdigest(),
        **extra,
    }


def _results() -> list[dict[str, Any]]:
    """30 results, 10 per model; one fails; one carries a script tag in test and model."""
    rng = np.random.default_rng(1)
    results = []
    for model in MODELS:
        test = f"tests/test_robust.py::test_{{}}[{model}]"
        mce = float(rng.uniform(50, 90))
        specs = [
            ("mce", "mce_below", "mce", mce, None, 95.0, "lower", ""),
            (
                "relative_mce",
                "relative_mce_below",
                "relative_mce",
                mce * 1.1,
                None,
                110.0,
                "lower",
                "",
            ),
            (
                "cka",
                "cka_between",
                "cka_center",
                float(rng.uniform(0.6, 0.9)),
                0.5,
                1.0,
                "higher",
                "",
            ),
            (
                "cka",
                "cka_between",
                "cka_border",
                float(rng.uniform(0.4, 0.7)),
                0.3,
                1.0,
                "higher",
                "",
            ),
            (
                "probe",
                "balanced_accuracy_above",
                "balanced_accuracy",
                float(rng.uniform(0.7, 0.9)),
                0.6,
                None,
                "higher",
                "",
            ),
            (
                "probe",
                "balanced_accuracy_above",
                "balanced_accuracy_fg",
                float(rng.uniform(0.6, 0.8)),
                0.5,
                None,
                "higher",
                "",
            ),
            (
                "neighbours",
                "neighbour_consistency_above",
                "neighbour_consistency",
                float(rng.uniform(0.3, 0.6)),
                0.2,
                None,
                "higher",
                "",
            ),
            (
                "attack",
                "robust_accuracy_above",
                "robust_accuracy",
                float(rng.uniform(0.1, 0.4)),
                0.05,
                None,
                "higher",
                "",
            ),
            (
                "background",
                "bg_gap_below",
                "bg_gap",
                float(rng.uniform(3, 12)),
                None,
                15.0,
                "lower",
                "points",
            ),
            (
                "drop",
                "accuracy_drop_below",
                "accuracy_drop",
                float(rng.uniform(1, 8)),
                None,
                10.0,
                "lower",
                "%",
            ),
        ]
        for index, (kind, name, label, value, low, high, better, unit) in enumerate(specs):
            metric = label.split("_center")[0].split("_border")[0].removesuffix("_fg")
            interval = _interval(value, abs(value) * 0.03, index) if index % 3 == 0 else None
            results.append(
                {
                    "test": test.format(kind),
                    "name": name,
                    "metric": metric,
                    "label": label,
                    "value": value,
                    "passed": True,
                    "low": low,
                    "high": high,
                    "better": better,
                    "unit": unit,
                    "interval": interval,
                    "decided_on": "interval" if interval and index == 0 else "value",
                    "model": model,
                    "protocol": _protocol(model, readout="knn", variant=label),
                    "details": [
                        {"corruption": c, "ce": float(rng.uniform(40, 110)), "error_s3": 0.5}
                        for c in ALL
                    ]
                    if kind == "mce"
                    else [],
                }
            )
    failing = results[17]
    failing["value"], failing["passed"] = failing["low"] - 0.1, False
    results[25]["test"] = f"tests/test_robust.py::test_odd[{XSS}]"
    results[25]["model"] = XSS
    return results


def realistic_document() -> dict[str, Any]:
    """A 3-model run with every artifact kind, as large as a full 19 x 5 corruption study."""
    from pytest_sslrobust.report.plots import thumbnail_png

    rng = np.random.default_rng(0)
    artifacts: list[dict[str, Any]] = []

    def add(kind: str, model: str, payload: dict[str, Any], label: str = "") -> None:
        test = f"tests/test_robust.py::test_{kind}[{model}]"
        artifacts.append(
            {"kind": kind, "test": test, "model": model, "label": label, "payload": payload}
        )

    for number, model in enumerate(MODELS):
        base = rng.uniform(0.1, 0.3)
        errors = {
            c: [float(min(1.0, base + s * rng.uniform(0.03, 0.12))) for s in range(1, 6)]
            for c in ALL
        }
        ssim = {c: [float(1 - s * rng.uniform(0.05, 0.15)) for s in range(1, 6)] for c in ALL}
        ce = {c: float(rng.uniform(40, 110)) for c in ALL[:15]}
        add(
            "corruption_errors",
            model,
            {
                "errors": errors,
                "clean_error": float(base),
                "n": 500,
                "readout": "knn",
                "protocol": {"source": "on-the-fly", "generator": "imagecorruptions-imaug 1.1.5"},
                "ssim": ssim,
                "mce": float(np.mean(list(ce.values()))),
                "relative_mce": float(rng.uniform(80, 120)),
                "ce": ce,
                "reference": "alexnet",
            },
        )
        variants = ["original", *MASKS]
        for metric in ("linear_cka", "cca_r2"):
            values = rng.uniform(0.3, 1.0, (5, 5))
            values = (values + values.T) / 2
            np.fill_diagonal(values, 1.0)
            add(
                "similarity_matrix",
                model,
                {"metric": metric, "names": variants, "values": values.tolist()},
                label=metric,
            )
        add(
            "probe_table",
            model,
            {
                "metric": "balanced_accuracy",
                "variants": variants,
                "mean": rng.uniform(0.5, 0.95, 5).tolist(),
                "std": rng.uniform(0.0, 0.03, 5).tolist(),
            },
        )
        add(
            "neighbours",
            model,
            {
                "scores": {v: float(rng.uniform(0.2, 0.8)) for v in MASKS},
                "chance": {v: 0.02 for v in MASKS},
            },
        )
        groups = [variants[i % 5] for i in range(300)]
        points = (rng.normal(size=(300, 2)) + np.array([[i % 5, 0] for i in range(300)])).tolist()
        add("embedding", model, {"points": points, "groups": groups, "method": "PCA"})
        accuracy = {s: float(rng.uniform(0.5, 0.95)) for s in SWAPS}
        add(
            "background",
            model,
            {"accuracy": accuracy, "bg_gap": accuracy["mixed_same"] - accuracy["mixed_rand"]},
        )
        confidence = (np.arange(15) + 0.5) / 15
        add(
            "reliability",
            model,
            {
                "confidence": confidence.tolist(),
                "accuracy": np.clip(confidence - rng.uniform(0, 0.15, 15), 0, 1).tolist(),
                "counts": rng.integers(0, 80, 15).tolist(),
                "ece": float(rng.uniform(0.02, 0.12)),
                "confidence_by_variant": {v: float(rng.uniform(0.4, 0.9)) for v in variants},
            },
        )
        eps = [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255]
        for metric in ("robust_accuracy", "feature_drift"):
            values = np.sort(rng.uniform(0, 0.9, 5))
            values = values[::-1] if metric == "robust_accuracy" else values
            add(
                "attack",
                model,
                {
                    "eps": eps,
                    "values": values.tolist(),
                    "metric": metric,
                    "attack": "pgd",
                    "norm": "linf",
                    "steps": 10,
                    "clean": float(values[0]),
                    "n": 256,
                },
                label=f"{metric}-pgd-linf",
            )
        for target, chance, data in (
            ("near", 0.1, "bundled:imagenette-mini"),
            ("far", 0.25, "bundled:textured-shapes"),
        ):
            accuracy = float(rng.uniform(0.6, 0.9))
            add(
                "transfer",
                model,
                {
                    "target": target,
                    "metric": "balanced_accuracy",
                    "data": data,
                    "accuracy": accuracy,
                    "interval": {"low": accuracy - 0.03, "high": accuracy + 0.03},
                    "chance": chance,
                    "confidence": float(rng.uniform(0.3, 0.95)),
                    **({"invariance": float(rng.uniform(0.6, 0.9))} if target == "near" else {}),
                },
                label=target,
            )
        shifted = ["gaussian_noise-s3", "fog-s3", "center-r0.50"]
        add(
            "attribution",
            model,
            {
                "method": "gradcam",
                "target": "linear-probe",
                "images": 64,
                "split": "test",
                "top_k": 0.1,
                "measures": [
                    {"variant": "original", "entropy": 0.9, "degenerate": 0},
                    *(
                        {
                            "variant": v,
                            "entropy": float(rng.uniform(0.8, 1)),
                            "degenerate": 1,
                            "rank_shift": float(rng.uniform(0, 1)),
                            "topk_overlap": float(rng.uniform(0, 1)),
                        }
                        for v in shifted
                    ),
                ],
                "severity": {"gaussian_noise": np.sort(rng.uniform(0, 1, 5)).tolist()},
                "overlays": [
                    {
                        "item": "item-1",
                        "tiles": [
                            {"id": v, "uri": thumbnail_png(_image(rng, 5))}
                            for v in ["original", *shifted]
                        ],
                    }
                ],
                "protocol": {"data": "bundled:textured-digits", "method": "gradcam"},
            },
            label="gradcam-linear-probe",
        )
        ids = ["original", *(f"{c}-s{s}" for c in ALL for s in range(1, 6)), *MASKS]
        images = [
            {"id": image_id, "uri": thumbnail_png(_image(rng, 5 + 10 * (i % 6)))}
            for i, image_id in enumerate(ids)
        ]
        add("preview", model, {"images": images, "source": f"test item {number}"})

    results = _results()
    statuses = ["unchanged"] * len(results)
    statuses[3], statuses[8], statuses[12] = "regression", "refused", "improved"
    rows = []
    for result, status in zip(results, statuses, strict=True):
        baseline = result["value"] * (0.9 if status == "regression" else 1.0)
        rows.append(
            {
                "key": f"{result['test']}::{result['label']}",
                "metric": result["metric"],
                "baseline_value": None if status == "refused" else baseline,
                "value": result["value"],
                "delta": None if status == "refused" else result["value"] - baseline,
                "allowed": 0.01 if status != "refused" else None,
                "status": status,
                "note": "protocol differs: readout knn != linear" if status == "refused" else "",
                # A regression decided on the same images carries its paired evidence.
                "paired": status == "regression",
                "interval": [0.012, 0.034] if status == "regression" else None,
                "p_value": 0.00042 if status == "regression" else None,
            }
        )

    return {
        "title": "Robustness of three backbones",
        "generated": GENERATED,
        "run": {
            "models": [
                {
                    "name": model,
                    "spec": f"timm:{model}",
                    "architecture": "vit_small_patch14" if "vit" in model else "resnet50",
                    "fingerprint": hashlib.sha256(model.encode()).hexdigest(),
                    "weights": f"hf-hub:{model}",
                    "paradigm": "supervised" if "sup" in model else "self-supervised",
                }
                for model in MODELS
            ],
            "data": "bundled:imagenette-mini (500 test images)",
            "device": "cuda:0 (NVIDIA H100)",
            "seed": 0,
            "max_images": 500,
            "versions": {"torch": "2.4.1", "timm": "1.0.9", "pytest-sslrobust": "0.1.0"},
            "wall_time_s": 754.2,
            "cache": {"computed": 48, "memory_hits": 310, "disk_hits": 95, "forward_images": 24000},
            "outcomes": {"passed": 28, "failed": 1, "skipped": 2, "error": 0},
        },
        "results": results,
        "artifacts": artifacts,
        "comparison": {"baseline": "baselines/main.json", "rows": rows},
    }


# --------------------------------------------------------------------------- parsing


class Page(HTMLParser):
    """What the tests look at: ids, headings, tables' cells, tags, attributes, texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.headings: dict[str, list[str]] = {"h1": [], "h2": [], "h3": []}
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str, str]] = []
        self.tables: list[dict[str, Any]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._open_tables: list[dict[str, Any]] = []
        self._capture: list[str] | None = None
        self._capture_tag = ""
        self._cell: list[str] | None = None
        self._raw: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        attributes = {name: value or "" for name, value in attrs}
        for name, value in attributes.items():
            self.attributes.append((tag, name, value))
        if "id" in attributes:
            self.ids.append(attributes["id"])
        if tag in self.headings:
            self._capture, self._capture_tag = [], tag
        elif tag == "table":
            table = {"id": attributes.get("id"), "rows": [], "row_attrs": []}
            self.tables.append(table)
            self._open_tables.append(table)
        elif tag == "tr" and self._open_tables:
            self._open_tables[-1]["rows"].append([])
            self._open_tables[-1]["row_attrs"].append(attributes)
        elif tag in ("td", "th") and self._open_tables:
            self._cell = []
        elif tag in ("script", "style"):
            self._raw = []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._capture_tag and self._capture is not None:
            self.headings[tag].append(" ".join("".join(self._capture).split()))
            self._capture = None
        elif tag == "table" and self._open_tables:
            self._open_tables.pop()
        elif tag in ("td", "th") and self._cell is not None and self._open_tables:
            self._open_tables[-1]["rows"][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag in ("script", "style") and self._raw is not None:
            (self.scripts if tag == "script" else self.styles).append("".join(self._raw))
            self._raw = None

    def handle_data(self, data: str) -> None:
        for sink in (self._capture, self._cell, self._raw):
            if sink is not None:
                sink.append(data)

    def table(self, table_id: str) -> dict[str, Any]:
        return next(t for t in self.tables if t["id"] == table_id)


# --------------------------------------------------------------------------- recording


class FakeStore:
    """What ``ReportRecorder`` reads of a feature store: the backbone's name, the data's
    classes and spec, and (for the SSIM of corruption cells) features without SSIM."""

    def __init__(self, model: str, classes: int, data: str) -> None:
        from types import SimpleNamespace

        self.backbone = SimpleNamespace(name=model)
        self.dataset = SimpleNamespace(classes=tuple(f"c{i}" for i in range(classes)), spec=data)

    def get(self, variant: str, split: str = "test") -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(ssim=None)


@contextlib.contextmanager
def recording(
    collector: Any, model: str, test: str, *, classes: int = 10, data: str = "bundled:digits"
) -> Iterator[Any]:
    """Run the body as the test ``test[model]`` of a session collecting into ``collector``:
    ``sslrobust.report`` (the yielded ReportRecorder) and the contracts record as they do in
    a run, and the test's results reach the collector when the body ends."""
    from types import SimpleNamespace

    from pytest_sslrobust.report import ReportRecorder
    from pytest_sslrobust.results import COLLECTOR_KEY, current_item

    item = SimpleNamespace(
        nodeid=f"{test}[{model}]",
        config=SimpleNamespace(stash={COLLECTOR_KEY: collector}),
        user_properties=[],
        funcargs={"sslrobust_backbone": SimpleNamespace(name=model)},
    )
    token = current_item.set(item)
    try:
        yield ReportRecorder(FakeStore(model, classes, data))  # type: ignore[arg-type]
    finally:
        current_item.reset(token)
        collector.add_report(item.user_properties)
