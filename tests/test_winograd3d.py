"""conv3d Winograd: F(m_d, 3) along depth nested around the grouped 2-D pipeline
(kernels.winograd.conv3d), against the float64 oracle, plan == run, the depth choice and
the counts. The specs reach both depth algorithms with ragged tails on every axis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels.winograd import transform_multiplications
from kernels.winograd.conv3d import depth_m

from .conftest import assert_conforms

ALGOS = ("winograd_f2", "winograd_f4")


@st.composite
def nested_specs(draw):
    """3x3x3 stride-1 conv3d specs: depth long enough for F(4,3) (several depth tiles, a
    ragged last one), height and width not multiples of the 2-D tile, groups, batch,
    padding, dilation on any axis and flip."""
    g = draw(st.integers(1, 2))
    c = g * draw(st.integers(1, 3))
    k = g * draw(st.integers(1, 3))
    dilation = tuple(draw(st.sampled_from((1, 1, 2))) for _ in range(3))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(3))
    lows = [max(1, 2 * d + 1 - 2 * p) for d, p in zip(dilation, padding)]
    size = (draw(st.integers(lows[0], 13)),
            *(draw(st.integers(lw, 10)) for lw in lows[1:]))
    return kernels.ConvSpec(n=draw(st.integers(1, 2)), c=c, k=k, size=size, kernel=3,
                            padding=padding, dilation=dilation, groups=g,
                            flip=draw(st.booleans()))


@pytest.mark.parametrize("algorithm", ALGOS)
@settings(max_examples=20)
@given(spec=nested_specs(), seed=st.integers(0, 9))
def test_nested_matches_reference(algorithm, spec, seed):
    assert_conforms("conv3d", algorithm, spec, seed=seed)


# depth outputs 2 (F(2,3)), 5 and 11 (F(4,3), ragged last depth tile); odd and even H, W
CASES = [
    kernels.ConvSpec(n=2, c=3, k=5, size=(4, 7, 6), kernel=3, padding=1),
    kernels.ConvSpec(n=1, c=4, k=6, groups=2, size=(7, 5, 9), kernel=3, padding=(0, 1, 2),
                     flip=True),
    kernels.ConvSpec(n=2, c=2, k=4, size=(11, 6, 5), kernel=3, padding=1, dilation=(2, 1, 2)),
]


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("spec", CASES, ids=str)
def test_plan_equals_run_bit_for_bit(algorithm, spec):
    x1, w = kernels.make_inputs("conv3d", spec, seed=2)
    x2, _ = kernels.make_inputs("conv3d", spec, seed=3)
    p = kernels.plan("conv3d", algorithm, spec, w)
    assert p._state.filt.transformed  # the plan keeps the 2-D transform of every frequency
    for x in (x1, x2):
        np.testing.assert_array_equal(p(x), kernels.run("conv3d", algorithm, spec, x, w))
    assert_conforms("conv3d", algorithm, spec, seed=2, weights=w)


@pytest.mark.parametrize("m, out_depth, dilation, md", [
    (2, 16, 1, 2),   # winograd_f2 stays F(2,3) on every axis (its bound)
    (4, 1, 1, 2), (4, 2, 1, 2),    # 4 depth points against 6
    (4, 3, 1, 4), (4, 4, 1, 4), (4, 16, 1, 4),
    (4, 4, 2, 2),  # two sub-grids of 2 slices: F(2,3)
])
def test_depth_algorithm_has_fewer_points(m, out_depth, dilation, md):
    assert depth_m(m, out_depth, dilation) == md


C3D_CONV5A = kernels.ConvSpec.parse('mb1ic512id2ih7oc512od2oh7kd3kh3pd1ph1n"c3d:conv5a"')
C3D_CONV2A = kernels.ConvSpec.parse('mb1ic64id16ih56oc128od16oh56kd3kh3pd1ph1n"c3d:conv2a"')


def test_counts_per_axis():
    # conv5a: 2 slices -> F(2,3) along depth (4 points), 2x2 tiles of 6x6 (F4) or 4x4 of 4x4
    f4 = kernels.multiplications("conv3d", "winograd_f4", C3D_CONV5A)
    f2 = kernels.multiplications("conv3d", "winograd_f2", C3D_CONV5A)
    assert f4 == 4 * (2 * 2 * 36) * 512 * 512
    assert f2 == 4 * (4 * 4 * 16) * 512 * 512
    # conv2a: 16 slices -> F(4,3): 4 depth tiles of 6 points, 14x14 tiles of 6x6
    assert kernels.multiplications("conv3d", "winograd_f4", C3D_CONV2A) == \
        4 * 6 * 14 * 14 * 36 * 64 * 128
    direct = kernels.multiplications("conv3d", "direct", C3D_CONV2A)
    assert direct == 8 * kernels.multiplications("conv3d", "winograd_f4", C3D_CONV2A)
    t = transform_multiplications("conv3d", "winograd_f4", C3D_CONV2A)
    assert all(v > 0 for v in t.values())
    assert transform_multiplications("conv3d", "winograd_f4", C3D_CONV2A.replace(n=2)) == \
        dict(t, input=2 * t["input"], output=2 * t["output"])
