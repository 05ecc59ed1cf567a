"""im2col / vol2col: one tile of output pixels unfolded into a [taps, pixels] matrix.

Rows are (channel, kd, kh, kw) in the order of the kernel's memory layout, so
the raw weights w[k, c/g, kd, kh, kw] reshape to the GEMM's left operand
without any packing. Columns are output pixels p0..p1 flattened over
(od, oh, ow), so a tile may start and end in the middle of an output row.
Padding is never materialised: each output-row segment is split into a zero
head, a copied (possibly strided) middle and a zero tail.

Geometry travels as one int64 array (see `geometry`); 2-D problems are 3-D
with depth 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..blocks import JIT

U = np.uint64  # unsigned indices: Numba adds no negative-index wraparound for them

# indices into the geometry array
C_, D_, H_, W_, KD_, KH_, KW_, SD_, SH_, SW_, PD_, PH_, PW_, DD_, DH_, DW_, OD_, OH_, OW_ = \
    range(19)


def geometry(c, size, kernel, stride, padding, dilation, out_size) -> np.ndarray:
    """Pack a (3-D padded) problem geometry; tuples are (d, h, w)."""
    return np.array([c, *size, *kernel, *stride, *padding, *dilation, *out_size], np.int64)


def _as3(t, nd, fill):
    return (fill,) * (3 - nd) + tuple(t)


def spec_geometry(spec) -> np.ndarray:
    """`geometry` of a ConvSpec, 1-D and 2-D problems padded to 3-D."""
    nd = spec.ndim
    return geometry(spec.c, _as3(spec.size, nd, 1), _as3(spec.kernel, nd, 1),
                    _as3(spec.stride, nd, 1), _as3(spec.padding, nd, 0),
                    _as3(spec.dilation, nd, 1), _as3(spec.out_size, nd, 1))


@njit(**JIT)
def _valid_range(off, s, n_out, n_in):
    """[lo, hi): the outputs o < n_out with 0 <= o*s + off < n_in."""
    lo = 0 if off >= 0 else (-off + s - 1) // s
    hi = 0 if n_in - 1 - off < 0 else min(n_out, (n_in - 1 - off) // s + 1)
    return lo, max(lo, hi)


@njit(**JIT)
def _zero(col, d0, n):
    for q in range(n):
        col[U(d0 + q)] = 0.0


@njit(**JIT)
def unfold_row(col, d0, xf, c0, kd, kh, kw, p0, p1, geo):
    """col[d0:d0 + p1-p0] = row (tap kd, kh, kw of plane c0 of the flat input xf) of the
    tile p0..p1.

    Walks the tile's output rows incrementally (no division per row); the valid
    output-column range of the tap is the same on every row, so it is computed once.
    Flat arrays with unsigned indices instead of per-segment slices: a slice costs
    two atomic reference-count updates, which dominated the copy of short rows.
    """
    D, H, W = geo[D_], geo[H_], geo[W_]
    OH, OW = geo[OH_], geo[OW_]
    offd = kd * geo[DD_] - geo[PD_]
    offh = kh * geo[DH_] - geo[PH_]
    offw = kw * geo[DW_] - geo[PW_]
    sd, sh, sw = geo[SD_], geo[SH_], geo[SW_]
    lo, hi = _valid_range(offw, sw, OW, W)
    tn = p1 - p0
    ow0 = p0 % OW
    r = p0 // OW
    oh = r % OH
    od = r // OH
    t = 0
    while t < tn:
        n = min(OW - ow0, tn - t)
        i_d = od * sd + offd
        i_h = oh * sh + offh
        if i_d < 0 or i_d >= D or i_h < 0 or i_h >= H:
            _zero(col, d0 + t, n)
        else:
            a = min(max(lo - ow0, 0), n)
            b = max(min(hi - ow0, n), a)
            _zero(col, d0 + t, a)
            dst = d0 + t + a
            src = ((c0 * D + i_d) * H + i_h) * W + (ow0 + a) * sw + offw
            if sw == 1:
                for q in range(b - a):
                    col[U(dst + q)] = xf[U(src + q)]
            else:
                for q in range(b - a):
                    col[U(dst + q)] = xf[U(src + q * sw)]
            _zero(col, d0 + t + b, n - b)
        t += n
        ow0 = 0
        oh += 1
        if oh == OH:
            oh = 0
            od += 1


@njit(**JIT)
def unfold_channel(col, r0, xf, c0, p0, p1, geo):
    """Rows r0.. of col: every tap of input plane c0 (of the flat x[c, D, H, W]) over
    the tile p0..p1; returns the next free row."""
    tn = p1 - p0
    r = r0
    for kd in range(geo[KD_]):
        for kh in range(geo[KH_]):
            for kw in range(geo[KW_]):
                unfold_row(col, r * tn, xf, c0, kd, kh, kw, p0, p1, geo)
                r += 1
    return r


@njit(**JIT)
def unfold_tile(col, xg, p0, p1, geo):
    """col[(c, kd, kh, kw), 0:p1-p0] for the channels xg[cg, D, H, W] of one group."""
    xf = xg.reshape(-1)
    r = 0
    for c in range(xg.shape[0]):
        r = unfold_channel(col, r, xf, c, p0, p1, geo)
