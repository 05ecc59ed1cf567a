"""im2col's 1x1 case on channels-last input and output (layout "nhwc"): one plain GEMM.

A 1x1 convolution at stride 1 without padding needs no unfold in either layout; in NHWC
it is the GEMM (pixels x c/g) @ (c/g x k/g) per image and group, x's rows read in place
(row stride c) and y's rows written in place (row stride k): no copy of either. The
weights are kept transposed, wt[g, c/g, k/g], the GEMM's right operand.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..blocks import PAR, new_output
from ..layout import NHWC, output_shape
from ..spec import ConvSpec
from .blas import gemm, single_threaded_blas
from .dense import dense_tiling, gemm_item, is_bare_gemm, prepare_dense


@njit(**PAR)
def pointwise_gemm_nhwc(x, wt, y, tn, mchunks):
    """y[n, P, k] = x[n, P, c] @ wt[g] per image and group (columns g*k/g.. of y from
    columns g*c/g.. of x); a work item is a tile of tn pixels x one chunk of the group's
    output channels."""
    n, P, c = x.shape
    groups, cg, kg = wt.shape
    k = y.shape[2]
    ntiles = (P + tn - 1) // tn
    mper = (kg + mchunks - 1) // mchunks
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    wf = wt.reshape(-1)
    for item in prange(n * groups * ntiles * mchunks):
        b, g, p0, m0, m1, ch0 = gemm_item(item, mchunks, ntiles, groups, tn, mper, kg, False)
        if m1 > m0:
            gemm(min(P, p0 + tn) - p0, m1 - m0, cg, xf[(b * P + p0) * c + g * cg:], c, False,
                 wf[g * cg * kg + m0:], kg, yf[(b * P + p0) * k + ch0:], k, 0.0)


def takes_nhwc(spec: ConvSpec) -> bool:
    """The channels-last GEMM runs the 1x1 specs NCHW runs as a bare GEMM."""
    return is_bare_gemm(spec)


def prepare_pointwise_nhwc(spec: ConvSpec, w: np.ndarray) -> np.ndarray:
    """wt[g, c/g, k/g]: the 1x1 kernel w[k, c/g, 1, ...] per group, transposed."""
    return np.ascontiguousarray(prepare_dense(spec, w).transpose(0, 2, 1))


def execute_pointwise_nhwc(spec: ConvSpec, x: np.ndarray, wt: np.ndarray) -> np.ndarray:
    y = new_output(output_shape(spec, NHWC))
    P = math.prod(spec.out_size)
    t, _ = dense_tiling(spec)
    with single_threaded_blas():
        pointwise_gemm_nhwc(x.reshape(spec.n, P, spec.c), wt, y.reshape(spec.n, P, spec.k),
                            t.tile, t.mchunks)
    return y
