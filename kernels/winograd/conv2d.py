"""2-D Winograd F(m x m, 3 x 3) for any grouped 3x3 stride-1 convolution, dilation included.

Pipeline (one call does all of it, the filter transform included):

1. pack: x[n, c, H, W] -> xp[n*dh*dw, g, Hs, Ws, c/g], channels-last and zero-padded
   so that every tile's (m+2)^2 window lies inside. A dilated conv is d^2 dense
   convolutions on the sub-grids (ry + dh*i, rx + dw*j); each sub-grid becomes one
   "virtual image", so all of them share one batched product stage.
2. input transform: V[g, f, t, c] = (B^T d B)[f] per tile t, vectorised over c.
3. products + output transform, fused per block of 16 or 32 output channels x
   6 tiles: for each of the (m+2)^2 frequencies f, an outer-product register
   block over c (`kernels.outer_block`), then Y = A^T M A for the 6 tiles,
   written straight to y (ragged edge tiles clipped). The filter transform
   U = G g G^T of the block's channels is computed into a small buffer just
   before its tiles, so the transformed filter never travels through memory:
   for layers with many channels and few tiles (ResNet-50 res5 at N=1) it
   would be 4x the raw weights and dominate the time.

Work items are (group, block of output channels, chunk of tiles); a tile chunk
is sized so its V slice stays in L2 while all output channel blocks pass over it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, new_output
from ..direct.dense import kchunks_for
from ..outer_block import LANES, PT, outer_block_1, outer_block_2
from .matrices import float_matrices

L2_BYTES = 512 * 1024  # V slice of one tile chunk (half the L2 of one core)
MIN_CHUNK_TILES = 24  # below this the per-chunk filter transform stops being negligible
FILTER_CHUNK = 32  # input channels per filter-transform step (taps + tmp stay in L1)


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


@njit(**JIT)
def _axpy(dst, src, s, n):
    d = dst[:n]
    v = src[:n]
    for t in range(n):
        d[t] += s * v[t]


@njit(**JIT)
def _scale(dst, src, s, n):
    d = dst[:n]
    v = src[:n]
    for t in range(n):
        d[t] = s * v[t]


@njit(**JIT)
def _comb3(dst, a, x, b, y, c, z, n):
    """dst = a*x + b*y + c*z in one pass (one store instead of zeroing plus three updates)."""
    d = dst[:n]
    u = x[:n]
    v = y[:n]
    w = z[:n]
    for t in range(n):
        d[t] = a * u[t] + b * v[t] + c * w[t]


@njit(**JIT)
def _input_tiles(xg, BT, Vg, t1, m, ty, tw, tbase, T, cg):
    """V rows of one row of tiles: Vg[(f*T + t)*cg + c] for t = tbase..tbase+tw-1."""
    A = BT.shape[0]
    for tx in range(tw):
        t = tbase + tx
        y0 = ty * m
        x0 = tx * m
        for a in range(A):
            for j in range(A):
                dst = t1[(a * A + j) * cg:(a * A + j + 1) * cg]
                first = True
                for i in range(A):
                    s = BT[a, i]
                    if s != 0:
                        row = xg[y0 + i]
                        if first:
                            _scale(dst, row[(x0 + j) * cg:(x0 + j + 1) * cg], s, cg)
                            first = False
                        else:
                            _axpy(dst, row[(x0 + j) * cg:(x0 + j + 1) * cg], s, cg)
        for a in range(A):
            for b in range(A):
                o = ((a * A + b) * T + t) * cg
                dst = Vg[o:o + cg]
                first = True
                for j in range(A):
                    s = BT[b, j]
                    if s != 0:
                        if first:
                            _scale(dst, t1[(a * A + j) * cg:(a * A + j + 1) * cg], s, cg)
                            first = False
                        else:
                            _axpy(dst, t1[(a * A + j) * cg:(a * A + j + 1) * cg], s, cg)


@njit(**PAR)
def input_transform(xp, BT, V, m, th, tw):
    """V[g, (f*T + t)*cg + c] for every tile t = (vb*th + ty)*tw + tx."""
    VB, groups, Hs, Ws, cg = xp.shape
    A = BT.shape[0]
    T = VB * th * tw
    for item in prange(groups * VB * th):
        ty = item % th
        vb = (item // th) % VB
        g = item // (th * VB)
        xg = xp[vb, g].reshape(Hs, Ws * cg)
        t1 = np.empty(A * A * cg, np.float32)
        _input_tiles(xg, BT, V[g], t1, m, ty, tw, (vb * th + ty) * tw, T, cg)


@njit(**JIT)
def _filter_block(wg, G, k0, kg, cg, KBL, ubuf, taps, tmp):
    """ubuf[(f*cg + c)*KBL + q] = (G w[k0+q, c] G^T)[f], zero for k0+q >= kg.

    The lanes q are the output channels of the block, the layout the
    outer-product microkernel loads as whole vectors. Channels go in chunks of
    FILTER_CHUNK so the intermediate buffers stay in L1.
    """
    A = G.shape[0]
    for c0 in range(0, cg, FILTER_CHUNK):
        cb = min(FILTER_CHUNK, cg - c0)
        L = cb * KBL
        # transpose the block's taps to lane-major once: taps[(tap*cb + c)*KBL + q]
        for q in range(KBL):
            k = k0 + q
            if k >= kg:
                for r in range(9 * cb):
                    taps[r * KBL + q] = 0
                continue
            wk = wg[(k * cg + c0) * 9:(k * cg + c0 + cb) * 9]
            for c in range(cb):
                src = wk[c * 9:c * 9 + 9]
                for tap in range(9):
                    taps[(tap * cb + c) * KBL + q] = src[tap]
        for a in range(A):
            for j in range(3):
                _comb3(tmp[j * L:(j + 1) * L], G[a, 0], taps[j * L:(j + 1) * L],
                       G[a, 1], taps[(3 + j) * L:(4 + j) * L], G[a, 2],
                       taps[(6 + j) * L:(7 + j) * L], L)
            for b in range(A):
                o = ((a * A + b) * cg + c0) * KBL
                _comb3(ubuf[o:o + L], G[b, 0], tmp[:L], G[b, 1], tmp[L:2 * L], G[b, 2],
                       tmp[2 * L:3 * L], L)


@njit(**JIT)
def _output_block(mbuf, AT, o1, out, NB):
    """out[(i*m + j)*NB + l] = (A^T M_l A)[i, j] for the NB (tile, channel) pairs l of a block."""
    m, A = AT.shape
    for i in range(m):
        for col in range(A):
            d = o1[(i * A + col) * NB:(i * A + col + 1) * NB]
            first = True
            for r in range(A):
                s = AT[i, r]
                if s != 0:
                    if first:
                        _scale(d, mbuf[(r * A + col) * NB:(r * A + col + 1) * NB], s, NB)
                        first = False
                    else:
                        _axpy(d, mbuf[(r * A + col) * NB:(r * A + col + 1) * NB], s, NB)
    for i in range(m):
        for j in range(m):
            d = out[(i * m + j) * NB:(i * m + j + 1) * NB]
            first = True
            for col in range(A):
                s = AT[j, col]
                if s != 0:
                    if first:
                        _scale(d, o1[(i * A + col) * NB:(i * A + col + 1) * NB], s, NB)
                        first = False
                    else:
                        _axpy(d, o1[(i * A + col) * NB:(i * A + col + 1) * NB], s, NB)


@njit(**JIT)
def _product_block(Vg, ubuf, mbuf, t0, T, cg, F, kv):
    a0 = min(t0, T - 1) * cg
    a1 = min(t0 + 1, T - 1) * cg
    a2 = min(t0 + 2, T - 1) * cg
    a3 = min(t0 + 3, T - 1) * cg
    a4 = min(t0 + 4, T - 1) * cg
    a5 = min(t0 + 5, T - 1) * cg
    KBL = LANES * kv
    for f in range(F):
        fo = f * T * cg
        if kv == 2:
            outer_block_2(ubuf, f * cg * KBL, Vg, fo + a0, fo + a1, fo + a2, fo + a3, fo + a4,
                          fo + a5, cg, mbuf, f * PT * KBL)
        else:
            outer_block_1(ubuf, f * cg * KBL, Vg, fo + a0, fo + a1, fo + a2, fo + a3, fo + a4,
                          fo + a5, cg, mbuf, f * PT * KBL)


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
def _scatter(out, y, km, k0, kg, KBL, t0, te, m, th, tw, geo):
    """Write the m x m outputs of the block's tiles into y (clipping ragged tiles)."""
    dh, dw = geo[2], geo[3]
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
            yk = y[b, km[k]]
            for i in range(m):
                u = ty * m + i
                if u >= ohs:
                    break
                yrow = yk[ry + dh * u]
                for j in range(m):
                    v = tx * m + j
                    if v >= ows:
                        break
                    yrow[rx + dw * v] = out[(i * m + j) * NB + p * KBL + q]


@njit(**PAR)
def products_and_output(V, wf, G, AT, y, kmap, th, tw, chunk, kchunks, kv, geo, stages=15):
    """y = A^T [ (G w G^T) ⊙ V ] A for every (output channel, tile); see module doc.

    `stages` is a bit mask (1 filter transform, 2 products, 4 output transform,
    8 scatter into y) so a benchmark can time each stage alone; kernels run all.
    """
    groups = V.shape[0]
    A = G.shape[0]
    m = AT.shape[0]
    F = A * A
    kg = y.shape[1] // groups
    cg = wf.shape[1] // (kg * 9)
    T = V.shape[1] // (F * cg)
    KBL = LANES * kv
    NB = KBL * PT
    nkb = (kg + KBL - 1) // KBL
    per_chunk = (nkb + kchunks - 1) // kchunks
    ntc = (T + chunk - 1) // chunk
    for item in prange(groups * kchunks * ntc):
        tc = item % ntc
        kc = (item // ntc) % kchunks
        g = item // (ntc * kchunks)
        Vg = V[g]
        wg = wf[g]
        km = kmap[g * kg:(g + 1) * kg]
        ubuf = np.empty(F * cg * KBL, np.float32)
        taps = np.empty(9 * FILTER_CHUNK * KBL, np.float32)
        tmp = np.empty(3 * FILTER_CHUNK * KBL, np.float32)
        mbuf = np.empty(F * NB, np.float32)
        o1 = np.empty(m * A * NB, np.float32)
        out = np.empty(m * m * NB, np.float32)
        ts = tc * chunk
        te = min(T, ts + chunk)
        for kb in range(kc * per_chunk, min(nkb, (kc + 1) * per_chunk)):
            if stages & 1:
                _filter_block(wg, G, kb * KBL, kg, cg, KBL, ubuf, taps, tmp)
            for t0 in range(ts, te, PT):
                if stages & 2:
                    _product_block(Vg, ubuf, mbuf, t0, T, cg, F, kv)
                if stages & 4:
                    _output_block(mbuf, AT, o1, out, NB)
                if stages & 8:
                    _scatter(out, y, km, kb * KBL, kg, KBL, t0, te, m, th, tw, geo)


def prepare2d(x, w, m, groups, out_size, lo, dilation, kmap=None):
    """Everything `winograd2d` computes before the fused stage, as a dict of its arguments
    (the stage benchmark times each part alone)."""
    n, c, H, W = x.shape
    k = w.shape[0]
    OH, OW = out_size
    dh, dw = dilation
    AT, G, BT = float_matrices(m)
    A = m + 2
    cg, kg = c // groups, k // groups
    th, tw = tiles_along(OH, dh, m), tiles_along(OW, dw, m)
    T = n * dh * dw * th * tw
    chunk = max(MIN_CHUNK_TILES, L2_BYTES // (A * A * cg * 4))
    chunk = min(-(-chunk // PT) * PT, -(-T // PT) * PT)
    ntc = -(-T // chunk)
    kv = 1 if kg <= LANES else 2
    nkb = -(-kg // (LANES * kv))
    kchunks = kchunks_for(groups * ntc, nkb)
    return dict(
        xp=np.empty((n * dh * dw, groups, th * m + 2, tw * m + 2, cg), np.float32),
        V=np.empty((groups, A * A * T * cg), np.float32),
        wf=np.ascontiguousarray(w, dtype=np.float32).reshape(groups, kg * cg * 9),
        y=new_output((n, k, OH, OW)), kmap=(np.arange(k) if kmap is None else kmap).astype(
            np.int64), AT=AT, G=G, BT=BT, m=m, th=th, tw=tw, lo=lo, dh=dh, dw=dw, chunk=chunk,
        kchunks=kchunks, kv=kv, geo=np.array([OH, OW, dh, dw], np.int64))


def run_prepared(x, p: dict, stages: int = 15) -> np.ndarray:
    if stages & 16:
        pack_subgrids(x, p["xp"], p["lo"][0], p["lo"][1], p["dh"], p["dw"])
    if stages & 32:
        input_transform(p["xp"], p["BT"], p["V"], p["m"], p["th"], p["tw"])
    if stages & 15:
        products_and_output(p["V"], p["wf"], p["G"], p["AT"], p["y"], p["kmap"], p["th"],
                            p["tw"], p["chunk"], p["kchunks"], p["kv"], p["geo"], stages & 15)
    return p["y"]


def winograd2d(x: np.ndarray, w: np.ndarray, m: int, groups: int, out_size, lo, dilation,
               kmap: np.ndarray | None = None) -> np.ndarray:
    """y[n, kmap[k], oy, ox] = sum w[k, c, a, b] * x[n, c, oy + dh*a - lo_h, ox + dw*b - lo_w].

    `w[k, c/g, 3, 3]` is already oriented (flipped if the caller wants true
    convolution); `lo` the zero padding before each spatial axis (may be
    negative: a crop); the padding after is implied by `out_size`.
    """
    return run_prepared(x, prepare2d(x, w, m, groups, out_size, lo, dilation, kmap), 63)
