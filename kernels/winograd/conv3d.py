"""3-D Winograd F(m x m x m, 3 x 3 x 3) with NumPy: tensor-product transforms, batched GEMMs.

The transforms are the 1-D matrices applied along each of the three axes
(B^T (x) B^T (x) B^T and so on); the elementwise stage is (m+2)^3 GEMMs of
(k/g x c/g) by (c/g x tiles) per group through `np.matmul` (BLAS). 3-D layers
are not speed targets of the suite, so this stays in NumPy; dilation runs as
dense sub-grid convolutions exactly as in 2-D.
"""

from __future__ import annotations

import numpy as np

from ..blocks import new_output
from .matrices import float_matrices


def filter_transform3d(w: np.ndarray, m: int, groups: int) -> np.ndarray:
    """U[g, f, k/g, c/g] = (G (x) G (x) G) w[k, c/g] at each of the (m+2)^3 points f."""
    k, cg = w.shape[:2]
    G = float_matrices(m)[1]
    U = np.einsum("ai,bj,ck,xyijk->abcxy", G, G, G, w, optimize=True)
    return U.reshape((m + 2) ** 3, groups, k // groups, cg).transpose(1, 0, 2, 3)


def winograd3d(x: np.ndarray, w: np.ndarray, m: int, groups: int, out_size, lo,
               dilation) -> np.ndarray:
    """y[n, k, o] = sum w[k, c, a] * x[n, c, o + d*a - lo] over 3x3x3 taps a (w oriented)."""
    return winograd3d_prepared(x, filter_transform3d(w, m, groups), m, out_size, lo, dilation)


def winograd3d_prepared(x: np.ndarray, U: np.ndarray, m: int, out_size, lo,
                        dilation) -> np.ndarray:
    """`winograd3d` with the filter transformed ahead (`filter_transform3d`)."""
    n, c, *size = x.shape
    groups, _, kg, cg = U.shape
    k = groups * kg
    AT, _, BT = float_matrices(m)
    A = m + 2
    y = new_output((n, k, *out_size))
    for phase in np.ndindex(*dilation):
        sub_out = [-(-(o - r) // d) for o, r, d in zip(out_size, phase, dilation)]
        if min(sub_out) <= 0:
            continue
        tiles = [-(-s // m) for s in sub_out]
        span = [t * m + 2 for t in tiles]
        # the sub-grid input, zero-padded: xs[..., i] = x[..., r + d*i - lo]
        xs = np.zeros((n, c, *span), np.float32)
        src, dst = [], []
        for s, r, d, p, L in zip(size, phase, dilation, lo, span):
            i0 = max(0, -(-(p - r) // d))
            i1 = min(L, (s - 1 - r + p) // d + 1)
            src.append(slice(r + d * i0 - p, r + d * (i1 - 1) - p + 1, d) if i1 > i0
                       else slice(0, 0))
            dst.append(slice(i0, max(i0, i1)))
        xs[(slice(None), slice(None), *dst)] = x[(slice(None), slice(None), *src)]
        # tiles: patches[n, c, tz, ty, tx, A, A, A]
        st = xs.strides
        patches = np.lib.stride_tricks.as_strided(
            xs, (n, c, *tiles, A, A, A),
            (st[0], st[1], st[2] * m, st[3] * m, st[4] * m, st[2], st[3], st[4]))
        V = np.einsum("ai,bj,ck,nxzyuijk->abcxnzyu", BT, BT, BT, patches, optimize=True)
        T = n * tiles[0] * tiles[1] * tiles[2]
        V = np.ascontiguousarray(V).reshape(A ** 3, groups, cg, T)
        M = np.matmul(U, V.transpose(1, 0, 2, 3))  # [g, f, kg, T]
        M = M.reshape(groups, A, A, A, kg, n, *tiles)
        Y = np.einsum("ia,jb,kc,gabcqnzyu->ngqziyjuk", AT, AT, AT, M, optimize=True)
        Y = Y.reshape(n, k, tiles[0] * m, tiles[1] * m, tiles[2] * m)
        out_sl = tuple(slice(r, None, d) for r, d in zip(phase, dilation))
        y[(slice(None), slice(None), *out_sl)] = Y[:, :, :sub_out[0], :sub_out[1], :sub_out[2]]
    return y
