"""Depthwise Winograd: one 3x3 filter per channel, so the elementwise stage is a plain
per-channel product M[f, t, c] = U[f, c] * V[f, t, c], no GEMM.

The input is packed channels-last (one group holding every channel), so the
input transform, the products and the output transform all run vectorised
over channels, like the dense pipeline. With a single filter per channel the
transforms cost more than the products they save: per output F(4x4,3x3) does
2.25 multiplications in the products but about 30 in the transforms, against 9
for the direct loop (see `transform_multiplications`). It is here to show that.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, new_output
from ..tiled.pipeline import (
    _output_block,
    input_transform,
    pack_subgrids,
    tile_position,
    tiles_along,
)
from .matrices import float_matrices


@njit(**JIT)
def _dw_tile(Vf, U, mbuf, t, T, c, F):
    for f in range(F):
        v = Vf[(f * T + t) * c:(f * T + t + 1) * c]
        u = U[f]
        d = mbuf[f * c:(f + 1) * c]
        for i in range(c):
            d[i] = u[i] * v[i]


@njit(**PAR)
def depthwise_products(V, U, AT, y, th, tw, geo):
    """y[b, ch] for every tile: A^T (U ⊙ V) A, per channel."""
    F, c = U.shape
    m, A = AT.shape
    T = V.shape[1] // (F * c)
    dh, dw = geo[2], geo[3]
    for t in prange(T):
        mbuf = np.empty(F * c, np.float32)
        o1 = np.empty(m * A * c, np.float32)
        out = np.empty(m * m * c, np.float32)
        _dw_tile(V[0], U, mbuf, t, T, c, F)
        _output_block(mbuf, AT, AT, o1, out, c)
        b, ry, rx, ty, tx, ohs, ows = tile_position(t, th, tw, geo)
        for i in range(m):
            u = ty * m + i
            if u >= ohs:
                break
            for j in range(m):
                v = tx * m + j
                if v >= ows:
                    break
                src = out[(i * m + j) * c:(i * m + j + 1) * c]
                for ch in range(c):
                    y[b, ch, ry + dh * u, rx + dw * v] = src[ch]


def filter_transform_depthwise(w: np.ndarray, m: int) -> np.ndarray:
    """U[f, c] = (G w[c] G^T)[f] for w[c, 1, 3, 3] (tiny: 36 values per channel)."""
    _, G, _ = float_matrices(m)
    U = np.einsum("ai,cij,bj->abc", G, w[:, 0], G, optimize=True)
    return np.ascontiguousarray(U.reshape(-1, w.shape[0]), dtype=np.float32)


def winograd_depthwise(x: np.ndarray, w: np.ndarray, m: int, out_size, lo,
                       dilation) -> np.ndarray:
    """Depthwise 3x3 stride-1 convolution of x[n, c, H, W] with oriented w[c, 1, 3, 3]."""
    n, c, H, W = x.shape
    OH, OW = out_size
    dh, dw = dilation
    AT, _, BT = float_matrices(m)
    A = m + 2
    th, tw = tiles_along(OH, dh, m), tiles_along(OW, dw, m)
    VB = n * dh * dw
    T = VB * th * tw
    xp = np.empty((VB, 1, th * m + 2, tw * m + 2, c), np.float32)
    pack_subgrids(x, xp, lo[0], lo[1], dh, dw)
    V = np.empty((1, A * A * T * c), np.float32)
    input_transform(xp, BT, BT, V, m, m, th, tw)
    U = filter_transform_depthwise(w, m)
    y = new_output((n, c, OH, OW))
    depthwise_products(V, U, AT, y, th, tw, np.array([OH, OW, dh, dw], np.int64))
    return y
