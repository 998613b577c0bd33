"""Readouts on frozen features: linear probes, weighted kNN and accuracy (calibration re-exported)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from pytest_sslrobust.metrics._checks import (
    ArrayLike,
    as_tensor,
    integer_at_least,
    not_constant,
    positive_number,
)
from pytest_sslrobust.metrics._checks import features as check_features
from pytest_sslrobust.metrics._checks import labels as check_labels
from pytest_sslrobust.metrics.calibration import (
    ReliabilityDiagram,
    confidence,
    expected_calibration_error,
    prediction_confidence,
    reliability_diagram,
)
from pytest_sslrobust.metrics.geometry import block_rows, unit_rows

__all__ = [
    "LinearProbe",
    "ProbeResult",
    "ReliabilityDiagram",
    "accuracy",
    "balanced_accuracy",
    "confidence",
    "expected_calibration_error",
    "fit_linear_probe",
    "knn_accuracy",
    "knn_classify",
    "linear_probe_cv",
    "prediction_confidence",
    "reliability_diagram",
]

_BACKENDS = ("sklearn", "torch")


@dataclass(frozen=True)
class ProbeResult:
    """Cross-validated score of a readout: mean and spread over the folds.

    Attributes:
        mean: mean of the per-fold scores.
        std: population standard deviation (ddof=0) of the per-fold scores.
        folds: the per-fold scores, in fold order.
        metric: name of the score, e.g. ``"balanced_accuracy"``.
        readout: name of the readout, e.g. ``"linear_probe"``.
        params: the settings that produced the score (regularisation, folds, seed, ...).
    """

    mean: float
    std: float
    folds: tuple[float, ...]
    metric: str
    readout: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        # the masking study's table format, e.g. "0.86 (0.01)"
        return f"{self.mean:.2f} ({self.std:.2f})"


@dataclass(frozen=True, eq=False)
class LinearProbe:
    """A fitted multinomial logistic regression on standardised features.

    Both backends end up here: ``logits = ((x - mean) / scale) @ weight.T + bias``, with the
    tensors on ``weight.device``. For two classes the first row of ``weight`` and ``bias`` is
    zero, which is the binary logistic regression scikit-learn fits.

    Attributes:
        classes: (K,) the sorted class labels seen in training; predictions are among them.
        mean: (d,) per-feature mean of the training features.
        scale: (d,) per-feature population standard deviation (1 where it is 0).
        weight: (K, d) coefficients.
        bias: (K,) intercepts.
        backend: ``"sklearn"`` or ``"torch"``, the solver that fitted it.
        params: the fitting settings and the number of solver iterations.
    """

    classes: np.ndarray
    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    backend: str
    params: Mapping[str, Any]

    def decision_function(self, x: ArrayLike) -> np.ndarray:
        """(n, K) logits of the rows of ``x``."""
        return self._logits(x).cpu().numpy()

    def predict_proba(self, x: ArrayLike) -> np.ndarray:
        """(n, K) class probabilities, columns in the order of ``classes``."""
        return torch.softmax(self._logits(x), dim=1).cpu().numpy()

    def predict(self, x: ArrayLike) -> np.ndarray:
        """(n,) predicted class labels."""
        return self.classes[self._logits(x).argmax(dim=1).cpu().numpy()]

    def score(self, x: ArrayLike, y: ArrayLike) -> float:
        """Accuracy of the predictions on ``x`` against the labels ``y``."""
        return accuracy(self.predict(x), y)

    def balanced_accuracy(self, x: ArrayLike, y: ArrayLike) -> float:
        """Balanced accuracy (mean per-class recall) of the predictions on ``x``."""
        return balanced_accuracy(self.predict(x), y)

    def as_module(self, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        """The probe as a differentiable layer, features -> logits (columns as ``classes``),
        for gradients through the readout (attacks, attribution). A copy: fitting state is
        not shared."""
        scale = self.scale.to(dtype)
        layer = torch.nn.Linear(
            self.weight.shape[1], self.weight.shape[0], dtype=dtype, device=self.weight.device
        )
        with torch.no_grad():
            # Standardisation folded into the layer: W ((x - m) / s) + b = (W / s) x + b'.
            weight = self.weight.to(dtype) / scale
            layer.weight.copy_(weight)
            layer.bias.copy_(self.bias.to(dtype) - weight @ self.mean.to(dtype))
        return layer.eval().requires_grad_(False)

    def _logits(self, x: ArrayLike) -> torch.Tensor:
        rows = check_features(x, "x", min_rows=1)
        if rows.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"Expected x to have {self.weight.shape[1]} columns like the training "
                f"features, but got {rows.shape[1]}"
            )
        rows = rows.to(self.weight.device, self.weight.dtype)
        return ((rows - self.mean) / self.scale) @ self.weight.T + self.bias


def _varying(x: torch.Tensor, name: str) -> None:
    """Refuse features without any variance: every standardised column would be 0 and the
    probe could only predict the majority class, a chance score that measures nothing."""
    if bool(torch.all(x == x[0])):
        raise ValueError(
            f"Expected {name} to vary across examples, but every feature has zero variance "
            f"(all {x.shape[0]} rows are identical): a probe on them scores chance"
        )


def _resolve_device(device: str | torch.device | None, x: ArrayLike) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(x, torch.Tensor):
        return x.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit_linear_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    *,
    C: float = 1.0,
    backend: str = "sklearn",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    max_iter: int = 1000,
    tol: float = 1e-4,
) -> LinearProbe:
    """Fit an L2-regularised multinomial logistic regression on standardised features.

    Both backends standardise each feature with the training mean and population standard
    deviation (scikit-learn's ``StandardScaler``) and minimise the same objective,
    ``mean(log loss) + ||W||^2 / (2 C n)``, which has the minimiser of scikit-learn's
    ``0.5 ||W||^2 + C sum(log loss)``; the intercepts are not penalised. The regularisation
    is fixed, not searched: ``C = 1.0`` by default, the scikit-learn default, which on
    standardised features is mild for a few thousand samples and more.

    - ``"sklearn"``: ``make_pipeline(StandardScaler(), LogisticRegression(C=C))`` with the
      lbfgs solver, on the CPU in float64.
    - ``"torch"``: full-batch :class:`torch.optim.LBFGS` (strong-Wolfe line search) on
      ``device``, in ``dtype``. With two classes a single weight vector is fitted, as
      scikit-learn does, so the penalty matches there too.

    Both stop once the largest absolute gradient entry of the objective is below ``tol`` or
    after ``max_iter`` iterations.

    Features whose rows are all identical (zero variance in every column) are refused with
    a ValueError rather than fitted to a chance-level probe.

    Args:
        train_x: (n, d) training features, not all rows identical.
        train_y: (n,) non-negative integer labels, at least two distinct classes.
        C: inverse regularisation strength, ``C > 0``.
        backend: ``"sklearn"`` or ``"torch"``.
        device: where the probe's tensors live (and the torch backend trains); by default
            ``train_x``'s device for a tensor, otherwise CUDA when available, else the CPU.
        dtype: the torch backend's precision; by default float64 on the CPU and float32
            elsewhere (GPUs are slow in float64). The sklearn backend always uses float64.
        max_iter: the most solver iterations.
        tol: gradient tolerance of the stopping rule.

    Returns:
        The fitted :class:`LinearProbe`.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x = torch.cat([torch.randn(20, 3) - 2, torch.randn(20, 3) + 2])
        >>> y = torch.cat([torch.zeros(20), torch.ones(20)]).long()
        >>> probe = fit_linear_probe(x, y, backend="torch", device="cpu")
        >>> probe.score(x, y)
        1.0
        >>> probe.predict(torch.tensor([[3.0, 3.0, 3.0]]))
        array([1])
    """
    if backend not in _BACKENDS:
        raise ValueError(f"Expected backend to be one of {_BACKENDS}, but got {backend!r}")
    positive_number(C, "C")
    positive_number(tol, "tol")
    integer_at_least(max_iter, "max_iter")
    x = check_features(train_x, "train_x", min_rows=2)
    _varying(x, "train_x")
    y = check_labels(train_y, x.shape[0], "train_y").to(x.device)
    classes, index = torch.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"Expected at least 2 classes in train_y, but got {len(classes)}")
    target = _resolve_device(device, train_x)
    params: dict[str, Any] = {"C": C, "penalty": "l2", "max_iter": max_iter, "tol": tol}
    if backend == "sklearn":
        mean, scale, weight, bias, n_iter = _fit_sklearn(x, y, C=C, max_iter=max_iter, tol=tol)
        precision = torch.float64
    else:
        precision = dtype or (torch.float64 if target.type == "cpu" else torch.float32)
        mean, scale, weight, bias, n_iter = _fit_torch(
            x.to(target, precision), index.to(target), len(classes), C=C, max_iter=max_iter, tol=tol
        )
    params.update(n_iter=n_iter, dtype=str(precision).removeprefix("torch."))
    return LinearProbe(
        classes=classes.cpu().numpy(),
        mean=mean.to(target, precision),
        scale=scale.to(target, precision),
        weight=weight.to(target, precision),
        bias=bias.to(target, precision),
        backend=backend,
        params=MappingProxyType(params),
    )


def _fit_sklearn(
    x: torch.Tensor, y: torch.Tensor, *, C: float, max_iter: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, tol=tol))
    pipeline.fit(x.cpu().numpy(), y.cpu().numpy())
    scaler, model = pipeline[0], pipeline[-1]
    weight = torch.as_tensor(model.coef_)
    bias = torch.as_tensor(model.intercept_)
    if weight.shape[0] == 1:
        # binary: scikit-learn keeps one vector, the logit of the second class over the first
        weight = torch.cat([torch.zeros_like(weight), weight])
        bias = torch.cat([torch.zeros_like(bias), bias])
    return (
        torch.as_tensor(scaler.mean_),
        torch.as_tensor(scaler.scale_),
        weight,
        bias,
        int(np.max(model.n_iter_)),
    )


def _fit_torch(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, C: float, max_iter: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    n, d = x.shape
    mean = x.mean(dim=0)
    scale = x.std(dim=0, unbiased=False)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # as StandardScaler does
    z = (x - mean) / scale
    # two classes: one free vector (the other logit is 0), the penalty scikit-learn applies
    rows = 1 if num_classes == 2 else num_classes
    weight = torch.zeros(rows, d, dtype=x.dtype, device=x.device, requires_grad=True)
    bias = torch.zeros(rows, dtype=x.dtype, device=x.device, requires_grad=True)
    strength = 1.0 / (2.0 * C * n)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        max_eval=2 * max_iter,
        tolerance_grad=tol,
        # below this the loss differences are rounding noise in the working precision
        tolerance_change=10 * torch.finfo(x.dtype).eps,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def logits() -> torch.Tensor:
        scores = z @ weight.T + bias
        if rows == 1:
            scores = torch.cat([torch.zeros_like(scores), scores], dim=1)
        return scores

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits(), y) + strength * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    n_iter = int(optimizer.state_dict()["state"][0]["n_iter"])
    if n_iter >= max_iter:
        from sklearn.exceptions import ConvergenceWarning

        # the category scikit-learn uses, so one warnings filter covers both backends
        warnings.warn(
            f"The torch L-BFGS probe stopped at max_iter={max_iter} before the gradient fell "
            f"below tol={tol}; increase max_iter or check the feature scale",
            ConvergenceWarning,
            stacklevel=3,
        )
    weight, bias = weight.detach(), bias.detach()
    if rows == 1:
        weight = torch.cat([torch.zeros_like(weight), weight])
        bias = torch.cat([torch.zeros_like(bias), bias])
    return mean, scale, weight, bias, n_iter


def linear_probe_cv(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    folds: int = 5,
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 1000,
    backend: str = "sklearn",
    device: str | torch.device | None = None,
) -> ProbeResult:
    """Balanced accuracy of a linear probe under stratified k-fold cross-validation.

    The masking study's linear evaluation: ``StratifiedKFold(folds, shuffle=True,
    random_state=seed)``; on each split a probe from :func:`fit_linear_probe` (standardise,
    then L2 logistic regression with fixed ``C``) is fitted on the training folds and scored
    with balanced accuracy on the held-out fold. The spread is the population standard
    deviation (ddof=0) of the fold scores.

    Features with zero variance in every column (all rows identical) are refused up front
    with a ValueError; a training split whose rows happen to be identical is refused by
    :func:`fit_linear_probe` the same way.

    Args:
        features: (n, d) features, not all rows identical.
        labels: (n,) non-negative integer labels; every class needs at least ``folds``
            examples.
        folds: number of folds, ``>= 2``.
        C: inverse regularisation strength of the probe.
        seed: seed of the fold shuffle; the same seed gives the same folds and scores.
        max_iter: the most solver iterations per fold.
        backend: ``"sklearn"`` or ``"torch"``, see :func:`fit_linear_probe`.
        device: the torch backend's device, see :func:`fit_linear_probe`.

    Returns:
        A :class:`ProbeResult` with metric ``"balanced_accuracy"`` and readout
        ``"linear_probe"``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x = torch.cat([torch.randn(30, 4) - 3, torch.randn(30, 4) + 3])
        >>> y = torch.cat([torch.zeros(30), torch.ones(30)]).long()
        >>> result = linear_probe_cv(x, y, folds=3)
        >>> str(result), len(result.folds)
        ('1.00 (0.00)', 3)
    """
    from sklearn.model_selection import StratifiedKFold

    integer_at_least(folds, "folds", minimum=2)
    x = check_features(features, "features", min_rows=2)
    _varying(x, "features")
    y = check_labels(labels, x.shape[0], "labels").cpu().numpy()
    counts = np.bincount(y)
    counts = counts[counts > 0]
    if len(counts) < 2:
        raise ValueError(f"Expected at least 2 classes, but got {len(counts)}")
    if counts.min() < folds:
        raise ValueError(
            f"Expected every class to have at least folds={folds} examples, but the smallest "
            f"class has {counts.min()}"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = []
    for train, test in splitter.split(np.zeros(len(y)), y):
        train_rows, test_rows = torch.as_tensor(train), torch.as_tensor(test)
        probe = fit_linear_probe(
            x[train_rows.to(x.device)],
            y[train],
            C=C,
            backend=backend,
            device=device,
            max_iter=max_iter,
        )
        scores.append(probe.balanced_accuracy(x[test_rows.to(x.device)], y[test]))
    values = np.asarray(scores)
    params = {
        "C": C,
        "penalty": "l2",
        "folds": folds,
        "seed": seed,
        "max_iter": max_iter,
        "backend": backend,
    }
    return ProbeResult(
        mean=float(values.mean()),
        std=float(values.std(ddof=0)),
        folds=tuple(float(s) for s in scores),
        metric="balanced_accuracy",
        readout="linear_probe",
        params=MappingProxyType(params),
    )


def knn_classify(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
) -> np.ndarray:
    """Weighted k-nearest-neighbour classification (DINO's kNN evaluation).

    Features are L2-normalised; each test row takes its ``k`` training rows of highest
    cosine similarity ``s``, each votes for its class with weight ``exp(s / temperature)``,
    and the class with the largest total wins (the smallest label on a tie). Test rows are
    processed in blocks so the similarity matrix never exists in full.

    Args:
        train_x: (n_train, d) training features, no all-zero rows.
        train_y: (n_train,) non-negative integer labels.
        test_x: (n_test, d) features to classify, no all-zero rows.
        k: number of neighbours, ``1 <= k <= n_train``.
        temperature: softness of the vote weights, ``> 0``; DINO uses 0.07.
        num_classes: number of classes; by default ``max(train_y) + 1``.

    Returns:
        (n_test,) int64 array of predicted labels.

    Example:
        >>> import torch
        >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> knn_classify(train, torch.tensor([0, 0, 1, 1]), torch.tensor([[0.2, 1.0]]), k=3)
        array([1])
    """
    positive_number(temperature, "temperature")
    train = check_features(train_x, "train_x", min_rows=1)
    y = check_labels(train_y, train.shape[0], "train_y").to(train.device)
    test = check_features(test_x, "test_x", min_rows=1).to(train.device)
    if test.shape[1] != train.shape[1]:
        raise ValueError(
            f"Expected test_x to have {train.shape[1]} columns like train_x, but got "
            f"{test.shape[1]}"
        )
    integer_at_least(k, "k")
    if k > train.shape[0]:
        raise ValueError(
            f"Expected k to be at most the number of training rows ({train.shape[0]}), but got {k}"
        )
    classes = int(y.max()) + 1
    if num_classes is not None:
        integer_at_least(num_classes, "num_classes")
        if num_classes < classes:
            raise ValueError(
                f"Expected num_classes to exceed the largest label ({classes - 1}), "
                f"but got {num_classes}"
            )
        classes = num_classes
    if train.shape[0] > 1:
        # identical training rows are all equally near: the chosen neighbours are arbitrary
        not_constant(train, "train_x")
    bank = unit_rows(train, "train_x")
    queries = unit_rows(test, "test_x")

    predictions = torch.empty(queries.shape[0], dtype=torch.int64, device=bank.device)
    step = block_rows(bank.shape[0])
    for start in range(0, queries.shape[0], step):
        block = queries[start : start + step]
        similarity, nearest = (block @ bank.T).topk(k, dim=1)
        votes = torch.zeros(block.shape[0], classes, dtype=bank.dtype, device=bank.device)
        votes.scatter_add_(1, y[nearest], (similarity / temperature).exp())
        predictions[start : start + step] = votes.argmax(dim=1)
    return predictions.cpu().numpy()


def knn_accuracy(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
) -> float:
    """Accuracy of :func:`knn_classify` on labelled test features.

    Args:
        train_x: (n_train, d) training features.
        train_y: (n_train,) training labels.
        test_x: (n_test, d) test features.
        test_y: (n_test,) test labels.
        k: number of neighbours.
        temperature: softness of the vote weights.
        num_classes: number of classes; by default ``max(train_y) + 1``.

    Returns:
        Fraction of test rows classified correctly.

    Example:
        >>> import torch
        >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> y = torch.tensor([0, 0, 1, 1])
        >>> knn_accuracy(train, y, train, y, k=1)
        1.0
    """
    predicted = knn_classify(
        train_x, train_y, test_x, k=k, temperature=temperature, num_classes=num_classes
    )
    return accuracy(predicted, test_y)


def _predictions(values: ArrayLike, name: str) -> torch.Tensor:
    """Class predictions: the argmax of (n, C) scores, or (n,) integer labels as they are."""
    if as_tensor(values, name).ndim == 2:
        return check_features(values, name, min_rows=1).argmax(dim=1)
    return check_labels(values, name=name)


def accuracy(logits_or_preds: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of correct predictions.

    Args:
        logits_or_preds: (n, C) scores (the argmax is the prediction) or (n,) predicted labels.
        labels: (n,) true labels.

    Returns:
        The accuracy, in ``[0, 1]``.

    Example:
        >>> accuracy([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]], [0, 1, 1])
        0.6666666666666666
    """
    predicted = _predictions(logits_or_preds, "logits_or_preds")
    if predicted.shape[0] == 0:
        raise ValueError("Expected at least one prediction, but got none")
    truth = check_labels(labels, predicted.shape[0], "labels").to(predicted.device)
    return float((predicted == truth).to(torch.float64).mean())


def balanced_accuracy(preds: ArrayLike, labels: ArrayLike) -> float:
    """Balanced accuracy: the mean over the true classes of the per-class recall.

    Uses scikit-learn's ``balanced_accuracy_score``; it is the masking study's probe metric,
    insensitive to class imbalance (chance is ``1 / C`` whatever the class sizes).

    Args:
        preds: (n, C) scores (the argmax is the prediction) or (n,) predicted labels.
        labels: (n,) true labels.

    Returns:
        The balanced accuracy, in ``[0, 1]``.

    Example:
        >>> balanced_accuracy([0, 0, 0, 1], [0, 0, 0, 1])
        1.0
        >>> balanced_accuracy([0, 0, 0, 0], [0, 0, 0, 1])
        0.5
    """
    from sklearn.metrics import balanced_accuracy_score

    predicted = _predictions(preds, "preds")
    if predicted.shape[0] == 0:
        raise ValueError("Expected at least one prediction, but got none")
    truth = check_labels(labels, predicted.shape[0], "labels")
    return float(balanced_accuracy_score(truth.cpu().numpy(), predicted.cpu().numpy()))
