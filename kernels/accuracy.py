"""The accuracy contract: one error metric, and one bound per algorithm as a function of
the reduction length (the taps summed into each output).

Everything that asks "is this output good enough?" asks here: the conformance
tests, the sweeps' verification before timing, and the accuracy tables.
Each algorithm package declares its `Bound` when it declares the algorithm
(`kernels.registry.declare_algorithm`), next to the code whose error it bounds.

(Skeleton: the lead's contract for parallel work; the bodies are refined by the
structure work. Names and signatures are the contract.)
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
    """Products summed into one output element."""
    return max(1, spec.c // spec.groups * math.prod(spec.kernel))


def bound(algorithm: str, conv_type: str, spec) -> float:
    """The largest error `algorithm` may make on `spec` (its declared Bound at the
    spec's reduction length)."""
    from .registry import algorithm_bound

    return algorithm_bound(algorithm)(reduction_length(conv_type, spec))
