"""Multiplications of the separable passes, counted as the seed counts them.

One rank-1 term on one image (padded taps included, the suite's convention):

    vertical   OH * W' * kh      (every padded column the horizontal pass reads)
    horizontal OH * OW * kw

with OH, OW the output size and W' = (OW - 1) * sw + (kw - 1) * dw + 1 the
padded columns the horizontal pass reads. At stride 1, W' = W + 2 * pw.

spatially_separable (one term per (k, c)):

    N * K * C * OH * (W' * kh + OW * kw)

For an N x N image, an m x m kernel, stride 1, no padding: OH = OW = N - m + 1
and W' = N, so (N - m + 1)(2N - m + 1) m, which is the seed's
(2N - 2)(N - 2) m at m = 3 (72 = 45 + 27 for a 3x3 kernel on 5x5, against 81
direct); the ratio to the direct (N - m + 1)^2 m^2 tends to 2/m.

Dense kernels (conv2d, dilated2d, grouped, shuffled_grouped, depthwise)
factored by SVD have r terms per (k, c) slice; the registered count takes
the full rank r = min(kh, kw), which is what random or learned kernels have
(`separable_multiplications` counts with the actual ranks of given weights).
depthwise_separable adds its pointwise stage N * OH * OW * K * C to the
factored depthwise stage. flattened counts its three native passes: the
lateral 1x1 over the unpadded input, N * K * C * H * W, then one term per
output channel. conv3d adds a depth pass of OD * H' * W' * kd per depth
filter (S = min(kd, kh*kw) per slice, each with T = min(kh, kw) 2-D terms,
whose pass pairs run on every one of the OD output depth slices).
transposed2d runs the stride-1 correlation of the zero-upsampled input, so
its count (in cells.py) is c * k/g * min(kh, kw) terms on that grid: the
inserted zeros are multiplied and counted.

The channel-bank path (bank.py; dense 2-D types and conv3d, where it counts
fewer multiplications than the terms) runs, per image and input channel,
rd depth passes over OD x H' x W', rd*rh vertical passes over OD x OH x W'
and R = rd*rh*rw horizontal passes over OD x OH x OW (a 2-D problem is depth
1: one kd = 1 "pass" copying the plane), then the 1x1 mix of the c*R bank
planes into k outputs:

    N * C * (rd*kd*OD*H'*W' + rd*rh*kh*OD*OH*W' + R*kw*OD*OH*OW + k/g * R*OD*OH*OW)

At full rank (R = kd*kh*kw for k/g >= kernel taps) the mix alone is the direct
count, and the passes add ~1% on a wide layer (C3D conv5a: 1.01x direct).
"""

from __future__ import annotations

import math

import numpy as np

from ..spec import ConvSpec
from .tucker import axis_ranks


def padded_span(out: int, k: int, s: int, d: int) -> int:
    """Padded input positions a 1-D pass reads for `out` outputs."""
    return (out - 1) * s + (k - 1) * d + 1


def term_multiplications(spec: ConvSpec) -> int:
    """One (vertical, horizontal) pass pair over every image of the batch (and, for
    conv3d, every output depth slice: the passes run once per slice)."""
    (OH, OW), (kh, kw) = spec.out_size[-2:], spec.kernel[-2:]
    wspan = padded_span(OW, kw, spec.stride[-1], spec.dilation[-1])
    return spec.n * math.prod(spec.out_size[:-2]) * OH * (wspan * kh + OW * kw)


def depth_pass_multiplications(spec: ConvSpec) -> int:
    """One conv3d depth filter over every image: OD * H' * W' * kd."""
    (OD, OH, OW), (kd, kh, kw) = spec.out_size, spec.kernel
    hspan = padded_span(OH, kh, spec.stride[1], spec.dilation[1])
    wspan = padded_span(OW, kw, spec.stride[2], spec.dilation[2])
    return spec.n * OD * hspan * wspan * kd


def full_rank(spec: ConvSpec) -> int:
    return min(spec.kernel[-2:])


def spatially_separable_count(spec: ConvSpec) -> int:
    return spec.k * spec.c * term_multiplications(spec)


def dense_count(spec: ConvSpec) -> int:
    """Grouped 2-D convolution, every (k, c) slice at full rank."""
    return spec.k * (spec.c // spec.groups) * full_rank(spec) * term_multiplications(spec)


def depthwise_separable_count(spec: ConvSpec) -> tuple[int, int]:
    """(factored depthwise stage, pointwise stage)."""
    pointwise = spec.n * math.prod(spec.out_size) * spec.k * spec.c
    return spec.c * full_rank(spec) * term_multiplications(spec), pointwise


def flattened_count(spec: ConvSpec) -> tuple[int, int]:
    """(lateral 1x1 pass, vertical + horizontal passes)."""
    return spec.n * spec.k * spec.c * math.prod(spec.size), spec.k * term_multiplications(spec)


def conv3d_count(spec: ConvSpec) -> int:
    kd, kh, kw = spec.kernel
    S, T = min(kd, kh * kw), min(kh, kw)
    per_slice = S * depth_pass_multiplications(spec) + S * T * term_multiplications(spec)
    return spec.k * (spec.c // spec.groups) * per_slice


def count_terms(spec: ConvSpec, terms: int, depth_filters: int = 0) -> int:
    """Multiplications for a given number of 2-D terms (and conv3d depth filters)."""
    extra = depth_filters * depth_pass_multiplications(spec) if depth_filters else 0
    return int(np.int64(terms) * term_multiplications(spec) + extra)


def volume_geometry(spec: ConvSpec):
    """(out_size, kernel, stride, dilation, padding, spans) as 3-D tuples: a 2-D problem
    is depth 1. spans are the padded input positions the passes read per axis."""
    def vol(t, fill):
        return (fill,) * (3 - len(t)) + tuple(t)

    out, kernel = vol(spec.out_size, 1), vol(spec.kernel, 1)
    stride, dilation = vol(spec.stride, 1), vol(spec.dilation, 1)
    spans = tuple(padded_span(*a) for a in zip(out, kernel, stride, dilation))
    return out, kernel, stride, dilation, vol(spec.padding, 0), spans


def bank_count(spec: ConvSpec, ranks: tuple | None = None) -> int:
    """The channel-bank path: per-channel passes plus the 1x1 mix (full rank by default)."""
    (OD, OH, OW), kernel, _, _, _, (_, hspan, wspan) = volume_geometry(spec)
    kd, kh, kw = kernel
    kg = spec.k // spec.groups
    rd, rh, rw = axis_ranks(kernel, kg) if ranks is None else ranks
    R = rd * rh * rw
    per_channel = OD * (rd * kd * hspan * wspan + rd * rh * kh * OH * wspan
                        + R * kw * OH * OW + kg * R * OH * OW)
    return spec.n * spec.c * per_channel
