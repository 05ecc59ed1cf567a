"""The direct cells' serial loop for tiny layers (kernels/direct/small.py): every forward
type against the float64 oracle with the loop forced on (odd sizes, padding, stride,
dilation, groups, shuffle, batch > 1, flip, 1-3 dimensions), outputs NaN-poisoned
(conftest); which layers take it; and plan equals run on it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels.direct import small
from kernels.types import select

from .conftest import assert_conforms
from .strategies import specs

pytestmark = pytest.mark.small_layers  # the loop stays on (tests/conftest.py)

# every forward type whose direct cell takes the loop (the fused depthwise separable cell
# and the transposed ones have their own; see test_subpixel for the transposed loop)
FORWARD = [t for t in select(transposed=False) if t != "depthwise_separable"]
ALWAYS = 1 << 60  # SMALL_WORK under which every spec takes the loop


@pytest.mark.parametrize("conv_type", FORWARD)
def test_loop_matches_oracle(conv_type, monkeypatch):
    monkeypatch.setattr(small, "SMALL_WORK", ALWAYS)

    @settings(max_examples=12)
    @given(spec=specs(conv_type, max_size=7, max_channels=5), seed=st.integers(0, 3))
    def check(spec, seed):
        cell_state = kernels.registry._CELLS[(conv_type, "direct")].prepare(
            spec, kernels.make_inputs(conv_type, spec, seed=seed)[1])
        assert cell_state[0] is small.execute_small
        assert_conforms(conv_type, "direct", spec, seed=seed)

    check()


def test_wrong_tap_is_caught(monkeypatch):
    """The check above can fail: one weight changed after the oracle saw it."""
    monkeypatch.setattr(small, "SMALL_WORK", ALWAYS)
    spec = kernels.ConvSpec(c=2, k=3, size=6, kernel=3, padding=1)
    x, w = kernels.make_inputs("conv2d", spec)
    bad = w[0].copy()
    bad[1, 0, 2, 1] += 1
    y = kernels.run("conv2d", "direct", spec, x, (bad,))
    assert not np.allclose(y, kernels.reference("conv2d", spec, x, w), atol=1e-3)


@pytest.mark.parametrize("conv_type, spec, takes_loop", [
    # the seed article's worked examples (harness/shapes/seed.txt)
    ("conv2d", kernels.ConvSpec(c=1, k=1, size=5, kernel=3), True),
    ("conv3d", kernels.ConvSpec(c=1, k=1, size=(5, 5, 5), kernel=3), True),
    ("dilated2d", kernels.ConvSpec(c=1, k=1, size=7, kernel=3, dilation=2), True),
    ("pointwise", kernels.ConvSpec(c=3, k=128, size=5, kernel=1), True),
    ("depthwise", kernels.ConvSpec(c=3, k=3, size=7, kernel=3, groups=3), True),
    # real layers keep the register-blocked forms
    ("conv2d", kernels.ConvSpec(c=64, k=64, size=56, kernel=3, padding=1), False),
    ("pointwise", kernels.ConvSpec(c=32, k=64, size=14, kernel=1), False),
])
def test_which_layers_take_the_loop(conv_type, spec, takes_loop):
    assert small.is_small(spec) is takes_loop
    x, w = kernels.make_inputs(conv_type, spec)
    state = kernels.registry._CELLS[(conv_type, "direct")].prepare(spec, w)
    assert (state[0] is small.execute_small) is takes_loop


def test_work_counts_row_starts():
    """Short rows cost a row start each: a 3x3 layer with 5-wide rows counts more than
    its products, a plain 1x1 (one run per plane) barely more."""
    three = kernels.ConvSpec(c=12, k=12, size=5, kernel=3, padding=1, groups=3)
    assert small.small_work(three) == kernels.spec.spec_macs(three) + small.ROW_COST * (
        12 * 4 * 9 * 5)
    one = kernels.ConvSpec(c=3, k=128, size=5, kernel=1)
    assert small.small_work(one) == kernels.spec.spec_macs(one) + small.ROW_COST * 128 * 3


@pytest.mark.parametrize("conv_type", ["shuffled_grouped", "flattened", "conv3d"])
def test_plan_equals_run(conv_type, monkeypatch):
    monkeypatch.setattr(small, "SMALL_WORK", ALWAYS)

    @settings(max_examples=5)
    @given(spec=specs(conv_type, max_size=6, max_channels=4), seed=st.integers(0, 3))
    def check(spec, seed):
        x1, w = kernels.make_inputs(conv_type, spec, seed=seed)
        x2, _ = kernels.make_inputs(conv_type, spec, seed=seed + 1)
        p = kernels.plan(conv_type, "direct", spec, w)
        for x in (x1, x2, x1):
            np.testing.assert_array_equal(p(x), kernels.run(conv_type, "direct", spec, x, w))

    check()
