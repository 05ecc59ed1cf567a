"""conv3d Winograd: F(m_d, 3) along depth nested around the grouped 2-D pipeline
(kernels.winograd.conv3d), against the float64 oracle, plan == run, the depth choice and
the counts. The specs reach both depth algorithms with ragged tails on every axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kernels
from kernels.winograd import transform_multiplications
from kernels.winograd.cells import axis_tiles
from kernels.winograd.conv3d import depth_m, depth_winograd

from .conftest import assert_conforms

ALGOS = ("winograd_f2", "winograd_f4")


@st.composite
def conv3d_specs(draw, cg_choices=(1, 2, 3), max_depth=13, max_size=10):
    """3x3x3 stride-1 conv3d specs: depth long enough for F(4,3) (several depth tiles, a
    ragged last one), height and width not multiples of the 2-D tile, groups, batch,
    padding, dilation on any axis and flip."""
    g = draw(st.integers(1, 2))
    c = g * draw(st.sampled_from(cg_choices))
    k = g * draw(st.integers(1, 3))
    dilation = tuple(draw(st.sampled_from((1, 1, 2))) for _ in range(3))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(3))
    lows = [max(1, 2 * d + 1 - 2 * p) for d, p in zip(dilation, padding)]
    size = tuple(draw(st.integers(lw, hi)) for lw, hi in zip(
        lows, (max_depth, max_size, max_size)))
    return kernels.ConvSpec(n=draw(st.integers(1, 2)), c=c, k=k, size=size, kernel=3,
                            padding=padding, dilation=dilation, groups=g,
                            flip=draw(st.booleans()))


def _form(algorithm, spec):
    return axis_tiles("conv3d", algorithm, spec)[0]


@pytest.mark.parametrize("algorithm", ALGOS)
@settings(max_examples=20)
@given(spec=conv3d_specs(), seed=st.integers(0, 9))
def test_depth_taps_form_matches_reference(algorithm, spec, seed):
    # c/g <= 3: every spec takes the taps form (F(1,3) along depth)
    assert _form(algorithm, spec) == 1
    assert_conforms("conv3d", algorithm, spec, seed=seed)


@pytest.mark.parametrize("algorithm", ALGOS)
@settings(max_examples=15, suppress_health_check=[HealthCheck.filter_too_much])
@given(spec=conv3d_specs(cg_choices=(16,), max_depth=14, max_size=11), seed=st.integers(0, 9))
def test_nested_form_matches_reference(algorithm, spec, seed):
    # 16 channels per group and enough tiles: F(2,3) or F(4,3) nested along depth
    assume(_form(algorithm, spec) > 1)
    assert_conforms("conv3d", algorithm, spec, seed=seed)


# the taps form, then nested: depth outputs 7 (F(4,3), ragged last depth tile) and 4, 11
# on two sub-grids; odd and even H, W
CASES = [
    (kernels.ConvSpec(n=2, c=3, k=5, size=(4, 7, 6), kernel=3, padding=1), (1, 1)),
    (kernels.ConvSpec(n=1, c=32, k=6, groups=2, size=(9, 9, 11), kernel=3,
                      padding=(0, 1, 2), flip=True), (2, 4)),
    (kernels.ConvSpec(n=2, c=16, k=4, size=(4, 10, 9), kernel=3, padding=1), (2, 4)),
    (kernels.ConvSpec(n=1, c=16, k=5, size=(11, 10, 12), kernel=3, padding=1,
                      dilation=(2, 1, 2)), (2, 2)),
]


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("spec, forms", CASES, ids=str)
def test_plan_equals_run_bit_for_bit(algorithm, spec, forms):
    assert _form(algorithm, spec) == forms[ALGOS.index(algorithm)]
    x1, w = kernels.make_inputs("conv3d", spec, seed=2)
    x2, _ = kernels.make_inputs("conv3d", spec, seed=3)
    p = kernels.plan("conv3d", algorithm, spec, w)
    assert p._state.filt.transformed  # the plan keeps the 2-D transform (every frequency)
    for x in (x1, x2):
        np.testing.assert_array_equal(p(x), kernels.run("conv3d", algorithm, spec, x, w))
    assert_conforms("conv3d", algorithm, spec, seed=2, weights=w)


@pytest.mark.parametrize("m, out_depth, dilation, md", [
    (2, 16, 1, 2),   # winograd_f2 nests F(2,3) only (its bound)
    (4, 1, 1, 2), (4, 2, 1, 2),    # 4 depth points against 6
    (4, 3, 1, 4), (4, 4, 1, 4), (4, 16, 1, 4),
    (4, 4, 2, 2),  # two sub-grids of 2 slices: F(2,3)
])
def test_nested_depth_algorithm_has_fewer_points(m, out_depth, dilation, md):
    assert depth_winograd(m, out_depth, dilation) == md


def test_c3d_forms():
    # few input channels (conv1a) or few tiles per weight (conv5a at N=1): depth taps
    forms = {s.name: _form("winograd_f4", s) for s in C3D}
    assert forms == {"c3d:conv1a": 1, "c3d:conv2a": 4, "c3d:conv3a": 4, "c3d:conv3b": 4,
                     "c3d:conv4a": 4, "c3d:conv4b": 4, "c3d:conv5a*2": 1}
    assert depth_m(4, 1, 15, (16, 56, 56), (1, 1, 1)) == 1
    assert depth_m(4, 1, 16, (16, 56, 56), (1, 1, 1)) == 4


C3D = [kernels.ConvSpec.parse(line.split()[1])
       for line in (Path(__file__).parents[1] / "harness/shapes/c3d.txt").read_text().splitlines()
       if line.startswith("conv3d")]
C3D_CONV5A = C3D[-1]
C3D_CONV2A = C3D[1]


def test_counts_per_axis():
    # conv5a: the taps form, 2 slices x 3 taps of 2x2 tiles of 6x6 (F4) or 4x4 of 4x4 (F2)
    f4 = kernels.multiplications("conv3d", "winograd_f4", C3D_CONV5A)
    f2 = kernels.multiplications("conv3d", "winograd_f2", C3D_CONV5A)
    assert f4 == 2 * 3 * (2 * 2 * 36) * 512 * 512
    assert f2 == 2 * 3 * (4 * 4 * 16) * 512 * 512
    # conv2a: 16 slices -> F(4,3): 4 depth tiles of 6 points, 14x14 tiles of 6x6; F(2,3)
    assert kernels.multiplications("conv3d", "winograd_f4", C3D_CONV2A) == \
        4 * 6 * 14 * 14 * 36 * 64 * 128
    assert kernels.multiplications("conv3d", "winograd_f2", C3D_CONV2A) == \
        8 * 4 * 28 * 28 * 16 * 64 * 128
    direct = kernels.multiplications("conv3d", "direct", C3D_CONV2A)
    assert direct == 8 * kernels.multiplications("conv3d", "winograd_f4", C3D_CONV2A)
    t = transform_multiplications("conv3d", "winograd_f4", C3D_CONV2A)
    assert all(v > 0 for v in t.values())
    assert transform_multiplications("conv3d", "winograd_f4", C3D_CONV2A.replace(n=2)) == \
        dict(t, input=2 * t["input"], output=2 * t["output"])
