"""Issue target: the separable algorithm's measured time beside its multiplication count.

1. spatially_separable, 3x3/5x5/7x7 on 56x56 and 112x112, 1 and 32 channels:
   separable (kh x 1 then 1 x kw passes) vs direct on the full kernel
   (target: 7x7 on 112x112 at least 2x faster separable).
2. conv2d with random (full-rank) kernels: the SVD split costs more than it saves.
3. depthwise_separable vs the conv2d it replaces on MobileNetV1 layers: the
   seed's "12% of the multiplications", and the share of the time.
4. flattened (lateral, vertical, horizontal passes) vs conv2d.

    python -m harness.checks.separable [--threads 2] [--repeat 9] [--median]

Times are the best of `repeat` calls by default: on a shared machine another
process that preempts one thread stalls a whole parallel region, which
shows up as whole scheduler slices in a median; --median uses the median.
"""

from __future__ import annotations

import argparse
import math
import time

import kernels
from harness.checks.common import median_seconds, time_in_process
from harness.peers import peer_reason, set_torch_threads
from kernels import ConvSpec
from kernels.blocks import set_threads

# MobileNetV1 (224x224): each depthwise 3x3 + pointwise pair, written as the conv2d it replaces
MOBILENET_V1 = [
    ("conv2", 32, 64, 112, 1), ("conv3", 64, 128, 112, 2), ("conv4", 128, 128, 56, 1),
    ("conv5", 128, 256, 56, 2), ("conv6", 256, 256, 28, 1), ("conv7", 256, 512, 28, 2),
    ("conv8-12", 512, 512, 14, 1), ("conv13", 512, 1024, 14, 2), ("conv14", 1024, 1024, 7, 1),
]


STAT = {"median": False}


def _seconds(fn, repeat: int) -> float:
    if STAT["median"]:
        return median_seconds(fn, repeat)
    fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def kernels_threads() -> int:
    import numba

    return numba.get_num_threads()


def _time(conv_type, algorithm, spec, x, w, repeat):
    return _seconds(lambda: kernels.run(conv_type, algorithm, spec, x, w), repeat)


def _torch(conv_type, spec, x, w, repeat):
    """torch in a process of its own (its speed does not depend on the values of x, w):
    right after our calls, Numba's spinning workers would slow its first calls."""
    if peer_reason("torch", conv_type, spec) is not None:
        return math.nan
    return time_in_process(conv_type, "torch", spec, kernels_threads(), repeat,
                           stat="median" if STAT["median"] else "min")


def _print(title: str, rows: list[dict]) -> None:
    import pandas as pd

    print(title)
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print()


def spatially_separable_rows(repeat: int) -> list[dict]:
    rows = []
    for c in (1, 32):
        for size in (56, 112):
            for m in (3, 5, 7):
                spec = ConvSpec(c=c, k=c, size=size, kernel=m, padding=m // 2)
                x, w = kernels.make_inputs("spatially_separable", spec)
                t_sep = _time("spatially_separable", "separable", spec, x, w, repeat)
                t_dir = _time("spatially_separable", "direct", spec, x, w, repeat)
                m_sep = kernels.multiplications("spatially_separable", "separable", spec)
                m_dir = kernels.multiplications("spatially_separable", "direct", spec)
                rows.append(dict(c_k=c, size=size, kernel=f"{m}x{m}", direct_ms=t_dir * 1e3,
                                 separable_ms=t_sep * 1e3, speedup=t_dir / t_sep,
                                 mult_ratio=m_dir / m_sep, direct_gmacs=m_dir / t_dir / 1e9,
                                 separable_gmacs=m_sep / t_sep / 1e9))
    return rows


def full_rank_rows(repeat: int) -> list[dict]:
    rows = []
    for m in (3, 5, 7):
        spec = ConvSpec(c=32, k=32, size=56, kernel=m, padding=m // 2)
        x, w = kernels.make_inputs("conv2d", spec)
        t_sep = _time("conv2d", "separable", spec, x, w, repeat)
        t_dir = _time("conv2d", "direct", spec, x, w, repeat)
        m_sep = kernels.multiplications("conv2d", "separable", spec)
        m_dir = kernels.multiplications("conv2d", "direct", spec)
        rows.append(dict(spec=str(spec), rank=m, direct_ms=t_dir * 1e3, separable_ms=t_sep * 1e3,
                         speedup=t_dir / t_sep, mult_ratio=m_dir / m_sep))
    return rows


def mobilenet_rows(repeat: int) -> list[dict]:
    rows = []
    for name, c, k, size, stride in MOBILENET_V1:
        spec = ConvSpec(c=c, k=k, size=size, kernel=3, stride=stride, padding=1,
                        name=f"mobilenet:{name}")
        x, w = kernels.make_inputs("conv2d", spec)
        xs, ws = kernels.make_inputs("depthwise_separable", spec)
        m_conv = kernels.multiplications("conv2d", "direct", spec)
        m_dws = kernels.multiplications("depthwise_separable", "direct", spec)
        m_sep = kernels.multiplications("depthwise_separable", "separable", spec)
        t_conv = _time("conv2d", "direct", spec, x, w, repeat)
        t_dws = _time("depthwise_separable", "direct", spec, xs, ws, repeat)
        t_sep = _time("depthwise_separable", "separable", spec, xs, ws, repeat)
        tt_conv = _torch("conv2d", spec, x, w, repeat)
        tt_dws = _torch("depthwise_separable", spec, xs, ws, repeat)
        rows.append(dict(layer=name, c=c, k=k, size=size, s=stride, conv2d_ms=t_conv * 1e3,
                         dws_direct_ms=t_dws * 1e3, dws_separable_ms=t_sep * 1e3,
                         mult_share=m_dws / m_conv, time_share=t_dws / t_conv,
                         sep_mult_share=m_sep / m_conv, sep_time_share=t_sep / t_conv,
                         torch_time_share=tt_dws / tt_conv))
    return rows


def flattened_rows(repeat: int) -> list[dict]:
    rows = []
    for c, size, m in ((64, 56, 3), (128, 28, 3), (256, 14, 3), (32, 56, 7)):
        spec = ConvSpec(c=c, k=c, size=size, kernel=m, padding=m // 2)
        x, w = kernels.make_inputs("conv2d", spec)
        xf, wf = kernels.make_inputs("flattened", spec)
        m_conv = kernels.multiplications("conv2d", "direct", spec)
        m_flat = kernels.multiplications("flattened", "separable", spec)
        t_conv = _time("conv2d", "direct", spec, x, w, repeat)
        t_fdir = _time("flattened", "direct", spec, xf, wf, repeat)
        t_flat = _time("flattened", "separable", spec, xf, wf, repeat)
        rows.append(dict(spec=str(spec), conv2d_ms=t_conv * 1e3, flat_direct_ms=t_fdir * 1e3,
                         flat_separable_ms=t_flat * 1e3, mult_share=m_flat / m_conv,
                         time_share=t_flat / t_conv))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--median", action="store_true", help="median instead of best time")
    args = ap.parse_args(argv)
    STAT["median"] = args.median
    set_threads(args.threads)
    set_torch_threads(args.threads)
    r = args.repeat
    _print("spatially_separable: separable vs direct (speedup = direct/separable time; "
           "mult_ratio = direct/separable multiplications; target 7x7 on 112: speedup >= 2)",
           spatially_separable_rows(r))
    _print("conv2d, random full-rank kernels: SVD split into min(kh, kw) terms per (k, c)",
           full_rank_rows(r))
    _print("depthwise_separable vs conv2d on MobileNetV1 (shares relative to direct conv2d; "
           "torch_time_share = torch dw+pw / torch conv2d)", mobilenet_rows(r))
    _print("flattened vs conv2d (shares of direct conv2d)", flattened_rows(r))


if __name__ == "__main__":
    main()
