"""The accuracy table: each algorithm's worst measured error against its declared bound.

    python -m kernels.accuracy_table [--quick]

For every algorithm and calibration problem (conv types and layer sizes chosen so the
reduction length L runs from 9 to 13,824) it measures `accuracy.error` on
`make_inputs` data over a few seeds, and, as the other side of the contract, the
error one wrong tap makes: one weight of the full kernel changed by its own
magnitude. A bound is useful when the measured worst sits well below it (the
margin) and the wrong tap well above it (the detection ratio).
"""

from __future__ import annotations

import argparse

import numpy as np

from . import accuracy
from .reference import reference
from .registry import ALGORITHMS, run, supports
from .spec import ConvSpec
from .types import make_inputs

# (conv type, spec): L = c/g x kernel taps from 9 to 13,824 (conv3d 512 ch x 27)
CALIBRATION = (
    ("conv2d", ConvSpec(c=1, k=8, size=16, kernel=3, padding=1)),            # L = 9
    ("depthwise", ConvSpec(c=32, k=32, groups=32, size=28, kernel=3, padding=1)),  # 9
    ("conv2d", ConvSpec(c=3, k=32, size=32, kernel=7, stride=2, padding=3)),  # 147
    ("conv2d", ConvSpec(c=16, k=16, size=14, kernel=3, padding=1)),           # 144
    ("conv2d", ConvSpec(c=64, k=64, size=28, kernel=3, padding=1)),           # 576
    ("pointwise", ConvSpec(c=512, k=64, size=14, kernel=1)),                  # 512
    ("conv2d", ConvSpec(c=64, k=32, size=16, kernel=5, padding=2)),           # 1,600
    ("conv2d", ConvSpec(c=256, k=64, size=14, kernel=3, padding=1)),          # 2,304
    ("conv2d", ConvSpec(n=2, c=512, k=32, size=7, kernel=3, padding=1)),      # 4,608
    ("conv3d", ConvSpec(c=64, k=16, size=(8,) * 3, kernel=3, padding=1)),          # 1,728
    ("conv3d", ConvSpec(c=512, k=16, size=(6,) * 3, kernel=3, padding=1)),          # 13,824
)
QUICK = CALIBRATION[:5]
SEEDS = (0, 1, 2)


def wrong_tap(conv_type: str, spec: ConvSpec, weights: tuple) -> tuple:
    """The weights with one tap of the first weight array (its median-magnitude element)
    doubled: a perturbation by its own magnitude, the smallest real kernel bug."""
    w = np.array(weights[0], copy=True)
    flat = w.reshape(-1)
    i = int(np.argsort(np.abs(flat))[flat.size // 2])
    flat[i] *= 2
    return (w,) + tuple(weights[1:])


def measure(algorithm: str, conv_type: str, spec: ConvSpec, seeds=SEEDS) -> dict | None:
    """Worst error over `seeds`, and the error of a wrong tap (None if the cell cannot run)."""
    if supports(conv_type, algorithm, spec):
        return None
    worst, tap = 0.0, np.inf
    for seed in seeds:
        x, w = make_inputs(conv_type, spec, seed=seed)
        ref = reference(conv_type, spec, x, w)
        worst = max(worst, accuracy.error(run(conv_type, algorithm, spec, x, w), ref))
        tap = min(tap, accuracy.error(run(conv_type, algorithm, spec, x, wrong_tap(
            conv_type, spec, w)), ref))
    return dict(L=accuracy.reduction_length(conv_type, spec), worst=worst, wrong_tap=tap,
                bound=accuracy.bound(algorithm, conv_type, spec))


def table(problems=CALIBRATION, algorithms=None) -> list[dict]:
    """One row per (problem, algorithm) that runs: measure()'s figures plus names."""
    rows = []
    for conv_type, spec in problems:
        for algorithm in algorithms or ALGORITHMS:
            m = measure(algorithm, conv_type, spec)
            if m:
                rows.append(dict(conv_type=conv_type, spec=str(spec), algorithm=algorithm, **m))
    return rows


def render(rows: list[dict]) -> str:
    head = (f"{'type':<10} {'L':>6} {'algorithm':<12} {'worst':>9} {'bound':>9} "
            f"{'margin':>7} {'wrong tap':>9} {'caught':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        margin = r["bound"] / r["worst"] if r["worst"] else float("inf")
        lines.append(f"{r['conv_type']:<10} {r['L']:>6} {r['algorithm']:<12} {r['worst']:>9.2g} "
                     f"{r['bound']:>9.2g} {margin:>6.0f}x {r['wrong_tap']:>9.2g} "
                     f"{r['wrong_tap'] / r['bound']:>6.0f}x")
    return "\n".join(lines)


# ------------------------------------------------------------- the report's sweeps
# Error against the reduction length and the tile size, for the report's figure:
# conv2d 3x3 over channels (F(6x6,3x3) is not a suite algorithm; it runs through the
# same pipeline as a point beyond F4, held to the 3e-4 it was measured against), and
# fft over kernel sizes.
CHANNELS = (16, 32, 64, 128, 256, 512)
F6 = "winograd_f6"
F6_BOUND = 3e-4
KERNEL_SIZES = (3, 5, 7, 9, 11)


def _run_f6(spec: ConvSpec, x, w) -> np.ndarray:
    from .winograd.conv2d import winograd2d

    return winograd2d(x, w[0], 6, 1, spec.out_size, spec.padding, spec.dilation)


def channel_sweep(size: int = 12, seeds: int = 2, channels=CHANNELS) -> list[dict]:
    """Worst error over the seeds per (channels, algorithm), conv2d 3x3 stride 1 padding 1,
    long form (algorithm, channels, max_rel_error, bound): the report's accuracy table."""
    rows = []
    for c in channels:
        spec = ConvSpec(n=1, c=c, k=c, size=size, kernel=3, padding=1)
        names = [a for a in ALGORITHMS if not supports("conv2d", a, spec)]
        worst = dict.fromkeys(names + [F6], 0.0)
        for seed in range(seeds):
            x, w = make_inputs("conv2d", spec, seed=seed)
            ref = reference("conv2d", spec, x, w)
            for a in names:
                worst[a] = max(worst[a], accuracy.error(run("conv2d", a, spec, x, w), ref))
            worst[F6] = max(worst[F6], accuracy.error(_run_f6(spec, x, w), ref))
        rows += [dict(algorithm=a, channels=c, max_rel_error=e,
                      bound=F6_BOUND if a == F6 else accuracy.bound(a, "conv2d", spec))
                 for a, e in worst.items()]
    return rows


def kernel_sweep(algorithm: str = "fft", size: int = 16, k: int = 64,
                 kernel_sizes=KERNEL_SIZES, channels=CHANNELS) -> list[dict]:
    """`algorithm`'s error per (kernel size, channels), with its bound and the Bound scale
    the error alone would need (error / (EPS32 sqrt(L)))."""
    rows = []
    for r in kernel_sizes:
        for c in channels:
            spec = ConvSpec(n=1, c=c, k=k, size=size, kernel=r, padding=r // 2)
            m = measure(algorithm, "conv2d", spec, seeds=(0,))
            if m:
                rows.append(dict(kernel=r, channels=c, max_rel_error=m["worst"],
                                 bound=m["bound"], scale_needed=m["worst"] / (
                                     accuracy.EPS32 * np.sqrt(m["L"]))))
    return rows


def write_csv(rows: list[dict], path) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)


def main(argv=None) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(prog="python -m kernels.accuracy_table",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the small problems")
    ap.add_argument("--sweeps", action="store_true",
                    help="also the report's sweeps: conv2d 3x3 over channels, fft over kernels")
    ap.add_argument("--csv", metavar="PATH",
                    help="write the channel sweep (algorithm, channels, max_rel_error, bound) "
                         "for `convbench report --accuracy`")
    args = ap.parse_args(argv)
    print(render(table(QUICK if args.quick else CALIBRATION)))
    if args.sweeps or args.csv:
        rows = channel_sweep()
        if args.csv:
            write_csv(rows, args.csv)
        fmt = {"max_rel_error": "{:.3g}".format, "bound": "{:.3g}".format}
        print("\nconv2d 3x3 s1 p1, 12x12, worst of 2 seeds")
        print(pd.DataFrame(rows).to_string(index=False, formatters=fmt))
    if args.sweeps:
        df = pd.DataFrame(kernel_sweep())
        print("\nfft, conv2d stride 1, 16x16, k=64: error, bound, Bound scale needed")
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
