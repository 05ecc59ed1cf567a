"""The direct kernels on channels-last input and output (layout "nhwc"), with no transpose.

The register-blocked GEMM of `gemm.channel_block` reads every output pixel's window
as runs of channels and stores output channels k of pixel p at `yb[k, p]`; here x is
read where it lies, (n, *size, c), and y is written through a transposed view of
(n, *out_size, k), so the same blocks serve both layouts:

- pointwise (1x1, grouped or not, any stride): a pixel's input is one run of its c/g
  channels at x[b, pixel, g*c/g:], so the GEMM reads x itself (NCHW's form needs the
  lane panels of `dense.conv_lanes`);
- dense (every single-kernel type conv_dense runs): the packing of `conv_dense`,
  xp[n, g, padded D, H, W, c/g], is channels-last already, so from NHWC it is a
  padded copy (a transpose of planes from NCHW). Channels-last runs every spec on
  conv_dense, also those NCHW gives to the lane nests (`dense.takes_lanes`,
  `group_lanes`), which read NCHW planes.
- depthwise: the channels-in-lanes nest of depthwise.py (`lane_nest`) on every spec;
  a band's input rows are gathered as runs of CL channels, where NCHW transposes planes
  into lanes, and the outputs are stored as runs of channels, where NCHW transposes
  them back (NCHW's plane nest for large stride-1 planes needs no lanes at all).
- depthwise separable: the two stages above in turn, the middle tensor channels-last
  (NCHW chooses between them and fused.py by measuring: depthwise_separable.py).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numba import njit, prange

from ..blocks import PAR, PB, new_output
from ..layout import NHWC, output_shape
from ..spec import ConvSpec
from ..types import separable_stages
from .dense import PackedDense, kchunks_for, run_dense
from .depthwise import BAND_BYTES, DepthwiseTaps, prepare_lanes
from .gemm import channel_block, pack_blocked_weights, split_item
from .lane_block import CL
from .lane_nest import band_input, band_rows, band_taps, item_band, window_span, zero_padding
from .pointwise import PIXEL_CHUNK_BYTES, pack_pointwise


def _as_3d(values: tuple, fill: int) -> tuple:
    return (fill,) * (3 - len(values)) + tuple(values)


def output_view(spec: ConvSpec) -> tuple[np.ndarray, np.ndarray]:
    """(y, its view as (n, k, pixels)): the channels-last output and the transposed view
    the blocks store to with yb[k, p]."""
    y = new_output(output_shape(spec, NHWC))
    return y, y.reshape(spec.n, -1, spec.k).transpose(0, 2, 1)


# ---------------------------------------------------------------------------- pointwise
@njit(**PAR)
def conv_pointwise_nhwc(x, wb, outer, y, kmap, pix, pixels, kchunks):
    """y[n, kmap[k], p] = sum_c w[g, k, c] * x[n, pix[p], g*cg + c]: x the channels-last
    input as (n, input pixels, c), pix[p] the input pixel of output pixel p (the stride),
    y a (n, k, P) view. A work item is `pixels` pixels x one chunk of channel blocks."""
    n, _, C = x.shape
    groups = wb.shape[0]
    cg = C // groups
    P = pix.shape[0]
    kg = y.shape[1] // groups
    nblk = wb.shape[1]
    width = wb.shape[3] if outer else wb.shape[2]
    per_chunk = (nblk + kchunks - 1) // kchunks
    npb = (P + pixels - 1) // pixels
    for item in prange(n * groups * npb * kchunks):
        b, g, _, pb, ch = split_item(item, kchunks, npb, 1, groups)
        p0 = pb * pixels
        npix = min(pixels, P - p0)
        offs = np.empty(npix, np.int64)
        for p in range(npix):
            offs[p] = pix[p0 + p] * C + g * cg
        buf = x[b].ravel()
        km = kmap[g * kg:(g + 1) * kg]
        accs = np.empty((npix + PB) * width, np.float32)
        for blk in range(ch * per_chunk, min(nblk, (ch + 1) * per_chunk)):
            channel_block(buf, offs, npix, 1, cg, 0, wb[g, blk].ravel(), width, outer, y[b],
                          km, blk * width, kg, p0, accs)


@functools.lru_cache(maxsize=256)
def input_pixels(spec: ConvSpec) -> np.ndarray:
    """The input pixel (flat over the spatial axes) under each output pixel of a 1x1
    convolution: o * stride along each axis (no padding). Cached; no kernel writes it."""
    size = _as_3d(spec.size, 1)
    axes = np.ix_(*(np.arange(o, dtype=np.int64) * s for o, s in
                    zip(_as_3d(spec.out_size, 1), _as_3d(spec.stride, 1))))
    return ((axes[0] * size[1] + axes[1]) * size[2] + axes[2]).ravel()


def prepare_pointwise_nhwc(spec: ConvSpec, weights: tuple) -> PackedDense:
    """The 1x1 kernel w[k, c/g, 1, ...] packed for the register blocks."""
    return pack_pointwise(spec, weights[0])


def execute_pointwise_nhwc(spec: ConvSpec, x: np.ndarray, packed: PackedDense) -> np.ndarray:
    """The 1x1 convolution of channels-last x: (n, *size, c) -> (n, *out_size, k)."""
    y, yv = output_view(spec)
    pix = input_pixels(spec)
    cg = spec.c // spec.groups
    P = pix.shape[0]
    pixels = max(PB, min(P, PIXEL_CHUNK_BYTES // (4 * cg)) // PB * PB)
    items = spec.n * spec.groups * -(-P // pixels)
    conv_pointwise_nhwc(x.reshape(spec.n, -1, spec.c), packed.wb, packed.outer, yv,
                        packed.kmap, pix, pixels, kchunks_for(items, packed.wb.shape[1]))
    return y


# ---------------------------------------------------------------------------- dense
def pack_nhwc(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """x[n, *size, c] -> xp[n, g, D', H', W', c/g], zero-padded by spec.padding (2-D and
    1-D as 3-D with unit leading axes): conv_dense's packing, a padded copy for one group."""
    n, c, g = spec.n, spec.c, spec.groups
    size = _as_3d(spec.size, 1)
    pad = _as_3d(spec.padding, 0)
    xp = np.zeros((n, g, *(s + 2 * p for s, p in zip(size, pad)), c // g), np.float32)
    inner = tuple(slice(p, p + s) for s, p in zip(size, pad))
    xp[(slice(None), slice(None), *inner)] = np.moveaxis(
        x.reshape(n, *size, g, c // g), 4, 1)
    return xp


def prepare_dense_nhwc(spec: ConvSpec, w: np.ndarray,
                       kmap: np.ndarray | None = None) -> PackedDense:
    """The dense kernel w[k, c/g, *kernel] (flipped if the spec says so) packed for
    conv_dense, whatever nest NCHW would pick."""
    w5 = np.ascontiguousarray(w).reshape(w.shape[:2] + (1,) * (3 - spec.ndim) + w.shape[2:])
    wb, outer = pack_blocked_weights(w5, spec.groups, spec.flip)
    kmap = np.arange(spec.k) if kmap is None else kmap.astype(np.int64)
    return PackedDense(wb, outer, kmap)


def execute_dense_nhwc(spec: ConvSpec, x: np.ndarray, packed: PackedDense) -> np.ndarray:
    """Direct grouped convolution of channels-last x: (n, *size, c) -> (n, *out_size, k)."""
    xp = pack_nhwc(x, spec)
    y, yv = output_view(spec)
    run_dense(spec, xp, packed, yv)
    return y


def dense_nhwc_bytes(spec: ConvSpec) -> int:
    """What the channels-last dense form holds that kernels.memory's direct estimate does
    not count for a spec NCHW runs on the lane nests: the padded copy of the input."""
    size = _as_3d(spec.size, 1)
    pad = _as_3d(spec.padding, 0)
    return 4 * spec.n * spec.c * math.prod(s + 2 * p for s, p in zip(size, pad))


# ---------------------------------------------------------------------------- depthwise
@njit(**PAR)
def conv_depthwise_nhwc(x, wl, taps, pixels_in, windows, y, stride, padding, Wp, span, band):
    """y[n, oh, ow, c] = sum over the taps of x[n, ih, iw, c] * w[c, tap]: x and y
    channels-last, the channels in the vector lanes. A work item is one block of CL
    channels x `band` output rows; wl[channel blocks, taps*CL] the weights (as
    depthwise.prepare_lanes lays them out), taps, pixels_in and windows as lane_nest's."""
    n, H, W, C = x.shape
    OH, OW = y.shape[1], y.shape[2]
    ncb = wl.shape[0]
    plane = ((band - 1) * stride[0] + span) * Wp * CL
    nbands = (OH + band - 1) // band
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    for item in prange(n * ncb * nbands):
        bnd = item % nbands
        cb = (item // nbands) % ncb
        b = item // (nbands * ncb)
        c0 = cb * CL
        nl = min(CL, C - c0)
        oh0 = bnd * band
        noh = min(band, OH - oh0)
        npix = noh * OW
        top, ih0, nrows = band_input(oh0, noh, H, stride, padding, span)
        xin = np.empty(plane, np.float32)
        zero_padding(xin, Wp, W, padding[1], ih0 - top, nrows)
        base = (ih0 - top) * Wp * CL
        src = ((b * H + ih0) * W) * C + c0
        for q in range(nrows * W):  # a pixel's channels are one run: no transpose
            d = base + pixels_in[q]
            xin[d:d + nl] = xf[src + q * C:src + q * C + nl]
            xin[d + nl:d + CL] = 0
        out = np.empty((npix + 1) * CL, np.float32)  # band_taps writes one pixel more
        band_taps(xin, wl[cb], 0, 1, taps, windows, oh0 * OW, npix, windows[oh0 * OW], 0, CL,
                  0, out)
        dst = (b * OH * OW + oh0 * OW) * C + c0
        for p in range(npix):
            yf[dst + p * C:dst + p * C + nl] = out[p * CL:p * CL + nl]


def prepare_depthwise_nhwc(spec: ConvSpec, weights: tuple) -> DepthwiseTaps:
    """The taps of w[c, 1, KH, KW] for channels in lanes, whatever nest NCHW would pick."""
    return prepare_lanes(spec, weights[0])


def execute_depthwise_nhwc(spec: ConvSpec, x: np.ndarray, taps: DepthwiseTaps) -> np.ndarray:
    """Depthwise convolution of channels-last x: (n, H, W, c) -> (n, OH, OW, c)."""
    y = new_output(output_shape(spec, NHWC))
    OH = spec.out_size[0]
    band = item_band(OH, band_rows(OH, spec.stride[0] * taps.Wq * CL * 4, BAND_BYTES),
                     spec.n * taps.taps.shape[0], numba.get_num_threads())
    conv_depthwise_nhwc(x, taps.taps, taps.offs, taps.pixels_in, taps.windows, y, spec.stride,
                        spec.padding, taps.Wq, window_span(spec), band)
    return y


# ---------------------------------------------------------------------------- separable
def prepare_separable_nhwc(spec: ConvSpec, weights: tuple) -> tuple:
    """The depthwise taps and the packed pointwise kernel of the two stages."""
    dw_spec, pw_spec = separable_stages(spec)
    return (prepare_depthwise_nhwc(dw_spec, weights[:1]),
            prepare_pointwise_nhwc(pw_spec, weights[1:]))


def execute_separable_nhwc(spec: ConvSpec, x: np.ndarray, state: tuple) -> np.ndarray:
    """Depthwise, then pointwise, channels-last throughout."""
    dw_spec, pw_spec = separable_stages(spec)
    return execute_pointwise_nhwc(pw_spec, execute_depthwise_nhwc(dw_spec, x, state[0]),
                                  state[1])
