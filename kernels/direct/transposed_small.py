"""Tiny transposed convolutions: one serial gather loop, nothing allocated but y.

On a layer of a few hundred products (the seed's 2x2 -> 4x4 example) the cost of a
call is all overhead: packing, a parallel region, several Numba dispatches. Here
prepare keeps the raw weights (the flip is an index, not a copy) and the shape
numbers in one array, and execute is one `np.empty` and one serial Numba call.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

from ..blocks import JIT, new_output
from ..spec import ConvSpec

SMALL_PRODUCTS = 32768  # below this many products the serial loop (~1 ns each) beats the
# sub-pixel form's set-up (~35 us: packing, parallel regions, interleave; measured 4x4 stride 2)


def is_small(spec: ConvSpec) -> bool:
    """Few enough products (inputs x k/g x taps) for the serial loop."""
    return (spec.n * spec.c * math.prod(spec.size) * (spec.k // spec.groups)
            * math.prod(spec.kernel)) < SMALL_PRODUCTS


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
def _geometry(spec: ConvSpec) -> tuple[np.ndarray, tuple]:
    """(geo, output shape) of a spec, cached: on the seed's layer computing them took
    longer (3 us) than the whole loop."""
    geo = np.array([*spec.stride, *spec.padding, *spec.dilation, spec.groups, spec.flip],
                   np.int64)
    return geo, spec.output_shape


def prepare_small(spec: ConvSpec, w: np.ndarray) -> tuple:
    return (w, *_geometry(spec))


def execute_small(spec: ConvSpec, x: np.ndarray, state: tuple) -> np.ndarray:
    w, geo, shape = state
    y = new_output(shape)
    transposed_small(x, w, y, geo)
    return y
