"""False alarms and power of release-gate rules on simulated, correlated releases.

The model (printed with the figures): image i has a latent difficulty z_i ~ N(0, 1) shared by
every result; result c scores it with a margin a_ci = mu + s (rho z_i + sqrt(1 - rho^2) e_ci);
a release is right on it when a_ci + tau u_ci > 0, with u ~ N(0, 1) drawn afresh for every
release (retraining noise). So two releases of equal quality agree on most images and
differ on a few ("churn"), as retrained models do. A release with a true 1-point drop on
one result is an unchanged release with 1% of the images (100 of 10,000) that result got
right turned wrong. ``--images`` changes the number of images (default 10,000).

Rules, each deciding on the 50 results of a release against the previous release's:
- paired gate: exact one-sided McNemar per result, Holm across the 50 at 1 - 0.95
  (pytest_sslrobust.paired, the functions the gate is to use);
- today's unpaired rule (tolerance 0): a regression when the baseline value is above the
  upper end of the candidate's own 95% bootstrap interval (for a mean of 0/1 outcomes the
  bootstrap distribution is Binomial(n, p)/n, used exactly);
- static tolerance (pytest-benchmark's habit): a regression when the value dropped by more
  than the tolerance, 0 (syrupy's exact equality) or 0.5 points.

Also measures the packed size of 50,000 images x 75 cells of outcomes. About a minute on
2 cores. Run from the repo root:  python benchmarks/bench_gate.py [--releases 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import binom

from pytest_sslrobust.paired import holm, mcnemar_worse, pack_outcomes

IMAGES = 10_000
RESULTS = 50
CONFIDENCE = 0.95
DROP = 0.01


def release(margins: np.ndarray, tau: float, rng: np.random.Generator) -> np.ndarray:
    """Per-image correctness (results x images) of one release."""
    noise = rng.standard_normal(margins.shape, dtype=np.float32)
    return margins + tau * noise > 0


def drop(outcomes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same outcomes with DROP of the images turned from right to wrong."""
    worse = outcomes.copy()
    right = np.flatnonzero(worse)
    worse[rng.choice(right, size=round(DROP * outcomes.size), replace=False)] = False
    return worse


def decisions(base: np.ndarray, cand: np.ndarray) -> dict[str, np.ndarray]:
    """Which results each rule flags as regressions, one boolean per result."""
    n = base.shape[1]
    base_acc, cand_acc = base.mean(axis=1), cand.mean(axis=1)
    pvalues = [mcnemar_worse(b, c).p for b, c in zip(base, cand, strict=True)]
    high = binom.ppf(1 - (1 - CONFIDENCE) / 2, n, cand_acc) / n
    worsening = base_acc - cand_acc
    return {
        "paired gate (McNemar + Holm)": np.array(holm(pvalues, 1 - CONFIDENCE)),
        "today's unpaired rule, tolerance 0": base_acc - high > 1e-12,
        "static tolerance 0 (exact)": worsening > 1e-12,
        "static tolerance 0.5 points": worsening > 0.005 + 1e-12,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rho", type=float, default=0.6, help="correlation of results")
    parser.add_argument("--tau", type=float, default=0.35, help="retraining noise")
    parser.add_argument("--images", type=int, default=IMAGES, help="images per result")
    args = parser.parse_args()
    images = args.images
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    difficulty = rng.standard_normal(images)
    own = rng.standard_normal((RESULTS, images))
    margins = (1.35 + 2.0 * (args.rho * difficulty + np.sqrt(1 - args.rho**2) * own)).astype(
        np.float32
    )
    first, second = release(margins, args.tau, rng), release(margins, args.tau, rng)
    churn = float((first != second).mean())
    accuracy = float(first.mean())
    print(
        f"model: {images} images, {RESULTS} results, mean accuracy {accuracy:.3f}, "
        f"correlation of results {args.rho}, retraining noise tau {args.tau}: two "
        f"unchanged releases disagree on {100 * churn:.1f}% of image-results"
    )
    alarms: dict[str, int] = {}
    caught: dict[str, int] = {}
    for _ in range(args.releases):
        base = release(margins, args.tau, rng)
        same = release(margins, args.tau, rng)
        for rule, flagged in decisions(base, same).items():
            alarms[rule] = alarms.get(rule, 0) + bool(flagged.any())
        worse = same.copy()
        worse[0] = drop(same[0], rng)
        for rule, flagged in decisions(base, worse).items():
            caught[rule] = caught.get(rule, 0) + bool(flagged[0])
    print(
        f"{args.releases} unchanged releases and {args.releases} with a true "
        f"{100 * DROP:g}-point drop on one of the {RESULTS} results (seed {args.seed}):"
    )
    width = max(map(len, alarms))
    print(f"{'rule'.ljust(width)}  false alarms (session)  power (1-point drop)")
    for rule in alarms:
        print(
            f"{rule.ljust(width)}  {alarms[rule] / args.releases:>22.3f}  "
            f"{caught[rule] / args.releases:>20.3f}"
        )
    cells = np.random.default_rng(1).random((75, 50_000)) < 0.75
    packed = pack_outcomes(cells)
    print(
        f"packed outcomes, 50,000 images x 75 cells at accuracy 0.75 (independent bits, the "
        f"worst case for compression): {len(packed) / 1e6:.2f} MB as base64"
    )
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
