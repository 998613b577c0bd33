"""Study 5: adversarial susceptibility of contrastive and supervised representations.

After Gupta et al. (REFERENCE section 1), who find contrastive SSL representations more
susceptible to small adversarial perturbations than supervised ones. Two views:
- robust accuracy of the linear-probe readout under an L-inf PGD attack on the pixels
  (10 steps, budgets in [0, 1] pixel units), which needs labels;
- label-free feature drift, 1 - cos(f(x), f(x + delta)), when PGD pushes each embedding
  away from its clean value: a property of the representation alone.
Each (model, image, budget) outcome is cached; a warm run attacks nothing. Thresholds were
measured on the embedded default (64 px, 128 test images, seed 0) and carry a margin.
"""

from __future__ import annotations

from pytest_sslrobust import assert_robust_accuracy_above

EPS = (0.0, 1 / 255, 2 / 255, 4 / 255)
IMAGES = 128


def test_robust_accuracy_curve(sslrobust):
    """Robust accuracy through the probe at each budget; the contract is at 1/255.

    Measured (embedded default): see docs/bundled-models.md for the curves. At 1/255
    (invisible) the probe must keep 0.15 (above chance 0.1, decided on the 95% interval's
    low end); at 4/255 both small models are near zero, as undefended ImageNet models are
    at 4/255 (RobustBench: ~0% for standard ResNet-50).
    """
    result = sslrobust.attack(EPS, readout="linear-probe", images=IMAGES)
    sslrobust.report.attack(result)
    assert result.values[0] == result.clean
    assert list(result.values) == sorted(result.values, reverse=True), result.values
    assert_robust_accuracy_above(result, 0.15, eps=1 / 255, confidence=0.95)


def test_feature_drift_grows_with_budget(sslrobust):
    """Label-free drift of the embedding under PGD: zero at eps 0, growing with eps."""
    drift = sslrobust.attack(EPS, metric="feature_drift", images=IMAGES)
    sslrobust.report.attack(drift)
    assert drift.values[0] == 0.0
    assert all(a < b for a, b in zip(drift.values[1:], drift.values[2:])), drift.values


def test_contrastive_drifts_more_than_supervised(sslrobust_models):
    """Gupta et al.'s finding as a contract: at 2/255 the contrastive model's embedding
    drifts further than the supervised one's. Skips unless the run has both paradigms.

    Measured (embedded default): see docs/bundled-models.md.
    """
    contrastive, supervised = sslrobust_models.pair("contrastive", "supervised")
    drift = {
        facade.backbone.name: facade.attack(EPS, metric="feature_drift", images=IMAGES)
        for facade in (contrastive, supervised)
    }
    at = EPS.index(2 / 255)
    c = drift[contrastive.backbone.name].values[at]
    s = drift[supervised.backbone.name].values[at]
    assert c > s, f"contrastive drift {c:.4f} is not above supervised drift {s:.4f} at 2/255"
