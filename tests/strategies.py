"""Hypothesis strategies for convolution problems, read from the type catalogue's properties
(kernels.types.ConvType): no per-type name tables, so a new type gets specs by being listed."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kernels
from kernels.types import conv_type as type_of

MIN_OUTPUTS = 8  # the error is relative to max |y|: a few outputs that cancel would read large


@st.composite
def specs(draw, conv_type: str, max_size: int = 9, max_channels: int = 6,
          kernel_sizes=(1, 2, 3, 4), strides=(1, 2, 3), dilations=(1, 2, 3)):
    """A small random spec that fits `conv_type`: odd sizes, stride, padding, dilation,
    groups, batch up to 2 and flip."""
    t = type_of(conv_type)
    nd = t.ndim
    one_by_one = t.kernel == "1x1"
    if t.grouping == "one":
        g = 1
    elif t.grouping == "many":
        g = draw(st.integers(2, 3))
    elif t.grouping == "any":
        g = draw(st.integers(1, 2))
    else:
        g = draw(st.integers(1, max_channels))
    if t.grouping == "depthwise":
        c = k = g
    else:
        c = g * draw(st.integers(1, max(1, max_channels // g)))
        k = g * draw(st.integers(1, max(1, max_channels // g)))
    kernel = tuple(1 if one_by_one else draw(st.sampled_from(kernel_sizes)) for _ in range(nd))
    stride = tuple(draw(st.sampled_from(strides)) for _ in range(nd))
    if one_by_one:
        dilation = (1,) * nd
        padding = (0,) * nd
    else:
        dilation = tuple(draw(st.sampled_from(dilations)) for _ in range(nd))
        if t.dilated and all(d == 1 for d in dilation):
            dilation = (2,) + dilation[1:]
        padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    size = []
    for kk, d, p in zip(kernel, dilation, padding):
        need = 1 if t.transposed else max(1, d * (kk - 1) + 1 - 2 * p)
        size.append(draw(st.integers(need, max(need, max_size if nd == 2 else 5))))
    output_padding = (0,) * nd
    if t.transposed:
        output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                               for s, d in zip(stride, dilation))
        # keep the output non-empty
        for i in range(nd):
            while (stride[i] * (size[i] - 1) + dilation[i] * (kernel[i] - 1)
                   + output_padding[i] + 1 - 2 * padding[i]) < 1:
                size[i] += 1
    return kernels.ConvSpec(
        n=draw(st.integers(1, 2)), c=c, k=k, size=tuple(size), kernel=kernel, stride=stride,
        padding=padding, dilation=dilation, groups=g, output_padding=output_padding,
        transposed=t.transposed, flip=draw(st.booleans()))


def cell_specs(conv_type: str) -> st.SearchStrategy:
    """Specs for a conformance test of any cell of `conv_type`: half of them general
    (every kernel size, stride, dilation), half with a 3-wide kernel at stride 1, the
    shape that minimal-filtering algorithms (Winograd, ...) are restricted to; each with
    at least MIN_OUTPUTS outputs."""
    general = specs(conv_type, max_size=8, max_channels=5)
    three = specs(conv_type, max_size=8, max_channels=5, kernel_sizes=(3,), strides=(1,))
    return st.one_of(general, three).filter(
        lambda s: s.n * s.k * math.prod(s.out_size) >= MIN_OUTPUTS)


def on_supported_specs(conv_type: str, algorithm: str, check, examples: int) -> list:
    """Call `check(spec, seed)` on up to `examples` hypothesis specs of `conv_type` that
    `algorithm` supports; return the specs it ran on (the caller asserts enough did)."""
    ran = []

    @settings(max_examples=examples, suppress_health_check=[HealthCheck.filter_too_much,
                                                            HealthCheck.too_slow])
    @given(spec=cell_specs(conv_type), seed=st.integers(0, 9))
    def each(spec, seed):
        assume(kernels.supports(conv_type, algorithm, spec) is None)
        check(spec, seed)
        ran.append(spec)

    each()
    return ran
