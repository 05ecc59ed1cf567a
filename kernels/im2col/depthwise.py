"""Depthwise im2col: each channel's taps unfolded to a [taps, pixels] tile, then the
per-channel product (1 x taps) @ (taps x pixels) done for all channels as one
batched Numba loop (a BLAS call per channel would be a matrix-vector product of
height 1, all call overhead). depthwise_separable fuses the pointwise GEMM onto
each tile of the depthwise result, so the intermediate never exists in full.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, new_output
from ..direct.dense import as_3d
from ..spec import ConvSpec
from ..types import flip_spatial
from .blas import gemm, single_threaded_blas
from .plan import plan
from .unfold import U, spec_geometry, unfold_channel


@njit(**JIT)
def _channel_product(col, taps, tn, wc, out, o0):
    """out[o0:o0+tn] = sum_t wc[t] * col[t, 0:tn]."""
    w0 = wc[0]
    for q in range(tn):
        out[U(o0 + q)] = w0 * col[U(q)]
    for t in range(1, taps):
        wt = wc[t]
        base = t * tn
        for q in range(tn):
            out[U(o0 + q)] += wt * col[U(base + q)]


@njit(**PAR)
def depthwise_gemm(x, wm, y, geo, tn, ws):
    """y[n, c, P] = per-channel product of wm[c, taps] with each channel's unfolded tile."""
    n, c = x.shape[0], x.shape[1]
    P = y.shape[2]
    taps = wm.shape[1]
    ntiles = (P + tn - 1) // tn
    yf = y.reshape(-1)
    for item in prange(n * c * ntiles):
        tile = item % ntiles
        ch = (item // ntiles) % c
        b = item // (ntiles * c)
        p0 = tile * tn
        p1 = min(P, p0 + tn)
        col = ws[numba.get_thread_id()]
        unfold_channel(col, 0, x[b].reshape(-1), ch, p0, p1, geo)
        _channel_product(col, taps, p1 - p0, wm[ch], yf, (b * c + ch) * P + p0)


@njit(**PAR)
def separable_gemm(x, dw, pw, y, geo, tn, ws):
    """y[n, k, P] = pw[k, c] @ depthwise(x)[c, P], one pixel tile per work item."""
    n, c = x.shape[0], x.shape[1]
    k, P = y.shape[1], y.shape[2]
    taps = dw.shape[1]
    ntiles = (P + tn - 1) // tn
    yf = y.reshape(-1)
    for item in prange(n * ntiles):
        tile = item % ntiles
        b = item // ntiles
        p0 = tile * tn
        p1 = min(P, p0 + tn)
        m = p1 - p0
        slot = ws[numba.get_thread_id()]
        col = slot[:taps * tn]
        mid = slot[taps * tn:]
        xf = x[b].reshape(-1)
        for ch in range(c):
            unfold_channel(col, 0, xf, ch, p0, p1, geo)
            _channel_product(col, taps, m, dw[ch], mid, ch * m)
        gemm(k, m, c, pw.reshape(-1), c, False, mid, m, yf[b * k * P + p0:], P, 0.0)


def depthwise_tiling(spec: ConvSpec):
    return plan(math.prod(spec.kernel), math.prod(spec.out_size), spec.n * spec.c)


def separable_tiling(spec: ConvSpec):
    return plan(math.prod(spec.kernel), math.prod(spec.out_size), spec.n,
                extra_per_col=spec.c)


def prepare_depthwise(spec: ConvSpec, w: np.ndarray) -> np.ndarray:
    """wm[c, taps]: the depthwise kernel w[c, 1, *kernel], flipped if the spec says so."""
    if spec.flip:
        w = flip_spatial(w, spec.ndim)
    return np.ascontiguousarray(w).reshape(spec.c, -1)


def execute_depthwise(spec: ConvSpec, x: np.ndarray, wm: np.ndarray) -> np.ndarray:
    y = new_output(spec.output_shape)
    t = depthwise_tiling(spec)
    ws = np.empty((t.slots, t.slot_elems), np.float32)
    depthwise_gemm(as_3d(x, spec.ndim), wm, y.reshape(spec.n, spec.c, -1), spec_geometry(spec),
                   t.tile, ws)
    return y



def prepare_depthwise_separable(spec: ConvSpec, dw: np.ndarray,
                                pw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dwm[c, taps], pwm[k, c]): both stages' GEMM operands."""
    return prepare_depthwise(spec, dw), np.ascontiguousarray(pw).reshape(spec.k, spec.c)


def execute_depthwise_separable(spec: ConvSpec, x: np.ndarray,
                                operands: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    dwm, pwm = operands
    y = new_output(spec.output_shape)
    t = separable_tiling(spec)
    ws = np.empty((t.slots, t.slot_elems), np.float32)
    with single_threaded_blas():
        separable_gemm(as_3d(x, spec.ndim), dwm, pwm, y.reshape(spec.n, spec.k, -1),
                       spec_geometry(spec), t.tile, ws)
    return y
