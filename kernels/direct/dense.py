"""Direct grouped convolution in 1, 2 or 3 dimensions: the sliding window, register-blocked.

Layout: the input is packed channels-last and zero-padded per group,
xp[n, g, D, H, W, c/g]. For one output row the rows the kernel touches are
interleaved into a buffer B[w][kd*kh][c/g], so the window of an output pixel,
(kw, kd*kh, c/g), is one contiguous run of B (for dense kw). Each 4-channel x
6-pixel block is then 24 dot products over that run (`blocks.dot_4x6`).
2-D problems run as 3-D with depth 1; 1-D as 2-D with height 1.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, KB, PAR, PB, add_block, dot_4x6, new_output, pack_channels_last
from ..spec import ConvSpec
from ..types import flip_spatial


@njit(**JIT)
def _fill_rows(B, xg, od, oh, sd, sh, dd, dh, KD, KH):
    """B[w, kd*KH + kh, :] = xg[od*sd + kd*dd, oh*sh + kh*dh, w, :]."""
    Wp = xg.shape[2]
    cg = xg.shape[3]
    L = KD * KH * cg
    for kd in range(KD):
        for kh in range(KH):
            row = xg[od * sd + kd * dd, oh * sh + kh * dh]
            base = (kd * KH + kh) * cg
            for w in range(Wp):
                dst = B[w * L + base:w * L + base + cg]
                src = row[w]
                for c in range(cg):
                    dst[c] = src[c]


@njit(**JIT)
def _row_block(B, wf, y, b, kmap, k0, kg, ow0, od, oh, sw, dw, KW, L, acc):
    """One 4x6 block of output row (od, oh): channels k0..k0+3 of the group, pixels ow0.."""
    OW = y.shape[4]
    fused = dw == 1
    nrun = 1 if fused else KW
    runlen = KW * L if fused else L
    wrow = KW * L
    acc[:] = 0
    for r in range(nrun):
        off = r * dw * L
        t = dot_4x6(B,
                    min(ow0, OW - 1) * sw * L + off, min(ow0 + 1, OW - 1) * sw * L + off,
                    min(ow0 + 2, OW - 1) * sw * L + off, min(ow0 + 3, OW - 1) * sw * L + off,
                    min(ow0 + 4, OW - 1) * sw * L + off, min(ow0 + 5, OW - 1) * sw * L + off,
                    wf, k0 * wrow + r * L, (k0 + 1) * wrow + r * L,
                    (k0 + 2) * wrow + r * L, (k0 + 3) * wrow + r * L, runlen)
        add_block(acc, t)
    for p in range(PB):
        if ow0 + p < OW:
            for q in range(KB):
                if k0 + q < kg:
                    y[b, kmap[k0 + q], od, oh, ow0 + p] = acc[p * KB + q]


@njit(**PAR)
def conv_dense(xp, wp, y, kmap, stride, dilation, kernel, kchunks):
    """y[n, kmap[k], od, oh, ow] = sum over the group's window of xp * wp.

    xp[n, g, Dp, Hp, Wp, cg] padded input; wp[g, kgpad, KW, KD*KH*cg] packed
    weights (kgpad a multiple of 4, zero rows past kg); kmap the output
    channel of each grouped channel (identity, or ShuffleNet's shuffle).
    """
    n, groups = xp.shape[0], xp.shape[1]
    cg = xp.shape[5]
    OD, OH = y.shape[2], y.shape[3]
    KD, KH, KW = kernel
    kg = y.shape[1] // groups
    nkb = wp.shape[1] // KB
    per_chunk = (nkb + kchunks - 1) // kchunks
    L = KD * KH * cg
    Wp = xp.shape[4]
    OW = y.shape[4]
    for item in prange(n * groups * OD * OH * kchunks):
        ch = item % kchunks
        oh = (item // kchunks) % OH
        od = (item // (kchunks * OH)) % OD
        g = (item // (kchunks * OH * OD)) % groups
        b = item // (kchunks * OH * OD * groups)
        B = np.empty(Wp * L, np.float32)
        _fill_rows(B, xp[b, g], od, oh, stride[0], stride[1], dilation[0], dilation[1], KD, KH)
        wf = wp[g].ravel()
        km = kmap[g * kg:(g + 1) * kg]
        acc = np.empty(KB * PB, np.float32)
        for kb in range(ch * per_chunk, min(nkb, (ch + 1) * per_chunk)):
            for ow0 in range(0, OW, PB):
                _row_block(B, wf, y, b, km, kb * KB, kg, ow0, od, oh, stride[2],
                           dilation[2], KW, L, acc)


def as_3d(a: np.ndarray, ndim: int) -> np.ndarray:
    """View a (n, c, *spatial) array with exactly 3 spatial axes (leading ones of size 1)."""
    return a.reshape(a.shape[:2] + (1,) * (3 - ndim) + a.shape[2:])


def _pad3(t: tuple, ndim: int, fill: int) -> tuple:
    return (fill,) * (3 - ndim) + tuple(t)


def kchunks_for(items: int, nkb: int) -> int:
    """Split output channels when there are too few rows to keep every thread busy."""
    want = 4 * numba.get_num_threads()
    return max(1, min(nkb, math.ceil(want / max(items, 1))))


def pack_dense_weights(w: np.ndarray, groups: int, flip: bool) -> np.ndarray:
    """w[k, c/g, KD, KH, KW] -> wp[g, kgpad, KW, KD*KH*c/g] (kgpad rounded up to 4)."""
    k, cg, KD, KH, KW = w.shape
    if flip:
        w = flip_spatial(w, 3)
    kg = k // groups
    kgpad = -(-kg // KB) * KB
    wp = np.zeros((groups, kgpad, KW, KD, KH, cg), np.float32)
    wp[:, :kg] = w.reshape(groups, kg, cg, KD, KH, KW).transpose(0, 1, 5, 3, 4, 2)
    return wp.reshape(groups, kgpad, KW, KD * KH * cg)


def run_dense(spec: ConvSpec, x: np.ndarray, w: np.ndarray, kmap: np.ndarray | None = None,
              flip: bool | None = None) -> np.ndarray:
    """Direct grouped convolution of x with the dense kernel w[k, c/g, *kernel]."""
    nd = spec.ndim
    flip = spec.flip if flip is None else flip
    x5 = as_3d(x, nd)
    w5 = as_3d(w, nd)
    pad = _pad3(spec.padding, nd, 0)
    xp = pack_channels_last(x5, spec.groups, pad, pad, (1, 1, 1))
    wp = pack_dense_weights(w5, spec.groups, flip)
    y = new_output(spec.output_shape)
    y5 = as_3d(y, nd)
    if kmap is None:
        kmap = np.arange(spec.k)
    items = spec.n * spec.groups * math.prod(y5.shape[2:4])
    conv_dense(xp, wp, y5, kmap.astype(np.int64), _pad3(spec.stride, nd, 1),
               _pad3(spec.dilation, nd, 1), _pad3(spec.kernel, nd, 1),
               kchunks_for(items, wp.shape[1] // KB))
    return y
