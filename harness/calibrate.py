"""Machine calibration: measured sgemm GFLOP/s and memory bandwidth, cached per machine.

Every result file carries these figures, so a report can give % of peak
and a roofline, and runs on different machines can be normalised.

- sgemm: float32 `a @ b` through NumPy's BLAS, n = 2048 (2 n^3 flops),
  best of several, once with BLAS limited to 1 thread (threadpoolctl) and
  once with all threads.
- bandwidth: STREAM triad `a[i] = b[i] + s * c[i]` in a Numba `prange`
  loop over float64 arrays far larger than the caches, counted as STREAM
  does (3 x 8 bytes per element, no write-allocate traffic), best of several.

The result is cached as JSON in the user cache directory
(`$CONVBENCH_CACHE_DIR`, else `$XDG_CACHE_HOME/convbench`, else
`~/.cache/convbench`), keyed by host name, CPU model and the vector ISA the
kernels compile for (`CONVBENCH_ISA` also picks OpenBLAS's kernels), so a
sweep calibrates once per machine; `convbench calibrate --force` re-measures.

A cached calibration is trusted only while the machine still measures like
it: every use re-times a small probe (a 1-thread sgemm, ~0.1 s) and compares
it with the probe stored at calibration time. A machine that now measures
more than `DRIFT` away (another job hogging the cores, a different CPU
behind the same host name) is reported and re-calibrated, never silently
scaled by stale figures.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import socket
import time
from pathlib import Path

import numpy as np

KEYS = ("calib_sgemm_gflops_1t", "calib_sgemm_gflops", "calib_bandwidth_gbs", "cpu_model")
PROBE_KEY = "calib_probe_gflops"
DRIFT = 0.25  # probe deviation (either way) beyond which the cached calibration is stale


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC 9R14 96-Core Processor", ...)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hostname() -> str:
    return socket.gethostname().split(".")[0] or "host"


def cache_dir() -> Path:
    """The user's convbench cache directory (one rule, kernels.auto.wisdom's)."""
    from kernels.auto.wisdom import cache_dir as user_cache_dir

    return user_cache_dir()


def cache_path() -> Path:
    from kernels.target import TARGET

    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu_model()).strip("-").lower()[:60]
    return cache_dir() / f"calibration-{hostname()}-{slug}-{os.cpu_count()}cpu-{TARGET.isa}.json"


def sgemm_gflops(threads: int | None, n: int = 2048, repeat: int = 5) -> float:
    """Best float32 matmul rate through NumPy's BLAS, limited to `threads` (None: all)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=c)  # warm-up: thread pool start, page faults
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def _triad_kernel():
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def triad(a, b, c, s):
        for i in prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    return triad


def triad_bandwidth_gbs(n: int = 1 << 25, repeat: int = 10) -> float:
    """STREAM triad bandwidth in GB/s with all Numba threads (3 x 8 bytes per element)."""
    triad = _triad_kernel()
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    a = np.empty(n)
    triad(a, b, c, 3.0)  # compile (or load from cache) and fault the pages in
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        triad(a, b, c, 3.0)
        best = min(best, time.perf_counter() - t0)
    return 3 * 8 * n / best / 1e9


def probe_gflops() -> float:
    """A short 1-thread sgemm rate (n = 768, best of 5): the machine's speed right now."""
    return round(sgemm_gflops(1, 768, 5), 2)


def measure(quick: bool = False) -> dict:
    """Measure the machine now (a few seconds; `quick` uses small sizes, for tests)."""
    n, words, repeat = (512, 1 << 20, 3) if quick else (2048, 1 << 25, 5)
    t0 = time.perf_counter()
    result = {
        "calib_sgemm_gflops_1t": round(sgemm_gflops(1, n, repeat), 2),
        "calib_sgemm_gflops": round(sgemm_gflops(None, n, repeat), 2),
        "calib_bandwidth_gbs": round(triad_bandwidth_gbs(words, 2 * repeat), 2),
        "cpu_model": cpu_model(),
        PROBE_KEY: probe_gflops(),
    }
    result.update(
        hostname=hostname(), cpu_count=os.cpu_count() or 1, quick=quick,
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - t0, 2),
    )
    return result


def drift(cached: dict, probe: float) -> float | None:
    """Relative difference of a fresh probe from the cached one (None: nothing to compare)."""
    try:
        then = float(cached[PROBE_KEY])
    except (KeyError, TypeError, ValueError):
        return None
    return probe / then - 1.0 if then > 0 else None


def calibrate(force: bool = False, quick: bool = False, check: bool = True,
              err=None) -> dict:
    """The cached calibration of this machine, measured (and stored) when missing or forced.

    With `check`, a cached calibration whose probe the machine no longer reproduces
    within `DRIFT` is reported on `err` (default stderr) and measured again.
    """
    import sys

    err = err or sys.stderr
    path = cache_path()
    stale = ""
    if not force and path.exists():
        try:
            cached = json.loads(path.read_text())
            if all(k in cached for k in KEYS) and (quick or not cached.get("quick")):
                d = drift(cached, probe_gflops()) if check else None
                if d is None and check and PROBE_KEY not in cached:
                    stale = "it predates the drift probe"
                elif d is not None and abs(d) > DRIFT:
                    stale = (f"this machine now measures {abs(d):.0%} "
                             f"{'slower' if d < 0 else 'faster'} than when it was calibrated "
                             f"({cached.get('date', '?')}): another job on the cores, or "
                             f"another CPU behind this host name")
                else:
                    cached["cache_path"] = str(path)
                    return cached
        except (OSError, ValueError):
            pass
    if stale:
        print(f"calibration: {stale}; re-calibrating", file=err, flush=True)
    result = measure(quick=quick)
    if stale:
        result["recalibrated_because"] = stale
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
        result["cache_path"] = str(path)
    except OSError:
        result["cache_path"] = ""
    return result


def blas_info() -> str:
    """The BLAS libraries loaded now and the CPU kernels they chose ("openblas 0.3.30 Haswell").

    Measured each time rather than cached: OPENBLAS_CORETYPE can change it per run,
    and it halves or doubles every sgemm-bound figure.
    """
    import scipy.linalg  # noqa: F401  loads SciPy's BLAS, the one the im2col kernels call
    from threadpoolctl import threadpool_info

    libs = [f"{i.get('internal_api', '?')} {i.get('version') or ''} {i.get('architecture') or ''}"
            .strip() for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(sorted(set(libs))) or "unknown"


def metadata(calibration: dict) -> dict:
    """What goes into every benchmark's metadata about the machine: the calibration, the
    BLAS in use, the vector ISA and register blocks the kernels compiled for, and the
    machine class (the unit within which results may be compared)."""
    from harness.machine import machine_class
    from kernels.target import TARGET

    target = {k: int(v) if isinstance(v, bool) else v for k, v in TARGET.describe().items()}
    return {**{k: calibration[k] for k in KEYS}, "blas": blas_info(), **target,
            "machine_class": machine_class()}
