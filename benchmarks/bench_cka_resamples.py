"""The paired CKA row of the release gate: resampled linear CKA, Gram form vs direct.

A CKA row of `--sslrobust-compare` recomputes linear CKA on both runs' cached features for
each of 1,000 paired resamples. The direct path costs O(n d^2) per resample (2,000 x 512
features: about 0.18 s, three minutes a row); wide features on at most 2,048 images take the
Gram form instead, O(n^2) per resample. Both are timed here in one run (the direct path on
fewer resamples, reported per resample) and their draws compared. About a minute on 2 cores.
Run from the repo root:  python benchmarks/bench_cka_resamples.py [--n 2000] [--d 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pytest_sslrobust.metrics.similarity import linear_cka
from pytest_sslrobust.metrics.statistics import cka_difference_resamples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--direct-resamples", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.n, args.d)).astype(np.float32)
    y = (x @ rng.normal(size=(args.d, args.d)) + rng.normal(size=(args.n, args.d))).astype(
        np.float32
    )
    y2 = y + rng.normal(size=y.shape).astype(np.float32)

    start = time.perf_counter()
    _, fast = cka_difference_resamples(x, y, x, y2, resamples=args.resamples, seed=1)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    # A wrapper is not linear_cka itself, so it takes the direct path.
    _, direct = cka_difference_resamples(
        x, y, x, y2, lambda a, b: linear_cka(a, b), resamples=args.direct_resamples, seed=1
    )
    direct_s = time.perf_counter() - start
    k = args.direct_resamples
    per_fast, per_direct = fast_s / args.resamples, direct_s / k
    print(f"n={args.n} d={args.d}, linear CKA difference, paired resamples")
    print(
        f"gram form : {args.resamples} resamples in {fast_s:.2f} s ({per_fast * 1e3:.2f} ms each)"
    )
    print(f"direct    : {k} resamples in {direct_s:.2f} s ({per_direct * 1e3:.1f} ms each)")
    print(f"speed-up per resample: {per_direct / per_fast:.0f}x")
    print(f"largest difference of the first {k} draws: {np.abs(fast[:k] - direct).max():.1e}")


if __name__ == "__main__":
    main()
