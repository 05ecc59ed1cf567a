"""3-D Winograd F(m_d x m x m, 3 x 3 x 3): Winograd along depth nested around the 2-D pipeline.

With F(m_d, 3) along depth (alpha_d = m_d + 2 points), m_d output slices of a
3x3x3 convolution are A_d^T applied to alpha_d independent 3x3 convolutions:
input slices transformed along depth (V_f = sum_j B_d^T[f, j] x[z0 + j]) against
filters transformed along depth (U_f = sum_a G_d[f, a] w[:, :, a]). Those alpha_d
convolutions (c -> k each) are ONE grouped 2-D convolution of alpha_d * groups
groups, channels stacked frequency-major, so they run on the shared tiled
pipeline (`kernels.tiled.pipeline`, F(m x m, 3 x 3) in height and width) and
the only 3-D code is here: the depth transforms in and out (Numba, parallel)
and the weights' depth transform (in `prepare`).

Every depth tile is a "virtual image" of the 2-D convolution, img = (b*d_d + r)*t_d + t
(r: depth dilation sub-grid, t: depth tile of the largest sub-grid, as the 2-D
pipeline tiles its sub-grids), so one call batches all of them. Height and width
dilation stay the 2-D pipeline's sub-grids.

The depth-taps form (m_d = 1, F(1,3): no depth transform) is the other way to
reuse the 2-D pipeline: every output slice an image, the 3 depth taps of each
input channel its channels (3 c/g per group, packed straight from x), the raw
weights a [k, 3 c/g, 3, 3] filter as they lie. It runs 3 products per output where
nesting runs alpha_d / m_d, but has no depth transforms, which wins with few input
channels or few tiles per weight (`depth_m` says when).

m_d: winograd_f2 nests F(2,3) (its accuracy bound), winograd_f4 whichever of
F(2,3) and F(4,3) computes fewer depth points (C3D's 2-slice layers: F(2,3); 4
slices and more: F(4,3)); both cells take the taps form where `depth_m` prefers it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, new_output
from ..tiled import pipeline
from .conv2d import winograd_filter
from .matrices import float_matrices


def depth_tiles(out_depth: int, dilation: int, md: int) -> int:
    """Depth tiles of md outputs on the largest depth sub-grid."""
    return pipeline.tiles_along(out_depth, dilation, md)


MIN_NESTED_CHANNELS = 16  # c/g below this: the depth-taps form (F(1,3) along depth)
MIN_NESTED_PRODUCTS_PER_WEIGHT = 64  # nested products / weights below this: depth taps


def depth_winograd(m: int, out_depth: int, dilation: int) -> int:
    """F(m_d, 3) along depth nested around F(m x m, 3 x 3): F(2,3) for winograd_f2 (its
    accuracy bound), for winograd_f4 the one of F(2,3) / F(4,3) with fewer depth points
    (ties: F(2,3), the smaller error)."""
    if m == 2:
        return 2
    points = {md: depth_tiles(out_depth, dilation, md) * (md + 2) for md in (2, 4)}
    return 4 if points[4] < points[2] else 2


def depth_m(m: int, n: int, cg: int, out_size, dilation) -> int:
    """m_d along depth for F(m x m, 3 x 3) on a batch of n, c/g input channels per group:
    1 for the depth-taps form (F(1,3): the 3 depth taps as channels of one 2-D convolution
    per output slice, no depth transform), else `depth_winograd`'s nested F(m_d, 3).

    Nesting saves products (alpha_d / m_d = 1.5 or 2 per output against 3 taps) but
    transforms the weights along depth (a pass writing 4/3 or 2x the raw weights) and
    runs alpha_d / m_d times the 2-D output transforms plus one along depth. Measured
    (C3D's 3x3x3 layers, one thread, in-process minima): the taps form is 1.5x faster
    with 3 input channels (conv1a: the output transforms dominate), even at 16 and
    nested ahead by 1.4x from 64; with few tiles per weight (conv5a at N=1, 21 nested
    products per weight) taps are 1.8x faster, nested ahead from conv4a/4b's 128.
    """
    md = depth_winograd(m, out_size[0], dilation[0])
    tiles = n * math.prod(d * pipeline.tiles_along(o, d, mm) for o, d, mm in zip(
        out_size, dilation, (md, m, m)))
    per_weight = tiles * (md + 2) * (m + 2) ** 2 / 27
    if cg < MIN_NESTED_CHANNELS or per_weight < MIN_NESTED_PRODUCTS_PER_WEIGHT:
        return 1
    return md


@dataclass(frozen=True)
class Winograd3dFilter:
    """The weight-only part of `winograd3d`: the depth-transformed filter as the grouped
    2-D pipeline's filter (alpha_d * groups groups)."""
    md: int                       # m_d of F(m_d, 3) along depth (1: the depth-taps form)
    filt: pipeline.TiledFilter    # w_d[f*k + k', c/g, 3, 3] = sum_a G_d[f, a] w[k', c/g, a]


@njit(**PAR)
def depth_filter_transform(w, G, wd):
    """wd[f, kk, cc*9 + t] = sum_a G[f, a] * w[kk, cc*27 + a*9 + t] (w oriented, flat per
    output channel), one frequency at a time over a whole output channel: the row of w
    stays in L2 and each store stream is contiguous."""
    A, k, row = wd.shape
    cg = row // 9
    for kk in prange(k):
        src = w[kk]
        for f in range(A):
            g0, g1, g2 = G[f, 0], G[f, 1], G[f, 2]
            dst = wd[f, kk]
            for cc in range(cg):
                s = cc * 27
                d = cc * 9
                for t in range(9):
                    dst[d + t] = g0 * src[s + t] + g1 * src[s + 9 + t] + g2 * src[s + 18 + t]


@njit(**JIT)
def _scaled_into(dst, coef, src, n, accumulate):
    """dst[:n] (+)= coef * src[:n]: one term of a depth transform, the first one stored."""
    if accumulate:
        for p in range(n):
            dst[p] += coef * src[p]
    else:
        for p in range(n):
            dst[p] = coef * src[p]


@njit(**JIT)
def _image(img, dd, tz):
    """Virtual image img = (b*dd + r)*tz + t -> (image b, depth sub-grid r, depth tile t)."""
    return img // (tz * dd), (img // tz) % dd, img % tz


@njit(**PAR)
def depth_input_transform(x, BT, x2, md, lo_d, dd, tz):
    """x2[img, f*c + ci] = sum_j BT[f, j] * x[b, ci, r + dd*(t*md + j) - lo_d] (zero slices
    outside the input), one pass over each H*W plane per nonzero term."""
    n, c, D, HW = x.shape
    A = BT.shape[0]
    for item in prange(x2.shape[0] * c):
        ci = item % c
        img = item // c
        b, r, t = _image(img, dd, tz)
        for f in range(A):
            dst = x2[img, f * c + ci]
            first = True
            for j in range(A):
                coef = BT[f, j]
                z = r + dd * (t * md + j) - lo_d
                if coef == 0 or z < 0 or z >= D:
                    continue
                _scaled_into(dst, coef, x[b, ci, z], HW, not first)
                first = False
            if first:
                dst[:] = 0


@njit(**PAR)
def pack_depth_taps(x, xp, lo_d, lo_h, lo_w, dd, dh, dw):
    """xp[vb, g, i, j, cc*3 + a] = x[b, g*cg + cc, z + dd*a - lo_d, ry + dh*i - lo_h,
    rx + dw*j - lo_w] (0 outside), vb = ((b*OD + z)*dh + ry)*dw + rx: the 2-D pipeline's
    packed input of the depth-taps form, every output slice z an image of 3*c/g channels."""
    n, c, D, H, W = x.shape
    VB, groups, Hs, Ws, cg3 = xp.shape
    cg = cg3 // 3
    OD = VB // (n * dh * dw)
    for item in prange(VB * groups * Hs):
        i = item % Hs
        g = (item // Hs) % groups
        vb = item // (Hs * groups)
        img, ry, rx = pipeline.subgrid_of(vb, dh, dw)
        b = img // OD
        z = img % OD
        dst = xp[vb, g, i]
        sy = ry + dh * i - lo_h
        if sy < 0 or sy >= H:
            dst[:] = 0
            continue
        # the columns j whose source rx + dw*j - lo_w lies inside the row
        j0 = max(0, -((rx - lo_w) // dw))
        j1 = max(j0, min(Ws, (W - 1 - rx + lo_w) // dw + 1))
        for cc in range(cg):
            for a in range(3):
                sz = z + dd * a - lo_d
                e = cc * 3 + a
                if sz < 0 or sz >= D:
                    for j in range(Ws):
                        dst[j, e] = 0
                    continue
                src = x[b, g * cg + cc, sz, sy]
                for j in range(j0):
                    dst[j, e] = 0
                for j in range(j0, j1):
                    dst[j, e] = src[rx + dw * j - lo_w]
                for j in range(j1, Ws):
                    dst[j, e] = 0


@njit(**PAR)
def depth_output_transform(y2, AT, y, dd, tz):
    """y[b, kk, r + dd*(t*md + i)] = sum_f AT[i, f] * y2[img, f*k + kk] for the outputs of
    each depth tile inside the output (ragged last tiles clipped)."""
    n, k, OD, HW = y.shape
    md, A = AT.shape
    for item in prange(y2.shape[0] * k):
        kk = item % k
        img = item // k
        b, r, t = _image(img, dd, tz)
        ods = (OD - r + dd - 1) // dd
        for i in range(md):
            u = t * md + i
            if u >= ods:
                break
            dst = y[b, kk, r + dd * u]
            first = True
            for f in range(A):
                coef = AT[i, f]
                if coef == 0:
                    continue
                _scaled_into(dst, coef, y2[img, f * k + kk], HW, not first)
                first = False


def filter3d(w: np.ndarray, m: int, groups: int, md: int,
             transform: bool = False) -> Winograd3dFilter:
    """The weight-only part of `winograd3d` for an oriented w[k, c/g, 3, 3, 3]: its depth
    transform, then the grouped 2-D pipeline's filter (`conv2d.winograd_filter`; with
    `transform` the 2-D transform too, what a plan keeps). md = 1: the depth-taps form,
    w as a 2-D filter of 3*c/g channels (a view, no transform)."""
    k, cg = w.shape[:2]
    if md == 1:
        w2 = np.ascontiguousarray(w, dtype=np.float32).reshape(k, cg * 3, 3, 3)
        return Winograd3dFilter(1, winograd_filter(w2, m, groups, None, transform))
    G = float_matrices(md)[1]
    wd = np.empty((G.shape[0], k, cg * 9), np.float32)
    depth_filter_transform(np.ascontiguousarray(w, dtype=np.float32).reshape(k, cg * 27), G, wd)
    return Winograd3dFilter(md, winograd_filter(wd.reshape(-1, cg, 3, 3), m,
                                                G.shape[0] * groups, None, transform))


def winograd3d(x: np.ndarray, w: np.ndarray, m: int, groups: int, out_size, lo,
               dilation) -> np.ndarray:
    """y[n, k, o] = sum w[k, c, a] * x[n, c, o + d*a - lo] over 3x3x3 taps a (w oriented)."""
    md = depth_m(m, x.shape[0], w.shape[1], out_size, dilation)
    return winograd3d_prepared(x, filter3d(w, m, groups, md), out_size, lo, dilation)


def winograd3d_prepared(x: np.ndarray, filt3: Winograd3dFilter, out_size, lo,
                        dilation) -> np.ndarray:
    """`winograd3d` with the filter from `filter3d`."""
    n, c, D, H, W = x.shape
    md = filt3.md
    if md == 1:
        return _depth_taps(x, filt3.filt, out_size, lo, dilation)
    AT, _, BT = float_matrices(md)
    A = BT.shape[0]
    k = filt3.filt.kmap.shape[0] // A
    OD, OH, OW = out_size
    dd, dh, dw = dilation
    tz = depth_tiles(OD, dd, md)
    nimg = n * dd * tz
    # the depth transform over whole planes, then the pipeline's own packing: measured 1.4x
    # to 2.3x faster than both in one pass into the packed layout (C3D conv2a to conv4b)
    x2 = np.empty((nimg, A * c, H, W), np.float32)
    depth_input_transform(x.reshape(n, c, D, H * W), BT, x2.reshape(nimg, A * c, H * W), md,
                          lo[0], dd, tz)
    p = _buffers(x2.shape, filt3.filt, out_size, lo, dilation)
    pipeline.pack_subgrids(x2, p["xp"], lo[1], lo[2], dh, dw)
    y2 = _products(p)
    y = new_output((n, k, OD, OH, OW))
    depth_output_transform(y2.reshape(nimg, A * k, OH * OW), AT,
                           y.reshape(n, k, OD, OH * OW), dd, tz)
    return y


def _buffers(shape2d, filt: pipeline.TiledFilter, out_size, lo, dilation) -> dict:
    """The 2-D pipeline's buffers for a call on images of `shape2d` (`call_buffers` reads
    only its x's shape: a zero-stride stand-in)."""
    stand_in = np.broadcast_to(np.float32(0), shape2d)
    return pipeline.call_buffers(stand_in, filt, tuple(out_size[1:]), tuple(lo[1:]),
                                 tuple(dilation[1:]))


def _products(p: dict) -> np.ndarray:
    """The 2-D pipeline's stages after packing (done by the caller): the input transform
    with its rows regrouped (one combination per row of tiles rather than per tile: 4x
    faster on conv1a's 9 channels, 1.2x at 192), products and output transforms into
    p["y"]."""
    pipeline.input_transform(p["xp"], p["BTh"], p["BTw"], p["V"], p["mh"], p["mw"], p["th"],
                             p["tw"], True, p["ftile"])
    return pipeline.run_prepared(None, p, 15)


def _depth_taps(x, filt: pipeline.TiledFilter, out_size, lo, dilation) -> np.ndarray:
    """The depth-taps form: every output slice an image of the 2-D pipeline with the 3 depth
    taps of each channel as channels (packed straight from x), written straight into y
    (the pipeline's slices: y[b, k, z] is image b*OD + z's channel k)."""
    n, c, D, H, W = x.shape
    OD, OH, OW = out_size
    k = filt.kmap.shape[0]
    p = _buffers((n * OD, 3 * c, H, W), filt, out_size, lo, dilation)
    pack_depth_taps(x, p["xp"], lo[0], lo[1], lo[2], dilation[0], dilation[1], dilation[2])
    y = new_output((n, k, OD, OH, OW))
    p["y"] = y.reshape(n, k * OD, OH, OW)
    p["geo"] = np.append(p["geo"], OD)
    _products(p)
    return y
