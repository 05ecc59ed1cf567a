"""The direct kernels: register-block edges, against PyTorch, and bad input (the oracle
comparison of every cell on random specs is tests/test_conformance.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from kernels import ConvSpec, accuracy

from .conftest import assert_close, assert_conforms, requires_torch, specs, torch_conv


@requires_torch
@pytest.mark.parametrize("conv_type", kernels.CONV_TYPES)
@given(data=st.data())
def test_direct_matches_torch(conv_type, data):
    spec = data.draw(specs(conv_type, max_size=12, max_channels=9))
    x, w = kernels.make_inputs(conv_type, spec, seed=1)
    assert_close(kernels.run(conv_type, "direct", spec, x, w),
                 torch_conv(conv_type, spec, x, w), accuracy.bound("direct", conv_type, spec))


@pytest.mark.parametrize("conv_type, spec", [
    # register-block edges: channels and pixels not multiples of 4 and 6, larger planes
    ("conv2d", ConvSpec(n=1, c=19, k=13, size=(17, 23), kernel=3, padding=1)),
    # outer-product blocks: 16 and 32 channels wide, dilated runs, groups, flip, 3-D
    ("conv2d", ConvSpec(n=2, c=5, k=37, size=(11, 13), kernel=3, padding=2, dilation=2,
                        flip=True)),
    ("grouped", ConvSpec(n=1, c=6, k=40, size=(9, 10), kernel=(2, 3), stride=2, groups=2)),
    ("shuffled_grouped", ConvSpec(n=1, c=4, k=64, size=(7, 7), kernel=3, padding=1,
                                  groups=2)),
    ("conv3d", ConvSpec(n=1, c=3, k=33, size=(4, 5, 6), kernel=(2, 3, 3), padding=1)),
    ("depthwise", ConvSpec(n=2, c=5, k=5, groups=5, size=(70, 66), kernel=5, padding=2,
                           stride=2)),
    ("depthwise", ConvSpec(n=1, c=21, k=21, groups=21, size=(36, 33), kernel=3, padding=1,
                           dilation=2, flip=True)),
    ("pointwise", ConvSpec(n=2, c=37, k=29, size=(13, 11), kernel=1)),
    ("pointwise", ConvSpec(n=1, c=3, k=14, size=(5, 4), kernel=1, stride=2)),
    ("pointwise_grouped", ConvSpec(n=2, c=8, k=48, size=(9, 7), kernel=1, groups=2)),
    ("transposed2d", ConvSpec(n=1, c=11, k=7, size=(9, 10), kernel=4, stride=2, padding=1,
                              transposed=True)),
    ("conv3d", ConvSpec(n=1, c=5, k=7, size=(6, 7, 9), kernel=3, padding=1, stride=(1, 2, 1))),
])
def test_direct_block_edges(conv_type, spec):
    assert_conforms(conv_type, "direct", spec)


SPEC = ConvSpec(c=4, k=6, size=7, kernel=3)


def test_wrong_weight_shape():
    x, (w,) = kernels.make_inputs("conv2d", SPEC)
    with pytest.raises(ValueError, match=r"^weights\[w\]: shape"):
        kernels.run("conv2d", "direct", SPEC, x, (w[:, :2],))


def test_wrong_dtype():
    x, (w,) = kernels.make_inputs("conv2d", SPEC)
    with pytest.raises(ValueError, match=r"^x: dtype must be float32"):
        kernels.run("conv2d", "direct", SPEC, x.astype(np.float64), (w,))
    with pytest.raises(ValueError, match=r"^weights\[w\]: dtype"):
        kernels.run("conv2d", "direct", SPEC, x, (w.astype(np.float16),))


def test_wrong_number_of_weights():
    x, w = kernels.make_inputs("conv2d", SPEC)
    with pytest.raises(ValueError, match=r"^weights: spatially_separable takes 2"):
        kernels.run("spatially_separable", "direct", SPEC, x, w)


def test_wrong_input_shape():
    x, w = kernels.make_inputs("conv2d", SPEC)
    with pytest.raises(ValueError, match=r"^x: shape"):
        kernels.run("conv2d", "direct", SPEC, x[:, :, :5], w)


def test_unknown_names():
    x, w = kernels.make_inputs("conv2d", SPEC)
    with pytest.raises(ValueError, match=r"^algorithm: unknown"):
        kernels.run("conv2d", "no_such_algorithm", SPEC, x, w)
    with pytest.raises(ValueError, match=r"^conv_type: unknown"):
        kernels.run("conv4d", "direct", SPEC, x, w)


def test_non_contiguous_input_is_accepted():
    x, w = kernels.make_inputs("conv2d", SPEC)
    xt = np.asfortranarray(x)
    np.testing.assert_array_equal(kernels.run("conv2d", "direct", SPEC, xt, w),
                                  kernels.run("conv2d", "direct", SPEC, x, w))
