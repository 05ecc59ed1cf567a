"""Direct depthwise convolution: one 2-D filter per channel, two loop nests by plane size.

- Large planes (`conv_depthwise_planes`): each channel plane is independent,
  so a thread takes whole planes in NCHW. The plane is copied once into a
  zero-padded buffer split into stride phases (column j of phase q holds
  padded column j*s + q), so every tap is a unit-stride axpy along an output
  row, at any stride, with no bounds tests in the inner loop.
- Small planes (`conv_depthwise_channels_last`): rows of 7 or 14 pixels leave
  the vector units idle and the loop overhead dominant, so the input is packed
  channels-last and the inner loop runs over channels instead.

Indices are cast to uint64 where they are computed from offsets: Numba then
skips the negative-index wraparound select that would stop LLVM from
emitting plain vector loads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, uint64

from ..blocks import PAR, new_output, pack_channels_last
from ..spec import ConvSpec
from ..types import flip_spatial

# Below this many output pixels per plane the channels-last nest is faster.
SMALL_PLANE = 32 * 32


@njit(**PAR)
def conv_depthwise_planes(x, w, y, stride, padding, dilation):
    """y[n, c] = x[n, c] (*) w[c, 0] plane by plane (NCHW)."""
    n, c, H, W = x.shape
    KH, KW = w.shape[2], w.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    Hp = H + 2 * ph
    Wq = (W + 2 * pw + sw - 1) // sw + (KW * dw) // sw + 1  # columns per stride phase
    for item in prange(n * c):
        ch = item % c
        b = item // c
        xf = x[b, ch].ravel()
        yf = y[b, ch].ravel()
        wk = w[ch, 0].ravel()
        buf = np.zeros(sw * Hp * Wq, np.float32)
        for ih in range(H):
            for q in range(sw):
                # padded column j*sw + q is input column j*sw + q - pw
                j0 = max(0, (pw - q + sw - 1) // sw)
                j1 = (W - 1 + pw - q) // sw + 1
                dst = uint64((q * Hp + ih + ph) * Wq)
                src = ih * W + q - pw
                for j in range(j0, j1):
                    buf[dst + uint64(j)] = xf[uint64(src + j * sw)]
        for oh in range(OH):
            yrow = uint64(oh * OW)
            for ow in range(OW):
                yf[yrow + uint64(ow)] = 0
            for kh in range(KH):
                r = oh * sh + kh * dh
                for kw in range(KW):
                    col = kw * dw
                    src = uint64(((col % sw) * Hp + r) * Wq + col // sw)
                    wv = wk[kh * KW + kw]
                    for ow in range(OW):
                        yf[yrow + uint64(ow)] += wv * buf[src + uint64(ow)]


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


def run_depthwise(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    if spec.flip:
        w = np.ascontiguousarray(flip_spatial(w, 2))
    y = new_output(spec.output_shape)
    oh, ow = spec.out_size
    if oh * ow >= SMALL_PLANE:
        conv_depthwise_planes(x, w, y, spec.stride, spec.padding, spec.dilation)
    else:
        pad = (0,) + spec.padding
        xp = pack_channels_last(x[:, :, None], 1, pad, pad, (1, 1, 1))[:, 0, 0]
        wt = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))
        conv_depthwise_channels_last(xp, wt, y, spec.stride, spec.dilation)
    return y
