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

m_d: winograd_f2 runs F(2,3) on every axis; winograd_f4 runs F(4x4,3x3) in
height and width and, along depth, whichever of F(2,3) and F(4,3) computes fewer
depth points (C3D's 2-slice layers: F(2,3); 4 slices and more: F(4,3)).
"""

from __future__ import annotations

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


def depth_m(m: int, out_depth: int, dilation: int) -> int:
    """F(m_d, 3) along depth for the cell of F(m x m, 3 x 3): F(2,3) for winograd_f2 (its
    accuracy bound), for winograd_f4 the one of F(2,3) / F(4,3) with fewer depth points
    (ties: F(2,3), the smaller error)."""
    if m == 2:
        return 2
    points = {md: depth_tiles(out_depth, dilation, md) * (md + 2) for md in (2, 4)}
    return 4 if points[4] < points[2] else 2


@dataclass(frozen=True)
class Winograd3dFilter:
    """The weight-only part of `winograd3d`: the depth-transformed filter as the grouped
    2-D pipeline's filter (alpha_d * groups groups)."""
    md: int                       # m_d of F(m_d, 3) along depth
    filt: pipeline.TiledFilter    # w_d[f*k + k', c/g, 3, 3] = sum_a G_d[f, a] w[k', c/g, a]


@njit(**PAR)
def depth_filter_transform(w, G, wd):
    """wd[f*k + kk, cc, i, j] = sum_a G[f, a] * w[kk, cc, a, i, j] (w oriented)."""
    k, cg = w.shape[0], w.shape[1]
    A = G.shape[0]
    for kk in prange(k):
        for cc in range(cg):
            src = w[kk, cc]
            for f in range(A):
                g0, g1, g2 = G[f, 0], G[f, 1], G[f, 2]
                dst = wd[f * k + kk, cc]
                for i in range(3):
                    for j in range(3):
                        dst[i, j] = g0 * src[0, i, j] + g1 * src[1, i, j] + g2 * src[2, i, j]


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
                src = x[b, ci, z]
                if first:
                    for p in range(HW):
                        dst[p] = coef * src[p]
                    first = False
                else:
                    for p in range(HW):
                        dst[p] += coef * src[p]
            if first:
                dst[:] = 0


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
                src = y2[img, f * k + kk]
                if first:
                    for p in range(HW):
                        dst[p] = coef * src[p]
                    first = False
                else:
                    for p in range(HW):
                        dst[p] += coef * src[p]


def filter3d(w: np.ndarray, m: int, groups: int, md: int,
             transform: bool = False) -> Winograd3dFilter:
    """The weight-only part of `winograd3d` for an oriented w[k, c/g, 3, 3, 3]: its depth
    transform, then the grouped 2-D pipeline's filter (`conv2d.winograd_filter`; with
    `transform` the 2-D transform too, what a plan keeps)."""
    k, cg = w.shape[:2]
    G = float_matrices(md)[1]
    wd = np.empty((G.shape[0] * k, cg, 3, 3), np.float32)
    depth_filter_transform(np.ascontiguousarray(w, dtype=np.float32), G, wd)
    return Winograd3dFilter(md, winograd_filter(wd, m, G.shape[0] * groups, None, transform))


def winograd3d(x: np.ndarray, w: np.ndarray, m: int, groups: int, out_size, lo,
               dilation) -> np.ndarray:
    """y[n, k, o] = sum w[k, c, a] * x[n, c, o + d*a - lo] over 3x3x3 taps a (w oriented)."""
    md = depth_m(m, out_size[0], dilation[0])
    return winograd3d_prepared(x, filter3d(w, m, groups, md), out_size, lo, dilation)


def winograd3d_prepared(x: np.ndarray, filt3: Winograd3dFilter, out_size, lo,
                        dilation) -> np.ndarray:
    """`winograd3d` with the filter from `filter3d`."""
    n, c, D, H, W = x.shape
    md = filt3.md
    AT, _, BT = float_matrices(md)
    A = BT.shape[0]
    k = filt3.filt.kmap.shape[0] // A
    OD, OH, OW = out_size
    dd = dilation[0]
    tz = depth_tiles(OD, dd, md)
    nimg = n * dd * tz
    x2 = np.empty((nimg, A * c, H, W), np.float32)
    depth_input_transform(x.reshape(n, c, D, H * W), BT, x2.reshape(nimg, A * c, H * W), md,
                          lo[0], dd, tz)
    y2 = pipeline.bilinear2d_prepared(x2, filt3.filt, (OH, OW), tuple(lo[1:]),
                                      tuple(dilation[1:]))
    y = new_output((n, k, OD, OH, OW))
    depth_output_transform(y2.reshape(nimg, A * k, OH * OW), AT,
                           y.reshape(n, k, OD, OH * OW), dd, tz)
    return y
