"""Direct depthwise convolution: one 2-D filter per channel, vectorised along output rows.

Each channel plane is independent, so the loop nest works on NCHW in place
(no packing): for an output row, every tap adds a scaled, shifted input row
to an accumulator row; the innermost loop runs along the row (unit stride at
stride 1). Taps that fall into padding are skipped by clipping the row range
instead of materialising a padded input.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, new_output
from ..spec import ConvSpec
from ..types import flip_spatial


@njit(**JIT)
def _axpy_row(acc, src, start, step, lo, hi, wv):
    """acc[lo:hi] += wv * src[start + (lo..hi)*step]."""
    n = hi - lo
    if n <= 0:
        return
    a = acc[lo:hi]
    s = src[start + lo * step:start + (hi - 1) * step + 1:step]
    for t in range(n):
        a[t] += wv * s[t]


@njit(**PAR)
def conv_depthwise(x, w, y, stride, padding, dilation):
    """y[n, c] = x[n, c] (*) w[c, 0] for every channel (2-D, NCHW)."""
    n, c, H, W = x.shape
    KH, KW = w.shape[2], w.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    for item in prange(n * c * OH):
        oh = item % OH
        ch = (item // OH) % c
        b = item // (OH * c)
        acc = np.zeros(OW, np.float32)
        for kh in range(KH):
            ih = oh * sh + kh * dh - ph
            if ih < 0 or ih >= H:
                continue
            row = x[b, ch, ih]
            for kw in range(KW):
                off = kw * dw - pw
                # valid ow: 0 <= ow*sw + off < W
                lo = max(0, (-off + sw - 1) // sw)
                hi = min(OW, (W - 1 - off) // sw + 1)
                _axpy_row(acc, row, off, sw, lo, hi, w[ch, 0, kh, kw])
        y[b, ch, oh] = acc


def run_depthwise(spec: ConvSpec, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    if spec.flip:
        w = np.ascontiguousarray(flip_spatial(w, 2))
    y = new_output(spec.output_shape)
    conv_depthwise(x, w, y, spec.stride, spec.padding, spec.dilation)
    return y
