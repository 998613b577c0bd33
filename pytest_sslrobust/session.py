"""The per-run state object: loaded backbones, the dataset, the cache and their counters."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_sslrobust.features.cachedir import DIGEST_MEMO
from pytest_sslrobust.paths import is_url
from pytest_sslrobust.settings import Settings

if TYPE_CHECKING:
    from pytest_sslrobust.backbones.base import Backbone
    from pytest_sslrobust.data.base import Dataset
    from pytest_sslrobust.features.cache import FeatureCache
    from pytest_sslrobust.features.store import FeatureStore

RUN_KEY = pytest.StashKey["SslRobustRun"]()


def xdist_worker(config: pytest.Config) -> tuple[int, int] | None:
    """(index, count) of the xdist worker this process is, from what xdist hands it."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    name = str(workerinput.get("workerid", "gw0"))
    count = int(workerinput.get("workercount") or os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
    index = int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0
    return index, max(count, 1)


def gpu_for_worker(gpus: list[int], worker: tuple[int, int] | None) -> int:
    """The GPU a process takes: the first listed outside xdist, worker i the (i mod n)-th."""
    if not gpus:
        raise ValueError("Expected at least one GPU to choose from, but got none")
    return gpus[0] if worker is None else gpus[worker[0] % len(gpus)]


def cpu_threads_for_worker(cores: int, worker: tuple[int, int] | None) -> int | None:
    """Intra-op threads for an xdist worker on the CPU: the cores split evenly between the
    workers (at least one each), so ``-n 2`` on 2 cores runs two 1-thread processes instead
    of two that each take both cores. None outside xdist (torch's default stands)."""
    if worker is None:
        return None
    return max(1, cores // worker[1])


# Loader processes on a GPU: enough to keep one fed by JPEG decoding, not so many that a
# 64-core host forks 63 copies of the parent per xdist worker.
MAX_AUTO_LOADERS = 8


def loader_workers(
    setting: int | str, device_type: str, cores: int, worker: tuple[int, int] | None
) -> int:
    """The loader processes ``--sslrobust-workers`` means for this process.

    An explicit N stays N. ``auto`` is 0 (one loader thread) unless the device is a CUDA GPU:
    on the CPU the forward pass needs the same cores that loader processes would take, so
    they would only compete with it. On a GPU it is ``min(8, cores - 1)``, one core left to
    the main process, with the cores split first between the xdist workers of this host.
    """
    if setting != "auto":
        return int(setting)
    if device_type != "cuda":
        return 0
    share = max(1, cores // (worker[1] if worker is not None else 1))
    return max(0, min(MAX_AUTO_LOADERS, share - 1))


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split_cpu_threads(worker: tuple[int, int] | None) -> None:
    """Apply :func:`cpu_threads_for_worker`, unless the user set ``OMP_NUM_THREADS`` (then
    theirs stands, as torch's own would)."""
    if worker is None or os.environ.get("OMP_NUM_THREADS"):
        return
    import torch

    threads = cpu_threads_for_worker(usable_cores(), worker)
    if threads is not None and threads < torch.get_num_threads():
        torch.set_num_threads(threads)


def fail_explained(message: str, *, load: tuple[str, str, str] | None = None) -> NoReturn:
    """Fail the current test with ``message`` alone: no traceback and no chained exception
    (``pytest.fail`` inside an ``except`` block prints the cause a second time).

    ``load`` (kind, spec, test) marks a model or dataset that could not be loaded: pytest
    re-raises a failed session fixture's exception for every later test, and the plugin's
    report hook shortens those repeats to :func:`repeated_failure`.
    """
    failure = pytest.fail.Exception(message, pytrace=False)
    failure.sslrobust_load = load  # type: ignore[attr-defined]
    raise failure from None


def repeated_failure(kind: str, spec: str, first_seen: str) -> str:
    """The line a later test shows for a load failure that an earlier test explained."""
    return f"sslrobust: could not load {kind} {spec!r}; the reason was given once, at {first_seen}"


def _current_test() -> str:
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.rsplit(" (", 1)[0] or "the first test that needed it"


class SslRobustRun:
    """Owns everything heavy, built on first use and shared by all tests of the session."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self._backbones: dict[str, Backbone] = {}
        self._datasets: dict[str, Dataset] = {}
        self._stores: dict[str, FeatureStore] = {}
        self._cache: FeatureCache | None = None
        # (kind, spec) -> the test that saw the failure first: a model or dataset that cannot
        # be loaded is tried once per session (a hub timeout would otherwise repeat per test)
        # and its reason printed once.
        self._load_failures: dict[tuple[str, str], str] = {}
        self.worker_stats: collections.Counter[str] = collections.Counter()
        # Loader processes as resolved by this process, and as xdist workers reported them.
        self._loader_workers: int | None = None
        self.worker_loaders: dict[str, str] = {}
        self._device: Any = None
        self._executor: Any = None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @property
    def cache(self) -> FeatureCache:
        if self._cache is None:
            from pytest_sslrobust.features.cache import open_cache

            directory = None if self.settings.no_cache else self.settings.cache_dir
            self._cache = open_cache(directory)
            # Every process sweeps, xdist workers included: under -n the controller never
            # opens the cache. Concurrent sweeps are safe (per-entry locks, old files only).
            self._cache.sweep()
        return self._cache

    def stats(self) -> collections.Counter[str]:
        """Cache counters of this process plus those reported by xdist workers."""
        total = collections.Counter(self.worker_stats)
        if self._cache is not None:
            total.update(self._cache.stats)
        return total

    def worker(self) -> tuple[int, int] | None:
        """(index, count) of this xdist worker (``gw3`` of 4 is (3, 4)); None outside xdist."""
        return xdist_worker(self.config)

    def loader_workers(self) -> int:
        """``--sslrobust-workers`` resolved for this process (see :func:`loader_workers`)."""
        if self._loader_workers is None:
            self._loader_workers = loader_workers(
                self.settings.workers, self.device().type, usable_cores(), self.worker()
            )
        return self._loader_workers

    def loader_workers_shown(self) -> str | None:
        """The resolved loader processes for the summary and report: ``3`` (``2, 3`` when
        xdist workers differ); None when no process resolved them (nothing was extracted)."""
        counts = {int(n) for shown in self.worker_loaders.values() for n in shown.split(", ")}
        if self._loader_workers is not None:
            counts.add(self._loader_workers)
        if not counts:
            return None
        return ", ".join(str(count) for count in sorted(counts))

    def device(self) -> Any:
        """The run's device, resolved once: under xdist a CUDA run gives worker i the GPU
        ``i mod count`` (or of the listed ones), and on the CPU the cores are split between
        workers (see :func:`split_cpu_threads`)."""
        if self._device is None:
            device = self._resolve_device()
            self._check_decode(device)  # before caching: every test that needs it fails
            self._device = device
            if self._device.type == "cpu":
                split_cpu_threads(self.worker())
        return self._device

    def _resolve_device(self) -> Any:
        import torch

        wanted = self.settings.device
        if wanted == "auto":
            if torch.cuda.is_available():
                wanted = "cuda"
            elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
                return torch.device("mps")
            else:
                return torch.device("cpu")
        if wanted.startswith("cuda"):
            if not torch.cuda.is_available():
                pytest.fail(
                    f"--sslrobust-device={wanted}: CUDA is not available in this torch build "
                    "or on this machine; use --sslrobust-device=cpu or auto",
                    pytrace=False,
                )
            present = torch.cuda.device_count()
            listed = [int(i) for i in wanted.partition(":")[2].split(",") if i]
            missing = [i for i in listed if i >= present]
            if missing:
                pytest.fail(
                    f"--sslrobust-device={wanted}: cuda:{missing[0]} does not exist, only "
                    f"{present} CUDA device(s) present",
                    pytrace=False,
                )
            return torch.device(
                "cuda", gpu_for_worker(listed or list(range(present)), self.worker())
            )
        if wanted == "mps" and not torch.backends.mps.is_available():
            pytest.fail(f"--sslrobust-device={wanted}: MPS is not available", pytrace=False)
        return torch.device(wanted)

    def _check_decode(self, device: Any) -> None:
        if self.settings.decode == "gpu" and device.type != "cuda":
            pytest.fail(
                f"--sslrobust-decode=gpu: decoding JPEG files on the GPU needs a CUDA device, "
                f"and this run's device is {device}; use --sslrobust-decode=cpu",
                pytrace=False,
            )

    def _failed_before(self, kind: str, spec: str) -> None:
        first = self._load_failures.get((kind, spec))
        if first is not None:
            fail_explained(repeated_failure(kind, spec, first))

    def _failed_now(self, kind: str, spec: str, exc: Exception) -> NoReturn:
        first = self._load_failures[(kind, spec)] = _current_test()
        fail_explained(f"sslrobust: {exc}", load=(kind, spec, first))

    def backbone(self, spec: str) -> Backbone:
        if spec not in self._backbones:
            from pytest_sslrobust.backbones.base import BackboneError
            from pytest_sslrobust.backbones.loading import load_backbone

            self._failed_before("model", spec)
            try:
                backbone = load_backbone(
                    spec, arch=self.settings.arch, image_size=self.settings.image_size
                )
            except BackboneError as exc:
                self._failed_now("model", spec, exc)
            self._backbones[spec] = backbone.to(self.device())
            from pytest_sslrobust.results import COLLECTOR_KEY

            collector = self.config.stash.get(COLLECTOR_KEY, None)
            if collector is not None:
                where = str(backbone.device)
                worker = getattr(self.config, "workerinput", {}).get("workerid")
                if worker:
                    where = f"{where} ({worker})"
                collector.add_backbone(backbone.name, {**backbone.describe(), "device": where})
        return self._backbones[spec]

    def _digest_memo(self) -> Path | None:
        """Where the digests of local data files are remembered: in the cache directory, or
        for a cache URL in pytest's local cache dir (the memo is of this machine's files, by
        path and mtime, so it stays local rather than shared through the store)."""
        if self.settings.no_cache or self.settings.cache_dir is None:
            return None
        if not is_url(self.settings.cache_dir):
            return Path(self.settings.cache_dir) / DIGEST_MEMO
        cache = getattr(self.config, "cache", None)
        return None if cache is None else Path(cache.mkdir("sslrobust")) / DIGEST_MEMO

    def dataset(self, spec: str | None = None) -> Dataset:
        """The dataset of ``spec`` (default: ``--sslrobust-data``), loaded once per run."""
        spec = spec or self.settings.data
        if spec not in self._datasets:
            from pytest_sslrobust.data.base import DataError, use_digest_memo
            from pytest_sslrobust.data.specs import load_dataset

            memo = self._digest_memo()
            if memo is not None:
                use_digest_memo(memo)
            self._failed_before("dataset", spec)
            try:
                self._datasets[spec] = load_dataset(spec)
            except DataError as exc:
                self._failed_now("dataset", spec, exc)
        return self._datasets[spec]

    def store(self, backbone: Backbone, dataset: Dataset) -> FeatureStore:
        # One store per spec: two specs with identical weights share every cached feature
        # (the cache is keyed by fingerprint) but each records results under its own name.
        key = f"{backbone.spec}\0{backbone.fingerprint}:{dataset.fingerprint}"
        if key not in self._stores:
            from pytest_sslrobust.features.store import FeatureStore

            self._stores[key] = FeatureStore(
                backbone,
                dataset,
                self.cache,
                seed=self.settings.seed,
                max_images=self.settings.max_images,
                batch_size=self.settings.batch_size,
                progress=self.progress,
                workers=self.loader_workers(),
                decode=self.settings.decode,
                segmenter=self.settings.segmenter,
                corruption_protocol=self.settings.corruption_protocol,
                executor=self.executor(),
            )
        return self._stores[key]

    def executor(self) -> Any:
        """The Ray executor of ``--sslrobust-executor=ray[:ADDRESS]`` (made once; the
        cluster is joined or started when the first set is computed), or None."""
        if self.settings.executor == "local":
            return None
        if self._executor is None:
            from pytest_sslrobust.features.ray_executor import RayExecutor

            address = self.settings.executor.partition(":")[2] or None
            self._executor = RayExecutor(address, self.worker_spec, progress=self.progress)
        return self._executor

    def worker_spec(self, store: FeatureStore) -> Any:
        """What a Ray actor needs to rebuild ``store`` (see ``ray_executor.WorkerSpec``)."""
        from pytest_sslrobust.features.ray_executor import WorkerSpec

        return WorkerSpec.of(store, arch=self.settings.arch, image_size=self.settings.image_size)

    def close(self) -> None:
        """End what the run started: the Ray actors, and a local cluster."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def progress(self, label: str) -> Any:
        from pytest_sslrobust.features.extract import TerminalProgress

        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        tty = bool(getattr(reporter, "isatty", False))
        return TerminalProgress(label, self.write_terminal, tty=tty)

    def write_terminal(self, text: str) -> None:
        """Write around output capture, so progress shows while a fixture is set up."""
        if self.is_worker:
            return
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        capture = self.config.pluginmanager.getplugin("capturemanager")
        if reporter is None:
            return
        if capture is None:
            reporter.write(text, flush=True)
            return
        with capture.global_and_fixture_disabled():
            reporter.write(text, flush=True)
