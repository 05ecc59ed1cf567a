"""The channel-bank path: a separable filter bank per input channel, then a 1x1 channel mix.

`tucker.channel_bank` turns the kernel into per-channel axis bases and a core;
here the bank runs as 1-D passes (depth, vertical, horizontal) on each
zero-padded input channel, writing its R planes channels-last,
z[n, g, pixel, cl*R + r], and the core mixes z into the output with the direct
1x1 kernel (`direct.pointwise.packed_pointwise`, a register-blocked GEMM over
(c, r) -> k, grouped like the layer) straight from that layout.

Why: a term path applies every rank-1 term of every (k, c) slice to the
input, so its work is k*c*terms passes of a few multiplications each, on
short rows. The bank's passes are shared by all the output channels of a
group and are ~1% of the work on a wide layer; the rest is one GEMM with the
direct kernel's multiplication count (C3D conv5a: 1.01x direct's, against
2.8x for the per-(k, c) terms). 2-D problems run as 3-D with depth 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..blocks import PAR, PB
from ..direct.dense import PackedDense, as_3d
from ..direct.pointwise import pack_pointwise, packed_pointwise
from ..spec import ConvSpec
from ..types import flip_spatial
from .counts import volume_geometry
from .engine import SLACK, blocks_for, taps
from .tucker import ChannelBank, channel_bank

MIX_SLAB_BYTES = 8 << 20  # one group's bank planes the mix keeps in L3 across all pixels


@njit(**PAR)
def filter_bank(x, Af, Uf, Vf, z, geo, kernel, nblocks):
    """z[b, g, p, cl*R + (i*rh + j)*rw + l] = sum over (a, e, f) of A[c, i, a] U[c, j, e]
    V[c, l, f] xp[b, c, od*sd + a*dd, oh*sh + e*dh, ow*sw + f*dw], for input channel
    c = g*cg + cl and output pixel p = (od*OH + oh)*OW + ow: the bank planes laid out
    channels-last per group, the layout the 1x1 mix reads.

    x: the input [n, c, D, H, W]; each channel is first copied into xv, zero-padded to
    the D' x H' x W' the passes read (here, not in a parallel region of its own: one
    fork-join fewer per call); Af, Uf, Vf the filters A[c, i, :] (kd taps) etc.
    flattened; geo = (sd, sh, sw, dd, dh, dw, D', H', W', OD, OH, OW, pd, ph, pw);
    kernel = (kd, kh, kw, rd, rh, rw). Per (i): one depth pass into q
    (OD planes of H' x W'), per (i, j) one vertical pass of q into t (OD x OH rows of
    W'), per (i, j, l) one horizontal pass of t into h, copied into z.

    Each pass is engine.taps over whole planes: at stride 1 the rows a pass reads are
    adjacent, so the vertical pass is one loop over OH*W' and the horizontal one over
    OD*OH*W' (the last (kw-1)*dw columns of each row junk, not copied to z), instead of
    short row loops (7 floats on C3D conv5a); regions are written in increasing order,
    so the BLOCK rounding's junk past one is overwritten by the next.
    """
    n, G, P, CR = z.shape
    KD, KH, KW, RD, RH, RW = kernel[0], kernel[1], kernel[2], kernel[3], kernel[4], kernel[5]
    sd, sh, sw, dd, dh, dw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    Dp, Hp, Wp, OD, OH, OW = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
    C = Af.shape[0] // (RD * KD)
    R = RD * RH * RW
    cg = C // G
    plane = Hp * Wp
    vol = Dp * plane
    rows = OD * OH
    pd, ph, pw = geo[12], geo[13], geo[14]
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    items = n * C  # item = b*C + c
    per = (items + nblocks - 1) // nblocks
    for blk in prange(nblocks):
        # zeroed once: the slack the blocked loops run into is read, never used
        xv = np.zeros(vol + SLACK, np.float32)
        q = np.zeros(OD * plane + SLACK, np.float32)
        t = np.zeros(rows * Wp + (KW - 1) * dw + SLACK, np.float32)
        h = np.zeros(rows * Wp + SLACK, np.float32)
        offd = np.empty(KD, np.int64)
        offv = np.empty(KH, np.int64)
        offh = np.empty(KW, np.int64)
        for a in range(KD):
            offd[a] = a * dd * plane
        for e in range(KH):
            offv[e] = e * dh * Wp
        for f in range(KW):
            offh[f] = f * dw
        for item in range(blk * per, min(items, (blk + 1) * per)):
            c = item % C
            b = item // C
            zc = z[b, c // cg].reshape(-1)
            for d in range(Dp):
                for hh in range(Hp):
                    o = (d * Hp + hh) * Wp
                    sd_, sh_ = d - pd, hh - ph
                    inside = 0 <= sd_ < D and 0 <= sh_ < H
                    for ww in range(Wp):
                        sw_ = ww - pw
                        xv[o + ww] = x[b, c, sd_, sh_, sw_] if inside and 0 <= sw_ < W else 0
            for i in range(RD):
                for od in range(OD):
                    taps(q, od * plane, xv, od * sd * plane, offd, Af,
                          (c * RD + i) * KD, KD, plane, 1, False)
                for j in range(RH):
                    u0 = (c * RH + j) * KH
                    for od in range(OD):
                        if sh == 1:
                            taps(t, od * OH * Wp, q, od * plane, offv, Uf, u0, KH, OH * Wp, 1,
                                  False)
                        else:
                            for oh in range(OH):
                                taps(t, (od * OH + oh) * Wp, q, od * plane + oh * sh * Wp,
                                      offv, Uf, u0, KH, Wp, 1, False)
                    for l in range(RW):
                        v0 = (c * RW + l) * KW
                        if sw == 1:
                            taps(h, 0, t, 0, offh, Vf, v0, KW, rows * Wp, 1, False)
                        else:
                            for r in range(rows):
                                taps(h, r * Wp, t, r * Wp, offh, Vf, v0, KW, OW, sw, False)
                        col = (c % cg) * R + (i * RH + j) * RW + l
                        for r in range(rows):
                            for ow in range(OW):
                                zc[(r * OW + ow) * CR + col] = h[r * Wp + ow]


@dataclass(frozen=True)
class BankPlan:
    """A prepared channel-bank convolution: the bank, its filters in the order the passes
    read them (filters[a][c, r, :] the taps of basis column r, flattened), and the
    packed channel mix."""
    bank: ChannelBank
    filters: tuple
    mix_spec: ConvSpec
    mix: PackedDense


def mix_spec(spec: ConvSpec, rows: int) -> ConvSpec:
    """The 1x1 convolution of the bank's output z (c * R channels) into the k outputs."""
    return spec.replace(c=spec.c * rows, size=spec.out_size, kernel=1, stride=1, padding=0,
                        dilation=1, flip=False, output_padding=0)


def prepare_bank(spec: ConvSpec, w: np.ndarray, kmap: np.ndarray | None = None) -> BankPlan:
    """Factor w[k, c/g, *kernel] (flip applied here) into the bank and pack its mix."""
    if spec.flip:
        w = flip_spatial(w, spec.ndim)
    bank = channel_bank(as_3d(w, spec.ndim), spec.groups)
    ms = mix_spec(spec, math.prod(bank.ranks))
    filters = tuple(np.ascontiguousarray(b.swapaxes(1, 2)).reshape(-1) for b in bank.bases)
    return BankPlan(bank, filters, ms, pack_pointwise(ms, bank.core, kmap))


def execute_bank(spec: ConvSpec, x: np.ndarray, plan: BankPlan) -> np.ndarray:
    out, kernel, stride, dilation, padding, spans = volume_geometry(spec)
    ms = plan.mix_spec
    z = np.empty((spec.n, ms.groups, math.prod(out), ms.c // ms.groups), np.float32)
    filter_bank(np.ascontiguousarray(as_3d(x, spec.ndim)), *plan.filters, z,
                np.array([*stride, *dilation, *spans, *out, *padding], np.int64),
                np.array([*kernel, *plan.bank.ranks], np.int64), blocks_for(spec.n * spec.c))
    return mix(ms, z, plan.mix)


def mix(spec: ConvSpec, z: np.ndarray, packed: PackedDense) -> np.ndarray:
    """The 1x1 convolution `spec` of z[n, g, pixels, c/g], already channels-last: the
    direct pointwise kernel without its packing step.

    Pixel chunks: the bank's reduction is long (c/g * R: 13,824 on C3D conv5a), so
    pointwise's own L2-sized chunks are a few pixels and every chunk streams all the
    weights again (28 MB x 17 on conv5a). While a group's z fits in L3 (MIX_SLAB_BYTES)
    one chunk takes every pixel and the work splits by output channels instead: the
    weights are read once and z is re-read from L3 (conv5a's mix 9.9 -> 5.8 ms on one
    core; ResNet-50's 3x3 layers 2-10% faster)."""
    P, cg = z.shape[2], z.shape[3]
    pixels = -(-P // PB) * PB if 4 * P * cg <= MIX_SLAB_BYTES else None
    return packed_pointwise(spec, z, packed, pixels)
