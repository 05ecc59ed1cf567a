"""Depthwise separable convolution fused: depthwise -> pointwise per band of output pixels.

Run as two kernels, the depthwise output (c channels at the output size) goes
to memory in NCHW, is packed channels-last again for the pointwise GEMM and
read back: two extra passes over a tensor as large as the input. Fused, a work
item takes a band of output pixels (whole rows or not) and, per channel block,
gathers its input rows with channels in lanes, computes the depthwise outputs
on the lanes register block (`depthwise.gather_band`, `depthwise.depthwise_band`)
and transposes them into `mid`, a buffer of the band's depthwise outputs sized
for L2. The pointwise GEMM then runs on `mid` with the outer-product register
block of `gemm.channel_block` (`outer_block.outer_product`, 6 x 32 on AVX-512,
6 x 16 on AVX2), oriented for NCHW: pixels in the vector lanes (mid[pixel
block, c, WIDTH pixels]), six output channels broadcast from the raw pointwise
weights w[k, c]. So each result row is a contiguous run of y, stored once with
no scalar scatter, and the pointwise weights need no packing (in call mode the
packing of a 1024 x 1024 pointwise kernel took as long as its GEMM). Measured
against `channel_block` itself on the buffer (channels in lanes, packed
weights): 3-20% faster on MobileNetV1's blocks, 1 thread. The cost: a band pads
its pixels to whole blocks of WIDTH (a 7x7 plane computes 64 pixels for 49).

Where the bands are too few items for the threads, the output channels are
split as well, and each item recomputes its band's depthwise part (`split_work`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR, new_output
from ..outer_block import LANES, PT, WIDE, outer_product
from ..spec import ConvSpec
from ..target import l2_share
from ..types import separable_stages
from .depthwise import CL, DepthwiseTaps, depthwise_band, gather_band, prepare_lanes
from .lane_block import lanes_out
from .lane_nest import band_input, window_span, zero_padding

WIDTH = 2 * LANES if WIDE else LANES  # pixels per GEMM block (the outer block's vectors)
MID_BYTES = l2_share(256 << 10)  # the depthwise outputs of one band (all channels), in L2
L2_BYTES = l2_share(1 << 20)  # the most one band may hold when it is the whole plane


@njit(**JIT)
def _store_rows(acc, y, b, k0, K, p0, cnt):
    """y[b, k0 + i, p0:p0 + cnt] (pixels flat) = acc[i*WIDTH:i*WIDTH + cnt] for the rows
    of the block that are real output channels."""
    for i in range(PT):
        if k0 + i < K:
            yr = y[b, k0 + i].ravel()[p0:p0 + cnt]
            a = acc[i * WIDTH:i * WIDTH + cnt]
            for t in range(cnt):
                yr[t] = a[t]


@njit(**PAR)
def conv_depthwise_pointwise(x, wl, offs, pixels_in, windows, stride, padding, Wp, span, pw, y,
                             band, kchunks):
    """y[b, k] = sum_c pw[k, c] * (x[b, c] (*) dw[c]); a work item is `band` output pixels
    (a multiple of WIDTH; rows flattened) x one chunk of the groups of PT output channels."""
    n, C, H, W = x.shape
    K, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    P = OH * OW
    ncb = wl.shape[0]
    Cp = ncb * CL  # channels of mid: whole channel blocks
    groups = (K + PT - 1) // PT
    per_chunk = (groups + kchunks - 1) // kchunks
    nbands = (P + band - 1) // band
    for item in prange(n * nbands * kchunks):
        ch = item % kchunks
        bnd = (item // kchunks) % nbands
        b = item // (kchunks * nbands)
        p0 = bnd * band
        npix = min(band, P - p0)
        npad = (npix + WIDTH - 1) // WIDTH * WIDTH
        oh0 = p0 // OW  # the output rows the pixels touch, and their input rows
        noh = (p0 + npix - 1) // OW - oh0 + 1
        top, ih0, nrows = band_input(oh0, noh, H, stride, padding, span)
        xin = np.empty(((noh - 1) * stride[0] + span) * Wp * CL, np.float32)
        zero_padding(xin, Wp, W, padding[1], ih0 - top, nrows)  # the same for every block
        lanes = np.empty((npad + 1) * CL, np.float32)  # pixels past npix: never stored
        mid = np.empty(npad * Cp, np.float32)
        for cb in range(ncb):
            gather_band(x, b, cb * CL, ih0, nrows, xin, (ih0 - top) * Wp * CL, pixels_in)
            depthwise_band(xin, wl[cb], offs, windows, p0, npix, windows[oh0 * OW], 0, CL,
                           lanes)
            for q0 in range(0, npad, CL):  # lanes[p, l] -> mid[p // WIDTH, cb*CL + l, p % WIDTH]
                lanes_out(lanes, q0 * CL, mid,
                          (q0 // WIDTH) * Cp * WIDTH + cb * CL * WIDTH + q0 % WIDTH, WIDTH, CL)
        acc = np.empty(PT * WIDTH, np.float32)
        for g in range(ch * per_chunk, min(groups, (ch + 1) * per_chunk)):
            k0 = g * PT
            last = K - 1
            a0, a1, a2 = k0 * C, min(k0 + 1, last) * C, min(k0 + 2, last) * C
            a3, a4, a5 = min(k0 + 3, last) * C, min(k0 + 4, last) * C, min(k0 + 5, last) * C
            for pb in range(npad // WIDTH):
                outer_product(WIDE, False, mid, pb * Cp * WIDTH, pw, a0, a1, a2, a3, a4, a5, C,
                              acc, 0)
                _store_rows(acc, y, b, k0, K, p0 + pb * WIDTH, min(WIDTH, npix - pb * WIDTH))


def split_work(P: int, cp: int, k: int, threads: int) -> tuple[int, int]:
    """(pixels per band, chunks of output channels) for a plane of P output pixels.

    Bands are whole GEMM blocks of pixels whose depthwise outputs (cp channels) fit
    MID_BYTES; among the band counts from there up, the one that loads the busiest
    thread least (blocks are coarse: 7 blocks do not split evenly over 2 threads).
    If even that leaves the threads uneven by more than recomputing the depthwise part
    costs (about 20 multiply-adds per pixel and channel, against k for the GEMM), the
    plane is one band (if its outputs fit L2) and the output channels are split instead.
    """
    blocks = -(-P // WIDTH)
    most = max(WIDTH, MID_BYTES // (4 * cp) // WIDTH * WIDTH)
    load, band = None, WIDTH
    for bands in range(-(-P // most), blocks + 1):
        b = -(-blocks // bands) * WIDTH
        items = -(-P // b)
        busiest = -(-items // threads) * b  # pixels on the busiest thread
        if load is None or busiest < load:
            load, band = busiest, b
        if items >= 4 * threads:
            break
    uneven = load / (blocks * WIDTH / threads) - 1
    if threads > 1 and uneven > 20 / k and blocks * WIDTH * 4 * cp <= L2_BYTES:
        return blocks * WIDTH, min(-(-k // PT), threads)
    return band, 1


@dataclass(frozen=True)
class FusedSeparable:
    """The weight-only part: depthwise taps with channels in lanes, the pointwise weights
    as w[k, c] (the GEMM broadcasts them as they come)."""
    dw: DepthwiseTaps
    pw: np.ndarray


def prepare_fused(spec: ConvSpec, weights) -> FusedSeparable:
    dw, pw = weights
    dw_spec, _ = separable_stages(spec)
    return FusedSeparable(prepare_lanes(dw_spec, dw),
                          pw.reshape(spec.k, spec.c).astype(np.float32, order="C", copy=True))


def execute_fused(spec: ConvSpec, x: np.ndarray, state: FusedSeparable) -> np.ndarray:
    dw = state.dw
    P = spec.out_size[0] * spec.out_size[1]
    band, kchunks = split_work(P, dw.taps.shape[0] * CL, spec.k, numba.get_num_threads())
    y = new_output(spec.output_shape)
    conv_depthwise_pointwise(x, dw.taps, dw.offs, dw.pixels_in, dw.windows, spec.stride,
                             spec.padding, dw.Wq, window_span(spec), state.pw, y, band,
                             kchunks)
    return y
