"""The vector paths of the direct dilated2d cell: the register transpose that packs the
input channels-last and stores the register blocks' sums to NCHW, and the work schedule.

The hypothesis specs of test_dilated keep c/g <= 3 and maps <= 12 wide, under one
transposed block (TN floats: 16 on AVX-512, 8 on AVX2); these take full blocks and
ragged edges on both sides."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import kernels
from kernels.direct.dilated import geometry, schedule, work_items
from kernels.transpose_block import TN, transpose_block

from .conftest import assert_conforms


@njit(cache=True)
def _transpose(dst, do, dstride, src, so, sstride):
    transpose_block(dst, do, dstride, src, so, sstride)


@settings(max_examples=20)
@given(so=st.integers(0, 7), do=st.integers(0, 7), sextra=st.integers(0, 9),
       dextra=st.integers(0, 9))
def test_transpose_block_moves_exactly_one_square(so, do, sextra, dextra):
    sstride, dstride = TN + sextra, TN + dextra
    src = np.random.default_rng(so).standard_normal(so + TN * sstride).astype(np.float32)
    dst = np.full(do + TN * dstride, np.nan, np.float32)
    _transpose(dst, do, dstride, src, so, sstride)
    square = src[so:so + TN * sstride].reshape(TN, sstride)[:, :TN]
    out = dst[do:do + TN * dstride].reshape(TN, dstride)
    np.testing.assert_array_equal(out[:, :TN], square.T)
    assert np.isnan(out[:, TN:]).all() and np.isnan(dst[:do]).all(), "wrote outside"


@st.composite
def wide_specs(draw):
    """Channels per group and output columns from under one transposed block to past two,
    dilations with dead rows and columns, groups, batch, flip, strides."""
    g = draw(st.integers(1, 2))
    dilation = (draw(st.sampled_from((2, 3, 5))), draw(st.sampled_from((1, 2, 3, 5))))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(2, 3)))
    padding = tuple(draw(st.integers(0, d * (k - 1) + 1)) for d, k in zip(dilation, kernel))
    stride = (draw(st.sampled_from((1, 2))), 1)
    lows = [max(1, d * (k - 1) + 1 - 2 * p) for d, k, p in zip(dilation, kernel, padding)]
    size = (draw(st.integers(lows[0], max(lows[0], 9))),
            draw(st.integers(max(lows[1], TN - 3), 2 * TN + 5)))
    return kernels.ConvSpec(
        n=draw(st.integers(1, 2)), c=g * draw(st.integers(TN - 2, 2 * TN + 3)),
        k=g * draw(st.integers(TN - 3, 2 * TN + 3)), size=size, kernel=kernel, stride=stride,
        padding=padding, dilation=dilation, groups=g, flip=draw(st.booleans()))


@settings(max_examples=25)
@given(spec=wide_specs(), seed=st.integers(0, 9))
def test_full_transposed_blocks_match_the_oracle(spec, seed):
    x, w, y = assert_conforms("dilated2d", "direct", spec, seed=seed)
    np.testing.assert_array_equal(kernels.plan("dilated2d", "direct", spec, w)(x), y)


def test_work_items_share_a_band_out_evenly():
    bands = np.array([[0, 4, 1, 2], [4, 25, 0, 3], [29, 4, 0, 2]], np.int64)
    items = work_items(bands, 33)
    assert items[:, 1].tolist() == [4, 7, 6, 6, 6, 4]  # 25 x 33 pixels: 4 items of ~192
    assert (items[1:, 0] == items[:-1, 0] + items[:-1, 1]).all()
    assert items[:, 2:].tolist() == [[1, 2]] + [[0, 3]] * 4 + [[0, 2]]


def test_schedule_runs_every_unit_once_and_balances_the_work():
    """DeepLab's rate-6 ASPP (channels scaled down): edge bands run two of three kernel
    rows; each unit runs once, and two threads get work within a unit of each other."""
    spec = kernels.ConvSpec(n=2, c=8, k=256, size=33, kernel=3, padding=6, dilation=6)
    nblk = 8
    kchunks, order, starts = schedule(spec, 2, nblk)
    units = 2 * len(geometry(spec).items) * kchunks
    assert sorted(order.tolist()) == list(range(units))
    assert starts.tolist()[0] == 0 and starts.tolist()[-1] == units
    items = geometry(spec).items
    work = [sum(int(items[(u // kchunks) % len(items), 1] * items[(u // kchunks) % len(items), 3])
                for u in order[starts[t]:starts[t + 1]]) for t in range(2)]
    biggest = int((items[:, 1] * items[:, 3]).max())
    assert abs(work[0] - work[1]) <= biggest, work
