"""Issue target: fft against our other algorithms and torch (oneDNN), 2 threads, float32, N=1.

Layers with 3x3, 5x5, 7x7 and 11x11 kernels of real networks: AlexNet conv1 (11x11
stride 4: polyphase) and conv2 (5x5, 2 groups), GoogLeNet's 5x5 inception branches
(Szegedy et al. 2015, Table 1: the 5x5 after its 1x1 reduction), ResNet-50's 7x7
stride-2 stem (polyphase) and VGG-16's 3x3 layers. Target: fft faster than every
other algorithm of ours and than torch on the stride-1 layers of 5x5 and larger with
>= 64 channels.

    python -m harness.checks.fft [--threads 2] [--quick] [--repeat 15]
    python -m harness.checks.fft --desc 'mb1ic8ih12oc8oh12kh5ph2'   # one layer (smoke test)

Every cell is timed in its own process, alternating sides (`time_in_process`): the
figure per side is the lower of its per-process medians. `best other` is the fastest
of direct, im2col and winograd_f4 (where it applies); ratio > 1: fft is faster.
"""

from __future__ import annotations

import argparse
import math

import kernels
from harness.checks.common import geomean, print_header, time_in_process
from harness.checks.winograd import VGG16_3X3
from harness.peers import peer_reason
from kernels import ConvSpec

ALEXNET = [
    'mb1ic3ih227oc96oh55kh11sh4n"alexnet:conv1"',
    'g2mb1ic96ih27oc256oh27kh5ph2n"alexnet:conv2"',
]
GOOGLENET_5X5 = [  # (#5x5 reduce -> #5x5) of each inception module
    'mb1ic16ih28oc32oh28kh5ph2n"googlenet:inception_3a_5x5"',
    'mb1ic32ih28oc96oh28kh5ph2n"googlenet:inception_3b_5x5"',
    'mb1ic16ih14oc48oh14kh5ph2n"googlenet:inception_4a_5x5"',
    'mb1ic24ih14oc64oh14kh5ph2n"googlenet:inception_4b_5x5"',
    'mb1ic32ih14oc64oh14kh5ph2n"googlenet:inception_4d_5x5"',
    'mb1ic32ih14oc128oh14kh5ph2n"googlenet:inception_4e_5x5"',
    'mb1ic32ih7oc128oh7kh5ph2n"googlenet:inception_5a_5x5"',
    'mb1ic48ih7oc128oh7kh5ph2n"googlenet:inception_5b_5x5"',
]
RESNET50_STEM = ['mb1ic3ih224oc64oh112kh7sh2ph3n"resnet50:conv1"']
OTHERS = ("direct", "im2col", "winograd_f4")


def conv_type_of(spec: ConvSpec) -> str:
    return "grouped" if spec.groups > 1 else "conv2d"


def layer_row(desc: str, threads: int, repeat: int, rounds: int = 2) -> dict:
    """ms of fft, each other algorithm that runs the layer and torch, each side in its own
    processes; ratios of the best other and of torch to fft."""
    spec = ConvSpec.parse(desc)
    conv_type = conv_type_of(spec)
    sides = ["fft"] + [a for a in OTHERS if kernels.supports(conv_type, a, spec) is None]
    if peer_reason("torch", conv_type, spec) is None:
        sides.append("torch")
    best = dict.fromkeys(sides, math.inf)
    for _ in range(rounds):  # alternate the sides, round by round
        for side in sides:
            best[side] = min(best[side], time_in_process(conv_type, side, spec, threads, repeat))
    others = [best[a] for a in sides if a not in ("fft", "torch")]
    row = {"layer": spec.name or desc, "kernel": "x".join(map(str, spec.kernel)),
           "stride": spec.stride[0], "c": spec.c, "k": spec.k}
    row.update({f"{side} ms": best[side] * 1e3 for side in sides})
    row["best other / fft"] = min(others) / best["fft"] if others else math.nan
    row["torch / fft"] = best["torch"] / best["fft"] if "torch" in best else math.nan
    return row


def _print(title: str, rows: list[dict]) -> None:
    import pandas as pd

    print(f"\n{title}")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for col in ("best other / fft", "torch / fft"):
        print(f"geomean {col} (>1: fft faster): {geomean([r[col] for r in rows]):.3f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--quick", action="store_true",
                    help="AlexNet conv2, two GoogLeNet 5x5 branches and two VGG-16 layers")
    ap.add_argument("--desc", nargs="*", metavar="DESCRIPTOR", help="time these layers only")
    args = ap.parse_args(argv)
    print_header(args.threads)
    if args.desc:
        groups = [("layers given", args.desc)]
    elif args.quick:
        groups = [("quick set", [ALEXNET[1], GOOGLENET_5X5[1], GOOGLENET_5X5[5],
                                 VGG16_3X3[3], VGG16_3X3[7]])]
    else:
        groups = [("AlexNet (11x11 stride 4, 5x5 grouped)", ALEXNET),
                  ("GoogLeNet 5x5 inception branches", GOOGLENET_5X5),
                  ("ResNet-50 7x7 stride-2 stem", RESNET50_STEM),
                  ("VGG-16 3x3", VGG16_3X3)]
    for title, descs in groups:
        _print(title, [layer_row(d, args.threads, args.repeat) for d in descs])


if __name__ == "__main__":
    main()
