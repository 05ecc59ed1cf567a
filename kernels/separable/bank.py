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

from ..blocks import PAR
from ..direct.dense import PackedDense, as_3d
from ..direct.pointwise import execute_pointwise, prepare_pointwise
from ..spec import ConvSpec
from ..types import flip_spatial
from .counts import volume_geometry
from .engine import pad_volumes
from .tucker import ChannelBank, channel_bank


@njit(**PAR)
def filter_bank(xf, A, U, V, z, geo):
    """z[b, c*R + (i*rh + j)*rw + l, od, oh, ow] = sum over (a, e, f) of
    A[c, a, i] U[c, e, j] V[c, f, l] xp[b, c, od*sd + a*dd, oh*sh + e*dh, ow*sw + f*dw].

    xf: the zero-padded input xp[n, c, D', H', W'] flattened; geo = (sd, sh, sw, dd, dh,
    dw, D', H', W'). Per (i): one depth pass into q (OD x H' x W'), per (i, j) one
    vertical pass of q into t (OD x OH x W'), per (i, j, l) one horizontal pass of t
    into z."""
    n, OD, OH, OW = z.shape[0], z.shape[2], z.shape[3], z.shape[4]
    C, KD, RD = A.shape
    KH, RH = U.shape[1], U.shape[2]
    KW, RW = V.shape[1], V.shape[2]
    sd, sh, sw, dd, dh, dw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    Dp, Hp, Wp = geo[6], geo[7], geo[8]
    R = RD * RH * RW
    vol = Dp * Hp * Wp
    for item in prange(n * C):  # item = b*C + c, the order of xf's volumes
        c = item % C
        b = item // C
        xv = xf[item * vol:(item + 1) * vol].reshape((Dp, Hp, Wp))
        q = np.empty((OD, Hp, Wp), np.float32)
        t = np.empty((OD, OH, Wp), np.float32)
        for i in range(RD):
            for od in range(OD):
                q[od] = 0
                for a in range(KD):
                    f = A[c, a, i]
                    src = xv[od * sd + a * dd]
                    dst = q[od]
                    for h in range(Hp):
                        for w in range(Wp):
                            dst[h, w] += f * src[h, w]
            for j in range(RH):
                for od in range(OD):
                    t[od] = 0
                    for e in range(KH):
                        f = U[c, e, j]
                        for oh in range(OH):
                            src = q[od, oh * sh + e * dh]
                            dst = t[od, oh]
                            for w in range(Wp):
                                dst[w] += f * src[w]
                for l in range(RW):
                    out = z[b, c * R + (i * RH + j) * RW + l]
                    for od in range(OD):
                        for oh in range(OH):
                            src = t[od, oh]
                            dst = out[od, oh]
                            for ow in range(OW):
                                s = np.float32(0)
                                for e in range(KW):
                                    s += V[c, e, l] * src[ow * sw + e * dw]
                                dst[ow] = s


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
    z = np.empty((spec.n, plan.mix_spec.c, *out), np.float32)
    filter_bank(xf, *plan.bank.bases, z, np.array([*stride, *dilation, *spans], np.int64))
    return execute_pointwise(plan.mix_spec, z.reshape(spec.n, -1, *spec.out_size), plan.mix)
