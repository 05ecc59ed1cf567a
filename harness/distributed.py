"""`convbench run --dask ADDRESS`: a sweep farmed out to a Dask cluster, shard by shard.

Dask schedules; nothing here is a scheduler. The sweep's benchmarks are cut
into `--shards N` deterministic shards (`convbench run --shard i/N`, the same
cut as by hand), and each shard is one Dask task:

* one shard at a time per machine: every task asks for the worker resource
  `machine=1`, and each machine runs one worker that offers `machine=1`
  (`dask worker ADDRESS --nthreads 1 --resources machine=1`), so two shards
  never time side by side on one machine's cores;
* each shard runs in a fresh subprocess, `python -m harness run ... --shard
  i/N` (a `convbench run` as on one machine: calibration, verification,
  pyperf), which dies with its worker. Its thread variables are set
  explicitly: Dask's nanny sets OMP/MKL/OPENBLAS_NUM_THREADS to 1 in every
  worker (`distributed.nanny.pre-spawn-environ`), which would cap the peers
  and the calibration's BLAS; the shard gets the values of the client's
  environment instead (unset where the client has them unset). Dask's
  profiler samples the worker process, not the shard's subprocess; it is
  reported per machine in the machines file when on (start workers with
  `DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False` to keep its ticks off the
  cores);
* a shard that fails (its subprocess dies, writes nothing) is retried
  (`--retries`, Dask's task retries), and a shard whose worker is lost
  (killed, machine gone) is rescheduled by Dask on another machine: a task asks
  for the resource, never for a worker address, so a worker restarted at a new
  address (or a machine that joins) takes it. Only where the cluster has workers
  of other machine classes is a task held to the hosts of its class (a host, not
  an address: a worker restarted there still qualifies), and a shard that lands
  on a worker of another class fails without timing anything;
* results are gathered as shards complete into the usual results file,
  rewritten atomically after each one under the file's lock; `--resume FILE`
  sends each unfinished shard the benchmarks it already has, so only the
  missing ones are timed;
* every machine's fingerprint (host, machine class, calibration, the
  profiler's state) is kept in `<stem>.machines.json`, and only workers of one
  machine class run the sweep (`--machine-class` chooses when the cluster
  has several): results of two classes never meet in one file, so they are
  never compared with each other.

Dask is an optional extra (`pip install -e '.[distributed]'`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import results, sweep
from harness.messages import clip

RESOURCE = "machine"
# Thread variables set explicitly in a shard's environment (the nanny sets the first three)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")
SHARDS_PER_WORKER = 4  # default shard count: a few per machine, so a lost one costs little
DEFAULT_RETRIES = 2
# options of `convbench run` that the client handles and the shards do not repeat
CLIENT_OPTIONS = ("--dask", "--shards", "--retries", "--machine-class", "-o", "--output",
                  "--resume", "--shard")


def require_dask():
    try:
        import distributed
    except ImportError:
        raise ValueError("--dask: Dask is not installed; pip install -e '.[distributed]'"
                         ) from None
    return distributed


# --------------------------------------------------------------------------- on the worker


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    run_args: tuple[str, ...]  # the `convbench run` options every shard repeats
    resume_text: str | None = None  # this shard's benchmarks already in the results file

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


class ShardFailed(RuntimeError):
    """A shard's subprocess ended without a results file (retried by Dask)."""


def fingerprint() -> dict:
    """What the machine running this is: host, machine class, cores, Dask's profiler."""
    from harness.machine import machine_class

    try:
        import dask

        profile = bool(dask.config.get("distributed.worker.profile.enabled", True))
    except ImportError:
        profile = None
    return dict(hostname=socket.gethostname(), machine_class=machine_class(),
                cpu_count=os.cpu_count(), dask_profiler=profile)


def shard_environment(base: dict, threads: dict) -> dict:
    """`base` with the thread variables replaced by `threads` (None: unset) and this
    source tree first on PYTHONPATH."""
    env = {k: v for k, v in base.items() if k not in THREAD_VARIABLES}
    env.update({k: str(v) for k, v in threads.items() if v is not None})
    root = str(sweep.SOURCE_ROOT)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    return env


def shard_command(shard: Shard, output: Path) -> list[str]:
    where = ["--resume", str(output)] if shard.resume_text else ["-o", str(output)]
    return [sys.executable, "-m", "harness", "run", *shard.run_args, "--shard", shard.label,
            *where]


def check_class(shard: Shard, machine_class: str | None) -> dict:
    """This machine's fingerprint; ShardFailed when it is not of `machine_class`."""
    machine = fingerprint()
    if machine_class is not None and machine["machine_class"] != machine_class:
        raise ShardFailed(f"shard {shard.label} on {machine['hostname']}: machine class "
                          f"{machine['machine_class']}, the sweep's is {machine_class}")
    return machine


def run_shard(shard: Shard, threads: dict, machine_class: str | None = None) -> dict:
    """Run one shard in a fresh `convbench run` subprocess (a Dask task on a worker).

    Returns the results file's text, its sidecar's entries, the exit code, the tail of
    the output and this machine's fingerprint; raises ShardFailed when no results came
    or this machine is not of `machine_class`.
    """
    from harness.worker import die_with_parent

    machine = check_class(shard, machine_class)

    with tempfile.TemporaryDirectory(prefix="convbench-shard-") as tmp:
        output = Path(tmp) / f"shard{shard.index}of{shard.count}.json"
        if shard.resume_text:
            output.write_text(shard.resume_text, encoding="utf-8")
        proc = subprocess.run(shard_command(shard, output), cwd=str(sweep.SOURCE_ROOT),
                              env=shard_environment(dict(os.environ), threads),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              preexec_fn=die_with_parent if os.name == "posix" else None)
        tail = "\n".join((proc.stdout or "").splitlines()[-20:])
        if proc.returncode not in (0, 1) or not output.is_file() or not output.stat().st_size:
            raise ShardFailed(f"shard {shard.label} on {socket.gethostname()}: exit code "
                              f"{proc.returncode}, no results\n{tail}")
        return dict(shard=shard.label, results=output.read_text(encoding="utf-8"),
                    skips=results.load_sidecar(output), exit_code=proc.returncode,
                    log=tail, machine=machine)


# --------------------------------------------------------------------------- on the client


@dataclass
class DaskResult:
    output: Path
    sidecar: Path
    machines: Path
    shards: int = 0
    shards_run: int = 0
    shards_failed: list[str] = field(default_factory=list)
    timed: int = 0
    already: int = 0
    cells_failed: bool = False
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.shards_failed or self.cells_failed else 0

    def lines(self) -> list[str]:
        out = [f"results: {self.output}", f"skips:   {self.sidecar}",
               f"machines: {self.machines}",
               f"shards: {self.shards_run} run of {self.shards} (the rest already done); "
               f"benchmarks timed {self.timed}, already there {self.already}"]
        if self.shards_failed:
            out.append(f"shards failed after retries: {', '.join(self.shards_failed)}; "
                       f"continue with --resume {self.output}")
        return out


def client_argv(argv) -> list[str]:
    """A `convbench run` command line without the options the client handles."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in CLIENT_OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def machines_path(results) -> Path:
    p = Path(results)
    return p.with_name(p.stem + ".machines.json")


def _host(address: str) -> str:
    """The host of a worker address (`tcp://10.0.0.5:40123` -> `10.0.0.5`)."""
    from distributed.comm import get_address_host

    return get_address_host(address)


def _restriction(workers: list[str], able: list[str]) -> dict:
    """Where the shards may run, as `client.submit` options: anywhere the resource is
    offered when every able worker is of the sweep's class, else on the hosts of those
    workers (hosts, so that a worker restarted at a new port still qualifies)."""
    if set(workers) == set(able):
        return {}
    return dict(workers=sorted({_host(a) for a in workers}), allow_other_workers=False)


def _workers(client, machine_class: str | None) -> tuple[list[str], str, dict, list[str]]:
    """(addresses of the workers that run shards, their machine class, fingerprints,
    addresses of every worker offering the resource)."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    able = [a for a, w in info.items() if w.get("resources", {}).get(RESOURCE, 0) >= 1]
    if not able:
        raise ValueError(f"--dask: no worker offers the resource {RESOURCE}=1; start one "
                         f"worker a machine with --nthreads 1 --resources {RESOURCE}=1")
    prints = client.run(fingerprint, workers=able)
    classes = sorted({p["machine_class"] for p in prints.values()})
    if machine_class is None and len(classes) > 1:
        counts = ", ".join(f"{c} ({sum(p['machine_class'] == c for p in prints.values())})"
                           for c in classes)
        raise ValueError(f"--machine-class: the workers are of several machine classes "
                         f"({counts}); results of two classes are never compared, so pick "
                         "one (and run another sweep for each other class)")
    chosen = machine_class or classes[0]
    workers = [a for a in able if prints[a]["machine_class"] == chosen]
    if not workers:
        raise ValueError(f"--machine-class: no worker of class {chosen!r}; the workers' "
                         f"classes: {', '.join(classes)}")
    return workers, chosen, prints, able


def _strip_shard(options: dict | None) -> dict | None:
    return None if options is None else {k: v for k, v in options.items() if k != "shard"}


def _recorded_shard_count(suite) -> int | None:
    shard = (sweep.recorded_options(suite) or {}).get("shard")
    try:
        return int(str(shard).split("/")[1]) if shard else None
    except (IndexError, ValueError):
        return None


def _suite_text(benches) -> str:
    import pyperf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part.json"
        pyperf.BenchmarkSuite(list(benches)).dump(str(path))
        return path.read_text(encoding="utf-8")


def _load_text(text: str, where: Path):
    path = where / f"shard-{os.getpid()}-{id(text)}.json"
    path.write_text(text, encoding="utf-8")
    try:
        return results.load_suite(path)
    finally:
        path.unlink(missing_ok=True)


def run(address, run_args, plan_of: Callable, output, options: dict, *, shards=None,
          resume: bool = False, machine_class: str | None = None,
          retries: int = DEFAULT_RETRIES, err=None, task: Callable = run_shard) -> DaskResult:
    """Run the sweep of `run_args` (`convbench run` options) on the Dask cluster at
    `address` (or a `distributed.Client`) into `output`.

    `plan_of(shard)` plans the sweep (shard=None: all of it), as the CLI does;
    `options` are the sweep's options (`harness.sweep.sweep_options`), checked on resume;
    `task(shard, threads, machine_class)` is the Dask task of a shard (`run_shard`).
    """
    distributed = require_dask()
    err = err or sys.stderr
    output = Path(output)
    if shards is not None and shards < 1:
        raise ValueError(f"--shards: {shards} must be at least 1")
    if retries < 0:
        raise ValueError(f"--retries: {retries} must be at least 0")
    client = address if isinstance(address, distributed.Client) else distributed.Client(
        address, timeout="30s")
    try:
        with results.results_lock(output):
            return _sweep(client, distributed, list(run_args), plan_of, output, options,
                          shards, resume, machine_class, retries, err, task)
    finally:
        if client is not address:
            client.close()


def _sweep(client, distributed, run_args, plan_of, output, options, shards, resume,
           machine_class, retries, err, task) -> DaskResult:
    import pyperf

    if output.exists() and not resume:
        raise ValueError(f"{clip(output, 150)} already exists: pass --resume to continue it")
    suite = results.load_suite(output) if output.is_file() and output.stat().st_size else None
    if resume and suite is not None:
        recorded = _strip_shard(sweep.recorded_options(suite))
        if recorded is not None and recorded != _strip_shard(options):
            raise ValueError(f"--resume {clip(output, 150)}: the sweep's options differ from "
                             "the file's: " + "; ".join(sweep.options_differences(
                                 recorded, _strip_shard(options))))
    workers, chosen, prints, able = _workers(client, machine_class)
    where = _restriction(workers, able)
    whole = plan_of(None)
    done = set(suite.get_benchmark_names()) if suite is not None else set()
    recorded_n = _recorded_shard_count(suite) if suite is not None else None
    if recorded_n and shards and shards != recorded_n:
        raise ValueError(f"--shards: {clip(output, 150)} was swept in {recorded_n} shards; "
                         f"resume it with --shards {recorded_n}")
    n = recorded_n or shards or max(1, min(len(whole.jobs), SHARDS_PER_WORKER * len(workers)))
    result = DaskResult(output, results.sidecar_path(output), machines_path(output), shards=n)
    result.already = len(done & {j.name for j in whole.jobs})

    sidecar = {e["name"]: e for e in (results.load_sidecar(output) if resume else [])
               if e.get("name") not in done}
    sidecar.update({e["name"]: e for e in whole.skips})
    results.write_sidecar(output, sidecar.values())
    machines = json.loads(machines_path(output).read_text()) if (
        resume and machines_path(output).is_file()) else []

    threads = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    futures = {}
    for i in range(1, n + 1):
        names = [j.name for j in plan_of((i, n)).jobs]
        if names and all(name in done for name in names):
            continue
        have = [suite.get_benchmark(name) for name in names if name in done]
        shard = Shard(i, n, tuple(run_args), _suite_text(have) if have else None)
        # the resource, not the addresses seen now: a lost worker's shard goes to any
        # worker offering it, one restarted at a new address included
        fut = client.submit(task, shard, threads, chosen, resources={RESOURCE: 1},
                            retries=retries, pure=False, **where,
                            key=f"convbench-shard-{i}of{n}-{os.getpid()}-{id(shard)}")
        futures[fut] = shard
    print(f"dask: {len(whole.jobs)} benchmarks in {n} shards ({len(futures)} to run) on "
          f"{len(workers)} workers of machine class {chosen}", file=err, flush=True)
    tmp = results.tmp_dir(output)
    tmp.mkdir(exist_ok=True)
    try:
        for fut in distributed.as_completed(list(futures)):
            shard = futures[fut]
            try:
                got = fut.result()
            except Exception as exc:  # failed after its retries, or its workers all lost
                result.shards_failed.append(shard.label)
                print(f"dask: shard {shard.label} failed: {clip(exc, 400)}", file=err,
                      flush=True)
                continue
            result.shards_run += 1
            result.cells_failed |= got["exit_code"] == 1
            added = 0
            part = _load_text(got["results"], tmp)
            for bench in part:
                name = bench.get_name()
                cls = bench.get_metadata().get("machine_class")
                if cls is not None and cls != chosen:
                    print(f"dask: {name} of shard {shard.label} was measured on class {cls}, "
                          f"not {chosen}: dropped", file=err)
                    continue
                if name in done:
                    continue
                if suite is None:
                    suite = pyperf.BenchmarkSuite([bench])
                else:
                    suite.add_benchmark(bench)
                done.add(name)
                added += 1
            result.timed += added
            if suite is not None:
                results.write_suite(suite, output)
            for e in got["skips"]:
                sidecar[e["name"]] = e
            for name in done:
                sidecar.pop(name, None)
            results.write_sidecar(output, sidecar.values())
            machines.append(dict(shard=shard.label, **got["machine"], **_calibration(part)))
            results.atomic_write_text(machines_path(output),
                                      json.dumps(machines, indent=1) + "\n")
            print(f"dask: shard {shard.label} done on {got['machine']['hostname']}: "
                  f"{added} benchmarks", file=err, flush=True)
    except KeyboardInterrupt:
        result.interrupted = True
        client.cancel(list(futures))
        print(f"\ninterrupted: {len(done)} benchmarks kept in {output}; continue with "
              f"--resume {output}", file=err)
    if suite is None and not result.interrupted and not result.shards_failed:
        print("dask: no benchmark was timed", file=err)
    return result


def _calibration(part) -> dict:
    """The calibration a shard recorded (every benchmark of a shard carries it)."""
    from harness.compare import CALIB_KEYS

    if not part.get_benchmarks():
        return {}
    meta = part.get_benchmarks()[0].get_metadata()
    return {k: meta[k] for k in CALIB_KEYS if k in meta}
