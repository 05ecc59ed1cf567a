"""Shared timing for the checks: median wall time, GFLOP/s, ratio to torch in one process."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

import kernels
from harness.peers import peer_function, peer_reason, set_torch_threads
from kernels.blocks import set_threads


def median_seconds(fn: Callable, repeat: int = 15, min_time: float = 0.2) -> float:
    """Median of `repeat` timings after one warm-up call (compilation stays out)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * repeat:
            break
    return float(np.median(times))


def compare_with_torch(conv_type: str, algorithm: str, spec, threads: int = 2,
                       repeat: int = 15) -> dict:
    """Time one cell and torch on the same inputs; GFLOP/s counts 2 flops per dense MAC."""
    set_threads(threads)
    set_torch_threads(threads)
    x, w = kernels.make_inputs(conv_type, spec)
    flops = 2 * kernels.multiplications(conv_type, "direct", spec)
    ours = median_seconds(lambda: kernels.run(conv_type, algorithm, spec, x, w), repeat)
    row = dict(type=conv_type, algorithm=algorithm, spec=str(spec), ms=ours * 1e3,
               gflops=flops / ours / 1e9, torch_ms=math.nan, ratio=math.nan)
    if peer_reason("torch", conv_type, spec) is None:
        theirs = median_seconds(peer_function("torch", conv_type, spec, x, w), repeat)
        row.update(torch_ms=theirs * 1e3, ratio=theirs / ours)
    return row


def geomean(values) -> float:
    vals = [v for v in values if v == v and v > 0]
    return float(np.exp(np.mean(np.log(vals)))) if vals else math.nan


def print_rows(rows: list[dict]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"geomean ratio to torch (>1: faster than torch): {geomean(df['ratio']):.3f}")
