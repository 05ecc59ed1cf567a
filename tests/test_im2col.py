"""The im2col algorithm: cells with the workspace budget squeezed so tiles break mid-row,
workspace sizes, and against PyTorch (every cell on random specs with the default budget
is tests/test_conformance.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from kernels import ConvSpec, accuracy, im2col
from kernels.im2col.blas import _blas_controller

from .conftest import assert_close, assert_conforms, requires_torch, specs, torch_conv

IM2COL_TYPES = [t for t in kernels.CONV_TYPES if kernels.cell_reason(t, "im2col") is None]


@pytest.fixture
def budget():
    """Set a workspace budget for one test; restore the default after."""
    yield im2col.set_workspace_budget
    im2col.set_workspace_budget(None)


def _check(conv_type, spec, seed=0):
    return assert_conforms(conv_type, "im2col", spec, seed=seed)


def test_every_type_has_an_im2col_cell():
    assert set(IM2COL_TYPES) == set(kernels.CONV_TYPES)


@pytest.mark.parametrize("conv_type", ["conv2d", "conv3d", "shuffled_grouped", "depthwise",
                                       "depthwise_separable", "transposed2d", "pointwise"])
def test_ragged_tiles(conv_type, budget):
    """A budget of a few columns (or less than one: the floor) cuts tiles mid-row."""

    @given(specs(conv_type), st.integers(1, 3000))
    def check(spec, nbytes):
        budget(nbytes)
        _check(conv_type, spec)

    check()


def test_tiles_really_are_ragged(budget):
    spec = ConvSpec(n=2, c=3, k=5, size=(9, 11), kernel=3, stride=(1, 2), padding=1)
    full = im2col.workspace_bytes("conv2d", spec)
    budget(4 * 27 * 5)  # five columns of 27 rows (per thread) out of 9*6 pixels
    assert im2col.workspace_bytes("conv2d", spec) < full
    _check("conv2d", spec)


def test_workspace_stays_under_budget_on_large_layers():
    """A 3D U-Net layer whose full unfolded matrix would take several GB."""
    spec = ConvSpec(n=1, c=64, k=64, size=(128, 128, 128), kernel=3, padding=1)
    full = 4 * 64 * 27 * 128 ** 3
    assert full > 10 * 2 ** 30
    assert im2col.workspace_bytes("conv3d", spec) <= im2col.DEFAULT_BUDGET
    dec = ConvSpec(n=1, c=512, k=256, size=(256, 256), kernel=4, stride=2, padding=1,
                   transposed=True)
    assert im2col.workspace_bytes("transposed2d", dec) <= im2col.DEFAULT_BUDGET


def test_bare_gemm_needs_no_workspace():
    spec = ConvSpec(n=2, c=8, k=16, size=(7, 7), kernel=1)
    assert im2col.workspace_bytes("pointwise", spec) == 0
    assert im2col.workspace_bytes("pointwise", spec.replace(stride=2)) > 0


def test_budget_rejects_nonsense():
    with pytest.raises(ValueError, match="nbytes"):
        im2col.set_workspace_budget(0)


def test_transposed_output_padding_and_groups():
    spec = ConvSpec(n=2, c=4, k=6, size=(5, 6), kernel=(3, 4), stride=(2, 3), padding=(1, 2),
                    dilation=(2, 1), output_padding=(1, 2), groups=2, transposed=True, flip=True)
    _check("transposed2d", spec)


def test_blas_threads_restored():
    before = [lib.num_threads for lib in _blas_controller()]
    _check("conv2d", ConvSpec(n=1, c=4, k=4, size=(6, 6), kernel=3))
    assert [lib.num_threads for lib in _blas_controller()] == before


def test_multiplications_match_direct():
    spec = ConvSpec.parse("mb1ic3ih7oc128oh5kh3")
    assert kernels.multiplications("conv2d", "im2col", spec) == 86_400
    assert kernels.multiplications("depthwise_separable", "im2col", spec) == 10_275


@requires_torch
@pytest.mark.parametrize("conv_type", ["conv2d", "shuffled_grouped", "transposed2d",
                                       "conv3d", "depthwise_separable"])
def test_matches_torch(conv_type):
    @given(specs(conv_type))
    def check(spec):
        x, w, y = _check(conv_type, spec)
        ref = torch_conv(conv_type, spec, x, w)
        assert_close(y, ref, accuracy.bound("im2col", conv_type, spec))

    check()


def test_resnet_layer_against_reference():
    """One realistic layer: several threads' tiles, tens of pixels per tile."""
    spec = ConvSpec.parse("mb1ic64ih28oc32oh28kh3ph1")
    _check("conv2d", spec)
    assert math.prod(spec.out_size) > 2 * 32
    np.testing.assert_equal(spec.out_size, (28, 28))


@pytest.mark.parametrize("threads", [1, 2])
def test_any_thread_count(threads):
    """Work items index the workspace by thread id; fewer items than threads included."""
    from kernels.blocks import set_threads

    set_threads(threads)
    try:
        _check("conv2d", ConvSpec(n=1, c=3, k=5, size=(4, 5), kernel=3, padding=1))
        _check("transposed2d", ConvSpec(n=1, c=3, k=2, size=(4, 5), kernel=3, stride=2,
                                        transposed=True))
        _check("depthwise_separable", ConvSpec(n=2, c=3, k=4, size=(9, 9), kernel=3))
    finally:
        set_threads(None)
