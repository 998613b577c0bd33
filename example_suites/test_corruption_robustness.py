"""Study 1: corruption robustness across training paradigms.

After "Corruption robustness of self-supervised and supervised representations" (ICCV-W 2023
poster; REFERENCE section 1): every backbone is read out by a linear probe fitted on clean
training features, then scored on the run's corruption sweep (default: the 15 ImageNet-C
corruptions that define mCE, x 5 severities; ``--sslrobust-corruptions=all`` adds the 4
validation ones). Errors are normalised
by a reference model measured under the same protocol (mCE; AlexNet's published table only
applies to the released ImageNet-C files), and the report shows severity curves with the SSIM
of each cell, which explains why some corruptions hurt less than their severity suggests.
The attribution part asks the poster's second question: do corruptions move the evidence a
model uses away from the object?

Thresholds were measured on the embedded default (bundled-simclr and bundled-supervised on
bundled:textured-digits, 539 test images, seed 0) and carry a margin; the comments give the
measured values and what real models score. They are sanity contracts that the weak
embedded contrastive model also passes; gate your own model on its baseline
(``--sslrobust-save`` / ``--sslrobust-compare``, docs/gating-in-ci.md).
"""

from __future__ import annotations

import pytest

from pytest_sslrobust import (
    assert_accuracy_drop_below,
    assert_focus_shift_below,
    assert_mce_below,
)
from pytest_sslrobust.metrics.corruption import ProtocolMismatch, check_protocols, mce
from pytest_sslrobust.vocabulary import COMMON

# Normalises every model's errors when the AlexNet table does not apply (it does only for the
# released ImageNet-C files): --sslrobust-reference-model, else a supervised model of the run,
# else this one, measured under the same protocol, as the poster uses its supervised ResNet-50.
FALLBACK_REFERENCE = "bundled-supervised"
# Corruptions whose maps are compared with the clean maps (one or two per family): the
# contract is at severity 3, the report shows the shift at every severity.
FOCUS_CORRUPTIONS = ("gaussian_noise", "defocus_blur", "fog", "contrast", "pixelate")
FOCUS_VARIANTS = tuple(f"{name}-s3" for name in FOCUS_CORRUPTIONS)
FOCUS_IMAGES = 48


def _reference_spec(sslrobust, sslrobust_models):
    if sslrobust.settings.reference_model:
        return sslrobust.settings.reference_model
    supervised = sslrobust_models.by_paradigm("supervised")
    return supervised[0].backbone.spec if supervised else FALLBACK_REFERENCE


def _reference(sslrobust, sslrobust_models, errors):
    """AlexNet's table where it is valid (released ImageNet-C), else the reference model; a
    reference measured on other corrupted images is refused with the reason (a skip), not
    turned into a failed contract."""
    try:
        mce(errors, "alexnet")
        return "alexnet"
    except ProtocolMismatch:
        pass
    spec = _reference_spec(sslrobust, sslrobust_models)
    reference = sslrobust.with_model(spec).corruption_errors(readout="linear-probe")
    try:
        check_protocols(errors, reference)
    except ProtocolMismatch as exc:
        pytest.skip(
            f"no mCE against {spec}: {exc} With models of different input sizes use "
            "--sslrobust-corruption-protocol=imagenet-c (corrupted before each model's "
            "resize) or the released ImageNet-C files"
        )
    return reference


def test_mce_against_the_reference(sslrobust, sslrobust_models):
    """mCE of each backbone, 100 = as robust as the reference model.

    Measured (embedded default, 15 corruptions x 5 severities, 539 images): bundled-simclr
    428.3 [419.4, 437.1], bundled-supervised 100.0 [90.8, 109.8] (it is the reference). The
    contrastive model is near chance on clean digits (error 0.84), so every cell's error is
    about 4 times the supervised one's. Limit 500 on the interval's upper end, which for that
    model is a formality (chance everywhere reads about 450 against this reference): the
    contract has teeth for models above chance, which must stay within 5 times the
    reference's errors. On real models gate at 100 against a supervised reference, or
    use AlexNet-normalised mCE on the released ImageNet-C files (ResNet-50 76.7; SSL
    ResNet-50s under a linear probe 70-90, ViTs 40-60).
    """
    missing = sorted(set(COMMON) - {c.name for c in sslrobust.corruptions()})
    if missing:
        pytest.skip(
            f"mCE is the mean over the 15 common corruptions; this run's sweep lacks "
            f"{len(missing)} ({', '.join(missing[:3])}, ...): run with "
            "--sslrobust-corruptions=common (the default) or all"
        )
    errors = sslrobust.corruption_errors(readout="linear-probe")
    reference = _reference(sslrobust, sslrobust_models, errors)
    sslrobust.report.corruption(errors, reference=reference)
    assert_mce_below(errors, 500.0, reference=reference, confidence=0.95)


def test_worst_corruption_is_bounded(sslrobust):
    """The corruption that hurts most, at the middle severity, against clean accuracy.

    Measured (embedded default): bundled-supervised loses 0.41 under shot_noise-s3;
    bundled-simclr loses 0.07 under contrast-s3 (it has little above chance to lose). Limit 0.75: a model that collapses to chance under one
    corruption from a high clean accuracy fails. Real models lose 0.3-0.6 top-1 on their
    worst ImageNet-C corruption at severity 3.
    """
    errors = sslrobust.corruption_errors(readout="linear-probe")
    worst = max(errors.errors, key=lambda name: errors.errors[name][2])
    clean = sslrobust.predictions("original", readout="linear-probe")
    corrupted = sslrobust.predictions(f"{worst}-s3", readout="linear-probe")
    assert_accuracy_drop_below(
        clean,
        corrupted,
        0.75,
        labels=sslrobust.features("original"),
        label=f"worst corruption: {worst}-s3",
    )


def test_corruptions_keep_the_focus(sslrobust):
    """Grad-CAM maps (through the probe, for the true class) of the clean and corrupted
    images: how far does each corruption move the evidence (1 - Spearman of the maps)?

    Measured (embedded default, 48 images): bundled-supervised 0.01 (pixelate) to 0.30
    (fog), bundled-simclr 0.11 (pixelate) to 0.67 (fog): the weaker representation's
    evidence moves more. Limit 0.9 at severity 3: above it a corruption leaves the clean
    map's ranking essentially unrelated (1.0), the model looks elsewhere. The report shows
    the shift at every severity.
    """
    clean = sslrobust.attribution("original", target="linear-probe", images=FOCUS_IMAGES)
    every = {
        f"{name}-s{severity}": sslrobust.attribution(
            f"{name}-s{severity}", target="linear-probe", images=FOCUS_IMAGES
        )
        for name in FOCUS_CORRUPTIONS
        for severity in range(1, 6)
    }
    sslrobust.report.attribution(clean, list(every.values()))
    assert_focus_shift_below(clean, [every[v] for v in FOCUS_VARIANTS], 0.9)


def test_label_free_focus_of_both_paradigms(sslrobust_models):
    """The poster's question across paradigms, judged alike without labels: Grad-CAM of
    each embedding's agreement with its clean embedding, clean vs Gaussian noise at
    severity 3, for a contrastive and a supervised model. Skips unless the run has both.

    Measured (embedded default): rank shift bundled-simclr 0.035, bundled-supervised 0.123:
    the noise barely moves where either embedding draws from. Limit 0.3 for each.
    """
    for facade in sslrobust_models.pair("contrastive", "supervised"):
        clean = facade.attribution("original", target="similarity", images=FOCUS_IMAGES)
        noisy = facade.attribution("gaussian_noise-s3", target="similarity", images=FOCUS_IMAGES)
        assert_focus_shift_below(
            clean, noisy, 0.3, label=f"label-free focus shift ({facade.backbone.paradigm})"
        )
