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
copied out) instead of R short ones. The passes work on flat arrays at
unsigned offsets (`taps`, inlined): no slices, whose two atomic reference
count updates each cost as much as a short loop, and no negative-index
wraparound selects. Each loop runs to a whole BLOCK of floats into SLACK past
every buffer, so that even a 7x7 plane (63 floats) runs in the vectoriser's
main loop, and applies up to three taps per pass, so each vector store of z
or acc carries up to three FMAs. Terms are sorted by input channel inside a
chunk so the input band of a channel stays in L1 while every output channel
uses it.

conv3d: the input is padded into volumes xp[n, c, D', H', W']; a work item
owns one output depth slice of a chunk of output channels, and per term group
(c, k, depth filter a) the kd padded planes are combined into one plane
q = sum_i a[i] xp[c, od*sd + i*dd] (the depth pass: one loop over H'*W'),
then each of the group's 2-D terms runs on q as one vertical and one
horizontal pass over all OH rows, as in 2-D. (Row at a time, with a sliced
call per 7-9 floats, C3D conv5a's data path took 4-6 s; now about 0.2 s on
2 cores. ResNet-50 res5, 7x7: about 3x faster than the sliced loops.)
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR

U64 = np.uint64  # unsigned indices: Numba adds no negative-index wraparound for them
# Unit-stride pass loops run to a multiple of BLOCK floats, what the vectoriser's main loop
# takes per iteration (4 unrolled AVX-512 vectors, or 8 AVX2 ones), into SLACK floats past
# the end of every buffer they read or write: a 7x7 plane's 63 floats would otherwise run
# in the scalar remainder loop
BLOCK = 64
SLACK = BLOCK


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


@njit(**JIT, inline="always")
def _store(dst, i, v, accumulate):
    if accumulate:
        dst[i] += v
    else:
        dst[i] = v


@njit(**JIT, inline="always")
def _up_to_3(dst, d, src, r0, r1, r2, a0, a1, a2, k, n, step, accumulate):
    """dst[d + p] (+)= a0 src[r0 + p*step] (+ a1 src[r1 + ...] (+ a2 src[r2 + ...])) for the
    first k of the three taps. At step 1 n is rounded up to whole BLOCKs (SLACK). One
    loop per k: with the tap count tested inside, LLVM vectorised it badly."""
    if step == 1:
        m = (n + BLOCK - 1) // BLOCK * BLOCK
        if k == 3:
            for p in range(m):
                u = U64(p)
                _store(dst, d + u, a0 * src[r0 + u] + a1 * src[r1 + u] + a2 * src[r2 + u],
                       accumulate)
        elif k == 2:
            for p in range(m):
                u = U64(p)
                _store(dst, d + u, a0 * src[r0 + u] + a1 * src[r1 + u], accumulate)
        else:
            for p in range(m):
                u = U64(p)
                _store(dst, d + u, a0 * src[r0 + u], accumulate)
    else:
        for p in range(n):
            u = U64(p)
            e = U64(p * step)
            v = a0 * src[r0 + e]
            if k >= 2:
                v += a1 * src[r1 + e]
            if k == 3:
                v += a2 * src[r2 + e]
            _store(dst, d + u, v, accumulate)


@njit(**JIT, inline="always")  # a call costs the reference counts of four arrays
def taps(dst, d0, src, s0, offs, w, w0, nv, n, step, accumulate):
    """dst[d0 + p] (+)= sum_q w[w0 + q] * src[s0 + offs[q] + p*step] for p < n, q < nv,
    three taps per pass over dst.

    At step 1, n is rounded up to whole BLOCKs: dst and src need BLOCK - 1
    elements of slack past the last one (SLACK). Flat arrays and unsigned offsets
    instead of slices: the passes run on short rows (a 7x7 plane is 63 floats),
    where a slice's two atomic reference count updates cost as much as the loop."""
    if n <= 0:
        return
    d = U64(d0)
    add = accumulate
    for q in range(0, nv, 3):
        k = min(3, nv - q)
        r0 = U64(s0 + offs[q])
        r1 = U64(s0 + offs[q + min(1, k - 1)])
        r2 = U64(s0 + offs[q + min(2, k - 1)])
        _up_to_3(dst, d, src, r0, r1, r2, w[w0 + q], w[w0 + q + min(1, k - 1)],
                 w[w0 + q + min(2, k - 1)], k, n, step, add)
        add = True


@njit(**JIT, inline="always")
def _term(src, s0, af, a0, z, Uf, u0, Vf, v0, KH, KW, offv, offh, R, OW, sh, sw, Wp):
    """One rank-1 term over R output rows: z[r*Wp + w'] = sum_i u[i] src[s0 + offv[i] +
    r*sh*Wp + w'] (vertical), then af[a0 + r*Wp + ow] += sum_j v[j] z[r*Wp + ow*sw +
    offh[j]] (horizontal), u = Uf[u0:u0+KH], v = Vf[v0:v0+KW], offh[j] = j*dw.

    At stride 1 the rows are adjacent in src, z and af, so each pass is one loop
    over R*W' elements (the last (kw-1)*dw columns of each af row are junk)."""
    L = R * Wp
    if sh == 1:
        taps(z, 0, src, s0, offv, Uf, u0, KH, L, 1, False)
    else:
        for r in range(R):
            taps(z, r * Wp, src, s0 + r * sh * Wp, offv, Uf, u0, KH, Wp, 1, False)
    if sw == 1:
        taps(af, a0, z, 0, offh, Vf, v0, KW, L - offh[KW - 1], 1, True)
    else:
        for r in range(R):
            taps(af, a0 + r * Wp, z, r * Wp, offh, Vf, v0, KW, OW, sw, True)


@njit(**JIT)
def _band2d(xf, y, acc, z, offv, offh, b, oh0, R, k0, k1, t0, t1, tc, tk, U, V, geo):
    """Output rows oh0..oh0+R-1 of channels k0..k1-1 from the terms t0..t1-1.

    xf is the zero-padded input x[n, c, H', W'] flattened (plus SLACK); z and each
    acc row hold R rows of W' columns (plus SLACK).
    """
    sh, sw, dh, dw, Wp, C, Hp = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    KH, KW = U.shape[1], V.shape[1]
    OW = y.shape[3]
    La = acc.shape[1]
    Uf, Vf = U.reshape(-1), V.reshape(-1)
    af = acc.reshape(-1)
    af[:(k1 - k0) * La] = 0
    for i in range(KH):
        offv[i] = (oh0 * sh + i * dh) * Wp
    for j in range(KW):
        offh[j] = j * dw
    for t in range(t0, t1):
        _term(xf, (b * C + tc[t]) * Hp * Wp, af, (tk[t] - k0) * La, z, Uf, t * KH, Vf, t * KW,
              KH, KW, offv, offh, R, OW, sh, sw, Wp)
    for k in range(k1 - k0):
        for r in range(R):
            y[b, k0 + k, oh0 + r, :] = acc[k, r * Wp:r * Wp + OW]


@njit(**PAR)
def separable2d(xf, y, tc, tk, U, V, chunk_k, chunk_t, geo, band, kc, nblocks):
    """y[n, k, OH, OW] = sum over terms of horizontal(vertical(x[n, c])).

    xf: the zero-padded input x[n, c, H', W'] flattened, plus SLACK. Terms t are
    sorted by chunk; chunk j covers output channels chunk_k[j]..chunk_k[j+1]-1 and
    terms chunk_t[j]..chunk_t[j+1]-1 (kc channels at most).
    geo = (sh, sw, dh, dw, W', c, H').
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
        # zeroed once: the slack the blocked loops run into is read, never used
        z = np.zeros(band * Wp + SLACK, np.float32)
        acc = np.zeros((kc, band * Wp + SLACK), np.float32)
        offv = np.empty(m, np.int64)
        offh = np.empty(m, np.int64)
        for item in range(blk * per, min(items, (blk + 1) * per)):
            j = item % nchunks
            bd = (item // nchunks) % nbands
            b = item // (nchunks * nbands)
            oh0 = bd * band
            _band2d(xf, y, acc, z, offv, offh, b, oh0, min(band, OH - oh0), chunk_k[j],
                    chunk_k[j + 1], chunk_t[j], chunk_t[j + 1], tc, tk, U, V, geo)


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
    La = acc.shape[1]  # OH * Wp + SLACK: each channel's acc row
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
        taps(q, 0, xf, (b * C + gc[g]) * vol, offd, Af, g * KD, KD, plane, 1, False)
        a0 = (gk[g] - k0) * La
        for t in range(gt[g], gt[g + 1]):
            _term(q, 0, af, a0, z, Uf, t * KH, Vf, t * KW, KH, KW, offv, offh, OH, OW, sh, sw,
                  Wp)
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
