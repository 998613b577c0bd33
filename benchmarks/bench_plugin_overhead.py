"""What an installed pytest-sslrobust costs a project that does not use it.

Times ``python -m pytest -q`` on a one-test unrelated project (a scratch directory with one
plain test) with the plugin installed and active, against the same command with
``-p no:sslrobust``, and ``pytest --help`` both ways. Runs alternate (plugin, no plugin, ...)
so that machine load hits both alike; the ratio of medians is printed. Target: <= 1.2x.
Also prints which heavy libraries each run imported (none expected).

Run from the repo root:  python benchmarks/bench_plugin_overhead.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "torchvision", "timm", "numpy", "sklearn", "skimage", "scipy", "matplotlib")
REPORTER = """
import json, os, sys

def pytest_unconfigure(config):
    with open(os.environ["HEAVY_OUT"], "w") as handle:
        json.dump([m for m in json.loads(os.environ["HEAVY_NAMES"]) if m in sys.modules], handle)
"""


def timed(project: Path, args: list[str]) -> tuple[float, list[str]]:
    out = project / "loaded.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(project),
        "HEAVY_NAMES": json.dumps(HEAVY),
        "HEAVY_OUT": str(out),
    }
    command = [sys.executable, "-m", "pytest", "-p", "heavy_reporter", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, *args], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sslrobust-overhead-") as scratch:
        project = Path(scratch)
        (project / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        (project / "heavy_reporter.py").write_text(REPORTER)
        runs = {
            "one-test project": (["-q"], ["-q", "-p", "no:sslrobust"]),
            "pytest --help": (["--help"], ["--help", "-p", "no:sslrobust"]),
        }
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {options.repeats} runs each"
        )
        print(f"{'run':<18} {'with plugin':>12} {'-p no:sslrobust':>16} {'ratio':>7}  imported")
        for label, (with_plugin, without) in runs.items():
            timed(project, with_plugin)  # warm the file system and the bytecode caches
            timed(project, without)
            on: list[float] = []
            off: list[float] = []
            loaded: set[str] = set()
            for _ in range(options.repeats):
                seconds, modules = timed(project, with_plugin)
                on.append(seconds)
                loaded.update(modules)
                off.append(timed(project, without)[0])
            a, b = statistics.median(on), statistics.median(off)
            print(
                f"{label:<18} {a:>11.3f}s {b:>15.3f}s {a / b:>6.2f}x  "
                f"{', '.join(sorted(loaded)) or 'nothing heavy'}"
            )
    print("target: ratio <= 1.2x for the one-test project")


if __name__ == "__main__":
    main()
