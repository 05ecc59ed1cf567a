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

Channels-last (layout "nhwc", `execute_dilated_nhwc`): the packing copies each column's
channels as one run (no transpose), and the sums, pixel-major, are stored as runs of
channels (NCHW transposes them into planes).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, KB, PAR, PB, new_output
from ..outer_block import LANES, outer_product
from ..spec import ConvSpec
from ..transpose_block import TN, transpose_block
from ..types import flip_spatial
from ..workspace import scratch
from .dense import kchunks_for
from .gemm import REDUCTION_CHUNK, channel_block, outer_width, pack_blocked_weights, split_item

TILE = 64  # columns and channels per transposed tile of pack_phases (fastest of 16-128)
WEIGHT_TILE = 16  # channels per tile of pack_taps_outer
F32 = 4  # bytes per float32
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
class Geometry:
    """What a dilated call works out from the spec alone (`geometry`, cached per spec:
    working it out took 40 us a call, a sixth of ENet's 64x64 layers on two threads)."""
    outer: bool             # which register block: outer-product (live taps only) or dot
    first: tuple[int, int]  # first kept kernel row and column
    kept: tuple[int, int]   # kept kernel rows and columns
    row_bands: np.ndarray   # bands(axis 0): output row bands and the kept rows they run
    col_bands: np.ndarray   # bands(axis 1): output column bands and the kept columns they run
    kmap: np.ndarray        # output channel of each grouped channel (int64)
    phase_width: int        # V: padded columns per phase
    where: np.ndarray       # the xq column of each input column (phase_columns)
    colpos: np.ndarray      # the xq column of each output column's first live tap
    items: np.ndarray       # work_items: (first output row, rows, first live row, live rows)


@dataclass(frozen=True)
class PackedDilated:
    """The weight-only part of a dilated call: the kept taps packed in (kh, kw, c) order."""
    wb: np.ndarray          # the kept taps: pack_taps_outer, or gemm's packer for the dot block
    geometry: Geometry      # the spec's geometry (shared by every call of the spec)


@njit(**PAR)
def pack_taps_outer(w, groups, first_row, first_col, flip, out):
    """out[g, blk, kh, kw, c, q] = w[g*kg + blk*width + q, c, first_row + kh, first_col + kw]
    (taps of the flipped kernel if `flip`), zero past kg: the outer-product block's
    layout in (kh, kw, c) order, straight from the raw (C-contiguous) weights.

    WEIGHT_TILE channels at a time: the block's filters' (channel, tap) runs are
    transposed TN x TN at a time in registers (transpose_block; the ragged edges one float
    at a time) into rows of `width` filters, each then copied to its kept tap, or
    dropped. One float at a time the transpose took 2.5x as long (DeepLab's 2048 x 256
    x 3x3: 4.8 ms at one thread)."""
    kg = w.shape[0] // groups
    KH0, KW0 = w.shape[2], w.shape[3]
    taps = KH0 * KW0
    G, nblk, KH, KW, cg, width = out.shape
    wf = w.ravel()
    row = cg * taps  # one filter
    for item in prange(G * nblk):
        g = item // nblk
        blk = item % nblk
        o = out[g, blk]
        k0 = g * kg + blk * width
        real = min(width, kg - blk * width)  # filters in this block (zeros after them)
        full_q = real - real % TN
        rows = np.empty(WEIGHT_TILE * taps * width, np.float32)  # [j*width + q]
        for c0 in range(0, cg, WEIGHT_TILE):
            span = min(WEIGHT_TILE, cg - c0) * taps  # j = c*taps + tap
            full_j = span - span % TN
            for q0 in range(0, full_q, TN):
                for j0 in range(0, full_j, TN):
                    transpose_block(rows, j0 * width + q0, width, wf,
                                    (k0 + q0) * row + c0 * taps + j0, row)
            for q in range(real):  # the ragged filters' all, the ragged runs' rest
                src = (k0 + q) * row + c0 * taps
                for j in range(full_j if q < full_q else 0, span):
                    rows[j * width + q] = wf[src + j]
            for j in range(span):
                c, t = j // taps, j % taps
                kh = (KH0 - 1 - t // KW0 if flip else t // KW0) - first_row
                kw = (KW0 - 1 - t % KW0 if flip else t % KW0) - first_col
                if 0 <= kh < KH and 0 <= kw < KW:
                    d = o[kh, kw, c0 + c]
                    d[:real] = rows[j * width:j * width + real]
                    d[real:] = 0


@functools.lru_cache(maxsize=256)
def geometry(spec: ConvSpec) -> Geometry:
    """The spec's kept taps, bands, phase layout and work items (see Geometry). The
    arrays are shared by every call of the spec: nothing writes to them."""
    rows, cols = live_span(spec, 0), live_span(spec, 1)
    if rows[0] == rows[1] or cols[0] == cols[1]:  # no output reads any input: all zeros
        rows, cols = (0, 1), (0, 1)
    outer = bool(outer_width(spec.k // spec.groups))
    # the dot block strides its weight rows by the whole window: it runs every kept tap
    row_bands, col_bands = bands(spec, 0, rows, crop=outer), bands(spec, 1, cols, crop=outer)
    (W, pw, sw, dw, OW) = (spec.size[1], spec.padding[1], spec.stride[1], spec.dilation[1],
                           spec.out_size[1])
    V = phase_width(spec)
    # each output column's first live tap: its band's first live kept column
    first_live = np.repeat(col_bands[:, 2], col_bands[:, 1]) + cols[0]
    return Geometry(outer, (rows[0], cols[0]), (rows[1] - rows[0], cols[1] - cols[0]),
                    row_bands, col_bands, np.arange(spec.k), V,
                    phase_columns(np.arange(pw, W + pw), dw, V),
                    phase_columns(np.arange(OW) * sw + first_live * dw, dw, V),
                    work_items(row_bands, OW))


def prepare_dilated(spec: ConvSpec, w: np.ndarray) -> PackedDilated:
    """Crop w[k, c/g, kh, kw] (flipped if the spec says so) to its live taps and pack it."""
    geo = geometry(spec)
    (first_row, first_col), kept = geo.first, geo.kept
    kg, cg = spec.k // spec.groups, spec.c // spec.groups
    width = outer_width(kg)
    if geo.outer:
        out = np.empty((spec.groups, -(-kg // width), *kept, cg, width), np.float32)
        pack_taps_outer(np.ascontiguousarray(w), spec.groups, first_row, first_col, spec.flip,
                        out)
        return PackedDilated(out.reshape(out.shape[0], out.shape[1], -1, width), geo)
    taps = (flip_spatial(w, 2) if spec.flip else w)[:, :, first_row:first_row + kept[0],
                                                    first_col:first_col + kept[1]]
    # pack_blocked_weights orders a window (KW, KD, KH, c): pass (kw, kh) as (KH, KW)
    wb, _ = pack_blocked_weights(np.ascontiguousarray(taps.transpose(0, 1, 3, 2)[:, :, None]),
                                 spec.groups, False)
    return PackedDilated(wb, geo)


def phase_columns(cols: np.ndarray, dw: int, V: int) -> np.ndarray:
    """Where padded column w sits in the phase-major layout: (w mod dw)*V + w // dw."""
    return (cols % dw) * V + cols // dw


@njit(**PAR)
def pack_phases(x, groups, pad_h, where, zero_padding, out):
    """out[n, g, pad_h + i, where[j], c] = x[n, g*cg + c, i, j]: the channels-last padded
    input, its columns in phase-major order (where: phase_columns of the padded columns
    j + pad_w); x C-contiguous. The padding is zeroed only if asked: the outer-product
    path reads live taps only, so it never reads padding (ASPP's rate 18 pads 33x33 to
    69x72).

    Transposed through a TILE x TILE (columns x channels) buffer, TN x TN blocks at a
    time in registers (transpose_block; the ragged edges one float at a time), then
    copied out a column's channels at a time (writing the columns one channel at a time
    took 20x longer on 2048 channels)."""
    n, C, H, W = x.shape
    cg = C // groups
    Hp = out.shape[2]
    xf = x.ravel()
    plane = H * W
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
        tile = np.empty(TILE * TILE, np.float32)  # tile[j*TILE + c]
        for c0 in range(0, cg, TILE):
            nc = min(cg - c0, TILE)
            full_c = nc - nc % TN
            base = ((b * C + g * cg + c0) * H + i) * W
            for w0 in range(0, W, TILE):
                nw = min(W - w0, TILE)
                full_w = nw - nw % TN
                for cc in range(0, full_c, TN):
                    for jj in range(0, full_w, TN):
                        transpose_block(tile, jj * TILE + cc, TILE, xf,
                                        base + cc * plane + w0 + jj, plane)
                for c in range(nc):  # the ragged columns, and the ragged channels' all
                    src = base + c * plane + w0
                    for j in range(full_w if c < full_c else 0, nw):
                        tile[j * TILE + c] = xf[src + j]
                for j in range(nw):
                    d = dst[where[w0 + j], c0:c0 + nc]
                    for c in range(nc):
                        d[c] = tile[j * TILE + c]


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


@njit(**PAR)
def pack_phases_nhwc(x, groups, pad_h, where, zero_padding, out):
    """pack_phases from channels-last x[n, H, W, c]: a column's c/g channels are one run
    of x, copied as it is."""
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    cg = C // groups
    Hp = out.shape[2]
    for item in prange(x.shape[0] * groups * Hp):
        b = item // (groups * Hp)
        g = (item // Hp) % groups
        h = item % Hp
        dst = out[b, g, h]
        if zero_padding:
            dst[:] = 0
        i = h - pad_h
        if i < 0 or i >= H:
            continue
        src = x[b, i]
        for j in range(W):
            dst[where[j], :] = src[j, g * cg:(g + 1) * cg]


@njit(**JIT)
def _store_band_nhwc(yf, K, k0, nk, ybase, out_w, nrows, ncols, accs, width, live):
    """yf[(ybase + r*out_w + j)*K + k0 + q] = accs[(r*ncols + j)*width + q], q < nk: a
    column band's rows into a flat channels-last image (zero where no tap is live)."""
    for r in range(nrows):
        for j in range(ncols):
            d = (ybase + r * out_w + j) * K + k0
            if live:
                a = (r * ncols + j) * width
                yf[d:d + nk] = accs[a:a + nk]
            else:
                yf[d:d + nk] = 0


@njit(**JIT)
def _store_band(yf, plane, k0, nk, ybase, out_w, nrows, ncols, accs, width, live):
    """yf[(k0 + q)*plane + ybase + r*out_w + j] = accs[(r*ncols + j)*width + q], q < nk:
    a column band's rows of output channels k0.. of a flat NCHW image whose planes are
    `plane` floats (zero where no tap is live). TN x TN blocks are transposed in registers
    (transpose_block), the ragged rest one float at a time."""
    for r in range(nrows):
        for q0 in range(0, nk, TN):
            nq = min(TN, nk - q0)
            out0 = (k0 + q0) * plane + ybase + r * out_w
            if not live:
                for q in range(nq):
                    yf[out0 + q * plane:out0 + q * plane + ncols] = 0
                continue
            a0 = r * ncols * width + q0
            j0 = 0
            if nq == TN:
                for j0 in range(0, ncols - ncols % TN, TN):
                    transpose_block(yf, out0 + j0, plane, accs, a0 + j0 * width, width)
                j0 = ncols - ncols % TN
            for q in range(nq):
                dst = out0 + q * plane
                for j in range(j0, ncols):
                    yf[dst + j] = accs[a0 + j * width + q]


@njit(**JIT)
def _run_unit(xq, wb, outer, y, kmap, sh, dh, first_row, KW, items, col_bands, colpos,
              kchunks, unit, channels_last):
    """One work unit of conv_dilated: one item's output rows, one chunk of its channel
    blocks, of one image and group."""
    n, groups, _, Wq, cg = xq.shape
    if channels_last:
        OH, OW, K = y.shape[1], y.shape[2], y.shape[3]
    else:
        K, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    kg = K // groups
    nblk = wb.shape[1]
    width = wb.shape[3] if outer else wb.shape[2]
    per_chunk = (nblk + kchunks - 1) // kchunks
    wrun = KW * cg  # one kernel row of weights (kw, c)
    run_step = dh * Wq * cg  # one kernel row of input: dilation rows further on
    b, g, _, it, ch = split_item(unit, kchunks, items.shape[0], 1, groups)
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
    yf = y[b].ravel()
    km = kmap[g * kg:(g + 1) * kg]
    accs = np.empty((npix + PB) * width, np.float32)
    for blk in range(ch * per_chunk, min(nblk, (ch + 1) * per_chunk)):
        wf = wb[g, blk].ravel()
        if not outer and channels_last:  # one band of all columns: pixels in output order
            channel_block(buf, offs, npix, nt, wrun, run_step, wf, width, False,
                          y[b].reshape((OH * OW, K)).T, km, blk * width, kg, oh0 * OW, accs)
            continue
        if not outer:
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
            # kmap is the identity here: the output channel of k is g*kg + k
            if channels_last:
                _store_band_nhwc(yf, K, g * kg + blk * width, min(width, kg - blk * width),
                                 oh0 * OW + ow0, OW, nrows, ncols, accs, width, live)
            else:
                _store_band(yf, OH * OW, g * kg + blk * width, min(width, kg - blk * width),
                            oh0 * OW + ow0, OW, nrows, ncols, accs, width, live)
            s += m


@njit(**PAR)
def conv_dilated(xq, wb, outer, y, kmap, sh, dh, first_row, KW, items, col_bands, colpos,
                 kchunks, order, starts, channels_last=False):
    """y[n, kmap[k], oh, ow] = sum over the live taps of xq * w (y[n, oh, ow, kmap[k]] if
    `channels_last`).

    xq from pack_phases; wb the kept kernel in (kh, kw, c) order; items[i] = (first
    output row, rows, first live kept row, live rows), every row of an item running the
    same kernel rows; col_bands the same for columns (`bands`); colpos[ow] the xq
    column of output column ow's first live tap. An item's pixels are ordered band by
    band, each band's rows after one another. Thread t runs the work units
    order[starts[t]:starts[t + 1]] (`schedule`).
    """
    for t in prange(starts.shape[0] - 1):
        for u in range(starts[t], starts[t + 1]):
            _run_unit(xq, wb, outer, y, kmap, sh, dh, first_row, KW, items, col_bands,
                      colpos, kchunks, order[u], channels_last)


def work_items(row_bands: np.ndarray, out_w: int) -> np.ndarray:
    """Split each row band into items of about PIXELS_PER_ITEM output pixels, its rows
    shared out evenly (25 rows of 33 pixels: 7, 6, 6, 6, not 6, 6, 6, 6, 1): (first row, rows,
    first live kept row, live rows)."""
    items = []
    for start, count, first, live in row_bands.tolist():
        parts = max(1, round(count * out_w / PIXELS_PER_ITEM))
        base, extra = divmod(count, parts)
        for i in range(parts):
            rows = base + (i < extra)
            items.append((start, rows, first, live))
            start += rows
    return np.array(items, np.int64)


@functools.lru_cache(maxsize=256)
def schedule(spec: ConvSpec, threads: int, nblk: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(kchunks, order, starts): the work units (image, group, item, chunk of nblk channel
    blocks) shared out over `threads` by their work (longest first, each to the least
    loaded thread), thread t's units order[starts[t]:starts[t + 1]] in unit order.

    By work, not by count: items differ in live kernel rows and columns (ASPP's edge
    bands run two of three), so an even split of the units left one of two threads
    with 10-16% more work on DeepLab's 33x33 layers."""
    geo = geometry(spec)
    items, cb = geo.items, geo.col_bands
    per_pixel = cb[:, 1] * (cb[:, 3] if geo.outer else geo.kept[1])  # live columns x pixels
    item_work = items[:, 1] * (items[:, 3] * per_pixel.sum() + spec.out_size[1])  # + store
    kchunks = kchunks_for(spec.n * spec.groups * len(items), nblk)
    per_chunk = -(-nblk // kchunks)
    chunk_blocks = [min(nblk, (ch + 1) * per_chunk) - ch * per_chunk for ch in range(kchunks)]
    units = [(int(item_work[it]) * chunk_blocks[ch], u)
             for u in range(spec.n * spec.groups * len(items) * kchunks)
             for it, ch in [divmod(u % (len(items) * kchunks), kchunks)]]
    load, assigned = [0] * threads, [[] for _ in range(threads)]
    for work, u in sorted(units, reverse=True):
        t = load.index(min(load))
        load[t] += work
        assigned[t].append(u)
    order = np.array([u for own in assigned for u in sorted(own)], np.int64)
    starts = np.cumsum([0] + [len(own) for own in assigned]).astype(np.int64)
    return kchunks, order, starts


def phase_width(spec: ConvSpec) -> int:
    """V: padded columns per phase."""
    return -(-(spec.size[1] + 2 * spec.padding[1]) // spec.dilation[1])


def packed_input_shape(spec: ConvSpec) -> tuple[int, ...]:
    """xq's shape: (n, groups, padded rows, dilation x V phase columns, c/g)."""
    return (spec.n, spec.groups, spec.size[0] + 2 * spec.padding[0],
            spec.dilation[1] * phase_width(spec), spec.c // spec.groups)


def kept_bound(spec: ConvSpec, axis: int) -> int:
    """At least the kept taps along `axis` (`live_span`), in closed form: every live tap
    lies between the first live tap of the last output and the end of the first
    output's (both move towards lower taps as the output index grows)."""
    geo = (spec.out_size[axis], spec.size[axis], spec.stride[axis], spec.padding[axis],
           spec.dilation[axis], spec.kernel[axis])
    first, _ = live_taps(*geo, geo[0] - 1)
    _, end = live_taps(*geo, 0)
    return max(1, end - first)


def buffer_bytes(spec: ConvSpec) -> dict:
    """Bytes a call allocates besides its output (for kernels.memory): the packed input
    (`xq`: every padded row, dilation x V phase columns), the packed weights (`weights`,
    padded to whole register blocks; the dot block's packer also copies the kept taps,
    and a flipped kernel first), and the scratch of one thread (`per_thread`: a work
    unit's window offsets and sums, the transpose tiles of both packers).

    From the spec alone in O(1) (the memory guard runs it before refusing a spec whose
    geometry would not fit in memory): the kept taps and an item's pixels are upper
    bounds (`kept_bound`; `work_items` gives an item at most 1.5 PIXELS_PER_ITEM pixels
    or one output row)."""
    kg, cg = spec.k // spec.groups, spec.c // spec.groups
    taps = kept_bound(spec, 0) * kept_bound(spec, 1)
    width = outer_width(kg) or KB
    weights = F32 * spec.groups * -(-kg // width) * width * cg * taps
    if not outer_width(kg):
        weights += F32 * spec.k * cg * (taps + (math.prod(spec.kernel) if spec.flip else 0))
    OH, OW = spec.out_size
    pixels = min(OH, -(-3 * PIXELS_PER_ITEM // (2 * OW))) * OW
    per_thread = (8 * pixels + F32 * (pixels + PB) * width + F32 * TILE * TILE
                  + F32 * width * WEIGHT_TILE * math.prod(spec.kernel))
    return dict(xq=F32 * math.prod(packed_input_shape(spec)), weights=weights,
                per_thread=per_thread)


def execute_dilated(spec: ConvSpec, x: np.ndarray, packed: PackedDilated) -> np.ndarray:
    """Direct dilated convolution of x with prepared weights."""
    return _dilated(spec, x, packed, False)


def execute_dilated_nhwc(spec: ConvSpec, x: np.ndarray, packed: PackedDilated) -> np.ndarray:
    """Direct dilated convolution of channels-last x: (n, H, W, c) -> (n, OH, OW, k)."""
    return _dilated(spec, x, packed, True)


def _dilated(spec: ConvSpec, x: np.ndarray, packed: PackedDilated,
             channels_last: bool) -> np.ndarray:
    geo, wb = packed.geometry, packed.wb
    ph, sh, dh = spec.padding[0], spec.stride[0], spec.dilation[0]
    # scratch: NaN under test (POISON_OUTPUTS), so a read of unzeroed padding shows
    xq = scratch(packed_input_shape(spec), "dilated.xq")
    pack = pack_phases_nhwc if channels_last else pack_phases
    pack(np.ascontiguousarray(x), spec.groups, ph, geo.where, not geo.outer, xq)
    n, k, OH, OW = spec.output_shape
    y = new_output((n, OH, OW, k) if channels_last else spec.output_shape)
    kchunks, order, starts = schedule(spec, numba.get_num_threads(), wb.shape[1])
    conv_dilated(xq, wb, geo.outer, y, geo.kmap, sh, dh, geo.first[0], geo.kept[1], geo.items,
                 geo.col_bands, geo.colpos, kchunks, order, starts, channels_last)
    return y
