"""Direct 1x1 (pointwise, optionally grouped) convolution: a channel-mixing product.

No window: the input is packed channels-last per group (subsampled by the
stride), so every output pixel is a dot product of its channel vector with
each filter row. Pixels are flattened across rows, so small images still
fill whole 4x6 register blocks.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..blocks import JIT, KB, PAR, PB, add_block, dot_4x6, new_output, pack_channels_last
from ..spec import ConvSpec
from .dense import as_3d, kchunks_for

PIXELS_PER_ITEM = 48  # pixels per parallel work item (a multiple of PB)


@njit(**JIT)
def _pixel_block(xf, wf, yf, kmap, k0, kg, p0, P, cg, acc):
    acc[:] = 0
    t = dot_4x6(xf, min(p0, P - 1) * cg, min(p0 + 1, P - 1) * cg, min(p0 + 2, P - 1) * cg,
                min(p0 + 3, P - 1) * cg, min(p0 + 4, P - 1) * cg, min(p0 + 5, P - 1) * cg,
                wf, k0 * cg, (k0 + 1) * cg, (k0 + 2) * cg, (k0 + 3) * cg, cg)
    add_block(acc, t)
    for p in range(PB):
        if p0 + p < P:
            for q in range(KB):
                if k0 + q < kg:
                    yf[kmap[k0 + q], p0 + p] = acc[p * KB + q]


@njit(**PAR)
def conv_pointwise(xp, wp, y, kmap, kchunks):
    """y[n, kmap[k], p] = sum_c wp[g, k, c] * xp[n, g, p, c] (p the flattened pixels)."""
    n, groups, P, cg = xp.shape
    kg = y.shape[1] // groups
    nkb = wp.shape[1] // KB
    per_chunk = (nkb + kchunks - 1) // kchunks
    npb = (P + PIXELS_PER_ITEM - 1) // PIXELS_PER_ITEM
    for item in prange(n * groups * npb * kchunks):
        ch = item % kchunks
        pb = (item // kchunks) % npb
        g = (item // (kchunks * npb)) % groups
        b = item // (kchunks * npb * groups)
        xf = xp[b, g].ravel()
        wf = wp[g].ravel()
        km = kmap[g * kg:(g + 1) * kg]
        acc = np.empty(KB * PB, np.float32)
        yf = y[b]
        for kb in range(ch * per_chunk, min(nkb, (ch + 1) * per_chunk)):
            for p0 in range(pb * PIXELS_PER_ITEM, min(P, (pb + 1) * PIXELS_PER_ITEM), PB):
                _pixel_block(xf, wf, yf, km, kb * KB, kg, p0, P, cg, acc)


def pack_pointwise_weights(w: np.ndarray, groups: int) -> np.ndarray:
    """w[k, c/g, 1...] -> wp[g, kgpad, c/g] with kgpad rounded up to 4 (zero rows)."""
    k, cg = w.shape[:2]
    kg = k // groups
    kgpad = -(-kg // KB) * KB
    wp = np.zeros((groups, kgpad, cg), np.float32)
    wp[:, :kg] = w.reshape(groups, kg, cg)
    return wp


def run_pointwise(spec: ConvSpec, x: np.ndarray, w: np.ndarray,
                  kmap: np.ndarray | None = None) -> np.ndarray:
    nd = spec.ndim
    stride = (1,) * (3 - nd) + spec.stride
    xp = pack_channels_last(as_3d(x, nd), spec.groups, (0, 0, 0), (0, 0, 0), stride)
    P = math.prod(spec.out_size)
    xp = xp.reshape(spec.n, spec.groups, P, spec.c // spec.groups)
    wp = pack_pointwise_weights(w, spec.groups)
    y = new_output(spec.output_shape)
    if kmap is None:
        kmap = np.arange(spec.k)
    items = spec.n * spec.groups * -(-P // PIXELS_PER_ITEM)
    conv_pointwise(xp, wp, y.reshape(spec.n, spec.k, P), kmap.astype(np.int64),
                   kchunks_for(items, wp.shape[1] // KB))
    return y
