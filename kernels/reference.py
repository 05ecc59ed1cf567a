"""The float64 NumPy oracle: pad, take a strided dilated window view, einsum (transposed:
scatter each tap's products, by the definition).

Short on purpose (after JAX's lax_reference): every kernel in the suite is
checked against this, so it must be obviously right rather than fast.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .layout import NCHW, to_nhwc
from .registry import check_memory
from .spec import ConvSpec
from .types import check_inputs, flip_spatial, full_kernel, shuffle_permutation
from .types import conv_type as conv_type_of


def _pad(x: np.ndarray, lo, hi) -> np.ndarray:
    """Pad (or, for negative amounts, crop) the spatial axes of x."""
    x = np.pad(x, [(0, 0), (0, 0)] + [(max(a, 0), max(b, 0)) for a, b in zip(lo, hi)])
    crop = tuple(slice(max(-a, 0), x.shape[2 + i] - max(-b, 0))
                 for i, (a, b) in enumerate(zip(lo, hi)))
    return x[(slice(None), slice(None)) + crop]


def conv_nd(x, w, stride, padding, dilation, groups, pad_hi=None) -> np.ndarray:
    """Grouped N-d cross-correlation: x[n, c, *s], w[k, c/g, *r] -> y[n, k, *o], float64."""
    nd = x.ndim - 2
    x = _pad(np.asarray(x, np.float64), padding, pad_hi if pad_hi is not None else padding)
    w = np.asarray(w, np.float64)
    span = [d * (r - 1) + 1 for r, d in zip(w.shape[2:], dilation)]
    win = sliding_window_view(x, span, axis=tuple(range(2, 2 + nd)))
    win = win[(slice(None), slice(None))
              + tuple(slice(None, None, s) for s in stride)
              + tuple(slice(None, None, d) for d in dilation)]
    n, c = x.shape[:2]
    k = w.shape[0]
    win = win.reshape(n, groups, c // groups, *win.shape[2:])
    w = w.reshape(groups, k // groups, c // groups, *w.shape[2:])
    sp = "xyz"[:nd]
    taps = "uvt"[:nd]
    y = np.einsum(f"ngc{sp}{taps},gkc{taps}->ngk{sp}", win, w, optimize=True)
    return y.reshape(n, k, *y.shape[3:])


def conv_transpose_nd(x, w, stride, padding, dilation, groups, output_padding) -> np.ndarray:
    """Transposed conv by its definition: every input pixel i adds x[i] * w[tap] to output
    i*stride + tap*dilation - padding. Nothing is multiplied by an inserted zero (as the
    correlation of a zero-upsampled input would), so a non-finite weight reaches only the
    outputs it really touches, as in PyTorch. x[n, c, *s], w[c, k/g, *r] -> y[n, k, *o]."""
    n, c = x.shape[:2]
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    size, r = x.shape[2:], w.shape[2:]
    kg = w.shape[1]
    # every position a tap reaches, and output_padding's extra rows at the high end
    full = [s * (i - 1) + d * (t - 1) + 1 + op
            for i, s, d, t, op in zip(size, stride, dilation, r, output_padding)]
    y = np.zeros((n, groups, kg, *full))
    xg = x.reshape(n, groups, c // groups, *size)
    wg = w.reshape(groups, c // groups, kg, *r)
    for tap in np.ndindex(*r):
        reach = tuple(slice(t * d, t * d + s * (i - 1) + 1, s)
                      for t, d, s, i in zip(tap, dilation, stride, size))
        y[(slice(None),) * 3 + reach] += np.einsum(
            "ngc...,gck->ngk...", xg, wg[(slice(None),) * 3 + tap])
    out = [f - 2 * p for f, p in zip(full, padding)]
    y = y[(slice(None),) * 3 + tuple(slice(p, p + o) for p, o in zip(padding, out))]
    return y.reshape(n, groups * kg, *out)


def reference(conv_type: str, spec: ConvSpec, x, weights, layout: str = NCHW) -> np.ndarray:
    """The exact (float64) output of `conv_type` on `spec`, x and y in `layout`
    (kernels.layout): channels-last, the NCHW result transposed.

    Refused (ValueError) before anything is allocated when its memory estimate
    exceeds the limit (see kernels.memory)."""
    x, weights = check_inputs(conv_type, spec, x, weights, layout)
    check_memory(conv_type, "reference", spec, layout)
    if layout != NCHW:
        return to_nhwc(_reference(conv_type, spec, np.moveaxis(x, -1, 1), weights))
    return _reference(conv_type, spec, x, weights)


def _reference(conv_type: str, spec: ConvSpec, x: np.ndarray, weights: tuple) -> np.ndarray:
    nd = spec.ndim
    conv = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation)
    orient = (lambda w: flip_spatial(w, nd)) if spec.flip else (lambda w: w)
    t = conv_type_of(conv_type)
    if t.transposed:
        return conv_transpose_nd(x, orient(weights[0]), groups=spec.groups,
                                 output_padding=spec.output_padding, **conv)
    if t.composition == "stages":  # depthwise then pointwise
        dw, pw = weights
        mid = conv_nd(x, orient(dw), groups=spec.c, **conv)
        return conv_nd(mid, pw, (1,) * nd, (0,) * nd, (1,) * nd, 1)
    # factored kernels are multiplied out in float64 too, like everything in the oracle
    w64 = tuple(np.asarray(w, np.float64) for w in weights)
    y = conv_nd(x, orient(full_kernel(conv_type, spec, w64)), groups=spec.groups, **conv)
    if t.shuffle:
        shuffled = np.empty_like(y)
        shuffled[:, shuffle_permutation(spec.k, spec.groups)] = y
        y = shuffled
    return y
