"""Grouped dense convolution in 1-3 D as unfold + GEMM, and the 1x1 case as a bare GEMM.

Work items are (image, group, pixel tile, output-row chunk); each runs on one
Numba thread, unfolds its tile into that thread's workspace slot and calls a
single-threaded GEMM whose result lands straight in the NCHW output: a tile
of output pixels is a column block with row stride OD*OH*OW, and for the
ShuffleNet shuffle the group's channels are every g-th output channel, so
the row stride is simply groups times larger (no extra pass).
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
from .unfold import spec_geometry, unfold_tile


@njit(**JIT)
def _tile(col, xg, wg, m0, m1, yf, c_off, ldc, p0, p1, geo):
    K = wg.shape[1]
    tn = p1 - p0
    unfold_tile(col, xg, p0, p1, geo)
    gemm(m1 - m0, tn, K, wg[m0:m1].reshape(-1), K, False, col, tn, yf[c_off:], ldc, 0.0)


@njit(**JIT)
def gemm_item(item, mchunks, ntiles, groups, tn, mper, kg, shuffle):
    """Work item -> (image b, group g, first pixel p0, GEMM rows m0..m1 of the group, and
    the output channel ch0 of row m0); items run (image, group, pixel tile, row chunk),
    row chunk fastest. With the shuffle, row m of group g is output channel m*groups + g.
    """
    mc = item % mchunks
    tile = (item // mchunks) % ntiles
    g = (item // (mchunks * ntiles)) % groups
    b = item // (mchunks * ntiles * groups)
    m0 = mc * mper
    m1 = min(kg, m0 + mper)
    ch0 = g + m0 * groups if shuffle else g * kg + m0
    return b, g, tile * tn, m0, m1, ch0


@njit(**PAR)
def dense_gemm(x, wm, y, geo, tn, mchunks, shuffle, ws):
    """y[n, k, P] = grouped conv of x[n, c, D, H, W] with wm[g, k/g, c/g*taps]."""
    n, c = x.shape[0], x.shape[1]
    groups, kg = wm.shape[0], wm.shape[1]
    k = y.shape[1]
    P = y.shape[2]
    cg = c // groups
    ntiles = (P + tn - 1) // tn
    mper = (kg + mchunks - 1) // mchunks
    yf = y.reshape(-1)
    cs = groups if shuffle else 1
    for item in prange(n * groups * ntiles * mchunks):
        b, g, p0, m0, m1, ch0 = gemm_item(item, mchunks, ntiles, groups, tn, mper, kg, shuffle)
        p1 = min(P, p0 + tn)
        if m1 > m0:
            _tile(ws[numba.get_thread_id()], x[b, g * cg:(g + 1) * cg], wm[g], m0, m1, yf,
                  (b * k + ch0) * P + p0, cs * P, p0, p1, geo)


@njit(**PAR)
def pointwise_gemm(x, wm, y, tn, mchunks, shuffle):
    """y[n, k, P] = wm[g] @ x[n, g, P] per image and group: the input's own NCHW
    planes are the GEMM's right operand (row stride P), so nothing is copied."""
    n, c, P = x.shape
    groups, kg, cg = wm.shape
    k = y.shape[1]
    ntiles = (P + tn - 1) // tn
    mper = (kg + mchunks - 1) // mchunks
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    cs = groups if shuffle else 1
    for item in prange(n * groups * ntiles * mchunks):
        b, g, p0, m0, m1, ch0 = gemm_item(item, mchunks, ntiles, groups, tn, mper, kg, shuffle)
        if m1 > m0:
            gemm(m1 - m0, min(P, p0 + tn) - p0, cg, wm[g, m0:m1].reshape(-1), cg, False,
                 xf[(b * c + g * cg) * P + p0:], P, yf[(b * k + ch0) * P + p0:], cs * P, 0.0)


def is_bare_gemm(spec: ConvSpec) -> bool:
    """A 1x1 kernel at stride 1 without padding needs no unfold at all."""
    return (all(v == 1 for v in spec.kernel) and all(v == 1 for v in spec.stride)
            and not any(spec.padding))


def dense_tiling(spec: ConvSpec):
    K = spec.c // spec.groups * math.prod(spec.kernel)
    P = math.prod(spec.out_size)
    kg = spec.k // spec.groups
    if is_bare_gemm(spec):
        t = plan(spec.c // spec.groups, P, spec.n * spec.groups, mrows=kg)
        return t, 0
    t = plan(K, P, spec.n * spec.groups, mrows=kg)
    return t, t.nbytes


def prepare_dense(spec: ConvSpec, w: np.ndarray) -> np.ndarray:
    """The GEMM's left operand wm[g, k/g, c/g*taps] of the dense kernel w[k, c/g, *kernel]."""
    if spec.flip:
        w = flip_spatial(w, spec.ndim)
    return np.ascontiguousarray(w, np.float32).reshape(spec.groups, spec.k // spec.groups, -1)


def execute_dense(spec: ConvSpec, x: np.ndarray, wm: np.ndarray,
                  shuffle: bool = False) -> np.ndarray:
    """Grouped conv of x with the prepared kernel wm, by unfold + GEMM."""
    nd = spec.ndim
    y = new_output(spec.output_shape)
    P = math.prod(spec.out_size)
    yv = y.reshape(spec.n, spec.k, P)
    t, _ = dense_tiling(spec)
    with single_threaded_blas():
        if is_bare_gemm(spec):
            pointwise_gemm(x.reshape(spec.n, spec.c, -1), wm, yv, t.tile, t.mchunks, shuffle)
        else:
            ws = np.empty((t.slots, t.slot_elems), np.float32)
            dense_gemm(as_3d(x, nd), wm, yv, spec_geometry(spec), t.tile, t.mchunks, shuffle,
                       ws)
    return y
