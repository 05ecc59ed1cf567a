"""The channel-bank path: a separable filter bank per input channel, then a 1x1 channel mix.

`tucker.channel_bank` turns the kernel into per-channel axis bases and a core;
here the bank runs as 1-D passes (depth, vertical, horizontal) on each
zero-padded input channel, writing z[n, c*R + r, OD, OH, OW], and the core mixes
z into the output with the direct 1x1 kernel (`direct.pointwise`, a
register-blocked GEMM over (c, r) -> k, grouped like the layer).

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

from ..blocks import JIT, PAR, PB, new_output
from ..direct.dense import PackedDense, as_3d, kchunks_for
from ..direct.pointwise import PIXEL_CHUNK_BYTES, conv_pointwise, prepare_pointwise
from ..spec import ConvSpec
from ..types import flip_spatial
from .counts import volume_geometry
from .engine import pad_volumes
from .tucker import ChannelBank, channel_bank


@njit(**JIT, inline="always")
def _tap(dst, src, a, first):
    """dst (=|+=) a * src over dst's length: one unit-stride, vectorised loop."""
    if first:
        for p in range(dst.shape[0]):
            dst[p] = a * src[p]
    else:
        for p in range(dst.shape[0]):
            dst[p] += a * src[p]


@njit(**JIT, inline="always")
def _strided_tap(dst, src, a, step, first):
    """dst[p] (=|+=) a * src[p * step]: a pass at stride > 1."""
    for p in range(dst.shape[0]):
        v = a * src[p * step]
        if first:
            dst[p] = v
        else:
            dst[p] += v


@njit(**PAR)
def filter_bank(xf, A, U, V, z, geo):
    """z[b, g, p, cl*R + (i*rh + j)*rw + l] = sum over (a, e, f) of A[c, a, i] U[c, e, j]
    V[c, f, l] xp[b, c, od*sd + a*dd, oh*sh + e*dh, ow*sw + f*dw], for input channel
    c = g*cg + cl and output pixel p = (od*OH + oh)*OW + ow: the bank planes laid out
    channels-last per group, the layout the 1x1 mix reads.

    xf: the zero-padded input xp[n, c, D', H', W'] flattened; geo = (sd, sh, sw, dd, dh,
    dw, D', H', W', OD, OH, OW). Per (i): one depth pass into q (OD planes of H' x W'),
    per (i, j) one vertical pass of q into t (OD x OH rows of W'), per (i, j, l) one
    horizontal pass of t into h, copied into z.

    Each tap is one loop over whole planes: at stride 1 the rows a pass reads are
    adjacent, so the vertical pass is one loop over OH*W' and the horizontal one over
    OD*OH*W' (the last (kw-1)*dw columns of each row junk, not copied to z; t carries
    that many floats of slack), instead of short row loops (7 floats on C3D conv5a).
    """
    n, G, P, CR = z.shape
    C, KD, RD = A.shape
    KH, RH = U.shape[1], U.shape[2]
    KW, RW = V.shape[1], V.shape[2]
    sd, sh, sw, dd, dh, dw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    Dp, Hp, Wp, OD, OH, OW = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
    R = RD * RH * RW
    cg = C // G
    plane = Hp * Wp
    vol = Dp * plane
    rows = OD * OH
    for item in prange(n * C):  # item = b*C + c, the order of xf's volumes
        c = item % C
        b = item // C
        xv = xf[item * vol:(item + 1) * vol]
        zc = z[b, c // cg].reshape(-1)
        q = np.empty(OD * plane, np.float32)
        t = np.zeros(rows * Wp + (KW - 1) * dw, np.float32)
        h = np.empty(rows * Wp, np.float32)
        for i in range(RD):
            for od in range(OD):
                dst = q[od * plane:(od + 1) * plane]
                for a in range(KD):
                    s0 = (od * sd + a * dd) * plane
                    _tap(dst, xv[s0:s0 + plane], A[c, a, i], a == 0)
            for j in range(RH):
                for od in range(OD):
                    for e in range(KH):
                        f = U[c, e, j]
                        if sh == 1:
                            s0 = od * plane + e * dh * Wp
                            _tap(t[od * OH * Wp:(od + 1) * OH * Wp], q[s0:s0 + OH * Wp], f,
                                 e == 0)
                        else:
                            for oh in range(OH):
                                s0 = od * plane + (oh * sh + e * dh) * Wp
                                _tap(t[(od * OH + oh) * Wp:(od * OH + oh + 1) * Wp],
                                     q[s0:s0 + Wp], f, e == 0)
                for l in range(RW):
                    for e in range(KW):
                        if sw == 1:
                            _tap(h, t[e * dw:e * dw + rows * Wp], V[c, e, l], e == 0)
                        else:
                            for r in range(rows):
                                _strided_tap(h[r * Wp:r * Wp + OW],
                                             t[r * Wp + e * dw:(r + 1) * Wp], V[c, e, l], sw,
                                             e == 0)
                    col = (c % cg) * R + (i * RH + j) * RW + l
                    for r in range(rows):
                        for ow in range(OW):
                            zc[(r * OW + ow) * CR + col] = h[r * Wp + ow]


@dataclass(frozen=True)
class BankPlan:
    """A prepared channel-bank convolution: the bank's bases and the packed channel mix."""
    bank: ChannelBank
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
    return BankPlan(bank, ms, prepare_pointwise(ms, bank.core, kmap))


def execute_bank(spec: ConvSpec, x: np.ndarray, plan: BankPlan) -> np.ndarray:
    out, _, stride, dilation, padding, spans = volume_geometry(spec)
    xf = pad_volumes(as_3d(x, spec.ndim), *spans, *padding, 0)
    ms = plan.mix_spec
    P = math.prod(out)
    cg = ms.c // ms.groups
    z = np.empty((spec.n, ms.groups, P, cg), np.float32)
    filter_bank(xf, *plan.bank.bases, z, np.array([*stride, *dilation, *spans, *out], np.int64))
    return mix(ms, z, plan.mix)


def mix(spec: ConvSpec, z: np.ndarray, packed: PackedDense) -> np.ndarray:
    """The 1x1 convolution `spec` of z[n, g, pixels, c/g], already channels-last: the
    direct pointwise kernel without its packing step (execute_pointwise's pixel chunks
    and channel split)."""
    P, cg = z.shape[2], z.shape[3]
    y = new_output(spec.output_shape)
    pixels = max(PB, min(P, PIXEL_CHUNK_BYTES // (4 * cg)) // PB * PB)
    items = spec.n * spec.groups * -(-P // pixels)
    conv_pointwise(z, packed.wb, packed.outer, y.reshape(spec.n, spec.k, P), packed.kmap,
                   pixels, kchunks_for(items, packed.wb.shape[1]))
    return y
