"""Study 5: adversarial susceptibility of contrastive and supervised representations.

After Gupta et al. (REFERENCE section 1), who find contrastive SSL representations more
susceptible to small adversarial perturbations than supervised ones. Two views:
- robust accuracy of the linear-probe readout under an L-inf PGD attack on the pixels
  (10 steps, budgets in [0, 1] pixel units), which needs labels;
- label-free feature drift, 1 - cos(f(x), f(x + delta)), when PGD pushes each embedding
  away from its clean value: a property of the representation alone.
Each (model, image, budget) outcome is cached; a warm run attacks nothing. Thresholds were
measured on the embedded default (64 px, 128 test images, seed 0) and carry a margin. The
robust-accuracy contract fails on random weights; the drift contract is structural (0 at
eps 0, growing with eps, for any differentiable extractor); the last one compares
paradigms (tests/test_example_suite_teeth.py).
"""

from __future__ import annotations

import pytest

from pytest_sslrobust import assert_robust_accuracy_above

EPS = (0.0, 0.25 / 255, 0.5 / 255, 1 / 255, 2 / 255)
IMAGES = 128
ROBUST_FLOOR = 0.5
# The bundled pair (as specs: the shipped weights, not an alias pointed at another file) on
# which a paradigm finding is known not to reproduce, reported as an expected failure with
# the measured numbers; on any other pair the contract is a contract.
EMBEDDED_DEFAULT = {"bundled-simclr", "bundled-supervised"}


def test_robust_accuracy_curve(sslrobust):
    """Robust accuracy through the probe at each budget.

    Measured (embedded default), eps 0, 0.25, 0.5, 1, 2 (/255): bundled-simclr 0.930, 0.898,
    0.891, 0.859, 0.727; bundled-vicreg 0.953, 0.945, 0.938, 0.906, 0.789; bundled-supervised
    0.906, 0.867, 0.805, 0.648, 0.344; random weights 0.055 at 0.25/255. None is defended:
    undefended ImageNet models are near 0% at 4/255 (RobustBench). Contract at the smallest
    budget, 0.25/255 (a quarter of one grey level): robust accuracy at least 0.5
    (ROBUST_FLOOR; margin 0.37), and the curve never rises.
    """
    result = sslrobust.attack(EPS, readout="linear-probe", images=IMAGES)
    sslrobust.report.attack(result)
    assert result.values[0] == result.clean
    assert list(result.values) == sorted(result.values, reverse=True), result.values
    assert_robust_accuracy_above(result, ROBUST_FLOOR, eps=0.25 / 255)


def test_feature_drift_grows_with_budget(sslrobust):
    """Label-free drift of the embedding under PGD: zero at eps 0, growing with eps. A
    structural contract: it holds for any differentiable extractor, random weights too.

    Measured at 2/255: bundled-simclr 0.014, bundled-vicreg 0.010, bundled-supervised 0.079.
    """
    drift = sslrobust.attack(EPS, metric="feature_drift", images=IMAGES)
    sslrobust.report.attack(drift)
    assert drift.values[0] == 0.0
    assert list(drift.values) == sorted(set(drift.values)), drift.values


def test_contrastive_readout_is_more_susceptible(sslrobust_models):
    """Gupta et al.'s finding as a contract: under the smallest budget the contrastive
    model's probe keeps a smaller share of its clean accuracy than the supervised one's.
    A comparison: skips unless the run has both paradigms.

    Measured (embedded default) at 0.25/255: bundled-simclr keeps 0.966 of its clean
    accuracy, bundled-supervised 0.957 (at 2/255: 0.78 against 0.38): the finding does not
    reproduce, so on the embedded pair the test is an expected failure (xfail) that prints
    the numbers (docs/bundled-models.md, findings). On any other pair it is a contract.
    """
    contrastive, supervised = sslrobust_models.pair("contrastive", "supervised")
    kept = {}
    for facade in (contrastive, supervised):
        result = facade.attack(EPS, readout="linear-probe", images=IMAGES)
        kept[facade.backbone.name] = result.values[EPS.index(0.25 / 255)] / max(result.clean, 1e-12)
    c, s = kept[contrastive.backbone.name], kept[supervised.backbone.name]
    if c >= s and {contrastive.backbone.spec, supervised.backbone.spec} <= EMBEDDED_DEFAULT:
        pytest.xfail(
            f"Gupta et al.'s ordering does not reproduce on the embedded default: the "
            f"contrastive probe keeps {c:.3f} of its clean accuracy at 0.25/255, the supervised "
            f"one {s:.3f} (docs/bundled-models.md, findings)"
        )
    assert c < s, (
        f"the contrastive probe keeps {c:.3f} of its clean accuracy at 0.25/255, the "
        f"supervised one {s:.3f}: the contrastive model is not the more susceptible here"
    )
