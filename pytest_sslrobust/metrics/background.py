"""Background reliance (ImageNet-9, Xiao et al. 2020): the BG-Gap."""

from __future__ import annotations

from pytest_sslrobust.vocabulary import VariantError


def bg_gap(acc_mixed_same: float, acc_mixed_rand: float) -> float:
    """The BG-Gap: accuracy on mixed_same minus accuracy on mixed_rand.

    How much a model relies on background: its accuracy drop when the background comes from
    a random class instead of the object's own. Both accuracies on the same scale (fractions
    or percent; each must lie in 0..100). torchvision ResNet-50: 86.2 - 78.9 = 7.3 points.

    Example:
        >>> round(bg_gap(86.2, 78.9), 1)
        7.3
    """
    values = []
    for label, value in (("acc_mixed_same", acc_mixed_same), ("acc_mixed_rand", acc_mixed_rand)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise VariantError(f"{label} must be a number, got {value!r}") from None
        if not 0.0 <= number <= 100.0:  # also rejects nan
            raise VariantError(f"{label} must be an accuracy in [0, 1] or [0, 100], got {value!r}")
        values.append(number)
    return values[0] - values[1]
