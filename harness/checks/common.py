"""Shared timing for the checks: median wall time, GFLOP/s, ratio to torch.

Ours and torch are timed in separate processes (`time_in_process`), never back to
back in one: each side's OpenMP workers keep spinning for a while after a
parallel region and slow the other side's next call (torch read up to 2x slow
right after a Numba call). The two sides alternate, ours, torch, ours, torch,
each a fresh process with the same thread settings as pyperf's workers, and each
side's figure is the lower of its per-process medians.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

import kernels
from harness.peers import peer_reason, set_torch_threads


def median_seconds(fn: Callable, repeat: int = 15, min_time: float = 0.2) -> float:
    """Median of `repeat` timings after one warm-up call (compilation stays out)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * repeat:
            break
    return float(np.median(times))


TIMING_NOTE = ("timing: ours and torch each in their own process, alternating "
               "(ours, torch, ours, torch); per side the lower of the two process medians")


def best_seconds(fn, repeat: int = 30, min_time: float = 0.3) -> float:
    """Minimum of at least `repeat` timings after one warm-up call."""
    fn()
    best = math.inf
    count = 0
    start = time.perf_counter()
    while count < repeat or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        count += 1
        if count >= 20 * repeat:
            break
    return best


def time_in_process(conv_type: str, algorithm: str, spec, threads: int, repeat: int = 15,
                    stat: str = "median") -> float:
    """Median (or `stat="min"`: minimum) seconds of one cell (a kernel algorithm or
    "torch") in a fresh process."""
    from harness.sweep import SOURCE_ROOT, worker_env

    job = dict(conv_type=conv_type, algorithm=algorithm, spec=str(spec),
               transposed=bool(spec.transposed), threads=int(threads), repeat=int(repeat),
               stat=stat)
    env, _ = worker_env()
    proc = subprocess.run([sys.executable, "-m", "harness.checks.common", json.dumps(job)],
                          capture_output=True, text=True, env=env, cwd=str(SOURCE_ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"timing {conv_type}/{algorithm} {spec} failed: "
                           f"{proc.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def _time_job(job: dict) -> float:
    """The child's side of `time_in_process`."""
    from harness import peers
    from harness.worker import set_thread_counts

    set_thread_counts(job["threads"])
    spec = kernels.ConvSpec.parse(job["spec"], transposed=job["transposed"])
    conv_type, algorithm = job["conv_type"], job["algorithm"]
    x, w = kernels.make_inputs(conv_type, spec)
    if algorithm == "torch":
        set_torch_threads(job["threads"])
        fn = peers.peer_function("torch", conv_type, spec, x, w)
    else:
        def fn():
            return kernels.run(conv_type, algorithm, spec, x, w)
    timer = best_seconds if job.get("stat") == "min" else median_seconds
    return timer(fn, job["repeat"])


def compare_with_torch(conv_type: str, algorithm: str, spec, threads: int = 2,
                       repeat: int = 15, rounds: int = 2) -> dict:
    """Time one cell and torch on the same inputs, each in its own processes (see the module
    docstring); GFLOP/s counts 2 flops per dense MAC."""
    flops = 2 * kernels.multiplications(conv_type, "direct", spec)
    with_torch = peer_reason("torch", conv_type, spec) is None
    ours = theirs = math.inf
    for _ in range(rounds):
        ours = min(ours, time_in_process(conv_type, algorithm, spec, threads, repeat))
        if with_torch:
            theirs = min(theirs, time_in_process(conv_type, "torch", spec, threads, repeat))
    row = dict(type=conv_type, algorithm=algorithm, spec=str(spec), ms=ours * 1e3,
               gflops=flops / ours / 1e9, torch_ms=math.nan, ratio=math.nan)
    if with_torch:
        row.update(torch_ms=theirs * 1e3, ratio=theirs / ours)
    return row


def geomean(values) -> float:
    vals = [v for v in values if v == v and v > 0]
    return float(np.exp(np.mean(np.log(vals)))) if vals else math.nan


def print_rows(rows: list[dict]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"geomean ratio to torch (>1: faster than torch): {geomean(df['ratio']):.3f}")


def print_header(threads: int) -> None:
    """What the figures below were measured with: ISA, blocks, threads, and how."""
    from harness.machine import machine_class
    from kernels.target import TARGET

    d = TARGET.describe()
    print(f"machine class {machine_class()}; kernels compiled for {TARGET.isa}"
          + (" (CONVBENCH_ISA)" if TARGET.overridden else "")
          + (f", register blocks {d['blocks']}" if d.get("blocks") else "")
          + f"; {threads} thread(s)")
    print(TIMING_NOTE)


if __name__ == "__main__":
    print(json.dumps({"seconds": _time_job(json.loads(sys.argv[1]))}))
