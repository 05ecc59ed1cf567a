"""Documented error bounds: max |y - y_ref| / max(1, max |y_ref|) against the float64 oracle,
with inputs from `kernels.make_inputs` (unit-variance x, 1/sqrt(fan-in) weights).

F(2x2,3x3)'s matrices hold only 0, +-1 and 1/2, so it loses little beyond the
float32 sum itself; F(4x4,3x3) scales by up to 8 in A^T and 1/24 in G, and the
error grows with it (Lavin & Gray; Barabasz et al. measure about 10x per step
in m). The bounds leave a 10x margin over the worst error measured by
`python -m harness.checks.winograd_accuracy` (channels 16 to 512).
"""

TOLERANCE = {
    "direct": 1e-5,
    "winograd_f2": 1e-5,
    "winograd_f4": 2e-4,
    "winograd_f6": 3e-4,
}
