"""Multiplication counts, padded taps included (the seed's and the papers' convention).

Algorithm modules add their own counts (Winograd, separable) when they
register a cell; this module holds the dense count every direct and im2col
cell uses.
"""

from __future__ import annotations

import math

from .spec import ConvSpec
from .types import conv_type as conv_type_of


def dense_multiplications(spec: ConvSpec) -> int:
    """Outputs x taps of the grouped convolution the spec describes.

    For a transposed spec the count is inputs x (k/g) x taps: every input
    element meets every kernel tap once (no inserted zeros are counted).
    """
    taps = math.prod(spec.kernel)
    if spec.transposed:
        return spec.n * spec.c * math.prod(spec.size) * (spec.k // spec.groups) * taps
    return spec.n * spec.k * math.prod(spec.out_size) * (spec.c // spec.groups) * taps


def depthwise_separable_multiplications(spec: ConvSpec) -> tuple[int, int]:
    """(depthwise stage, pointwise stage) for the conv2d c->k that the spec describes."""
    out = spec.n * math.prod(spec.out_size)
    return out * spec.c * math.prod(spec.kernel), out * spec.k * spec.c


def direct_multiplications(conv_type: str, spec: ConvSpec) -> int:
    if conv_type_of(conv_type).composition == "stages":  # depthwise then pointwise
        return sum(depthwise_separable_multiplications(spec))
    return dense_multiplications(spec)
