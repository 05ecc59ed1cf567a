"""Grouped convolutions with the groups in the vector lanes (kernels.direct.group_lanes on
lane_nest's nest): the shapes the rule sends there, against the float64 oracle
(NaN-poisoned outputs, conftest) and plan == run.

Specs cross the blocks' edges on AVX-512 (16 lanes) and AVX2 (8): 16..64 groups, full
and partial lane blocks; 1..8 input and output channels per group, cg != kg, so every
register block width (4, 2, 1 output channels) runs; odd and even planes, fewer pixels
than lanes and ragged tails; strides, padding, dilation, batch 2, flip, the shuffle; and
bands of one row (several work items per block) as well as whole planes.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels import ConvSpec
from kernels.direct import dense, group_lanes
from kernels.direct.lane_block import CL

from .conftest import assert_conforms

EXAMPLES = 15
# full and partial blocks of 16 and of 8 lanes
GROUPS = (16, 17, 24, 31, 32, 40, 48, 63, 64)
FEW = max(2, CL // 2 - 1)  # groups that fill under half a block (on 4 lanes: 12 channels)


@st.composite
def group_lane_specs(draw) -> ConvSpec:
    """2-D layers of 16..64 groups of 1..8 channels, kernels 1..3 (not 1x1), strides 1..2,
    dilation 1..2, padding 0..2, planes 1..11, flip, batch 1..2."""
    g = draw(st.sampled_from(GROUPS))
    cg, kg = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if kernel == (1, 1):
        kernel = (1, 3)
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(2))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(2))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(2))
    size = tuple(max(d * (k - 1) + 1 - 2 * p, draw(st.integers(1, 11)))
                 for k, d, p in zip(kernel, dilation, padding))
    return ConvSpec(n=draw(st.integers(1, 2)), c=g * cg, k=g * kg, size=size, kernel=kernel,
                    stride=stride, padding=padding, dilation=dilation, groups=g,
                    flip=draw(st.booleans()))


@pytest.fixture(params=["bands", "rows"])
def banding(request, monkeypatch):
    """Both schedules: bands as large as the budget allows, and one output row per work
    item (many items per group block, each gathering its own rows)."""
    if request.param == "rows":
        monkeypatch.setattr(group_lanes, "BAND_BYTES", 1)
    return request.param


def _check(conv_type: str, spec: ConvSpec, seed: int = 0) -> None:
    """Takes the groups-in-lanes path, conforms to the oracle; a plan gives run's bits."""
    assert group_lanes.takes_group_lanes(spec), spec
    x, w, y = assert_conforms(conv_type, "direct", spec, seed=seed)
    assert isinstance(dense.prepare_dense(spec, w[0]), group_lanes.GroupLanes)
    np.testing.assert_array_equal(kernels.plan(conv_type, "direct", spec, w)(x), y)


@settings(max_examples=EXAMPLES)
@given(spec=group_lane_specs())
def test_grouped(spec):
    _check("grouped", spec)


@settings(max_examples=EXAMPLES)
@given(spec=group_lane_specs())
def test_shuffled_grouped(spec):
    """The shuffle's channel map is one channel stride per lane: kstep 1."""
    _check("shuffled_grouped", spec)


@settings(max_examples=8)
@given(spec=group_lane_specs())
def test_one_row_bands(spec):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(group_lanes, "BAND_BYTES", 1)
        _check("grouped", spec, seed=2)


@pytest.mark.parametrize("conv_type, spec", [
    # ResNeXt-like: 32 groups of 4, stride 2 from an odd plane (a ragged last band)
    ("grouped", ConvSpec(n=1, c=128, k=128, size=15, kernel=3, padding=1, stride=2,
                         groups=32)),
    # kg = 6: register blocks of 2; 40 groups: a partial block; batch 2, flip
    ("shuffled_grouped", ConvSpec(n=2, c=80, k=240, size=(9, 13), kernel=3, padding=1,
                                  groups=40, flip=True)),
    # kg = 5: blocks of one; a 5x5 window dilated 2 at stride 2
    ("grouped", ConvSpec(n=1, c=96, k=80, size=(14, 12), kernel=5, padding=4, stride=2,
                         dilation=2, groups=16)),
    # 16 channels per group, a 7x7 plane: fewer pixels per row than lanes
    ("grouped", ConvSpec(n=1, c=512, k=512, size=7, kernel=3, padding=1, groups=32)),
])
def test_edges(conv_type, spec, banding):
    _check(conv_type, spec, seed=1)


RESNEXT = {line.split('"')[1]: ConvSpec.parse(line.split()[1].split('n"')[0])
           for line in open("harness/shapes/resnext50.txt")
           if line.startswith("grouped")}


@pytest.mark.parametrize("name", sorted(RESNEXT))
def test_rule_takes_resnext_3x3_layers(name):
    """Every 32-group 3x3 layer (4 to 32 channels per group) runs with its groups in lanes."""
    spec = RESNEXT[name]
    assert group_lanes.takes_group_lanes(spec)
    w = np.zeros((spec.k, spec.c // spec.groups, 3, 3), np.float32)
    assert isinstance(dense.prepare_dense(spec, w), group_lanes.GroupLanes)


@pytest.mark.parametrize("spec, why", [
    (ConvSpec(c=240, k=60, size=28, kernel=1, groups=3), "1x1"),
    (ConvSpec(c=12 * FEW, k=12 * FEW, size=9, kernel=3, padding=1, groups=FEW),
     "groups fill under half the lanes"),
    (ConvSpec(c=64 * CL // 2, k=64, size=9, kernel=3, groups=CL // 2), "half the lanes, cg 64"),
    (ConvSpec(c=256 * 16, k=256 * 16, size=1024, kernel=7, padding=3, groups=256),
     "a row of input past L2"),
    (ConvSpec(c=64, k=64, size=(5, 5, 5), kernel=3, groups=32), "3-D"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_rule_keeps_the_old_path(spec, why):
    assert not group_lanes.takes_group_lanes(spec), why


def test_channel_map_must_be_one_stride():
    kmap = np.arange(32)
    kmap[[0, 1]] = kmap[[1, 0]]  # not affine in the group
    with pytest.raises(ValueError, match="kmap"):
        group_lanes.group_channel_map(kmap, 16)
    assert group_lanes.group_channel_map(np.arange(32), 16)[1] == 2


def test_memory_estimate_covers_what_numpy_allocates():
    """No input copy: only per-thread bands in the estimate, which still cover the call."""
    spec = ConvSpec(n=2, c=256, k=256, size=30, kernel=3, padding=1, stride=2, groups=32)
    assert group_lanes.takes_group_lanes(spec)
    x, w = kernels.make_inputs("grouped", spec)
    kernels.run("grouped", "direct", spec, x, w)
    tracemalloc.start()
    try:
        kernels.run("grouped", "direct", spec, x, w)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    est = kernels.memory_estimate("grouped", "direct", spec)
    assert peak <= est["total"], (est, peak)
