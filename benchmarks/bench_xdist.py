"""A cold run of a suite, serial against ``pytest -n N``, in one run of this script.

Each leg starts from an empty cache directory of its own (cold: every feature computed), in a
subprocess as a user runs it, with the suites' own ini file. Under xdist every worker loads
the models it needs and shares the cache (per-entry locks: a set one worker computes, the
other reads); on the CPU each worker takes ``cores // N`` intra-op threads (unless
``OMP_NUM_THREADS`` is set), so ``-n 2`` on 2 cores runs two 1-thread processes instead of two
that each take both cores. Prints the wall times and the ratio (-n over serial: below 1 is
faster). Needs pytest-xdist (a test extra). Run from the repo root:

    python benchmarks/bench_xdist.py [--workers 2] [SUITE ...]

SUITE defaults to ``example_suites/`` (about 4 minutes cold per leg on 2 cores); a single
file such as ``example_suites/test_clean_representation.py`` is quicker.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def leg(suites: list[str], workers: int, scratch: Path) -> tuple[float, str]:
    cache = scratch / f"cache-n{workers}"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *suites]
    command += [f"--sslrobust-cache-dir={cache}", f"--sslrobust-report={scratch}/r{workers}.html"]
    if workers:
        command += ["-n", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode not in (0, 1):
        sys.exit(f"bench_xdist: {' '.join(command)} exited {done.returncode}:\n{done.stdout}")
    return elapsed, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", default=["example_suites/"])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cold runs of {' '.join(args.suites)} on {cores} cores")
    with tempfile.TemporaryDirectory(prefix="bench-xdist-") as scratch:
        serial, serial_line = leg(args.suites, 0, Path(scratch))
        print(f"serial     {serial:7.1f} s   {serial_line}")
        parallel, parallel_line = leg(args.suites, args.workers, Path(scratch))
        print(f"-n {args.workers:<7} {parallel:7.1f} s   {parallel_line}")
    print(f"ratio (-n {args.workers} / serial): {parallel / serial:.2f}")


if __name__ == "__main__":
    main()
