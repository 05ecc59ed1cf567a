"""The pixels-in-lanes GEMM of the direct kernels (kernels.direct.dense.conv_lanes): every
1x1 layer, and grouped layers with few output channels per group, against the float64
oracle (NaN-poisoned outputs, conftest) and plan == run, on exactly the shapes that take it.

Specs cross the blocks' edges: output channels per group not multiples of the 6 broadcast
rows, pixels not multiples of the 16/32 lanes, strides and dilations that split the input
into several phases, batch 2, flip; and both ways of sharing a panel (gathered by the item
that uses it, or all gathered first when the output channels are split in chunks).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels import ConvSpec
from kernels.direct import dense
from kernels.direct.gemm import LANE_PAD_GAIN, LANES, WIDE, lane_width

from .conftest import assert_conforms

EXAMPLES = 12


@st.composite
def pointwise_specs(draw, grouped: bool) -> ConvSpec:
    """1x1 layers: 1..3 groups of up to 40 channels (tails of 6 and of the lanes), odd and
    even planes up to 13 x 13, strides 1..3, batch 1..2."""
    g = draw(st.integers(2, 3)) if grouped else 1
    cg, kg = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    size = (draw(st.integers(1, 13)), draw(st.integers(1, 13)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return ConvSpec(n=draw(st.integers(1, 2)), c=g * cg, k=g * kg, size=size, kernel=1,
                    stride=stride, groups=g, flip=draw(st.booleans()))


@st.composite
def small_group_specs(draw, ndim: int = 2) -> ConvSpec:
    """Grouped layers of 8..64 groups of 1..8 channels (2 groups in 3-D), kernels 1..3,
    strides 1..2, dilation 1..2, padding 0..2, flip, batch 1..2."""
    g = draw(st.integers(8, 64)) if ndim == 2 else 2
    cg, kg = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(ndim))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    top = 9 if ndim == 2 else 5
    size = tuple(max(d * (k - 1) + 1 - 2 * p, draw(st.integers(1, top)))
                 for k, d, p in zip(kernel, dilation, padding))
    return ConvSpec(n=draw(st.integers(1, 2)), c=g * cg, k=g * kg, size=size, kernel=kernel,
                    stride=stride, padding=padding, dilation=dilation, groups=g,
                    flip=draw(st.booleans()))


def _check(conv_type: str, spec: ConvSpec, seed: int = 0) -> None:
    """On conv_lanes (also where the groups-in-lanes rule would take the spec: that path
    has tests/test_group_lanes.py), conforms to the oracle; a plan gives run's bits."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dense, "takes_group_lanes", lambda spec: False)
        x, w, y = assert_conforms(conv_type, "direct", spec, seed=seed)
        np.testing.assert_array_equal(kernels.plan(conv_type, "direct", spec, w)(x), y)


@pytest.fixture(params=["per_item", "shared"])
def panel_sharing(request, monkeypatch):
    """Both conv_lanes schedules: with a tiny weight chunk every layer splits its output
    channels in chunks, and the panels are gathered once, first, for all of them."""
    if request.param == "shared":
        monkeypatch.setattr(dense, "WEIGHT_CHUNK_BYTES", 256)
    return request.param


@settings(max_examples=EXAMPLES)
@given(spec=pointwise_specs(grouped=False))
def test_pointwise(spec):
    _check("pointwise", spec)


@settings(max_examples=EXAMPLES)
@given(spec=pointwise_specs(grouped=True))
def test_pointwise_grouped(spec):
    _check("pointwise_grouped", spec)


@settings(max_examples=EXAMPLES)
@given(spec=small_group_specs())
def test_grouped_small_groups_take_lanes(spec):
    assert dense.takes_lanes(spec)
    _check("grouped", spec)


@settings(max_examples=6)
@given(spec=small_group_specs())
def test_shuffled_small_groups(spec):
    """The shuffle's channel map goes through the lanes' store."""
    _check("shuffled_grouped", spec)


@settings(max_examples=6)
@given(spec=small_group_specs(ndim=3))
def test_conv3d_small_groups(spec):
    """3-D: depth phases and a grid of planes."""
    _check("conv3d", spec)


@pytest.mark.parametrize("conv_type, spec", [
    # 49 pixels (a wide and a ragged panel), 70 channels (11 blocks + 4), batch 2
    ("pointwise", ConvSpec(n=2, c=45, k=70, size=7, kernel=1)),
    # stride 2 on odd planes: one phase, subsampled
    ("pointwise", ConvSpec(n=1, c=33, k=13, size=(15, 9), kernel=1, stride=2)),
    ("pointwise_grouped", ConvSpec(n=2, c=60, k=72, size=(14, 14), kernel=1, groups=3)),
    # ResNeXt-like: 32 groups of 4, stride 1 and 2, padding 1
    ("grouped", ConvSpec(n=1, c=128, k=128, size=12, kernel=3, padding=1, groups=32)),
    ("grouped", ConvSpec(n=2, c=64, k=64, size=(11, 10), kernel=3, padding=1, stride=2,
                         groups=8)),
    # dilation 2 at stride 2: taps of both phases
    ("grouped", ConvSpec(n=1, c=24, k=40, size=(13, 12), kernel=3, padding=2, stride=2,
                         dilation=2, groups=8, flip=True)),
])
def test_lane_edges(conv_type, spec, panel_sharing):
    _check(conv_type, spec, seed=1)


def test_wide_channel_groups_keep_the_channel_blocks():
    """More output channels per group than LANE_GROUP_CHANNELS: the packed, channel-lane path."""
    spec = ConvSpec(c=64, k=2 * (dense.LANE_GROUP_CHANNELS + 1), size=5, kernel=3, groups=2)
    assert not dense.takes_lanes(spec)
    assert isinstance(dense.prepare_dense(spec, kernels.make_inputs("grouped", spec)[1][0]),
                      dense.PackedDense)
    assert isinstance(dense.prepare_dense(spec.replace(k=2 * dense.LANE_GROUP_CHANNELS),
                                          np.zeros((32, 32, 3, 3), np.float32)),
                      dense.LaneWeights)


@pytest.mark.parametrize("pixels", [1, 7, 16, 17, 49, 196, 784, 3136])
def test_lane_width_pads_little(pixels):
    """Two panels where the target has them, unless one pads LANE_PAD_GAIN less."""
    def padded(width):
        return -(-pixels // width) * width

    width = lane_width(pixels)
    if not WIDE:
        assert width == LANES
    elif width == 2 * LANES:
        assert padded(2 * LANES) * LANE_PAD_GAIN <= padded(LANES)
    else:
        assert width == LANES and padded(2 * LANES) * LANE_PAD_GAIN > padded(LANES)


@pytest.mark.parametrize("images_groups, kg, window, npan", [
    (1, 2048, 512, 2), (1, 256, 64, 98), (32, 4, 36, 102), (3, 80, 20, 25), (1, 1, 1, 1)])
def test_lane_split_covers_the_work(images_groups, kg, window, npan):
    """Chunks never outnumber their blocks, the weights of a channel chunk fit the L2
    budget (to a block's rounding), and there is work for every thread where the blocks
    allow it."""
    kchunks, pchunks = dense.lane_split(images_groups, kg, window, npan)
    nkb = -(-kg // 6)
    assert 1 <= kchunks <= nkb and 1 <= pchunks <= npan
    block = 6 * window * 4
    assert -(-nkb // kchunks) * block <= dense.WEIGHT_CHUNK_BYTES + block
    want = dense.ITEMS_PER_THREAD * numba.get_num_threads()
    assert images_groups * kchunks * pchunks >= min(want, images_groups * nkb * npan)
