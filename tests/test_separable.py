"""The separable algorithm: every cell against the float64 oracle, the seed's counts, ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels import ConvSpec, accuracy
from kernels.separable import counts as sep_counts
from kernels.separable import (
    numerical_rank,
    rank_error,
    rank_tolerance,
    separable_multiplications,
)

from .conftest import assert_close, assert_conforms
from .strategies import cell_specs

DENSE = ("conv2d", "dilated2d", "grouped", "shuffled_grouped", "depthwise", "transposed2d")
NATIVE = ("spatially_separable", "flattened", "depthwise_separable")

SOBEL = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32)
BOX = np.ones((3, 3), np.float32) / 9
GAUSS = np.outer(*(2 * [np.array([1, 4, 6, 4, 1], np.float32) / 16])).astype(np.float32)


def _rank1(w: np.ndarray, rng) -> np.ndarray:
    """Replace every 2-D slice of w[..., kh, kw] by an outer product (rank 1)."""
    col = rng.standard_normal(w.shape[:-1], dtype=np.float32)
    row = rng.standard_normal(w.shape[:-2] + w.shape[-1:], dtype=np.float32)
    return (col[..., :, None] * row[..., None, :] / math.sqrt(w[0].size)).astype(np.float32)


def _check(conv_type, spec, rank1=False, seed=0):
    w = None
    if rank1 and conv_type not in NATIVE[:2]:
        _, w = kernels.make_inputs(conv_type, spec, seed=seed)
        w = (_rank1(w[0], np.random.default_rng(seed)),) + w[1:]
    return assert_conforms(conv_type, "separable", spec, seed=seed, weights=w)[:2]


# random kernels run with full rank everywhere (tests/test_conformance.py); rank-1 kernels
# take the one-term path, nested for conv3d
@pytest.mark.parametrize("conv_type", DENSE + ("depthwise_separable", "conv3d"))
@settings(max_examples=10)
@given(data=st.data())
def test_rank1_kernels_match_reference(conv_type, data):
    _check(conv_type, data.draw(cell_specs(conv_type)), rank1=True)


@pytest.mark.parametrize("conv_type, spec", [
    # several row bands, output-channel chunks and batch items
    ("spatially_separable", ConvSpec(n=2, c=3, k=40, size=(70, 41), kernel=(7, 5), padding=(3, 1))),
    ("conv2d", ConvSpec(n=1, c=4, k=9, size=(61, 33), kernel=(5, 3), stride=(2, 3), padding=2,
                        dilation=(1, 2), flip=True)),
    ("depthwise", ConvSpec(n=1, c=19, k=19, groups=19, size=(40, 40), kernel=3, padding=1)),
    ("transposed2d", ConvSpec(n=1, c=4, k=6, size=(20, 17), kernel=(5, 3), stride=(2, 3),
                              padding=(5, 1), groups=2, output_padding=(1, 2), transposed=True)),
    ("flattened", ConvSpec(n=1, c=5, k=7, size=(37, 50), kernel=(3, 7), padding=(0, 3),
                           dilation=(2, 1))),
])
def test_large_shapes(conv_type, spec):
    _check(conv_type, spec)


def test_pointwise_does_not_apply():
    spec = ConvSpec(c=4, k=4, size=5, kernel=1)
    assert kernels.supports("pointwise", "separable", spec) == "1x1 has no spatial extent to factor"
    with pytest.raises(ValueError, match="separable"):
        kernels.run("pointwise", "separable", spec, *kernels.make_inputs("pointwise", spec))


# ------------------------------------------------------------------------- counts

def test_seed_spatially_separable_counts():
    spec = ConvSpec(c=1, k=1, size=(5, 5), kernel=(3, 3))
    assert kernels.multiplications("spatially_separable", "direct", spec) == 81
    assert kernels.multiplications("spatially_separable", "separable", spec) == 72
    assert sep_counts.term_multiplications(spec) == 45 + 27


@pytest.mark.parametrize("N", [7, 9, 56, 112])
@pytest.mark.parametrize("m", [3, 5, 7])
def test_general_spatially_separable_count(N, m):
    spec = ConvSpec(c=1, k=1, size=N, kernel=m)
    sep = kernels.multiplications("spatially_separable", "separable", spec)
    direct = kernels.multiplications("spatially_separable", "direct", spec)
    assert sep == (N - m + 1) * (2 * N - m + 1) * m
    if m == 3:
        assert sep == (2 * N - 2) * (N - 2) * m
    assert direct == (N - m + 1) ** 2 * m * m
    assert sep / direct == pytest.approx((2 * N - m + 1) / ((N - m + 1) * m))


def test_count_with_padding_and_stride():
    spec = ConvSpec(n=2, c=3, k=4, size=(10, 12), kernel=(3, 5), stride=(2, 3), padding=(1, 2),
                    dilation=(1, 2))
    (OH, OW) = spec.out_size
    wspan = (OW - 1) * 3 + (5 - 1) * 2 + 1
    assert wspan <= 12 + 2 * 2
    expect = 2 * 4 * 3 * OH * (wspan * 3 + OW * 5)
    assert kernels.multiplications("spatially_separable", "separable", spec) == expect


def test_seed_depthwise_separable_counts():
    spec = ConvSpec(c=3, k=128, size=7, kernel=3)
    assert spec.out_size == (5, 5)
    assert kernels.multiplications("conv2d", "direct", spec) == 86_400
    assert kernels.multiplications("depthwise_separable", "direct", spec) == 10_275
    ratio = 10_275 / 86_400
    assert ratio == pytest.approx(1 / 128 + 1 / 9)
    dw, pw = sep_counts.depthwise_separable_count(spec)
    assert pw == 9_600
    # the factored depthwise stage: 3 full-rank terms per channel of 5*(7*3 + 5*3)
    assert dw == 3 * 3 * 5 * (7 * 3 + 5 * 3)
    assert kernels.multiplications("depthwise_separable", "separable", spec) == dw + pw


def test_flattened_count():
    spec = ConvSpec(c=8, k=16, size=12, kernel=3, padding=1)
    lateral, passes = sep_counts.flattened_count(spec)
    assert lateral == 16 * 8 * 12 * 12
    assert passes == 16 * 12 * (14 * 3 + 12 * 3)
    assert kernels.multiplications("flattened", "separable", spec) == lateral + passes


def test_counts_follow_the_rank():
    spec = ConvSpec(c=2, k=3, size=9, kernel=3)
    x, (w,) = kernels.make_inputs("conv2d", spec)
    full = kernels.multiplications("conv2d", "separable", spec)
    assert separable_multiplications("conv2d", spec, (w,)) == full
    w1 = _rank1(w, np.random.default_rng(1))
    assert separable_multiplications("conv2d", spec, (w1,)) * 3 == full
    assert full == 3 * 2 * 3 * sep_counts.term_multiplications(spec)
    spect = ConvSpec(c=2, k=2, size=6, kernel=3, stride=2, transposed=True)
    _, (wt,) = kernels.make_inputs("transposed2d", spect)
    assert separable_multiplications("transposed2d", spect, (wt,)) == kernels.multiplications(
        "transposed2d", "separable", spect)
    spec3 = ConvSpec(c=1, k=1, size=(5, 5, 5), kernel=3)
    _, (w3,) = kernels.make_inputs("conv3d", spec3)
    assert separable_multiplications("conv3d", spec3, (w3,)) == kernels.multiplications(
        "conv3d", "separable", spec3)
    box3 = np.ones((1, 1, 3, 3, 3), np.float32)
    assert separable_multiplications("conv3d", spec3, (box3,)) == (
        sep_counts.depth_pass_multiplications(spec3) + sep_counts.term_multiplications(spec3))


# ------------------------------------------------------------------------- ranks

@pytest.mark.parametrize("kernel, rank", [(SOBEL, 1), (SOBEL.T, 1), (BOX, 1), (GAUSS, 1),
                                          (np.zeros((3, 3), np.float32), 0)])
def test_rank_of_known_kernels(kernel, rank):
    assert numerical_rank(kernel) == rank
    assert rank_error(kernel, rank) < 1e-6


def test_random_kernels_have_full_rank():
    rng = np.random.default_rng(0)
    stack = rng.standard_normal((50, 3, 3)).astype(np.float32)
    assert (numerical_rank(stack) == 3).all()
    assert numerical_rank(rng.standard_normal((5, 7)).astype(np.float32)) == 5
    err = rank_error(stack, 1)
    assert err.shape == (50,) and (err > 0.05).all()


def test_rank_error():
    rng = np.random.default_rng(1)
    k = rng.standard_normal((5, 5))
    errs = [rank_error(k, r) for r in range(6)]
    assert errs[0] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(errs, errs[1:]))
    assert errs[5] == 0.0
    s = np.linalg.svd(k, compute_uv=False)
    assert errs[2] == pytest.approx(math.sqrt((s[2:] ** 2).sum() / (s ** 2).sum()))
    # noise below the tolerance does not add a term; noise above it does
    tiny = (SOBEL + 1e-3 * rank_tolerance(SOBEL.shape) * rng.standard_normal((3, 3)))
    assert numerical_rank(tiny) == 1
    assert numerical_rank(SOBEL + 1e-3 * rng.standard_normal((3, 3))) == 3
    with pytest.raises(ValueError):
        rank_error(k, -1)


def test_rank1_kernels_run_as_one_term():
    spec = ConvSpec(c=1, k=1, size=12, kernel=3, padding=1, flip=True)
    x, _ = kernels.make_inputs("conv2d", spec)
    w = SOBEL[None, None]
    assert separable_multiplications("conv2d", spec, (w,)) == sep_counts.term_multiplications(
        spec)
    y = kernels.run("conv2d", "separable", spec, x, (w,))
    assert_close(y, kernels.reference("conv2d", spec, x, (w,)),
                 accuracy.bound("separable", "conv2d", spec))
