"""The inner GEMM of the direct kernels: one block of output channels over a set of pixels.

Both the dense (windowed) and the pointwise kernels reduce to this once the
input is laid out so that every output pixel's window is a run of a buffer:
pixel p's window starts at `offs[p]`, and is `nrun` runs of `runlen` values,
run r starting `run_step * r` further on (nrun = 1 unless a dilated width
breaks the window into one run per kernel column).

Two register blocks:

- `outer`: 6 pixels x one or two panels of channels (`outer_block`: 6 x 16 or
  6 x 32 on AVX-512, 6 x 16 on AVX2 and NEON, 6 x 8 on generic SSE; see
  `kernels.target`), weights packed channel-innermost (`wf[i*width + q]`),
  pixel values broadcast; no horizontal sums, so it wins wherever a group has
  3/4 of a panel (12 of 16) or more output channels;
- `dot`: KB channels x 6 pixels as dot products (`blocks.dot_4x6` or `dot_2x6`: 4 x 6 or
  2 x 6 by the registers of the target), weights packed channel-major
  (`wf[q*wrow + i]`), for narrower groups.

Results go to `yb[kmap[k0 + q], ybase + p]`: the output of one image as
(channels, flattened pixels), so both kernels write NCHW directly.

The other orientation, `lane_block`, puts pixels in the vector lanes: the
reduction operand is a panel of `width` output pixels (`lane_panel`: their
windows, `panel[i*width + l]`, one contiguous copy per window step from an
input split into stride phases) and six output channels are broadcast straight from the raw
weights `w[k, i]` (each row a contiguous run over the window), so no weight
packing is needed at all. In call mode that packing is a second pass over
every weight, as costly as the GEMM itself where the image is small (7x7: 49
products per weight); and a group of 4 output channels fills 4 of the 6
broadcast rows, where the dot block (4 x 6) paid a horizontal sum per output.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ..blocks import JIT, KB, PAR, PB, add_block, add_block_2x6, dot_2x6, dot_4x6
from ..outer_block import LANES, WIDE, outer_product
from ..types import flip_spatial

LANE_PAD_GAIN = 0.85  # how much less padding makes the narrow lane panel worth its slower block
REDUCTION_CHUNK = 1024  # reduction steps per pass over the pixel blocks (outer block)

__all__ = ["channel_block", "copy_run", "lane_block", "lane_panel", "lane_rows", "lane_width",
           "outer_width", "pack_blocked_weights", "split_item", "store_lane_rows"]


@intrinsic
def move_vector(typingctx, dst, do, src, so):
    """dst[do:do + LANES] = src[so:so + LANES] as one vector load and store. A Numba loop
    of 32 floats ran its scalar remainder (LLVM's vector loop copies 64 per iteration, after
    a runtime overlap check): 4x slower, where gathering a panel costs as much as the GEMM."""
    sig = types.void(dst, do, src, so)

    def codegen(context, builder, signature, args):
        vec = ir.VectorType(ir.FloatType(), LANES).as_pointer()
        darr = context.make_array(signature.args[0])(context, builder, args[0])
        sarr = context.make_array(signature.args[2])(context, builder, args[2])
        value = builder.load(builder.bitcast(builder.gep(sarr.data, [args[3]]), vec), align=4)
        builder.store(value, builder.bitcast(builder.gep(darr.data, [args[1]]), vec), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", **JIT)
def copy_run(dst, do, src, so, n):
    """dst[do:do + n] = src[so:so + n]: whole vectors, then the scalar rest (inlined: as a
    call, its argument passing cost more than the copy)."""
    full = n - n % LANES
    for v in range(0, full, LANES):
        move_vector(dst, do + v, src, so + v)
    d = dst[do + full:do + n]
    s = src[so + full:so + n]
    for t in range(n - full):
        d[t] = s[t]


@njit(**JIT)
def _offsets6(offs, p0, npix):
    """Window starts of pixels p0..p0+5, the ragged tail repeating the last pixel."""
    last = npix - 1
    return (offs[min(p0, last)], offs[min(p0 + 1, last)], offs[min(p0 + 2, last)],
            offs[min(p0 + 3, last)], offs[min(p0 + 4, last)], offs[min(p0 + 5, last)])


@njit(**JIT)
def _store(yb, kmap, k0, kg, ybase, p0, npix, acc, width):
    """yb[kmap[k0+q], ybase+p0+j] = acc[j*width + q] for the real pixels and channels."""
    for j in range(PB):
        if p0 + j < npix:
            for q in range(width):
                if k0 + q < kg:
                    yb[kmap[k0 + q], ybase + p0 + j] = acc[j * width + q]


@njit(**JIT)
def _outer_pixels(buf, offs, npix, nrun, runlen, run_step, wf, width, accs):
    """accs[block] = the 6 x width outer-product sums of every pixel block.

    The reduction runs in chunks of about REDUCTION_CHUNK steps, each chunk
    over all pixel blocks, so the weight chunk and the windows it meets stay
    in L2 together: 512 channels x 3x3 would otherwise stream a 590 KB weight
    block past a 390 KB row buffer for every 6 pixels.
    """
    nch = (runlen + REDUCTION_CHUNK - 1) // REDUCTION_CHUNK
    step = (runlen + nch - 1) // nch
    for r in range(nrun):
        for c0 in range(0, runlen, step):
            cl = min(step, runlen - c0)
            o = r * run_step + c0
            wo = (r * runlen + c0) * width
            first = r == 0 and c0 == 0
            for p0 in range(0, npix, PB):
                a0, a1, a2, a3, a4, a5 = _offsets6(offs, p0, npix)
                ao = (p0 // PB) * PB * width
                outer_product(width == 2 * LANES, not first, wf, wo, buf, a0 + o, a1 + o,
                              a2 + o, a3 + o, a4 + o, a5 + o, cl, accs, ao)


@njit(**JIT)
def channel_block(buf, offs, npix, nrun, runlen, run_step, wf, width, outer, yb, kmap, k0, kg,
                  ybase, accs):
    """Output channels k0..k0+width-1 (of kg in the group) for pixels 0..npix-1.

    wf is the block's packed weights: (nrun*runlen, width) if `outer`, else
    (width=KB, nrun*runlen). accs is scratch of at least npix + PB rows of
    `width` floats.
    """
    if outer:
        _outer_pixels(buf, offs, npix, nrun, runlen, run_step, wf, width, accs)
        for p0 in range(0, npix, PB):
            _store(yb, kmap, k0, kg, ybase, p0, npix, accs[p0 * width:(p0 + PB) * width], width)
        return
    wrow = nrun * runlen
    acc = accs[:PB * width]
    for p0 in range(0, npix, PB):
        a0, a1, a2, a3, a4, a5 = _offsets6(offs, p0, npix)
        acc[:] = 0
        for r in range(nrun):
            o = r * run_step
            w0 = r * runlen
            # the block is chosen here (KB is a compile-time constant), not through a shared
            # wrapper: called through one, even inlined, this loop ran 10% slower on AVX-512
            if KB == 4:
                add_block(acc, dot_4x6(buf, a0 + o, a1 + o, a2 + o, a3 + o, a4 + o, a5 + o,
                                       wf, w0, w0 + wrow, w0 + 2 * wrow, w0 + 3 * wrow, runlen))
            else:
                add_block_2x6(acc, dot_2x6(buf, a0 + o, a1 + o, a2 + o, a3 + o, a4 + o, a5 + o,
                                           wf, w0, w0 + wrow, runlen))
        _store(yb, kmap, k0, kg, ybase, p0, npix, acc, width)


@njit(**JIT)
def lane_block(panel, po, width, w, rows, n, acc):
    """acc[r*width + l] = sum_{i<n} w[rows[r] + i] * panel[po + i*width + l], r < 6: six
    weight rows (offsets into the flat raw weights; a ragged tail repeats a row) against one
    panel of `width` pixels."""
    outer_product(width == 2 * LANES, False, panel, po, w, rows[0], rows[1], rows[2], rows[3],
                  rows[4], rows[5], n, acc, 0)


@njit(**JIT)
def lane_panel(xf, base, offs, q0, width, panel):
    """panel[i*width + l] = xf[base + offs[i] + q0 + l]: step i of the window of the `width`
    lanes from q0 on, each one contiguous run of the (phase-split) input; lanes past the end
    of xf are zero (they are past the last pixel, never stored)."""
    end = xf.shape[0]
    for i in range(offs.shape[0]):
        s = base + offs[i] + q0
        if s + width <= end:
            for v in range(0, width, LANES):
                move_vector(panel, i * width + v, xf, s + v)
            continue
        n = max(0, min(width, end - s))
        d = panel[i * width:(i + 1) * width]
        src = xf[s:s + n]
        for t in range(width):
            d[t] = src[t] if t < n else 0


@njit(**JIT)
def store_lane_rows(yb, kmap, kbase, k0, kg, q0, plane, out_size, acc, width):
    """yb[kmap[kbase + k0 + r], p] = acc[r*width + l] for the real channels, lane l standing
    for point q0 + l of the (Dq, Hq, Wq) `plane` grid; only points inside out_size are
    outputs, p their flattened index."""
    OD, OH, OW = out_size
    _, Hq, Wq = plane
    rows = min(PB, kg - k0)
    if Hq == OH and Wq == OW:  # every point is an output (1x1, unpadded): one run, p = q
        m = min(width, OD * OH * OW - q0)
        for r in range(rows):
            copy_run(yb[kmap[kbase + k0 + r]], q0, acc, r * width, m)
        return
    lane = 0
    while lane < width:
        q = q0 + lane
        w0 = q % Wq
        h0 = (q // Wq) % Hq
        d0 = q // (Wq * Hq)
        n = min(width - lane, Wq - w0)
        if d0 >= OD:
            return
        if h0 < OH and w0 < OW:
            m = min(n, OW - w0)
            p = (d0 * OH + h0) * OW + w0
            for r in range(rows):
                copy_run(yb[kmap[kbase + k0 + r]], p, acc, r * width + lane, m)
        lane += n


@njit(**JIT)
def lane_rows(rows, base, k0, kg, step):
    """rows[r] = base + (k0 + r) * step, r < 6, past kg repeating the group's last channel."""
    for r in range(PB):
        rows[r] = base + min(k0 + r, kg - 1) * step


def lane_width(pixels: int) -> int:
    """Pixels per lane panel: two panels of the target where it has the registers, unless
    one panel pads `pixels` by LANE_PAD_GAIN less (the wide block is the faster: 12 FMAs per
    6 broadcasts instead of 6)."""
    def padded(width):
        return -(-pixels // width) * width

    return 2 * LANES if WIDE and padded(2 * LANES) * LANE_PAD_GAIN <= padded(LANES) else LANES


@njit(**JIT)
def split_item(item, chunks, inner, depth, groups):
    """Flat parallel work-item index -> (batch, group, depth, inner, chunk), chunk fastest."""
    chunk = item % chunks
    item //= chunks
    i = item % inner
    item //= inner
    d = item % depth
    item //= depth
    return item // groups, item % groups, d, i, chunk


def outer_width(kg: int) -> int:
    """Channels per outer-product block (0: too few channels, use the dot-product block).
    Two panels only where the target has the registers for 6 x 2 panels (AVX-512)."""
    if WIDE and kg >= 2 * LANES - LANES // 2:
        return 2 * LANES
    return LANES if kg >= LANES // 2 + LANES // 4 else 0


PACK_CHANNELS = 16  # input channels per packing tile: its width rows of w stay in L1/L2


@njit(**PAR)
def _pack_channel_innermost(w, groups, flip, out):
    """out[g, blk, kw, kd, kh, c, q] = w[g*kg + blk*width + q, c, kd, kh, kw] (flipped if asked),
    zero past kg. One parallel pass over tiles of PACK_CHANNELS input channels: each tile
    reads `width` short runs of w (kept in cache across its taps) and writes whole
    contiguous rows of out. Going through out a channel at a time instead, with each
    write a row apart, took 1.9 ms for DeepBench's 128x832x5x5 (10.6 MB)."""
    kg = w.shape[0] // groups
    G, nblk, KW, KD, KH, cg, width = out.shape
    ntiles = (cg + PACK_CHANNELS - 1) // PACK_CHANNELS
    for item in prange(G * nblk * ntiles):
        tile = item % ntiles
        g = item // (nblk * ntiles)
        blk = (item // ntiles) % nblk
        c0 = tile * PACK_CHANNELS
        c1 = min(cg, c0 + PACK_CHANNELS)
        k0 = g * kg + blk * width
        live = min(width, kg - blk * width)  # output channels past kg are zero
        for kw in range(KW):
            sw = KW - 1 - kw if flip else kw
            for kd in range(KD):
                sd = KD - 1 - kd if flip else kd
                for kh in range(KH):
                    sh = KH - 1 - kh if flip else kh
                    for c in range(c0, c1):
                        row = out[g, blk, kw, kd, kh, c]
                        for q in range(live):
                            row[q] = w[k0 + q, c, sd, sh, sw]
                        for q in range(live, width):
                            row[q] = 0


def pack_blocked_weights(w: np.ndarray, groups: int, flip: bool) -> tuple[np.ndarray, bool]:
    """w[k, c/g, KD, KH, KW] -> (wb[g, blocks, ...], outer) in the layout channel_block reads.

    The window order is (kw, kd, kh, c), matching the row buffer of the dense
    kernel; channels past k/g are zero.
    """
    k, cg, KD, KH, KW = w.shape
    kg = k // groups
    width = outer_width(kg)
    if width:
        nblk = -(-kg // width)
        out = np.empty((groups, nblk, KW, KD, KH, cg, width), np.float32)
        _pack_channel_innermost(np.ascontiguousarray(w), groups, flip, out)
        return out.reshape(groups, nblk, KW * KD * KH * cg, width), True
    if flip:
        w = flip_spatial(w, 3)
    nblk = -(-kg // KB)
    wb = np.zeros((groups, nblk * KB, KW, KD, KH, cg), np.float32)
    wb[:, :kg] = w.reshape(groups, kg, cg, KD, KH, KW).transpose(0, 1, 5, 3, 4, 2)
    return wb.reshape(groups, nblk, KB, KW * KD * KH * cg), False
