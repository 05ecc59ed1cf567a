"""Direct 1x1 (pointwise, optionally grouped) convolution: a channel-mixing GEMM.

y[n, k, p] = sum_c w[k, c] x[n, c, p] over the flattened (stride-subsampled)
pixels p, per group, on `dense.conv_lanes`: pixels in the vector lanes, six
output channels at a time broadcast straight from the caller's weights,
unpacked (in call mode packing them would cost as much as the GEMM on a 7x7
image). At stride 1 the image is passed as one row of P pixels, so a panel
is one run of each channel. Small images (49 pixels, 2048 channels) split
over output channels, large ones over pixel panels (`dense.lane_split`).

`packed_pointwise` is the entry for a caller that already holds its input
channels-last, xp[n, g, p, c/g] (the separable channel bank writes its planes
so): the packed register blocks of `gemm.channel_block` read it as it is.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..blocks import PAR, PB, new_output
from ..spec import ConvSpec
from ..target import l2_share
from .dense import LaneWeights, PackedDense, as_3d, kchunks_for, lane_weights, run_lanes
from .gemm import channel_block, pack_blocked_weights, split_item

PIXEL_CHUNK_BYTES = l2_share(192 << 10)  # input pixels a packed_pointwise item keeps in L2


def prepare_pointwise(spec: ConvSpec, w: np.ndarray,
                      kmap: np.ndarray | None = None) -> LaneWeights:
    """Keep the 1x1 kernel w[k, c/g, 1, ...] as (k, c/g) rows: the GEMM reads them as they are."""
    return lane_weights(w, kmap, spec.k)


def execute_pointwise(spec: ConvSpec, x: np.ndarray, packed: LaneWeights) -> np.ndarray:
    nd = spec.ndim
    stride = (1,) * (3 - nd) + spec.stride
    P = math.prod(spec.out_size)
    y = new_output(spec.output_shape)
    if all(s == 1 for s in stride):  # one row of P pixels: every panel is one run
        x5, out_size = x.reshape(spec.n, spec.c, 1, 1, P), (1, 1, P)
    else:
        x5, out_size = as_3d(x, nd), (1,) * (3 - nd) + spec.out_size
    run_lanes(x5, packed.w, y.reshape(spec.n, spec.k, P), packed.kmap, spec.groups, out_size,
              (0, 0, 0), stride, (1, 1, 1), (1, 1, 1))
    return y


def run_pointwise(spec: ConvSpec, x: np.ndarray, w: np.ndarray,
                  kmap: np.ndarray | None = None) -> np.ndarray:
    return execute_pointwise(spec, x, prepare_pointwise(spec, w, kmap))


@njit(**PAR)
def conv_pointwise_packed(xp, wb, outer, y, kmap, pixels, kchunks):
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


def pack_pointwise(spec: ConvSpec, w: np.ndarray, kmap: np.ndarray | None = None
                   ) -> PackedDense:
    """Pack the 1x1 kernel w[k, c/g, 1, ...] for the register blocks of packed_pointwise."""
    wb, outer = pack_blocked_weights(w.reshape(w.shape[:2] + (1, 1, 1)), spec.groups, False)
    kmap = np.arange(spec.k) if kmap is None else kmap.astype(np.int64)
    return PackedDense(wb, outer, kmap)


def packed_pointwise(spec: ConvSpec, xp: np.ndarray, packed: PackedDense,
                     pixels: int | None = None) -> np.ndarray:
    """The 1x1 convolution `spec` of xp[n, g, P, c/g], already channels-last, in work
    items of `pixels` pixels (default: as many as keep PIXEL_CHUNK_BYTES of input)."""
    P, cg = xp.shape[2], xp.shape[3]
    y = new_output(spec.output_shape)
    if pixels is None:
        pixels = max(PB, min(P, PIXEL_CHUNK_BYTES // (4 * cg)) // PB * PB)
    items = spec.n * spec.groups * -(-P // pixels)
    conv_pointwise_packed(xp, packed.wb, packed.outer, y.reshape(spec.n, spec.k, P),
                          packed.kmap, pixels, kchunks_for(items, packed.wb.shape[1]))
    return y
