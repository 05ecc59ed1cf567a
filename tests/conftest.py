"""Shared test fixtures: random specs for every conv type, NaN-poisoned outputs, tolerances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

import kernels
from kernels import blocks

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.load_profile("ci")

try:  # PyTorch is an optional peer and test oracle
    import torch
except ImportError:  # pragma: no cover - exercised where torch is absent
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


@pytest.fixture(autouse=True)
def poisoned_outputs():
    """Kernel outputs start as NaN, so an element a kernel never writes shows up."""
    blocks.POISON_OUTPUTS = True
    yield
    blocks.POISON_OUTPUTS = False


_GROUPS = {"grouped": "many", "shuffled_grouped": "many", "pointwise_grouped": "many",
           "depthwise": "depthwise", "conv3d": "any", "transposed2d": "any"}


@st.composite
def specs(draw, conv_type: str, max_size: int = 9, max_channels: int = 6,
          kernel_sizes=(1, 2, 3, 4), strides=(1, 2, 3), dilations=(1, 2, 3)):
    """A small random spec that fits `conv_type`: odd sizes, stride, padding, dilation,
    groups, batch up to 2 and flip."""
    nd = 3 if conv_type == "conv3d" else 2
    transposed = conv_type == "transposed2d"
    one_by_one = conv_type in ("pointwise", "pointwise_grouped")
    mode = _GROUPS.get(conv_type, "one")
    if mode == "one":
        g = 1
    elif mode == "many":
        g = draw(st.integers(2, 3))
    elif mode == "any":
        g = draw(st.integers(1, 2))
    else:
        g = draw(st.integers(1, max_channels))
    if mode == "depthwise":
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
        if conv_type == "dilated2d" and all(d == 1 for d in dilation):
            dilation = (2,) + dilation[1:]
        padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    size = []
    for kk, d, p in zip(kernel, dilation, padding):
        need = 1 if transposed else max(1, d * (kk - 1) + 1 - 2 * p)
        size.append(draw(st.integers(need, max(need, max_size if nd == 2 else 5))))
    output_padding = (0,) * nd
    if transposed:
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
        transposed=transposed, flip=draw(st.booleans()))


def assert_close(y: np.ndarray, ref: np.ndarray, rtol: float) -> None:
    """Every element written, right shape and dtype, max error relative to the output scale."""
    assert y.dtype == np.float32
    assert y.shape == ref.shape
    assert np.isfinite(y).all(), "kernel left unwritten (NaN) elements"
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(y.astype(np.float64) - ref).max()) / scale
    assert err <= rtol, f"relative error {err:.3g} > {rtol:.3g}"


def torch_conv(conv_type: str, spec, x, weights) -> np.ndarray:
    """The same convolution through PyTorch in float64 (the peer's own code path)."""
    from harness.peers import torch_function

    return torch_function(conv_type, spec, x, weights, dtype="float64")()
