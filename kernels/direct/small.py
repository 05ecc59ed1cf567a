"""Tiny layers: one serial loop per output element, nothing allocated but y.

On a layer of a few hundred multiply-adds (the seed article's worked examples) the
cost of a call is all overhead: packing, a parallel region, several Numba
dispatches, each a few microseconds, against a nanosecond per product. Here prepare
keeps the caller's weights (a flip is an index, not a copy) and the shape numbers in
one cached array, and execute is one `np.empty` and one serial Numba call.

- `conv_small`: every forward type on its full kernel w[k, c/g, *kernel] (grouped,
  strided, dilated, shuffled through `kmap`; 1-D and 2-D problems as 3-D with unit
  depth, reshaped inside the call);
- `transposed_small`: the gather form of a transposed convolution.

`is_small` is the one rule: the direct cells take this path below SMALL_WORK.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, uint64

from ..blocks import JIT, new_output
from ..spec import ConvSpec, spec_macs

SMALL_WORK = 32768  # below this much work the serial loops beat the register-blocked
# forms' fixed cost (12-35 us: packing, parallel regions; measured on the seed layers)
ROW_COST = 20  # the forward loop's cost of starting an output row, in multiply-adds
# (measured: 3x3 layers of 5x5 outputs took 1.3 ns per product, 1x1 runs of 25 0.5 ns)


def _plain_1x1(spec: ConvSpec) -> bool:
    """A 1x1 kernel at stride 1 without padding: a channel's plane is one run."""
    return max(spec.kernel) == 1 and max(spec.stride) == 1 and not any(spec.padding)


@functools.lru_cache(maxsize=1024)
def small_work(spec: ConvSpec) -> int:
    """The serial loop's cost in multiply-adds: the products (padded taps included) and,
    forward, ROW_COST per row run (one per output row, channel and tap)."""
    macs = spec_macs(spec)
    if spec.transposed:
        return macs
    runs = spec.n * spec.k * (spec.c // spec.groups) * math.prod(spec.kernel)
    if not _plain_1x1(spec):
        runs *= math.prod(spec.out_size[:-1])
    return macs + ROW_COST * runs


def is_small(spec: ConvSpec) -> bool:
    """Little enough work for the serial loop (asked on every call: cached work)."""
    return small_work(spec) < SMALL_WORK


@njit(**JIT)
def conv_small(x, w, y, geo, kmap):
    """y[b, kmap[k], o] = sum over the group's channels c and the taps t of
    x[b, c, o*stride - padding + t*dilation] * w[k, c, t (flipped if asked)], on 1-, 2-
    or 3-D arrays taken as 3-D: geo[11:16] and geo[16:21] are the 3-D shapes of x and y,
    geo[21:26] that of w.

    Tap by tap, each in-bounds output row takes one scaled run of an input row (the
    output columns whose tap lands inside x, worked out once per tap): no test per
    product, and at stride 1 the run is contiguous. Flat indices: a view per row cost
    more than the row's few products."""
    xf, wf, yf = x.ravel(), w.ravel(), y.ravel()
    sd, sh, sw, pd, ph, pw, dd, dh, dw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], \
        geo[6], geo[7], geo[8]
    groups, flip = geo[9], geo[10]
    n, C, D, H, W = geo[11], geo[12], geo[13], geo[14], geo[15]
    K, OD, OH, OW = geo[17], geo[18], geo[19], geo[20]
    cg, KD, KH, KW = geo[22], geo[23], geo[24], geo[25]
    kg = K // groups
    taps = KD * KH * KW
    OP = OD * OH * OW
    if taps == 1 and sd * sh * sw == 1 and pd + ph + pw == 0:
        _conv_1x1(xf, wf, yf, n, C, K, cg, kg, OP, kmap)
        return
    for b in range(n):
        for k in range(K):
            c0 = (k // kg) * cg
            ybase = (b * K + kmap[k]) * OP
            yf[ybase:ybase + OP] = 0
            for kw in range(KW):
                fw = KW - 1 - kw if flip else kw
                lo = max(0, (pw - kw * dw + sw - 1) // sw)
                hi = min(OW, (W - 1 + pw - kw * dw) // sw + 1)
                for kd in range(KD):
                    fd = KD - 1 - kd if flip else kd
                    for kh in range(KH):
                        fh = KH - 1 - kh if flip else kh
                        for c in range(cg):
                            wv = wf[(k * cg + c) * taps + (fd * KH + fh) * KW + fw]
                            xplane = (b * C + c0 + c) * D
                            for od in range(OD):
                                iz = od * sd - pd + kd * dd
                                if iz < 0 or iz >= D:
                                    continue
                                for oh in range(OH):
                                    iy = oh * sh - ph + kh * dh
                                    if iy < 0 or iy >= H:
                                        continue
                                    xr = ((xplane + iz) * H + iy) * W - pw + kw * dw
                                    yr = ybase + (od * OH + oh) * OW
                                    # unsigned: no negative-index wraparound, so
                                    # the unit-stride run vectorises
                                    yu, xu = uint64(yr + lo), uint64(xr + lo * sw)
                                    for t in range(hi - lo):
                                        yf[yu + uint64(t)] += wv * xf[xu + uint64(t * sw)]


@njit(**JIT)
def _conv_1x1(xf, wf, yf, n, C, K, cg, kg, P, kmap):
    """conv_small for a 1x1 kernel at stride 1 without padding: y[b, kmap[k]] = sum over
    the group's channels c of w[k, c] * x[b, c], a plane at a time (the general nest's
    per-tap bookkeeping cost twice the products on the seed's 1x1 layer)."""
    for b in range(n):
        for k in range(K):
            c0 = (k // kg) * cg
            yb = uint64((b * K + kmap[k]) * P)
            for c in range(cg):
                wv = wf[k * cg + c]
                xb = uint64((b * C + c0 + c) * P)
                if c == 0:
                    for t in range(P):
                        yf[yb + uint64(t)] = wv * xf[xb + uint64(t)]
                else:
                    for t in range(P):
                        yf[yb + uint64(t)] += wv * xf[xb + uint64(t)]


def _as_3d(values: tuple, fill: int) -> tuple:
    """A 1- or 2-D spatial tuple as 3-D, the missing leading axes `fill`."""
    return (fill,) * (3 - len(values)) + tuple(values)


@functools.lru_cache(maxsize=256)
def _forward_geometry(spec: ConvSpec) -> np.ndarray:
    """Strides, padding, dilation, groups, flip and the 3-D shapes of x, y and w, as one
    array (cached: building it takes longer than a seed layer's whole loop)."""
    cg = spec.c // spec.groups
    size, out_size = _as_3d(spec.size, 1), _as_3d(spec.out_size, 1)
    if _plain_1x1(spec):  # each channel's plane is one run of the loop, not a run per row
        size = out_size = (1, 1, math.prod(spec.size))
    return np.array([*_as_3d(spec.stride, 1), *_as_3d(spec.padding, 0),
                     *_as_3d(spec.dilation, 1), spec.groups, spec.flip,
                     spec.n, spec.c, *size, spec.n, spec.k, *out_size,
                     spec.k, cg, *_as_3d(spec.kernel, 1)], np.int64)


@functools.lru_cache(maxsize=64)
def _identity(k: int) -> np.ndarray:
    return np.arange(k, dtype=np.int64)


def prepare_small(spec: ConvSpec, w: np.ndarray, kmap: np.ndarray | None = None) -> tuple:
    """State of the forward loop: the full kernel w[k, c/g, *kernel] as given, the
    geometry and the output channel of each grouped channel (`kmap`, for a shuffle)."""
    kmap = _identity(spec.k) if kmap is None else np.asarray(kmap, np.int64)
    return w, _forward_geometry(spec), kmap


def execute_small(spec: ConvSpec, x: np.ndarray, state: tuple) -> np.ndarray:
    w, geo, kmap = state
    y = new_output(spec.output_shape)
    conv_small(x, w, y, geo, kmap)
    return y


# ---------------------------------------------------------------------------- transposed
@njit(**JIT)
def transposed_small(x, w, y, geo):
    """y[b, k, oy, ox] = sum of x[b, c, iy, ix] * w[c, k % kg, kh, kw] over the group's c
    and the taps with oy = iy*sh - ph + kh*dh (and likewise across); geo = (sh, sw, ph,
    pw, dh, dw, groups, flip)."""
    n, C, H, W = x.shape
    K, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    KH, KW = w.shape[2], w.shape[3]
    sh, sw, ph, pw, dh, dw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    groups, flip = geo[6], geo[7]
    cg, kg = C // groups, K // groups
    for b in range(n):
        for k in range(K):
            g = k // kg
            kk = k - g * kg
            for oy in range(OH):
                for ox in range(OW):
                    acc = np.float32(0)
                    for kh in range(KH):
                        ty = oy + ph - kh * dh
                        iy = ty // sh
                        if ty < 0 or iy * sh != ty or iy >= H:
                            continue
                        fh = KH - 1 - kh if flip else kh
                        for kw in range(KW):
                            tx = ox + pw - kw * dw
                            ix = tx // sw
                            if tx < 0 or ix * sw != tx or ix >= W:
                                continue
                            fw = KW - 1 - kw if flip else kw
                            for c in range(g * cg, (g + 1) * cg):
                                acc += x[b, c, iy, ix] * w[c, kk, fh, fw]
                    y[b, k, oy, ox] = acc


@functools.lru_cache(maxsize=256)
def _transposed_geometry(spec: ConvSpec) -> np.ndarray:
    return np.array([*spec.stride, *spec.padding, *spec.dilation, spec.groups, spec.flip],
                    np.int64)


def prepare_transposed_small(spec: ConvSpec, w: np.ndarray) -> tuple:
    return w, _transposed_geometry(spec)


def execute_transposed_small(spec: ConvSpec, x: np.ndarray, state: tuple) -> np.ndarray:
    w, geo = state
    y = new_output(spec.output_shape)
    transposed_small(x, w, y, geo)
    return y


# ---------------------------------------------------------------------------- the choice
def small_or(prepare, execute, kernel, kmap=None):
    """(prepare, execute) of a direct cell whose tiny layers take `conv_small`: prepare
    returns (the execute function, its state), so execute is one call away from the form.
    `kernel(spec, weights)` is the full kernel w[k, c/g, *kernel]; `kmap(spec)` the output
    channel of each grouped channel (None: in order)."""

    def prepare_cell(spec: ConvSpec, weights: tuple) -> tuple:
        if is_small(spec):
            return execute_small, prepare_small(spec, kernel(spec, weights),
                                                kmap(spec) if kmap else None)
        return execute, prepare(spec, weights)

    return prepare_cell, execute_form


def execute_form(spec: ConvSpec, x: np.ndarray, state: tuple) -> np.ndarray:
    """Run the form a `small_or` (or `transposed_choice`) prepare chose."""
    execute, inner = state
    return execute(spec, x, inner)
