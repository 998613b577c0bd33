"""Linear CKA in feature space vs the n x n Gram formula: time and peak memory.

Each measurement runs in its own subprocess and reads its peak resident memory from
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (torch's CPU allocations are invisible to
tracemalloc); "extra" is the peak during the call minus the peak after the inputs were made.
The Gram formula needs two n x n float64 matrices (40 GB at n = 50,000), so it is measured at
smaller n and extrapolated to 50,000 as O(n^2) memory and O(n^2 d) time. Takes about a minute
on 2 cores. Run from the repo root:  python benchmarks/bench_cka.py [--d 768]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from pytest_sslrobust.metrics.similarity import linear_cka

GRAM_N = (10_000, 15_000)
LARGE_N = 50_000
REPEATS = 2  # best of: the machine is shared, the minimum is the least disturbed run


def gram_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """The textbook formula: K = X X^T, L = Y Y^T, HSIC = tr(K H L H) = <HKH, HLH>.

    Centring is done in place from row and column means (not by multiplying with an explicit
    H, which would be O(n^3)), so this is the Gram formula at its cheapest.
    """

    def centred_gram(a: torch.Tensor) -> torch.Tensor:
        a = a.to(torch.float64)
        gram = a @ a.T
        means = gram.mean(0)
        return gram.sub_(means[None, :]).sub_(means[:, None]).add_(means.mean())

    k = centred_gram(x)
    l_ = centred_gram(y)
    hsic = torch.dot(k.reshape(-1), l_.reshape(-1))
    return float(hsic / (torch.linalg.vector_norm(k) * torch.linalg.vector_norm(l_)))


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(method: str, n: int, d: int) -> None:
    """Runs in a subprocess: make float32 data, time the best of REPEATS calls, print JSON."""
    function = {"linear": linear_cka, "gram": gram_cka}[method]
    warm = torch.randn(64, 8)
    function(warm, warm)  # first-call BLAS/thread start-up is not part of the cost
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=generator)
    # Built in place: a temporary here would raise the baseline peak and hide the call's.
    y = torch.randn(n, d, generator=generator).add_(x, alpha=0.5)
    before = _max_rss_mb()
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        value = function(x, y)
        seconds.append(time.perf_counter() - start)
    peak = _max_rss_mb()
    print(json.dumps({"seconds": min(seconds), "extra_mb": peak - before, "value": value}))


def measure(method: str, n: int, d: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", method, str(n), str(d)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "N", "D"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, n, d = args.worker
        worker(method, int(n), int(d))
        return
    d = args.d
    print(
        f"linear CKA, d = {d}, float32 inputs computed in float64, "
        f"{torch.get_num_threads()} torch threads; best of {REPEATS} runs per row, each row in "
        "its own process"
    )
    print(f"{'n':>7}  {'method':<22} {'time_s':>8} {'extra_peak_MB':>14} {'cka':>10}")
    rows: dict[tuple[str, int], dict[str, float]] = {}
    for n in (*GRAM_N, LARGE_N):
        methods = ("linear", "gram") if n in GRAM_N else ("linear",)
        for method in methods:
            row = rows[method, n] = measure(method, n, d)
            label = "linear_cka" if method == "linear" else "n x n Gram formula"
            print(
                f"{n:>7}  {label:<22} {row['seconds']:>8.2f} {row['extra_mb']:>14.0f} "
                f"{row['value']:>10.6f}"
            )
    for n in GRAM_N:
        gram, linear = rows["gram", n], rows["linear", n]
        print(
            f"measured n = {n}: Gram / linear_cka time x{gram['seconds'] / linear['seconds']:.1f}, "
            f"extra peak memory x{gram['extra_mb'] / max(linear['extra_mb'], 1.0):.1f}"
        )
    base_n = GRAM_N[-1]
    factor = (LARGE_N / base_n) ** 2
    gram_time = rows["gram", base_n]["seconds"] * factor
    gram_mb = rows["gram", base_n]["extra_mb"] * factor
    linear = rows["linear", LARGE_N]
    print(
        f"EXTRAPOLATED n = {LARGE_N} Gram formula (from n = {base_n}, x{factor:.1f}): "
        f"time ~{gram_time:.0f} s (O(n^2 d)), extra peak memory ~{gram_mb / 1024:.1f} GB (O(n^2); "
        f"two n x n float64 Grams alone are {2 * LARGE_N**2 * 8 / 1e9:.0f} GB) - does not fit here"
    )
    print(
        f"n = {LARGE_N}: linear_cka measured {linear['seconds']:.2f} s, "
        f"{linear['extra_mb']:.0f} MB extra; EXTRAPOLATED Gram / linear_cka: "
        f"time x{gram_time / linear['seconds']:.0f}, "
        f"memory x{gram_mb / max(linear['extra_mb'], 1.0):.0f}"
    )


if __name__ == "__main__":
    main()
