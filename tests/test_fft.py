"""FFT convolution: the real-DFT bilinear matrices against numpy.fft and np.correlate, the tile
rule, every fft cell against the float64 oracle (strides through the polyphase split),
supports() reasons and the counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import kernels
from kernels.accuracy import bound
from kernels.fft import transform_multiplications
from kernels.fft.matrices import alpha, bilinear_correlate, float_matrices, rfft_bilinear
from kernels.fft.plan import TILES, TRANSFORM_WEIGHT, plan, tile_count, transform_counts
from tests.conftest import assert_close, specs

SIZES = (1, 2, 3, 4, 5, 7, 8, 9, 12, 16)
CELLS_2D = ("conv2d", "grouped", "shuffled_grouped", "dilated2d", "spatially_separable",
            "flattened", "depthwise", "depthwise_separable")


@pytest.mark.parametrize("t", SIZES)
def test_data_rows_are_rfft(t):
    """B^T d holds rfft(d): f = 0 and t/2 as is, every other f as (a + b, a, b)."""
    _, _, BT = rfft_bilinear(t, 1)
    assert BT.shape == (alpha(t), t)
    rng = np.random.default_rng(t)
    for _ in range(5):
        d = rng.standard_normal(t)
        pts, spec = BT @ d, np.fft.rfft(d)
        row = 0
        for f, z in enumerate(spec):
            if f == 0 or 2 * f == t:
                assert pts[row] == pytest.approx(z.real, abs=1e-12)
                assert abs(z.imag) < 1e-12
                row += 1
            else:
                np.testing.assert_allclose(pts[row:row + 3], [z.real + z.imag, z.real, z.imag],
                                           atol=1e-12)
                row += 3
        assert row == alpha(t)


def test_alpha():
    assert (alpha(8), alpha(16), alpha(1)) == (11, 23, 1)


@pytest.mark.parametrize("t", SIZES)
def test_bilinear_identity(t):
    """A^T [(G g) ⊙ (B^T d)] is the valid correlation (and, g reversed, the convolution)."""
    rng = np.random.default_rng(100 + t)
    for r in range(1, t + 1):
        AT, G, BT = rfft_bilinear(t, r)
        assert (AT.shape, G.shape, BT.shape) == ((t - r + 1, alpha(t)), (alpha(t), r),
                                                  (alpha(t), t))
        for _ in range(3):
            d, g = rng.standard_normal(t), rng.standard_normal(r)
            np.testing.assert_allclose(bilinear_correlate(t, r, d, g),
                                       np.correlate(d, g, "valid"), rtol=0, atol=1e-12)
            np.testing.assert_allclose(bilinear_correlate(t, r, d, g[::-1]),
                                       np.convolve(d, g, "valid"), rtol=0, atol=1e-12)
        # the identity as a bilinear form (every pair of unit vectors), not just on samples
        form = np.einsum("ia,ak,aj->ijk", AT, G, BT)  # y_i = sum form[i, j, k] d_j g_k
        want = np.array([[[float(j == i + k) for k in range(r)] for j in range(t)]
                         for i in range(t - r + 1)])
        np.testing.assert_allclose(form, want, rtol=0, atol=1e-12)


def test_quarter_turns_are_exact():
    """cos/sin at multiples of pi/2 are exactly 0 and +-1, so the kernels skip the zeros."""
    AT, G, BT = rfft_bilinear(8, 3)
    assert set(np.unique(BT[[0, -1]])) <= {-1.0, 1.0}  # f = 0 and f = 4
    f2 = BT[1 + 3 * 1:1 + 3 * 2]  # (a + b, a, b) of f = 2: e^{-i pi j / 2}
    assert set(np.unique(f2)) <= {-1.0, 0.0, 1.0}
    assert np.count_nonzero(BT) < BT.size and np.count_nonzero(AT) < AT.size
    for mat, f32 in zip(rfft_bilinear(16, 5), float_matrices(16, 5)):
        assert f32.dtype == np.float32 and f32.flags.c_contiguous
        np.testing.assert_array_equal(f32, mat.astype(np.float32))


def test_bad_taps():
    with pytest.raises(ValueError, match="r: the taps must fit the tile"):
        rfft_bilinear(8, 9)


def test_tile_rule():
    big = kernels.ConvSpec(c=64, k=64, size=56, kernel=7, padding=3)
    small = kernels.ConvSpec(c=64, k=64, size=7, kernel=3, padding=1)
    assert plan(big).tiles == (16, 16)
    assert plan(small).tiles == (8, 8)
    assert plan(kernels.ConvSpec(c=8, k=8, size=20, kernel=(1, 5), padding=(0, 2))).tiles[0] == 1
    # the choice is the cheapest candidate, transforms included
    spec = kernels.ConvSpec(c=48, k=128, size=27, kernel=5, padding=2)
    p = plan(spec)

    def cost(tiles):
        m = tuple(t - r + 1 for t, r in zip(tiles, p.kernel))
        inp, filt, out = transform_counts(tiles, p.kernel)
        count = tile_count(1, spec.out_size, (1, 1), m)
        return (count * alpha(tiles[0]) * alpha(tiles[1]) * 48 * 128
                + TRANSFORM_WEIGHT * (count * (inp * 48 + out * 128) + 48 * 128 * filt))

    assert all(cost(p.tiles) <= cost((a, b)) for a in TILES for b in TILES)


def test_polyphase_plan():
    stem = kernels.ConvSpec.parse('mb1ic3ih224oc64oh112kh7sh2ph3n"resnet_50:conv1"')
    p = plan(stem)
    assert p.phases == (2, 2) and p.kernel == (4, 4) and p.c == 12


def _check(conv_type, spec):
    x, w = kernels.make_inputs(conv_type, spec, seed=1)
    y = kernels.run(conv_type, "fft", spec, x, w)
    assert_close(y, kernels.reference(conv_type, spec, x, w), bound("fft", conv_type, spec))


@pytest.mark.parametrize("conv_type", CELLS_2D)
@given(data=st.data())
def test_cells_match_reference(conv_type, data):
    spec = data.draw(specs(conv_type, max_size=13, kernel_sizes=(1, 2, 3, 4, 5, 6, 7),
                           strides=(1, 1, 2, 3), dilations=(1, 1, 2)))
    assume(kernels.supports(conv_type, "fft", spec) is None)
    _check(conv_type, spec)


@given(data=st.data())
def test_transposed_matches_reference(data):
    spec = data.draw(specs("transposed2d", max_size=11, kernel_sizes=(2, 3, 4, 6),
                           strides=(1,), dilations=(1, 2)))
    _check("transposed2d", spec)


@pytest.mark.parametrize("kernel, size", [(3, 30), (5, (21, 19)), (7, 40), ((2, 9), 24)])
def test_wide_layers_use_every_block(kernel, size):
    # more channels than one 32-lane block, tiles beyond one 6-tile block and one chunk,
    # 16-wide tiles (529 frequencies: the product slabs)
    spec = kernels.ConvSpec(n=2, c=40, k=37, size=size, kernel=kernel, padding=1)
    _check("conv2d", spec)
    _check("shuffled_grouped", spec.replace(c=40, k=36, groups=2))


def test_strided_layer():
    spec = kernels.ConvSpec(n=1, c=3, k=20, size=(37, 35), kernel=7, stride=2, padding=3)
    _check("conv2d", spec)
    _check("conv2d", spec.replace(kernel=(5, 11), stride=(3, 2), padding=(2, 4)))


@pytest.mark.parametrize("conv_type, spec, words", [
    ("conv2d", kernels.ConvSpec(c=2, k=2, size=40, kernel=17), "up to 16 taps"),
    ("conv2d", kernels.ConvSpec(c=2, k=2, size=20, kernel=3, stride=2, dilation=2),
     "without dilation"),
    ("transposed2d", kernels.ConvSpec(c=2, k=2, size=5, kernel=3, stride=2, transposed=True),
     "stride 1"),
    ("pointwise", kernels.ConvSpec(c=2, k=2, size=9, kernel=1), "1x1"),
    ("grouped", kernels.ConvSpec(c=4, k=4, size=9, kernel=1, groups=2), "1x1 kernel"),
    ("conv3d", kernels.ConvSpec(c=2, k=2, size=(5, 5, 5), kernel=3), "2-D tiles only"),
])
def test_supports_reasons(conv_type, spec, words):
    why = kernels.supports(conv_type, "fft", spec)
    assert why is not None and words in why
    with pytest.raises(ValueError, match="cannot run"):
        kernels.run(conv_type, "fft", spec, *kernels.make_inputs(conv_type, spec))


def test_counts():
    # 7x7 at 56x56: 16-wide tiles of 10 outputs, 6 x 6 tiles of 23^2 points
    spec = kernels.ConvSpec(n=1, c=64, k=64, size=56, kernel=7, padding=3)
    assert plan(spec).tiles == (16, 16)
    assert kernels.multiplications("conv2d", "fft", spec) == 36 * 529 * 64 * 64
    # 5x5 there: 8 tall (14 tiles of 4 rows), 16 wide (5 tiles of 12 columns)
    s5 = spec.replace(kernel=5, padding=2)
    assert plan(s5).tiles == (8, 16)
    assert kernels.multiplications("conv2d", "fft", s5) == 70 * 11 * 23 * 64 * 64
    assert kernels.multiplications("conv2d", "direct", spec) > 4 * kernels.multiplications(
        "conv2d", "fft", spec)
    # ragged tiles count whole; dilation counts each sub-grid's tiles (8-wide, m = 6)
    sd = kernels.ConvSpec(n=1, c=8, k=8, size=12, kernel=3, padding=2, dilation=2)
    assert plan(sd).tiles == (8, 8)
    assert kernels.multiplications("dilated2d", "fft", sd) == 4 * 1 * 121 * 64
    # polyphase: the stride-1 problem has c * s^2 channels
    st2 = kernels.ConvSpec(n=1, c=3, k=8, size=16, kernel=4, stride=2, padding=1)
    p = plan(st2)
    m = tuple(t - r + 1 for t, r in zip(p.tiles, p.kernel))
    assert kernels.multiplications("conv2d", "fft", st2) == (
        tile_count(1, st2.out_size, (1, 1), m) * alpha(p.tiles[0]) * alpha(p.tiles[1]) * 12 * 8)
    t = transform_multiplications("conv2d", spec)
    assert set(t) == {"input", "filter", "output"} and all(v > 0 for v in t.values())
    assert transform_multiplications("conv2d", spec.replace(n=4))["filter"] == t["filter"]
    assert transform_multiplications("conv2d", spec.replace(n=4))["input"] == 4 * t["input"]
