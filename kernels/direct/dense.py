"""Direct grouped convolution in 1, 2 or 3 dimensions: the sliding window, register-blocked.

Layout: the input is packed channels-last and zero-padded per group,
xp[n, g, D, H, W, c/g]. For one output row the rows the kernel touches are
interleaved into a buffer B[w][kd*kh][c/g], so the window of an output pixel,
(kw, kd*kh, c/g), is one contiguous run of B (for dense kw). Two register
blocks then walk that run:

- groups of 16 or more output channels: an outer-product block of 6 pixels x
  16 or 32 channels (`outer_block`), weights packed channels-innermost, the
  pixel values broadcast; no horizontal sums at all;
- narrower groups: 4 channels x 6 pixels as 24 dot products (`blocks.dot_4x6`).

2-D problems run as 3-D with depth 1; 1-D as 2-D with height 1.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, KB, PAR, PB, add_block, dot_4x6, new_output, pack_channels_last
from ..outer_block import LANES, outer_block_1, outer_block_2
from ..spec import ConvSpec
from ..types import flip_spatial


@njit(**JIT)
def _fill_rows(B, xg, od, oh0, nrows, sd, sh, dd, dh, KD, KH):
    """B[r, w, kd*KH + kh, :] = xg[od*sd + kd*dd, (oh0 + r)*sh + kh*dh, w, :] for r < nrows."""
    Wp = xg.shape[2]
    cg = xg.shape[3]
    L = KD * KH * cg
    for r in range(nrows):
        for kd in range(KD):
            for kh in range(KH):
                row = xg[od * sd + kd * dd, (oh0 + r) * sh + kh * dh]
                base = r * Wp * L + (kd * KH + kh) * cg
                for w in range(Wp):
                    dst = B[base + w * L:base + w * L + cg]
                    src = row[w]
                    for c in range(cg):
                        dst[c] = src[c]


@njit(**JIT)
def _pixel_offset(p, npix, OW, Wp, sw, L):
    """Start in B of the window of pixel p (clamped to the last pixel of the group)."""
    p = min(p, npix - 1)
    return ((p // OW) * Wp + (p % OW) * sw) * L


@njit(**JIT)
def _pixel_block(B, wf, y, b, kmap, k0, kg, p0, npix, od, oh0, Wp, sw, dw, KW, L, acc):
    """One 4x6 block: channels k0..k0+3 of the group, pixels p0..p0+5 of the row group,
    pixels numbered row by row from output row oh0."""
    OW = y.shape[4]
    fused = dw == 1
    nrun = 1 if fused else KW
    runlen = KW * L if fused else L
    wrow = KW * L
    acc[:] = 0
    for r in range(nrun):
        off = r * dw * L
        t = dot_4x6(B,
                    _pixel_offset(p0, npix, OW, Wp, sw, L) + off,
                    _pixel_offset(p0 + 1, npix, OW, Wp, sw, L) + off,
                    _pixel_offset(p0 + 2, npix, OW, Wp, sw, L) + off,
                    _pixel_offset(p0 + 3, npix, OW, Wp, sw, L) + off,
                    _pixel_offset(p0 + 4, npix, OW, Wp, sw, L) + off,
                    _pixel_offset(p0 + 5, npix, OW, Wp, sw, L) + off,
                    wf, k0 * wrow + r * L, (k0 + 1) * wrow + r * L,
                    (k0 + 2) * wrow + r * L, (k0 + 3) * wrow + r * L, runlen)
        add_block(acc, t)
    for j in range(PB):
        p = p0 + j
        if p < npix:
            for q in range(KB):
                if k0 + q < kg:
                    y[b, kmap[k0 + q], od, oh0 + p // OW, p % OW] = acc[j * KB + q]


@njit(**PAR)
def conv_dense(xp, wp, y, kmap, stride, dilation, kernel, rows, kchunks):
    """y[n, kmap[k], od, oh, ow] = sum over the group's window of xp * wp.

    xp[n, g, Dp, Hp, Wp, cg] padded input; wp[g, kgpad, KW, KD*KH*cg] packed
    weights (kgpad a multiple of 4, zero rows past kg); kmap the output
    channel of each grouped channel (identity, or ShuffleNet's shuffle).
    A work item is `rows` output rows x one chunk of output channels.
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
    nrg = (OH + rows - 1) // rows
    for item in prange(n * groups * OD * nrg * kchunks):
        ch = item % kchunks
        rg = (item // kchunks) % nrg
        od = (item // (kchunks * nrg)) % OD
        g = (item // (kchunks * nrg * OD)) % groups
        b = item // (kchunks * nrg * OD * groups)
        oh0 = rg * rows
        nrows = min(rows, OH - oh0)
        B = np.empty(nrows * Wp * L, np.float32)
        _fill_rows(B, xp[b, g], od, oh0, nrows, stride[0], stride[1], dilation[0], dilation[1],
                   KD, KH)
        wf = wp[g].ravel()
        km = kmap[g * kg:(g + 1) * kg]
        acc = np.empty(KB * PB, np.float32)
        npix = nrows * OW
        for kb in range(ch * per_chunk, min(nkb, (ch + 1) * per_chunk)):
            for p0 in range(0, npix, PB):
                _pixel_block(B, wf, y, b, km, kb * KB, kg, p0, npix, od, oh0, Wp, stride[2],
                             dilation[2], KW, L, acc)


@njit(**JIT)
def _outer_channel_block(B, wq, y, b, kmap, k0, kg, npix, od, oh0, Wp, sw, dw, KW, L, width,
                         out, part):
    """Channels k0..k0+width-1 of the group for every pixel of the row group.

    wq[KW*L*width] holds the block's weights with the channel innermost, so
    step i of the run loads width/16 weight vectors and broadcasts one value
    of each of the 6 pixel windows.
    """
    OW = y.shape[4]
    fused = dw == 1
    nrun = 1 if fused else KW
    runlen = KW * L if fused else L
    for p0 in range(0, npix, PB):
        a0 = _pixel_offset(p0, npix, OW, Wp, sw, L)
        a1 = _pixel_offset(p0 + 1, npix, OW, Wp, sw, L)
        a2 = _pixel_offset(p0 + 2, npix, OW, Wp, sw, L)
        a3 = _pixel_offset(p0 + 3, npix, OW, Wp, sw, L)
        a4 = _pixel_offset(p0 + 4, npix, OW, Wp, sw, L)
        a5 = _pixel_offset(p0 + 5, npix, OW, Wp, sw, L)
        for r in range(nrun):
            off = r * dw * L
            target = out if r == 0 else part
            if width == 2 * LANES:
                outer_block_2(wq, r * L * width, B, a0 + off, a1 + off, a2 + off, a3 + off,
                              a4 + off, a5 + off, runlen, target, 0)
            else:
                outer_block_1(wq, r * L * width, B, a0 + off, a1 + off, a2 + off, a3 + off,
                              a4 + off, a5 + off, runlen, target, 0)
            if r > 0:
                for i in range(PB * width):
                    out[i] += part[i]
        for j in range(PB):
            p = p0 + j
            if p < npix:
                for q in range(width):
                    if k0 + q < kg:
                        y[b, kmap[k0 + q], od, oh0 + p // OW, p % OW] = out[j * width + q]


@njit(**PAR)
def conv_dense_outer(xp, wq, y, kmap, stride, dilation, kernel, rows, kchunks):
    """As conv_dense, with wq[g, nblocks, KW*KD*KH*cg, width] (channel-innermost blocks)."""
    n, groups = xp.shape[0], xp.shape[1]
    cg = xp.shape[5]
    OD, OH = y.shape[2], y.shape[3]
    KD, KH, KW = kernel
    kg = y.shape[1] // groups
    nkb = wq.shape[1]
    width = wq.shape[3]
    per_chunk = (nkb + kchunks - 1) // kchunks
    L = KD * KH * cg
    Wp = xp.shape[4]
    OW = y.shape[4]
    nrg = (OH + rows - 1) // rows
    for item in prange(n * groups * OD * nrg * kchunks):
        ch = item % kchunks
        rg = (item // kchunks) % nrg
        od = (item // (kchunks * nrg)) % OD
        g = (item // (kchunks * nrg * OD)) % groups
        b = item // (kchunks * nrg * OD * groups)
        oh0 = rg * rows
        nrows = min(rows, OH - oh0)
        B = np.empty(nrows * Wp * L, np.float32)
        _fill_rows(B, xp[b, g], od, oh0, nrows, stride[0], stride[1], dilation[0], dilation[1],
                   KD, KH)
        km = kmap[g * kg:(g + 1) * kg]
        out = np.empty(PB * width, np.float32)
        part = np.empty(PB * width, np.float32)
        for kb in range(ch * per_chunk, min(nkb, (ch + 1) * per_chunk)):
            _outer_channel_block(B, wq[g, kb].ravel(), y, b, km, kb * width, kg, nrows * OW, od,
                                 oh0, Wp, stride[2], dilation[2], KW, L, width, out, part)


def as_3d(a: np.ndarray, ndim: int) -> np.ndarray:
    """View a (n, c, *spatial) array with exactly 3 spatial axes (leading ones of size 1)."""
    return a.reshape(a.shape[:2] + (1,) * (3 - ndim) + a.shape[2:])


def _pad3(t: tuple, ndim: int, fill: int) -> tuple:
    return (fill,) * (3 - ndim) + tuple(t)


def rows_per_item(out_h: int, row_bytes: int) -> int:
    """Output rows per work item: as many as keep the row buffer in L2.

    Each item streams all the weights of its channel chunk once, so few, tall
    items matter when the weights outgrow the caches (512x512x3x3 is 9.4 MB);
    several rows also fill 6-pixel blocks on small images (7 pixels make 2
    blocks, 49 make 9)."""
    return max(1, min(out_h, ROW_BUFFER_BYTES // max(row_bytes, 1)))


ROW_BUFFER_BYTES = 512 * 1024  # the rows of one work item stay in L2


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


def pack_outer_weights(w: np.ndarray, groups: int, flip: bool, width: int) -> np.ndarray:
    """w[k, c/g, KD, KH, KW] -> wq[g, blocks, KW*KD*KH*c/g, width], channel innermost,
    zero channels past k/g."""
    k, cg, KD, KH, KW = w.shape
    if flip:
        w = flip_spatial(w, 3)
    kg = k // groups
    nblk = -(-kg // width)
    wq = np.zeros((groups, nblk * width, KW, KD, KH, cg), np.float32)
    wq[:, :kg] = w.reshape(groups, kg, cg, KD, KH, KW).transpose(0, 1, 5, 3, 4, 2)
    wq = wq.reshape(groups, nblk, width, KW * KD * KH * cg)
    return np.ascontiguousarray(wq.transpose(0, 1, 3, 2))


def outer_width(kg: int) -> int:
    """Channels per outer-product block (0: too few channels, use the dot-product block)."""
    if kg >= 2 * LANES - LANES // 2:
        return 2 * LANES
    return LANES if kg >= LANES // 2 + LANES // 4 else 0


def run_dense(spec: ConvSpec, x: np.ndarray, w: np.ndarray, kmap: np.ndarray | None = None,
              flip: bool | None = None) -> np.ndarray:
    """Direct grouped convolution of x with the dense kernel w[k, c/g, *kernel]."""
    nd = spec.ndim
    flip = spec.flip if flip is None else flip
    x5 = as_3d(x, nd)
    w5 = as_3d(w, nd)
    pad = _pad3(spec.padding, nd, 0)
    xp = pack_channels_last(x5, spec.groups, pad, pad, (1, 1, 1))
    y = new_output(spec.output_shape)
    y5 = as_3d(y, nd)
    kmap = np.arange(spec.k) if kmap is None else kmap.astype(np.int64)
    OD, OH, OW = y5.shape[2:]
    window = math.prod(spec.kernel) * (spec.c // spec.groups)
    rows = rows_per_item(OH, xp.shape[4] * window * 4)
    items = spec.n * spec.groups * OD * -(-OH // rows)
    geometry = (_pad3(spec.stride, nd, 1), _pad3(spec.dilation, nd, 1),
                _pad3(spec.kernel, nd, 1), rows)
    width = outer_width(spec.k // spec.groups)
    if width:
        wq = pack_outer_weights(w5, spec.groups, flip, width)
        conv_dense_outer(xp, wq, y5, kmap, *geometry, kchunks_for(items, wq.shape[1]))
    else:
        wp = pack_dense_weights(w5, spec.groups, flip)
        conv_dense(xp, wp, y5, kmap, *geometry, kchunks_for(items, wp.shape[1] // KB))
    return y
