"""A small real sweep written in the runner's result format, for tests and demos.

Times real `kernels.run` calls (and the peers) on small shapes in this
process and writes a pyperf suite JSON with the convbench metadata, plus the
`<stem>.skips.json` sidecar, exactly as the sweep runner does. It is not a
substitute for the runner (no worker processes, no system tuning): a few
runs of a few values each, enough for a report to have real numbers in it.

    python -m harness.report.sample results/sample.json
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyperf

import kernels
from harness.modes import DEFAULT_MODE
from harness.peers import PEERS, peer_reason, set_torch_threads
from harness.timed import timed_callable
from harness.verify import cell_bound
from kernels.accuracy import error
from kernels.blocks import set_threads

from .load import result_stem

# (conv_type, network, layer, benchdnn descriptor); "seed" layers are the article's examples
SAMPLE_LAYERS = (
    ("conv2d", "sample", "c16_28", "mb1ic16ih28oc16oh28kh3ph1"),
    ("conv2d", "seed", "s8.2", "mb1ic3ih7oc128oh5kh3"),
    ("conv2d", "sample", "gray64", "mb1ic1ih64oc1oh62kh3"),
    ("depthwise_separable", "sample", "c16_28", "mb1ic16ih28oc16oh28kh3ph1"),
    ("depthwise_separable", "seed", "s8.2", "mb1ic3ih7oc128oh5kh3"),
    ("spatially_separable", "sample", "c8_32", "mb1ic8ih32oc8oh30kh3"),
    ("depthwise", "sample", "dw32_28", "g32mb1ic32ih28oc32oh28kh3ph1"),
    ("pointwise", "sample", "pw32_28", "mb1ic32ih28oc32oh28kh1"),
    ("transposed2d", "sample", "up16", "deconv:mb1ic16ih14oc8oh28kh4sh2ph1"),
    ("dilated2d", "sample", "d2_28", "mb1ic16ih28oc16oh28kh3ph2dh1"),
    ("grouped", "sample", "g4_28", "g4mb1ic16ih28oc16oh28kh3ph1"),
)


def _library_versions() -> dict:
    import llvmlite
    import numba

    out = {"numba_version": numba.__version__, "llvmlite_version": llvmlite.__version__,
           "numpy_version": np.__version__}
    try:
        import torch

        out["torch_version"] = torch.__version__
    except ImportError:
        pass
    return out


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel ran yet
        return str(numba.config.THREADING_LAYER)


@functools.cache
def calibrate(threads: int) -> dict:
    """Quick sgemm GFLOP/s (1 thread and `threads`) and copy bandwidth (GB/s), measured
    once per process (the runner likewise caches its calibration per machine)."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((384, 384), dtype=np.float32)

    def sgemm() -> float:
        np.dot(a, a)
        best = math.inf
        for _ in range(20):
            t0 = time.perf_counter()
            np.dot(a, a)
            best = min(best, time.perf_counter() - t0)
        return 2 * 384 ** 3 / best / 1e9

    with threadpool_limits(1):
        one = sgemm()
    with threadpool_limits(threads):
        many = sgemm()
    src = np.ones(4 << 20, np.float32)
    dst = np.empty_like(src)
    best = math.inf
    for _ in range(10):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return {"calib_sgemm_gflops_1t": round(one, 3), "calib_sgemm_gflops": round(many, 3),
            "calib_bandwidth_gbs": round(2 * src.nbytes / best / 1e9, 3)}


def _time_values(fn, values: int, min_seconds: float) -> tuple[list[float], int]:
    """pyperf-style values: seconds per call, with loops sized to about min_seconds."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    loops = max(1, int(min_seconds / once))
    out = []
    for _ in range(values):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        out.append((time.perf_counter() - t0) / loops)
    return out, loops


def make_sample_suite(path, layers=SAMPLE_LAYERS, algorithms=None, peers=PEERS,
                      threads=(1, 2), scaling_types=("conv2d", "depthwise"), runs: int = 3,
                      values: int = 4, min_seconds: float = 0.002,
                      command: str | None = None, modes=(DEFAULT_MODE,)) -> Path:
    """Time `layers` with every supported algorithm (and peer), in each timing mode of
    `modes`, and write a result file.

    All layers run at max(threads); the `scaling_types` also run at every other
    thread count, so the report has a thread-scaling section. Returns the path
    written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    algorithms = tuple(algorithms or kernels.ALGORITHMS)
    versions = _library_versions()
    calib = dict(calibrate(max(threads)))
    system = pyperf.Run([1.0], metadata={"name": "x", "loops": 1}).get_metadata()
    cpu_model = str(system.get("cpu_model_name", "unknown CPU"))
    system = {k: v for k, v in system.items() if k in (
        "hostname", "cpu_model_name", "cpu_count", "python_version", "platform",
        "python_implementation", "perf_version", "aslr")}
    benches, skips = [], []
    for conv_type, network, layer, text in layers:
        spec = kernels.ConvSpec.parse(text)
        x, w = kernels.make_inputs(conv_type, spec, seed=0)
        ref = kernels.reference(conv_type, spec, x, w)
        direct_m = kernels.multiplications(conv_type, "direct", spec)
        entries = []
        for mode in modes:
            for alg in (*algorithms, *peers):
                why = (peer_reason(alg, conv_type, spec, mode) if alg in PEERS
                       else kernels.supports(conv_type, alg, spec))
                if why:
                    skips.append(dict(conv_type=conv_type, algorithm=alg, network=network,
                                      layer=layer, spec=text, reason=why, mode=mode))
                    continue
                mults = direct_m if alg in PEERS else kernels.multiplications(
                    conv_type, alg, spec)
                entries.append((alg, mode, timed_callable(conv_type, alg, spec, x, w, mode),
                                mults))
        counts = sorted(set(threads)) if conv_type in scaling_types else [max(threads)]
        for alg, mode, fn, mults in entries:
            t0 = time.perf_counter()
            y = fn()  # first call: compilation for our kernels
            compile_s = time.perf_counter() - t0
            err = error(y, ref)
            if not err <= cell_bound(conv_type, alg, spec):
                skips.append(dict(conv_type=conv_type, algorithm=alg, network=network,
                                  layer=layer, spec=text, mode=mode,
                                  reason=f"failed verification: relative error {err:.2g}"))
                continue
            t0 = time.perf_counter()
            fn()
            compile_s = max(0.0, compile_s - (time.perf_counter() - t0))
            for nt in counts:
                set_threads(nt)
                set_torch_threads(nt)
                name = f"{conv_type}/{alg}/{network}:{layer}"
                if len(counts) > 1 or nt != max(threads):
                    name += f"@t{nt}"
                if mode != DEFAULT_MODE:
                    name += f"@{mode}"
                md = dict(system, name=name, conv_type=conv_type, algorithm=alg, spec=text,
                          mode=mode,
                          network=network, layer=layer, multiplications=int(mults),
                          direct_multiplications=int(direct_m), threads=int(nt),
                          compile_seconds=round(compile_s if alg in kernels.ALGORITHMS
                                                else 0.0, 6),
                          cpu_model=cpu_model, unit="second", threading_layer=_threading_layer(),
                          **versions, **calib)
                if command:
                    md["command"] = command
                pruns = []
                # let the other threading runtime's spinning workers go to sleep
                # (Numba's OpenMP and torch's both spin after a parallel region)
                time.sleep(0.03)
                for _ in range(runs):
                    vals, loops = _time_values(fn, values + 1, min_seconds)
                    run_md = dict(md, loops=loops,
                                  date=time.strftime("%Y-%m-%d %H:%M:%S"))
                    pruns.append(pyperf.Run(vals[1:], warmups=[(loops, vals[0])],
                                            metadata=run_md, collect_metadata=False))
                benches.append(pyperf.Benchmark(pruns))
    set_threads(None)
    if path.exists():
        path.unlink()
    pyperf.BenchmarkSuite(benches).dump(str(path))
    with open(path.with_name(result_stem(path) + ".skips.json"), "w", encoding="utf-8") as fh:
        json.dump(skips, fh, indent=1)
    return path


def scaled_copy(src, dst, factors: dict) -> Path:
    """Copy a result file (and its sidecar), multiplying the values of the benchmarks named
    in `factors` by their factor: a run B that differs from A only where a test says so."""
    src, dst = Path(src), Path(dst)
    suite = pyperf.BenchmarkSuite.load(str(src))
    benches = []
    for bench in suite.get_benchmarks():
        f = factors.get(bench.get_name())
        if f is None:
            benches.append(bench)
            continue
        runs = [pyperf.Run([v * f for v in run.values],
                           warmups=[(loops, v * f) for loops, v in run.warmups],
                           metadata=run.get_metadata(), collect_metadata=False)
                for run in bench.get_runs()]
        benches.append(pyperf.Benchmark(runs))
    if dst.exists():
        dst.unlink()
    pyperf.BenchmarkSuite(benches).dump(str(dst))
    side = src.with_name(result_stem(src) + ".skips.json")
    if side.exists():
        shutil.copy(side, dst.with_name(result_stem(dst) + ".skips.json"))
    return dst


if __name__ == "__main__":  # pragma: no cover - manual demo
    out = make_sample_suite(sys.argv[1] if len(sys.argv) > 1 else "results/sample.json",
                            command="python -m harness.report.sample")
    print(out)
