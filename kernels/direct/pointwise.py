"""Direct 1x1 (pointwise, optionally grouped) convolution: a channel-mixing product.

No window: the input is packed channels-last per group (subsampled by the
stride), so every output pixel's channel vector is one contiguous run and the
layer is a GEMM over flattened pixels (small images still fill whole
register blocks), computed by the same register blocks as the dense kernel
(`gemm.channel_block`) straight from the packed input, with no row buffer.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..blocks import PAR, PB, new_output, pack_channels_last
from ..spec import ConvSpec
from .dense import PackedDense, as_3d, kchunks_for
from .gemm import channel_block, pack_blocked_weights, split_item

PIXEL_CHUNK_BYTES = 192 * 1024  # input pixels one work item keeps in L2


@njit(**PAR)
def conv_pointwise(xp, wb, outer, y, kmap, pixels, kchunks):
    """y[n, kmap[k], p] = sum_c w[g, k, c] * xp[n, g, p, c] (p the flattened pixels);
    a work item is `pixels` pixels x one chunk of channel blocks."""
    n, groups, P, cg = xp.shape
    kg = y.shape[1] // groups
    nblk = wb.shape[1]
    width = wb.shape[3] if outer else wb.shape[2]
    per_chunk = (nblk + kchunks - 1) // kchunks
    npb = (P + pixels - 1) // pixels
    for item in prange(n * groups * npb * kchunks):
        b, g, _, pb, ch = split_item(item, kchunks, npb, 1, groups)
        p0 = pb * pixels
        npix = min(pixels, P - p0)
        offs = np.empty(npix, np.int64)
        for p in range(npix):
            offs[p] = (p0 + p) * cg
        buf = xp[b, g].ravel()
        km = kmap[g * kg:(g + 1) * kg]
        accs = np.empty((npix + PB) * width, np.float32)
        for blk in range(ch * per_chunk, min(nblk, (ch + 1) * per_chunk)):
            channel_block(buf, offs, npix, 1, cg, 0, wb[g, blk].ravel(), width, outer, y[b],
                          km, blk * width, kg, p0, accs)


def prepare_pointwise(spec: ConvSpec, w: np.ndarray,
                      kmap: np.ndarray | None = None) -> PackedDense:
    """Pack the 1x1 kernel w[k, c/g, 1, ...] for the register blocks."""
    wb, outer = pack_blocked_weights(w.reshape(w.shape[:2] + (1, 1, 1)), spec.groups, False)
    kmap = np.arange(spec.k) if kmap is None else kmap.astype(np.int64)
    return PackedDense(wb, outer, kmap)


def execute_pointwise(spec: ConvSpec, x: np.ndarray, packed: PackedDense) -> np.ndarray:
    nd = spec.ndim
    stride = (1,) * (3 - nd) + spec.stride
    cg = spec.c // spec.groups
    P = math.prod(spec.out_size)
    xp = pack_channels_last(as_3d(x, nd), spec.groups, (0, 0, 0), (0, 0, 0), stride)
    xp = xp.reshape(spec.n, spec.groups, P, cg)
    y = new_output(spec.output_shape)
    pixels = max(PB, min(P, PIXEL_CHUNK_BYTES // (4 * cg)) // PB * PB)
    items = spec.n * spec.groups * -(-P // pixels)
    wb = packed.wb
    conv_pointwise(xp, wb, packed.outer, y.reshape(spec.n, spec.k, P), packed.kmap, pixels,
                   kchunks_for(items, wb.shape[1]))
    return y


def run_pointwise(spec: ConvSpec, x: np.ndarray, w: np.ndarray,
                  kmap: np.ndarray | None = None) -> np.ndarray:
    return execute_pointwise(spec, x, prepare_pointwise(spec, w, kmap))
