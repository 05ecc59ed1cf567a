"""Depthwise bilinear convolution (Winograd, FFT): one filter per channel, so the elementwise
stage is a plain per-channel product M[f, t, c] = U[f, c] * V[f, t, c], no GEMM.

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
from .pipeline import (
    _output_block,
    input_transform,
    pack_subgrids,
    tile_position,
    tiles_along,
)


@njit(**JIT)
def _dw_tile(Vf, U, mbuf, t, T, c, F):
    for f in range(F):
        v = Vf[(f * T + t) * c:(f * T + t + 1) * c]
        u = U[f]
        d = mbuf[f * c:(f + 1) * c]
        for i in range(c):
            d[i] = u[i] * v[i]


@njit(**PAR)
def depthwise_products(V, U, ATh, ATw, y, th, tw, geo):
    """y[b, ch] for every tile: A_h^T (U ⊙ V) A_w, per channel."""
    F, c = U.shape
    mh, Aw = ATh.shape[0], ATw.shape[1]
    mw = ATw.shape[0]
    T = V.shape[1] // (F * c)
    dh, dw = geo[2], geo[3]
    for t in prange(T):
        mbuf = np.empty(F * c, np.float32)
        o1 = np.empty(mh * Aw * c, np.float32)
        out = np.empty(mh * mw * c, np.float32)
        _dw_tile(V[0], U, mbuf, t, T, c, F)
        _output_block(mbuf, ATh, ATw, o1, out, c)
        b, ry, rx, ty, tx, ohs, ows = tile_position(t, th, tw, geo)
        for i in range(mh):
            u = ty * mh + i
            if u >= ohs:
                break
            for j in range(mw):
                v = tx * mw + j
                if v >= ows:
                    break
                src = out[(i * mw + j) * c:(i * mw + j + 1) * c]
                for ch in range(c):
                    y[b, ch, ry + dh * u, rx + dw * v] = src[ch]


def filter_transform_depthwise(w: np.ndarray, Gh: np.ndarray, Gw: np.ndarray) -> np.ndarray:
    """U[f, c] = (G_h w[c] G_w^T)[f] for w[c, 1, rh, rw] (tiny: alpha^2 values per channel)."""
    U = np.einsum("ai,cij,bj->abc", Gh, w[:, 0], Gw, optimize=True)
    return np.ascontiguousarray(U.reshape(-1, w.shape[0]), dtype=np.float32)


def bilinear_depthwise(x: np.ndarray, w: np.ndarray, axes, out_size, lo,
                       dilation) -> np.ndarray:
    """Depthwise stride-1 convolution of x[n, c, H, W] with oriented w[c, 1, rh, rw] by the
    per-axis bilinear algorithm `axes` ((A^T, G, B^T) of height, then width)."""
    (_, Gh, _), (_, Gw, _) = axes
    return bilinear_depthwise_prepared(x, filter_transform_depthwise(w, Gh, Gw), axes,
                                       out_size, lo, dilation)


def bilinear_depthwise_prepared(x: np.ndarray, U: np.ndarray, axes, out_size, lo,
                                dilation) -> np.ndarray:
    """`bilinear_depthwise` with the filter transformed ahead (`filter_transform_depthwise`)."""
    n, c, H, W = x.shape
    OH, OW = out_size
    dh, dw = dilation
    (ATh, Gh, BTh), (ATw, Gw, BTw) = axes
    mh, mw = ATh.shape[0], ATw.shape[0]
    th, tw = tiles_along(OH, dh, mh), tiles_along(OW, dw, mw)
    VB = n * dh * dw
    T = VB * th * tw
    xp = np.empty((VB, 1, th * mh + BTh.shape[1] - mh, tw * mw + BTw.shape[1] - mw, c),
                  np.float32)
    pack_subgrids(x, xp, lo[0], lo[1], dh, dw)
    V = np.empty((1, BTh.shape[0] * BTw.shape[0] * T * c), np.float32)
    input_transform(xp, BTh, BTw, V, mh, mw, th, tw)
    y = new_output((n, c, OH, OW))
    depthwise_products(V, U, ATh, ATw, y, th, tw, np.array([OH, OW, dh, dw], np.int64))
    return y
