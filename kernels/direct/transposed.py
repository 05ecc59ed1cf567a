"""Direct transposed convolution, gather form: each output pixel sums the input pixels
that the forward convolution would have sent to it, so threads never write the same
element and no zeros are inserted.

Output column ox receives tap kw from input column (ox + p - kw*d) / s when
that is an integer, so the valid taps depend only on ox mod s: the output row
is processed one stride phase at a time, where 6 consecutive pixels of a phase
read 6 consecutive input pixels. The input is packed channels-last with a zero
margin wide enough that every computed index lands inside it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..blocks import (
    JIT,
    KB,
    PAR,
    PB,
    add_block,
    add_block_2x6,
    dot_2x6,
    dot_4x6,
    new_output,
    pack_channels_last,
)
from ..spec import ConvSpec
from ..types import flip_spatial
from .dense import kchunks_for


@njit(**JIT)
def _phase_block(xf, wf, y, b, g, kg, k0, oy, px, j0, nj, taps_h, taps_w, nth, ntw, geo_h, geo,
                 acc):
    s, p, d, ml, Wp, cg, KH, KW = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7]
    acc[:] = 0
    last = nj - 1
    for a in range(nth):
        kh = taps_h[a]
        iy = (oy + geo_h[1] - kh * geo_h[2]) // geo_h[0] + geo_h[3]
        for e in range(ntw):
            kw = taps_w[e]
            ix = (px + s * j0 + p - kw * d) // s + ml
            base = (iy * Wp + ix) * cg
            tap = (kh * KW + kw) * cg
            wst = KH * KW * cg
            w0 = k0 * wst + tap
            # the block is chosen here (KB is a compile-time constant), not through a shared
            # wrapper: called through one this loop ran 9-27% slower on AVX-512
            if KB == 4:
                add_block(acc, dot_4x6(xf, base + min(0, last - j0) * cg,
                                       base + min(1, last - j0) * cg, base + min(2, last - j0) * cg,
                                       base + min(3, last - j0) * cg, base + min(4, last - j0) * cg,
                                       base + min(5, last - j0) * cg, wf, w0, w0 + wst,
                                       w0 + 2 * wst, w0 + 3 * wst, cg))
            else:
                add_block_2x6(acc, dot_2x6(xf, base + min(0, last - j0) * cg,
                                           base + min(1, last - j0) * cg,
                                           base + min(2, last - j0) * cg,
                                           base + min(3, last - j0) * cg,
                                           base + min(4, last - j0) * cg,
                                           base + min(5, last - j0) * cg, wf, w0, w0 + wst, cg))
    for j in range(PB):
        if j0 + j < nj:
            ox = px + s * (j0 + j)
            for q in range(KB):
                if k0 + q < kg:
                    y[b, g * kg + k0 + q, oy, ox] = acc[j * KB + q]


@njit(**PAR)
def conv_transposed(xp, wp, y, geo_h, geo_w, kchunks):
    """y[n, k, oy, ox] of a 2-D transposed conv; xp[n, g, Hp, Wp, cg] has margin geo[3]."""
    n, groups, Hp, Wp, cg = xp.shape
    OH, OW = y.shape[2], y.shape[3]
    kg = y.shape[1] // groups
    nkb = wp.shape[1] // KB
    per_chunk = (nkb + kchunks - 1) // kchunks
    sh, ph, dh = geo_h[0], geo_h[1], geo_h[2]
    sw = geo_w[0]
    KH, KW = geo_w[6], geo_w[7]
    for item in prange(n * groups * OH * sw * kchunks):
        ch = item % kchunks
        px = (item // kchunks) % sw
        oy = (item // (kchunks * sw)) % OH
        g = (item // (kchunks * sw * OH)) % groups
        b = item // (kchunks * sw * OH * groups)
        if px >= OW:
            continue
        taps_h = np.empty(KH, np.int64)
        nth = 0
        for kh in range(KH):
            if (oy + ph - kh * dh) % sh == 0:
                taps_h[nth] = kh
                nth += 1
        taps_w = np.empty(KW, np.int64)
        ntw = 0
        for kw in range(KW):
            if (px + geo_w[1] - kw * geo_w[2]) % sw == 0:
                taps_w[ntw] = kw
                ntw += 1
        nj = (OW - px + sw - 1) // sw
        xf = xp[b, g].ravel()
        wf = wp[g].ravel()
        acc = np.empty(KB * PB, np.float32)
        for kb in range(ch * per_chunk, min(nkb, (ch + 1) * per_chunk)):
            for j0 in range(0, nj, PB):
                _phase_block(xf, wf, y, b, g, kg, kb * KB, oy, px, j0, nj, taps_h, taps_w,
                             nth, ntw, geo_h, geo_w, acc)


def pack_transposed_weights(w: np.ndarray, groups: int, flip: bool) -> np.ndarray:
    """w[c, k/g, KH, KW] -> wp[g, kgpad, KH*KW*c/g] (kgpad rounded up to KB)."""
    c, kg, KH, KW = w.shape
    if flip:
        w = flip_spatial(w, 2)
    cg = c // groups
    kgpad = -(-kg // KB) * KB
    wp = np.zeros((groups, kgpad, KH, KW, cg), np.float32)
    wp[:, :kg] = w.reshape(groups, cg, kg, KH, KW).transpose(0, 2, 3, 4, 1)
    return wp.reshape(groups, kgpad, KH * KW * cg)


def prepare_transposed(spec: ConvSpec, w: np.ndarray) -> np.ndarray:
    return pack_transposed_weights(w, spec.groups, spec.flip)


def execute_transposed(spec: ConvSpec, x: np.ndarray, wp: np.ndarray) -> np.ndarray:
    """Transposed conv of x with weights packed by `prepare_transposed`."""
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    (KH, KW), (ah, aw) = spec.kernel, spec.output_padding
    # margins so that (o + p - k*d) / s stays inside the packed input
    lo = (0, -(-(KH - 1) * dh // sh), -(-(KW - 1) * dw // sw))
    hi = (0, -(-(dh * (KH - 1) + ah) // sh) + 1, -(-(dw * (KW - 1) + aw) // sw) + PB + 1)
    cg = spec.c // spec.groups
    xp = pack_channels_last(x[:, :, None], spec.groups, lo, hi, (1, 1, 1))[:, :, 0]
    xp = np.ascontiguousarray(xp)
    y = new_output(spec.output_shape)
    Wp = xp.shape[3]
    geo_h = np.array([sh, ph, dh, lo[1], Wp, cg, KH, KW], np.int64)
    geo_w = np.array([sw, pw, dw, lo[2], Wp, cg, KH, KW], np.int64)
    items = spec.n * spec.groups * spec.out_size[0] * sw
    conv_transposed(xp, wp, y, geo_h, geo_w, kchunks_for(items, wp.shape[1] // KB))
    return y
