"""Max relative error of direct, the Winograd algorithms and fft against the float64 oracle,
conv2d 3x3 stride 1 padding 1, channels 16 to 512 (error grows with the reduction length
and with the tile size m); then fft over kernel sizes 3 to 11.

    python -m harness.checks.winograd_accuracy [--size 12] [--seeds 2] [--kernels 3 5 7 9 11]

Relative error = max |y - y_ref| / max(1, max |y_ref|) (`kernels.accuracy.error`), the
measure the tests hold each algorithm to: its declared `kernels.accuracy.Bound` at the
layer's reduction length (`kernels.accuracy.bound`). F(6x6,3x3) is not a suite
algorithm; it runs through the same kernel for comparison (bound: the 3e-4 it was
measured against). The kernel table prints each error as a fraction of fft's bound and
the Bound scale that error alone would need (error / (EPS32 sqrt(L))): the declared
scale keeps a 10x margin over the largest.
"""

from __future__ import annotations

import argparse

import numpy as np

import kernels
from kernels.accuracy import EPS32, bound, error, reduction_length
from kernels.winograd.conv2d import winograd2d

CHANNELS = (16, 32, 64, 128, 256, 512)
COLUMNS = ("direct", "winograd_f2", "winograd_f4", "winograd_f6", "fft")
KERNELS = (3, 5, 7, 9, 11)
F6_BOUND = 3e-4


def errors(c: int, size: int, seed: int) -> dict:
    spec = kernels.ConvSpec(n=1, c=c, k=c, size=size, kernel=3, padding=1)
    x, w = kernels.make_inputs("conv2d", spec, seed=seed)
    ref = kernels.reference("conv2d", spec, x, w)
    out = {}
    for algo in COLUMNS:
        if algo == "winograd_f6":
            y = winograd2d(x, w[0], 6, 1, spec.out_size, spec.padding, spec.dilation)
        else:
            y = kernels.run("conv2d", algo, spec, x, w)
        out[algo] = error(y, ref)
    return out


def _bound(algo: str, spec) -> float:
    return F6_BOUND if algo == "winograd_f6" else bound(algo, "conv2d", spec)


def fft_kernel_table(size: int = 16, seeds: int = 1, kernel_sizes=KERNELS, k: int = 64):
    """fft's worst error per (kernel size, channels), k output channels, with its bound and
    the Bound scale the error alone would need."""
    rows = []
    for r in kernel_sizes:
        for c in CHANNELS:
            spec = kernels.ConvSpec(n=1, c=c, k=k, size=size, kernel=r, padding=r // 2)
            worst = 0.0
            for seed in range(seeds):
                x, w = kernels.make_inputs("conv2d", spec, seed=seed)
                worst = max(worst, error(kernels.run("conv2d", "fft", spec, x, w),
                                         kernels.reference("conv2d", spec, x, w)))
            L = reduction_length("conv2d", spec)
            rows.append(dict(kernel=r, channels=c, max_rel_error=worst,
                             bound=bound("fft", "conv2d", spec),
                             scale_needed=worst / (EPS32 * np.sqrt(L))))
    return rows


def accuracy_table(size: int = 12, seeds: int = 2) -> list[dict]:
    """Worst error over the seeds per (channels, algorithm), long form for the report."""
    rows = []
    for c in CHANNELS:
        worst = {a: 0.0 for a in COLUMNS}
        for seed in range(seeds):
            for a, e in errors(c, size, seed).items():
                worst[a] = max(worst[a], e)
        rows += [dict(algorithm=a, channels=c, max_rel_error=worst[a]) for a in COLUMNS]
    return rows


def write_csv(rows: list[dict], path) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--kernels", type=int, nargs="*", default=list(KERNELS),
                    help="kernel sizes of the fft table (none: skip it)")
    ap.add_argument("--csv", metavar="PATH",
                    help="also write the table (algorithm, channels, max_rel_error) for "
                         "`convbench report --accuracy`")
    args = ap.parse_args(argv)
    rows = accuracy_table(args.size, args.seeds)
    if args.csv:
        write_csv(rows, args.csv)
    print(f"max relative error vs float64, conv2d 3x3 s1 p1, {args.size}x{args.size}, "
          f"worst of {args.seeds} seeds")
    print(f"{'channels':>8} " + " ".join(f"{a:>12}" for a in COLUMNS))
    table = {(r["channels"], r["algorithm"]): r["max_rel_error"] for r in rows}
    for c in CHANNELS:
        print(f"{c:>8} " + " ".join(f"{table[c, a]:>12.3g}" for a in COLUMNS))
    print("bound (at each row's reduction length), and whether every row is within it:")
    for c in CHANNELS:
        spec = kernels.ConvSpec(n=1, c=c, k=c, size=args.size, kernel=3, padding=1)
        print(f"{c:>8} " + " ".join(f"{_bound(a, spec):>12.3g}" for a in COLUMNS))
    ok = {a: all(table[c, a] <= _bound(a, kernels.ConvSpec(
        n=1, c=c, k=c, size=args.size, kernel=3, padding=1)) for c in CHANNELS) for a in COLUMNS}
    print(f"{'ok':>8} " + " ".join(f"{str(ok[a]):>12}" for a in COLUMNS))
    if args.kernels:
        import pandas as pd

        print("\nfft, conv2d stride 1, 16x16, k=64: error, bound, Bound scale needed")
        df = pd.DataFrame(fft_kernel_table(kernel_sizes=tuple(args.kernels)))
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print(f"largest scale needed {df['scale_needed'].max():.3g}; within bound: "
              f"{bool((df['max_rel_error'] <= df['bound']).all())}")


if __name__ == "__main__":
    main()
