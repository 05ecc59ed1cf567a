"""A resident timing worker: `python -m harness.resident_worker`, many jobs in one process.

The resident timer (`harness.resident`) starts a few of these and sends them jobs, one
JSON line each on stdin: {"job": <harness.worker's --job>, "loops": N or null,
"values": V, "warmups": W, "min_time": S, "long_call": S}. For each, the worker builds
the timed callable exactly as a pyperf worker does (`harness.worker.prepare`: thread
counts, inputs, the mode's plan or peer session, an untimed first call), then:

- without `loops`, calibrates them: the calls per value that take at least `min_time`
  (pyperf's rule);
- a call longer than `long_call` is timed once per value, two values, with no warm-up (its
  first call already warmed it, and its own length averages the noise a short call needs
  loops for); the resident timer then asks no second process for it;
- answers one line, `@@convbench <json>` with loops, warmups [(loops, seconds per call)],
  values (seconds per call) and the per-run metadata `prepare` gives, or an error.

Only that line is read from stdout: anything a library prints there is ignored.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

MARK = "@@convbench "


def _value(fn, loops: int) -> float:
    clock = time.perf_counter
    t0 = clock()
    for _ in range(loops):
        fn()
    return (clock() - t0) / loops


def time_one(request: dict) -> dict:
    from harness.worker import prepare

    t0 = time.perf_counter()
    fn, extra = prepare(request["job"])  # includes the untimed first call
    # in a resident worker the process started long ago: its start-up is this job's set-up
    extra["worker_startup_s"] = round(time.perf_counter() - t0, 4)
    loops = request.get("loops")
    min_time = float(request.get("min_time", 0.1))
    if not loops:
        loops = 1
        while True:
            t = _value(fn, loops) * loops
            if t >= min_time or loops >= 1 << 20:
                break
            loops = max(loops * 2, int(loops * min_time / max(t, 1e-9) * 1.1) + 1)
    one = _value(fn, 1) if loops == 1 else None
    long = one is not None and one >= float(request.get("long_call", 1.0))
    warmups = [] if long else [(loops, _value(fn, loops))
                               for _ in range(int(request.get("warmups", 1)))]
    count = min(2, int(request.get("values", 3))) if long else int(request.get("values", 3))
    values = ([one] if long else []) + [_value(fn, loops)
                                        for _ in range(max(1, count) - (1 if long else 0))]
    return {"ok": True, "loops": loops, "warmups": warmups, "values": values,
            "long": long, "metadata": extra}


def main() -> None:
    from harness.worker import die_with_parent

    die_with_parent()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = time_one(json.loads(line))
        except Exception as exc:  # a broken job is an answer, not the end of the worker
            last = traceback.format_exc().strip().splitlines()[-1]
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500] or last}
        sys.stdout.write(MARK + json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
