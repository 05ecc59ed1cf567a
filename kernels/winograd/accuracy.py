"""Error bounds of the Winograd algorithms: max |y - y_ref| / max(1, max |y_ref|) against the
float64 oracle (`kernels.accuracy.error`), with inputs from `kernels.make_inputs`
(unit-variance x, 1/sqrt(fan-in) weights).

F(2x2,3x3)'s matrices hold only 0, +-1 and 1/2, so it loses little beyond the
float32 sum itself; F(4x4,3x3) scales by up to 8 in A^T and 1/24 in G, and the
error grows with it (Lavin & Gray; Barabasz et al. measure about 10x per step
in m). `python -m harness.checks.winograd_accuracy` (conv2d 3x3, channels 16 to 512,
reduction lengths L = 144 to 4608) measured at most 0.13 EPS32 sqrt(L) for F(2,3) and
2.9 EPS32 sqrt(L) for F(4,3); the scales below are 10x those, and the floors are the
flat bounds the tests held each algorithm to before (which dominate up to L ~ 3000).
"""

from ..accuracy import Bound

BOUNDS = {
    "winograd_f2": Bound(scale=1.5, floor=1e-5),
    "winograd_f4": Bound(scale=30.0, floor=2e-4),
}

# Flat bounds of before the accuracy contract, read only by kernels.numerics and
# tests/test_target.py until the accuracy work moves them to the declared Bounds.
TOLERANCE = {
    "direct": 1e-5,
    "winograd_f2": 1e-5,
    "winograd_f4": 2e-4,
    "winograd_f6": 3e-4,
}
