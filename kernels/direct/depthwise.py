"""Direct depthwise convolution: one 2-D filter per channel, two loop nests by plane size.

- Large planes (`conv_depthwise_planes`): each channel plane is independent,
  so a thread takes whole planes in NCHW. The plane is copied once into a
  zero-padded buffer split into stride phases (column j of phase q holds
  padded column j*s + q), so every tap reads a unit-stride run along an output
  row, at any stride, with no bounds tests; taps are summed nine at a time.
- Small planes (`conv_depthwise_channels_last`): rows of 7 or 14 pixels leave
  the vector units idle and the loop overhead dominant, so the input is packed
  channels-last and the inner loop runs over channels instead.

Indices are cast to uint64 where they are computed from offsets: Numba then
skips the negative-index wraparound select that would stop LLVM from
emitting plain vector loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange, uint64

from ..blocks import JIT, PAR, new_output, pack_channels_last
from ..spec import ConvSpec
from ..types import flip_spatial

# Below this many output pixels per plane the channels-last nest is faster.
SMALL_PLANE = 16 * 16


@njit(**JIT)
def _nine_taps(yf, y0, buf, base, offs, wv, first, n):
    """yf[y0:y0+n] (+)= sum of 9 taps wv[i] * buf[base + offs[i] + (0..n)].

    Nine taps per pass keep the partial sum in a register: one store per
    output instead of one load and store per tap.
    """
    w0, w1, w2, w3, w4 = wv[0], wv[1], wv[2], wv[3], wv[4]
    w5, w6, w7, w8 = wv[5], wv[6], wv[7], wv[8]
    b0, b1, b2 = uint64(base + offs[0]), uint64(base + offs[1]), uint64(base + offs[2])
    b3, b4, b5 = uint64(base + offs[3]), uint64(base + offs[4]), uint64(base + offs[5])
    b6, b7, b8 = uint64(base + offs[6]), uint64(base + offs[7]), uint64(base + offs[8])
    yu = uint64(y0)
    for t in range(n):
        u = uint64(t)
        v = (w0 * buf[b0 + u] + w1 * buf[b1 + u] + w2 * buf[b2 + u] + w3 * buf[b3 + u]
             + w4 * buf[b4 + u] + w5 * buf[b5 + u] + w6 * buf[b6 + u] + w7 * buf[b7 + u]
             + w8 * buf[b8 + u])
        if first:
            yf[yu + u] = v
        else:
            yf[yu + u] += v


@njit(**PAR)
def conv_depthwise_planes(x, w9, offs, y, stride, padding, Hp, Wq, items):
    """y[n, c] = x[n, c] (*) w[c] plane by plane (NCHW).

    w9[c, blocks, 9] are the taps in blocks of nine (zero-padded), offs[blocks, 9]
    their offsets in the stride-phase buffer (see prepare_depthwise).
    """
    sw = stride[1]
    nblk = w9.shape[1]
    planes = x.shape[0] * x.shape[1]
    per_item = (planes + items - 1) // items
    for item in prange(items):
        # one buffer per item, not per plane: 1024 small planes would pay 1024 allocations
        buf = np.zeros(sw * Hp * Wq, np.float32)
        row = np.zeros(sw * Wq + sw, np.float32)  # one zero-padded input row
        for plane in range(item * per_item, min(planes, (item + 1) * per_item)):
            _one_plane(x, w9, offs, y, plane, buf, row, stride, padding, Hp, Wq, nblk)


@njit(**JIT)
def _one_plane(x, w9, offs, y, plane, buf, row, stride, padding, Hp, Wq, nblk):
    """One channel plane; the padding borders of buf and row are zero and stay zero."""
    n, c, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    sh, sw = stride
    ph, pw = padding
    ch = plane % c
    b = plane // c
    xf = x[b, ch].ravel()
    yf = y[b, ch].ravel()
    for ih in range(H):
        if sw == 2:
            # pad the row, then split even and odd columns in one pass: both loads in
            # one iteration let LLVM vectorise the deinterleave with shuffles
            row[pw:pw + W] = xf[ih * W:(ih + 1) * W]
            d0 = uint64((ih + ph) * Wq)
            d1 = uint64((Hp + ih + ph) * Wq)
            for j in range(Wq):
                u = uint64(j)
                buf[d0 + u] = row[2 * u]
                buf[d1 + u] = row[2 * u + 1]
            continue
        for q in range(sw):
            # phase q, column j holds padded column j*sw + q = input column j*sw + q - pw
            j0 = max(0, (pw - q + sw - 1) // sw)
            j1 = (W - 1 + pw - q) // sw + 1
            dst = uint64((q * Hp + ih + ph) * Wq)
            src = ih * W + q - pw
            for j in range(j0, j1):
                buf[dst + uint64(j)] = xf[uint64(src + j * sw)]
    for oh in range(OH):
        for blk in range(nblk):
            _nine_taps(yf, oh * OW, buf, oh * sh * Wq, offs[blk], w9[ch, blk], blk == 0, OW)


def _plane_taps(spec: ConvSpec, w: np.ndarray):
    """Weights in blocks of nine taps and each tap's offset in the stride-phase buffer."""
    (KH, KW), sw, (ph, pw), (dh, dw) = spec.kernel, spec.stride[1], spec.padding, spec.dilation
    Hp = spec.size[0] + 2 * ph
    Wq = (spec.size[1] + 2 * pw + sw - 1) // sw + (KW * dw) // sw + 1  # columns per phase
    taps = [(kh, kw) for kh in range(KH) for kw in range(KW)]
    nblk = -(-len(taps) // 9)
    w9 = np.zeros((spec.c, nblk, 9), np.float32)
    offs = np.zeros((nblk, 9), np.int64)
    for i in range(nblk * 9):
        kh, kw = taps[min(i, len(taps) - 1)]  # padding taps reuse a valid offset, weight 0
        col = kw * dw
        offs[i // 9, i % 9] = ((col % sw) * Hp + kh * dh) * Wq + col // sw
        if i < len(taps):
            w9[:, i // 9, i % 9] = w[:, 0, kh, kw]
    return w9, offs, Hp, Wq


@njit(**PAR)
def conv_depthwise_channels_last(xp, wt, y, stride, dilation):
    """xp[n, Hp, Wp, c] padded input, wt[KH, KW, c] -> y[n, c, OH, OW]."""
    n, Hp, Wp, C = xp.shape
    KH, KW = wt.shape[0], wt.shape[1]
    OH, OW = y.shape[2], y.shape[3]
    sh, sw = stride
    dh, dw = dilation
    for item in prange(n * OH):
        oh = item % OH
        b = item // OH
        acc = np.empty((OW, C), np.float32)
        for ow in range(OW):
            a = acc[ow]
            for c in range(C):
                a[c] = 0
            for kh in range(KH):
                for kw in range(KW):
                    src = xp[b, oh * sh + kh * dh, ow * sw + kw * dw]
                    wv = wt[kh, kw]
                    for c in range(C):
                        a[c] += wv[c] * src[c]
        for c in range(C):
            yr = y[b, c, oh]
            for ow in range(OW):
                yr[ow] = acc[ow, c]


@dataclass(frozen=True)
class DepthwiseTaps:
    """The weight-only part of a depthwise call, oriented for the nest the spec picks."""
    planes: bool             # the NCHW plane nest (else the channels-last one)
    taps: np.ndarray         # planes: w9[c, blocks, 9]; channels-last: wt[KH, KW, c]
    offs: np.ndarray | None  # planes: each tap's offset in the stride-phase buffer
    Hp: int = 0
    Wq: int = 0


def _planes(spec: ConvSpec) -> bool:
    oh, ow = spec.out_size
    return oh * ow >= SMALL_PLANE


def prepare_depthwise(spec: ConvSpec, w: np.ndarray) -> DepthwiseTaps:
    """Orient w[c, 1, KH, KW] (flip) and lay it out for the nest that runs `spec`."""
    if spec.flip:
        w = np.ascontiguousarray(flip_spatial(w, 2))
    if _planes(spec):
        w9, offs, Hp, Wq = _plane_taps(spec, w)
        return DepthwiseTaps(True, w9, offs, Hp, Wq)
    return DepthwiseTaps(False, np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)), None)


def execute_depthwise(spec: ConvSpec, x: np.ndarray, taps: DepthwiseTaps) -> np.ndarray:
    y = new_output(spec.output_shape)
    if taps.planes:
        items = min(spec.n * spec.c, 8 * numba.get_num_threads())
        conv_depthwise_planes(x, taps.taps, taps.offs, y, spec.stride, spec.padding, taps.Hp,
                              taps.Wq, items)
    else:
        pad = (0,) + spec.padding
        xp = pack_channels_last(x[:, :, None], 1, pad, pad, (1, 1, 1))[:, 0, 0]
        conv_depthwise_channels_last(xp, taps.taps, y, spec.stride, spec.dilation)
    return y
