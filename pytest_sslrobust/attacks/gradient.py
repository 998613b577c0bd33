"""Pixel-space adversarial attacks (FGSM, PGD) through a model's gradients: robust accuracy, drift."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from pytest_sslrobust.metrics import _checks

if TYPE_CHECKING:
    from pytest_sslrobust.backbones.base import Backbone

TensorFn = Callable[[torch.Tensor], torch.Tensor]
LossFn = Callable[[torch.Tensor], torch.Tensor]

NORMS = ("linf", "l2")
ATTACKS = ("pgd", "fgsm", "random")


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """One metric measured at several perturbation budgets.

    ``values[i]`` belongs to ``eps[i]``: the robust accuracy in [0, 1] (metric
    ``"robust_accuracy"``) or the cosine drift ``1 - mean cos(f(x), f(x_adv))``
    (metric ``"feature_drift"``). ``per_sample`` has shape ``(len(eps), n)``: 1/0 for
    "still correct" or each image's own drift. ``ids`` name the n images and ``protocol``
    says what was attacked (data, subset, backbone, attack settings) when the result came
    from ``sslrobust.attack``; a contract on it then records per-image outcomes a baseline
    comparison can pair.
    """

    eps: tuple[float, ...]
    values: tuple[float, ...]
    metric: str
    attack: str
    norm: str
    steps: int
    clean: float
    n: int
    per_sample: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    ids: tuple[str, ...] | None = dataclasses.field(default=None, compare=False, repr=False)
    protocol: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of_outcomes(
        cls,
        per_sample: np.ndarray,
        eps: Sequence[float],
        *,
        metric: str,
        attack: str,
        norm: str,
        steps: int,
        clean: float,
        ids: Sequence[str] | None = None,
        protocol: Mapping[str, Any] | None = None,
    ) -> AttackResult:
        """The result whose per-image outcomes, shape ``(len(eps), n)``, are ``per_sample``."""
        return cls(
            eps=tuple(float(e) for e in eps),
            values=tuple(float(v) for v in per_sample.mean(axis=1)),
            metric=metric,
            attack=attack,
            norm=norm,
            steps=steps,
            clean=clean,
            n=int(per_sample.shape[1]),
            per_sample=per_sample,
            ids=None if ids is None else tuple(str(i) for i in ids),
            protocol=dict(protocol or {}),
        )

    def as_dict(self) -> dict[str, Any]:
        """Everything but the per-image arrays, ids and protocol, JSON-ready."""
        result = dataclasses.asdict(self)
        for name in ("per_sample", "ids", "protocol"):
            result.pop(name)
        result["eps"], result["values"] = list(self.eps), list(self.values)
        return result


# --------------------------------------------------------------------------- models


class PixelSpaceModel(torch.nn.Module):
    """Wrap a function of normalised input so that it takes [0, 1] pixels instead.

    Normalising inside the wrapper lets the attacks measure eps in pixel units, as the
    literature does, whatever mean and std the backbone expects.
    """

    def __init__(
        self,
        embed: TensorFn | torch.nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(
                f"Expected three means and three positive stds, but got {mean!r} and {std!r}"
            )
        self.embed = embed  # registered as a submodule when it is one
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(x.device, x.dtype)
        std = self.std.to(x.device, x.dtype)
        return self.embed((x - mean) / std)


def from_backbone(backbone: Backbone) -> tuple[TensorFn, TensorFn | None]:
    """Differentiable functions of pixel-space input for a pytest_sslrobust Backbone.

    ``Backbone.forward`` runs under ``torch.inference_mode()``, so these go through
    ``Backbone.embedding_module()`` (and the classifier for logits). The model is put in
    eval mode; its parameters are left untouched.

    Args:
        backbone: the backbone; images passed to the functions must already be at its
            input size, as floats in [0, 1].

    Returns:
        ``(features_fn, logits_fn)``; ``logits_fn`` is None when the model has no head.
    """
    model = backbone.model.eval()
    pre = backbone.preprocessing
    pixel = PixelSpaceModel(backbone.embedding_module(), pre.mean, pre.std).to(backbone.device)

    def features_fn(x: torch.Tensor) -> torch.Tensor:
        return pixel(x.to(backbone.device)).float()

    if not backbone.has_head:
        return features_fn, None

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        return model.get_classifier()(features_fn(x)).float()

    return features_fn, logits_fn


# --------------------------------------------------------------------------- losses


def cross_entropy_loss(logits_fn: TensorFn, labels: Any) -> LossFn:
    """Per-sample cross-entropy of ``logits_fn(x)`` against ``labels`` (untargeted attack).

    Args:
        logits_fn: pixel-space images -> logits (n, classes).
        labels: integer class per image.

    Returns:
        A loss function for ``fgsm`` / ``pgd``.
    """
    target = _checks.labels(labels)

    def loss(x: torch.Tensor) -> torch.Tensor:
        # A clone is an ordinary tensor even if the labels came out of inference mode,
        # which autograd could not save for the backward pass.
        return F.cross_entropy(logits_fn(x), target.to(x.device).clone(), reduction="none")

    return loss


def feature_distance_loss(features_fn: TensorFn, clean_features: Any) -> LossFn:
    """Per-sample ``1 - cos(features_fn(x), clean_features)``: label-free, to be maximised.

    Args:
        features_fn: pixel-space images -> features (n, d).
        clean_features: the features of the clean images (n, d).

    Returns:
        A loss function for ``fgsm`` / ``pgd``.
    """
    clean = _checks.features(clean_features, "clean_features", min_rows=1).float()

    def loss(x: torch.Tensor) -> torch.Tensor:
        features = features_fn(x)
        return 1 - F.cosine_similarity(features, clean.to(features.device).clone(), dim=1)

    return loss


# --------------------------------------------------------------------------- attacks


def fgsm(loss_fn: LossFn, images: torch.Tensor, eps: float, *, norm: str = "linf") -> torch.Tensor:
    """One gradient step of size eps that increases ``loss_fn`` (Goodfellow et al. 2015).

    Args:
        loss_fn: images -> per-sample losses (n,) or their sum.
        images: float (n, 3, H, W) in [0, 1].
        eps: budget in pixel units (e.g. 4/255 for L-inf).
        norm: ``"linf"`` (step ``eps * sign(g)``) or ``"l2"`` (``eps * g / ||g||_2`` per image).

    Returns:
        Adversarial images in [0, 1], detached.
    """
    images = _images(images)
    eps, norm = _eps(eps), _norm(norm)
    step = _ascent_direction(_gradient(loss_fn, images), norm)
    return (images + eps * step).clamp_(0, 1)


def pgd(
    loss_fn: LossFn,
    images: torch.Tensor,
    eps: float,
    *,
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
) -> torch.Tensor:
    """Projected gradient ascent on ``loss_fn`` inside the eps ball (Madry et al. 2018).

    After every step the perturbation is projected onto the eps ball around the clean
    images and the result onto [0, 1]; the last iterate is returned.

    Args:
        loss_fn: images -> per-sample losses (n,) or their sum.
        images: float (n, 3, H, W) in [0, 1].
        eps: budget in pixel units.
        norm: ``"linf"`` or ``"l2"``.
        steps: number of gradient steps.
        step_size: size of each step; ``2.5 * eps / steps`` when None.
        random_start: start from a uniform point in the ball rather than the clean images
            (a label-free distance has zero gradient at the clean images).
        seed: seed of the random start; the result is deterministic given it.

    Returns:
        Adversarial images in [0, 1], detached.
    """
    images = _images(images)
    eps, norm = _eps(eps), _norm(norm)
    if not _positive_int(steps):
        raise ValueError(f"Expected steps to be a positive integer, but got {steps!r}")
    alpha = 2.5 * eps / steps if step_size is None else _eps(step_size, "step_size")
    x = images.clone()
    if random_start and eps > 0:
        x = _project(
            images + _random_delta(images, eps, norm, seed, uniform=True), images, eps, norm
        )
    for _ in range(steps):
        x = x + alpha * _ascent_direction(_gradient(loss_fn, x), norm)
        x = _project(x, images, eps, norm)
    return x


def random_noise(
    images: torch.Tensor, eps: float, *, norm: str = "linf", seed: int = 0
) -> torch.Tensor:
    """A random perturbation with the full budget, the baseline an attack must beat.

    Args:
        images: float (n, 3, H, W) in [0, 1].
        eps: budget in pixel units.
        norm: ``"linf"`` (each pixel +-eps with random sign) or ``"l2"`` (Gaussian
            rescaled to norm eps per image).
        seed: seed of the noise.

    Returns:
        Perturbed images clipped to [0, 1].
    """
    images = _images(images)
    eps, norm = _eps(eps), _norm(norm)
    return (images + _random_delta(images, eps, norm, seed, uniform=False)).clamp_(0, 1)


# --------------------------------------------------------------------------- metrics


def robust_accuracy(
    logits_fn: TensorFn,
    images: torch.Tensor,
    labels: Any,
    eps_list: Sequence[float] | np.ndarray,
    *,
    attack: str = "pgd",
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> AttackResult:
    """Accuracy of a readout under attack at each budget.

    An image counts as robust only if it is classified correctly both clean and attacked:
    the clean image lies in every ball, so robust accuracy never exceeds clean accuracy.

    Args:
        logits_fn: pixel-space images -> logits (n, classes), e.g. from ``from_backbone``
            or a linear probe on its features.
        images: float (n, 3, H, W) in [0, 1].
        labels: integer class per image.
        eps_list: budgets in pixel units; 0 gives the clean accuracy exactly.
        attack: ``"pgd"``, ``"fgsm"`` or ``"random"`` (noise of the same norm).
        norm: ``"linf"`` or ``"l2"``.
        steps: PGD steps.
        step_size: PGD step size (``2.5 * eps / steps`` when None).
        batch_size: images attacked at once, to bound memory.
        seed: seed of random starts and noise.

    Returns:
        An AttackResult with metric ``"robust_accuracy"``.
    """
    images = _images(images)
    target = _checks.labels(labels, images.shape[0]).to(images.device)
    eps_values, attack, norm, batch_size = _settings(
        eps_list, attack, norm, steps, step_size, batch_size
    )
    correct = torch.zeros(len(eps_values), images.shape[0], dtype=torch.bool)
    clean_correct = torch.zeros(images.shape[0], dtype=torch.bool)
    for index, start in enumerate(range(0, images.shape[0], batch_size)):
        batch = images[start : start + batch_size]
        batch_labels = target[start : start + batch_size]
        with torch.no_grad():
            logits = logits_fn(batch)
        if logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
            raise ValueError(
                f"Expected logits of shape ({batch.shape[0]}, classes), but got {tuple(logits.shape)}"
            )
        if int(batch_labels.max()) >= logits.shape[1]:
            raise ValueError(
                f"Expected labels below {logits.shape[1]} (the number of classes), "
                f"but got {int(batch_labels.max())}"
            )
        hit = logits.argmax(1).cpu() == batch_labels.cpu()
        clean_correct[start : start + batch.shape[0]] = hit
        loss_fn = cross_entropy_loss(logits_fn, batch_labels)
        for row, eps in enumerate(eps_values):
            if eps == 0:
                correct[row, start : start + batch.shape[0]] = hit
                continue
            adversarial = _attack(loss_fn, batch, eps, attack, norm, steps, step_size, seed + index)
            with torch.no_grad():
                predicted = logits_fn(adversarial).argmax(1).cpu()
            correct[row, start : start + batch.shape[0]] = hit & (predicted == batch_labels.cpu())
    per_sample = correct.numpy().astype(np.float64)
    return AttackResult.of_outcomes(
        per_sample,
        eps_values,
        metric="robust_accuracy",
        attack=attack,
        norm=norm,
        steps=_steps_taken(attack, steps),
        clean=float(clean_correct.double().mean()),
    )


def feature_drift(
    features_fn: TensorFn,
    images: torch.Tensor,
    eps_list: Sequence[float] | np.ndarray,
    *,
    attack: str = "pgd",
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    batch_size: int = 64,
    seed: int = 0,
) -> AttackResult:
    """Label-free drift: push each embedding away from its clean value, report cosine drift.

    The attack maximises ``1 - cos(f(x_adv), f(x))``; the value is ``1 - mean cos``.
    That distance has zero gradient at the clean images, so ``"fgsm"`` here takes its
    single step of size eps from a random start in the ball (R+FGSM, Tramer et al. 2018)
    instead of from the clean images.

    Args:
        features_fn: pixel-space images -> features (n, d), e.g. from ``from_backbone``.
        images: float (n, 3, H, W) in [0, 1].
        eps_list: budgets in pixel units; 0 gives drift 0 exactly.
        attack: ``"pgd"``, ``"fgsm"`` or ``"random"`` (noise of the same norm).
        norm: ``"linf"`` or ``"l2"``.
        steps: PGD steps.
        step_size: PGD step size (``2.5 * eps / steps`` when None).
        batch_size: images attacked at once, to bound memory.
        seed: seed of random starts and noise.

    Returns:
        An AttackResult with metric ``"feature_drift"`` (``clean`` is 0).
    """
    images = _images(images)
    eps_values, attack, norm, batch_size = _settings(
        eps_list, attack, norm, steps, step_size, batch_size
    )
    drift = torch.zeros(len(eps_values), images.shape[0], dtype=torch.float64)
    for index, start in enumerate(range(0, images.shape[0], batch_size)):
        batch = images[start : start + batch_size]
        with torch.no_grad():
            clean = features_fn(batch)
        if clean.ndim != 2 or clean.shape[0] != batch.shape[0]:
            raise ValueError(
                f"Expected features of shape ({batch.shape[0]}, d), but got {tuple(clean.shape)}"
            )
        loss_fn = feature_distance_loss(features_fn, clean)
        for row, eps in enumerate(eps_values):
            if eps == 0:
                continue  # the clean embedding itself: drift exactly 0
            if attack == "fgsm":
                adversarial = pgd(
                    loss_fn, batch, eps, norm=norm, steps=1, step_size=eps, seed=seed + index
                )
            else:
                adversarial = _attack(
                    loss_fn, batch, eps, attack, norm, steps, step_size, seed + index
                )
            with torch.no_grad():
                cosine = F.cosine_similarity(
                    features_fn(adversarial).double(), clean.double(), dim=1
                )
            drift[row, start : start + batch.shape[0]] = (1 - cosine).cpu()
    per_sample = drift.numpy()
    return AttackResult.of_outcomes(
        per_sample,
        eps_values,
        metric="feature_drift",
        attack=attack,
        norm=norm,
        steps=_steps_taken(attack, steps),
        clean=0.0,
    )


# --------------------------------------------------------------------------- internals


def _attack(
    loss_fn: LossFn,
    images: torch.Tensor,
    eps: float,
    attack: str,
    norm: str,
    steps: int,
    step_size: float | None,
    seed: int,
) -> torch.Tensor:
    if attack == "fgsm":
        return fgsm(loss_fn, images, eps, norm=norm)
    if attack == "random":
        return random_noise(images, eps, norm=norm, seed=seed)
    return pgd(loss_fn, images, eps, norm=norm, steps=steps, step_size=step_size, seed=seed)


def _steps_taken(attack: str, steps: int) -> int:
    return {"fgsm": 1, "random": 0}.get(attack, steps)


def _gradient(loss_fn: LossFn, x: torch.Tensor) -> torch.Tensor:
    """d sum(loss) / d x, and nothing else: no .grad lands on any parameter."""
    # inference_mode(False) + enable_grad let this work even inside a caller's
    # inference_mode/no_grad block; autograd.grad only returns the input's gradient.
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        loss = loss_fn(x)
        if loss.ndim > 1 or (loss.ndim == 1 and loss.shape[0] != x.shape[0]):
            raise ValueError(
                f"Expected loss_fn to return shape ({x.shape[0]},) or a scalar, "
                f"but got {tuple(loss.shape)}"
            )
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return grad.detach()


def _ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / _per_image_norm(grad).clamp_min(1e-12)


def _per_image_norm(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def _project(x: torch.Tensor, clean: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Onto the eps ball around ``clean``, then onto [0, 1] (which only shrinks delta)."""
    delta = x.detach() - clean
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _per_image_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return (clean + delta).clamp_(0, 1)


def _random_delta(
    images: torch.Tensor, eps: float, norm: str, seed: int, *, uniform: bool
) -> torch.Tensor:
    """Random perturbation on the CPU with its own generator: same seed, same bits anywhere.

    ``uniform`` draws inside the ball (PGD's start); otherwise on its surface (the noise
    baseline spends the whole budget, like the attack).
    """
    generator = torch.Generator().manual_seed(int(seed))
    shape = tuple(images.shape)
    if norm == "linf":
        if uniform:
            delta = (torch.rand(shape, generator=generator) * 2 - 1) * eps
        else:
            delta = (torch.randint(0, 2, shape, generator=generator) * 2 - 1).float() * eps
    else:
        delta = torch.randn(shape, generator=generator)
        delta = delta / _per_image_norm(delta).clamp_min(1e-12) * eps
        if uniform:
            delta = delta * torch.rand((shape[0], 1, 1, 1), generator=generator)
    return delta.to(images.device, images.dtype)


def _images(images: Any) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        images = _checks.as_tensor(images, "images", dtype=torch.float32)
    if not images.is_floating_point():
        raise ValueError(f"Expected images to be floats in [0, 1], but got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
        raise ValueError(f"Expected images of shape (n, 3, H, W), but got {tuple(images.shape)}")
    images = images.detach()
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError(
            f"Expected images in [0, 1] (before normalisation), but got values in "
            f"[{float(images.min()):.4g}, {float(images.max()):.4g}]"
        )
    return images


def _eps(eps: Any, name: str = "eps") -> float:
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"Expected {name} to be a number, but got {eps!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"Expected {name} to be finite and >= 0, but got {eps!r}")
    return value


def _norm(norm: Any) -> str:
    if norm not in NORMS:
        raise ValueError(f"Expected norm to be one of {NORMS}, but got {norm!r}")
    return str(norm)


def _settings(
    eps_list: Any, attack: str, norm: str, steps: int, step_size: float | None, batch_size: int
) -> tuple[tuple[float, ...], str, str, int]:
    """Check the arguments shared by the metrics up front, before any forward pass."""
    if isinstance(eps_list, (str, bytes, int, float)) or not hasattr(eps_list, "__iter__"):
        raise ValueError(f"Expected eps_list to be a sequence of numbers, but got {eps_list!r}")
    eps_values = tuple(_eps(e) for e in eps_list)
    if not eps_values:
        raise ValueError("Expected at least one eps in eps_list, but got none")
    if attack not in ATTACKS:
        raise ValueError(f"Expected attack to be one of {ATTACKS}, but got {attack!r}")
    if not _positive_int(steps):
        raise ValueError(f"Expected steps to be a positive integer, but got {steps!r}")
    if step_size is not None:
        _eps(step_size, "step_size")
    if not _positive_int(batch_size):
        raise ValueError(f"Expected batch_size to be a positive integer, but got {batch_size!r}")
    return eps_values, attack, _norm(norm), batch_size


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
