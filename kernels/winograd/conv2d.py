"""2-D Winograd F(m x m, 3 x 3) for any grouped 3x3 stride-1 convolution, dilation included:
the shared tiled pipeline (`kernels.tiled.pipeline`, where the stages are described) with the
Cook-Toom matrices on both axes and the generated F(2,3) / F(4,3) filter tiles."""

from __future__ import annotations

import numpy as np

from ..tiled import pipeline
from ..tiled.depthwise import bilinear_depthwise
from ..tiled.pipeline import run_prepared  # noqa: F401  (the stage benchmarks call it)
from .matrices import float_matrices


def prepare2d(x, w, m, groups, out_size, lo, dilation, kmap=None):
    """Everything `winograd2d` computes before the fused stage, as a dict of its arguments
    (the stage benchmark times each part alone)."""
    axis = float_matrices(m)
    return pipeline.prepare(x, w, (axis, axis), groups, out_size, lo, dilation, kmap,
                            ftile=m if m in (2, 4) else 0)


def winograd2d(x: np.ndarray, w: np.ndarray, m: int, groups: int, out_size, lo, dilation,
               kmap: np.ndarray | None = None) -> np.ndarray:
    """y[n, kmap[k], oy, ox] = sum w[k, c, a, b] * x[n, c, oy + dh*a - lo_h, ox + dw*b - lo_w].

    `w[k, c/g, 3, 3]` is already oriented (flipped if the caller wants true
    convolution); `lo` the zero padding before each spatial axis (may be
    negative: a crop); the padding after is implied by `out_size`.
    """
    return run_prepared(x, prepare2d(x, w, m, groups, out_size, lo, dilation, kmap), 63)


def winograd_depthwise(x: np.ndarray, w: np.ndarray, m: int, out_size, lo,
                       dilation) -> np.ndarray:
    """Depthwise 3x3 stride-1 convolution of x[n, c, H, W] with oriented w[c, 1, 3, 3]
    (kernels.tiled.depthwise)."""
    axis = float_matrices(m)
    return bilinear_depthwise(x, w, (axis, axis), out_size, lo, dilation)
