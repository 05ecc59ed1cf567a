"""The resident timer: a sweep's benchmarks timed in a few long-lived worker processes.

pyperf's model (`harness.sweep.run_job`) starts a pyperf process per benchmark, which
starts a calibration worker and `--processes` timing workers, each importing NumPy,
Numba and the kernels again: about 8 s of process start-up per benchmark on 2 cores,
20 minutes of a 21-minute `quick` sweep that times 152 benchmarks of a few ms each. The
resident timer keeps `processes` workers (`harness.resident_worker`) alive and sends them
one job after another: each job is timed in every worker in turn (one worker's runs,
then the next's, as pyperf's processes follow each other), the loop count calibrated in
the first and reused by the rest, and the runs become one pyperf Benchmark with the same
metadata a pyperf worker records. So results files, reports, `compare` and `--resume`
are the same either way; `make bench` uses it, `convbench run` keeps pyperf's processes
unless `--timer resident`, and `make bench-full` keeps them.

Fairness: the workers of one side only are alive at a time. A side is our kernels, or
one peer library: each peer's jobs run in workers of their own, started after the
previous side's have exited, so no peer's spinning OpenMP threads (or ours) share the
cores with another side's timing. The sweep orders its jobs by side for this
(`order_by_side`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from harness.peers import PEERS
from harness.resident_worker import MARK

LONG_CALL_S = 1.0  # a call this long is timed twice in one process, with no warm-up


def side_of(job) -> str:
    """Which processes may time `job`: ours, or the one peer it belongs to."""
    return job.algorithm if job.algorithm in PEERS else "ours"


def order_by_side(jobs) -> list:
    """The jobs with ours first, then each peer's in turn, each side in plan order."""
    order = {"ours": 0, **{p: i + 1 for i, p in enumerate(PEERS)}}
    return sorted(jobs, key=lambda j: order[side_of(j)])


def options_from(pyperf_args) -> dict:
    """processes / values / warmups / min_time from the sweep's pyperf options (the same
    meaning as for pyperf; its defaults where absent: 2 processes for the resident
    timer, 3 values, 1 warm-up, 0.1 s per value)."""
    opts = {"processes": 2, "values": 3, "warmups": 1, "min_time": 0.1, "loops": None}
    names = {"--processes": "processes", "-p": "processes", "--values": "values",
             "-n": "values", "--warmups": "warmups", "-w": "warmups",
             "--min-time": "min_time", "--loops": "loops", "-l": "loops"}
    args = list(pyperf_args)
    if "--debug-single-value" in args:  # pyperf's: one process, one value, no warm-up
        opts.update(processes=1, values=1, warmups=0, loops=1)
    for i, a in enumerate(args):
        key, value = (a.split("=", 1) + [None])[:2] if a.startswith("--") and "=" in a \
            else (a, args[i + 1] if i + 1 < len(args) else None)
        if key in names and value is not None:
            field = names[key]
            opts[field] = float(value) if field == "min_time" else int(value)
    if opts["processes"] < 1 or opts["values"] < 1 or opts["warmups"] < 0:
        raise ValueError("--processes/--values must be >= 1 and --warmups >= 0")
    return opts


class ResidentTimer:
    """`timer(job, metadata, tmpdir) -> (pyperf.Benchmark or None, note)`, as `run_job`."""

    def __init__(self, pyperf_args=(), root: Path | None = None, env: dict | None = None):
        from harness.sweep import SOURCE_ROOT, worker_env

        self.options = options_from(pyperf_args)
        self.root = Path(root or SOURCE_ROOT)
        self.env = env if env is not None else worker_env(self.root)[0]
        self.side: str | None = None
        self.workers: list[subprocess.Popen] = []
        self.started = 0

    # ------------------------------------------------------------------ processes

    def _start(self) -> subprocess.Popen:
        from harness.worker import die_with_parent

        self.started += 1
        return subprocess.Popen(
            [sys.executable, "-m", "harness.resident_worker"], env=self.env,
            cwd=str(self.root), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, bufsize=1,
            start_new_session=(os.name == "posix"),
            preexec_fn=die_with_parent if os.name == "posix" else None)

    def close(self) -> None:
        for w in self.workers:
            try:
                w.stdin.close()
                w.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._kill(w)
        self.workers, self.side = [], None

    @staticmethod
    def _kill(w: subprocess.Popen) -> None:
        if os.name == "posix":
            try:
                os.killpg(w.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        w.kill()
        w.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:  # interrupted: do not wait for a job in flight
            for w in self.workers:
                self._kill(w)
            self.workers = []
        self.close()

    def _worker(self, i: int) -> subprocess.Popen:
        while len(self.workers) <= i:
            self.workers.append(self._start())
        return self.workers[i]

    def _ask(self, i: int, request: dict) -> dict:
        w = self._worker(i)
        try:
            w.stdin.write(json.dumps(request) + "\n")
            w.stdin.flush()
            for line in w.stdout:
                if line.startswith(MARK):
                    return json.loads(line[len(MARK):])
        except (OSError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "it exited"
        code = w.poll()
        self._kill(w)
        self.workers[i] = self._start()  # the next job gets a fresh one
        return {"ok": False, "error": f"resident worker failed ({reason}, exit code {code})"}

    # ------------------------------------------------------------------ timing

    def __call__(self, job, metadata: dict, tmpdir=None):
        import pyperf

        from harness.sweep import job_json

        side = side_of(job)
        if side != self.side:
            self.close()
            self.side = side
        o = self.options
        request = {"job": json.loads(job_json(job, metadata)), "loops": o["loops"],
                   "values": o["values"], "warmups": o["warmups"], "min_time": o["min_time"],
                   "long_call": LONG_CALL_S}
        runs = []
        for i in range(o["processes"]):
            answer = self._ask(i, request)
            if not answer.get("ok"):
                return None, answer.get("error", "resident worker failed")
            request["loops"] = answer["loops"]
            md = dict(metadata, **answer["metadata"], name=job.name, loops=answer["loops"],
                      timer="resident", resident_process=i + 1)
            runs.append(pyperf.Run(answer["values"], warmups=[tuple(w) for w in
                                                               answer["warmups"]],
                                   metadata=md, collect_metadata=True))
            if answer.get("long"):
                break  # a long call's own length is its precision: one process
        return pyperf.Benchmark(runs), ""
