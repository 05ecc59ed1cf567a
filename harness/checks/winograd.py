"""Issue target: Winograd against torch (oneDNN) in the same process, 2 threads, float32.

- winograd_f4 and winograd_f2 conv2d on ResNet-50's four 3x3 stride-1 layers
  (target: winograd_f4 >= 1.2x torch geomean at N=1), also at N=8;
- VGG-16's 3x3 layers (N=1);
- both on MobileNetV1's stride-1 depthwise layers (the stride-2 ones do not apply);
- the share of time in each stage of the 2-D pipeline (each stage run alone).

    python -m harness.checks.winograd [--threads 2] [--quick]
    python -m harness.checks.winograd --threads 1 --best   # min of 30+ runs, ResNet-50 N=1

`--best` takes the minimum (not the median) of at least 30 runs of each side,
which filters out a noisy neighbour on a shared machine better than a median.

GFLOP/s counts the direct algorithm's 2 flops per multiply-add, so it is an
"effective" rate comparable with torch's.
"""

from __future__ import annotations

import argparse

import numpy as np

import kernels
from harness.checks.common import (
    best_seconds,
    compare_with_torch,
    geomean,
    median_seconds,
    print_header,
    print_rows,
    time_in_process,
)
from harness.checks.direct import MOBILENET_V1_DW, RESNET50_3X3
from harness.peers import set_torch_threads
from kernels import ConvSpec
from kernels.blocks import set_threads
from kernels.winograd.conv2d import prepare2d, run_prepared

VGG16_3X3 = [
    'mb1ic3ih224oc64oh224kh3ph1n"vgg_16:conv1_1"',
    'mb1ic64ih224oc64oh224kh3ph1n"vgg_16:conv1_2"',
    'mb1ic64ih112oc128oh112kh3ph1n"vgg_16:conv2_1"',
    'mb1ic128ih112oc128oh112kh3ph1n"vgg_16:conv2_2"',
    'mb1ic128ih56oc256oh56kh3ph1n"vgg_16:conv3_1"',
    'mb1ic256ih56oc256oh56kh3ph1n"vgg_16:conv3_2"',
    'mb1ic256ih28oc512oh28kh3ph1n"vgg_16:conv4_1"',
    'mb1ic512ih28oc512oh28kh3ph1n"vgg_16:conv4_2"',
    'mb1ic512ih14oc512oh14kh3ph1n"vgg_16:conv5_1"',
]

STAGES = {"pack": 16, "input transform": 32, "filter transform": 1, "products": 2,
          "output transform": 4, "scatter": 8}


def stage_shares(spec: ConvSpec, m: int, threads: int) -> dict:
    """Milliseconds of each stage run alone, and the whole call."""
    set_threads(threads)
    x, w = kernels.make_inputs("conv2d", spec)
    p = prepare2d(x, w[0], m, 1, spec.out_size, spec.padding, spec.dilation)
    run_prepared(x, p, 63)  # V and y hold real data for the stages that read them
    row = {"layer": spec.name or str(spec), "m": m}
    for name, mask in STAGES.items():
        row[name] = median_seconds(lambda mask=mask: run_prepared(x, p, mask), 9) * 1e3
    row["whole call"] = median_seconds(
        lambda: kernels.run("conv2d", f"winograd_f{m}", spec, x, w), 9) * 1e3
    return row


def best_table(threads: int, repeat: int) -> None:
    """ResNet-50 N=1, both tile sizes against torch, and the stages, all as minima."""
    set_threads(threads)
    set_torch_threads(threads)
    rows, stages = [], []
    for d in RESNET50_3X3:
        spec = ConvSpec.parse(d)
        x, w = kernels.make_inputs("conv2d", spec)
        # torch in its own process: after our calls its first ones would run against
        # Numba's still-spinning workers
        theirs = time_in_process("conv2d", "torch", spec, threads, repeat, stat="min")
        for m in (4, 2):
            algo = f"winograd_f{m}"
            ours = best_seconds(lambda a=algo, s=spec, x=x, w=w: kernels.run("conv2d", a, s, x, w),
                                repeat)
            rows.append(dict(layer=spec.name.split(":")[-1], algorithm=algo, ms=ours * 1e3,
                             torch_ms=theirs * 1e3, ratio=theirs / ours))
            p = prepare2d(x, w[0], m, 1, spec.out_size, spec.padding, spec.dilation)
            run_prepared(x, p, 63)
            st = {"layer": rows[-1]["layer"], "m": m}
            for name, mask in STAGES.items():
                st[name] = best_seconds(lambda mask=mask, x=x, p=p: run_prepared(x, p, mask),
                                        repeat) * 1e3
            stages.append(st)
    import pandas as pd

    for algo in ("winograd_f4", "winograd_f2"):
        sub = [r for r in rows if r["algorithm"] == algo]
        print(f"-- {algo}, {threads} thread(s), min of >= {repeat} runs")
        print(pd.DataFrame(sub).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"geomean ratio to torch (>1: faster than torch): "
              f"{geomean([r['ratio'] for r in sub]):.3f}")
    print("\nstage minima (ms, each stage run alone)")
    print(pd.DataFrame(stages).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _table(title, conv_type, algos, descs, threads, n=None):
    print(f"\n{title}")
    rows = []
    for d in descs:
        spec = ConvSpec.parse(d)
        if n is not None:
            spec = spec.replace(n=n)
        for algo in algos:
            if kernels.supports(conv_type, algo, spec) is None:
                r = compare_with_torch(conv_type, algo, spec, threads)
                r["layer"] = spec.name.split(":")[-1]
                rows.append(r)
    for algo in algos:
        sub = [r for r in rows if r["algorithm"] == algo]
        if sub:
            print(f"-- {algo}")
            print_rows([{k: r[k] for k in ("layer", "spec", "ms", "gflops", "torch_ms", "ratio")}
                        for r in sub])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="ResNet-50 N=1 and stages only")
    ap.add_argument("--best", action="store_true",
                    help="ResNet-50 N=1 only, minimum of --repeat runs (ours and torch)")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args(argv)
    if args.best:
        best_table(args.threads, max(30, args.repeat))
        return
    print_header(args.threads)
    algos = ("winograd_f4", "winograd_f2")
    _table("conv2d, ResNet-50 3x3 stride-1 layers, N=1 (target: winograd_f4 >= 1.3x torch)",
           "conv2d", algos, RESNET50_3X3, args.threads)
    if not args.quick:
        _table("conv2d, ResNet-50 3x3 stride-1 layers, N=8", "conv2d", algos, RESNET50_3X3,
               args.threads, n=8)
        _table("conv2d, VGG-16 3x3 layers, N=1", "conv2d", algos, VGG16_3X3, args.threads)
        stride1 = [d for d in MOBILENET_V1_DW if "sh2" not in d]
        _table("depthwise, MobileNetV1 3x3 stride-1 depthwise layers, N=1", "depthwise",
               ("winograd_f4", "winograd_f2", "direct"), stride1, args.threads)
    print("\nstage times (ms, each stage run alone; filter transform, products, output "
          "transform and scatter are fused in the real call)")
    rows = [stage_shares(ConvSpec.parse(d), m, args.threads)
            for d in RESNET50_3X3 for m in (4, 2)]
    import pandas as pd

    df = pd.DataFrame(rows)
    parts = list(STAGES)
    df["sum of stages"] = df[parts].sum(axis=1)
    for p_ in parts:
        df[p_ + " %"] = np.round(100 * df[p_] / df["sum of stages"]).astype(int)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(df[["layer", "m", "whole call", "sum of stages"] + [p_ + " %" for p_ in parts]]
              .to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
