"""Ray executor: one feature set on 1 actor against 2 actors (or N), in one run of this script.

A local Ray instance with as many CPUs as this machine has; the actors load the bundled
supervised model once (outside the timing: a first, small set warms each pool up), then
compute the same on-the-fly corrupted set cold (no disk tier: units come back through Ray's
object store). The in-process extraction of the same set is timed too, and all three are
checked bit-identical. Prints wall times and the speed-ups (above 1 is faster). Needs the
``ray`` extra. Run from the repo root:

    python benchmarks/bench_ray.py [--images 539] [--variant zoom_blur-s3] [--actors 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, default=539, help="items of the set (539: the whole test split)"
    )
    parser.add_argument("--variant", default="zoom_blur-s3")
    parser.add_argument("--actors", type=int, default=2, help="the larger pool")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import warnings

    import ray
    import torch

    warnings.simplefilter("ignore")  # the small warm-up set's "too few images" warning

    from pytest_sslrobust.backbones.loading import load_backbone
    from pytest_sslrobust.data.bundled import load_bundled
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.ray_executor import RayExecutor, WorkerSpec
    from pytest_sslrobust.features.store import FeatureStore

    backbone, dataset = load_backbone("bundled-supervised"), load_bundled("textured-digits")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def store(executor: RayExecutor | None, max_images: int) -> FeatureStore:
        return FeatureStore(
            backbone,
            dataset,
            FeatureCache(None),
            max_images=max_images,
            batch_size=args.batch_size,
            executor=executor,
        )

    started = time.perf_counter()
    reference = store(None, args.images).get(args.variant)
    local = time.perf_counter() - started
    print(f"{args.images} images of {args.variant}, bundled-supervised, {cores} cores")
    print(f"in process      {local:7.1f} s")
    paths = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    ray.init(
        address="local",
        num_cpus=cores,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": paths}},
    )
    times = {}
    try:
        for actors in (1, args.actors):
            executor = RayExecutor(None, WorkerSpec.of, actors=actors)
            store(executor, 20).get("original")  # start the actors, load the model
            started = time.perf_counter()
            result = store(executor, args.images).get(args.variant)
            times[actors] = time.perf_counter() - started
            executor.shutdown()
            same = torch.equal(result.features, reference.features)
            print(f"Ray, {actors} actor(s) {times[actors]:7.1f} s   bit-identical: {same}")
    finally:
        ray.shutdown()
    print(f"speed-up of {args.actors} actors over 1: {times[1] / times[args.actors]:.2f}")
    print(f"speed-up of {args.actors} actors over in process: {local / times[args.actors]:.2f}")


if __name__ == "__main__":
    main()
