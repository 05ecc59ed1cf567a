"""Direct depthwise convolution: one 2-D filter per channel, two loop nests, one rule.

- Large stride-1 planes (`conv_depthwise_planes`): each channel plane is
  independent, so a thread takes whole planes in NCHW. The plane is copied once
  into a zero-padded buffer split into stride phases (column j of phase q holds
  padded column j*s + q), so every tap reads a unit-stride run along an output
  row with no bounds tests; taps are summed nine at a time. No layout change.
- Everything else (`lane_nest.conv_group_lanes`, the groups-in-lanes nest with one
  channel per group): small planes, whose rows of 7 to 28 pixels leave the vector
  units idle, and strided layers, whose phase split costs a pass over a large
  input: channels in the vector lanes (CL = 16 on
  AVX-512, 8 on AVX2). A work item (one block of CL channels x a band of output
  rows) transposes its input rows into lanes in registers (`lane_block.lanes_in`,
  CL x CL at a time), runs every output pixel's taps as FMAs of contiguous
  channel vectors, 4 pixels per register block (`lane_block.lane_taps`), and
  transposes the outputs back into NCHW (`lanes_out`). The gathered rows of a band
  stay in L1. The fused depthwise separable kernel (fused.py) uses the same
  pieces.

The rule (`uses_planes`): the plane nest for stride 1 and at least SMALL_PLANE
output pixels, measured faster at 56x56 and 112x112 (it needs no transposes);
lanes below (28x28 to 7x7: 1.4-1.8x faster than the plane nest, 1 thread, AVX-512)
and at any stride (stride 2 from 112x112 and 56x56: 1.7x and 2.3x).

Indices are cast to uint64 where they are computed from offsets: Numba then
skips the negative-index wraparound select that would stop LLVM from
emitting plain vector loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange, uint64

from ..blocks import JIT, PAR, new_output
from ..spec import ConvSpec
from ..target import l1d_share
from ..types import flip_spatial
from .lane_block import CL
from .lane_nest import (
    band_rows,
    band_taps,
    conv_group_lanes,
    gather_lanes,
    item_band,
    lane_tables,
    tap_offsets,
    window_span,
)

# From this many output pixels (stride 1) the plane nest is faster: between 28x28 (lanes
# 1.4x faster) and 56x56 (planes 1.05x faster).
SMALL_PLANE = 40 * 40


@njit(**JIT)
def _nine_taps(yf, y0, buf, base, offs, wv, first, n):
    """yf[y0:y0+n] (+)= sum of 9 taps wv[i] * buf[base + offs[i] + (0..n)].

    Nine taps per pass keep the partial sum in a register: one store per
    output instead of one load and store per tap.
    """
    w0, w1, w2, w3, w4 = wv[0], wv[1], wv[2], wv[3], wv[4]
    w5, w6, w7, w8 = wv[5], wv[6], wv[7], wv[8]
    b0, b1, b2 = uint64(base + offs[0]), uint64(base + offs[1]), uint64(base + offs[2])
    b3, b4, b5 = uint64(base + offs[3]), uint64(base + offs[4]), uint64(base + offs[5])
    b6, b7, b8 = uint64(base + offs[6]), uint64(base + offs[7]), uint64(base + offs[8])
    yu = uint64(y0)
    for t in range(n):
        u = uint64(t)
        v = (w0 * buf[b0 + u] + w1 * buf[b1 + u] + w2 * buf[b2 + u] + w3 * buf[b3 + u]
             + w4 * buf[b4 + u] + w5 * buf[b5 + u] + w6 * buf[b6 + u] + w7 * buf[b7 + u]
             + w8 * buf[b8 + u])
        if first:
            yf[yu + u] = v
        else:
            yf[yu + u] += v


@njit(**PAR)
def conv_depthwise_planes(x, w9, offs, y, stride, padding, Hp, Wq, items):
    """y[n, c] = x[n, c] (*) w[c] plane by plane (NCHW).

    w9[c, blocks, 9] are the taps in blocks of nine (zero-padded), offs[blocks, 9]
    their offsets in the stride-phase buffer (see prepare_depthwise).
    """
    sw = stride[1]
    nblk = w9.shape[1]
    planes = x.shape[0] * x.shape[1]
    per_item = (planes + items - 1) // items
    for item in prange(items):
        # one buffer per item, not per plane: 1024 small planes would pay 1024 allocations
        buf = np.zeros(sw * Hp * Wq, np.float32)
        row = np.zeros(sw * Wq + sw, np.float32)  # one zero-padded input row
        for plane in range(item * per_item, min(planes, (item + 1) * per_item)):
            _one_plane(x, w9, offs, y, plane, buf, row, stride, padding, Hp, Wq, nblk)


@njit(**JIT)
def _one_plane(x, w9, offs, y, plane, buf, row, stride, padding, Hp, Wq, nblk):
    """One channel plane; the padding borders of buf and row are zero and stay zero."""
    n, c, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    sh, sw = stride
    ph, pw = padding
    ch = plane % c
    b = plane // c
    xf = x[b, ch].ravel()
    yf = y[b, ch].ravel()
    for ih in range(H):
        if sw == 2:
            # pad the row, then split even and odd columns in one pass: both loads in
            # one iteration let LLVM vectorise the deinterleave with shuffles
            row[pw:pw + W] = xf[ih * W:(ih + 1) * W]
            d0 = uint64((ih + ph) * Wq)
            d1 = uint64((Hp + ih + ph) * Wq)
            for j in range(Wq):
                u = uint64(j)
                buf[d0 + u] = row[2 * u]
                buf[d1 + u] = row[2 * u + 1]
            continue
        for q in range(sw):
            # phase q, column j holds padded column j*sw + q = input column j*sw + q - pw
            j0 = max(0, (pw - q + sw - 1) // sw)
            j1 = (W - 1 + pw - q) // sw + 1
            dst = uint64((q * Hp + ih + ph) * Wq)
            src = ih * W + q - pw
            for j in range(j0, j1):
                buf[dst + uint64(j)] = xf[uint64(src + j * sw)]
    for oh in range(OH):
        for blk in range(nblk):
            _nine_taps(yf, oh * OW, buf, oh * sh * Wq, offs[blk], w9[ch, blk], blk == 0, OW)


def _plane_taps(spec: ConvSpec, w: np.ndarray):
    """Weights in blocks of nine taps and each tap's offset in the stride-phase buffer."""
    (KH, KW), sw, (ph, pw), (dh, dw) = spec.kernel, spec.stride[1], spec.padding, spec.dilation
    Hp = spec.size[0] + 2 * ph
    Wq = (spec.size[1] + 2 * pw + sw - 1) // sw + (KW * dw) // sw + 1  # columns per phase
    taps = [(kh, kw) for kh in range(KH) for kw in range(KW)]
    nblk = -(-len(taps) // 9)
    w9 = np.zeros((spec.c, nblk, 9), np.float32)
    offs = np.zeros((nblk, 9), np.int64)
    for i in range(nblk * 9):
        kh, kw = taps[min(i, len(taps) - 1)]  # padding taps reuse a valid offset, weight 0
        col = kw * dw
        offs[i // 9, i % 9] = ((col % sw) * Hp + kh * dh) * Wq + col // sw
        if i < len(taps):
            w9[:, i // 9, i % 9] = w[:, 0, kh, kw]
    return w9, offs, Hp, Wq


# ---- channels in lanes: small planes and strided layers (and the fused dw -> pw kernel) ----

ONE_CHANNEL = np.zeros(1, np.int64)  # kmap0 of depthwise: one output channel per group
BAND_BYTES = l1d_share(24 << 10)  # input rows of one channel block a work item gathers (L1)


@njit(**JIT)
def gather_band(x, b, c0, ih0, nrows, xin, base, pixels_in):
    """xin[base + pixels_in[q] + l] = x[b, c0 + l] (flat) at pixel ih0*W + q, for the
    nrows*W pixels q of rows ih0..: channels into lanes (gather_lanes); lanes past the
    last channel get zeros."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    gather_lanes(x.reshape(-1), ((b * C + c0) * H + ih0) * W, H * W, min(CL, C - c0),
                 nrows * W, xin, base, pixels_in)


@njit(**JIT)
def depthwise_band(xin, wl, offs, windows, p0, npix, wbase, obase, ostride, out):
    """out[obase + p*ostride + l] = the depthwise output of pixel p0 + p, lane l (band_taps
    with one output channel per group); out needs one pixel more."""
    band_taps(xin, wl, 0, 1, offs, windows, p0, npix, wbase, obase, ostride, 0, out)


def lane_weights(spec: ConvSpec, w: np.ndarray, Wp: int):
    """w[c, 1, KH, KW] -> (wl[c blocks, taps*CL], channels in lanes, zero past c; offs[taps],
    each tap's offset in the gathered rows of padded width Wp)."""
    KH, KW = spec.kernel
    ncb = -(-spec.c // CL)
    wl = np.zeros((ncb * CL, KH * KW), np.float32)
    wl[:spec.c] = w[:, 0].reshape(spec.c, KH * KW)
    wl = np.ascontiguousarray(wl.reshape(ncb, CL, KH * KW).transpose(0, 2, 1))
    return wl.reshape(ncb, KH * KW * CL), tap_offsets(spec, Wp)


@dataclass(frozen=True)
class DepthwiseTaps:
    """The weight-only part of a depthwise call, oriented for the nest the spec picks."""
    planes: bool             # the NCHW plane nest (else channels in lanes)
    taps: np.ndarray         # planes: w9[c, blocks, 9]; lanes: wl[c blocks, taps*CL]
    offs: np.ndarray         # each tap's offset in the stride-phase buffer / gathered rows
    Hp: int = 0              # planes: padded height of the stride-phase buffer
    Wq: int = 0              # planes: columns per phase; lanes: padded width Wp
    pixels_in: np.ndarray | None = None  # lanes: see lane_tables
    windows: np.ndarray | None = None


def uses_planes(spec: ConvSpec) -> bool:
    """The one rule between the nests: NCHW planes for large stride-1 planes, where a row
    of outputs fills many vectors and no layout change is needed; channels in lanes for
    the rest (small planes, strided layers)."""
    oh, ow = spec.out_size
    return spec.stride == (1, 1) and oh * ow >= SMALL_PLANE


def oriented(spec: ConvSpec, w: np.ndarray) -> np.ndarray:
    """w[c, 1, KH, KW], flipped for a true convolution."""
    return np.ascontiguousarray(flip_spatial(w, 2)) if spec.flip else w


def prepare_depthwise(spec: ConvSpec, w: np.ndarray) -> DepthwiseTaps:
    """Orient w[c, 1, KH, KW] (flip) and lay it out for the nest that runs `spec`."""
    if uses_planes(spec):
        w9, offs, Hp, Wq = _plane_taps(spec, oriented(spec, w))
        return DepthwiseTaps(True, w9, offs, Hp, Wq)
    return prepare_lanes(spec, w)


def prepare_lanes(spec: ConvSpec, w: np.ndarray) -> DepthwiseTaps:
    """The taps of w[c, 1, KH, KW] (flipped if the spec says so) for channels in lanes."""
    Wp = spec.size[1] + 2 * spec.padding[1]
    wl, offs = lane_weights(spec, oriented(spec, w), Wp)
    return DepthwiseTaps(False, wl, offs, 0, Wp, *lane_tables(spec, Wp))


def execute_depthwise(spec: ConvSpec, x: np.ndarray, taps: DepthwiseTaps) -> np.ndarray:
    y = new_output(spec.output_shape)
    if taps.planes:
        items = min(spec.n * spec.c, 8 * numba.get_num_threads())
        conv_depthwise_planes(x, taps.taps, taps.offs, y, spec.stride, spec.padding, taps.Hp,
                              taps.Wq, items)
        return y
    OH = spec.out_size[0]
    band = item_band(OH, band_rows(OH, spec.stride[0] * taps.Wq * CL * 4, BAND_BYTES),
                     spec.n * taps.taps.shape[0], numba.get_num_threads())
    # the groups-in-lanes nest with one input and one output channel per group
    conv_group_lanes(x, taps.taps, taps.offs, taps.pixels_in, taps.windows, y, ONE_CHANNEL, 1,
                     spec.stride, spec.padding, taps.Wq, window_span(spec), band, 1,
                     OH * spec.out_size[1])
    return y
