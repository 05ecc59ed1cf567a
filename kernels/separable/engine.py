"""Numba passes: a sum of rank-1 terms applied as vertical then horizontal 1-D passes.

A term t is (input channel c, output channel k, vertical filter u, horizontal
filter v). The input is first copied once into zero-padded planes
xp[n, c, H', W'] (H', W' the padded spans the passes read), so no pass tests
a border. One parallel work item owns a band of R output rows of a
contiguous range of output channels (a "chunk"); for every term of the chunk

    z[r, w']       = sum_i u[i] * xp[c, (oh0 + r)*sh + i*dh, w']      (vertical)
    acc[k, r, ow] += sum_j v[j] * z[r, ow*sw + j*dw]                  (horizontal)

and the acc bands are copied into y at the end. z is R x W' floats (L1) and
acc one band per channel of the chunk (L2), so the input is read once per
chunk and y written once, however many terms.

Why the loops look like this: at stride 1 the rows of a band are adjacent
in xp and in z, so each pass over a band is ONE long unit-stride loop over
R*W' elements (the last (kw-1)*dw columns of each acc row are junk, never
copied out) instead of R short ones; per-call overhead (Numba's slice
reference counts, loop remainders) is paid once per band. Operands are
slices taken before the loop (indexing with a computed offset makes Numba
emit a wraparound select that LLVM turns into gathers). Taps are applied up
to four at a time (`_set4`/`_add4`...), so each vector store of z or acc
carries up to four FMAs. Terms are sorted by input channel inside a chunk so
the input band of a channel stays in L1 while every output channel uses it.

conv3d (row at a time, the simpler and slower form): per (term group, output
depth slice) the kd input planes are combined into one padded plane q (the
depth pass), then the vertical and horizontal passes run on q row by row.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR


@njit(**JIT)
def _set4(z, r0, r1, r2, r3, a0, a1, a2, a3):
    for t in range(z.shape[0]):
        z[t] = a0 * r0[t] + a1 * r1[t] + a2 * r2[t] + a3 * r3[t]


@njit(**JIT)
def _add4(z, r0, r1, r2, r3, a0, a1, a2, a3):
    for t in range(z.shape[0]):
        z[t] += a0 * r0[t] + a1 * r1[t] + a2 * r2[t] + a3 * r3[t]


@njit(**JIT)
def _set3(z, r0, r1, r2, a0, a1, a2):
    for t in range(z.shape[0]):
        z[t] = a0 * r0[t] + a1 * r1[t] + a2 * r2[t]


@njit(**JIT)
def _add3(z, r0, r1, r2, a0, a1, a2):
    for t in range(z.shape[0]):
        z[t] += a0 * r0[t] + a1 * r1[t] + a2 * r2[t]


@njit(**JIT)
def _set2(z, r0, r1, a0, a1):
    for t in range(z.shape[0]):
        z[t] = a0 * r0[t] + a1 * r1[t]


@njit(**JIT)
def _add2(z, r0, r1, a0, a1):
    for t in range(z.shape[0]):
        z[t] += a0 * r0[t] + a1 * r1[t]


@njit(**JIT)
def _set1(z, r0, a0):
    for t in range(z.shape[0]):
        z[t] = a0 * r0[t]


@njit(**JIT)
def _add1(z, r0, a0):
    for t in range(z.shape[0]):
        z[t] += a0 * r0[t]


@njit(**JIT)
def combine_rows(z, src, rows, wts, nv):
    """z[:] = sum_q wts[q] * src[rows[q], :len(z)] over q < nv (z = 0 when nv = 0)."""
    n = z.shape[0]
    if nv == 0:
        z[:] = 0
        return
    q = 0
    while nv - q >= 4:
        r0 = src[rows[q], :n]
        r1 = src[rows[q + 1], :n]
        r2 = src[rows[q + 2], :n]
        r3 = src[rows[q + 3], :n]
        if q == 0:
            _set4(z, r0, r1, r2, r3, wts[q], wts[q + 1], wts[q + 2], wts[q + 3])
        else:
            _add4(z, r0, r1, r2, r3, wts[q], wts[q + 1], wts[q + 2], wts[q + 3])
        q += 4
    if nv - q >= 2:
        r0 = src[rows[q], :n]
        r1 = src[rows[q + 1], :n]
        if q == 0:
            _set2(z, r0, r1, wts[q], wts[q + 1])
        else:
            _add2(z, r0, r1, wts[q], wts[q + 1])
        q += 2
    if nv - q == 1:
        r0 = src[rows[q], :n]
        if q == 0:
            _set1(z, r0, wts[q])
        else:
            _add1(z, r0, wts[q])


@njit(**JIT)
def horizontal_pass(yrow, z, v, dw, sw):
    """yrow[ow] += sum_j v[j] * z[ow*sw + j*dw] (contiguous slices at stride 1)."""
    n = yrow.shape[0]
    KW = v.shape[0]
    span = (n - 1) * sw + 1
    j = 0
    if sw == 1:
        while KW - j >= 4:
            _add4(yrow, z[j * dw:j * dw + n], z[(j + 1) * dw:(j + 1) * dw + n],
                  z[(j + 2) * dw:(j + 2) * dw + n], z[(j + 3) * dw:(j + 3) * dw + n],
                  v[j], v[j + 1], v[j + 2], v[j + 3])
            j += 4
        if KW - j >= 2:
            _add2(yrow, z[j * dw:j * dw + n], z[(j + 1) * dw:(j + 1) * dw + n], v[j], v[j + 1])
            j += 2
        if KW - j == 1:
            _add1(yrow, z[j * dw:j * dw + n], v[j])
    else:
        while KW - j >= 4:
            _add4(yrow, z[j * dw:j * dw + span:sw], z[(j + 1) * dw:(j + 1) * dw + span:sw],
                  z[(j + 2) * dw:(j + 2) * dw + span:sw], z[(j + 3) * dw:(j + 3) * dw + span:sw],
                  v[j], v[j + 1], v[j + 2], v[j + 3])
            j += 4
        if KW - j >= 2:
            _add2(yrow, z[j * dw:j * dw + span:sw], z[(j + 1) * dw:(j + 1) * dw + span:sw],
                  v[j], v[j + 1])
            j += 2
        if KW - j == 1:
            _add1(yrow, z[j * dw:j * dw + span:sw], v[j])


@njit(**JIT)
def combine(z, src, offs, wts, nv, step, accumulate):
    """z[p] (+)= sum_q wts[q] * src[offs[q] + p*step] for p < len(z), q < nv.

    Without `accumulate` the first taps assign, so z needs no zeroing pass.
    """
    n = z.shape[0]
    if n <= 0:
        return
    if nv == 0:
        if not accumulate:
            z[:] = 0
        return
    span = (n - 1) * step + 1
    q = 0
    while nv - q >= 4:
        o0, o1, o2, o3 = offs[q], offs[q + 1], offs[q + 2], offs[q + 3]
        a0, a1, a2, a3 = wts[q], wts[q + 1], wts[q + 2], wts[q + 3]
        if step == 1:
            r0, r1, r2, r3 = src[o0:o0 + n], src[o1:o1 + n], src[o2:o2 + n], src[o3:o3 + n]
            if accumulate or q > 0:
                _add4(z, r0, r1, r2, r3, a0, a1, a2, a3)
            else:
                _set4(z, r0, r1, r2, r3, a0, a1, a2, a3)
        else:
            s0, s1 = src[o0:o0 + span:step], src[o1:o1 + span:step]
            s2, s3 = src[o2:o2 + span:step], src[o3:o3 + span:step]
            if accumulate or q > 0:
                _add4(z, s0, s1, s2, s3, a0, a1, a2, a3)
            else:
                _set4(z, s0, s1, s2, s3, a0, a1, a2, a3)
        q += 4
    if nv - q == 3:
        o0, o1, o2 = offs[q], offs[q + 1], offs[q + 2]
        a0, a1, a2 = wts[q], wts[q + 1], wts[q + 2]
        if step == 1:
            r0, r1, r2 = src[o0:o0 + n], src[o1:o1 + n], src[o2:o2 + n]
            if accumulate or q > 0:
                _add3(z, r0, r1, r2, a0, a1, a2)
            else:
                _set3(z, r0, r1, r2, a0, a1, a2)
        else:
            s0, s1, s2 = src[o0:o0 + span:step], src[o1:o1 + span:step], src[o2:o2 + span:step]
            if accumulate or q > 0:
                _add3(z, s0, s1, s2, a0, a1, a2)
            else:
                _set3(z, s0, s1, s2, a0, a1, a2)
        q += 3
    if nv - q >= 2:
        o0, o1 = offs[q], offs[q + 1]
        if step == 1:
            r0, r1 = src[o0:o0 + n], src[o1:o1 + n]
            if accumulate or q > 0:
                _add2(z, r0, r1, wts[q], wts[q + 1])
            else:
                _set2(z, r0, r1, wts[q], wts[q + 1])
        else:
            s0, s1 = src[o0:o0 + span:step], src[o1:o1 + span:step]
            if accumulate or q > 0:
                _add2(z, s0, s1, wts[q], wts[q + 1])
            else:
                _set2(z, s0, s1, wts[q], wts[q + 1])
        q += 2
    if nv - q == 1:
        o0 = offs[q]
        if step == 1:
            r0 = src[o0:o0 + n]
            if accumulate or q > 0:
                _add1(z, r0, wts[q])
            else:
                _set1(z, r0, wts[q])
        else:
            s0 = src[o0:o0 + span:step]
            if accumulate or q > 0:
                _add1(z, s0, wts[q])
            else:
                _set1(z, s0, wts[q])


@njit(**JIT)
def _band2d(xf, y, acc, z, offv, offr, offh, b, oh0, R, k0, k1, t0, t1, tc, tk, U, V, geo):
    """Output rows oh0..oh0+R-1 of channels k0..k1-1 from the terms t0..t1-1.

    xf[n, c, H'*W'] is the zero-padded input, rows flattened; z and acc hold R
    rows of W' columns, so at stride 1 each pass over the band is one long
    loop (the last (kw-1)*dw columns of each acc row are junk and never copied out).
    """
    sh, sw, dh, dw, Wp = geo[0], geo[1], geo[2], geo[3], geo[4]
    KH, KW = U.shape[1], V.shape[1]
    OW = y.shape[3]
    L = R * Wp
    for k in range(k1 - k0):
        acc[k, :L] = 0
    for i in range(KH):
        offv[i] = (oh0 * sh + i * dh) * Wp
    for j in range(KW):
        offh[j] = j * dw
    zb = z[:L]
    Lh = L - (KW - 1) * dw
    for t in range(t0, t1):
        src = xf[b, tc[t]]
        if sh == 1:
            combine(zb, src, offv, U[t], KH, 1, False)
        else:
            for r in range(R):
                for i in range(KH):
                    offr[i] = offv[i] + r * sh * Wp
                combine(z[r * Wp:(r + 1) * Wp], src, offr, U[t], KH, 1, False)
        a = acc[tk[t] - k0]
        if sw == 1:
            combine(a[:Lh], zb, offh, V[t], KW, 1, True)
        else:
            for r in range(R):
                for j in range(KW):
                    offr[j] = r * Wp + j * dw
                combine(a[r * Wp:r * Wp + OW], zb, offr, V[t], KW, sw, True)
    for k in range(k1 - k0):
        for r in range(R):
            y[b, k0 + k, oh0 + r, :] = acc[k, r * Wp:r * Wp + OW]


@njit(**PAR)
def separable2d(xf, y, tc, tk, U, V, chunk_k, chunk_t, geo, band, kc, nblocks):
    """y[n, k, OH, OW] = sum over terms of horizontal(vertical(x[n, c])).

    xf[n, c, H'*W']: zero-padded input. Terms t are sorted by chunk; chunk j
    covers output channels chunk_k[j]..chunk_k[j+1]-1 and terms
    chunk_t[j]..chunk_t[j+1]-1 (kc channels at most). geo = (sh, sw, dh, dw, W').
    """
    n, OH = y.shape[0], y.shape[2]
    KH, KW = U.shape[1], V.shape[1]
    Wp = geo[4]
    nchunks = chunk_k.shape[0] - 1
    nbands = (OH + band - 1) // band
    items = n * nbands * nchunks
    per = (items + nblocks - 1) // nblocks
    m = max(KH, KW)
    for blk in prange(nblocks):
        z = np.empty(band * Wp, np.float32)
        acc = np.empty((kc, band * Wp), np.float32)
        offv = np.empty(m, np.int64)
        offr = np.empty(m, np.int64)
        offh = np.empty(m, np.int64)
        for item in range(blk * per, min(items, (blk + 1) * per)):
            j = item % nchunks
            bd = (item // nchunks) % nbands
            b = item // (nchunks * nbands)
            oh0 = bd * band
            _band2d(xf, y, acc, z, offv, offr, offh, b, oh0, min(band, OH - oh0),
                    chunk_k[j], chunk_k[j + 1], chunk_t[j], chunk_t[j + 1], tc, tk, U, V, geo)


@njit(**PAR)
def pad_planes(x, Hp, Wp, ph, pw):
    """xp[n, c, Hp, Wp] = x shifted by (ph, pw), zero outside x; a negative shift crops."""
    n, c, H, W = x.shape
    xp = np.empty((n, c, Hp, Wp), np.float32)
    w0 = min(max(pw, 0), Wp)
    w1 = max(w0, min(Wp, pw + W))
    for item in prange(n * c * Hp):
        h = item % Hp
        ch = (item // Hp) % c
        b = item // (Hp * c)
        dst = xp[b, ch, h]
        src_h = h - ph
        if src_h < 0 or src_h >= H:
            dst[:] = 0
            continue
        dst[:w0] = 0
        dst[w1:] = 0
        if w1 > w0:
            dst[w0:w1] = x[b, ch, src_h, w0 - pw:w1 - pw]
    return xp


@njit(**JIT)
def _plane3d(x, y, b, od, k0, k1, g0, g1, gc, gk, A, gt, U, V, geo, q, z, rows, taps, wts):
    """Output depth slice od of channels k0..k1-1 from the term groups g0..g1-1."""
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    sd, sh, sw, pd, ph, pw, dd, dh, dw = (geo[0], geo[1], geo[2], geo[3], geo[4], geo[5],
                                          geo[6], geo[7], geo[8])
    KD, KH = A.shape[1], U.shape[1]
    OH = y.shape[3]
    for k in range(k0, k1):
        y[b, k, od] = 0
    # input depths this slice reads, as rows of the (D*H, W) view of a channel
    nd = 0
    dtaps = np.empty(KD, np.int64)
    drows = np.empty(KD, np.int64)
    dwts = np.empty(KD, np.float32)
    for i in range(KD):
        r = od * sd + i * dd - pd
        if 0 <= r < D:
            drows[nd] = r * H
            dtaps[nd] = i
            nd += 1
    hlo = min(ph, q.shape[0])
    hhi = min(q.shape[0], ph + H)
    wlo = min(pw, q.shape[1])
    whi = min(q.shape[1], pw + W)
    for g in range(g0, g1):
        a = A[g]
        for e in range(nd):
            dwts[e] = a[dtaps[e]]
        xc = x[b, gc[g]].reshape(D * H, W)
        # depth pass: q[h', w'] = sum_i a[i] x[c, od*sd + i*dd - pd, h' - ph, w' - pw]
        for hp in range(hlo, hhi):
            for e in range(nd):
                rows[e] = drows[e] + hp - ph
            combine_rows(q[hp, wlo:whi], xc, rows, dwts, nd)
        for t in range(gt[g], gt[g + 1]):
            u = U[t]
            for i in range(KH):
                wts[i] = u[i]
            for oh in range(OH):
                for i in range(KH):
                    rows[i] = oh * sh + i * dh
                combine_rows(z, q, rows, wts, KH)
                horizontal_pass(y[b, gk[g], od, oh], z, V[t], dw, sw)


@njit(**PAR)
def separable3d(x, y, gc, gk, A, gt, U, V, chunk_k, chunk_g, geo, hspan, wspan, nblocks):
    """3-D version: groups g = (c, k, depth filter A[g]) own terms gt[g]..gt[g+1]-1.

    geo = (sd, sh, sw, pd, ph, pw, dd, dh, dw).
    """
    n = x.shape[0]
    OD = y.shape[2]
    KH = U.shape[1]
    nchunks = chunk_k.shape[0] - 1
    items = n * OD * nchunks
    per = (items + nblocks - 1) // nblocks
    for blk in prange(nblocks):
        q = np.zeros((hspan, wspan), np.float32)
        z = np.empty(wspan, np.float32)
        m = max(KH, A.shape[1])
        rows = np.empty(m, np.int64)
        taps = np.empty(m, np.int64)
        wts = np.empty(m, np.float32)
        for item in range(blk * per, min(items, (blk + 1) * per)):
            j = item % nchunks
            od = (item // nchunks) % OD
            b = item // (nchunks * OD)
            _plane3d(x, y, b, od, chunk_k[j], chunk_k[j + 1], chunk_g[j], chunk_g[j + 1],
                     gc, gk, A, gt, U, V, geo, q, z, rows, taps, wts)


def blocks_for(items: int) -> int:
    """Parallel blocks: a few per thread for balance, each reusing its row buffers."""
    return max(1, min(items, 8 * numba.get_num_threads()))
