"""Numeric range pinned per algorithm (kernels.numerics, issue 17 point 5): overflow
headroom, tiny values, NaN/Inf spread, and the sweeps' check on tiny layers."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from harness.checks.numeric_range import SPEC, render, spec_for, table
from kernels.numerics import numeric_profile

F32_MAX = float(np.finfo(np.float32).max)


@pytest.fixture(scope="module")
def rows():
    return {(r["conv_type"], r["algorithm"]): r for r in table(("conv2d", "depthwise"))}


@pytest.mark.parametrize("conv_type", ["conv2d", "depthwise"])
@pytest.mark.parametrize("algorithm", ["direct", "im2col", "separable"])
def test_single_sum_algorithms_reach_float32_limit(rows, conv_type, algorithm):
    r = rows[conv_type, algorithm]
    assert r["max_safe_peak"] >= 1e38 and r["first_failing_peak"] is None  # input overflows first
    assert r["nan_outputs"] == r["nan_ref"] and r["inf_outputs"] == r["inf_ref"]


@pytest.mark.parametrize("conv_type", ["conv2d", "depthwise"])
def test_winograd_range(rows, conv_type):
    # F(2x2,3x3): transforms of 0/+-1 add at most 4x; F(4x4,3x3) with SCALE keeps every
    # intermediate within ~2x the output (before: V = B^T d B reached 32x, overflow at 1e37)
    assert rows[conv_type, "winograd_f2"]["max_safe_peak"] >= 1e38
    assert rows[conv_type, "winograd_f4"]["max_safe_peak"] >= 5e37


@pytest.mark.parametrize("conv_type", ["conv2d", "depthwise"])
@pytest.mark.parametrize("algorithm", kernels.ALGORITHMS)
def test_tiny_values(rows, conv_type, algorithm):
    # outputs ~4e-40 are float32 subnormals: every algorithm loses digits; F(4x4,3x3)'s
    # products sit ~100x below the output (7e-4 measured, 1.7e-3 before SCALE)
    r = rows[conv_type, algorithm]
    ran = kernels.auto.choose(conv_type, spec_for(conv_type)) if algorithm == "auto" \
        else algorithm  # auto is what it dispatches to
    assert r["tiny_rel_error"] <= (2e-3 if ran == "winograd_f4" else 2e-4)
    assert r["tiny_sweep_error"] <= 1e-30  # what harness.runner.check_cell measures


@pytest.mark.parametrize("conv_type", ["conv2d", "depthwise"])
@pytest.mark.parametrize("m, algorithm", [(2, "winograd_f2"), (4, "winograd_f4")])
def test_winograd_spread_bounded_by_tiles(rows, conv_type, m, algorithm):
    # an input element lies in at most 2 tiles per axis, each of m outputs: (2m)^2 per
    # output channel against the reference's 3x3; +-Inf meets its negative in the transforms
    r = rows[conv_type, algorithm]
    per_channel = r["nan_ref"] // 9
    for n in (r["nan_outputs"], r["inf_outputs"]):
        assert r["nan_ref"] < n <= per_channel * (2 * m) ** 2
    assert r["inf_to_nan"] == r["inf_outputs"] and r["inf_kept"] == 0


def test_separable_inf_partly_nan(rows):
    # the rank-1 terms of the SVD have both signs, so an Inf often meets its negative
    # (depthwise runs them); conv2d 16 -> 16 takes the channel bank, whose 1x1 mix sums
    # the Inf of every bank plane of a channel with both signs: no Inf is kept
    assert 0 < rows["depthwise", "separable"]["inf_kept"] < 1
    assert rows["conv2d", "separable"]["inf_kept"] == 0


def test_winograd_f4_inputs_and_weights_scaled():
    # the case: x and w both x3e18 gave 20/3136 non-finite outputs
    spec = SPEC
    x, (w,) = kernels.make_inputs("conv2d", spec, seed=0)
    x, w = x * np.float32(3e18), w * np.float32(3e18)
    y = kernels.run("conv2d", "winograd_f4", spec, x, (w,))
    ref = kernels.reference("conv2d", spec, x, (w,))
    assert np.isfinite(y).all()
    assert np.abs(y - ref).max() / np.abs(ref).max() <= 2e-4


def test_profile_skips_and_renders():
    spec = kernels.ConvSpec(c=2, k=2, size=9, kernel=5)
    r = numeric_profile("conv2d", "winograd_f4", spec)
    assert "3x3" in r["skipped"]
    assert "skipped" in render([r])
    assert spec_for("depthwise").groups == SPEC.c
