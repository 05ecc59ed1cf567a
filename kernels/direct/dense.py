"""Direct grouped convolution in 1, 2 or 3 dimensions: the sliding window, register-blocked.

Layout: the input is packed channels-last and zero-padded per group,
xp[n, g, D, H, W, c/g]. For one output row the rows the kernel touches are
interleaved into a buffer B[w][kd*kh][c/g], so the window of an output pixel,
(kw, kd*kh, c/g), is one contiguous run of B (for dense kw), and the
register-blocked GEMM of `gemm.channel_block` walks those runs.

2-D problems run as 3-D with depth 1; 1-D as 2-D with height 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, PB, new_output, pack_channels_last
from ..spec import ConvSpec
from .gemm import channel_block, pack_blocked_weights, split_item


@njit(**JIT)
def _fill_rows(B, xg, od, oh0, nrows, sd, sh, dd, dh, KD, KH):
    """B[r, w, kd*KH + kh, :] = xg[od*sd + kd*dd, (oh0 + r)*sh + kh*dh, w, :] for r < nrows."""
    Wp = xg.shape[2]
    cg = xg.shape[3]
    L = KD * KH * cg
    for r in range(nrows):
        for kd in range(KD):
            for kh in range(KH):
                row = xg[od * sd + kd * dd, (oh0 + r) * sh + kh * dh]
                base = r * Wp * L + (kd * KH + kh) * cg
                for w in range(Wp):
                    dst = B[base + w * L:base + w * L + cg]
                    src = row[w]
                    for c in range(cg):
                        dst[c] = src[c]


@njit(**PAR)
def conv_dense(xp, wb, outer, y, kmap, stride, dilation, kernel, rows, kchunks):
    """y[n, kmap[k], od, oh, ow] = sum over the group's window of xp * w.

    xp[n, g, Dp, Hp, Wp, cg] padded input; wb the weights from
    `gemm.pack_blocked_weights`; kmap the output channel of each grouped
    channel (identity, or ShuffleNet's shuffle). A work item is `rows` output
    rows x one chunk of output channel blocks.
    """
    n, groups = xp.shape[0], xp.shape[1]
    cg = xp.shape[5]
    K, OD, OH, OW = y.shape[1], y.shape[2], y.shape[3], y.shape[4]
    KD, KH, KW = kernel
    kg = K // groups
    nblk = wb.shape[1]
    width = wb.shape[3] if outer else wb.shape[2]
    per_chunk = (nblk + kchunks - 1) // kchunks
    L = KD * KH * cg
    Wp = xp.shape[4]
    nrg = (OH + rows - 1) // rows
    fused = dilation[2] == 1  # dense columns: the whole window is one run of B
    nrun = 1 if fused else KW
    runlen = KW * L if fused else L
    for item in prange(n * groups * OD * nrg * kchunks):
        b, g, od, rg, ch = split_item(item, kchunks, nrg, OD, groups)
        oh0 = rg * rows
        nrows = min(rows, OH - oh0)
        npix = nrows * OW
        B = np.empty(nrows * Wp * L, np.float32)
        _fill_rows(B, xp[b, g], od, oh0, nrows, stride[0], stride[1], dilation[0], dilation[1],
                   KD, KH)
        offs = np.empty(npix, np.int64)
        for p in range(npix):
            offs[p] = ((p // OW) * Wp + (p % OW) * stride[2]) * L
        yb = y[b].reshape((K, OD * OH * OW))
        km = kmap[g * kg:(g + 1) * kg]
        accs = np.empty((npix + PB) * width, np.float32)
        for blk in range(ch * per_chunk, min(nblk, (ch + 1) * per_chunk)):
            channel_block(B, offs, npix, nrun, runlen, dilation[2] * L, wb[g, blk].ravel(),
                          width, outer, yb, km, blk * width, kg, (od * OH + oh0) * OW, accs)


def as_3d(a: np.ndarray, ndim: int) -> np.ndarray:
    """View a (n, c, *spatial) array with exactly 3 spatial axes (leading ones of size 1)."""
    return a.reshape(a.shape[:2] + (1,) * (3 - ndim) + a.shape[2:])


def _pad3(t: tuple, ndim: int, fill: int) -> tuple:
    return (fill,) * (3 - ndim) + tuple(t)


def rows_per_item(out_h: int, row_bytes: int) -> int:
    """Output rows per work item: as many as keep the row buffer in L2.

    Each item streams all the weights of its channel chunk once, so few, tall
    items matter when the weights outgrow the caches (512x512x3x3 is 9.4 MB);
    several rows also fill 6-pixel blocks on small images (7 pixels make 2
    blocks, 49 make 9)."""
    return max(1, min(out_h, ROW_BUFFER_BYTES // max(row_bytes, 1)))


ROW_BUFFER_BYTES = 512 * 1024  # the rows of one work item stay in L2


def kchunks_for(items: int, nkb: int) -> int:
    """Split output channels when there are too few rows to keep every thread busy."""
    want = 4 * numba.get_num_threads()
    return max(1, min(nkb, math.ceil(want / max(items, 1))))


@dataclass(frozen=True)
class PackedDense:
    """The weight-only part of a dense call: weights in the register blocks' layout."""
    wb: np.ndarray      # from gemm.pack_blocked_weights
    outer: bool         # which register block wb is laid out for
    kmap: np.ndarray    # output channel of each grouped channel (int64)


def prepare_dense(spec: ConvSpec, w: np.ndarray,
                  kmap: np.ndarray | None = None) -> PackedDense:
    """Pack the dense kernel w[k, c/g, *kernel] (flipped if the spec says so)."""
    wb, outer = pack_blocked_weights(as_3d(np.ascontiguousarray(w), spec.ndim), spec.groups,
                                     spec.flip)
    kmap = np.arange(spec.k) if kmap is None else kmap.astype(np.int64)
    return PackedDense(wb, outer, kmap)


def execute_dense(spec: ConvSpec, x: np.ndarray, packed: PackedDense) -> np.ndarray:
    """Direct grouped convolution of x with prepared weights."""
    nd = spec.ndim
    x5 = as_3d(x, nd)
    pad = _pad3(spec.padding, nd, 0)
    xp = pack_channels_last(x5, spec.groups, pad, pad, (1, 1, 1))
    y = new_output(spec.output_shape)
    y5 = as_3d(y, nd)
    OD, OH, OW = y5.shape[2:]
    window = math.prod(spec.kernel) * (spec.c // spec.groups)
    rows = rows_per_item(OH, xp.shape[4] * window * 4)
    items = spec.n * spec.groups * OD * -(-OH // rows)
    geometry = (_pad3(spec.stride, nd, 1), _pad3(spec.dilation, nd, 1),
                _pad3(spec.kernel, nd, 1), rows)
    wb = packed.wb
    conv_dense(xp, wb, packed.outer, y5, packed.kmap, *geometry,
               kchunks_for(items, wb.shape[1]))
    return y
