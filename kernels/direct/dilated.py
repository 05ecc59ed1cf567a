"""Direct dilated 2-D convolution: space-to-batch along the width, padded taps skipped.

Space-to-batch (as TensorFlow runs atrous convolution): with dilation d along
the width, the padded input columns w = b + d*v split into d phase images
(b = w mod d), each an ordinary undilated image. The input is packed once,
channels-last, with its columns in phase-major order (xq[.., h, b*V + v, c]),
so the taps of one kernel row, w = ow*s + kw*d for kw = 0..KW-1, are
consecutive columns of one phase: a pixel's window is KH contiguous runs of
KW*c/g values, run kh starting dilation-rows further on (so rows need no
phases: every kernel row is a run of its own anyway). The register blocks
of `gemm` walk those runs straight from the packed input (no row buffer); a
pixel's phase only changes where its window starts, so the 6-pixel blocks run
across phases and rows alike (ENet's 4x4-pixel phases fill whole blocks).

Padded taps: kernel rows/columns that no output reads a real input through
are cropped from the kernel in prepare (exact: they only ever multiply zeros);
outputs whose outer kernel rows or columns fall into the padding (ASPP's rate
18 on a 33x33 map reads real input through two of three kernel rows at most,
and as few columns) run with only their live taps: work items are bands of
output rows that share one live kernel-row range, and within an item each
band of columns that shares one live kernel-column range is a GEMM of its own
(its pixels flattened across the item's rows), reading a sub-run of each
kernel row's weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, PB, new_output
from ..outer_block import LANES, outer_product
from ..spec import ConvSpec
from ..types import flip_spatial
from .dense import kchunks_for
from .gemm import REDUCTION_CHUNK, channel_block, outer_width, pack_blocked_weights, split_item

TILE = 64  # columns and channels per transposed tile of pack_phases (fastest of 16-128)
WEIGHT_TILE = 16  # channels per tile of pack_taps_outer
PIXELS_PER_ITEM = 192  # output pixels per work item: 32 register blocks share each weight pass


def live_taps(out: int, size: int, stride: int, pad: int, dilation: int, kernel: int,
              o: int) -> tuple[int, int]:
    """(first, end) of the kernel taps t through which output index o reads a real
    input (0 <= o*stride + t*dilation - pad < size); first == end when there is none."""
    first = min(kernel, max(0, -((o * stride - pad) // dilation)))
    end = min(kernel, (size - 1 + pad - o * stride) // dilation + 1)
    return first, max(first, end)


def live_span(spec: ConvSpec, axis: int) -> tuple[int, int]:
    """(first, end): the smallest range of taps along `axis` that holds every tap some
    output reads a real input through ((0, 0) if there is none)."""
    live = bands(spec, axis, (0, spec.kernel[axis]), crop=True)
    live = live[live[:, 3] > 0]
    if not len(live):
        return 0, 0
    return int(live[:, 2].min()), int((live[:, 2] + live[:, 3]).max())


def bands(spec: ConvSpec, axis: int, kept: tuple[int, int], crop: bool) -> np.ndarray:
    """bands[i] = (first output index, count, first live tap, live taps) along `axis`:
    maximal runs of outputs that read real input through the same taps of the kept
    range `kept` (tap numbers relative to kept[0]; every output runs all kept taps
    unless `crop`; live taps 0 where an output reads only padding)."""
    geometry = (spec.out_size[axis], spec.size[axis], spec.stride[axis], spec.padding[axis],
                spec.dilation[axis], spec.kernel[axis])
    out, size, stride, pad, dilation, kernel = geometry
    starts = {0}
    if crop:  # the live taps change only where tap t starts or stops reading the input
        for t in range(kernel):
            for edge in (pad - t * dilation, size + pad - t * dilation):
                o = -(-edge // stride)  # the first output index past the edge
                if 0 < o < out:
                    starts.add(o)
    runs: list[list[int]] = []
    for o in sorted(starts):
        first, end = live_taps(*geometry, o) if crop else kept
        first, end = max(first, kept[0]), min(end, kept[1])
        live = [first - kept[0], end - first] if end > first else [0, 0]
        if runs and runs[-1][2:] == live:
            continue
        if runs:
            runs[-1][1] = o - runs[-1][0]
        runs.append([o, out - o, *live])
    return np.array(runs, np.int64)


@dataclass(frozen=True)
class PackedDilated:
    """The weight-only part of a dilated call: the kept taps packed in (kh, kw, c) order."""
    wb: np.ndarray      # the kept taps: pack_taps_outer, or gemm's packer for the dot block
    outer: bool         # which register block wb is laid out for
    kmap: np.ndarray    # output channel of each grouped channel (int64)
    first: tuple[int, int]  # first kept kernel row and column
    kept: tuple[int, int]   # kept kernel rows and columns
    row_bands: np.ndarray   # bands(axis 0): output row bands and the kept rows they run
    col_bands: np.ndarray   # bands(axis 1): output column bands and the kept columns they run


@njit(**PAR)
def pack_taps_outer(w, groups, first_row, first_col, flip, out):
    """out[g, blk, kh, kw, c, q] = w[g*kg + blk*width + q, c, first_row + kh, first_col + kw]
    (taps of the flipped kernel if `flip`), zero past kg: the outer-product block's
    layout in (kh, kw, c) order, straight from the raw (C-contiguous) weights.

    WEIGHT_TILE channels at a time: the block's filters' taps of those channels are first
    copied into a tile (contiguous runs), then written out a whole row of `width` floats
    at a time. Reading the filters in place, `width` rows a whole filter apart, took twice
    as long: 2048 channels x 3x3 puts the rows 72 KiB apart, all in the same L1 sets."""
    kg = w.shape[0] // groups
    KH0, KW0 = w.shape[2], w.shape[3]
    taps = KH0 * KW0
    G, nblk, KH, KW, cg, width = out.shape
    wf = w.reshape((w.shape[0], cg * taps))
    for item in prange(G * nblk):
        g = item // nblk
        blk = item % nblk
        o = out[g, blk]
        k0 = g * kg + blk * width
        real = min(width, kg - blk * width)  # filters in this block (zeros after them)
        tile = np.empty((width, WEIGHT_TILE * taps), np.float32)
        for c0 in range(0, cg, WEIGHT_TILE):
            nc = min(WEIGHT_TILE, cg - c0)
            for q in range(real):
                tile[q, :nc * taps] = wf[k0 + q, c0 * taps:(c0 + nc) * taps]
            for c in range(nc):
                for kh in range(KH):
                    sh = KH0 - 1 - first_row - kh if flip else first_row + kh
                    for kw in range(KW):
                        sw = KW0 - 1 - first_col - kw if flip else first_col + kw
                        t = c * taps + sh * KW0 + sw
                        d = o[kh, kw, c0 + c]
                        for q in range(real):
                            d[q] = tile[q, t]
                        for q in range(real, width):
                            d[q] = 0


def prepare_dilated(spec: ConvSpec, w: np.ndarray) -> PackedDilated:
    """Crop w[k, c/g, kh, kw] (flipped if the spec says so) to its live taps and pack it."""
    rows, cols = live_span(spec, 0), live_span(spec, 1)
    if rows[0] == rows[1] or cols[0] == cols[1]:  # no output reads any input: all zeros
        rows, cols = (0, 1), (0, 1)
    kept = (rows[1] - rows[0], cols[1] - cols[0])
    kg, cg = spec.k // spec.groups, spec.c // spec.groups
    width = outer_width(kg)
    if width:
        out = np.empty((spec.groups, -(-kg // width), *kept, cg, width), np.float32)
        pack_taps_outer(np.ascontiguousarray(w), spec.groups, rows[0], cols[0], spec.flip, out)
        wb = out.reshape(out.shape[0], out.shape[1], -1, width)
    else:
        taps = (flip_spatial(w, 2) if spec.flip else w)[:, :, rows[0]:rows[1], cols[0]:cols[1]]
        # pack_blocked_weights orders a window (KW, KD, KH, c): pass (kw, kh) as (KH, KW)
        wb, _ = pack_blocked_weights(np.ascontiguousarray(taps.transpose(0, 1, 3, 2)[:, :, None]),
                                     spec.groups, False)
    # the dot block strides its weight rows by the whole window: it runs every kept tap
    return PackedDilated(wb, bool(width), np.arange(spec.k), (rows[0], cols[0]), kept,
                         bands(spec, 0, rows, crop=bool(width)),
                         bands(spec, 1, cols, crop=bool(width)))


def phase_columns(cols: np.ndarray, dw: int, V: int) -> np.ndarray:
    """Where padded column w sits in the phase-major layout: (w mod dw)*V + w // dw."""
    return (cols % dw) * V + cols // dw


@njit(**PAR)
def pack_phases(x, groups, pad_h, where, zero_padding, out):
    """out[n, g, pad_h + i, where[j], c] = x[n, g*cg + c, i, j]: the channels-last padded
    input, its columns in phase-major order (where: phase_columns of the padded columns
    j + pad_w). The padding is zeroed only if asked: the outer-product path reads live
    taps only, so it never reads padding (ASPP's rate 18 pads 33x33 to 69x72).

    Transposed through a TILE x TILE (columns x channels) buffer: contiguous reads of
    each channel's columns, contiguous writes of each column's channels (writing the
    columns one channel at a time took 20x longer on 2048 channels)."""
    n, C, H, W = x.shape
    cg = C // groups
    Hp = out.shape[2]
    for item in prange(n * groups * Hp):
        b = item // (groups * Hp)
        g = (item // Hp) % groups
        h = item % Hp
        dst = out[b, g, h]
        if zero_padding:
            dst[:] = 0
        i = h - pad_h
        if i < 0 or i >= H:
            continue
        tile = np.empty((TILE, TILE), np.float32)
        for c0 in range(0, cg, TILE):
            nc = min(cg - c0, TILE)
            for w0 in range(0, W, TILE):
                nw = min(W - w0, TILE)
                for c in range(nc):
                    src = x[b, g * cg + c0 + c, i, w0:w0 + nw]
                    for j in range(nw):
                        tile[j, c] = src[j]
                for j in range(nw):
                    d = dst[where[w0 + j], c0:c0 + nc]
                    t = tile[j]
                    for c in range(nc):
                        d[c] = t[c]


@njit(**JIT)
def _outer_band(buf, offs, npix, nrun, runlen, run_step, wf, wrun, width, accs):
    """accs[p*width + q] = sum over the runs r < nrun of the window run
    buf[offs[p] + r*run_step:][:runlen] times the weight rows wf[r*wrun + i] (i < runlen,
    `width` channels each): a column band's sub-run of every live kernel row.

    As gemm's outer-product loop, in chunks of about REDUCTION_CHUNK steps, each over
    all pixel blocks (the weight chunk stays in L2 while the windows pass); unlike it, a
    weight run (wrun) may be longer than the window run it meets."""
    nch = (runlen + REDUCTION_CHUNK - 1) // REDUCTION_CHUNK
    step = (runlen + nch - 1) // nch
    last = npix - 1
    for r in range(nrun):
        for c0 in range(0, runlen, step):
            cl = min(step, runlen - c0)
            o = r * run_step + c0
            wo = (r * wrun + c0) * width
            first = r == 0 and c0 == 0
            for p0 in range(0, npix, PB):
                outer_product(width == 2 * LANES, not first, wf, wo, buf,
                              offs[p0] + o, offs[min(p0 + 1, last)] + o,
                              offs[min(p0 + 2, last)] + o, offs[min(p0 + 3, last)] + o,
                              offs[min(p0 + 4, last)] + o, offs[min(p0 + 5, last)] + o,
                              cl, accs, p0 * width)


@njit(**JIT)
def _store_band(yb, kmap, k0, kg, ybase, out_w, nrows, ncols, accs, width, live):
    """yb[kmap[k0+q], ybase + r*out_w + j] = accs[(r*ncols + j)*width + q]: a column
    band's rows (zero where no tap is live)."""
    for q in range(min(width, kg - k0)):
        row = yb[kmap[k0 + q]]
        for r in range(nrows):
            dst = row[ybase + r * out_w:ybase + r * out_w + ncols]
            if live:
                src = accs[r * ncols * width + q:(r + 1) * ncols * width:width]
                for j in range(ncols):
                    dst[j] = src[j]
            else:
                dst[:] = 0


@njit(**PAR)
def conv_dilated(xq, wb, outer, y, kmap, sh, dh, first_row, KW, items, col_bands, colpos,
                 kchunks):
    """y[n, kmap[k], oh, ow] = sum over the live taps of xq * w.

    xq from pack_phases; wb the kept kernel in (kh, kw, c) order; items[i] = (first
    output row, rows, first live kept row, live rows), every row of an item running the
    same kernel rows; col_bands the same for columns (`bands`); colpos[ow] the xq
    column of output column ow's first live tap. An item's pixels are ordered band by
    band, each band's rows after one another.
    """
    n, groups, _, Wq, cg = xq.shape
    K, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    kg = K // groups
    nblk = wb.shape[1]
    width = wb.shape[3] if outer else wb.shape[2]
    per_chunk = (nblk + kchunks - 1) // kchunks
    wrun = KW * cg  # one kernel row of weights (kw, c)
    run_step = dh * Wq * cg  # one kernel row of input: dilation rows further on
    nitems = items.shape[0]
    for item in prange(n * groups * nitems * kchunks):
        b, g, _, it, ch = split_item(item, kchunks, nitems, 1, groups)
        oh0, nrows, t0, nt = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
        npix = nrows * OW
        offs = np.empty(npix, np.int64)
        s = 0
        for j in range(col_bands.shape[0]):
            ow0, ncols = col_bands[j, 0], col_bands[j, 1]
            for r in range(nrows):
                row = (oh0 + r) * sh + (first_row + t0) * dh
                for ow in range(ow0, ow0 + ncols):
                    offs[s] = (row * Wq + colpos[ow]) * cg
                    s += 1
        buf = xq[b, g].ravel()
        yb = y[b].reshape((K, OH * OW))
        km = kmap[g * kg:(g + 1) * kg]
        accs = np.empty((npix + PB) * width, np.float32)
        for blk in range(ch * per_chunk, min(nblk, (ch + 1) * per_chunk)):
            wf = wb[g, blk].ravel()
            if not outer:  # one band of all columns (prepare): pixels in output order
                channel_block(buf, offs, npix, nt, wrun, run_step, wf, width, False, yb, km,
                              blk * width, kg, oh0 * OW, accs)
                continue
            s = 0
            for j in range(col_bands.shape[0]):
                ow0, ncols, u0, nu = col_bands[j, 0], col_bands[j, 1], col_bands[j, 2], \
                    col_bands[j, 3]
                m = nrows * ncols
                live = nt > 0 and nu > 0
                if live:
                    _outer_band(buf, offs[s:s + m], m, nt, nu * cg, run_step,
                                wf[(t0 * KW + u0) * cg * width:], wrun, width, accs)
                _store_band(yb, km, blk * width, kg, oh0 * OW + ow0, OW, nrows, ncols, accs,
                            width, live)
                s += m


def work_items(row_bands: np.ndarray, out_w: int) -> np.ndarray:
    """Split each row band into items of about PIXELS_PER_ITEM output pixels:
    (first row, rows, first live kept row, live rows)."""
    rows = max(1, math.ceil(PIXELS_PER_ITEM / out_w))
    items = [(start + r, min(rows, count - r), first, live)
             for start, count, first, live in row_bands.tolist() for r in range(0, count, rows)]
    return np.array(items, np.int64)


def execute_dilated(spec: ConvSpec, x: np.ndarray, packed: PackedDilated) -> np.ndarray:
    """Direct dilated convolution of x with prepared weights."""
    (H, W), (ph, pw), (sh, sw), (dh, dw) = spec.size, spec.padding, spec.stride, spec.dilation
    V = -(-(W + 2 * pw) // dw)  # columns per phase
    # new_output: NaN under test (POISON_OUTPUTS), so a read of unzeroed padding shows
    xq = new_output((spec.n, spec.groups, H + 2 * ph, dw * V, spec.c // spec.groups))
    pack_phases(x, spec.groups, ph, phase_columns(np.arange(pw, W + pw), dw, V),
                not packed.outer, xq)
    # each output column's first live tap: its band's first live kept column
    cb = packed.col_bands
    first_live = np.repeat(cb[:, 2], cb[:, 1]) + packed.first[1]
    colpos = phase_columns(np.arange(spec.out_size[1]) * sw + first_live * dw, dw, V)
    y = new_output(spec.output_shape)
    items = work_items(packed.row_bands, spec.out_size[1])
    wb = packed.wb
    conv_dilated(xq, wb, packed.outer, y, packed.kmap, sh, dh, packed.first[0], packed.kept[1],
                 items, cb, colpos, kchunks_for(spec.n * spec.groups * len(items), wb.shape[1]))
    return y
