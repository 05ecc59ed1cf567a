"""Issue target: per conv type, the best of our algorithms against torch (oneDNN) on that
type's network layers, and where each layer sits against the machine's roofline.

    python -m harness.checks.types [--types dilated2d transposed2d] [--per-type 8]
                                   [--algos direct im2col] [--threads 2] [--rounds 2]

The layers are the type's lines in the `full` set (every network file), one per distinct
shape; `--per-type N` keeps N of them spread over the range of multiply-adds. For each
layer, one process times every algorithm of ours that runs it (`--algos` narrows the
list; `auto` is left out, it picks one of the others) and another process times torch,
alternating for `--rounds` rounds; per side the lowest median. Ratio = torch / best ours.

Roofline: GFLOP/s counts 2 flops per dense multiply-add (the direct algorithm's count);
`intensity` is those flops per byte of input + weights + output (float32, each touched
once), and `roof` is min(sgemm peak, intensity x triad bandwidth) from `convbench
calibrate`'s cached figures: `of roof` near 1 means the layer runs at what the machine
allows for its shape, a low figure with low intensity means the memory traffic limits it.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import kernels
from harness.checks.common import geomean, median_seconds, print_header, time_in_process
from harness.peers import peer_reason
from harness.shapes import FULL, load_set

SKIPPED_ALGORITHMS = ("auto",)
# an algorithm whose first call takes SLOW_FACTOR x the best so far (and over SLOW_SECONDS)
# is recorded from that one call: the separable passes on a 512-channel conv3d take seconds
SLOW_FACTOR, SLOW_SECONDS = 20, 0.05


def type_layers(conv_type: str, per_type: int | None) -> list:
    """The distinct layers of `conv_type` in the full set, `per_type` of them spread over
    the range of multiply-adds (all when None)."""
    seen: dict[str, object] = {}
    for layer in load_set(FULL):
        if layer.conv_type == conv_type:
            seen.setdefault(str(layer.spec), layer)
    layers = sorted(seen.values(), key=lambda L: kernels.multiplications(conv_type, "direct",
                                                                          L.spec))
    if per_type and len(layers) > per_type:
        step = (len(layers) - 1) / (per_type - 1) if per_type > 1 else 0
        layers = [layers[round(i * step)] for i in range(per_type)]
    return layers


def our_algorithms(conv_type: str, spec, algos) -> list[str]:
    names = algos or [a for a in kernels.ALGORITHMS if a not in SKIPPED_ALGORITHMS]
    return [a for a in names if kernels.supports(conv_type, a, spec) is None]


def time_ours_in_process(conv_type: str, algos: list[str], spec, threads: int,
                         repeat: int) -> dict[str, float]:
    """Median seconds of each of `algos` on one layer, all in one fresh process."""
    from harness.sweep import SOURCE_ROOT, worker_env

    job = dict(conv_type=conv_type, algos=algos, spec=str(spec),
               transposed=bool(spec.transposed), threads=int(threads), repeat=int(repeat))
    env, _ = worker_env()
    proc = subprocess.run([sys.executable, "-m", "harness.checks.types", "--child",
                           json.dumps(job)], capture_output=True, text=True, env=env,
                          cwd=str(SOURCE_ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"timing {conv_type} {algos} {spec} failed: "
                           f"{proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(job: dict) -> dict[str, float]:
    from harness.worker import set_thread_counts

    set_thread_counts(job["threads"])
    spec = kernels.ConvSpec.parse(job["spec"], transposed=job["transposed"])
    conv_type = job["conv_type"]
    x, w = kernels.make_inputs(conv_type, spec)
    out: dict[str, float] = {}
    for algo in job["algos"]:
        def call(a=algo):
            return kernels.run(conv_type, a, spec, x, w)
        t0 = time.perf_counter()
        call()  # compiles on a cold cache: timed again below unless hopelessly slow
        first = time.perf_counter() - t0
        if out and first > SLOW_FACTOR * min(out.values()) and first > SLOW_SECONDS:
            out[algo] = first  # far behind the best: one call says so, no repeats
        else:
            out[algo] = median_seconds(call, job["repeat"])
    return out


def traffic_bytes(spec, weights) -> int:
    """Input + weights + output, float32, each touched once."""
    out = math.prod(spec.output_shape)
    return 4 * (math.prod(spec.input_shape) + sum(int(w.size) for w in weights) + out)


def roofline() -> tuple[float, float]:
    """(sgemm GFLOP/s, triad GB/s) of this machine from the cached calibration."""
    from harness.calibrate import calibrate

    cal = calibrate(check=False)
    return float(cal["calib_sgemm_gflops"]), float(cal["calib_bandwidth_gbs"])


def layer_row(conv_type: str, layer, algos, threads: int, repeat: int, rounds: int,
              peak: float, bandwidth: float) -> dict:
    spec = layer.spec
    names = our_algorithms(conv_type, spec, algos)
    with_torch = peer_reason("torch", conv_type, spec) is None
    ours = dict.fromkeys(names, math.inf)
    theirs = math.inf
    for _ in range(rounds):
        for a, s in time_ours_in_process(conv_type, names, spec, threads, repeat).items():
            ours[a] = min(ours[a], s)
        if with_torch:
            theirs = min(theirs, time_in_process(conv_type, "torch", spec, threads, repeat))
    best = min(ours, key=ours.get)
    flops = 2 * kernels.multiplications(conv_type, "direct", spec)
    _, w = kernels.make_inputs(conv_type, spec)
    intensity = flops / traffic_bytes(spec, w)
    roof = min(peak, intensity * bandwidth)
    gflops = flops / ours[best] / 1e9
    return {"layer": layer.label, "best": best, "ms": ours[best] * 1e3,
            "torch ms": theirs * 1e3 if with_torch else math.nan,
            "ratio": theirs / ours[best] if with_torch else math.nan,
            "GFLOP/s": gflops, "intensity": intensity, "of roof": gflops / roof,
            "others": " ".join(f"{a}={ours[a] * 1e3:.3g}" for a in names if a != best)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", nargs="*", default=list(kernels.CONV_TYPES))
    ap.add_argument("--algos", nargs="*", help="our algorithms to time (default: all but auto)")
    ap.add_argument("--per-type", type=int, default=None, help="layers per type (default all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    import pandas as pd

    unknown = [t for t in args.types if t not in kernels.CONV_TYPES]
    if unknown:
        raise SystemExit(f"--types: unknown {unknown}; known: {', '.join(kernels.CONV_TYPES)}")
    print_header(args.threads)
    peak, bandwidth = roofline()
    print(f"roofline: sgemm {peak:.0f} GFLOP/s, triad {bandwidth:.0f} GB/s (cached calibration)")
    summary = []
    for conv_type in args.types:
        rows = []
        for layer in type_layers(conv_type, args.per_type):
            rows.append(layer_row(conv_type, layer, args.algos, args.threads, args.repeat,
                                  args.rounds, peak, bandwidth))
            print(f"  {conv_type} {rows[-1]['layer']}: {rows[-1]['best']} "
                  f"{rows[-1]['ms']:.3g} ms, torch {rows[-1]['torch ms']:.3g} ms",
                  file=sys.stderr, flush=True)
        print(f"\n{conv_type}")
        with pd.option_context("display.width", 250, "display.max_columns", 20,
                               "display.max_colwidth", 80):
            print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        g = geomean([r["ratio"] for r in rows])
        print(f"geomean torch / best of ours (>1: ours faster): {g:.3f}")
        summary.append({"type": conv_type, "layers": len(rows), "geomean vs torch": g,
                        "min": min(r["ratio"] for r in rows), "max": max(r["ratio"] for r in rows)})
    print("\nsummary")
    print(pd.DataFrame(summary).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
