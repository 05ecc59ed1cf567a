"""Direct 1x1 (pointwise, optionally grouped) convolution: a channel-mixing product.

No window: the input is packed channels-last per group (subsampled by the
stride), so every output pixel's channel vector is one contiguous run and the
layer is a GEMM over flattened pixels (so small images still fill whole
register blocks). The register blocks are those of the dense kernel: the
outer-product block (6 pixels x 16/32 channels) for groups of 12+ output
channels, the 4x6 dot-product block otherwise.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..blocks import JIT, KB, PAR, PB, add_block, dot_4x6, new_output, pack_channels_last
from ..outer_block import LANES, outer_block_1, outer_block_2
from ..spec import ConvSpec
from .dense import as_3d, kchunks_for, outer_width, pack_outer_weights

PIXELS_PER_ITEM = 48  # pixels per parallel work item of the dot-product path
PIXEL_CHUNK_BYTES = 192 * 1024  # input pixels one outer-product item keeps in L2


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


@njit(**PAR)
def conv_pointwise_outer(xp, wq, y, kmap, pixels, kchunks):
    """As conv_pointwise with wq[g, blocks, cg, width] (channel-innermost blocks);
    a work item is `pixels` pixels x one chunk of channel blocks."""
    n, groups, P, cg = xp.shape
    kg = y.shape[1] // groups
    nkb, width = wq.shape[1], wq.shape[3]
    per_chunk = (nkb + kchunks - 1) // kchunks
    npb = (P + pixels - 1) // pixels
    for item in prange(n * groups * npb * kchunks):
        ch = item % kchunks
        pb = (item // kchunks) % npb
        g = (item // (kchunks * npb)) % groups
        b = item // (kchunks * npb * groups)
        xf = xp[b, g].ravel()
        yf = y[b]
        out = np.empty(PB * width, np.float32)
        p_end = min(P, (pb + 1) * pixels)
        for kb in range(ch * per_chunk, min(nkb, (ch + 1) * per_chunk)):
            wf = wq[g, kb].ravel()
            k0 = kb * width
            for p0 in range(pb * pixels, p_end, PB):
                a0 = min(p0, P - 1) * cg
                a1 = min(p0 + 1, P - 1) * cg
                a2 = min(p0 + 2, P - 1) * cg
                a3 = min(p0 + 3, P - 1) * cg
                a4 = min(p0 + 4, P - 1) * cg
                a5 = min(p0 + 5, P - 1) * cg
                if width == 2 * LANES:
                    outer_block_2(wf, 0, xf, a0, a1, a2, a3, a4, a5, cg, out, 0)
                else:
                    outer_block_1(wf, 0, xf, a0, a1, a2, a3, a4, a5, cg, out, 0)
                for j in range(PB):
                    if p0 + j < p_end:
                        for q in range(width):
                            if k0 + q < kg:
                                yf[kmap[g * kg + k0 + q], p0 + j] = out[j * width + q]


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
    y = new_output(spec.output_shape)
    kmap = np.arange(spec.k) if kmap is None else kmap.astype(np.int64)
    cg = spec.c // spec.groups
    width = outer_width(spec.k // spec.groups)
    if width:
        wq = pack_outer_weights(w.reshape(w.shape[:2] + (1, 1, 1)), spec.groups, False, width)
        pixels = max(PB, min(P, PIXEL_CHUNK_BYTES // (4 * cg)) // PB * PB)
        items = spec.n * spec.groups * -(-P // pixels)
        conv_pointwise_outer(xp, wq, y.reshape(spec.n, spec.k, P), kmap, pixels,
                             kchunks_for(items, wq.shape[1]))
    else:
        wp = pack_pointwise_weights(w, spec.groups)
        items = spec.n * spec.groups * -(-P // PIXELS_PER_ITEM)
        conv_pointwise(xp, wp, y.reshape(spec.n, spec.k, P), kmap,
                       kchunks_for(items, wp.shape[1] // KB))
    return y
