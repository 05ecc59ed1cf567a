"""Direct dilated 2-D convolution: space-to-batch along the width, padded taps skipped.

Space-to-batch (as TensorFlow runs atrous convolution): with dilation d along
the width, the padded input columns w = b + d*v split into d phase images
(b = w mod d), each an ordinary undilated image. The input is packed once,
channels-last, with its columns in phase-major order (xq[.., h, b*V + v, c]),
so the taps of one kernel row, w = ow*s + kw*d for kw = 0..KW-1, are
consecutive columns of one phase: a pixel's window is KH contiguous runs of
KW*c/g values, run kh starting dilation-rows further on. The register blocks
of `gemm` walk those runs straight from the packed input (no row buffer); a
pixel's phase only changes where its window starts, so the 6-pixel blocks run
across phases and rows alike (ENet's 4x4-pixel phases fill whole blocks).

Padded taps: kernel rows/columns that no output reads a real input through
are cropped from the kernel in prepare (exact: they only ever multiply zeros);
output rows whose outer kernel rows fall into the padding (ASPP's rate 18 on
a 33x33 map reads real input through two of three kernel rows at most) run
with only their live kernel rows, so work items are bands of rows that share
one live-row range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, PB, new_output
from ..spec import ConvSpec
from ..types import flip_spatial
from .dense import kchunks_for
from .gemm import _outer_pixels, channel_block, pack_blocked_weights, split_item

CHANNEL_BLOCK = 16  # channels per transposing pass of pack_phases (one cache line written)
PIXELS_PER_ITEM = 192  # output pixels per work item: 32 register blocks share each weight pass


def live_taps(out: int, size: int, stride: int, pad: int, dilation: int, kernel: int,
              o: int) -> tuple[int, int]:
    """(first, end) of the kernel taps t through which output index o reads a real input
    (0 <= o*stride + t*dilation - pad < size); first == end when there is none."""
    first = max(0, -((o * stride - pad) // dilation))
    end = min(kernel, (size - 1 + pad - o * stride) // dilation + 1)
    return first, max(first, end)


def live_span(out: int, size: int, stride: int, pad: int, dilation: int,
              kernel: int) -> tuple[int, int]:
    """(first, end) spanning every tap some output reads a real input through (both
    ends of live_taps fall as o grows, so the last and the first output bound them)."""
    first = live_taps(out, size, stride, pad, dilation, kernel, out - 1)[0]
    end = live_taps(out, size, stride, pad, dilation, kernel, 0)[1]
    return (first, end) if first < end else (0, 0)


def row_bands(spec: ConvSpec, rows: tuple[int, int], crop: bool) -> np.ndarray:
    """bands[i] = (first output row, rows, first live kernel row, live kernel rows):
    maximal runs of output rows that read real input through the same kernel rows
    (within the kept `rows`; every row runs all kept rows unless `crop`)."""
    args = (spec.out_size[0], spec.size[0], spec.stride[0], spec.padding[0], spec.dilation[0],
            spec.kernel[0])
    bands: list[list[int]] = []
    for o in range(spec.out_size[0]):
        first, end = live_taps(*args, o) if crop else rows
        first, end = max(first, rows[0]), min(end, rows[1])
        live = (first, end - first) if end > first else (rows[0], 0)
        if bands and (bands[-1][2], bands[-1][3]) == live:
            bands[-1][1] += 1
        else:
            bands.append([o, 1, *live])
    return np.array(bands, np.int64).reshape(-1, 4)


@dataclass(frozen=True)
class PackedDilated:
    """The weight-only part of a dilated call: the kept taps packed in (kh, kw, c) order."""
    wb: np.ndarray      # gemm.pack_blocked_weights of the cropped kernel
    outer: bool         # which register block wb is laid out for
    kmap: np.ndarray    # output channel of each grouped channel (int64)
    first_row: int      # first kept kernel row
    first_col: int      # first kept kernel column
    kept: tuple[int, int]  # kept kernel rows and columns
    bands: np.ndarray   # row_bands: output row bands and the kernel rows they run


def prepare_dilated(spec: ConvSpec, w: np.ndarray) -> PackedDilated:
    """Crop w[k, c/g, kh, kw] (flipped if the spec says so) to its live taps and pack it."""
    if spec.flip:
        w = flip_spatial(w, 2)
    rows, cols = (live_span(*a) for a in zip(spec.out_size, spec.size, spec.stride,
                                               spec.padding, spec.dilation, spec.kernel))
    if rows[0] == rows[1] or cols[0] == cols[1]:  # no output reads any input: all zeros
        rows, cols = (0, 1), (0, 1)
    kept = w[:, :, rows[0]:rows[1], cols[0]:cols[1]]
    # pack_blocked_weights orders a window (KW, KD, KH, c): pass (kw, kh) as (KH, KW)
    wb, outer = pack_blocked_weights(np.ascontiguousarray(kept.transpose(0, 1, 3, 2)[:, :, None]),
                                     spec.groups, False)
    # the dot block strides its weight rows by the whole window: it runs every kept row
    bands = row_bands(spec, rows, crop=outer)
    return PackedDilated(wb, outer, np.arange(spec.k), rows[0], cols[0],
                         (rows[1] - rows[0], cols[1] - cols[0]), bands)


@njit(**PAR)
def pack_phases(x, groups, pad_h, pad_w, dw, V, Hp, out):
    """out[n, g, h, b*V + v, c] = x[n, g*cg + c, h - pad_h, b + dw*v - pad_w] (zero outside x):
    the channels-last padded input, its columns in phase-major order.

    Transposed in blocks of CHANNEL_BLOCK channels: each column's block is one
    contiguous write, read from as many sequential channel rows."""
    n, C, H, W = x.shape
    cg = C // groups
    Wq = out.shape[3]
    for item in prange(n * groups * Hp):
        b = item // (groups * Hp)
        g = (item // Hp) % groups
        h = item % Hp
        dst = out[b, g, h]
        i = h - pad_h
        if i < 0 or i >= H:
            dst[:] = 0
            continue
        for q in range(Wq):
            col = q // V + dw * (q % V) - pad_w
            if col < 0 or col >= W:
                dst[q, :] = 0
        src = x[b, g * cg:(g + 1) * cg, i]
        for c0 in range(0, cg, CHANNEL_BLOCK):
            c1 = min(cg, c0 + CHANNEL_BLOCK)
            for col in range(W):
                w = col + pad_w
                d = dst[(w % dw) * V + w // dw]
                for c in range(c0, c1):
                    d[c] = src[c, col]


@njit(**JIT)
def _store_outer(yb, kmap, k0, kg, ybase, npix, accs, width, live):
    """yb[kmap[k0+q], ybase+p] = accs[p*width + q] (zero when no kernel row is live)."""
    for q in range(min(width, kg - k0)):
        dst = yb[kmap[k0 + q], ybase:ybase + npix]
        if live:
            col = accs[q:npix * width:width]
            for p in range(npix):
                dst[p] = col[p]
        else:
            dst[:] = 0


@njit(**PAR)
def conv_dilated(xq, wb, outer, y, kmap, stride, dilation, V, first_col, kw, items, kchunks):
    """y[n, kmap[k], oh, ow] = sum over the live taps of xq * w.

    xq from pack_phases; wb the kept kernel (kh, kw, c order); items[i] = (first
    output row, rows, first live kernel row relative to the kept ones, live kernel
    rows, its absolute first row), every row of an item running the same kernel rows.
    """
    n, groups, _, Wq, cg = xq.shape
    K, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    sh, sw = stride
    dh, dw = dilation
    kg = K // groups
    nblk = wb.shape[1]
    width = wb.shape[3] if outer else wb.shape[2]
    per_chunk = (nblk + kchunks - 1) // kchunks
    runlen = kw * cg
    run_step = dh * Wq * cg
    nitems = items.shape[0]
    for item in prange(n * groups * nitems * kchunks):
        b, g, _, it, ch = split_item(item, kchunks, nitems, 1, groups)
        oh0, nrows, t0, nt, row0 = items[it, 0], items[it, 1], items[it, 2], items[it, 3], \
            items[it, 4]
        npix = nrows * OW
        offs = np.empty(npix, np.int64)
        for r in range(nrows):
            base = ((oh0 + r) * sh + row0 * dh) * Wq
            for ow in range(OW):
                col = ow * sw + first_col * dw
                offs[r * OW + ow] = (base + (col % dw) * V + col // dw) * cg
        buf = xq[b, g].ravel()
        yb = y[b].reshape((K, OH * OW))
        km = kmap[g * kg:(g + 1) * kg]
        accs = np.empty((npix + PB) * width, np.float32)
        for blk in range(ch * per_chunk, min(nblk, (ch + 1) * per_chunk)):
            wf = wb[g, blk].ravel()
            if outer:
                if nt > 0:
                    _outer_pixels(buf, offs, npix, nt, runlen, run_step, wf[t0 * runlen * width:],
                                  width, accs)
                _store_outer(yb, km, blk * width, kg, oh0 * OW, npix, accs, width, nt > 0)
            else:
                channel_block(buf, offs, npix, nt, runlen, run_step, wf, width, False, yb, km,
                              blk * width, kg, oh0 * OW, accs)


def work_items(bands: np.ndarray, out_w: int, first_row: int) -> np.ndarray:
    """Split each row band into items of about PIXELS_PER_ITEM output pixels:
    (first row, rows, first live kernel row relative to the kept ones, live rows,
    first live kernel row)."""
    rows = max(1, math.ceil(PIXELS_PER_ITEM / out_w))
    items = [(start + r, min(rows, count - r), first - first_row, live, first)
             for start, count, first, live in bands.tolist() for r in range(0, count, rows)]
    return np.array(items, np.int64)


def execute_dilated(spec: ConvSpec, x: np.ndarray, packed: PackedDilated) -> np.ndarray:
    """Direct dilated convolution of x with prepared weights."""
    (H, W), (ph, pw), dw = spec.size, spec.padding, spec.dilation[1]
    V = -(-(W + 2 * pw) // dw)  # columns per phase
    Hp = H + 2 * ph
    xq = np.empty((spec.n, spec.groups, Hp, dw * V, spec.c // spec.groups), np.float32)
    pack_phases(x, spec.groups, ph, pw, dw, V, Hp, xq)
    y = new_output(spec.output_shape)
    items = work_items(packed.bands, spec.out_size[1], packed.first_row)
    wb = packed.wb
    conv_dilated(xq, wb, packed.outer, y, packed.kmap, spec.stride, spec.dilation, V,
                 packed.first_col, packed.kept[1], items,
                 kchunks_for(spec.n * spec.groups * len(items), wb.shape[1]))
    return y
