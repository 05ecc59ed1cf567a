"""Issue target: im2col + GEMM against torch in the same process, 2 threads, N=1.

- conv2d on ResNet-50's 3x3 stride-1 layers (target >= 0.6x torch geomean)
- pointwise on ResNet-50's 1x1 layers and MobileNetV1's pointwise layers (>= 0.9x)
- transposed2d on two decoder layers (>= 0.5x)
- conv3d on a 3D U-Net 3x3x3 layer (>= 0.5x)

    python -m harness.checks.im2col [--threads 2] [--only conv2d,pointwise,...] [--median]

Timing: by default blocks of ours and of torch's calls alternate and each keeps
its best time, so a burst of load from other processes cannot land on one side
only (on a shared 2-core machine the median of back-to-back runs moved the
ratio by 2x between runs); --median uses the shared `compare_with_torch`.

Every im2col GEMM goes through the BLAS that scipy loads (OpenBLAS), so its
kernel choice bounds these ratios and is printed first. With its AVX2
("Haswell") kernels a core runs sgemm at about 100-115 GFLOP/s, half of what
oneDNN's AVX-512 code reaches on an AVX-512 machine; OpenBLAS reads
OPENBLAS_CORETYPE once at load, so compare e.g.
`OPENBLAS_CORETYPE=SkylakeX python -m harness.checks.im2col`.
"""

from __future__ import annotations

import argparse
import math
import time

import kernels
from harness.checks.common import compare_with_torch, print_rows
from harness.checks.direct import RESNET50_3X3
from harness.peers import peer_function, peer_reason, set_torch_threads
from kernels import ConvSpec, im2col
from kernels.blocks import set_threads

RESNET50_1X1 = [
    "mb1ic64ih56oc64oh56kh1n\"resnet_50:res2a_branch2a\"",
    "mb1ic64ih56oc256oh56kh1n\"resnet_50:res2a_branch2c\"",
    "mb1ic256ih56oc64oh56kh1n\"resnet_50:res2b_branch2a\"",
    "mb1ic128ih28oc512oh28kh1n\"resnet_50:res3a_branch2c\"",
    "mb1ic512ih28oc128oh28kh1n\"resnet_50:res3b_branch2a\"",
    "mb1ic256ih14oc1024oh14kh1n\"resnet_50:res4a_branch2c\"",
    "mb1ic1024ih14oc256oh14kh1n\"resnet_50:res4b_branch2a\"",
    "mb1ic512ih7oc2048oh7kh1n\"resnet_50:res5a_branch2c\"",
    "mb1ic2048ih7oc512oh7kh1n\"resnet_50:res5b_branch2a\"",
]
MOBILENET_V1_PW = [
    "mb1ic32ih112oc64oh112kh1n\"mobilenet:conv2_1/sep\"",
    "mb1ic64ih56oc128oh56kh1n\"mobilenet:conv2_2/sep\"",
    "mb1ic128ih56oc128oh56kh1n\"mobilenet:conv3_1/sep\"",
    "mb1ic128ih28oc256oh28kh1n\"mobilenet:conv3_2/sep\"",
    "mb1ic256ih28oc256oh28kh1n\"mobilenet:conv4_1/sep\"",
    "mb1ic256ih14oc512oh14kh1n\"mobilenet:conv4_2/sep\"",
    "mb1ic512ih14oc512oh14kh1n\"mobilenet:conv5_1/sep\"",
    "mb1ic512ih7oc1024oh7kh1n\"mobilenet:conv5_6/sep\"",
    "mb1ic1024ih7oc1024oh7kh1n\"mobilenet:conv6/sep\"",
]
DECODERS = [
    "mb1ic256ih16oc128oh32kh4sh2ph1n\"decoder:up_256_128_k4\"",
    "mb1ic64ih56oc32oh112kh3sh2ph1n\"decoder:up_64_32_k3\"",
]
UNET3D = [
    "mb1ic64id32ih32oc64od32oh32kd3kh3pd1ph1n\"3d_unet:enc2_conv\"",
]

GROUPS = {
    "conv2d": ("conv2d, ResNet-50 3x3 stride-1 layers (target >= 0.6x torch)", "conv2d",
               RESNET50_3X3, False),
    "pointwise": ("pointwise, ResNet-50 1x1 and MobileNetV1 pointwise layers "
                  "(target >= 0.9x torch)", "pointwise", RESNET50_1X1 + MOBILENET_V1_PW, False),
    "transposed2d": ("transposed2d, decoder layers (target >= 0.5x torch)", "transposed2d",
                     DECODERS, True),
    "conv3d": ("conv3d, 3D U-Net 3x3x3 layer (target >= 0.5x torch)", "conv3d", UNET3D,
               False),
}


def blas_kernel() -> str:
    from threadpoolctl import threadpool_info

    import kernels.im2col.blas  # noqa: F401  loads the BLAS the GEMMs use

    return ", ".join(sorted({f"{d['internal_api']} {d['version']} {d['architecture']}"
                             for d in threadpool_info() if d["user_api"] == "blas"}))


def best_of_interleaved(fns, rounds: int = 4, block: int = 8, max_rounds: int = 12,
                        max_seconds: float = 20.0) -> list[float]:
    """Best wall time of each callable, running blocks of `block` calls of each in turn.

    Blocks, not single calls: torch's and Numba's OpenMP workers spin for a while
    after each parallel region, so the first call after a switch of library runs
    against the other library's spinning threads (measured: 2-100x slower).
    Past `rounds`, blocks continue (up to `max_rounds` or `max_seconds`) until every
    callable's best time has been matched within 10% by another call: a lone best
    may be the one call that other processes left alone, a stalled run has no match.
    """
    samples: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    for r in range(max_rounds):
        for i, f in enumerate(fns):
            f()
            for _ in range(block):
                t0 = time.perf_counter()
                f()
                samples[i].append(time.perf_counter() - t0)
        settled = all(sorted(v)[1] <= 1.1 * min(v) for v in samples)
        if r + 1 >= rounds and (settled or time.perf_counter() - start > max_seconds):
            break
    return [min(v) for v in samples]


def compare_interleaved(conv_type: str, spec, threads: int = 2) -> dict:
    """Same row as `compare_with_torch`, timed by `best_of_interleaved`."""
    set_threads(threads)
    set_torch_threads(threads)
    x, w = kernels.make_inputs(conv_type, spec)
    flops = 2 * kernels.multiplications(conv_type, "direct", spec)
    fns = [lambda: kernels.run(conv_type, "im2col", spec, x, w)]
    if peer_reason("torch", conv_type, spec) is None:
        fns.append(peer_function("torch", conv_type, spec, x, w))
    times = best_of_interleaved(fns)
    ours = times[0]
    row = dict(ms=ours * 1e3, gflops=flops / ours / 1e9, torch_ms=math.nan, ratio=math.nan)
    if len(times) > 1:
        row.update(torch_ms=times[1] * 1e3, ratio=times[1] / ours)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=",".join(GROUPS),
                    help="comma-separated groups: " + ", ".join(GROUPS))
    ap.add_argument("--median", action="store_true",
                    help="time with harness.checks.common.compare_with_torch (median)")
    args = ap.parse_args(argv)
    print(f"BLAS: {blas_kernel()}")
    for i, name in enumerate(args.only.split(",")):
        title, conv_type, descs, transposed = GROUPS[name]
        print(("\n" if i else "") + "im2col " + title)
        rows = []
        for d in descs:
            spec = ConvSpec.parse(d, transposed=transposed)
            if args.median:
                row = compare_with_torch(conv_type, "im2col", spec, args.threads)
                del row["spec"], row["type"], row["algorithm"]
            else:
                row = compare_interleaved(conv_type, spec, args.threads)
            row["layer"] = spec.name
            row["ws_MiB"] = im2col.workspace_bytes(conv_type, spec) / 2 ** 20
            rows.append(row)
        print_rows(rows)


if __name__ == "__main__":
    main()
