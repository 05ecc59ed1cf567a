"""The `separable` cells: turn each type's weights into rank-1 terms and run the passes.

Every transform (flip, SVD, sorting the terms) happens inside the timed
call, like the packing of the other algorithms.
"""

from __future__ import annotations

import numba
import numpy as np

from ..blocks import new_output
from ..direct.dense import kchunks_for
from ..direct.pointwise import run_pointwise
from ..registry import cell, not_applicable
from ..spec import ConvSpec
from ..types import conv_type as type_of
from ..types import flip_spatial, select, separable_stages, shuffle_permutation
from . import counts
from .engine import blocks_for, pad_planes, separable2d, separable3d
from .factor import rank1_terms

BAND_FLOATS = 2048  # floats of the intermediate band z: stays in L1 with its input rows
ACC_FLOATS = 65536  # floats of output bands one work item accumulates (L2)


def _chunks(k: int, per: int, items_per_chunk: int) -> np.ndarray:
    """Boundaries of contiguous output-channel chunks of at most `per` channels, split
    further when there are too few work items to keep every thread busy."""
    nchunks = -(-k // per)
    if items_per_chunk * nchunks < 4 * numba.get_num_threads():
        nchunks = kchunks_for(items_per_chunk, k)
    return np.linspace(0, k, nchunks + 1).round().astype(np.int64)


def _plan(keys_k: np.ndarray, keys_c: np.ndarray, bounds: np.ndarray):
    """Order of the terms (by chunk, then input channel) and each chunk's first term."""
    chunk = np.searchsorted(bounds, keys_k, side="right") - 1
    order = np.lexsort((keys_k, keys_c, chunk))
    starts = np.searchsorted(chunk[order], np.arange(len(bounds)))
    return order, starts.astype(np.int64)


def run_terms2d(spec: ConvSpec, x: np.ndarray, k_out: int, tc, tk, U, V,
                 padding=None) -> np.ndarray:
    """y[n, k_out, OH, OW] = sum over terms t of v_t (*) (u_t (*) x[:, tc[t]]) into y[:, tk[t]].

    Geometry from `spec` (out_size, kernel, stride, dilation); `padding`, when
    given, replaces spec.padding and may be negative (a crop).
    """
    OH, OW = spec.out_size
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    ph, pw = spec.padding if padding is None else padding
    kh, kw = spec.kernel
    Hp = counts.padded_span(OH, kh, sh, dh)
    Wp = counts.padded_span(OW, kw, sw, dw)
    threads = numba.get_num_threads()
    # fewer, longer bands amortise per-call overhead; shorten them only when even one
    # chunk per output channel leaves threads idle
    band = max(1, min(OH, BAND_FLOATS // Wp))
    want = -(-4 * threads // (spec.n * k_out))
    band = max(1, min(band, OH // want))
    kc = max(1, min(k_out, ACC_FLOATS // (band * Wp)))
    bounds = _chunks(k_out, kc, spec.n * -(-OH // band))
    kc = int(np.diff(bounds).max())
    order, starts = _plan(tk, tc, bounds)
    xf = pad_planes(x, Hp, Wp, ph, pw).reshape(spec.n, x.shape[1], Hp * Wp)
    y = new_output((spec.n, k_out, OH, OW))
    items = spec.n * -(-OH // band) * (len(bounds) - 1)
    U = np.ascontiguousarray(U[order], np.float32).reshape(-1, kh)
    V = np.ascontiguousarray(V[order], np.float32).reshape(-1, kw)
    separable2d(xf, y, tc[order].astype(np.int64), tk[order].astype(np.int64), U, V, bounds,
                starts, np.array([sh, sw, dh, dw, Wp], np.int64), band, kc, blocks_for(items))
    return y


def dense_terms(spec: ConvSpec, w: np.ndarray, kmap: np.ndarray | None = None):
    """Rank-1 terms of a grouped kernel w[k, c/g, kh, kw] (flip applied), as run_terms2d takes."""
    if spec.flip:
        w = flip_spatial(w, 2)
    (ks, cls), U, V = rank1_terms(w)
    cg, kg = spec.c // spec.groups, spec.k // spec.groups
    tc = (ks // kg) * cg + cls
    tk = ks if kmap is None else kmap[ks]
    return tc, tk, U, V


def _dense_run(spec, x, w, kmap=None):
    return run_terms2d(spec, x, spec.k, *dense_terms(spec, w, kmap))


# --------------------------------------------------------------------- 2-D dense types

DENSE_2D = select(ndim=2, transposed=False, composition="dense", kernel="any")


def _dense_cell(conv_type):
    shuffle = type_of(conv_type).shuffle

    @cell(conv_type, "separable", multiplications=counts.dense_count)
    def run(spec, x, weights):
        return _dense_run(spec, x, weights[0],
                          shuffle_permutation(spec.k, spec.groups) if shuffle else None)


for _t in DENSE_2D:
    _dense_cell(_t)


# --------------------------------------------------------------------- native factorings

@cell("spatially_separable", "separable", multiplications=counts.spatially_separable_count)
def _spatially_separable(spec, x, weights):
    """The seed's kh x 1 then 1 x kw pass for every (k, c): rank 1 by construction."""
    col, row = weights
    if spec.flip:
        col, row = flip_spatial(col, 1), flip_spatial(row, 1)
    ks, cs = np.divmod(np.arange(spec.k * spec.c), spec.c)
    return run_terms2d(spec, x, spec.k, cs, ks, col.reshape(-1, spec.kernel[0]),
                       row.reshape(-1, spec.kernel[1]))


def _pointwise_spec(spec: ConvSpec, c: int, k: int, size) -> ConvSpec:
    return spec.replace(c=c, k=k, size=size, kernel=1, stride=1, padding=0, dilation=1,
                        groups=1, flip=False, output_padding=0)


@cell("depthwise_separable", "separable",
      multiplications=lambda spec: sum(counts.depthwise_separable_count(spec)))
def _depthwise_separable(spec, x, weights):
    """Depthwise stage factored by SVD, then the direct pointwise stage."""
    dw, pw = weights
    mid = _dense_run(separable_stages(spec)[0], x, dw)
    return run_pointwise(_pointwise_spec(spec, spec.c, spec.k, spec.out_size), mid, pw)


@cell("flattened", "separable", multiplications=lambda spec: sum(counts.flattened_count(spec)))
def _flattened(spec, x, weights):
    """Jin et al.'s three passes: lateral 1x1 over channels, then vertical and horizontal
    1-D filters per output channel (a rank-1 depthwise convolution)."""
    lat, ver, hor = weights
    mid = run_pointwise(_pointwise_spec(spec, spec.c, spec.k, spec.size), x,
                        lat[:, :, None, None])
    if spec.flip:
        ver, hor = flip_spatial(ver, 1), flip_spatial(hor, 1)
    ks = np.arange(spec.k)
    return run_terms2d(spec.replace(c=spec.k), mid, spec.k, ks, ks, ver, hor)


# --------------------------------------------------------------------- transposed2d

def transposed_terms(spec: ConvSpec, w: np.ndarray):
    """w[c, k/g, kh, kw] of a transposed conv -> terms of the equivalent correlation
    (kernel flipped and channel-swapped; spec.flip flips it back)."""
    if not spec.flip:
        w = flip_spatial(w, 2)
    (cs, kls), U, V = rank1_terms(w)
    cg, kg = spec.c // spec.groups, spec.k // spec.groups
    return cs, (cs // cg) * kg + kls, U, V


def transposed_count(spec: ConvSpec) -> int:
    """Passes on the zero-upsampled input: the inserted zeros are multiplied too."""
    n, (OH, OW), (kh, kw) = spec.n, spec.out_size, spec.kernel
    wspan = counts.padded_span(OW, kw, 1, spec.dilation[1])
    per_term = n * OH * (wspan * kh + OW * kw)
    return spec.c * (spec.k // spec.groups) * min(kh, kw) * per_term


@cell("transposed2d", "separable", multiplications=transposed_count)
def _transposed(spec, x, weights):
    """Zero-upsample by the stride, then the passes of the stride-1 correlation."""
    if any(s > 1 for s in spec.stride):
        up = np.zeros((spec.n, spec.c, *(s * (i - 1) + 1 for i, s in zip(spec.size, spec.stride))),
                      np.float32)
        up[:, :, ::spec.stride[0], ::spec.stride[1]] = x
        x = up
    OH, OW = spec.out_size
    geo = _Geometry(n=spec.n, out_size=(OH, OW), kernel=spec.kernel, stride=(1, 1),
                    dilation=spec.dilation)
    lo = tuple(d * (k - 1) - p for k, p, d in zip(spec.kernel, spec.padding, spec.dilation))
    return run_terms2d(geo, x, spec.k, *transposed_terms(spec, weights[0]), padding=lo)


class _Geometry:
    """The few ConvSpec fields run_terms2d reads (a transposed conv's equivalent
    correlation can need negative padding, which ConvSpec rejects)."""

    def __init__(self, n, out_size, kernel, stride, dilation):
        self.n, self.out_size, self.kernel = n, out_size, kernel
        self.stride, self.dilation, self.padding = stride, dilation, (0, 0)


# --------------------------------------------------------------------- conv3d

def conv3d_terms(spec: ConvSpec, w: np.ndarray):
    """Nested SVD of w[k, c/g, kd, kh, kw]: depth filters a (kd) of each (k, c) slice, each
    with the 2-D terms (u, v) of its (kh, kw) partner.

    Returns (gc, gk, A, gt, U, V): group g = input channel gc[g], output channel gk[g],
    depth filter A[g], 2-D terms gt[g]..gt[g+1]-1.
    """
    if spec.flip:
        w = flip_spatial(w, 3)
    k, cg, kd, kh, kw = w.shape
    (ks, cls), A, B = rank1_terms(w.reshape(k, cg, kd, kh * kw))
    (gi,), U, V = rank1_terms(B.reshape(-1, kh, kw))
    kg = spec.k // spec.groups
    gc = (ks // kg) * cg + cls
    gt = np.searchsorted(gi, np.arange(len(ks) + 1)).astype(np.int64)
    return gc, ks, A, gt, U, V


@cell("conv3d", "separable", multiplications=counts.conv3d_count)
def _conv3d(spec, x, weights):
    gc, gk, A, gt, U, V = conv3d_terms(spec, weights[0])
    OD, OH, OW = spec.out_size
    kd, kh, kw = spec.kernel
    bounds = _chunks(spec.k, max(1, ACC_FLOATS // (OH * OW)), spec.n * OD)
    order, starts = _plan(gk, gc, bounds)
    # regroup the terms in the new group order
    lens = np.diff(gt)[order]
    take = np.concatenate([np.arange(gt[g], gt[g + 1]) for g in order]) if len(order) else (
        np.zeros(0, np.int64))
    gt2 = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    y = new_output(spec.output_shape)
    items = spec.n * OD * (len(bounds) - 1)
    separable3d(x, y, gc[order].astype(np.int64), gk[order].astype(np.int64),
                np.ascontiguousarray(A[order]).reshape(-1, kd), gt2,
                np.ascontiguousarray(U[take]).reshape(-1, kh),
                np.ascontiguousarray(V[take]).reshape(-1, kw), bounds, starts,
                np.array([*spec.stride, *spec.padding, *spec.dilation], np.int64),
                counts.padded_span(OH, kh, spec.stride[1], spec.dilation[1]),
                counts.padded_span(OW, kw, spec.stride[2], spec.dilation[2]),
                blocks_for(items))
    return y


# --------------------------------------------------------------------- not applicable

for _t in select(kernel="1x1"):
    not_applicable(_t, "separable", "1x1 has no spatial extent to factor")


# --------------------------------------------------------------------- counts with weights

def separable_multiplications(conv_type: str, spec: ConvSpec, weights) -> int:
    """Multiplications of the separable cell on these weights (actual ranks, not full rank)."""
    if conv_type in DENSE_2D:
        return counts.count_terms(spec, len(dense_terms(spec, weights[0])[0]))
    if conv_type == "depthwise_separable":
        terms = len(dense_terms(spec.replace(k=spec.c, groups=spec.c), weights[0])[0])
        return counts.count_terms(spec, terms) + counts.depthwise_separable_count(spec)[1]
    if conv_type == "conv3d":
        gc, _, _, gt, _, _ = conv3d_terms(spec, weights[0])
        return counts.count_terms(spec, int(gt[-1]), depth_filters=len(gc))
    if conv_type == "transposed2d":
        terms = len(transposed_terms(spec, weights[0])[0])
        return transposed_count(spec) * terms // (
            spec.c * (spec.k // spec.groups) * min(spec.kernel))
    if conv_type == "spatially_separable":
        return counts.spatially_separable_count(spec)
    if conv_type == "flattened":
        return sum(counts.flattened_count(spec))
    raise ValueError(f"conv_type: separable does not run {conv_type}")

