"""One benchmark under pyperf: `python -m harness.worker --job JSON [pyperf options]`.

The sweep (harness.sweep) starts this module once per benchmark. It makes
the process's one `pyperf.Runner`, which then re-runs this same module as
its worker processes (`program_args`), forwarding `--job` to them
(`add_cmdline_args`), so every process registers the same single
benchmark. Only the workers import the kernels: each sets its thread
counts (Numba, BLAS through threadpoolctl, torch), builds the inputs and
makes one untimed first call, which loads the kernel from Numba's on-disk
cache (the sweep compiled it while verifying the cell). The time from
process start to ready goes into the run's metadata as `worker_startup_s`
(`worker_first_call_s` of it is the first call, `worker_compiles` counts
Numba compilations in the worker, 0 when the cache works).

The job is a JSON object: conv_type, algorithm (a kernel algorithm or a
peer), spec (canonical string), transposed, threads, name, metadata
(the benchmark's metadata, computed by the sweep) and, optionally, mode
(`harness.modes`; a job without one is `call`, as every job was before modes) and
layout (`harness.layouts`; a job without one is `nchw`): the inputs are made in it.
The timed callable is `harness.timed.timed_callable`'s for the mode: whatever the
mode prepares (our plan, a peer's session or compiled model) is built here,
before the untimed first call.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import pyperf  # noqa: E402


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere a no-op).

    The sweep starts each pyperf process with this as `preexec_fn`, and pyperf's worker
    processes call it too, so a SIGKILLed sweep leaves no pyperf process timing on.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # pragma: no cover - no prctl here
        pass


def _numba_compilations() -> int:
    """Numba compilations (cache misses) of the kernels' dispatchers so far in this process."""
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover
        return 0
    seen, total = set(), 0
    for modname, module in list(sys.modules.items()):
        if not modname.startswith(("kernels", "harness")) or module is None:
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, Dispatcher) and id(obj) not in seen:
                seen.add(id(obj))
                total += sum(obj.stats.cache_misses.values())
    return total


def set_thread_counts(threads: int) -> None:
    """Numba and BLAS (NumPy's and SciPy's OpenBLAS, used by np.dot in @njit) threads; a
    peer gets the count when its callable is built (`harness.timed`)."""
    import scipy.linalg  # noqa: F401  loads SciPy's BLAS so threadpoolctl limits it too
    from threadpoolctl import threadpool_limits

    from kernels.blocks import set_threads

    set_threads(threads)
    threadpool_limits(limits=threads)


def threading_layer(algorithm: str) -> str:
    from harness.peers import PEERS, peer_threading_layer

    if algorithm in PEERS:
        return peer_threading_layer(algorithm)
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        return "unknown"


def prepare(job: dict):
    """Set up one job in this process: (zero-argument callable, per-run metadata)."""
    import kernels
    from harness import slowdown
    from harness.layouts import DEFAULT_LAYOUT
    from harness.modes import DEFAULT_MODE
    from harness.timed import timed_callable

    threads = int(job["threads"])
    set_thread_counts(threads)
    spec = kernels.ConvSpec.parse(job["spec"], transposed=bool(job.get("transposed")))
    conv_type, algorithm = job["conv_type"], job["algorithm"]
    mode = job.get("mode") or DEFAULT_MODE
    layout = job.get("layout") or DEFAULT_LAYOUT
    x, weights = kernels.make_inputs(conv_type, spec, seed=0, layout=layout)
    fn = timed_callable(conv_type, algorithm, spec, x, weights, mode, threads, layout)
    fn = slowdown.wrap(conv_type, algorithm, fn)  # test-only: CONVBENCH_SLOWDOWN
    compiles = _numba_compilations()
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    extra = {
        "worker_startup_s": round(time.perf_counter() - _T0, 4),
        "worker_first_call_s": round(first, 4),
        "worker_compiles": _numba_compilations() - compiles,
        "threading_layer": threading_layer(algorithm),
    }
    if algorithm == "auto":  # what auto ran and what decided it (the first call decided)
        from kernels import auto

        extra.update(auto.metadata(conv_type, spec, "prepared" if mode == "prepared"
                                   else "call", threads))
    if slowdown.factor(conv_type, algorithm) != 1:
        extra["slowdown"] = slowdown.factor(conv_type, algorithm)
    return fn, extra


def time_func(loops: int, fn) -> float:
    timer = time.perf_counter
    t0 = timer()
    for _ in range(loops):
        fn()
    return timer() - t0


def _forward_job(cmd: list, args) -> None:
    cmd.extend(("--job", args.job))


def main(argv=None) -> None:
    runner = pyperf.Runner(program_args=("-m", "harness.worker"), add_cmdline_args=_forward_job)
    runner.argparser.add_argument("--job", required=True, help="the benchmark, as JSON")
    args = runner.parse_args(argv)
    if args.worker:  # a worker dies with its pyperf process (which dies with the sweep)
        die_with_parent()
        parent = os.environ.get("CONVBENCH_PYPERF_PID", "")
        if parent.isdigit() and os.getppid() != int(parent):
            raise SystemExit(1)  # the pyperf process went before the request took effect
    else:  # the pyperf process: its workers learn its pid, to check the above
        os.environ["CONVBENCH_PYPERF_PID"] = str(os.getpid())
        args.inherit_environ = [*(args.inherit_environ or []), "CONVBENCH_PYPERF_PID"]
    job = json.loads(args.job)
    metadata = dict(job.get("metadata", {}))
    fn = None
    if args.worker:
        fn, extra = prepare(job)
        metadata.update(extra)
    runner.bench_time_func(job["name"], time_func, fn, metadata=metadata)


if __name__ == "__main__":
    main()
