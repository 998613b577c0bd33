"""Reliability benchmark: SIGKILL torture, concurrent sessions, unusable cache directories.

Prints figures measured in one run (no assertions); what they back is in
docs/reliability.md. Run from the repo root:

    python benchmarks/bench_reliability.py [--quick] [--kills 50] [--seed 0] [--sessions 2]

A scratch project (a few tests on `bundled-simclr`, 16 images per split, ten variants, a
linear probe and Grad-CAM maps: 13 cache entries) is run by pytest sessions that write the
digest of every feature set, prediction and map they were served, plus `--sslrobust-json`.

1. Reference: one cold session on a fresh cache.
2. Kill loop: on one shared cache, each round evicts every entry with probability 1/2 (so
   every round writes), starts a session and sends SIGKILL to its process group at a
   seeded random time between 0.8 x the reference's first entry write and its end (odd
   rounds: as soon as a new temp file shows, i.e. mid-write, if that comes first). Then a
   clean session runs on what the kills left; then damage is injected (a truncated entry,
   a flipped payload byte, two entries swapped), the temp files are aged 7 h and stale ones
   are planted, and a session with `-n 2` (if pytest-xdist is installed) and one without run.
   Every value served, in killed runs too, is compared with the reference.
3. Concurrency: K sessions started together on one cold cache, and one `-n 2` session;
   duplicate computations = feature sets computed in all of them minus the reference's.
4. Read-only tmpfs (empty, and filled then remounted read-only) and a 64 KiB tmpfs (full
   disk): the run passes with one warning (none for the filled one) and the same values.

Sessions are forked from this process after it imported torch, timm, scikit-learn and
pytest (and nothing of the plugin), so that a kill round costs the plugin's run rather
than the imports; `--spawn` starts `python -m pytest` processes instead. Either way each
session is its own process (group), killed with SIGKILL.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TESTS = textwrap.dedent(
    '''
    import hashlib
    import os
    from pathlib import Path

    import pytest

    from pytest_sslrobust import assert_accuracy_above, assert_cka_between

    VARIANTS = [
        "original", "gaussian_noise-s1", "gaussian_noise-s3", "shot_noise-s2", "contrast-s2",
        "brightness-s1", "center-r0.50", "border-r0.50", "foreground", "background",
    ]


    def _digest(*tensors):
        digest = hashlib.sha256()
        for tensor in tensors:
            if tensor is not None:
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()


    def _served(request, value):
        """Record what this test was served (atomically: a kill never leaves half a line)."""
        out = Path(os.environ["RELIABILITY_DIGESTS"])
        out.mkdir(parents=True, exist_ok=True)
        temporary = out / f".{request.node.name}.{os.getpid()}"
        temporary.write_text(value)
        os.replace(temporary, out / request.node.name)


    @pytest.mark.parametrize("variant", VARIANTS)
    def test_features(sslrobust, request, variant):
        served = sslrobust.features(variant, split="test")
        _served(request, _digest(served.features, served.logits, served.ssim, served.labels))
        assert_cka_between(sslrobust.features("original"), served, 0.0, 1.0)


    def test_probe_and_maps(sslrobust, request):
        import torch

        labels = sslrobust.features("original").labels
        predicted = sslrobust.predictions("gaussian_noise-s3", readout="linear-probe")
        maps = sslrobust.attribution("original", target="linear-probe", images=8)
        _served(request, _digest(torch.as_tensor(predicted.copy()), maps.maps))
        assert_accuracy_above(predicted, labels, 0.0)
    '''
)
ENTRIES = 13  # 10 variants of test + clean train (probe) + predictions + maps
SUMMARY = re.compile(
    r"feature sets: (\d+) computed, (\d+) memory hits, (\d+) disk hits, (\d+) damaged"
)


@dataclass
class Session:
    """One pytest session: a forked child or a spawned `python -m pytest`, in its own group."""

    pid: int
    log: Path
    digests: Path
    json: Path
    started: float
    popen: subprocess.Popen[bytes] | None = None
    rc: int | None = None
    wall: float = 0.0
    killed: bool = False

    def poll(self) -> int | None:
        if self.rc is None:
            if self.popen is not None:
                self.rc = self.popen.poll()
            else:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.rc = os.waitstatus_to_exitcode(status)
            if self.rc is not None:
                self.wall = time.perf_counter() - self.started
        return self.rc

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.killed = True
        self.wait(60)

    def wait(self, timeout: float) -> int | None:
        deadline = time.perf_counter() + timeout
        while self.poll() is None:
            if time.perf_counter() > deadline:
                return None
            time.sleep(0.02)
        return self.rc

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def counters(self) -> dict[str, int]:
        found = SUMMARY.search(self.output())
        names = ("computed", "memory_hits", "disk_hits", "damaged")
        return dict(zip(names, map(int, found.groups()), strict=True)) if found else {}

    def cache_warnings(self) -> int:
        """Distinct SslRobustCacheWarning messages in pytest's warnings summary."""
        return self.output().count("SslRobustCacheWarning:")

    def served(self) -> dict[str, str]:
        if not self.digests.is_dir():
            return {}
        return {p.name: p.read_text() for p in self.digests.iterdir() if not p.name[0] == "."}

    def results(self) -> list[dict[str, object]]:
        if not self.json.exists():
            return []
        results = json.loads(self.json.read_text())["results"]
        return sorted(results, key=lambda r: (r["test"], r["label"]))


@dataclass
class Bench:
    project: Path
    scratch: Path
    spawn: bool
    images: int
    counter: int = 0
    notes: list[str] = field(default_factory=list)

    def args(self, cache: Path, json_path: Path, extra: tuple[str, ...]) -> list[str]:
        return [
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::pytest.PytestAssertRewriteWarning",
            "--sslrobust-model=bundled-simclr",
            f"--sslrobust-max-images={self.images}",
            "--sslrobust-device=cpu",
            f"--sslrobust-cache-dir={cache}",
            f"--sslrobust-json={json_path}",
            *extra,
        ]

    def start(self, cache: Path, name: str, extra: tuple[str, ...] = ()) -> Session:
        self.counter += 1
        run = self.scratch / f"{self.counter:03d}-{name}"
        run.mkdir()
        log, digests, json_path = run / "log.txt", run / "served", run / "results.json"
        env = {"RELIABILITY_DIGESTS": str(digests), "PYTHONPATH": str(ROOT)}
        args = self.args(cache, json_path, extra)
        started = time.perf_counter()
        if self.spawn:
            with open(log, "wb") as out:
                popen = subprocess.Popen(
                    [sys.executable, "-m", "pytest", *args],
                    cwd=self.project,
                    env={**os.environ, **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            return Session(popen.pid, log, digests, json_path, started, popen=popen)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the session: its own process group, output to its log
            code = 70
            try:
                os.setpgid(0, 0)
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.chdir(self.project)
                os.environ.update(env)
                sys.path.insert(0, str(ROOT))
                import pytest

                code = int(pytest.main(args))
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        try:
            os.setpgid(pid, pid)  # also here, so that a kill right away finds the group
        except OSError:
            pass
        return Session(pid, log, digests, json_path, started)

    def run(self, cache: Path, name: str, extra: tuple[str, ...] = (), timeout: float = 300):
        session = self.start(cache, name, extra)
        if session.wait(timeout) is None:
            session.kill()
            self.notes.append(f"{name}: did not finish within {timeout:.0f} s (killed)")
        return session


def files(cache: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {"entries": [], "temporaries": [], "locks": []}
    if cache.is_dir():
        for path in cache.glob("*/*"):
            if path.name.endswith(".tmp"):
                found["temporaries"].append(path)
            elif path.name.endswith(".lock"):
                found["locks"].append(path)
            elif path.name.endswith(".safetensors"):
                found["entries"].append(path)
    return found


def differing(served: dict[str, str], reference: dict[str, str]) -> list[str]:
    return sorted(name for name, value in served.items() if reference.get(name) != value)


def same_as(session: Session, reference: Session) -> str:
    """'yes' when every value and result equals the reference's, else what differs."""
    served, expected = session.served(), reference.served()
    wrong = differing(served, expected)
    missing = sorted(set(expected) - set(served))
    results_equal = session.results() == reference.results()
    if not wrong and not missing and results_equal:
        return "yes"
    return f"NO ({len(wrong)} values differ, {len(missing)} missing, JSON equal: {results_equal})"


def reference_run(bench: Bench, cache: Path) -> tuple[Session, float]:
    """A cold session on a fresh cache, polled for when its first entry lands."""
    session = bench.start(cache, "reference")
    first = None
    while session.poll() is None:
        if first is None and files(cache)["entries"]:
            first = time.perf_counter() - session.started
        time.sleep(0.02)
    return session, first if first is not None else 0.0


def inject_damage(cache: Path, rng: random.Random) -> int:
    """Truncate one entry, flip a payload byte of another, swap two more: 4 damaged."""
    entries = sorted(files(cache)["entries"])
    rng.shuffle(entries)
    if len(entries) < 4:
        return 0
    truncated, flipped, a, b = entries[:4]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    data = bytearray(flipped.read_bytes())
    data[-5] ^= 0xFF
    flipped.write_bytes(bytes(data))
    swap = a.with_name("swap")
    a.rename(swap)
    b.rename(a)
    swap.rename(b)
    return 4


def age_and_plant_temporaries(cache: Path, planted: int) -> tuple[int, int]:
    """Age every temp file by 7 h and plant ``planted`` more (a killed write's leftovers)."""
    entries = sorted(files(cache)["entries"])
    for i, entry in enumerate(entries[:planted]):
        temp = entry.with_name(f".{entry.name}.{99000 + i}.{'d' * 32}.tmp")
        temp.write_bytes(b"half an entry")
    old = time.time() - 7 * 3600
    temporaries = files(cache)["temporaries"]
    for temp in temporaries:
        os.utime(temp, (old, old))
    return len(temporaries), min(planted, len(entries))


def _new_temporary(cache: Path, seen: set[str]) -> bool:
    """Whether a temp file not in ``seen`` exists now (a write in flight)."""
    try:
        shards = [e.path for e in os.scandir(cache) if e.is_dir()]
    except OSError:
        return False
    for shard in shards:
        try:
            for entry in os.scandir(shard):
                if entry.name.endswith(".tmp") and entry.path not in seen:
                    return True
        except OSError:
            continue
    return False


def kill_loop(bench: Bench, args: argparse.Namespace, reference: Session, first: float) -> list:
    rng = random.Random(args.seed)
    cache = bench.scratch / "shared-cache"
    expected = reference.served()
    rows: list[tuple[str, str]] = []
    low, high = 0.8 * first, reference.wall
    finished_first = temps_after_kill = wrong_in_killed = served_in_killed = 0
    lock_peak = in_write = 0
    start = time.perf_counter()
    for round_ in range(args.kills):
        for entry in files(cache)["entries"]:
            if rng.random() < 0.5:
                entry.unlink()
        seen = set(map(str, files(cache)["temporaries"]))
        targeted = round_ % 2 == 1  # odd rounds: kill as soon as a write's temp file shows
        at = rng.uniform(low, high)
        session = bench.start(cache, "kill")
        while session.poll() is None and time.perf_counter() - session.started < at:
            if targeted and _new_temporary(cache, seen):
                break
            time.sleep(0.0005 if targeted else 0.005)
        if session.poll() is None:
            writing = _new_temporary(cache, seen)
            session.kill()
            in_write += writing
        else:
            finished_first += 1
        after = files(cache)
        temps_after_kill += len(after["temporaries"]) > len(seen)
        lock_peak = max(lock_peak, len(after["locks"]))
        served = session.served()
        served_in_killed += len(served)
        wrong_in_killed += len(differing(served, expected))
    kill_time = time.perf_counter() - start
    left = files(cache)
    rows += [
        (
            f"kill rounds (SIGKILL at U({low:.1f} s, {high:.1f} s))",
            f"{args.kills} in {kill_time:.0f} s ({finished_first} finished before their kill)",
        ),
        (
            "values served in killed runs / differing from reference",
            f"{served_in_killed} / {wrong_in_killed}",
        ),
        (
            "kills with a write in flight (temp file present) / that left a temp file",
            f"{in_write} / {temps_after_kill} (odd rounds kill at the first temp file seen)",
        ),
        (
            "after the kills: entries, temp files, lock files",
            f"{len(left['entries'])}, {len(left['temporaries'])}, {len(left['locks'])}",
        ),
    ]
    timeout = max(120.0, 10 * reference.wall)
    clean = bench.run(cache, "clean", timeout=timeout)
    counters = clean.counters()
    after_clean = files(cache)
    rows += [
        (
            "clean run after the kills: exit code, time (reference)",
            f"{clean.rc}, {clean.wall:.1f} s ({reference.wall:.1f} s; timeout {timeout:.0f} s)",
        ),
        (
            "clean run: computed / disk hits / damaged recomputed / cache warnings",
            f"{counters.get('computed')} / {counters.get('disk_hits')} / "
            f"{counters.get('damaged')} / {clean.cache_warnings()}",
        ),
        ("clean run: values identical to the reference", same_as(clean, reference)),
        (
            "clean run: temp files before -> after (sweep: older than 6 h only)",
            f"{len(left['temporaries'])} -> {len(after_clean['temporaries'])}",
        ),
    ]
    damaged = inject_damage(cache, rng)
    aged, planted = age_and_plant_temporaries(cache, 2)
    stale = len(files(cache)["temporaries"])
    rows.append(
        (
            "injected damage; temp files aged 7 h (of them planted)",
            f"{damaged} entries; {stale} ({planted})",
        )
    )
    if args.xdist:
        xrun = bench.run(cache, "stale-xdist", ("-n", "2"), timeout=timeout)
        xc = xrun.counters()
        rows += [
            (
                "-n 2 run on it: exit, damaged recomputed, values identical",
                f"{xrun.rc}, {xc.get('damaged')}, {same_as(xrun, reference)}",
            ),
            (
                "-n 2 run: stale temp files before -> after",
                f"{stale} -> {len(files(cache)['temporaries'])}",
            ),
        ]
        damaged = inject_damage(cache, rng)
        rows.append(("injected damage again", f"{damaged} entries"))
    stale = len(files(cache)["temporaries"])
    plain = bench.run(cache, "stale-plain", timeout=timeout)
    pc = plain.counters()
    rows += [
        (
            "plain run on it: exit, damaged recomputed, cache warnings, values identical",
            f"{plain.rc}, {pc.get('damaged')}, {plain.cache_warnings()}, "
            f"{same_as(plain, reference)}",
        ),
        (
            "plain run: stale temp files before -> after",
            f"{stale} -> {len(files(cache)['temporaries'])}",
        ),
        (
            "lock files at most / at the end (never removed; flock dies with its process)",
            f"{max(lock_peak, len(files(cache)['locks']))} / {len(files(cache)['locks'])}",
        ),
    ]
    return rows


def concurrency(bench: Bench, args: argparse.Namespace, reference: Session, ref_computed: int):
    rows = []
    cache = bench.scratch / "concurrent-cache"
    sessions = [bench.start(cache, f"concurrent{i}") for i in range(args.sessions)]
    start = time.perf_counter()
    for session in sessions:
        if session.wait(600) is None:
            session.kill()
    wall = time.perf_counter() - start
    computed = [s.counters().get("computed", -1) for s in sessions]
    rows += [
        (
            f"{args.sessions} concurrent cold sessions: exit codes, wall",
            f"{[s.rc for s in sessions]}, {wall:.1f} s",
        ),
        (
            "  feature sets computed (each) -> duplicates",
            f"{computed} -> {sum(computed) - ref_computed} (reference computed {ref_computed})",
        ),
        ("  entries written", str(len(files(cache)["entries"]))),
        ("  values identical to the reference", ", ".join(same_as(s, reference) for s in sessions)),
    ]
    if args.xdist:
        cache = bench.scratch / "xdist-cache"
        xrun = bench.run(cache, "xdist", ("-n", "2"))
        c = xrun.counters().get("computed", -1)
        rows += [
            ("one cold -n 2 session: exit code, time", f"{xrun.rc}, {xrun.wall:.1f} s"),
            ("  feature sets computed -> duplicates", f"{c} -> {c - ref_computed}"),
            ("  values identical to the reference", same_as(xrun, reference)),
        ]
    else:
        rows.append(("-n 2", "skipped: pytest-xdist is not installed"))
    return rows


def _mount(directory: Path, options: str) -> str | None:
    directory.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    return None if out.returncode == 0 else (out.stderr.strip() or f"exit {out.returncode}")


def _umount(directory: Path) -> None:
    subprocess.run(["umount", str(directory)], capture_output=True)


def unusable(bench: Bench, reference: Session, reference_cache: Path) -> list:
    rows = []
    readonly = bench.scratch / "readonly"
    why = _mount(readonly, "ro,size=1m")
    if why is not None:
        return [("read-only / full disk", f"skipped: mount -t tmpfs failed: {why}")]
    try:
        s = bench.run(readonly, "readonly")
        rows += [
            (
                "read-only empty tmpfs: exit, cache warnings, computed, values identical",
                f"{s.rc}, {s.cache_warnings()}, {s.counters().get('computed')}, "
                f"{same_as(s, reference)}",
            )
        ]
    finally:
        _umount(readonly)
    filled = bench.scratch / "filled"
    why = _mount(filled, "size=4m")
    if why is None:
        try:
            for entry in reference_cache.rglob("*"):
                target = filled / entry.relative_to(reference_cache)
                if entry.is_dir():
                    target.mkdir(exist_ok=True)
                else:
                    shutil.copy2(entry, target)
            remount = subprocess.run(
                ["mount", "-o", "remount,ro", str(filled)], capture_output=True, text=True
            )
            if remount.returncode != 0:
                rows.append(("read-only filled tmpfs", f"skipped: {remount.stderr.strip()}"))
            else:
                s = bench.run(filled, "readonly-filled")
                c = s.counters()
                rows += [
                    (
                        "read-only filled tmpfs: exit, cache warnings, computed / disk hits, "
                        "identical",
                        f"{s.rc}, {s.cache_warnings()}, {c.get('computed')} / "
                        f"{c.get('disk_hits')}, {same_as(s, reference)}",
                    )
                ]
        finally:
            _umount(filled)
    full = bench.scratch / "full"
    why = _mount(full, "size=64k")
    if why is not None:
        return rows + [("full disk", f"skipped: mount -t tmpfs failed: {why}")]
    try:
        s = bench.run(full, "full-disk")
        left = files(full)
        rows += [
            (
                "64 KiB tmpfs (full disk): exit, cache warnings, computed / disk hits, identical",
                f"{s.rc}, {s.cache_warnings()}, {s.counters().get('computed')} / "
                f"{s.counters().get('disk_hits')}, {same_as(s, reference)}",
            ),
            (
                "  left on it: entries, temp files",
                f"{len(left['entries'])}, {len(left['temporaries'])}",
            ),
        ]
    finally:
        _umount(full)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="10 kills")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sessions", type=int, default=2, help="concurrent sessions")
    parser.add_argument("--images", type=int, default=16, help="--sslrobust-max-images")
    parser.add_argument("--spawn", action="store_true", help="python -m pytest, not fork")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    if args.quick:
        args.kills = min(args.kills, 10)
    args.xdist = importlib.util.find_spec("xdist") is not None
    if not args.spawn:  # what every forked session would import anyway
        import filelock  # noqa: F401
        import pytest  # noqa: F401
        import safetensors.torch  # noqa: F401
        import skimage.metrics  # noqa: F401
        import sklearn.linear_model  # noqa: F401
        import timm  # noqa: F401
        import torch

        del torch  # imported only: a forked child must not inherit a started thread pool
    scratch = Path(tempfile.mkdtemp(prefix="sslrobust-reliability-"))
    project = scratch / "project"
    project.mkdir()
    (project / "test_reliability.py").write_text(TESTS)
    bench = Bench(project, scratch / "runs", args.spawn, args.images)
    bench.scratch.mkdir()
    began = time.perf_counter()
    print(
        f"{datetime.date.today()}, {os.cpu_count()} CPUs, seed {args.seed}, {args.kills} kills, "
        f"{'spawned' if args.spawn else 'forked'} sessions, scratch {scratch}",
        flush=True,
    )
    reference_cache = bench.scratch / "reference-cache"
    reference, first = reference_run(bench, reference_cache)
    ref = reference.counters()
    if reference.rc != 0 or not ref:
        raise SystemExit(
            f"reference run failed (exit {reference.rc}):\n{reference.output()[-3000:]}"
        )
    rows = [
        (
            "reference cold run: time, first entry written at",
            f"{reference.wall:.1f} s, {first:.1f} s",
        ),
        (
            "reference: feature sets computed, entries, values recorded",
            f"{ref['computed']}, {len(files(reference_cache)['entries'])} (expected {ENTRIES}), "
            f"{len(reference.served())}",
        ),
    ]
    print("reference done", flush=True)
    rows += kill_loop(bench, args, reference, first)
    print("kill loop done", flush=True)
    rows += concurrency(bench, args, reference, ref["computed"])
    print("concurrency done", flush=True)
    rows += unusable(bench, reference, reference_cache)
    rows.append(("total time", f"{time.perf_counter() - began:.0f} s"))
    rows += [("note", note) for note in bench.notes]
    width = max(len(what) for what, _ in rows)
    print()
    for what, figure in rows:
        print(f"{what.ljust(width)}  {figure}")
    if args.keep:
        print(f"kept {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
