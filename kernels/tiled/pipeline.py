"""The tiled bilinear 2-D convolution pipeline shared by Winograd and FFT convolution.

Any 1-D bilinear algorithm y = A^T [(G g) ⊙ (B^T d)] that computes m outputs of an
r-tap correlation from a tile of t = m + r - 1 inputs (B^T: alpha x t, G: alpha x r,
A^T: m x alpha) nests axis by axis into a 2-D one with alpha_h * alpha_w real
products per tile and channel pair. Winograd F(m, 3) (Cook-Toom matrices) and the
real FFT codelets (`kernels.fft.matrices`) are both such algorithms; each axis may
use its own (non-square kernels).

Pipeline (one call does all of it, the filter transform included):

1. pack: x[n, c, H, W] -> xp[n*dh*dw, g, Hs, Ws, c/g], channels-last and zero-padded
   so that every tile's t_h x t_w window lies inside. Channels-last input x[n, H, W, c]
   (layout "nhwc") packs as runs of channels with no transpose (`pack_subgrids_nhwc`),
   and its output is written through a transposed view of y[n, OH, OW, k]. A dilated
   conv is d^2 dense convolutions on the sub-grids (ry + dh*i, rx + dw*j); each sub-grid becomes one
   "virtual image", so all of them share one batched product stage.
2. input transform: V[g, f, t, c] = (B_h^T d B_w)[f] per tile t, vectorised over c.
3. products + output transform, fused per block of one or two panels of output
   channels (16 or 32 on AVX-512, 16 on AVX2 and NEON, 8 on SSE; `kernels.target`) x
   6 tiles: for each of the alpha_h*alpha_w frequencies f, an outer-product register
   block over c (`kernels.outer_block`), then Y = A_h^T M A_w for the 6 tiles,
   written straight to y (ragged edge tiles clipped). The filter transform
   U = G_h g G_w^T of the block's channels is computed chunk by chunk of input
   channels into an L2-sized buffer, and every tile block of the work item
   accumulates that chunk's products (`outer_add`) before the next chunk is
   transformed, so the transformed filter never travels through memory: for
   layers with many channels and few tiles (ResNet-50 res5 at N=1) it would be
   4x the raw weights and dominate the time. With many frequencies (FFT tiles:
   121 or 529) the products run a slab of frequencies over all tile blocks
   before the next slab, so the slab of U stays in L1/L2 while the blocks reuse it.

A plan (`kernels.plan`) is different: the weight-only work, `prepare_filter`, runs
once, and there it computes U for every block ahead (`transform=True`), in the
layout the product stage reads. Reading that U back was as fast as or faster than
recomputing it on ResNet-50's 3x3 layers (res5: 0.47 against 0.77 ms for
F(4x4,3x3) with U at 37 MiB, in-process minima on a busy 2-core machine), so
plans keep it up to PLANNED_FILTER_BYTES.

Work items are (group, block of output channels, chunk of tiles); a tile chunk
is sized so its V slice stays in L2 while all output channel blocks pass over it.

Winograd F(2x2,3x3) and F(4x4,3x3) keep their generated filter tiles
(`kernels.winograd.filter_tile`, `ftile` = 2 or 4); `_comb` has specialised
loops for the row lengths 3, 4 and 6 and a generic one that skips zeros.
The fft's matrices (`ftile` = FFT_FTILE) run their B^T, A^T and G as generated
real-FFT codelets (`kernels.fft.codelets`: O(log t) operations per point, every
intermediate in registers) where an axis has one, the rows above otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, new_output
from ..direct.dense import kchunks_for
from ..outer_block import LANES, PT, WIDE, outer_product
from ..target import l2_share

L2_BYTES = l2_share(512 << 10)  # V slice of one tile chunk (half the L2 of one core)
MIN_CHUNK_TILES = 24  # below this the per-chunk filter transform stops being negligible
PRE_FILTER_BYTES = 64 << 20  # largest transformed filter computed once per call
PLANNED_FILTER_BYTES = 256 << 20  # largest transformed filter a plan keeps
SLAB_BYTES = l2_share(192 << 10)  # U of one frequency slab (many-frequency algorithms; L2)
FILTER_CHUNK = 32  # input channels per filter-transform step (taps + tmp stay in L1)
FILTER_L2 = l2_share(320 << 10)  # transformed filter of one channel chunk (in L2 with V)
PLANE_PAD = 32  # floats (two cache lines) between the F planes of the transformed filter
U64 = np.uint64


def tiles_along(out: int, d: int, m: int) -> int:
    """Tiles of m outputs along one axis of the largest dilation sub-grid."""
    per_grid = -(-out // d)
    return -(-per_grid // m)


@njit(**JIT)
def subgrid_of(vb, dh, dw):
    """Virtual image vb = (b*dh + ry)*dw + rx -> (image b, sub-grid row ry, column rx)."""
    return vb // (dw * dh), (vb // dw) % dh, vb % dw


@njit(**PAR)
def pack_subgrids(x, xp, lo_h, lo_w, dh, dw):
    """xp[vb, g, i, j, cc] = x[b, g*cg + cc, ry + dh*i - lo_h, rx + dw*j - lo_w] (0 outside),
    vb = (b*dh + ry)*dw + rx."""
    n, c, H, W = x.shape
    VB, groups, Hs, Ws, cg = xp.shape
    for item in prange(VB * groups * Hs):
        i = item % Hs
        g = (item // Hs) % groups
        vb = item // (Hs * groups)
        b, ry, rx = subgrid_of(vb, dh, dw)
        dst = xp[vb, g, i]
        sy = ry + dh * i - lo_h
        if sy < 0 or sy >= H:
            dst[:] = 0
            continue
        for cc in range(cg):
            src = x[b, g * cg + cc, sy]
            for j in range(Ws):
                sx = rx + dw * j - lo_w
                if 0 <= sx < W:
                    dst[j, cc] = src[sx]
                else:
                    dst[j, cc] = 0


@njit(**PAR)
def pack_subgrids_nhwc(x, xp, lo_h, lo_w, dh, dw):
    """pack_subgrids from channels-last x[n, H, W, c]: a packed pixel's c/g channels are
    one run of x."""
    H, W = x.shape[1], x.shape[2]
    VB, groups, Hs, Ws, cg = xp.shape
    for item in prange(VB * groups * Hs):
        i = item % Hs
        g = (item // Hs) % groups
        vb = item // (Hs * groups)
        b, ry, rx = subgrid_of(vb, dh, dw)
        dst = xp[vb, g, i]
        sy = ry + dh * i - lo_h
        if sy < 0 or sy >= H:
            dst[:] = 0
            continue
        src = x[b, sy]
        for j in range(Ws):
            sx = rx + dw * j - lo_w
            if 0 <= sx < W:
                dst[j, :] = src[sx, g * cg:(g + 1) * cg]
            else:
                dst[j, :] = 0


@njit(**JIT)
def _comb3(dst, do, src, s0, st, c0, c1, c2, n):
    d = dst[do:do + n]
    x = src[s0:s0 + n]
    y = src[s0 + st:s0 + st + n]
    z = src[s0 + 2 * st:s0 + 2 * st + n]
    for t in range(n):
        d[t] = c0 * x[t] + c1 * y[t] + c2 * z[t]


@njit(**JIT)
def _comb4(dst, do, src, s0, st, c0, c1, c2, c3, n):
    d = dst[do:do + n]
    x0 = src[s0:s0 + n]
    x1 = src[s0 + st:s0 + st + n]
    x2 = src[s0 + 2 * st:s0 + 2 * st + n]
    x3 = src[s0 + 3 * st:s0 + 3 * st + n]
    for t in range(n):
        d[t] = c0 * x0[t] + c1 * x1[t] + c2 * x2[t] + c3 * x3[t]


@njit(**JIT)
def _comb6(dst, do, src, s0, st, c0, c1, c2, c3, c4, c5, n):
    d = dst[do:do + n]
    x0 = src[s0:s0 + n]
    x1 = src[s0 + st:s0 + st + n]
    x2 = src[s0 + 2 * st:s0 + 2 * st + n]
    x3 = src[s0 + 3 * st:s0 + 3 * st + n]
    x4 = src[s0 + 4 * st:s0 + 4 * st + n]
    x5 = src[s0 + 5 * st:s0 + 5 * st + n]
    for t in range(n):
        d[t] = (c0 * x0[t] + c1 * x1[t] + c2 * x2[t] + c3 * x3[t] + c4 * x4[t]
                + c5 * x5[t])


@njit(**JIT)
def _comb(dst, do, src, so, st, M, r, n):
    """dst[do + t] = sum_j M[r, j] * src[so + j*st + t] for t < n, in one pass.

    The common row lengths get their own loop over views made once per call, so
    every term is a register FMA and dst is stored once (zeros in M cost an FMA,
    cheaper than a branch). Indexing the flat arrays at offsets inside the loop
    instead ran 4x slower once inlined into the filter transform.
    """
    A = M.shape[1]
    if A == 6:
        _comb6(dst, do, src, so, st, M[r, 0], M[r, 1], M[r, 2], M[r, 3], M[r, 4], M[r, 5], n)
    elif A == 4:
        _comb4(dst, do, src, so, st, M[r, 0], M[r, 1], M[r, 2], M[r, 3], n)
    elif A == 3:
        _comb3(dst, do, src, so, st, M[r, 0], M[r, 1], M[r, 2], n)
    else:
        _comb_any(dst, do, src, so, st, M, r, n)


@njit(**JIT)
def _comb_any(dst, do, src, so, st, M, r, n):
    """_comb for any row length: the nonzero terms in groups of up to eight, one pass over
    dst per group (DFT rows have zeros where cos or sin vanishes), with a loop per count of
    terms: a padded zero term would still cost a load and an FMA, and a second pass a load
    and a store of dst."""
    A = M.shape[1]
    z = np.float32(0)
    j = 0
    first = True
    while True:
        cnt = 0
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = z
        o0 = o1 = o2 = o3 = o4 = o5 = o6 = o7 = so
        while j < A and cnt < 8:
            s = M[r, j]
            if s != 0:
                o = so + U64(j) * st
                if cnt == 0:
                    c0, o0 = s, o
                elif cnt == 1:
                    c1, o1 = s, o
                elif cnt == 2:
                    c2, o2 = s, o
                elif cnt == 3:
                    c3, o3 = s, o
                elif cnt == 4:
                    c4, o4 = s, o
                elif cnt == 5:
                    c5, o5 = s, o
                elif cnt == 6:
                    c6, o6 = s, o
                else:
                    c7, o7 = s, o
                cnt += 1
            j += 1
        if cnt == 0:
            break
        d = dst[do:do + n]
        x0 = src[o0:o0 + n]
        x1 = src[o1:o1 + n]
        x2 = src[o2:o2 + n]
        x3 = src[o3:o3 + n]
        x4 = src[o4:o4 + n]
        x5 = src[o5:o5 + n]
        x6 = src[o6:o6 + n]
        x7 = src[o7:o7 + n]
        if cnt == 8:
            if first:
                for t in range(n):
                    d[t] = (c0 * x0[t] + c1 * x1[t] + c2 * x2[t] + c3 * x3[t]
                            + c4 * x4[t] + c5 * x5[t] + c6 * x6[t] + c7 * x7[t])
            else:
                for t in range(n):
                    d[t] += (c0 * x0[t] + c1 * x1[t] + c2 * x2[t] + c3 * x3[t]
                             + c4 * x4[t] + c5 * x5[t] + c6 * x6[t] + c7 * x7[t])
        elif cnt == 7:
            if first:
                for t in range(n):
                    d[t] = (c0 * x0[t] + c1 * x1[t] + c2 * x2[t]
                            + c3 * x3[t] + c4 * x4[t] + c5 * x5[t] + c6 * x6[t])
            else:
                for t in range(n):
                    d[t] += (c0 * x0[t] + c1 * x1[t] + c2 * x2[t]
                             + c3 * x3[t] + c4 * x4[t] + c5 * x5[t] + c6 * x6[t])
        elif cnt == 6:
            if first:
                for t in range(n):
                    d[t] = (c0 * x0[t] + c1 * x1[t] + c2 * x2[t]
                            + c3 * x3[t] + c4 * x4[t] + c5 * x5[t])
            else:
                for t in range(n):
                    d[t] += (c0 * x0[t] + c1 * x1[t] + c2 * x2[t]
                             + c3 * x3[t] + c4 * x4[t] + c5 * x5[t])
        elif cnt == 5:
            if first:
                for t in range(n):
                    d[t] = c0 * x0[t] + c1 * x1[t] + c2 * x2[t] + c3 * x3[t] + c4 * x4[t]
            else:
                for t in range(n):
                    d[t] += c0 * x0[t] + c1 * x1[t] + c2 * x2[t] + c3 * x3[t] + c4 * x4[t]
        elif cnt == 4:
            if first:
                for t in range(n):
                    d[t] = c0 * x0[t] + c1 * x1[t] + c2 * x2[t] + c3 * x3[t]
            else:
                for t in range(n):
                    d[t] += c0 * x0[t] + c1 * x1[t] + c2 * x2[t] + c3 * x3[t]
        elif cnt == 3:
            if first:
                for t in range(n):
                    d[t] = c0 * x0[t] + c1 * x1[t] + c2 * x2[t]
            else:
                for t in range(n):
                    d[t] += c0 * x0[t] + c1 * x1[t] + c2 * x2[t]
        elif cnt == 2:
            if first:
                for t in range(n):
                    d[t] = c0 * x0[t] + c1 * x1[t]
            else:
                for t in range(n):
                    d[t] += c0 * x0[t] + c1 * x1[t]
        else:
            if first:
                for t in range(n):
                    d[t] = c0 * x0[t]
            else:
                for t in range(n):
                    d[t] += c0 * x0[t]
        first = False
    if first:
        dst[do:do + n] = 0


@njit(**JIT)
def _input_rows(xf, BTh, BTw, Vg, t1, t2, ty, tw, tbase, T, mh, mw, rowlen, cg, code_h=0,
                code_w=0):
    """V of one row of tiles: the vertical pass B_h^T d over whole padded rows into t1,
    then the horizontal pass per tile into Vg[(f*T + t)*cg + c], f = a*alpha_w + b.
    A nonzero code_h / code_w applies that axis's B^T by its fft codelet
    (`kernels.fft.codelets`) instead of row by row.

    With t2 (non-empty), the rows are first regrouped as t2[a, j, tx, c] = t1[a, tx*mw + j, c]
    so that each horizontal combination runs once over the whole row of tiles (tw*cg
    values) instead of once per tile: for the long rows of FFT matrices the per-call
    cost of a combination over cg values would dominate.
    """
    Ah = U64(BTh.shape[0])
    Aw = U64(BTw.shape[0])
    r0 = U64(ty) * U64(mh) * rowlen
    if code_h:
        apply_data_codelet(code_h, t1, 0, rowlen, xf, r0, rowlen, rowlen, Ah, 1, 0, 0)
    else:
        for a in range(Ah):
            _comb(t1, a * rowlen, xf, r0, rowlen, BTh, a, rowlen)
    if t2.size > 0:
        tW = U64(BTw.shape[1])
        run = U64(tw) * cg
        for a in range(Ah):
            for j in range(tW):
                for tx in range(U64(tw)):
                    so = a * rowlen + (tx * U64(mw) + j) * cg
                    do = (a * tW + j) * run + tx * cg
                    for c in range(cg):  # an index loop: no view objects per copy
                        t2[do + c] = t1[so + c]
        if code_w:  # every a in one call
            apply_data_codelet(code_w, Vg, U64(tbase) * cg, U64(T) * cg, t2, 0, run, run, Aw, Ah,
                               Aw * U64(T) * cg, tW * run)
            return
        for a in range(Ah):
            for b in range(Aw):
                _comb(Vg, ((a * Aw + b) * U64(T) + U64(tbase)) * cg, t2, a * tW * run, run,
                      BTw, b, run)
        return
    for tx in range(U64(tw)):
        x0 = tx * U64(mw) * cg
        t = U64(tbase) + tx
        for a in range(Ah):
            for b in range(Aw):
                _comb(Vg, ((a * Aw + b) * U64(T) + t) * cg, t1, a * rowlen + x0, cg, BTw, b, cg)


@njit(**PAR)
def input_transform(xp, BTh, BTw, V, mh, mw, th, tw, regroup=False, ftile=0):
    """V[g, (f*T + t)*cg + c] for every tile t = (vb*th + ty)*tw + tx (`ftile` as `prepare`'s;
    fft's B^T by codelets, which need the regrouped rows)."""
    VB, groups, Hs, Ws, cg = xp.shape
    Ah = BTh.shape[0]
    T = VB * th * tw
    fft = ftile == FFT_FTILE
    code_h = codelet_for(BTh, 0) if fft else 0
    code_w = codelet_for(BTw, 0) if fft else 0
    for item in prange(groups * VB * th):
        ty = item % th
        vb = (item // th) % VB
        g = item // (th * VB)
        xf = xp[vb, g].reshape(Hs * Ws * cg)
        t1 = np.empty(Ah * Ws * cg, np.float32)
        t2 = np.empty(Ah * BTw.shape[1] * tw * cg if regroup else 0, np.float32)
        _input_rows(xf, BTh, BTw, V[g], t1, t2, ty, tw, (vb * th + ty) * tw, T, mh, mw,
                    U64(Ws * cg), U64(cg), code_h, code_w)


@njit(**JIT)
def _filter_chunk(wg, Gh, Gw, ftile, k0, kg, cg, c0, cb, KBL, ubuf, ps, taps, tmp, offs):
    """ubuf[f*ps + c*KBL + q] = (G_h w[k0+q, c0+c] G_w^T)[f], zero for k0+q >= kg.

    The lanes q are the output channels of the block, the layout the
    outer-product microkernel loads as whole vectors. Channels go in steps of
    FILTER_CHUNK so taps and tmp stay in L1.
    """
    Ah = U64(Gh.shape[0])
    Aw = U64(Gw.shape[0])
    rh = U64(Gh.shape[1])
    rw = U64(Gw.shape[1])
    R = rh * rw
    ub = U64(KBL)
    fft = ftile == FFT_FTILE  # G by the fft's codelets where both axes have one
    code_h = codelet_for(Gh, 2) if fft else 0
    code_w = codelet_for(Gw, 2) if fft else 0
    for s0 in range(0, cb, FILTER_CHUNK):
        sb = min(FILTER_CHUNK, cb - s0)
        L = U64(sb) * ub
        # lane-major taps[(tap*sb + c)*KBL + q]: whole TN x TN blocks in registers,
        # the ragged rest (and missing output channels) one value at a time
        ne = R * sb
        for e in range(ne):
            offs[e] = ((e % R) * sb + e // R) * KBL
        for q0 in range(0, KBL, TN):
            full = k0 + q0 + TN <= kg
            e0 = 0
            if full:
                so = ((k0 + q0) * cg + c0 + s0) * R
                while e0 + TN <= ne:
                    transpose_block(wg, so + e0, cg * R, taps, q0, offs, e0)
                    e0 += TN
            for q in range(q0, q0 + TN):
                k = k0 + q
                src = (k * cg + c0 + s0) * R
                for e in range(e0, ne):
                    taps[offs[e] + q] = wg[src + e] if k < kg else 0
        if ftile == 4 or ftile == 2:
            for c in range(sb):
                for q0 in range(0, KBL, TN):
                    if ftile == 4:
                        _filter_tile_f4(taps, c * KBL + q0, sb * KBL, ubuf,
                                        (s0 + c) * KBL + q0, ps)
                    else:
                        _filter_tile_f2(taps, c * KBL + q0, sb * KBL, ubuf,
                                        (s0 + c) * KBL + q0, ps)
            continue
        if code_h and code_w:
            _filter_codelets(taps, ubuf, tmp, ps, s0, sb, KBL, Ah, Aw, rw, code_h, code_w)
            continue
        for a in range(Ah):
            # tmp[j*L + e] = sum_i G_h[a, i] taps[(i*rw + j)*L + e]: one pass over all j
            _comb(tmp, U64(0), taps, U64(0), rw * L, Gh, a, rw * L)
            for b in range(Aw):
                _comb(ubuf, (a * Aw + b) * U64(ps) + U64(s0) * ub, tmp, U64(0), L, Gw, b, L)


@njit(**JIT)
def _filter_codelets(taps, ubuf, tmp, ps, s0, sb, KBL, Ah, Aw, rw, code_h, code_w):
    """`_filter_chunk`'s G_h w G_w^T by fft codelets, one input channel (KBL lanes) at a time
    so that tmp (Ah*rw*KBL values) stays in L1: for c < sb,
    tmp[(a*rw + j)*KBL + q] = sum_i G_h[a, i] taps[((i*rw + j)*sb + c)*KBL + q],
    ubuf[(a*Aw + b)*ps + (s0 + c)*KBL + q] = sum_j G_w[b, j] tmp[(a*rw + j)*KBL + q]."""
    # one integer type (uint64 with int64 makes floats); tmp holds rw*FILTER_CHUNK*KBL >=
    # Ah*rw*KBL values (alpha <= 23)
    Ah, Aw, rw, ps, s0, sb, KBL = (np.int64(Ah), np.int64(Aw), np.int64(rw), np.int64(ps),
                                   np.int64(s0), np.int64(sb), np.int64(KBL))
    L = sb * KBL
    for c in range(sb):  # each pass in one call: every column j, then every row a
        apply_filter_codelet(code_h, tmp, 0, rw * KBL, taps, c * KBL, rw * L, KBL, Ah, rw, KBL,
                             L)
        apply_filter_codelet(code_w, ubuf, (s0 + c) * KBL, ps, tmp, 0, KBL, KBL, Aw, Ah,
                             Aw * ps, rw * KBL)


@njit(**JIT)
def _output_at(mbuf, mo, ATh, ATw, o1, out, NB, long_rows=False):
    """out[(i*mw + j)*NB + l] = (A_h^T M_l A_w)[i, j], M_l[f] = mbuf[mo + f*NB + l].

    `long_rows`: the vertical pass as one combination per output row over all alpha_w
    columns (alpha_w*NB values, the same sums) instead of one per column, for algorithms
    with long matrix rows where the per-call cost would dominate.
    """
    mh = U64(ATh.shape[0])
    mw = U64(ATw.shape[0])
    Aw = U64(ATw.shape[1])
    nb = U64(NB)
    for i in range(mh):
        if long_rows:
            _comb(o1, i * Aw * nb, mbuf, U64(mo), Aw * nb, ATh, i, Aw * nb)
            continue
        for col in range(Aw):
            _comb(o1, (i * Aw + col) * nb, mbuf, U64(mo) + col * nb, Aw * nb, ATh, i, nb)
    for i in range(mh):
        for j in range(mw):
            _comb(out, (i * mw + j) * nb, o1, i * Aw * nb, nb, ATw, j, nb)


@njit(**JIT)
def _output_codelets(mbuf, mo, ATh, ATw, o1, out, NB, code_h, code_w):
    """`_output_at` with long rows, each axis's A^T by its fft codelet where its code is
    nonzero (`kernels.fft.codelets`; rows clipped to the m outputs)."""
    if code_h == 0 or code_w == 0:
        _output_at(mbuf, mo, ATh, ATw, o1, out, NB, True)
        return
    mh = U64(ATh.shape[0])
    mw = U64(ATw.shape[0])
    Aw = U64(ATw.shape[1])
    nb = U64(NB)
    apply_data_codelet(code_h, o1, 0, Aw * nb, mbuf, U64(mo), Aw * nb, Aw * nb, mh, 1, 0, 0)
    apply_data_codelet(code_w, out, 0, nb, o1, 0, nb, nb, mw, mh, mw * nb, Aw * nb)


@njit(**JIT)
def _output_block(mbuf, ATh, ATw, o1, out, NB):
    """out[(i*mw + j)*NB + l] = (A_h^T M_l A_w)[i, j] for the NB (tile, channel) pairs l."""
    _output_at(mbuf, 0, ATh, ATw, o1, out, NB)


@njit(**JIT)
def _product_block(Vg, ubuf, ps, macc, mo, t0, T, cg, c0, cb, f0, f1, kv, add):
    """macc[mo + (f*PT + p)*KBL + q] (+)= sum over the cb channels from c0 of
    ubuf[f*ps + c*KBL + q] * V[f, tile t0 + p, c0 + c], for the frequencies f0 <= f < f1."""
    a0 = min(t0, T - 1) * cg + c0
    a1 = min(t0 + 1, T - 1) * cg + c0
    a2 = min(t0 + 2, T - 1) * cg + c0
    a3 = min(t0 + 3, T - 1) * cg + c0
    a4 = min(t0 + 4, T - 1) * cg + c0
    a5 = min(t0 + 5, T - 1) * cg + c0
    KBL = LANES * kv
    for f in range(f0, f1):
        fo = f * T * cg
        uo = f * ps
        oo = mo + f * PT * KBL
        outer_product(kv == 2, add, ubuf, uo, Vg, fo + a0, fo + a1, fo + a2, fo + a3, fo + a4,
                      fo + a5, cb, macc, oo)


@njit(**JIT)
def tile_position(t, th, tw, geo):
    """Where tile t = (vb*th + ty)*tw + tx lies: (b, ry, rx, ty, tx, ohs, ows).

    Virtual image vb = (b*dh + ry)*dw + rx is the dilation sub-grid (ry, rx) of
    image b, which has ohs x ows outputs; geo = (OH, OW, dh, dw).
    """
    OH, OW, dh, dw = geo[0], geo[1], geo[2], geo[3]
    tx = t % tw
    ty = (t // tw) % th
    b, ry, rx = subgrid_of(t // (tw * th), dh, dw)
    ohs = (OH - ry + dh - 1) // dh
    ows = (OW - rx + dw - 1) // dw
    return b, ry, rx, ty, tx, ohs, ows


@njit(**JIT)
def _scatter(out, y, km, k0, kg, KBL, t0, te, mh, mw, th, tw, geo):
    """Write the mh x mw outputs of the block's tiles into y (clipping ragged tiles).

    A fifth entry of geo, nz, says that nz consecutive images are the slices of one
    output image, channel-major: image b's channel k goes to y[b // nz, k*nz + b % nz]
    (conv3d's depth slices straight into y[n, k * depth, OH, OW]; `kernels.winograd.conv3d`)."""
    dh, dw = geo[2], geo[3]
    nz = geo[4] if geo.shape[0] > 4 else 1
    NB = KBL * PT
    for p in range(PT):
        t = t0 + p
        if t >= te:
            break
        b, ry, rx, ty, tx, ohs, ows = tile_position(t, th, tw, geo)
        for q in range(KBL):
            k = k0 + q
            if k >= kg:
                break
            yk = y[b // nz, km[k] * nz + b % nz]
            for i in range(mh):
                u = ty * mh + i
                if u >= ohs:
                    break
                yrow = yk[ry + dh * u]
                for j in range(mw):
                    v = tx * mw + j
                    if v >= ows:
                        break
                    yrow[rx + dw * v] = out[(i * mw + j) * NB + p * KBL + q]


@njit(**PAR)
def filter_transform_all(wf, Gh, Gw, ftile, Upre, kg, cc, kv):
    """Upre[(g*nkb + kb)*ncc + ci] = the ubuf `_filter_chunk` makes for group g, block kb of
    output channels and chunk ci of cc input channels (once per call, for all tile chunks)."""
    groups = wf.shape[0]
    rh, rw = Gh.shape[1], Gw.shape[1]
    cg = wf.shape[1] // (kg * rh * rw)
    KBL = LANES * kv
    nkb = (kg + KBL - 1) // KBL
    ncc = (cg + cc - 1) // cc
    ps = cc * KBL + PLANE_PAD
    for item in prange(groups * nkb * ncc):
        ci = item % ncc
        kb = (item // ncc) % nkb
        g = item // (ncc * nkb)
        taps = np.empty(rh * rw * FILTER_CHUNK * KBL, np.float32)
        tmp = np.empty(rw * FILTER_CHUNK * KBL, np.float32)
        offs = np.empty(rh * rw * FILTER_CHUNK, np.int64)
        c0 = ci * cc
        _filter_chunk(wf[g], Gh, Gw, ftile, kb * KBL, kg, cg, c0, min(cc, cg - c0), KBL,
                      Upre[item], ps, taps, tmp, offs)


@njit(**PAR)
def products_and_output(V, wf, Gh, Gw, ATh, ATw, ftile, y, kmap, th, tw, chunk, kchunks, kv,
                        cc, fslab, geo, Upre, stages=15):
    """y = A_h^T [ (G_h w G_w^T) ⊙ V ] A_w for every (output channel, tile); see module doc.

    `stages` is a bit mask (1 filter transform, 2 products, 4 output transform,
    8 scatter into y) so a benchmark can time each stage alone; kernels run all.
    A non-empty `Upre` holds the transformed filter of every chunk already
    (`filter_transform_all`), used where several tile chunks would each redo it.
    """
    groups = V.shape[0]
    Ah, rh = Gh.shape
    Aw, rw = Gw.shape
    mh = ATh.shape[0]
    mw = ATw.shape[0]
    F = Ah * Aw
    K = kmap.shape[0]  # y.shape[1] but with slices (see _scatter)
    kg = K // groups
    cg = wf.shape[1] // (kg * rh * rw)
    T = V.shape[1] // (F * cg)
    KBL = LANES * kv
    NB = KBL * PT
    nkb = (kg + KBL - 1) // KBL
    code_h = codelet_for(ATh, 1) if ftile == FFT_FTILE else 0
    code_w = codelet_for(ATw, 1) if ftile == FFT_FTILE else 0
    per_chunk = (nkb + kchunks - 1) // kchunks
    ntc = (T + chunk - 1) // chunk
    for item in prange(groups * kchunks * ntc):
        tc = item % ntc
        kc = (item // ntc) % kchunks
        g = item // (ntc * kchunks)
        Vg = V[g]
        wg = wf[g]
        km = kmap[g * kg:(g + 1) * kg]
        ts = tc * chunk
        te = min(T, ts + chunk)
        nblk = (te - ts + PT - 1) // PT
        # stage timing runs the products without the filter transform
        # planes padded by two cache lines: the filter transform stores one vector
        # to each of the F planes in turn, and at a power-of-two stride they would
        # all fall into the same L1 set
        ps = cc * KBL + PLANE_PAD
        pre = Upre.shape[0] > 0
        size = 0 if pre else F * ps
        ubuf = np.empty(size, np.float32) if stages & 1 else np.zeros(size, np.float32)
        taps = np.empty(rh * rw * FILTER_CHUNK * KBL, np.float32)
        tmp = np.empty(rw * FILTER_CHUNK * KBL, np.float32)
        offs = np.empty(rh * rw * FILTER_CHUNK, np.int64)
        macc = np.zeros(nblk * F * NB, np.float32)
        o1 = np.empty(mh * Aw * NB, np.float32)
        out = np.empty(mh * mw * NB, np.float32)
        for kb in range(kc * per_chunk, min(nkb, (kc + 1) * per_chunk)):
            # The reduction over c runs in chunks of cc channels, each chunk's
            # transformed filter used by every tile block while it is in L2.
            for c0 in range(0, cg, cc):
                cb = min(cc, cg - c0)
                if pre:
                    ubuf = Upre[(g * nkb + kb) * ((cg + cc - 1) // cc) + c0 // cc]
                elif stages & 1:
                    _filter_chunk(wg, Gh, Gw, ftile, kb * KBL, kg, cg, c0, cb, KBL, ubuf, ps,
                                  taps, tmp, offs)
                if stages & 2:
                    for f0 in range(0, F, fslab):
                        f1 = min(F, f0 + fslab)
                        for bi in range(nblk):
                            _product_block(Vg, ubuf, ps, macc, bi * F * NB, ts + bi * PT, T, cg,
                                           c0, cb, f0, f1, kv, c0 > 0)
            for bi in range(nblk):
                if stages & 4 and ftile == FFT_FTILE:
                    _output_codelets(macc, bi * F * NB, ATh, ATw, o1, out, NB, code_h, code_w)
                elif stages & 4:
                    _output_at(macc, bi * F * NB, ATh, ATw, o1, out, NB, ftile == 0)
                if stages & 8:
                    _scatter(out, y, km, kb * KBL, kg, KBL, ts + bi * PT, te, mh, mw, th, tw,
                             geo)


@dataclass(frozen=True)
class TiledFilter:
    """The weight-only part of a tiled call: the filter and the layout of its transform.

    `U` holds the transformed filter of every (group, output channel block,
    input channel chunk), as `filter_transform_all` writes it, when it was
    computed ahead (a plan: `transformed=True`); empty otherwise, and each call
    transforms the filter itself (fused chunk by chunk into the product stage,
    or once per call: see `call_buffers`). The products are the same either way.
    """
    wf: np.ndarray     # w[k, c/g, rh, rw] oriented, as [groups, k/g * c/g * rh * rw]
    kmap: np.ndarray   # output channel of each grouped channel (int64)
    axes: tuple        # ((A_h^T, G_h, B_h^T), (A_w^T, G_w, B_w^T))
    ftile: int         # m of Winograd F(m, 3)'s generated filter tile, 0: generic
    kv: int            # register panels per output channel block
    cc: int            # input channels per filter transform chunk
    fslab: int         # frequencies per product slab
    U: np.ndarray      # [blocks, F * ps] precomputed, or [0, F * ps]

    @property
    def transformed(self) -> bool:
        return self.U.shape[0] > 0


def _check_axes(axes, w_shape) -> None:
    for name, (AT, G, BT) in zip(("height", "width"), axes):
        if not (AT.shape[1] == G.shape[0] == BT.shape[0]
                and BT.shape[1] == AT.shape[0] + G.shape[1] - 1):
            raise ValueError(f"axes: {name} matrices must be A^T m x alpha, G alpha x r, "
                             f"B^T alpha x (m+r-1) (got {AT.shape}, {G.shape}, {BT.shape})")
    (_, Gh, _), (_, Gw, _) = axes
    if w_shape[2:] != (Gh.shape[1], Gw.shape[1]):
        raise ValueError(f"w: kernel {w_shape[2:]} does not match the axes' r "
                         f"({Gh.shape[1]}, {Gw.shape[1]})")


def filter_blocks(filt: TiledFilter, kg: int, cg: int) -> tuple[int, int]:
    """(chunks of the transformed filter, floats per chunk) in `filter_transform_all`'s layout."""
    (_, Gh, _), (_, Gw, _) = filt.axes
    groups = filt.wf.shape[0]
    nkb = -(-kg // (LANES * filt.kv))
    ps = filt.cc * LANES * filt.kv + PLANE_PAD
    return groups * nkb * -(-cg // filt.cc), Gh.shape[0] * Gw.shape[0] * ps


def prepare_filter(w, axes, groups, kmap=None, ftile=0, transform=False) -> TiledFilter:
    """The weight-only part of `bilinear2d` for an oriented w[k, c/g, rh, rw]; with
    `transform`, the transformed filter too (what a plan keeps: reading it back measured
    as fast as or faster than recomputing it on ResNet-50's 3x3 layers, res5 35%)."""
    _check_axes(axes, w.shape)
    k, cg = w.shape[:2]
    kg = k // groups
    (_, Gh, _), (_, Gw, _) = axes
    F = Gh.shape[0] * Gw.shape[0]
    kv = 2 if WIDE and kg > LANES else 1  # two panels only where they fit the registers
    cc = FILTER_L2 // (F * LANES * kv * 4) // FILTER_CHUNK * FILTER_CHUNK
    cc = min(cg, max(FILTER_CHUNK, cc))
    # frequencies per product slab: all of them when U of a channel chunk fits L2 anyway
    # (Winograd), else a slab whose U stays in L2 while every tile block passes over it
    u_bytes = cc * LANES * kv * 4
    fslab = F if F * u_bytes <= FILTER_L2 else max(1, SLAB_BYTES // u_bytes)
    filt = TiledFilter(np.ascontiguousarray(w, dtype=np.float32).reshape(groups, -1),
                       (np.arange(k) if kmap is None else kmap).astype(np.int64), axes, ftile,
                       kv, cc, fslab, np.empty((0, 1), np.float32))
    nblocks, size = filter_blocks(filt, kg, cg)
    if not transform or nblocks * size * 4 > PLANNED_FILTER_BYTES:
        return filt
    U = np.empty((nblocks, size), np.float32)
    filter_transform_all(filt.wf, Gh, Gw, ftile, U, kg, cc, kv)
    return replace(filt, U=U)


def call_buffers(x, filt: TiledFilter, out_size, lo, dilation,
                 channels_last: bool = False) -> dict:
    """Everything one call of `bilinear2d` needs besides `filt`: the buffers, the tiling,
    and the per-call transformed filter where the filter is not transformed ahead and
    several tile chunks would each redo it (the generic transform only). As one dict of
    the stages' arguments (the stage benchmarks time each part alone). `channels_last`:
    x is x[n, H, W, c] and the result y[n, OH, OW, k] ("out"; "y" is its transposed
    view, which the product stage writes)."""
    if channels_last:
        n, H, W, c = x.shape
    else:
        n, c, H, W = x.shape
    groups = filt.wf.shape[0]
    (ATh, Gh, BTh), (ATw, Gw, BTw) = filt.axes
    k = filt.kmap.shape[0]
    OH, OW = out_size
    dh, dw = dilation
    mh, mw = ATh.shape[0], ATw.shape[0]
    F = Gh.shape[0] * Gw.shape[0]
    cg, kg = c // groups, k // groups
    th, tw = tiles_along(OH, dh, mh), tiles_along(OW, dw, mw)
    T = n * dh * dw * th * tw
    chunk = max(MIN_CHUNK_TILES, L2_BYTES // (F * cg * 4))
    chunk = min(-(-chunk // PT) * PT, -(-T // PT) * PT)
    ntc = -(-T // chunk)
    nkb = -(-kg // (LANES * filt.kv))
    kchunks = kchunks_for(groups * ntc, nkb)
    # the generic filter transform (every algorithm but Winograd's generated tiles) runs
    # once per call when several tile chunks would each redo it and the result is small
    nblocks, size = filter_blocks(filt, kg, cg)
    fill = (not filt.transformed and filt.ftile <= 0 and ntc > 1
            and nblocks * size * 4 <= PRE_FILTER_BYTES)
    Upre = filt.U if filt.transformed else np.empty((nblocks if fill else 0, size), np.float32)
    extra = {}
    if channels_last:
        out = new_output((n, OH, OW, k))
        y = out.transpose(0, 3, 1, 2)
        extra = dict(out=out, channels_last=True)
    else:
        y = new_output((n, k, OH, OW))
    return dict(
        xp=np.empty((n * dh * dw, groups, th * mh + BTh.shape[1] - mh,
                     tw * mw + BTw.shape[1] - mw, cg), np.float32),
        V=np.empty((groups, F * T * cg), np.float32),
        wf=filt.wf, y=y, kmap=filt.kmap, ATh=ATh, Gh=Gh, BTh=BTh,
        ATw=ATw, Gw=Gw, BTw=BTw, ftile=filt.ftile, mh=mh, mw=mw, th=th, tw=tw, lo=lo, dh=dh,
        dw=dw, chunk=chunk, kchunks=kchunks, kv=filt.kv, cc=filt.cc, fslab=filt.fslab,
        geo=np.array([OH, OW, dh, dw], np.int64), Upre=Upre, fill_upre=fill, **extra)


def prepare(x, w, axes, groups, out_size, lo, dilation, kmap=None, ftile=0):
    """Everything `bilinear2d` computes before the fused stage, as a dict of its arguments
    (the stage benchmarks time each part alone). `axes` = ((A_h^T, G_h, B_h^T),
    (A_w^T, G_w, B_w^T)), float32 C-contiguous; `ftile` = m for Winograd F(m, 3)'s
    generated filter tile (0: the generic filter transform), `FFT_FTILE` for the fft's
    matrices (their B^T, A^T and G by generated codelets)."""
    return call_buffers(x, prepare_filter(w, axes, groups, kmap, ftile), out_size, lo,
                        dilation)


def run_prepared(x, p: dict, stages: int = 15) -> np.ndarray:
    if stages & 16:
        pack = pack_subgrids_nhwc if p.get("channels_last") else pack_subgrids
        pack(x, p["xp"], p["lo"][0], p["lo"][1], p["dh"], p["dw"])
    if stages & 32:
        input_transform(p["xp"], p["BTh"], p["BTw"], p["V"], p["mh"], p["mw"], p["th"],
                        p["tw"], p["ftile"] <= 0, p["ftile"])
    if stages & 1 and p["fill_upre"]:
        filter_transform_all(p["wf"], p["Gh"], p["Gw"], p["ftile"], p["Upre"],
                             p["kmap"].shape[0] // p["wf"].shape[0], p["cc"], p["kv"])
    if stages & 15:
        products_and_output(p["V"], p["wf"], p["Gh"], p["Gw"], p["ATh"], p["ATw"], p["ftile"],
                            p["y"], p["kmap"], p["th"], p["tw"], p["chunk"], p["kchunks"],
                            p["kv"], p["cc"], p["fslab"], p["geo"], p["Upre"], stages & 15)
    return p.get("out", p["y"])


def bilinear2d_prepared(x: np.ndarray, filt: TiledFilter, out_size, lo,
                        dilation, channels_last: bool = False) -> np.ndarray:
    """`bilinear2d` with its filter prepared by `prepare_filter`; `channels_last`: x and
    the result in layout "nhwc"."""
    return run_prepared(x, call_buffers(x, filt, out_size, lo, dilation, channels_last), 63)


def bilinear2d(x: np.ndarray, w: np.ndarray, axes, groups: int, out_size, lo, dilation,
               kmap: np.ndarray | None = None, ftile: int = 0) -> np.ndarray:
    """y[n, kmap[k], oy, ox] = sum w[k, c, a, b] * x[n, c, oy + dh*a - lo_h, ox + dw*b - lo_w]
    by the bilinear algorithm `axes` (see `prepare`).

    `w[k, c/g, rh, rw]` is already oriented (flipped if the caller wants true
    convolution); `lo` the zero padding before each spatial axis (may be
    negative: a crop); the padding after is implied by `out_size`.
    """
    return bilinear2d_prepared(x, prepare_filter(w, axes, groups, kmap, ftile), out_size, lo,
                               dilation)


# Imported last: kernels.winograd imports this module, and Numba resolves these globals only
# when it compiles, so the cycle closes on a module that is already complete.
from ..fft.codelets import FTILE as FFT_FTILE  # noqa: E402
from ..fft.codelets import apply_data_codelet, apply_filter_codelet, codelet_for  # noqa: E402,E501
from ..winograd.filter_tile import make_filter_tile  # noqa: E402
from ..winograd.matrices import float_matrices  # noqa: E402
from ..winograd.transpose import N as TN  # noqa: E402
from ..winograd.transpose import transpose_block  # noqa: E402

assert LANES % TN == 0, "a block of output channels is whole transform vectors"
# Winograd's G baked in as constants: `ftile` = m selects one (only with float_matrices(m)'s G
# on both axes, which kernels.winograd.conv2d guarantees)
_filter_tile_f2 = make_filter_tile(float_matrices(2)[1])
_filter_tile_f4 = make_filter_tile(float_matrices(4)[1])
