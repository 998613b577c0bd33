"""Feature sets computed on a Ray cluster (``--sslrobust-executor=ray[:ADDRESS]``).

The controller (the pytest process) plans each missing feature set as it does in process
(:meth:`FeatureStore.plan`), cuts it into work units (a range of the set's items that starts
on a batch boundary) and runs them as tasks on actors that keep the model and the dataset
loaded. An actor rebuilds the same plan from the same settings and refuses to work when its
plan's cache key differs from the controller's (other weights, data or library versions on
that host). With a shared disk tier (a directory every host sees, or an object-store URL)
each unit is published to the cache under its own key and the controller reads it back
from there, so a unit that finished survives a crash of the controller; without one, units
come back through Ray's object store. Ray retries a unit whose actor died (the actor is
restarted); a unit is only ever served whole, checked against the items it should hold.

Ray is imported on first use only; it comes with the ``ray`` extra.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from pytest_sslrobust.features.cache import cache_key, open_cache

if TYPE_CHECKING:
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import ExtractionPlan, FeatureStore

RAY_EXTRA = 'pip install -c constraints.txt -e ".[ray]"'
# Units per actor and set: enough that a slow or restarted actor does not hold up the rest.
UNITS_PER_ACTOR = 4
# How often Ray restarts a dead actor and retries the unit it was running.
RETRIES = 3


class ExecutorError(Exception):
    """The executor could not compute a set (its message says what and how to fix it)."""


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """Everything an actor needs to rebuild the controller's model, data and plans."""

    backbone: str
    arch: str | None
    image_size: int | None
    backbone_fingerprint: str
    data: str
    dataset_fingerprint: str
    seed: int
    max_images: int | None
    batch_size: int
    segmenter: str | None
    corruption_protocol: str
    corruption_backend: str
    cache: str | None  # the shared disk tier (a path or URL), None for memory only
    device_type: str
    workers: int = 0  # loader processes of each actor
    decode: str = "cpu"  # where the JPEGs of unaltered sets are decoded

    @classmethod
    def of(
        cls, store: FeatureStore, *, arch: str | None = None, image_size: int | None = None
    ) -> WorkerSpec:
        """The spec of ``store`` (``arch`` and ``image_size``: the options its model was
        loaded with), the corruption backend as this process has it now."""
        from pytest_sslrobust.vocabulary import corruption_backend

        directory = store.cache.directory
        return cls(
            backbone=store.backbone.spec,
            arch=arch,
            image_size=image_size,
            backbone_fingerprint=store.backbone.fingerprint,
            data=store.dataset.spec,
            dataset_fingerprint=store.dataset.fingerprint,
            seed=store.seed,
            max_images=store.max_images,
            batch_size=store.batch_size,
            segmenter=store.segmenter,
            corruption_protocol=store.corruption_protocol,
            corruption_backend=corruption_backend(),
            cache=None if directory is None else str(directory),
            device_type=store.backbone.device.type,
            workers=store.workers,
            decode=store.decode,
        )


@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """Items ``start:stop`` of the set whose cache key is ``set_key``."""

    variant: Any  # a variant id, or a variant object (pickled to the actor)
    split: str
    per_class: int | None
    set_key: str
    start: int
    stop: int

    @property
    def key(self) -> str:
        """The unit's own cache key (the unit is a slice of the set it belongs to)."""
        return cache_key({"unit_of": self.set_key, "start": self.start, "stop": self.stop})


def unit_ranges(total: int, batch_size: int, parts: int) -> list[tuple[int, int]]:
    """About ``parts`` ranges covering ``0:total``, each starting on a multiple of
    ``batch_size``, so every batch of a unit is a batch of the whole set."""
    if total <= 0:
        return []
    batches = math.ceil(total / batch_size)
    per_unit = max(1, math.ceil(batches / max(1, parts)))
    return [
        (first * batch_size, min(total, (first + per_unit) * batch_size))
        for first in range(0, batches, per_unit)
    ]


def has_disk(cache: FeatureCache) -> bool:
    return cache.directory is not None


class FeatureWorker:
    """The actor: the models and datasets of the units it is given, each loaded once (every
    model of the run on every actor, as in the controller), and a store per spec."""

    def __init__(self) -> None:
        self.backbones: dict[tuple[Any, ...], Any] = {}
        self.datasets: dict[str, Any] = {}
        self.stores: dict[WorkerSpec, FeatureStore] = {}

    def _store(self, spec: WorkerSpec) -> FeatureStore:
        if spec in self.stores:
            return self.stores[spec]
        from pytest_sslrobust.backbones.loading import load_backbone
        from pytest_sslrobust.data.specs import load_dataset
        from pytest_sslrobust.features.store import FeatureStore
        from pytest_sslrobust.vocabulary import use_corruption_backend

        use_corruption_backend(spec.corruption_backend)
        model = (spec.backbone, spec.arch, spec.image_size, spec.device_type)
        if model not in self.backbones:
            device = torch.device(spec.device_type)
            loaded = load_backbone(spec.backbone, arch=spec.arch, image_size=spec.image_size)
            self.backbones[model] = loaded.to(device)
        backbone = self.backbones[model]
        if backbone.fingerprint != spec.backbone_fingerprint:
            raise ExecutorError(
                f"model {spec.backbone!r} on Ray host {os.uname().nodename} has fingerprint "
                f"{backbone.fingerprint[:12]}, the controller's {spec.backbone_fingerprint[:12]}: "
                "give every host the same weights file"
            )
        if spec.data not in self.datasets:
            self.datasets[spec.data] = load_dataset(spec.data)
        dataset = self.datasets[spec.data]
        if dataset.fingerprint != spec.dataset_fingerprint:
            raise ExecutorError(
                f"dataset {spec.data!r} on Ray host {os.uname().nodename} differs from the "
                "controller's (another fingerprint): give every host the same files"
            )
        self.stores[spec] = FeatureStore(
            backbone,
            dataset,
            open_cache(spec.cache),
            seed=spec.seed,
            max_images=spec.max_images,
            batch_size=spec.batch_size,
            segmenter=spec.segmenter,
            corruption_protocol=spec.corruption_protocol,
            workers=spec.workers,
            decode=spec.decode,
        )
        return self.stores[spec]

    def run(
        self, spec: WorkerSpec, unit: WorkUnit
    ) -> tuple[tuple[str, ...], dict[str, torch.Tensor] | None, dict]:
        """(item ids, tensors or None when published to the shared cache, counters)."""
        store = self._store(spec)
        plan = store.plan(unit.variant, unit.split, per_class=unit.per_class)
        if plan.key != unit.set_key:
            raise ExecutorError(
                f"set {plan.label!r} on Ray host {os.uname().nodename} has another provenance "
                f"than on the controller (versions there: {plan.provenance.versions}); install "
                "the same library versions on every host"
            )
        ids = plan.chosen.ids[unit.start : unit.stop]
        cache = store.cache
        before = dict(cache.stats)

        def compute() -> dict[str, torch.Tensor]:
            tensors = plan.extract(store, unit.start, unit.stop)
            return {name: tensor.cpu() for name, tensor in tensors.items()}

        if not has_disk(cache):
            cache.stats["misses"] += 1
            tensors = compute()
            return ids, tensors, _delta(before, cache.stats)
        tensors = cache.get(unit.key, compute, describe={"unit_of": unit.set_key, "ids": len(ids)})
        if has_disk(cache):  # published: the controller reads it from the disk tier
            cache.memory.pop(unit.key, None)
            return ids, None, _delta(before, cache.stats)
        # The disk tier failed on this host (warned there): the unit comes back through Ray.
        return ids, {name: t.cpu() for name, t in tensors.items()}, _delta(before, cache.stats)


def _unreachable(address: str | None, timeout: float = 5.0) -> str | None:
    """Why nothing answers at ``HOST:PORT`` (a TCP connection attempt), or None; ``auto``,
    ``ray://`` client addresses and a local cluster are left to Ray."""
    import socket

    if not address or address == "auto" or "://" in address:
        return None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"{address!r} is not HOST:PORT"
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _reason(exc: BaseException) -> str:
    """The line that says why a Ray task failed: our own error's message when an actor
    raised one (Ray wraps it in tracebacks of its own), else Ray's last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        _, found, message = line.partition(f"{ExecutorError.__name__}: ")
        if found:
            return message
    died = [line for line in lines if "died" in line.lower()]
    text = (died or lines or [type(exc).__name__])[-1]
    return f"{text} (retried {RETRIES} times)" if "died" in text.lower() else text


def _delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after if after[name]}


class RayExecutor:
    """Runs the units of planned sets on Ray actors: one pool per device type, shared by
    every model and dataset of the run (each actor loads what its units need, once).

    Args:
        address: None starts a local cluster for this run (shut down at the end); ``auto``
            or ``HOST:PORT`` joins a running one.
        spec_for: the :class:`WorkerSpec` of a store (model, data and settings).
        actors: the pool's size; default one per GPU of the cluster for a CUDA run, else
            one per CPU.
        progress: makes a progress callback for a set's label, or None.
    """

    def __init__(
        self,
        address: str | None,
        spec_for: Callable[[FeatureStore], WorkerSpec],
        *,
        actors: int | None = None,
        progress: Callable[[str], Callable[[int, int], None]] | None = None,
    ) -> None:
        self.address = address
        self.spec_for = spec_for
        self.actors = actors
        self.progress = progress
        self.started = False
        # One pool per device type, shared by every model and dataset of the run: a pool per
        # model would wait forever for the CPUs or GPUs that the first pool holds.
        self.pools: dict[str, list[Any]] = {}
        self.made: dict[str, list[str]] = {}  # set key -> its unit keys, until released

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise ExecutorError(
                f"--sslrobust-executor=ray needs Ray, which is not installed: {RAY_EXTRA}"
            ) from None
        if not ray.is_initialized():
            # The controller's import path, so that variants and segmenters defined in the
            # suite's modules unpickle on the actors (a remote host needs the same layout).
            paths = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
            problem = _unreachable(self.address)
            if problem:  # Ray itself would retry for minutes before it gave up
                raise ExecutorError(
                    f"--sslrobust-executor=ray:{self.address}: no Ray cluster there ({problem}); "
                    "start one with `ray start --head`, or use --sslrobust-executor=ray for a "
                    "local one"
                )
            try:
                ray.init(
                    address=self.address or "local",
                    include_dashboard=False,
                    configure_logging=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": {"PYTHONPATH": paths}},
                )
            except ConnectionError as exc:
                raise ExecutorError(
                    f"--sslrobust-executor=ray:{self.address}: no Ray cluster there ({exc}); "
                    "start one with `ray start --head`, or use --sslrobust-executor=ray for a "
                    "local one"
                ) from None
            self.started = True
        return ray

    def _pool(self, device_type: str) -> list[Any]:
        if device_type in self.pools:
            return self.pools[device_type]
        ray = self._ray()
        gpu = device_type == "cuda"
        resources = ray.cluster_resources()
        count = self.actors or max(1, int(resources.get("GPU" if gpu else "CPU", 1)))
        actor_class = ray.remote(
            num_cpus=1, num_gpus=1 if gpu else 0, max_restarts=RETRIES, max_task_retries=RETRIES
        )(FeatureWorker)
        self.pools[device_type] = [actor_class.remote() for _ in range(count)]
        return self.pools[device_type]

    def extract(self, store: FeatureStore, plan: ExtractionPlan) -> dict[str, torch.Tensor]:
        """The whole set of ``plan``, computed by the actors."""
        return next(self.extract_many(store, [plan]))[1]

    def extract_many(
        self, store: FeatureStore, plans: Sequence[ExtractionPlan]
    ) -> Iterator[tuple[ExtractionPlan, dict[str, torch.Tensor]]]:
        """Each of ``plans`` whole, in order: the units of every plan are submitted at once,
        so the actors go on with the next sets while the controller assembles one."""
        if len({plan.key for plan in plans}) != len(plans):
            raise ValueError("extract_many needs distinct plans (one per cache key)")
        spec = self.spec_for(store)
        actors = self._pool(spec.device_type)
        ray = self._ray()
        units = {
            plan.key: [
                WorkUnit(plan.variant, plan.split, plan.per_class, plan.key, start, stop)
                for start, stop in unit_ranges(
                    len(plan), store.batch_size, UNITS_PER_ACTOR * len(actors)
                )
            ]
            for plan in plans
        }
        for plan in plans:
            self.made[plan.key] = [unit.key for unit in units[plan.key]]
        flat = [(plan, unit) for plan in plans for unit in units[plan.key]]
        pending = {
            actors[i % len(actors)].run.remote(spec, unit): (plan, unit)
            for i, (plan, unit) in enumerate(flat)
        }
        results: dict[tuple[str, int], tuple[tuple[str, ...], Any, dict]] = {}
        done: dict[str, int] = dict.fromkeys(units, 0)
        progress = {plan.key: self.progress(plan.label) for plan in plans} if self.progress else {}
        for plan in plans:
            while done[plan.key] < len(plan):
                ready, _ = ray.wait(list(pending), num_returns=1)
                owner, unit = pending.pop(ready[0])
                try:
                    results[(owner.key, unit.start)] = ray.get(ready[0])
                except Exception as exc:
                    self._abandon(ray, pending, spec)
                    raise ExecutorError(
                        f"Ray could not compute items {unit.start}:{unit.stop} of "
                        f"{owner.label!r}: {_reason(exc)}"
                    ) from None
                done[owner.key] += unit.stop - unit.start
                if owner.key in progress:
                    progress[owner.key](done[owner.key], len(owner))
            parts = [
                self._unit_tensors(store, plan, unit, results.pop((plan.key, unit.start)))
                for unit in units[plan.key]
            ]
            store.cache.stats["ray_units"] += len(parts)
            yield plan, {name: torch.cat([part[name] for part in parts]) for name in parts[0]}

    def release(self, store: FeatureStore, plan: ExtractionPlan) -> int:
        """Drop the unit entries of ``plan``'s set once the set itself is in the disk tier
        (they would double the storage); while it is not, they stay, so a rerun after a
        crash reuses them. Returns how many went."""
        cache = store.cache
        keys = self.made.get(plan.key, [])
        if not keys or not has_disk(cache) or not cache.contains(plan.key):
            return 0
        del self.made[plan.key]
        removed = sum(cache.discard(key) for key in keys)
        cache.stats["ray_units_released"] += removed
        return removed

    def _abandon(self, ray: Any, pending: Mapping[Any, Any], spec: WorkerSpec) -> None:
        """After a unit failed for good: cancel what is queued, and let the pool go."""
        for future in pending:
            try:
                ray.cancel(future)
            except Exception:  # already finished, or not cancellable: let it be
                pass
        for actor in self.pools.pop(spec.device_type, []):
            ray.kill(actor)

    def _unit_tensors(
        self,
        store: FeatureStore,
        plan: ExtractionPlan,
        unit: WorkUnit,
        result: tuple[tuple[str, ...], Any, dict],
    ) -> dict[str, torch.Tensor]:
        ids, tensors, counters = result
        for name, value in counters.items():
            store.cache.stats[f"ray_{name}" if name in ("misses", "disk_hits") else name] += value
        expected = plan.chosen.ids[unit.start : unit.stop]
        if tuple(ids) != tuple(expected):
            raise ExecutorError(
                f"a Ray actor returned other items for {unit.start}:{unit.stop} of "
                f"{plan.label!r} than the controller selected; the hosts' data differ"
            )
        if tensors is None:
            tensors = store.cache.peek(unit.key)
            if tensors is None:
                raise ExecutorError(
                    f"items {unit.start}:{unit.stop} of {plan.label!r} were published by a Ray "
                    f"actor but are not in the cache {store.cache.directory}: every host must "
                    "see the same cache (on several hosts use an object-store URL, e.g. "
                    "--sslrobust-cache-dir=s3://bucket/prefix)"
                )
        rows = unit.stop - unit.start
        wrong = [name for name, tensor in tensors.items() if len(tensor) != rows]
        if wrong:
            raise ExecutorError(
                f"unit {unit.start}:{unit.stop} of {plan.label!r} holds {len(tensors[wrong[0]])} "
                f"rows of {wrong[0]!r}, not {rows}; it was not served"
            )
        return tensors

    def shutdown(self) -> None:
        """Let the actors go; stop the cluster when this run started it."""
        if not self.pools and not self.started:
            return
        import ray

        for actors in self.pools.values():
            for actor in actors:
                ray.kill(actor)
        self.pools.clear()
        if self.started:
            ray.shutdown()
            self.started = False
