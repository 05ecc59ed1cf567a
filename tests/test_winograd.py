"""Winograd F(2x2,3x3) / F(4x4,3x3): exact matrices, every cell against the float64 oracle,
supports() reasons and the Lavin–Gray counts."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from kernels.accuracy import bound
from kernels.winograd import transform_multiplications
from kernels.winograd.matrices import cook_toom, correlate_exact, winograd_exact
from tests.conftest import assert_close, specs

ALGOS = ("winograd_f2", "winograd_f4")
CELLS_2D = ("conv2d", "grouped", "shuffled_grouped", "dilated2d", "depthwise",
            "depthwise_separable", "spatially_separable", "flattened", "transposed2d")


@pytest.mark.parametrize("m", [2, 4, 6])
def test_matrices_are_exact(m):
    rng = random.Random(m)
    AT, G, BT = cook_toom(m, 3)
    assert (len(AT), len(AT[0]), len(G), len(G[0]), len(BT)) == (m, m + 2, m + 2, 3, m + 2)
    for _ in range(50):
        d = [Fraction(rng.randint(-99, 99), rng.randint(1, 9)) for _ in range(m + 2)]
        g = [Fraction(rng.randint(-99, 99), rng.randint(1, 9)) for _ in range(3)]
        assert winograd_exact(m, 3, d, g) == correlate_exact(d, g)
    # unit vectors: the identity holds as a bilinear form, not just on samples
    for i in range(m + 2):
        for k in range(3):
            d = [Fraction(int(j == i)) for j in range(m + 2)]
            g = [Fraction(int(j == k)) for j in range(3)]
            assert winograd_exact(m, 3, d, g) == correlate_exact(d, g)


def _check(conv_type, algorithm, spec):
    x, w = kernels.make_inputs(conv_type, spec, seed=1)
    y = kernels.run(conv_type, algorithm, spec, x, w)
    assert_close(y, kernels.reference(conv_type, spec, x, w), bound(algorithm, conv_type, spec))


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("conv_type", CELLS_2D)
@given(data=st.data())
def test_cells_match_reference(conv_type, algorithm, data):
    spec = data.draw(specs(conv_type, max_size=11, kernel_sizes=(3,), strides=(1,),
                           dilations=(1, 2, 3)))
    _check(conv_type, algorithm, spec)


@pytest.mark.parametrize("algorithm", ALGOS)
@given(data=st.data())
def test_conv3d_matches_reference(algorithm, data):
    spec = data.draw(specs("conv3d", kernel_sizes=(3,), strides=(1,), dilations=(1, 2)))
    _check("conv3d", algorithm, spec)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_wide_layers_use_every_block(algorithm):
    # more channels than one 32-lane block, tiles beyond one 6-tile block and one chunk
    spec = kernels.ConvSpec(n=2, c=40, k=37, size=(21, 19), kernel=3, padding=1)
    _check("conv2d", algorithm, spec)
    _check("shuffled_grouped", algorithm, spec.replace(c=40, k=36, groups=2))


@pytest.mark.parametrize("conv_type, spec, words", [
    ("conv2d", kernels.ConvSpec(c=2, k=2, size=9, kernel=5), "3x3 kernel with stride 1"),
    ("conv2d", kernels.ConvSpec(c=2, k=2, size=9, kernel=3, stride=2), "stride 1"),
    ("transposed2d", kernels.ConvSpec(c=2, k=2, size=5, kernel=3, stride=2, transposed=True),
     "stride 1"),
    ("pointwise", kernels.ConvSpec(c=2, k=2, size=9, kernel=1), "1x1 has no 3x3 kernel"),
    ("conv3d", kernels.ConvSpec(c=2, k=2, size=(5, 5, 5), kernel=(3, 3, 5)), "3x3x3 kernel"),
])
@pytest.mark.parametrize("algorithm", ALGOS)
def test_supports_reasons(conv_type, spec, words, algorithm):
    why = kernels.supports(conv_type, algorithm, spec)
    assert why is not None and words in why
    with pytest.raises(ValueError, match="cannot run"):
        kernels.run(conv_type, algorithm, spec, *kernels.make_inputs(conv_type, spec))


def test_lavin_gray_counts():
    # ResNet-50 res2 at N=1: 14x14 tiles of 4x4 (F4) or 28x28 of 2x2 (F2)
    spec = kernels.ConvSpec(n=1, c=64, k=64, size=56, kernel=3, padding=1)
    direct = kernels.multiplications("conv2d", "direct", spec)
    assert kernels.multiplications("conv2d", "winograd_f4", spec) == 14 * 14 * 36 * 64 * 64
    assert kernels.multiplications("conv2d", "winograd_f2", spec) == 28 * 28 * 16 * 64 * 64
    assert direct == 4 * kernels.multiplications("conv2d", "winograd_f4", spec)
    assert direct == 2.25 * kernels.multiplications("conv2d", "winograd_f2", spec)
    # ragged tiles are counted whole; dilation counts each sub-grid's tiles
    s7 = kernels.ConvSpec(n=1, c=8, k=8, size=7, kernel=3, padding=1)
    assert kernels.multiplications("conv2d", "winograd_f4", s7) == 4 * 36 * 64
    sd = kernels.ConvSpec(n=1, c=8, k=8, size=12, kernel=3, padding=2, dilation=2)
    assert kernels.multiplications("dilated2d", "winograd_f2", sd) == 4 * 9 * 16 * 64
    dw = kernels.ConvSpec(n=1, c=8, k=8, groups=8, size=8, kernel=3, padding=1)
    assert kernels.multiplications("depthwise", "winograd_f2", dw) == 16 * 16 * 8
    t = transform_multiplications("conv2d", "winograd_f4", spec)
    assert set(t) == {"input", "filter", "output"} and all(v > 0 for v in t.values())
    # the filter transform is per (k, c) pair: independent of the image
    big = spec.replace(n=8)
    assert transform_multiplications("conv2d", "winograd_f4", big)["filter"] == t["filter"]
    assert transform_multiplications("conv2d", "winograd_f4", big)["input"] == 8 * t["input"]
