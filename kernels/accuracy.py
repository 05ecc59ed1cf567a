"""The accuracy contract: one error metric, and one bound per algorithm as a function of
the reduction length L (the products summed into each output, c/g x kernel taps).

Everything that asks "is this output good enough?" asks here: the conformance
test (tests/test_conformance.py), the other tests, the sweeps' verification before
timing, kernels.numerics and the accuracy table (`python -m kernels.accuracy_table`).
Each algorithm package declares its `Bound` when it declares the algorithm
(`kernels.registry.declare_algorithm`), next to the code whose error it bounds.

The metric, `error(y, ref)`: max |y - ref| / max |ref| against the float64 oracle,
relative to the output's own scale, so it reads the same on data of any magnitude
(the earlier max(1, max |ref|) was an absolute test below 1). An all-zero reference
has no scale: the error is then absolute (max |y|). A non-finite output where the
reference is finite is an infinite error. Being relative to the largest output, it
reads large on a problem with a handful of outputs that happen to cancel; the
conformance specs have at least 8 outputs (tests/strategies.py).

The bound, `Bound(scale, floor)(L) = max(floor, scale * EPS32 * sqrt(L))`: float32
rounding in a sum of L products grows like sqrt(L) for data of random sign. Measured
(`python -m kernels.accuracy_table`, make_inputs data, seeds 0-2, worst over the
seeds; L from 9 to 13,824: conv2d/depthwise 3x3 at 1 and 32 channels, 7x7 at 3, 3x3
at 16/64/256/512, 5x5 at 64, pointwise 512, conv3d 3x3x3 at 64 and 512 channels):

    algorithm    worst error / (EPS32 sqrt(L))   worst at L = 13,824   bound declared
    direct       0.39 (depthwise L=9)            3.9e-6                Bound(8, 2e-6)
    im2col       0.39 (depthwise L=9)            4.0e-7                Bound(8, 2e-6)
    separable    0.45 (conv2d L=9)               4.6e-6                Bound(8, 2e-6)
    winograd_f2  0.50 (depthwise L=9)            1.2e-6                Bound(8, 4e-6)
    winograd_f4  6.9 (conv3d L=1728, nested     2.1e-5                Bound(64, 5e-5)
                 F(4,3) x F(4x4,3x3)); 3.6e-6
                 absolute at L=9 (transforms)

Every measured worst is at least 9x under its bound (9x for the nested 3-D Winograd
at L=1728, 14-280x elsewhere). The other side: one weight doubled (a perturbation by
its own magnitude, the smallest real kernel bug) gives an error of about
0.5 / sqrt(L) (0.15 at L=9, 6.3e-3 at L=4608, 4.3e-3 at L=13,824), 39x over the
single-sum bounds and 5x over F(4x4,3x3)'s at L=13,824, 12x at L=4608; the
bounds stop catching it near L = 4e6 / scale (500,000 taps for the single sums,
65,000 for F(4x4,3x3)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class Bound:
    """Largest error allowed for an algorithm: max(floor, scale * EPS32 * sqrt(L)) for a
    reduction length L."""

    scale: float
    floor: float = 0.0

    def __call__(self, reduction_length: int) -> float:
        return max(self.floor, self.scale * EPS32 * math.sqrt(max(1, reduction_length)))


def error(y: np.ndarray, ref: np.ndarray) -> float:
    """The one error metric: max |y - ref| / max |ref|, relative to the output's own scale.

    An all-zero reference has no scale of its own: the error is then absolute
    (max |y|). A non-finite y where the reference is finite is an infinite error;
    where the reference itself is not finite, y must hold the same value (NaN for NaN).
    """
    if ref.size == 0:
        return 0.0
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    finite = np.isfinite(ref)
    if not finite.all():
        same = (y[~finite] == ref[~finite]) | (np.isnan(y[~finite]) & np.isnan(ref[~finite]))
        if not same.all():
            return math.inf
        if not finite.any():
            return 0.0
        y, ref = y[finite], ref[finite]
    if not np.isfinite(y).all():
        return math.inf
    peak = float(np.abs(ref).max())
    return float(np.abs(y - ref).max()) / (peak if peak > 0 else 1.0)


def reduction_length(conv_type: str, spec) -> int:
    """Products summed into one output element: c/g x kernel taps (depthwise then
    pointwise: taps per channel, c channels; a transposed conv sums only the taps
    that meet an input, so this is an upper bound)."""
    return max(1, spec.c // spec.groups * math.prod(spec.kernel))


def bound(algorithm: str, conv_type: str, spec) -> float:
    """The largest error `algorithm` may make on `spec` (its declared Bound at the
    spec's reduction length)."""
    from .registry import algorithm_bound

    return algorithm_bound(algorithm)(reduction_length(conv_type, spec))
