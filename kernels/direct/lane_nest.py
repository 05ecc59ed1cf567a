"""The groups-in-lanes loop nest: depthwise and grouped convolutions with one GROUP per
vector lane (CL = 16 on AVX-512, 8 on AVX2).

Lane l of a block holds group g0 + l. For cg input and kg output channels per group
(depthwise: cg = kg = 1), a work item (one block of CL groups x a band of output rows):

- gathers, for each j < cg, the band's input rows of channels (g0 + l)*cg + j into lanes
  (`lane_block.lanes_in`, CL x CL at a time), xin[j][row][col][lane], zero-padded;
- runs each output pixel's window, cg x taps contiguous vectors, as FMAs on the
  PIXELS x kb register block (`lane_block.lane_taps*`: kb output channels of the group
  per pass share each input load);
- transposes the outputs back (`lanes_out`): output channel kk of group g0 + l is
  kmap0[kk] + (g0 + l)*kstep (kstep = kg, or 1 after ShuffleNet's shuffle).

Strides and dilations need no copy of the input: the window offsets encode them. The
pixels of a band meet the output channels `chunk` at a time, so a few pixels' input rows
stay in L1 while the weights of every output channel stream past them.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..blocks import JIT, PAR
from ..spec import ConvSpec
from .lane_block import CL, PIXELS, lane_taps, lane_taps2, lane_taps4, lanes_in, lanes_out


@njit(**JIT)
def band_input(oh0, noh, H, stride, padding, span):
    """The input rows of output rows oh0..oh0+noh-1: (top, ih0, nrows), top the input row
    of the gathered row 0 (negative in the top padding), ih0..ih0+nrows-1 the rows inside x."""
    top = oh0 * stride[0] - padding[0]
    ih0 = max(0, top)
    return top, ih0, max(0, min(H, top + (noh - 1) * stride[0] + span) - ih0)


@njit(**JIT)
def zero_padding(xin, Wp, W, pw, r0, nrows):
    """Zero what gather_lanes leaves: the gathered rows outside x (all but r0..r0+nrows-1)
    and the left and right padding columns of the others."""
    rl = Wp * CL
    xin[:r0 * rl] = 0
    xin[(r0 + nrows) * rl:] = 0
    for r in range(r0, r0 + nrows):
        xin[r * rl:r * rl + pw * CL] = 0
        xin[r * rl + (pw + W) * CL:(r + 1) * rl] = 0


@njit(**JIT)
def gather_lanes(xf, src, cstride, nl, S, xin, base, pixels_in):
    """xin[base + pixels_in[q] + l] = xf[src + l*cstride + q] for the S pixels q of a run of
    whole rows and the nl <= CL lanes l; lanes past nl get zeros. pixels_in[q] is pixel q's
    place in the gathered rows (lane_tables)."""
    if S >= CL:
        for q0 in range(0, S - CL + 1, CL):
            lanes_in(xf, src + q0, cstride, nl, xin, base, pixels_in, q0)
        if S % CL:  # the last CL pixels again, overlapping: the same values land twice
            lanes_in(xf, src + S - CL, cstride, nl, xin, base, pixels_in, S - CL)
        return
    for q in range(S):
        for l in range(CL):
            xin[base + pixels_in[q] + l] = xf[src + l * cstride + q] if l < nl else 0


@njit(**JIT)
def _block(windows, p0, p, last, wbase, obase, ostride, npix):
    """The window starts (a0..a3) and output places (d0..d3) of the block at pixel p."""
    return (windows[p0 + p] - wbase, windows[min(p0 + p + 1, last)] - wbase,
            windows[min(p0 + p + 2, last)] - wbase, windows[min(p0 + p + 3, last)] - wbase,
            obase + p * ostride, obase + min(p + 1, npix) * ostride,
            obase + min(p + 2, npix) * ostride, obase + min(p + 3, npix) * ostride)


@njit(**JIT)
def band_taps(xin, wl, wo, kb, offs, windows, p0, npix, wbase, obase, ostride, dk, out):
    """out[obase + p*ostride + k*dk + l] = output k < kb of pixel p0 + p, lane l, for
    p < npix: wl[wo:] the taps of kb output channels (tap i, channel k at (i*kb + k)*CL),
    offs[taps] their offsets, windows[p0 + p] - wbase the pixel's window in the gathered
    rows. The tail block repeats the last pixel into out[obase + npix*ostride + k*dk:],
    which must exist (one pixel more). One loop per kb: a branch on kb inside the loop
    cost depthwise (kb = 1) 7% on 14x14 planes."""
    n = offs.shape[0]
    last = p0 + npix - 1
    if kb == 4:
        for p in range(0, npix, PIXELS):
            a0, a1, a2, a3, d0, d1, d2, d3 = _block(windows, p0, p, last, wbase, obase,
                                                    ostride, npix)
            lane_taps4(xin, a0, a1, a2, a3, wl, wo, offs, 0, n, out, d0, d1, d2, d3, dk)
    elif kb == 2:
        for p in range(0, npix, PIXELS):
            a0, a1, a2, a3, d0, d1, d2, d3 = _block(windows, p0, p, last, wbase, obase,
                                                    ostride, npix)
            lane_taps2(xin, a0, a1, a2, a3, wl, wo, offs, 0, n, out, d0, d1, d2, d3, dk)
    else:
        for p in range(0, npix, PIXELS):
            a0, a1, a2, a3, d0, d1, d2, d3 = _block(windows, p0, p, last, wbase, obase,
                                                    ostride, npix)
            lane_taps(xin, a0, a1, a2, a3, wl, wo, offs, 0, n, out, d0, d1, d2, d3)


@njit(**JIT)
def scatter_lanes(out, o0, yf, base, cstride, nl, npix):
    """yf[base + l*cstride + p] = out[o0 + p*CL + l] for the npix pixels p and nl lanes l."""
    if npix >= CL:
        for q0 in range(0, npix - CL + 1, CL):
            lanes_out(out, o0 + q0 * CL, yf, base + q0, cstride, nl)
        if npix % CL:
            lanes_out(out, o0 + (npix - CL) * CL, yf, base + npix - CL, cstride, nl)
        return
    for l in range(nl):
        for p in range(npix):
            yf[base + l * cstride + p] = out[o0 + p * CL + l]


@njit(**PAR)
def conv_group_lanes(x, wl, taps, pixels_in, windows, y, kmap0, kstep, stride, padding, Wp,
                     span, band, kb, chunk):
    """y[n, kmap0[kk] + g*kstep] = sum_j x[n, g*cg + j] (*) w[g*kg + kk, j] with the groups
    in lanes: a work item is one block of CL groups x `band` output rows. wl[group blocks,
    kg/kb, cg*T, kb, CL] (flat per block) the weights (prepare_group_lanes), taps[T] the
    offset of each kernel tap in one gathered plane of padded width Wp, span the window's
    height, kb the output channels per register block (1, 2 or 4), chunk the pixels
    that meet every output channel in turn (a multiple of PIXELS, or all of them)."""
    n, C, H, W = x.shape
    K, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    P = OH * OW
    kg = kmap0.shape[0]
    G = K // kg
    cg = C // G
    T = taps.shape[0]
    ngb = wl.shape[0]
    plane = ((band - 1) * stride[0] + span) * Wp * CL  # one input channel j of a band
    offs = np.empty(cg * T, np.int64)
    for j in range(cg):
        for t in range(T):
            offs[j * T + t] = j * plane + taps[t]
    nbands = (OH + band - 1) // band
    kblocks = (kg + kb - 1) // kb
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    for item in prange(n * ngb * nbands):
        bnd = item % nbands
        gb = (item // nbands) % ngb
        b = item // (nbands * ngb)
        g0 = gb * CL
        nl = min(CL, G - g0)
        oh0 = bnd * band
        noh = min(band, OH - oh0)
        npix = noh * OW
        top, ih0, nrows = band_input(oh0, noh, H, stride, padding, span)
        xin = np.empty(cg * plane, np.float32)
        for j in range(cg):
            zero_padding(xin[j * plane:(j + 1) * plane], Wp, W, padding[1], ih0 - top, nrows)
            gather_lanes(xf, ((b * C + g0 * cg + j) * H + ih0) * W, cg * H * W, nl, nrows * W,
                         xin, j * plane + (ih0 - top) * Wp * CL, pixels_in)
        dk = (npix + 1) * CL
        out = np.empty(kblocks * kb * dk, np.float32)
        wg = wl[gb]
        # a few pixels' input rows stay in L1 while every output channel's weights stream
        # past them (cg = 32: 590 KB of weights, 36 KB of input per 4 pixels)
        for p in range(0, npix, chunk):
            for kbk in range(kblocks):
                band_taps(xin, wg, kbk * cg * T * kb * CL, kb, offs, windows, oh0 * OW + p,
                          min(chunk, npix - p), windows[oh0 * OW], kbk * kb * dk + p * CL, CL,
                          dk, out)
        for k in range(kg):
            scatter_lanes(out, k * dk, yf, (b * K + kmap0[k] + g0 * kstep) * P + oh0 * OW,
                          kstep * P, nl, npix)


@njit(**JIT)
def _lane_tables(H, W, OH, OW, sh, sw, pw, Wp):
    pixels_in = np.empty(H * W, np.int64)
    for i in range(H):
        for j in range(W):
            pixels_in[i * W + j] = (i * Wp + pw + j) * CL
    windows = np.empty(OH * OW, np.int64)
    for i in range(OH):
        for j in range(OW):
            windows[i * OW + j] = (i * sh * Wp + j * sw) * CL
    return pixels_in, windows


def lane_tables(spec: ConvSpec, Wp: int):
    """(pixels_in, windows): where input pixel q of a run of whole rows goes in the gathered
    rows (q // W rows down, after the left padding), and where the window of output
    pixel p starts, counted from padded row 0; groups in lanes, so times CL."""
    (H, W), (OH, OW), (sh, sw) = spec.size, spec.out_size, spec.stride
    return _lane_tables(H, W, OH, OW, sh, sw, spec.padding[1], Wp)


def tap_offsets(spec: ConvSpec, Wp: int) -> np.ndarray:
    """Each kernel tap's offset in one gathered plane of padded width Wp (row-major taps)."""
    (KH, KW), (dh, dw) = spec.kernel, spec.dilation
    return np.array([(kh * dh * Wp + kw * dw) * CL for kh in range(KH) for kw in range(KW)],
                    np.int64)


def band_rows(rows: int, row_bytes: int, budget: int) -> int:
    """Output rows per band: as many as fit `budget` bytes, at least one."""
    return max(1, min(rows, budget // max(row_bytes, 1)))


def item_band(rows: int, band: int, blocks: int, threads: int, per_thread: int = 4) -> int:
    """`band` output rows per item, fewer when the `blocks` (images x lane blocks) leave
    some of the threads under `per_thread` items each."""
    return min(band, max(1, rows * blocks // (per_thread * threads)))


def window_span(spec: ConvSpec) -> int:
    """Input rows one output row's window covers."""
    return (spec.kernel[0] - 1) * spec.dilation[0] + 1
