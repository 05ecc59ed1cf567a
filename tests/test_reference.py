"""The float64 oracle and the counts: worked examples, scipy, PyTorch, adjointness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import signal

import kernels
from kernels import ConvSpec

from .conftest import requires_torch, specs, torch_conv

GUIDE_INPUT = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2],
                        [2, 0, 0, 0, 1]], np.float32)
GUIDE_KERNEL = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], np.float32)
GUIDE_OUTPUT = np.array([[12, 12, 17], [10, 17, 19], [9, 6, 14]])


@pytest.mark.parametrize("algorithm", ["reference", "direct"])
def test_convolution_guide_example(algorithm):
    spec = ConvSpec(size=5, kernel=3)
    x, w = GUIDE_INPUT[None, None], (GUIDE_KERNEL[None, None],)
    if algorithm == "reference":
        y = kernels.reference("conv2d", spec, x, w)
    else:
        y = kernels.run("conv2d", algorithm, spec, x, w)
    np.testing.assert_array_equal(y[0, 0], GUIDE_OUTPUT)


@pytest.mark.parametrize("stride, out", [(1, 4), (2, 5)])
def test_seed_transposed_examples(stride, out):
    spec = ConvSpec(size=2, kernel=3, stride=stride, transposed=True)
    x, w = kernels.make_inputs("transposed2d", spec)
    y = kernels.reference("transposed2d", spec, x, w)
    assert y.shape == (1, 1, out, out)
    # every input pixel paints a scaled copy of the kernel at stride spacing
    expect = np.zeros((out, out))
    for i in range(2):
        for j in range(2):
            patch = float(x[0, 0, i, j]) * w[0][0, 0].astype(np.float64)
            expect[i * stride:i * stride + 3, j * stride:j * stride + 3] += patch
    np.testing.assert_allclose(y[0, 0], expect, rtol=1e-12)
    np.testing.assert_allclose(kernels.run("transposed2d", "direct", spec, x, w), y, rtol=1e-5)


@pytest.mark.parametrize("flip, scipy_op", [(True, signal.convolve2d),
                                            (False, signal.correlate2d)])
@pytest.mark.parametrize("algorithm", ["reference", "direct"])
def test_single_channel_matches_scipy(flip, scipy_op, algorithm):
    spec = ConvSpec(size=(9, 12), kernel=(3, 4), flip=flip)
    x, w = kernels.make_inputs("conv2d", spec, seed=3)
    expect = scipy_op(x[0, 0].astype(np.float64), w[0][0, 0].astype(np.float64), mode="valid")
    if algorithm == "reference":
        y = kernels.reference("conv2d", spec, x, w)
    else:
        y = kernels.run("conv2d", algorithm, spec, x, w)
    np.testing.assert_allclose(y[0, 0], expect, rtol=1e-5, atol=1e-5)


@st.composite
def conv_and_adjoint(draw):
    """A conv spec and the transposed spec that maps its output back to its input size."""
    fwd = draw(specs("grouped" if draw(st.booleans()) else "conv2d"))
    fwd = fwd.replace(flip=False)
    out_pad = tuple(
        i + 2 * p - d * (r - 1) - 1 - s * (o - 1)
        for i, p, d, r, s, o in zip(fwd.size, fwd.padding, fwd.dilation, fwd.kernel, fwd.stride,
                                    fwd.out_size))
    adj = ConvSpec(n=fwd.n, c=fwd.k, k=fwd.c, size=fwd.out_size, kernel=fwd.kernel,
                   stride=fwd.stride, padding=fwd.padding, dilation=fwd.dilation,
                   groups=fwd.groups, output_padding=out_pad, transposed=True)
    return fwd, adj


@given(pair=conv_and_adjoint())
def test_transposed_is_adjoint_of_conv(pair):
    fwd, adj = pair
    conv_type = "grouped" if fwd.groups > 1 else "conv2d"
    x, w = kernels.make_inputs(conv_type, fwd, seed=1)
    yv, _ = kernels.make_inputs("transposed2d", adj, seed=2)
    assert adj.out_size == fwd.size
    lhs = np.vdot(kernels.reference(conv_type, fwd, x, w), yv)
    rhs = np.vdot(x, kernels.reference("transposed2d", adj, yv, w))
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-9)
    rhs_direct = np.vdot(x, kernels.run("transposed2d", "direct", adj, yv, w))
    assert lhs == pytest.approx(rhs_direct, rel=1e-4, abs=1e-4)


@requires_torch
@pytest.mark.parametrize("conv_type", kernels.CONV_TYPES)
@given(data=st.data())
def test_reference_matches_torch(conv_type, data):
    spec = data.draw(specs(conv_type))
    x, w = kernels.make_inputs(conv_type, spec)
    np.testing.assert_allclose(kernels.reference(conv_type, spec, x, w),
                               torch_conv(conv_type, spec, x, w), rtol=1e-9, atol=1e-9)


SEED_CONV = ConvSpec(c=3, k=128, size=7, kernel=3)


def test_seed_multiplication_counts():
    assert kernels.multiplications("conv2d", "direct", SEED_CONV) == 86_400
    assert kernels.multiplications("depthwise_separable", "direct", SEED_CONV) == 10_275
    assert kernels.multiplications("conv2d", "direct", ConvSpec(size=5, kernel=3)) == 81


@given(c=st.integers(1, 64), k=st.integers(1, 256), h=st.integers(1, 7),
       size=st.integers(8, 40))
def test_seed_depthwise_separable_ratio(c, k, h, size):
    spec = ConvSpec(c=c, k=k, size=size, kernel=h)
    ratio = (kernels.multiplications("depthwise_separable", "direct", spec)
             / kernels.multiplications("conv2d", "direct", spec))
    assert ratio == pytest.approx(1 / k + 1 / (h * h), rel=1e-12)


def test_transposed_nan_weight_reaches_only_the_outputs_it_touches():
    """A NaN weight at tap t reaches output i*stride + t*dilation - padding of every input
    pixel i, and nothing else (the zero-upsampled correlation used to multiply it by the
    inserted zeros too: 144 non-finite outputs instead of 25)."""
    spec = kernels.ConvSpec(c=2, k=3, size=(5, 5), kernel=3, stride=2, padding=1,
                            output_padding=1, transposed=True)
    x, (w,) = kernels.make_inputs("transposed2d", spec, seed=0)
    w = w.copy()
    w[1, 2, 0, 2] = np.nan  # input channel 1, output channel 2, tap (0, 2)
    y = kernels.reference("transposed2d", spec, x, (w,))
    want = np.zeros(y.shape, bool)
    for i in range(5):
        for j in range(5):
            oh, ow = i * 2 + 0 - 1, j * 2 + 2 - 1
            if 0 <= oh < y.shape[2] and 0 <= ow < y.shape[3]:
                want[:, 2, oh, ow] = True
    np.testing.assert_array_equal(~np.isfinite(y), want)
