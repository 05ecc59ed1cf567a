"""Max relative error of direct and the Winograd algorithms against the float64 oracle,
conv2d 3x3 stride 1 padding 1, channels 16 to 512 (error grows with the reduction length
and with the tile size m).

    python -m harness.checks.winograd_accuracy [--size 12] [--seeds 2]

Relative error = max |y - y_ref| / max(1, max |y_ref|), the measure the tests hold
each algorithm to (`kernels.winograd.TOLERANCE`). F(6x6,3x3) is not a suite
algorithm; it runs through the same kernel for comparison.
"""

from __future__ import annotations

import argparse

import numpy as np

import kernels
from kernels.winograd import TOLERANCE
from kernels.winograd.conv2d import winograd2d

CHANNELS = (16, 32, 64, 128, 256, 512)
COLUMNS = ("direct", "winograd_f2", "winograd_f4", "winograd_f6")


def errors(c: int, size: int, seed: int) -> dict:
    spec = kernels.ConvSpec(n=1, c=c, k=c, size=size, kernel=3, padding=1)
    x, w = kernels.make_inputs("conv2d", spec, seed=seed)
    ref = kernels.reference("conv2d", spec, x, w)
    scale = max(1.0, float(np.abs(ref).max()))
    out = {}
    for algo in COLUMNS:
        if algo == "winograd_f6":
            y = winograd2d(x, w[0], 6, 1, spec.out_size, spec.padding, spec.dilation)
        else:
            y = kernels.run("conv2d", algo, spec, x, w)
        out[algo] = float(np.abs(y.astype(np.float64) - ref).max()) / scale
    return out


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
    worst = {a: max(table[c, a] for c in CHANNELS) for a in COLUMNS}
    print(f"{'bound':>8} " + " ".join(f"{TOLERANCE[a]:>12.3g}" for a in COLUMNS))
    print(f"{'ok':>8} " + " ".join(f"{str(worst[a] <= TOLERANCE[a]):>12}" for a in COLUMNS))


if __name__ == "__main__":
    main()
