"""Transposed 2-D convolution as GEMM + col2im: no zeros are inserted.

Per image and group, col[(k, kh, kw), pixels] = w_g^T @ x_g over a tile of
input pixels (the input's NCHW planes are the GEMM's right operand, no copy),
then every column is scatter-added to the output pixels its taps reach:
(iy*s - p + kh*d, ix*s - p + kw*d). Scatter-adds from different input tiles
overlap, so a work item owns a block of output channels for all input pixels
and walks its tiles in order: threads never write the same element.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, new_output
from ..spec import ConvSpec
from ..types import flip_spatial
from .blas import gemm, single_threaded_blas
from .plan import CACHE_TILE_BYTES, MIN_TILE, workspace_budget
from .unfold import U, _valid_range

# geometry: H, W (input), OH, OW, sh, sw, ph, pw, dh, dw, KH, KW
H_, W_, OH_, OW_, SH_, SW_, PH_, PW_, DH_, DW_, KH_, KW_ = range(12)


@njit(**JIT)
def col2im_row(col, s0, yf, y0, kh, kw, p0, p1, geo):
    """yf[y0 + oy*OW + ox] += col[s0 + t] for the input pixels p0..p1 of one tap."""
    W, OH, OW = geo[W_], geo[OH_], geo[OW_]
    sh, sw = geo[SH_], geo[SW_]
    offh = kh * geo[DH_] - geo[PH_]
    offw = kw * geo[DW_] - geo[PW_]
    lo, hi = _valid_range(offw, sw, W, OW)
    tn = p1 - p0
    ix0 = p0 % W
    iy = p0 // W
    t = 0
    while t < tn:
        n = min(W - ix0, tn - t)
        oy = iy * sh + offh
        if 0 <= oy < OH:
            a = min(max(lo - ix0, 0), n)
            b = max(min(hi - ix0, n), a)
            src = s0 + t + a
            dst = y0 + oy * OW + (ix0 + a) * sw + offw
            for q in range(b - a):
                yf[U(dst + q * sw)] += col[U(src + q)]
        t += n
        ix0 = 0
        iy += 1


@njit(**PAR)
def transposed_gemm(x, wt, y, geo, kchunks, tn, ws):
    """y[n, k, OH*OW] from x[n, c, H*W] and wt[g, c/g, k/g*KH*KW] (the raw weights)."""
    n, c, HW = x.shape
    groups, cg, kcols = wt.shape
    k, OP = y.shape[1], y.shape[2]
    kg = k // groups
    taps = geo[KH_] * geo[KW_]
    KW = geo[KW_]
    kper = (kg + kchunks - 1) // kchunks
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    for item in prange(n * groups * kchunks):
        kc = item % kchunks
        g = (item // kchunks) % groups
        b = item // (kchunks * groups)
        k0 = kc * kper
        k1 = min(kg, k0 + kper)
        if k1 <= k0:
            continue
        col = ws[numba.get_thread_id()]
        ybase = (b * k + g * kg) * OP
        yc = yf[ybase + k0 * OP:ybase + k1 * OP]
        for q in range(yc.shape[0]):
            yc[q] = 0.0
        wg = wt[g].reshape(-1)
        M = (k1 - k0) * taps
        for p0 in range(0, HW, tn):
            p1 = min(HW, p0 + tn)
            m = p1 - p0
            gemm(M, m, cg, wg[k0 * taps:], kcols, True, xf[(b * c + g * cg) * HW + p0:], HW,
                 col, m, 0.0)
            r = 0
            for kk in range(k0, k1):
                for tap in range(taps):
                    col2im_row(col, r * m, yf, ybase + kk * OP, tap // KW, tap % KW, p0, p1,
                               geo)
                    r += 1


def transposed_tiling(spec: ConvSpec) -> tuple[int, int, int, int]:
    """(kchunks, tile, slots, slot_elems) for a transposed spec."""
    threads = numba.get_num_threads()
    kg = spec.k // spec.groups
    outer = spec.n * spec.groups
    kchunks = min(kg, math.ceil(threads / outer)) if outer < threads else 1
    M = math.ceil(kg / kchunks) * math.prod(spec.kernel)
    HW = math.prod(spec.size)
    tile = min(HW, max(MIN_TILE, CACHE_TILE_BYTES // (4 * M)))
    tile = max(1, min(tile, workspace_budget() // (4 * M * threads)))
    tile = math.ceil(HW / math.ceil(HW / tile))
    return kchunks, tile, threads, M * tile


def prepare_transposed(spec: ConvSpec, w: np.ndarray) -> np.ndarray:
    """wt[g, c/g, k/g*KH*KW]: the raw weights (flipped if the spec says so), grouped."""
    if spec.flip:
        w = flip_spatial(w, 2)
    return np.ascontiguousarray(w).reshape(spec.groups, spec.c // spec.groups, -1)


def execute_transposed(spec: ConvSpec, x: np.ndarray, wt: np.ndarray) -> np.ndarray:
    y = new_output(spec.output_shape)
    kchunks, tile, slots, elems = transposed_tiling(spec)
    ws = np.empty((slots, elems), np.float32)
    geo = np.array([*spec.size, *spec.out_size, *spec.stride, *spec.padding, *spec.dilation,
                    *spec.kernel], np.int64)
    with single_threaded_blas():
        transposed_gemm(x.reshape(spec.n, spec.c, -1), wt, y.reshape(spec.n, spec.k, -1),
                        geo, kchunks, tile, ws)
    return y
