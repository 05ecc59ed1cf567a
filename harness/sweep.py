"""The sweep: a plan's benchmarks verified, then each timed by its own pyperf run.

How a sweep runs (`convbench run`):

1. `harness.plan.plan` lists the benchmarks of a shape set.
2. Each benchmark is first checked once against `kernels.reference` in
   this process (`harness.verify.check_cell`); that first call is timed
   (`compile_seconds`: Numba compiles here and writes its on-disk cache) and a
   cell that fails is recorded and never timed.
3. The benchmark is then timed by its own pyperf run:
   `python -m harness.worker --job JSON -o TMP [pyperf options]`, one
   `pyperf.Runner` in that process, whose worker processes load the kernel
   from the cache and set their thread counts themselves. NUMBA_*, OMP_*,
   OPENBLAS_*, MKL_* (and similar) variables are passed to the workers
   with `--inherit-environ`.
4. The finished benchmark is added to the results file (pyperf's suite
   format, `harness.results`), which is rewritten atomically after every
   benchmark, so an interrupted sweep (Ctrl-C, a crash, a killed worker) keeps
   everything finished; `--resume FILE` skips the benchmarks already in FILE.

Steps 2 and 3 are `verified_jobs`, which `convbench ab` (`harness.abcheck`) shares.

The results file is locked for the whole sweep (`harness.results.results_lock`).
Where there is no `fcntl`, each rewrite first checks that the file is still the one
this sweep wrote, and stops otherwise, keeping its own benchmarks in
`<stem>.conflict-<pid>.json`. Each benchmark's metadata records the sweep's
options (`sweep_options`, JSON), and `--resume` refuses a sweep whose options
differ, listing them. Each pyperf process (and its workers) dies with its
parent, so a SIGKILLed sweep stops timing at once.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from harness.layouts import DEFAULT_LAYOUT
from harness.messages import clip
from harness.modes import DEFAULT_MODE
from harness.peers import PEERS
from harness.plan import Job, Plan, layout_skip, parse_list
from harness.results import (
    load_sidecar,
    load_suite,
    results_lock,
    signature,
    tmp_dir,
    write_sidecar,
    write_suite,
)
from harness.verify import check_cell

ENV_PREFIXES = ("NUMBA_", "OMP_", "OPENBLAS_", "MKL_", "KMP_", "GOMP_", "TBB_", "BLIS_",
                "GOTO_", "VECLIB_", "TORCH_", "CONVBENCH_", "ONEDNN_", "DNNL_")
ENV_NAMES = ("XDG_CACHE_HOME",)


# --------------------------------------------------------------------------- metadata


def _version(dist: str) -> str:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    out = {f"{d}_version": _version(d) for d in ("numba", "llvmlite", "numpy", "torch",
                                                 "onnxruntime", "openvino", "ncnn", "mnn")}
    out["litert_version"] = _version("ai-edge-litert")
    return out


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
        mode=job.mode,
        layout=job.layout,
        tags=[job.conv_type, job.algorithm, job.mode]
        + ([job.layout] if job.layout != DEFAULT_LAYOUT else []),
    )
    if job.algorithm in PEERS:  # its own layout, and whether the contract's costs a reorder
        from harness.peers import peer_metadata

        md.update(peer_metadata(job.algorithm, job.layout))
    md.update(versions_)
    md.update(calib_metadata(calibration))
    return md


# --------------------------------------------------------------------------- running


SOURCE_ROOT = Path(__file__).resolve().parent.parent


def worker_env(root: Path | None = None, extra: dict | None = None,
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


def job_json(job: Job, metadata: dict) -> str:
    """The worker's --job: a `call` job carries no `mode` (a job without one is `call`) and
    an `nchw` one no `layout` (one without is `nchw`), so an older worker (the A/B gate's
    reference commit) reads the job it always did."""
    fields = dict(name=job.name, conv_type=job.conv_type, algorithm=job.algorithm,
                  spec=str(job.spec), transposed=bool(job.spec.transposed),
                  threads=job.threads)
    if job.mode != DEFAULT_MODE:
        fields["mode"] = job.mode
    if job.layout != DEFAULT_LAYOUT:
        fields["layout"] = job.layout
    fields["metadata"] = metadata
    return json.dumps(fields, separators=(",", ":"))


def pyperf_command(job: Job, metadata: dict, output: Path, pyperf_args=(),
                   env: dict | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "harness.worker", "--job", job_json(job, metadata), "-o",
           str(output)]
    inherit = _inherited(worker_env()[0] if env is None else env)
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
    (see `worker_env`); the process starts in `root`, so `-m harness.worker` is that tree's.
    """
    import pyperf

    out = tmpdir / f"bench-{abs(hash(job.name))}-{time.monotonic_ns()}.json"
    env, _ = worker_env(root, extra_env, drop_env)
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


# --------------------------------------------------------------------------- verify, then time


@dataclass
class Step:
    """One job of a verify-then-time loop, verified and ready to time (or not)."""

    job: Job
    check: dict              # `check_cell`'s result, computed once per cell
    metadata: dict | None    # the benchmark's metadata; None when verification failed
    fresh: bool              # the cell was verified for this job (its first call compiled)


def verified_jobs(jobs, set_name: str, calibration: dict, rtol: float | None = None,
                  err=None, head=None) -> Iterator[Step]:
    """Each job in turn: a progress line on `err` (`head(i, n)`, elapsed time, ETA), its
    cell verified against the reference (once per cell) and its benchmark metadata.
    The caller times the job (or records the failure) before asking for the next one."""
    err = err or sys.stderr
    head = head or (lambda i, n: f"[{i}/{n} {100.0 * (i - 1) / max(1, n):3.0f}%]")
    jobs = list(jobs)
    vers = versions()
    checks: dict[tuple, dict] = {}
    start = time.monotonic()
    for i, job in enumerate(jobs, 1):
        elapsed = time.monotonic() - start
        eta = elapsed / (i - 1) * (len(jobs) - i + 1) if i > 1 else None
        print(f"{head(i, len(jobs))} {job.name}  elapsed {_fmt_seconds(elapsed)}"
              + (f"  ETA {_fmt_seconds(eta)}" if eta is not None else ""), file=err,
              flush=True)
        key = (job.conv_type, job.algorithm, str(job.spec), job.spec.transposed, job.mode,
               job.layout)
        fresh = key not in checks
        if fresh:
            checks[key] = check_cell(job.conv_type, job.algorithm, job.spec, rtol, job.mode,
                                     layout=job.layout)
        check = checks[key]
        md = job_metadata(job, set_name, check, calibration, vers) if check["ok"] else None
        yield Step(job, check, md, fresh)


# --------------------------------------------------------------------------- the sweep


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
                  shard=None, rtol: float | None = None, timer: str = "pyperf") -> dict:
    """What a resumed sweep must repeat: set, selection, thread counts, modes, layouts,
    shard, tolerance and the pyperf options (recorded as `sweep_options` in every
    benchmark's metadata; `modes` only when not just `call` and `layouts` only when not
    just `nchw`, so files from before modes and layouts resume)."""
    options = {"set": the_plan.set_name,
               "types": sorted(parse_list(types)) or None,
               "algos": sorted(parse_list(algos)) or None,
               "peers": sorted(parse_list(peers)) or None,
               "threads": [int(t) for t in the_plan.threads],
               "shard": "/".join(map(str, shard)) if shard else None,
               "rtol": rtol,
               "pyperf": [str(a) for a in pyperf_args]}
    if tuple(the_plan.modes) != (DEFAULT_MODE,):
        options["modes"] = list(the_plan.modes)
    if tuple(the_plan.layouts) != (DEFAULT_LAYOUT,):
        options["layouts"] = list(the_plan.layouts)
    if timer != "pyperf":  # recorded only when not the default, so older files resume
        options["timer"] = timer
    return options


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


TIMERS = ("pyperf", "resident")


def sweep(the_plan: Plan, output, pyperf_args=(), resume: bool = False,
          calibration: dict | None = None, rtol: float | None = None,
          stream=None, err=None, command: str = "", options: dict | None = None,
          timer: str = "pyperf") -> SweepResult:
    """Run the plan's jobs into `output` (pyperf suite JSON) and its sidecar.

    The results file is locked for the whole sweep (see `results_lock`). `options`
    (default: `sweep_options(the_plan, pyperf_args, rtol=rtol)`) go into every
    benchmark's metadata, and a resume whose options differ from the file's is refused.
    `timer`: "pyperf" (a pyperf run per benchmark, `run_job`) or "resident" (long-lived
    workers, `harness.resident`).
    """
    if timer not in TIMERS:
        raise ValueError(f"timer: {timer!r} is not one of {', '.join(TIMERS)}")
    output = Path(output)
    if options is None:
        options = sweep_options(the_plan, pyperf_args, rtol=rtol)
    with results_lock(output):
        if timer == "resident":
            from harness.resident import ResidentTimer

            with ResidentTimer(pyperf_args) as resident:
                return _sweep(the_plan, output, pyperf_args, resume, calibration, rtol,
                              stream, err, command, options, resident)
        return _sweep(the_plan, output, pyperf_args, resume, calibration, rtol, stream, err,
                      command, options)


def _sweep(the_plan, output: Path, pyperf_args, resume, calibration, rtol, stream, err,
           command, options, resident=None) -> SweepResult:
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
    written = signature(output)

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
    if resident is not None:  # one side's workers alive at a time (harness.resident)
        from harness.resident import order_by_side

        todo = order_by_side(todo)
    result.already = len(the_plan.jobs) - len(todo)
    if result.already:
        print(f"resume: {result.already} benchmarks already in {output}, {len(todo)} to go",
              file=err)
    current = None
    previous = _stop_on_sigterm()
    try:
        for step in verified_jobs(todo, the_plan.set_name, calibration, rtol, err):
            job = current = step.job
            check = step.check
            if step.fresh and check["first_call_s"] == check["first_call_s"]:
                result.compile_seconds += check["first_call_s"]
            if step.metadata is None:
                result.failed += 1
                sidecar[job.name] = layout_skip(job.name, job.conv_type, job.algorithm,
                                                job.layer, "verification failed: "
                                                + check["error"], job.mode, job.layout,
                                                status="failed", threads=job.threads)
                write_sidecar(output, sidecar.values())
                print(f"  FAILED verification, not timed: {check['error']}", file=err)
                continue
            md = step.metadata
            if command:
                md["command"] = command
            md["sweep_options"] = json.dumps(options, sort_keys=True, separators=(",", ":"))
            tmp_dir(output).mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="job-", dir=tmp_dir(output)) as tmp:
                bench, note = (resident(job, md, Path(tmp)) if resident is not None
                               else run_job(job, md, Path(tmp), pyperf_args))
            if bench is None:
                result.errors += 1
                sidecar[job.name] = layout_skip(job.name, job.conv_type, job.algorithm,
                                                job.layer, note, job.mode, job.layout,
                                                status="error", threads=job.threads)
                write_sidecar(output, sidecar.values())
                print(f"  ERROR: {note}", file=err)
                continue
            if suite is None:
                suite = pyperf.BenchmarkSuite([bench])
            else:
                suite.add_benchmark(bench)
            if signature(output) != written:  # another writer (no lock on this system)
                keep = output.with_name(f"{output.stem}.conflict-{os.getpid()}.json")
                write_suite(suite, keep)
                raise ValueError(f"{clip(output, 150)} was changed by another process during "
                                 f"this sweep; its benchmarks are kept in {clip(keep, 150)}")
            write_suite(suite, output)
            written = signature(output)
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
