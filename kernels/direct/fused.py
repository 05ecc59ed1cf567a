"""Depthwise separable convolution fused: depthwise -> pointwise per band of output rows.

Run as two kernels, the depthwise output (c channels at the output size) goes
to memory in NCHW, is packed channels-last again for the pointwise GEMM and
read back: two extra passes over a tensor as large as the input. Fused, a
work item takes a band of output rows, computes the depthwise outputs of every
channel block for that band with channels in lanes (`depthwise.gather_band`,
`depthwise.depthwise_band`) straight into a channels-last buffer sized for L2
(`mid[pixel, channel]`), and runs the pointwise register blocks
(`gemm.channel_block`) on that buffer, writing y once. Where a band is too few
items for the threads, the output channels are split as well and each item
recomputes its band's depthwise part (9 multiply-adds per pixel and channel
against k per pixel and channel for the GEMM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..blocks import PAR, PB, new_output
from ..spec import ConvSpec
from ..types import separable_stages
from .dense import PackedDense, kchunks_for
from .depthwise import (
    CL,
    DepthwiseTaps,
    band_geometry,
    band_offsets,
    band_rows,
    depthwise_band,
    gather_band,
    prepare_lanes,
    window_span,
)
from .gemm import channel_block, outer_width, split_item
from .lane_block import lanes_in
from .pointwise import prepare_pointwise

MID_BYTES = 192 * 1024  # the channels-last depthwise output of one band, kept in L2


@njit(**PAR)
def conv_depthwise_pointwise(x, wl, offs, stride, padding, Wp, span, wb, outer, y, kmap, band,
                             kchunks):
    """y[b, k] = sum_c pw[k, c] * (x[b, c] (*) dw[c]); a work item is `band` output rows x
    one chunk of the pointwise output-channel blocks."""
    n, C, H, W = x.shape
    K, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    ncb = wl.shape[0]
    Cp = ncb * CL  # the row stride of mid: whole channel blocks
    nblk = wb.shape[1]
    width = wb.shape[3] if outer else wb.shape[2]
    per_chunk = (nblk + kchunks - 1) // kchunks
    nbands = (OH + band - 1) // band
    for item in prange(n * nbands * kchunks):
        b, _, _, bnd, ch = split_item(item, kchunks, nbands, 1, 1)
        oh0 = bnd * band
        noh = min(band, OH - oh0)
        npix = noh * OW
        xin = np.zeros(((noh - 1) * stride[0] + span) * Wp * CL, np.float32)
        ih0, nrows, dst = band_geometry(oh0, noh, H, W, stride, padding, span, Wp)
        ain, dout = band_offsets(noh, OW, stride, Wp, Cp, npix * Cp)
        mid = np.empty((npix + 1) * Cp, np.float32)
        for cb in range(ncb):
            gather_band(x, b, cb * CL, ih0, nrows, xin, dst)
            depthwise_band(xin, wl[cb], offs, ain, dout, cb * CL, mid)
        poffs = np.arange(npix) * Cp
        accs = np.empty((npix + PB) * width, np.float32)
        yb = y[b].reshape(K, OH * OW)
        for blk in range(ch * per_chunk, min(nblk, (ch + 1) * per_chunk)):
            channel_block(mid, poffs, npix, 1, C, 0, wb[0, blk].ravel(), width, outer, yb, kmap,
                          blk * width, K, oh0 * OW, accs)


@njit(**PAR)
def _pack_pointwise(w, out):
    """out[blk, c, q] = w[blk*width + q, c], zero past k: the outer block's layout of the
    1x1 weights w[k, c], as CL x CL transposes in registers (`lanes_in`). Needs c >= CL."""
    K, C = w.shape
    nblk, width = out.shape[0], out.shape[2]
    sub = width // CL
    cols = np.arange(C) * width  # where input channel c goes in a block
    for item in prange(nblk * sub):
        k0 = item * CL  # blocks of `width` channels are `sub` runs of CL
        if k0 >= K:
            continue
        nl = min(CL, K - k0)
        base = (item // sub) * C * width + (item % sub) * CL
        for c0 in range(0, C - CL + 1, CL):
            lanes_in(w, k0 * C + c0, C, nl, out, base, cols, c0)
        if C % CL:  # the last CL input channels again, overlapping
            lanes_in(w, k0 * C + C - CL, C, nl, out, base, cols, C - CL)


def pack_pointwise(spec: ConvSpec, w: np.ndarray) -> PackedDense:
    """The pointwise weights w[k, c, 1, 1] for the register blocks: the layout of
    `pointwise.prepare_pointwise`, packed in one pass of register transposes where the
    outer block runs (at 1024 x 1024 its generic packing took as long as the GEMM)."""
    width = outer_width(spec.k)
    if not width or spec.c < CL:
        return prepare_pointwise(spec, w)
    nblk = -(-spec.k // width)
    out = np.zeros((nblk, spec.c, width), np.float32)
    _pack_pointwise(np.ascontiguousarray(w.reshape(spec.k, spec.c)), out)
    return PackedDense(out.reshape(1, nblk, spec.c, width), True, np.arange(spec.k))


@dataclass(frozen=True)
class FusedSeparable:
    """The weight-only part: depthwise taps with channels in lanes, packed pointwise weights."""
    dw: DepthwiseTaps
    pw: PackedDense


def prepare_fused(spec: ConvSpec, weights) -> FusedSeparable:
    dw, pw = weights
    dw_spec, pw_spec = separable_stages(spec)
    return FusedSeparable(prepare_lanes(dw_spec, dw), pack_pointwise(pw_spec, pw))


def execute_fused(spec: ConvSpec, x: np.ndarray, state: FusedSeparable) -> np.ndarray:
    OH, OW = spec.out_size
    dw, pw = state.dw, state.pw
    cp = dw.taps.shape[0] * CL
    band = band_rows(OH, OW * cp * 4, MID_BYTES)
    items = spec.n * -(-OH // band)
    y = new_output(spec.output_shape)
    conv_depthwise_pointwise(x, dw.taps, dw.offs, spec.stride, spec.padding, dw.Wq,
                             window_span(spec), pw.wb, pw.outer, y, pw.kmap, band,
                             kchunks_for(items, pw.wb.shape[1]))
    return y

