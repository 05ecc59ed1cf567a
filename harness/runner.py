"""The sweep: every (layer, algorithm, thread count) of a shape set, timed by pyperf.

How a sweep runs (`convbench run`):

1. `plan` lists the cells of the set: each layer of `harness.shapes.load_set`
   (tagged with its conv type) against every algorithm in
   `kernels.registry.ALGORITHMS` and the chosen peers, in a fixed order.
   Cells that do not apply (`kernels.supports`, `peer_reason`) are skipped
   with their reason, as asv does; new algorithms are picked up as they
   register, with no change here. `--shard i/n` keeps every n-th entry.
2. Each benchmark is first checked once against `kernels.reference` in
   this process; that first call is timed (`compile_seconds`: Numba
   compiles here and writes its on-disk cache) and a cell that fails is
   recorded and never timed.
3. The benchmark is then timed by its own pyperf run:
   `python -m harness.worker --job JSON -o TMP [pyperf options]`, one
   `pyperf.Runner` in that process, whose worker processes load the kernel
   from the cache and set their thread counts themselves. NUMBA_*, OMP_*,
   OPENBLAS_*, MKL_* (and similar) variables are passed to the workers
   with `--inherit-environ`.
4. The finished benchmark is added to the results file (pyperf's suite
   format), which is rewritten atomically after every benchmark, so an
   interrupted sweep (Ctrl-C, a crash, a killed worker) keeps everything
   finished; `--resume FILE` skips the benchmarks already in FILE.

Skipped, failed and errored cells go to the sidecar `<stem>.skips.json`
(a list of dicts: name, status, conv_type, algorithm, network, layer,
spec, reason).

One writer per results file: a sweep (and `merge`, for its output) holds an
exclusive lock on `.<name>.lock` beside the file for as long as it writes it,
and a second sweep on the same file stops at once (exit 2) instead of
overwriting the first one's benchmarks; the lock file is removed when the
writer is done (a leftover one, without its process, locks nothing). Where
there is no `fcntl`, each rewrite first checks that the file is still the one
this sweep wrote, and stops otherwise, keeping its own benchmarks in
`<stem>.conflict-<pid>.json`. Each benchmark's metadata records the sweep's
options (`sweep_options`, JSON), and `--resume` refuses a sweep whose options
differ, listing them. Temporary files live in `.<name>.tmp/` beside the
results file, emptied by the next sweep of that file; each pyperf process (and
its workers) dies with its parent, so a SIGKILLed sweep stops timing at once.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from harness.messages import clip, os_error

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the unchanged-file check stands alone
    fcntl = None

PEERS = ("torch", "scipy")
ENV_PREFIXES = ("NUMBA_", "OMP_", "OPENBLAS_", "MKL_", "KMP_", "GOMP_", "TBB_", "BLIS_",
                "GOTO_", "VECLIB_", "TORCH_", "CONVBENCH_", "ONEDNN_", "DNNL_")
ENV_NAMES = ("XDG_CACHE_HOME",)

# Largest error allowed, relative to max(1, max|reference|) (make_inputs keeps outputs O(1)).
# On the quick set the largest errors seen are 2e-5 (winograd_f4) and 4e-6 (the rest): the
# tolerances leave 25-50x headroom while a wrong tap (about 1/sqrt(fan-in)) still fails.
TOLERANCE = {"winograd_f4": 1e-3, "winograd_f2": 5e-4}
DEFAULT_TOLERANCE = 1e-4


def tolerance(algorithm: str) -> float:
    return TOLERANCE.get(algorithm, DEFAULT_TOLERANCE)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Job:
    """One benchmark: a layer, an algorithm (or peer) and a thread count."""

    name: str
    conv_type: str
    algorithm: str
    layer: Any  # harness.shapes.Layer: network, name, conv_type, spec, repeat
    threads: int

    @property
    def spec(self):
        return self.layer.spec


@dataclass
class Plan:
    set_name: str
    jobs: list[Job] = field(default_factory=list)
    skips: list[dict] = field(default_factory=list)
    threads: tuple[int, ...] = ()


def load_layers(set_name: str) -> list:
    """The layers of a shape set, through `harness.shapes.load_set` (looked up at call time)."""
    import harness.shapes as shapes

    if not hasattr(shapes, "load_set"):
        raise ValueError("harness.shapes is not available yet (no load_set)")
    return list(shapes.load_set(set_name))


def all_algorithms() -> tuple[str, ...]:
    from kernels import registry

    return tuple(registry.ALGORITHMS)


def max_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def parse_list(values) -> list[str]:
    """['a,b', 'c'] -> ['a', 'b', 'c'] (options accept commas and repeats)."""
    out: list[str] = []
    for v in values or ():
        out.extend(s.strip() for s in str(v).split(",") if s.strip())
    return out


def parse_threads(values) -> tuple[int, ...]:
    items = parse_list(values)
    if not items:
        return (max_threads(),)
    threads = []
    for s in items:
        if s in ("all", "max"):
            threads.append(max_threads())
            continue
        try:
            t = int(s)
        except ValueError:
            raise ValueError(f"--threads: {s!r} is not an integer") from None
        if t < 1:
            raise ValueError(f"--threads: {t} must be at least 1")
        if t > max_threads():
            raise ValueError(f"--threads: {t} is more than the {max_threads()} threads "
                             "Numba may use here (NUMBA_NUM_THREADS)")
        threads.append(t)
    return tuple(dict.fromkeys(threads))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4): the second of four shards (1-based)."""
    if not text:
        return None
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard: expected i/n such as 1/2, got {text!r}") from None
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"--shard: need 1 <= i <= n, got {text!r}")
    return i, n


def bench_name(conv_type: str, algorithm: str, layer, threads: int | None = None) -> str:
    name = f"{conv_type}/{algorithm}/{layer.network}:{layer.name}"
    return name if threads is None else f"{name}@t{threads}"


def cell_skip_reason(conv_type: str, algorithm: str, spec) -> str | None:
    """None if the cell runs on this spec, else why not (never raises)."""
    import kernels
    from harness.peers import peer_reason
    from kernels.types import check_spec

    try:
        if algorithm in PEERS:
            check_spec(conv_type, spec)
            return peer_reason(algorithm, conv_type, spec)
        return kernels.supports(conv_type, algorithm, spec)
    except ValueError as exc:
        return f"the layer does not fit {conv_type}: {exc}"


def _skip_entry(name, conv_type, algorithm, layer, reason, status="skipped",
                threads=None) -> dict:
    entry = dict(name=name, status=status, conv_type=conv_type, algorithm=algorithm,
                 network=layer.network, layer=layer.name, spec=str(layer.spec), reason=reason)
    if threads is not None:
        entry["threads"] = int(threads)
    return entry


def plan(set_name: str, types=None, algos=None, peers=(), threads=None, shard=None,
         layers=None) -> Plan:
    """Every benchmark of the set (filtered by types/algos, with peers), in a fixed order."""
    from kernels import CONV_TYPES

    known = all_algorithms()
    types = parse_list(types)
    algos = parse_list(algos)
    peers = parse_list(peers)
    for t in types:
        if t not in CONV_TYPES:
            raise ValueError(f"--types: unknown type {t!r}; known: {', '.join(CONV_TYPES)}")
    for a in algos:
        if a not in known and a not in PEERS:
            raise ValueError(f"--algos: unknown algorithm {a!r}; known: {', '.join(known)}")
    for p in peers:
        if p not in PEERS:
            raise ValueError(f"--peers: unknown peer {p!r}; known: {', '.join(PEERS)}")
    thread_counts = parse_threads(threads)
    algorithms = [a for a in known if not algos or a in algos]
    algorithms += [p for p in PEERS if p in peers or p in algos]
    if layers is None:
        layers = load_layers(set_name)

    entries: list[Job | dict] = []
    seen: set[str] = set()
    several = len(thread_counts) > 1
    for layer in layers:
        conv_type = layer.conv_type
        if types and conv_type not in types:
            continue
        for algo in algorithms:
            base = bench_name(conv_type, algo, layer)
            if base in seen:
                entries.append(_skip_entry(base, conv_type, algo, layer,
                                           "duplicate of an earlier layer of the set"))
                continue
            seen.add(base)
            why = cell_skip_reason(conv_type, algo, layer.spec)
            if why:
                entries.append(_skip_entry(base, conv_type, algo, layer, why))
                continue
            for t in thread_counts:
                name = bench_name(conv_type, algo, layer, t if several else None)
                entries.append(Job(name, conv_type, algo, layer, t))
    if shard:
        i, n = shard
        entries = entries[i - 1::n]
    result = Plan(set_name, threads=thread_counts)
    for e in entries:
        (result.jobs if isinstance(e, Job) else result.skips).append(e)
    return result


# --------------------------------------------------------------------------- verification


def check_cell(conv_type: str, algorithm: str, spec, rtol: float | None = None) -> dict:
    """Run a cell once against the float64 reference: max error, tolerance, first-call time."""
    import kernels
    from harness.peers import peer_function

    tol = tolerance(algorithm) if rtol is None else rtol
    out = dict(max_error=math.nan, tolerance=tol, first_call_s=math.nan, ok=False, error="")
    try:
        x, weights = kernels.make_inputs(conv_type, spec, seed=0)
        if algorithm in PEERS:
            fn = peer_function(algorithm, conv_type, spec, x, weights)
        else:
            def fn():
                return kernels.run(conv_type, algorithm, spec, x, weights)
        t0 = time.perf_counter()
        y = fn()
        out["first_call_s"] = time.perf_counter() - t0
        ref = kernels.reference(conv_type, spec, x, weights)
        y = np.asarray(y)
        if y.shape != ref.shape:
            out["error"] = f"output shape {y.shape} != reference {ref.shape}"
            return out
        if not np.isfinite(y).all():
            out["error"] = "output has non-finite elements"
            out["max_error"] = math.inf
            return out
        scale = max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)
        err = float(np.abs(y.astype(np.float64) - ref).max()) / scale if ref.size else 0.0
        out["max_error"] = err
        out["ok"] = err <= tol
        if not out["ok"]:
            out["error"] = f"max relative error {err:.3g} > tolerance {tol:.3g}"
    except Exception as exc:  # a broken cell is a result, not a crash of the sweep
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


# --------------------------------------------------------------------------- files


def default_output(set_name: str, directory: str | os.PathLike = "results",
                   shard: tuple[int, int] | None = None) -> Path:
    """results/<host>-<yyyymmdd-hhmm>-<set>.json (a shard adds -shard<i>of<n>)."""
    from harness.calibrate import hostname

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M")
    name = Path(set_name).stem if set_name.endswith(".txt") else set_name
    base = Path(directory) / f"{hostname()}-{stamp}-{name}"
    if shard:
        base = Path(f"{base}-shard{shard[0]}of{shard[1]}")
    path, k = base.with_suffix(".json"), 2
    while path.exists():
        path = Path(f"{base}-{k}.json")
        k += 1
    return path


def sidecar_path(results: str | os.PathLike) -> Path:
    p = Path(results)
    return p.with_name(p.stem + ".skips.json")






def load_sidecar(results) -> list[dict]:
    p = sidecar_path(results)
    if not p.exists():
        return []
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise os_error(p, exc, "cannot read") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{clip(p, 150)}: not a skips file ({clip(exc, 80)})") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ValueError(f"{clip(p, 150)}: not a skips file (expected a list of objects)")
    return data


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_sidecar(results, entries) -> Path:
    p = sidecar_path(results)
    _atomic_write_text(p, json.dumps(list(entries), indent=1) + "\n")
    return p


def load_suite(path):
    """A pyperf suite file; ValueError naming the file when it is not one."""
    import pyperf

    path = Path(path)
    try:
        return pyperf.BenchmarkSuite.load(str(path))
    except OSError as exc:
        raise os_error(path, exc, "cannot read") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        what = "empty" if path.is_file() and path.stat().st_size == 0 else (
            f"not a pyperf results file ({type(exc).__name__}: {clip(exc, 80)})")
        raise ValueError(f"{clip(path, 150)}: {what}") from None


def lock_path(results) -> Path:
    p = Path(results)
    return p.with_name(f".{p.name}.lock")


def tmp_dir(results) -> Path:
    """The folder of a results file's temporary files (emptied by the next writer)."""
    p = Path(results).absolute()  # the pyperf process runs in another directory
    return p.with_name(f".{p.name}.tmp")


@contextlib.contextmanager
def results_lock(results):
    """Hold the exclusive lock of the results file `results` (ValueError when another
    process holds it); removes stale temporary files of that file, and the lock file
    when done."""
    results = Path(results)
    try:
        results.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(results, exc) from None
    if results.is_dir():
        raise ValueError(f"cannot write {clip(results, 150)}: it is a directory")
    lock = lock_path(results)
    fd = None
    if fcntl is not None:
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise os_error(results, exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                except OSError:
                    holder = ""
                os.close(fd)
                raise ValueError(
                    f"{clip(results, 150)}: another sweep or merge is writing this file"
                    + (f" (pid {holder})" if holder.isdigit() else "")
                    + "; wait for it to finish, or write to another file") from None
            try:  # the file we locked may have been removed by the previous holder
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        _clean_temporaries(results)
        yield lock
    finally:
        _clean_temporaries(results)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            os.close(fd)


def _clean_temporaries(results: Path) -> None:
    """Left by a killed writer of `results` (only ever called under its lock)."""
    shutil.rmtree(tmp_dir(results), ignore_errors=True)
    for name in (results.name, sidecar_path(results).name):
        for stale in results.parent.glob(f".{name}.tmp*"):
            if stale.is_file():
                with contextlib.suppress(OSError):
                    stale.unlink()


def _signature(path: Path):
    """What tells another writer's rewrite of `path` apart from ours."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def write_suite(suite, path: Path) -> None:
    """Replace `path` by `suite` atomically (a crash mid-write leaves the old file)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if tmp.exists():
        tmp.unlink()
    suite.dump(str(tmp), replace=True)
    os.replace(tmp, path)


def _run_key(run) -> tuple:
    """Identity of a pyperf run: its values, warm-ups and metadata (dates included)."""
    return (tuple(run.values), tuple(tuple(w) for w in run.warmups),
            json.dumps(run.get_metadata(), sort_keys=True, default=str))


def merge(inputs, output, err=None) -> tuple[int, int]:
    """Join shard result files (and their sidecars) into `output`: (benchmarks, skips).

    A benchmark found in several files gets the union of its runs; runs that are the
    same (values, warm-ups, dates and other metadata: the same file given twice, a
    copy) are counted once, and that is said on `err`.
    """
    import pyperf

    err = err or sys.stderr
    output = Path(output)
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.is_file():
            raise ValueError(f"merge: {clip(p, 150)} "
                             + ("is not a file" if p.exists() else "does not exist"))
    with results_lock(output):
        if output.exists():
            raise ValueError(f"{clip(output, 150)} already exists")
        if any(p.resolve() == output.resolve() for p in paths):
            raise ValueError(f"merge: {clip(output, 150)} is both an input and the output")
        suite = None
        seen: dict[str, tuple[set, str]] = {}
        entries: dict[tuple, dict] = {}
        for path in paths:
            if path.stat().st_size == 0:
                print(f"merge: {clip(path, 150)} is empty; skipped", file=err)
                continue
            for bench in load_suite(path):
                name = bench.get_name()
                if suite is None or name not in seen:
                    keys = {_run_key(r) for r in bench.get_runs()}
                    bench = pyperf.Benchmark(_unique_runs(bench.get_runs()))
                    if suite is None:
                        suite = pyperf.BenchmarkSuite([bench])
                    else:
                        suite.add_benchmark(bench)
                    seen[name] = (keys, str(path))
                    continue
                keys, first = seen[name]
                target = suite.get_benchmark(name)
                added = dups = 0
                for run in bench.get_runs():
                    key = _run_key(run)
                    if key in keys:
                        dups += 1
                        continue
                    keys.add(key)
                    target.add_run(run)
                    added += 1
                note = f"merge: {clip(name, 120)} is in {clip(first, 80)} and {clip(path, 80)}"
                if dups and not added:
                    note += "; the same runs, counted once"
                elif dups:
                    note += f"; {added} runs joined, {dups} identical ones counted once"
                else:
                    note += "; joining its runs"
                print(note, file=err)
            for e in load_sidecar(path):
                entries[(e.get("name"), e.get("status"))] = e
        if suite is None:
            raise ValueError("merge: no benchmarks in "
                             + clip(", ".join(str(p) for p in paths), 200))
        write_suite(suite, output)
        names = set(suite.get_benchmark_names())
        kept = [e for e in entries.values() if e.get("name") not in names]
        write_sidecar(output, kept)
    return len(names), len(kept)


def _unique_runs(runs) -> list:
    out, keys = [], set()
    for run in runs:
        key = _run_key(run)
        if key not in keys:
            keys.add(key)
            out.append(run)
    return out


# --------------------------------------------------------------------------- metadata


def _version(dist: str) -> str:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    return {f"{d}_version": _version(d) for d in ("numba", "llvmlite", "numpy", "torch")}


def job_metadata(job: Job, set_name: str, check: dict, calibration: dict,
                 versions_: dict) -> dict:
    import kernels
    from harness.calibrate import metadata as calib_metadata
    from kernels.counts import direct_multiplications

    direct = int(direct_multiplications(job.conv_type, job.spec))
    mults = direct if job.algorithm in PEERS else int(
        kernels.multiplications(job.conv_type, job.algorithm, job.spec))
    md = dict(
        conv_type=job.conv_type, algorithm=job.algorithm, spec=str(job.spec),
        network=job.layer.network, layer=job.layer.name,
        layer_repeat=int(getattr(job.layer, "repeat", 1) or 1), set=set_name,
        multiplications=mults, direct_multiplications=direct, threads=int(job.threads),
        compile_seconds=round(float(check["first_call_s"]), 4),
        verify_max_error=float(check["max_error"]),
        tags=[job.conv_type, job.algorithm],
    )
    md.update(versions_)
    md.update(calib_metadata(calibration))
    return md


# --------------------------------------------------------------------------- running


SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _worker_env(root: Path | None = None, extra: dict | None = None,
                drop=()) -> tuple[dict, list[str]]:
    """Environment of the per-benchmark pyperf process and the names its workers inherit.

    `root` is the source tree whose `kernels` and `harness` the workers import (default:
    this one; the A/B check passes a worktree of the reference commit); `extra` adds
    variables and `drop` removes them (the A/B check keeps the slowdown switch off one side).
    """
    from kernels.target import TARGET, peer_environment

    env = dict(os.environ)
    for name, value in peer_environment(TARGET.isa if TARGET.overridden else None).items():
        env.setdefault(name, value)
    env.update(extra or {})
    for name in drop:
        env.pop(name, None)
    root = str(root or SOURCE_ROOT)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
             if p and p != str(SOURCE_ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    return env, _inherited(env)


def _inherited(env: dict) -> list[str]:
    """The variables pyperf must pass on to its workers (it drops the rest)."""
    return sorted(k for k in env if k.startswith(ENV_PREFIXES) or k in ENV_NAMES)


def pyperf_command(job: Job, metadata: dict, output: Path, pyperf_args=(),
                   env: dict | None = None) -> list[str]:
    job_json = json.dumps(dict(
        name=job.name, conv_type=job.conv_type, algorithm=job.algorithm,
        spec=str(job.spec), transposed=bool(job.spec.transposed), threads=job.threads,
        metadata=metadata), separators=(",", ":"))
    cmd = [sys.executable, "-m", "harness.worker", "--job", job_json, "-o", str(output)]
    inherit = _inherited(_worker_env()[0] if env is None else env)
    if inherit:
        cmd.append("--inherit-environ=" + ",".join(inherit))
    cmd.extend(pyperf_args)
    return cmd


def _cause(output: str) -> str:
    """The worker's own error from a failed pyperf run's output (not pyperf's re-raise)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in lines:
        head = line.split(":", 1)[0]
        if (head.endswith(("Error", "Exception", "Interrupt", "Exit"))
                and " failed with exit code " not in line and " " not in head):
            return line[:500]
    return " | ".join(lines[-3:])[:500] or "no output"


def run_job(job: Job, metadata: dict, tmpdir: Path, pyperf_args=(), root: Path | None = None,
            extra_env: dict | None = None, drop_env=()):
    """Time one job in its own pyperf run: (Benchmark or None, error text).

    `root`, `extra_env`, `drop_env`: whose sources the workers run, and their environment
    (see `_worker_env`); the process starts in `root`, so `-m harness.worker` is that tree's.
    """
    import pyperf

    out = tmpdir / f"bench-{abs(hash(job.name))}-{time.monotonic_ns()}.json"
    env, _ = _worker_env(root, extra_env, drop_env)
    cmd = pyperf_command(job, metadata, out, pyperf_args, env)
    # its own session, so an interrupted sweep can stop the pyperf process and its workers
    # and it dies with this process (Linux), so a SIGKILLed sweep does not leave it timing
    from harness.worker import die_with_parent

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=(os.name == "posix"),
                            cwd=str(root or SOURCE_ROOT),
                            preexec_fn=die_with_parent if os.name == "posix" else None)
    try:
        text, _ = proc.communicate()
    except BaseException:
        if os.name == "posix":
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.kill()
        proc.wait()
        raise
    text = text or ""
    if proc.returncode != 0 or not out.exists():
        return None, f"pyperf worker failed (exit code {proc.returncode}): {_cause(text)}"
    try:
        bench = pyperf.Benchmark.load(str(out))
    finally:
        out.unlink(missing_ok=True)
    warnings = [line for line in text.splitlines() if line.startswith(("WARNING", "* "))]
    return bench, "\n".join(warnings)


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def format_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def startup_stats(bench) -> tuple[list[float], list[float], int]:
    startup, first, compiles = [], [], 0
    for run in bench.get_runs():
        md = run.get_metadata()
        if "worker_startup_s" in md:
            startup.append(float(md["worker_startup_s"]))
            first.append(float(md.get("worker_first_call_s", 0.0)))
            compiles += int(md.get("worker_compiles", 0))
    return startup, first, compiles


@dataclass
class SweepResult:
    output: Path
    sidecar: Path
    timed: int = 0
    already: int = 0
    skipped: int = 0
    failed: int = 0
    errors: int = 0
    interrupted: bool = False
    worker_startup: list[float] = field(default_factory=list)
    worker_first_call: list[float] = field(default_factory=list)
    worker_compiles: int = 0
    compile_seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed or self.errors else 0


def sweep_options(the_plan: Plan, pyperf_args=(), types=None, algos=None, peers=(),
                  shard=None, rtol: float | None = None) -> dict:
    """What a resumed sweep must repeat: set, selection, thread counts, shard, tolerance
    and the pyperf options (recorded as `sweep_options` in every benchmark's metadata)."""
    return {"set": the_plan.set_name,
            "types": sorted(parse_list(types)) or None,
            "algos": sorted(parse_list(algos)) or None,
            "peers": sorted(parse_list(peers)) or None,
            "threads": [int(t) for t in the_plan.threads],
            "shard": "/".join(map(str, shard)) if shard else None,
            "rtol": rtol,
            "pyperf": [str(a) for a in pyperf_args]}


def recorded_options(suite) -> dict | None:
    """The `sweep_options` of a results suite (None for files from before they existed)."""
    for bench in suite or ():
        text = bench.get_metadata().get("sweep_options")
        if text:
            try:
                return dict(json.loads(text))
            except (ValueError, TypeError):
                return None
    return None


def options_differences(recorded: dict, now: dict) -> list[str]:
    out = []
    for key in sorted(set(recorded) | set(now)):
        a, b = recorded.get(key), now.get(key)
        if a != b:
            out.append(f"{key}: {clip(json.dumps(a), 60)} in the file, "
                       f"{clip(json.dumps(b), 60)} now")
    return out


def check_resume(output, options: dict, suite=None) -> None:
    """ValueError listing what differs when `output` was swept with other options."""
    output = Path(output)
    if suite is None and output.is_file() and output.stat().st_size:
        suite = load_suite(output)
    recorded = recorded_options(suite)
    if recorded is not None and recorded != options:
        raise ValueError(f"--resume {clip(output, 150)}: the sweep's options differ from "
                         "the file's: " + "; ".join(options_differences(recorded, options)))


def sweep(the_plan: Plan, output, pyperf_args=(), resume: bool = False,
          calibration: dict | None = None, rtol: float | None = None,
          stream=None, err=None, command: str = "", options: dict | None = None) -> SweepResult:
    """Run the plan's jobs into `output` (pyperf suite JSON) and its sidecar.

    The results file is locked for the whole sweep (see `results_lock`). `options`
    (default: `sweep_options(the_plan, pyperf_args, rtol=rtol)`) go into every
    benchmark's metadata, and a resume whose options differ from the file's is refused.
    """
    output = Path(output)
    if options is None:
        options = sweep_options(the_plan, pyperf_args, rtol=rtol)
    with results_lock(output):
        return _sweep(the_plan, output, pyperf_args, resume, calibration, rtol, stream, err,
                      command, options)


def _sweep(the_plan, output: Path, pyperf_args, resume, calibration, rtol, stream, err,
           command, options) -> SweepResult:
    import pyperf

    stream = stream or sys.stdout
    err = err or sys.stderr
    if output.exists() and not resume:
        raise ValueError(f"{clip(output, 150)} already exists: pass --resume to continue it")
    suite = None
    if output.exists() and output.stat().st_size:
        suite = load_suite(output)
    if resume:
        check_resume(output, options, suite)
    if calibration is None:
        from harness.calibrate import calibrate

        calibration = calibrate()
    done = set(suite.get_benchmark_names()) if suite is not None else set()
    signature = _signature(output)

    sidecar: dict[str, dict] = {}
    if resume:
        for e in load_sidecar(output):
            if e.get("name") not in done:
                sidecar[e["name"]] = e
    for e in the_plan.skips:
        sidecar[e["name"]] = e
    result = SweepResult(output, write_sidecar(output, sidecar.values()),
                         skipped=len(the_plan.skips))

    todo = [j for j in the_plan.jobs if j.name not in done]
    result.already = len(the_plan.jobs) - len(todo)
    if result.already:
        print(f"resume: {result.already} benchmarks already in {output}, {len(todo)} to go",
              file=err)
    vers = versions()
    checks: dict[tuple, dict] = {}
    durations: list[float] = []
    start = time.monotonic()
    current = None
    previous = _stop_on_sigterm()
    try:
        for i, job in enumerate(todo, 1):
            current = job
            t_job = time.monotonic()
            elapsed = t_job - start
            eta = (sum(durations) / len(durations)) * (len(todo) - i + 1) if durations else None
            pct = 100.0 * (i - 1) / max(1, len(todo))
            print(f"[{i}/{len(todo)} {pct:3.0f}%] {job.name}  elapsed {_fmt_seconds(elapsed)}"
                  + (f"  ETA {_fmt_seconds(eta)}" if eta is not None else ""), file=err,
                  flush=True)
            key = (job.conv_type, job.algorithm, str(job.spec), job.spec.transposed)
            if key not in checks:
                checks[key] = check_cell(job.conv_type, job.algorithm, job.spec, rtol)
                if checks[key]["first_call_s"] == checks[key]["first_call_s"]:
                    result.compile_seconds += checks[key]["first_call_s"]
            check = checks[key]
            if not check["ok"]:
                result.failed += 1
                sidecar[job.name] = _skip_entry(job.name, job.conv_type, job.algorithm,
                                                job.layer, "verification failed: "
                                                + check["error"], status="failed",
                                                threads=job.threads)
                write_sidecar(output, sidecar.values())
                print(f"  FAILED verification, not timed: {check['error']}", file=err)
                durations.append(time.monotonic() - t_job)
                continue
            md = job_metadata(job, the_plan.set_name, check, calibration, vers)
            if command:
                md["command"] = command
            md["sweep_options"] = json.dumps(options, sort_keys=True, separators=(",", ":"))
            tmp_dir(output).mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="job-", dir=tmp_dir(output)) as tmp:
                bench, note = run_job(job, md, Path(tmp), pyperf_args)
            if bench is None:
                result.errors += 1
                sidecar[job.name] = _skip_entry(job.name, job.conv_type, job.algorithm,
                                                job.layer, note, status="error",
                                                threads=job.threads)
                write_sidecar(output, sidecar.values())
                print(f"  ERROR: {note}", file=err)
                durations.append(time.monotonic() - t_job)
                continue
            if suite is None:
                suite = pyperf.BenchmarkSuite([bench])
            else:
                suite.add_benchmark(bench)
            if _signature(output) != signature:  # another writer (no lock on this system)
                keep = output.with_name(f"{output.stem}.conflict-{os.getpid()}.json")
                write_suite(suite, keep)
                raise ValueError(f"{clip(output, 150)} was changed by another process during "
                                 f"this sweep; its benchmarks are kept in {clip(keep, 150)}")
            write_suite(suite, output)
            signature = _signature(output)
            if sidecar.pop(job.name, None) is not None:
                write_sidecar(output, sidecar.values())
            result.timed += 1
            s, f, c = startup_stats(bench)
            result.worker_startup += s
            result.worker_first_call += f
            result.worker_compiles += c
            median = bench.median()
            gflops = 2 * md["direct_multiplications"] / median / 1e9 if median > 0 else math.nan
            spread = bench.stdev() if bench.get_nvalue() > 1 else 0.0
            print(f"{job.name}: {format_time(median)} +- {format_time(spread)}  "
                  f"{gflops:.2f} GFLOP/s  (first call {check['first_call_s']:.2f} s, "
                  f"worker start-up {np.median(s) if s else math.nan:.2f} s)",
                  file=stream, flush=True)
            for line in note.splitlines():
                print(f"  {line}", file=err)
            durations.append(time.monotonic() - t_job)
    except KeyboardInterrupt:
        result.interrupted = True
        print(f"\ninterrupted during {current.name if current else '?'}: "
              f"{len(done) + result.timed} benchmarks kept in {output}; continue with "
              f"--resume {output}", file=err)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return result


def _stop_on_sigterm():
    """Make SIGTERM stop the sweep like Ctrl-C (the file stays consistent); the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, stop)


def summary_lines(res: SweepResult) -> list[str]:
    lines = [f"results: {res.output}", f"skips:   {res.sidecar}",
             f"timed {res.timed}, already there {res.already}, skipped {res.skipped}, "
             f"failed verification {res.failed}, worker errors {res.errors}"]
    if res.worker_startup:
        s = np.array(res.worker_startup)
        f = np.array(res.worker_first_call)
        lines.append(
            f"worker start-up: median {np.median(s):.2f} s (max {s.max():.2f} s) over "
            f"{s.size} worker processes, of which the first call (kernel from Numba's "
            f"cache) median {np.median(f):.3f} s; Numba compilations in workers: "
            f"{res.worker_compiles}")
    lines.append(f"first calls in the sweep process (compilation, verification): "
                 f"{res.compile_seconds:.1f} s in total")
    return lines
