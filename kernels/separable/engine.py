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

conv3d: the input is padded into volumes xp[n, c, D', H', W']; a work item
owns one output depth slice of a chunk of output channels, and per term group
(c, k, depth filter a) the kd padded planes are combined into one plane
q = sum_i a[i] xp[c, od*sd + i*dd] (the depth pass: one loop over H'*W'),
then each of the group's 2-D terms runs on q as one vertical and one
horizontal pass over all OH rows, as in 2-D. The planes are small (C3D's
conv5a: 9x9), so the loops work on flat arrays at offsets (`_taps`, inlined:
no slices, no reference counts) and 3-tap loops run in whole 16-float blocks
into slack past each buffer. On C3D conv5a (786K term groups) that took the
data path from 4-6 s (row at a time, a sliced call per 7-9 floats) to about
0.2 s on 2 cores.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR

U64 = np.uint64  # unsigned indices: Numba adds no negative-index wraparound for them
BLOCK = 16  # floats per step of the 3-tap loops: one AVX-512 vector, two AVX2 ones
SLACK = BLOCK  # floats past the end of each 3-D pass buffer


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
def _term_passes(src, a, z, u, v, offv, offr, offh, R, OW, sh, sw, Wp):
    """a[r*Wp + ow] += sum_j v[j] z[r*Wp + ow*sw + j*dw] with z[r*Wp + w'] =
    sum_i u[i] src[offv[i] + r*sh*Wp + w'], for R rows (offh[j] = j*dw).

    At stride 1 the rows are adjacent in src, z and a, so each pass is one long
    loop over R*W' elements (the last (kw-1)*dw columns of each a row are junk)."""
    KH, KW = u.shape[0], v.shape[0]
    L = R * Wp
    zb = z[:L]
    if sh == 1:
        combine(zb, src, offv, u, KH, 1, False)
    else:
        for r in range(R):
            for i in range(KH):
                offr[i] = offv[i] + r * sh * Wp
            combine(z[r * Wp:(r + 1) * Wp], src, offr, u, KH, 1, False)
    if sw == 1:
        combine(a[:L - offh[KW - 1]], zb, offh, v, KW, 1, True)
    else:
        for r in range(R):
            for j in range(KW):
                offr[j] = r * Wp + offh[j]
            combine(a[r * Wp:r * Wp + OW], zb, offr, v, KW, sw, True)


@njit(**JIT)
def _band2d(xf, y, acc, z, offv, offr, offh, b, oh0, R, k0, k1, t0, t1, tc, tk, U, V, geo):
    """Output rows oh0..oh0+R-1 of channels k0..k1-1 from the terms t0..t1-1.

    xf[n, c, H'*W'] is the zero-padded input, rows flattened; z and acc hold R
    rows of W' columns.
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
    for t in range(t0, t1):
        _term_passes(xf[b, tc[t]], acc[tk[t] - k0], z, U[t], V[t], offv, offr, offh, R, OW, sh,
                     sw, Wp)
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
def pad_volumes(x, Dp, Hp, Wp, pd, ph, pw, slack):
    """xp[n, c, Dp, Hp, Wp] = x[n, c, D, H, W] shifted by (pd, ph, pw), zero outside x (a
    negative shift crops), flattened and followed by `slack` zeros."""
    n, c, D, H, W = x.shape
    flat = np.empty(n * c * Dp * Hp * Wp + slack, np.float32)
    flat[flat.shape[0] - slack:] = 0
    xp = flat[:n * c * Dp * Hp * Wp].reshape((n, c, Dp, Hp, Wp))
    w0 = min(max(pw, 0), Wp)
    w1 = max(w0, min(Wp, pw + W))
    for item in prange(n * c * Dp * Hp):
        h = item % Hp
        d = (item // Hp) % Dp
        ch = (item // (Hp * Dp)) % c
        b = item // (Hp * Dp * c)
        dst = xp[b, ch, d, h]
        src_d = d - pd
        src_h = h - ph
        if src_d < 0 or src_d >= D or src_h < 0 or src_h >= H:
            dst[:] = 0
            continue
        dst[:w0] = 0
        dst[w1:] = 0
        if w1 > w0:
            dst[w0:w1] = x[b, ch, src_d, src_h, w0 - pw:w1 - pw]
    return flat


def pad_planes(x: np.ndarray, Hp: int, Wp: int, ph: int, pw: int) -> np.ndarray:
    """xp[n, c, Hp, Wp] = x shifted by (ph, pw), zero outside x; a negative shift crops."""
    n, c = x.shape[:2]
    return pad_volumes(x[:, :, None], 1, Hp, Wp, 0, ph, pw, 0).reshape(n, c, Hp, Wp)


@njit(**JIT, inline="always")  # a call costs the reference counts of four arrays
def _taps(dst, d0, src, s0, offs, w, w0, nv, n, step, accumulate):
    """dst[d0 + p] (+)= sum_q w[w0 + q] * src[s0 + offs[q] + p*step] for p < n, q < nv.

    With three taps at step 1, n is rounded up to whole BLOCKs: dst and src need
    BLOCK - 1 elements of slack past the last one (SLACK).

    Flat arrays and unsigned offsets instead of slices: the 3-D passes run on
    short rows (a 7x7 plane is 63 floats), where a slice's two atomic reference
    count updates cost as much as the loop."""
    if n <= 0:
        return
    d = U64(d0)
    if nv == 3:
        a0, a1, a2 = w[w0], w[w0 + 1], w[w0 + 2]
        r0, r1, r2 = U64(s0 + offs[0]), U64(s0 + offs[1]), U64(s0 + offs[2])
        if step == 1:
            # whole blocks of BLOCK (dst and src have the slack): a loop of 63 would
            # run mostly in the vectoriser's scalar remainder
            for blk in range((n + BLOCK - 1) // BLOCK):
                base = U64(blk * BLOCK)
                for p in range(BLOCK):
                    u = base + U64(p)
                    v = a0 * src[r0 + u] + a1 * src[r1 + u] + a2 * src[r2 + u]
                    if accumulate:
                        dst[d + u] += v
                    else:
                        dst[d + u] = v
        else:
            for p in range(n):
                u = U64(p)
                e = U64(p * step)
                v = a0 * src[r0 + e] + a1 * src[r1 + e] + a2 * src[r2 + e]
                if accumulate:
                    dst[d + u] += v
                else:
                    dst[d + u] = v
        return
    if not accumulate:
        for p in range(n):
            dst[d + U64(p)] = 0
    for q in range(nv):
        a = w[w0 + q]
        r = U64(s0 + offs[q])
        for p in range(n):
            dst[d + U64(p)] += a * src[r + U64(p * step)]


@njit(**JIT)
def _slice3d(xf, y, acc, q, z, offd, offv, offh, b, od, k0, k1, g0, g1, gc, gk, A, gt, U, V,
             geo):
    """Output depth slice od of channels k0..k1-1 from the term groups g0..g1-1.

    xf is the zero-padded input x[n, c, D', H', W'] flattened: the depth pass of a
    group is one loop over a whole H' x W' plane into q, and at stride 1 each of its
    2-D terms is one vertical loop over all OH rows of q into z and one horizontal
    loop of z into the channel's acc (the last (kw-1)*dw columns of each row junk)."""
    sd, sh, sw, dd, dh, dw, Hp, Wp = (geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6],
                                      geo[7])
    C = geo[8]
    KD, KH, KW = A.shape[1], U.shape[1], V.shape[1]
    OH, OW = y.shape[3], y.shape[4]
    L = OH * Wp
    La = acc.shape[1]  # L + SLACK: each channel's acc row
    plane = Hp * Wp
    vol = geo[9] * plane
    Af, Uf, Vf = A.reshape(-1), U.reshape(-1), V.reshape(-1)
    af = acc.reshape(-1)
    af[:(k1 - k0) * La] = 0
    for i in range(KD):
        offd[i] = (od * sd + i * dd) * plane
    for i in range(KH):
        offv[i] = i * dh * Wp
    for j in range(KW):
        offh[j] = j * dw
    for g in range(g0, g1):
        _taps(q, 0, xf, (b * C + gc[g]) * vol, offd, Af, g * KD, KD, plane, 1, False)
        a0 = (gk[g] - k0) * La
        for t in range(gt[g], gt[g + 1]):
            if sh == 1:
                _taps(z, 0, q, 0, offv, Uf, t * KH, KH, L, 1, False)
            else:
                for r in range(OH):
                    _taps(z, r * Wp, q, r * sh * Wp, offv, Uf, t * KH, KH, Wp, 1, False)
            if sw == 1:
                _taps(af, a0, z, 0, offh, Vf, t * KW, KW, L - offh[KW - 1], 1, True)
            else:
                for r in range(OH):
                    _taps(af, a0 + r * Wp, z, r * Wp, offh, Vf, t * KW, KW, OW, sw, True)
    for k in range(k1 - k0):
        for r in range(OH):
            y[b, k0 + k, od, r, :] = acc[k, r * Wp:r * Wp + OW]


@njit(**PAR)
def separable3d(xf, y, gc, gk, A, gt, U, V, chunk_k, chunk_g, geo, kc, nblocks):
    """3-D version: groups g = (c, k, depth filter A[g]) own terms gt[g]..gt[g+1]-1.

    xf: the zero-padded input x[n, c, D', H', W'] flattened; geo = (sd, sh, sw, dd,
    dh, dw, H', W', c, D').
    """
    n = y.shape[0]
    OD, OH = y.shape[2], y.shape[3]
    Hp, Wp = geo[6], geo[7]
    m = max(A.shape[1], U.shape[1], V.shape[1])
    nchunks = chunk_k.shape[0] - 1
    items = n * OD * nchunks
    per = (items + nblocks - 1) // nblocks
    for blk in prange(nblocks):
        # zeroed once: the slack the 3-tap loops run into is read, never used
        q = np.zeros(Hp * Wp + SLACK, np.float32)
        z = np.zeros(OH * Wp + SLACK, np.float32)
        acc = np.zeros((kc, OH * Wp + SLACK), np.float32)
        offd = np.empty(m, np.int64)
        offv = np.empty(m, np.int64)
        offh = np.empty(m, np.int64)
        for item in range(blk * per, min(items, (blk + 1) * per)):
            j = item % nchunks
            od = (item // nchunks) % OD
            b = item // (nchunks * OD)
            _slice3d(xf, y, acc, q, z, offd, offv, offh, b, od, chunk_k[j], chunk_k[j + 1],
                     chunk_g[j], chunk_g[j + 1], gc, gk, A, gt, U, V, geo)


def blocks_for(items: int) -> int:
    """Parallel blocks: a few per thread for balance, each reusing its row buffers."""
    return max(1, min(items, 8 * numba.get_num_threads()))
