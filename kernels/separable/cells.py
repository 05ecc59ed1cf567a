"""The `separable` cells: turn each type's weights into rank-1 terms and run the passes.

Every weight transform (flip, SVD, sorting the terms into the order the passes
read them) is the cells' prepare step: `kernels.plan` does it once,
`kernels.run` on every call. The order depends on the thread count (how the
output channels are chunked), so a prepared order is kept for the thread count
it was made for and made again, from the stored terms, under another one.

The dense 2-D types and conv3d have two paths: the per-(k, c) rank-1 terms
(engine.py) and the channel bank (bank.py: a separable filter bank per input
channel, then a 1x1 mix). Each spec takes the one that counts fewer
multiplications at full rank (`uses_bank`): the bank on wide layers, whose
passes are shared by all the outputs of a group; the terms where a group has
few outputs (depthwise), whose bank would need more passes than the terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..blocks import new_output
from ..direct.dense import kchunks_for
from ..direct.pointwise import execute_pointwise, prepare_pointwise
from ..registry import cell, not_applicable
from ..spec import ConvSpec
from ..types import conv_type as type_of
from ..types import flip_spatial, select, separable_stages, shuffle_permutation
from . import counts
from .bank import BankPlan, execute_bank, prepare_bank
from .engine import SLACK, blocks_for, pad_volumes, separable2d, separable3d
from .factor import rank1_terms
from .tucker import channel_bank

BAND_FLOATS = 2048  # floats of the intermediate band z: stays in L1 with its input rows
ACC_FLOATS = 65536  # floats of output bands one work item accumulates (L2)


def _chunks(k: int, per: int, items_per_chunk: int, threads: int) -> np.ndarray:
    """Boundaries of contiguous output-channel chunks of at most `per` channels, split
    further when there are too few work items to keep every thread busy."""
    nchunks = -(-k // per)
    if items_per_chunk * nchunks < 4 * threads:
        nchunks = kchunks_for(items_per_chunk, k)
    return np.linspace(0, k, nchunks + 1).round().astype(np.int64)


def _plan(keys_k: np.ndarray, keys_c: np.ndarray, bounds: np.ndarray):
    """Order of the terms (by chunk, then input channel) and each chunk's first term."""
    chunk = np.searchsorted(bounds, keys_k, side="right") - 1
    order = np.lexsort((keys_k, keys_c, chunk))
    starts = np.searchsorted(chunk[order], np.arange(len(bounds)))
    return order, starts.astype(np.int64)


@dataclass(frozen=True)
class Terms2D:
    """Rank-1 terms y[:, tk[t]] += v_t (*) (u_t (*) x[:, tc[t]]) on a 2-D geometry.

    `geo` is the spec the passes read (out_size, kernel, stride, dilation);
    `padding`, when given, replaces geo.padding and may be negative (a crop).
    """
    geo: object
    k_out: int
    padding: tuple | None
    tc: np.ndarray
    tk: np.ndarray
    U: np.ndarray  # [terms, kh]
    V: np.ndarray  # [terms, kw]


@dataclass(frozen=True)
class Ordered2D:
    """Terms2D sorted into the order separable2d reads them for one thread count."""
    terms: Terms2D
    threads: int
    band: int
    kc: int
    bounds: np.ndarray
    starts: np.ndarray
    tc: np.ndarray
    tk: np.ndarray
    U: np.ndarray
    V: np.ndarray


def _spans(terms: Terms2D) -> tuple[int, int]:
    (OH, OW), (kh, kw) = terms.geo.out_size, terms.geo.kernel
    (sh, sw), (dh, dw) = terms.geo.stride, terms.geo.dilation
    return counts.padded_span(OH, kh, sh, dh), counts.padded_span(OW, kw, sw, dw)


def order_terms2d(terms: Terms2D, threads: int | None = None) -> Ordered2D:
    """Band height, output-channel chunks and the terms sorted by chunk then input channel."""
    threads = threads or numba.get_num_threads()
    geo, k_out = terms.geo, terms.k_out
    OH = geo.out_size[0]
    kh, kw = geo.kernel
    _, Wp = _spans(terms)
    # fewer, longer bands amortise per-call overhead; shorten them only when even one
    # chunk per output channel leaves threads idle
    band = max(1, min(OH, BAND_FLOATS // Wp))
    want = -(-4 * threads // (geo.n * k_out))
    band = max(1, min(band, OH // want))
    kc = max(1, min(k_out, ACC_FLOATS // (band * Wp)))
    bounds = _chunks(k_out, kc, geo.n * -(-OH // band), threads)
    kc = int(np.diff(bounds).max())
    order, starts = _plan(terms.tk, terms.tc, bounds)
    return Ordered2D(terms, threads, band, kc, bounds, starts,
                     terms.tc[order].astype(np.int64), terms.tk[order].astype(np.int64),
                     np.ascontiguousarray(terms.U[order], np.float32).reshape(-1, kh),
                     np.ascontiguousarray(terms.V[order], np.float32).reshape(-1, kw))


def prepare_terms2d(geo, k_out: int, tc, tk, U, V, padding=None) -> Ordered2D:
    """The terms, ordered for the current thread count (the prepare step of a 2-D cell)."""
    return order_terms2d(Terms2D(geo, k_out, padding, tc, tk, U, V))


def execute_terms2d(x: np.ndarray, ordered: Ordered2D) -> np.ndarray:
    """y[n, k_out, OH, OW] = sum over terms of v_t (*) (u_t (*) x[:, tc[t]]) into y[:, tk[t]]."""
    threads = numba.get_num_threads()
    if ordered.threads != threads:  # the caller changed the thread count since preparing
        ordered = order_terms2d(ordered.terms, threads)
    terms = ordered.terms
    geo = terms.geo
    OH, OW = geo.out_size
    (sh, sw), (dh, dw) = geo.stride, geo.dilation
    ph, pw = geo.padding if terms.padding is None else terms.padding
    Hp, Wp = _spans(terms)
    xf = pad_volumes(x[:, :, None], 1, Hp, Wp, 0, ph, pw, SLACK)
    y = new_output((geo.n, terms.k_out, OH, OW))
    items = geo.n * -(-OH // ordered.band) * (len(ordered.bounds) - 1)
    separable2d(xf, y, ordered.tc, ordered.tk, ordered.U, ordered.V, ordered.bounds,
                ordered.starts, np.array([sh, sw, dh, dw, Wp, x.shape[1], Hp], np.int64),
                ordered.band, ordered.kc, blocks_for(items))
    return y


def dense_terms(spec: ConvSpec, w: np.ndarray, kmap: np.ndarray | None = None):
    """Rank-1 terms of a grouped kernel w[k, c/g, kh, kw] (flip applied): (tc, tk, U, V)."""
    if spec.flip:
        w = flip_spatial(w, 2)
    (ks, cls), U, V = rank1_terms(w)
    cg, kg = spec.c // spec.groups, spec.k // spec.groups
    tc = (ks // kg) * cg + cls
    tk = ks if kmap is None else kmap[ks]
    return tc, tk, U, V


def _prepare_dense(spec, w, kmap=None) -> Ordered2D:
    return prepare_terms2d(spec, spec.k, *dense_terms(spec, w, kmap))


def _execute_terms(spec, x, ordered):
    return execute_terms2d(x, ordered)


def uses_bank(spec: ConvSpec, term_count) -> bool:
    """The channel-bank path where it counts fewer multiplications than the terms
    (`term_count`, at full rank): a choice by the spec alone, so counts, plans and
    runs agree."""
    return counts.bank_count(spec) < term_count(spec)


def _cheaper_path(term_count):
    """The registered count of a two-path cell: the path `uses_bank` picks."""
    return lambda spec: min(term_count(spec), counts.bank_count(spec))


def bank_ranks(spec: ConvSpec, w: np.ndarray) -> tuple[int, int, int]:
    """The bank's axis ranks on these weights (a 2-D kernel as depth 1)."""
    return channel_bank(w.reshape(w.shape[:2] + (1,) * (5 - w.ndim) + w.shape[2:]),
                        spec.groups).ranks


# --------------------------------------------------------------------- 2-D dense types

DENSE_2D = select(ndim=2, transposed=False, composition="dense", kernel="any")


def _dense_cell(conv_type):
    shuffle = type_of(conv_type).shuffle

    def prepare(spec, weights):
        kmap = shuffle_permutation(spec.k, spec.groups) if shuffle else None
        if uses_bank(spec, counts.dense_count):
            return prepare_bank(spec, weights[0], kmap)
        return _prepare_dense(spec, weights[0], kmap)

    cell(conv_type, "separable", prepare=prepare,
         multiplications=_cheaper_path(counts.dense_count))(_execute_dense)


def _execute_dense(spec, x, state):
    if isinstance(state, BankPlan):
        return execute_bank(spec, x, state)
    return execute_terms2d(x, state)


for _t in DENSE_2D:
    _dense_cell(_t)


# --------------------------------------------------------------------- native factorings

def _prepare_spatially_separable(spec, weights):
    """The seed's kh x 1 then 1 x kw pass for every (k, c): rank 1 by construction."""
    col, row = weights
    if spec.flip:
        col, row = flip_spatial(col, 1), flip_spatial(row, 1)
    ks, cs = np.divmod(np.arange(spec.k * spec.c), spec.c)
    return prepare_terms2d(spec, spec.k, cs, ks, col.reshape(-1, spec.kernel[0]),
                           row.reshape(-1, spec.kernel[1]))


cell("spatially_separable", "separable", prepare=_prepare_spatially_separable,
     multiplications=counts.spatially_separable_count)(_execute_terms)


def _pointwise_spec(spec: ConvSpec, c: int, k: int, size) -> ConvSpec:
    return spec.replace(c=c, k=k, size=size, kernel=1, stride=1, padding=0, dilation=1,
                        groups=1, flip=False, output_padding=0)


def _prepare_depthwise_separable(spec, weights):
    """Depthwise stage factored by SVD, then the direct pointwise stage."""
    dw, pw = weights
    return (_prepare_dense(separable_stages(spec)[0], dw),
            prepare_pointwise(_pointwise_spec(spec, spec.c, spec.k, spec.out_size), pw))


@cell("depthwise_separable", "separable", prepare=_prepare_depthwise_separable,
      multiplications=lambda spec: sum(counts.depthwise_separable_count(spec)))
def _depthwise_separable(spec, x, state):
    depthwise, pointwise = state
    return execute_pointwise(_pointwise_spec(spec, spec.c, spec.k, spec.out_size),
                             execute_terms2d(x, depthwise), pointwise)


def _prepare_flattened(spec, weights):
    """Jin et al.'s three passes: lateral 1x1 over channels, then vertical and horizontal
    1-D filters per output channel (a rank-1 depthwise convolution)."""
    lat, ver, hor = weights
    lateral = prepare_pointwise(_pointwise_spec(spec, spec.c, spec.k, spec.size),
                                lat[:, :, None, None])
    if spec.flip:
        ver, hor = flip_spatial(ver, 1), flip_spatial(hor, 1)
    ks = np.arange(spec.k)
    return lateral, prepare_terms2d(spec.replace(c=spec.k), spec.k, ks, ks, ver, hor)


@cell("flattened", "separable", prepare=_prepare_flattened,
      multiplications=lambda spec: sum(counts.flattened_count(spec)))
def _flattened(spec, x, state):
    lateral, passes = state
    mid = execute_pointwise(_pointwise_spec(spec, spec.c, spec.k, spec.size), x, lateral)
    return execute_terms2d(mid, passes)


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


def _prepare_transposed(spec, weights):
    """The terms of the stride-1 correlation the zero-upsampled input is run through."""
    geo = _Geometry(n=spec.n, out_size=spec.out_size, kernel=spec.kernel, stride=(1, 1),
                    dilation=spec.dilation)
    lo = tuple(d * (k - 1) - p for k, p, d in zip(spec.kernel, spec.padding, spec.dilation))
    return prepare_terms2d(geo, spec.k, *transposed_terms(spec, weights[0]), padding=lo)


@cell("transposed2d", "separable", prepare=_prepare_transposed,
      multiplications=transposed_count)
def _transposed(spec, x, ordered):
    """Zero-upsample by the stride, then the passes of the stride-1 correlation."""
    if any(s > 1 for s in spec.stride):
        up = np.zeros((spec.n, spec.c, *(s * (i - 1) + 1 for i, s in zip(spec.size, spec.stride))),
                      np.float32)
        up[:, :, ::spec.stride[0], ::spec.stride[1]] = x
        x = up
    return execute_terms2d(x, ordered)


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


@dataclass(frozen=True)
class Ordered3D:
    """conv3d_terms regrouped into the order separable3d reads them for one thread count."""
    terms: tuple  # conv3d_terms, as factored
    threads: int
    bounds: np.ndarray
    starts: np.ndarray
    gc: np.ndarray
    gk: np.ndarray
    A: np.ndarray
    gt: np.ndarray
    U: np.ndarray
    V: np.ndarray


def order_terms3d(spec: ConvSpec, terms: tuple, threads: int | None = None) -> Ordered3D:
    threads = threads or numba.get_num_threads()
    gc, gk, A, gt, U, V = terms
    OD, OH, OW = spec.out_size
    kd, kh, kw = spec.kernel
    wspan = counts.padded_span(OW, kw, spec.stride[2], spec.dilation[2])
    bounds = _chunks(spec.k, max(1, ACC_FLOATS // (OH * wspan)), spec.n * OD, threads)
    order, starts = _plan(gk, gc, bounds)
    # regroup the terms in the new group order: group order[i]'s terms, in turn
    lens = np.diff(gt)[order]
    gt2 = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    take = np.repeat(gt[:-1][order] - gt2[:-1], lens) + np.arange(gt2[-1])
    return Ordered3D(terms, threads, bounds, starts, gc[order].astype(np.int64),
                     gk[order].astype(np.int64), np.ascontiguousarray(A[order]).reshape(-1, kd),
                     gt2, np.ascontiguousarray(U[take]).reshape(-1, kh),
                     np.ascontiguousarray(V[take]).reshape(-1, kw))


def _prepare_conv3d(spec, weights):
    if uses_bank(spec, counts.conv3d_count):
        return prepare_bank(spec, weights[0])
    return order_terms3d(spec, conv3d_terms(spec, weights[0]))


@cell("conv3d", "separable", prepare=_prepare_conv3d,
      multiplications=_cheaper_path(counts.conv3d_count))
def _conv3d(spec, x, ordered):
    if isinstance(ordered, BankPlan):
        return execute_bank(spec, x, ordered)
    threads = numba.get_num_threads()
    if ordered.threads != threads:  # the caller changed the thread count since preparing
        ordered = order_terms3d(spec, ordered.terms, threads)
    spans = [counts.padded_span(o, k, s, d) for o, k, s, d in zip(
        spec.out_size, spec.kernel, spec.stride, spec.dilation)]
    xf = pad_volumes(x, *spans, *spec.padding, SLACK)
    y = new_output(spec.output_shape)
    items = spec.n * spec.out_size[0] * (len(ordered.bounds) - 1)
    separable3d(xf, y, ordered.gc, ordered.gk, ordered.A, ordered.gt, ordered.U, ordered.V,
                ordered.bounds, ordered.starts,
                np.array([*spec.stride, *spec.dilation, *spans[1:], spec.c, spans[0]],
                         np.int64),
                int(np.diff(ordered.bounds).max()), blocks_for(items))
    return y


# --------------------------------------------------------------------- not applicable

for _t in select(kernel="1x1"):
    not_applicable(_t, "separable", "1x1 has no spatial extent to factor")


# --------------------------------------------------------------------- counts with weights

def separable_multiplications(conv_type: str, spec: ConvSpec, weights) -> int:
    """Multiplications of the separable cell on these weights (actual ranks, not full rank)."""
    if conv_type in DENSE_2D and uses_bank(spec, counts.dense_count) or (
            conv_type == "conv3d" and uses_bank(spec, counts.conv3d_count)):
        return counts.bank_count(spec, bank_ranks(spec, weights[0]))
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

