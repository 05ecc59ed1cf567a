"""Error bounds of the Winograd algorithms under the accuracy contract (`kernels.accuracy`:
max |y - y_ref| / max |y_ref| against the float64 oracle, `make_inputs` data).

F(2x2,3x3)'s matrices hold only 0, +-1 and 1/2, so it loses little beyond the
float32 sum itself; F(4x4,3x3) scales by up to 8 in A^T and 1/24 in G, and the
error grows with it (Lavin & Gray; Barabasz et al. measure about 10x per step
in m). The scales and floors are at least 9x the worst error that
`python -m kernels.accuracy_table` measures (L = 9 to 13,824, conv3d included).
"""

from ..accuracy import Bound

BOUNDS = {
    "winograd_f2": Bound(scale=8.0, floor=4e-6),
    "winograd_f4": Bound(scale=64.0, floor=5e-5),
}
