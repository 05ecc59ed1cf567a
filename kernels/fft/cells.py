"""The fft cells of the matrix, their supports() rules and counts.

Every 2-D type with a spatial kernel runs on the shared tiled pipeline
(`kernels.tiled.bilinear2d`) with the real-DFT matrices of `kernels.fft.matrices`:
stride 1 directly (any kernel size up to 16 taps per axis, non-square included,
dilation as sub-grids), stride s as a polyphase stride-1 conv (the padded input
split into s_h*s_w phase images stacked as channels, the kernel into the matching
phase sub-kernels of ceil(r/s) taps), transposed stride 1 as the conv with the
flipped channel-swapped kernel, depthwise through the same per-channel pipeline as
Winograd's. conv3d is not implemented (3-D tiles of 11^3 points; 3-D layers are not
speed targets); 1x1 kernels have nothing to transform.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ..direct.pointwise import execute_pointwise, prepare_pointwise
from ..registry import cell, not_applicable
from ..spec import ConvSpec
from ..tiled.depthwise import bilinear_depthwise_prepared, filter_transform_depthwise
from ..tiled.pipeline import TiledFilter, bilinear2d_prepared, prepare_filter
from ..types import flip_spatial, full_kernel, separable_stages, shuffle_permutation
from .codelets import FTILE
from .matrices import alpha
from .plan import plan, reason, transform_counts

ALGORITHM = "fft"
DENSE_2D = ("conv2d", "grouped", "shuffled_grouped", "dilated2d", "spatially_separable",
            "flattened")


def _oriented(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    return np.ascontiguousarray(flip_spatial(w, 2) if spec.flip else w)


def phase_input(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Polyphase form of a strided conv's input: x'[n, (c*sh + ph)*sw + pw, i, j] =
    x_padded[n, c, sh*i + ph, sw*j + pw], so that the stride-1 valid conv of x' with
    `phase_weights` is the strided conv. Channels stay grouped (each group's phases
    contiguous)."""
    sh, sw = spec.stride
    n, c, H, W = x.shape
    rh, rw = spec.kernel
    qh, qw = -(-rh // sh), -(-rw // sw)
    OH, OW = spec.out_size
    Hs, Ws = OH + qh - 1, OW + qw - 1
    ph0, pw0 = spec.padding
    xp = np.zeros((n, c, sh * Hs, sw * Ws), np.float32)
    # the padded input's rows 0 .. sh*Hs - 1, i.e. input rows -ph0 .. sh*Hs - 1 - ph0
    h1, w1 = max(0, min(H, sh * Hs - ph0)), max(0, min(W, sw * Ws - pw0))
    xp[:, :, ph0:ph0 + h1, pw0:pw0 + w1] = x[:, :, :h1, :w1]
    xs = xp.reshape(n, c, Hs, sh, Ws, sw).transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(xs).reshape(n, c * sh * sw, Hs, Ws)


def phase_weights(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The kernel's matching phase sub-kernels: w'[k, (cc*sh + ph)*sw + pw, q, u] =
    w[k, cc, sh*q + ph, sw*u + pw] (0 past the kernel)."""
    sh, sw = spec.stride
    k, cg, rh, rw = w.shape
    qh, qw = -(-rh // sh), -(-rw // sw)
    wp = np.zeros((k, cg, sh * qh, sw * qw), np.float32)
    wp[:, :, :rh, :rw] = w
    ws = wp.reshape(k, cg, qh, sh, qw, sw).transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(ws).reshape(k, cg * sh * sw, qh, qw)


def fft_filter(spec: ConvSpec, w: np.ndarray, kmap=None, transform=False) -> TiledFilter:
    """The weight-only part of the grouped conv with the oriented dense kernel
    w[k, c/g, kh, kw] (phase-split for a strided spec); `transform`: see prepare_filter."""
    p = plan(spec)
    if p.phases != (1, 1):
        w = phase_weights(w, spec)
    return prepare_filter(w, p.axes(), spec.groups, kmap, ftile=FTILE, transform=transform)


def fft2d(spec: ConvSpec, x: np.ndarray, filt: TiledFilter) -> np.ndarray:
    """The grouped conv of x with the filter from `fft_filter`."""
    if plan(spec).phases != (1, 1):
        return bilinear2d_prepared(phase_input(x, spec), filt, spec.out_size, (0, 0),
                                   spec.dilation)
    return bilinear2d_prepared(x, filt, spec.out_size, spec.padding, spec.dilation)


def _stage(conv_type: str, spec: ConvSpec) -> ConvSpec:
    """The spec the tiled stage runs (a depthwise separable conv's depthwise stage)."""
    return separable_stages(spec)[0] if conv_type == "depthwise_separable" else spec


# ----------------------------------------------------------------------------- counts
def elementwise_multiplications(conv_type: str, spec: ConvSpec) -> int:
    """tiles x alpha_h alpha_w x c x k / g (depthwise: x c), over the stride-1 problem."""
    p = plan(_stage(conv_type, spec))
    points = alpha(p.tiles[0]) * alpha(p.tiles[1])
    if conv_type in ("depthwise", "depthwise_separable"):
        return p.tile_count() * points * p.c
    return p.tile_count() * points * p.c * p.k // p.groups


def transform_multiplications(conv_type: str, spec: ConvSpec) -> dict:
    """Multiplications of the three transforms (nonzero matrix entries, axis by axis):
    {"input", "filter", "output"}, as kernels.winograd.transform_multiplications."""
    p = plan(_stage(conv_type, spec))
    inp, filt, out = transform_counts(p.tiles, p.kernel)
    tiles = p.tile_count()
    if conv_type in ("depthwise", "depthwise_separable"):
        pairs, outs = p.c, p.c
    else:
        pairs, outs = p.c * p.k // p.groups, p.k
    return dict(input=tiles * p.c * inp, filter=pairs * filt, output=tiles * outs * out)


# ------------------------------------------------------------------------------ cells
def _supports(conv_type: str):
    transposed = conv_type == "transposed2d"
    return lambda spec: reason(spec, transposed)


def _count(conv_type: str):
    if conv_type == "depthwise_separable":
        return lambda spec: (elementwise_multiplications(conv_type, spec)
                             + spec.n * math.prod(spec.out_size) * spec.k * spec.c)
    return lambda spec: elementwise_multiplications(conv_type, spec)


# Every cell prepares its oriented (phase-split, channel-swapped) filter; a plan also keeps
# the transformed filter, which one call computes inside (or just before) its products
def _execute_dense(spec, x, filt):
    return fft2d(spec, x, filt)


for _type in DENSE_2D:
    def _dense_filter(spec, weights, transform=False, conv_type=_type):
        kmap = (shuffle_permutation(spec.k, spec.groups)
                if conv_type == "shuffled_grouped" else None)
        return fft_filter(spec, _oriented(full_kernel(conv_type, spec, weights), spec), kmap,
                          transform)

    cell(_type, ALGORITHM, prepare=_dense_filter,
         prepare_for_plan=partial(_dense_filter, transform=True), supports=_supports(_type),
         multiplications=_count(_type))(_execute_dense)


def _depthwise_filter(spec: ConvSpec, w: np.ndarray, transform=False):
    """The depthwise conv `spec`'s (groups = c = k) prepared w[c, 1, kh, kw]: a strided one
    runs as a grouped conv (each channel's phases its own group), the others per channel."""
    if plan(spec).phases != (1, 1):
        return fft_filter(spec, _oriented(w, spec), transform=transform)
    (_, Gh, _), (_, Gw, _) = plan(spec).axes()
    return filter_transform_depthwise(_oriented(w, spec), Gh, Gw)


def _depthwise_stage(spec: ConvSpec, x: np.ndarray, filt) -> np.ndarray:
    if plan(spec).phases != (1, 1):
        return fft2d(spec, x, filt)
    return bilinear_depthwise_prepared(x, filt, plan(spec).axes(), spec.out_size, spec.padding,
                                       spec.dilation)


cell("depthwise", ALGORITHM, supports=_supports("depthwise"),
     prepare=lambda spec, weights: _depthwise_filter(spec, weights[0]),
     prepare_for_plan=lambda spec, weights: _depthwise_filter(spec, weights[0], True),
     multiplications=_count("depthwise"))(_depthwise_stage)


def _separable_filters(spec, weights, transform=False):
    dw, pw = weights
    dw_spec, pw_spec = separable_stages(spec)
    return _depthwise_filter(dw_spec, dw, transform), prepare_pointwise(pw_spec, pw)


@cell("depthwise_separable", ALGORITHM, supports=_supports("depthwise_separable"),
      prepare=_separable_filters, prepare_for_plan=partial(_separable_filters, transform=True),
      multiplications=_count("depthwise_separable"))
def _depthwise_separable(spec, x, filters):
    dw, pw = filters
    dw_spec, pw_spec = separable_stages(spec)
    return execute_pointwise(pw_spec, _depthwise_stage(dw_spec, x, dw), pw)


def _transposed_filter(spec, weights, transform=False):
    # a stride-1 transposed conv is the conv with the kernel flipped and its in/out channels
    # swapped (per group), padded by d(r-1) - p before (output_padding after)
    w = weights[0]
    c, kg, rh, rw = w.shape
    g = spec.groups
    cg = c // g
    wc = w.reshape(g, cg, kg, rh, rw).transpose(0, 2, 1, 3, 4).reshape(g * kg, cg, rh, rw)
    if not spec.flip:
        wc = flip_spatial(wc, 2)
    return prepare_filter(np.ascontiguousarray(wc), plan(spec).axes(), g, ftile=FTILE,
                          transform=transform)


@cell("transposed2d", ALGORITHM, supports=_supports("transposed2d"), prepare=_transposed_filter,
      prepare_for_plan=partial(_transposed_filter, transform=True),
      multiplications=_count("transposed2d"))
def _transposed(spec, x, filt):
    lo = tuple(d * (r - 1) - p for d, r, p in zip(spec.dilation, spec.kernel, spec.padding))
    return bilinear2d_prepared(x, filt, spec.out_size, lo, spec.dilation)


not_applicable("conv3d", ALGORITHM, "fft runs 2-D tiles only (3-D layers are not speed "
               "targets; 11^3-point tiles are left undone)")
for _type in ("pointwise", "pointwise_grouped"):
    not_applicable(_type, ALGORITHM, "1x1 has no spatial kernel to transform")
