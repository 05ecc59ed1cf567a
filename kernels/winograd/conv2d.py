"""2-D Winograd F(m x m, 3 x 3) for any grouped 3x3 stride-1 convolution, dilation included:
the shared tiled pipeline (`kernels.tiled.pipeline`, where the stages are described) with the
Cook-Toom matrices on both axes and the generated F(2,3) / F(4,3) filter tiles."""

from __future__ import annotations

import numpy as np

from ..tiled import pipeline
from ..tiled.depthwise import bilinear_depthwise_prepared, filter_transform_depthwise
from ..tiled.pipeline import run_prepared  # noqa: F401  (the stage benchmarks call it)
from .matrices import float_matrices


def winograd_filter(w, m, groups, kmap=None, transform=False) -> pipeline.TiledFilter:
    """The weight-only part of `winograd2d` (`pipeline.prepare_filter`): with `transform`,
    the transformed filter U = G w G^T too, which a single call fuses into its products."""
    axis = float_matrices(m)
    return pipeline.prepare_filter(w, (axis, axis), groups, kmap, ftile=m if m in (2, 4) else 0,
                                   transform=transform)


def prepare2d(x, w, m, groups, out_size, lo, dilation, kmap=None):
    """Everything `winograd2d` computes before the fused stage, as a dict of its arguments
    (the stage benchmark times each part alone)."""
    return pipeline.call_buffers(x, winograd_filter(w, m, groups, kmap), out_size, lo, dilation)


def winograd2d(x: np.ndarray, w: np.ndarray, m: int, groups: int, out_size, lo, dilation,
               kmap: np.ndarray | None = None) -> np.ndarray:
    """y[n, kmap[k], oy, ox] = sum w[k, c, a, b] * x[n, c, oy + dh*a - lo_h, ox + dw*b - lo_w].

    `w[k, c/g, 3, 3]` is already oriented (flipped if the caller wants true
    convolution); `lo` the zero padding before each spatial axis (may be
    negative: a crop); the padding after is implied by `out_size`.
    """
    return run_prepared(x, prepare2d(x, w, m, groups, out_size, lo, dilation, kmap), 63)


def winograd2d_prepared(x: np.ndarray, filt: pipeline.TiledFilter, out_size, lo,
                        dilation, channels_last: bool = False) -> np.ndarray:
    """`winograd2d` with the filter from `winograd_filter` (`channels_last`: x and the
    result in layout "nhwc", no transpose: kernels.tiled.pipeline)."""
    return pipeline.bilinear2d_prepared(x, filt, out_size, lo, dilation, channels_last)


def winograd_depthwise(x: np.ndarray, w: np.ndarray, m: int, out_size, lo,
                       dilation) -> np.ndarray:
    """Depthwise 3x3 stride-1 convolution of x[n, c, H, W] with oriented w[c, 1, 3, 3]
    (kernels.tiled.depthwise)."""
    return winograd_depthwise_prepared(x, depthwise_filter(w, m), m, out_size, lo, dilation)


def depthwise_filter(w: np.ndarray, m: int) -> np.ndarray:
    """The transformed depthwise filter U[f, c] of an oriented w[c, 1, 3, 3]."""
    G = float_matrices(m)[1]
    return filter_transform_depthwise(w, G, G)


def winograd_depthwise_prepared(x: np.ndarray, U: np.ndarray, m: int, out_size, lo,
                                dilation) -> np.ndarray:
    """`winograd_depthwise` with the filter from `depthwise_filter`."""
    axis = float_matrices(m)
    return bilinear_depthwise_prepared(x, U, (axis, axis), out_size, lo, dilation)
