"""The direct transposed2d forms (kernels/direct/transposed_choice.py): the sub-pixel form
(stride phases stacked as output channels of one dense or pointwise convolution, 1x1
phases stored straight into y), the serial loop for tiny layers, and which form runs
which spec. Every check is against the float64 oracle, outputs NaN-poisoned (conftest)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels import accuracy
from kernels.direct import gemm, subpixel, transposed_choice
from kernels.direct import small as small_loop
from kernels.direct.subpixel import prepare_subpixel, subpixel_axes, writes_in_place

from .conftest import assert_close


@st.composite
def transposed_specs(draw, strides=(2, 3), kernels_=(2, 3, 4, 5), max_size=7):
    """Dilation-1 transposed specs: odd and even sizes, stride 2-3 (or as given), kernel
    2-5, padding up to 4 (past the stride: cropped windows), output_padding, groups,
    batch up to 2, flip."""
    g = draw(st.integers(1, 3))
    c = g * draw(st.integers(1, 3))
    k = g * draw(st.integers(1, 4))
    kernel = tuple(draw(st.sampled_from(kernels_)) for _ in range(2))
    stride = tuple(draw(st.sampled_from(strides)) for _ in range(2))
    padding = tuple(draw(st.integers(0, min(4, kk - 1))) for kk in kernel)
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in stride)
    size = []
    for kk, s, p, a in zip(kernel, stride, padding, output_padding):
        lo = 1
        while s * (lo - 1) + kk + a - 2 * p < 1:  # keep the output non-empty
            lo += 1
        size.append(draw(st.integers(lo, max(lo, max_size))))
    return kernels.ConvSpec(n=draw(st.integers(1, 2)), c=c, k=k, size=tuple(size),
                            kernel=kernel, stride=stride, padding=padding,
                            output_padding=output_padding, groups=g, transposed=True,
                            flip=draw(st.booleans()))


def _check_form(form: str, spec, seed: int = 0):
    """Run one form's prepare/execute directly on make_inputs data against the oracle."""
    prepare, execute = transposed_choice.FORMS[form]
    x, w = kernels.make_inputs("transposed2d", spec, seed=seed)
    y = execute(spec, x, prepare(spec, w[0]))
    assert_close(y, kernels.reference("transposed2d", spec, x, w),
                 accuracy.bound("direct", "transposed2d", spec))
    return y


@pytest.mark.parametrize("exact", [True, False])  # a stage per sub-kernel shape / one stage
def test_subpixel_matches_oracle(exact):
    @settings(max_examples=25)
    @given(spec=transposed_specs(), seed=st.integers(0, 3))
    def check(spec, seed):
        _check_form("subpixel", spec, seed)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subpixel, "exact_stages", lambda spec, w: exact)
        check()


@settings(max_examples=10)
@given(spec=transposed_specs(strides=(1,), kernels_=(1, 2, 3, 4)))
def test_subpixel_stride_one_is_one_dense_conv(spec):
    # one phase: the dense stage's output is y itself (no interleave)
    (stage,) = prepare_subpixel(spec, kernels.make_inputs("transposed2d", spec)[1][0]).stages
    assert stage.spec.k == spec.k and stage.spec.kernel == spec.kernel
    _check_form("subpixel", spec)


@settings(max_examples=15)
@given(spec=transposed_specs(), data=st.data())
def test_subpixel_in_place(spec, data):
    # kernel == stride, padding a multiple of the stride, no output_padding: 1x1 phases
    # that tile y, stored straight into it (U-Net's 2x2 stride 2)
    s = spec.stride
    padding = tuple(data.draw(st.integers(0, 1)) * si for si in s)
    size = tuple(max(n, 2 * p // si + 1) for n, p, si in zip(spec.size, padding, s))
    spec = spec.replace(kernel=s, padding=padding, size=size, output_padding=0)
    assert writes_in_place(spec, subpixel_axes(spec))
    assert prepare_subpixel(spec, kernels.make_inputs("transposed2d", spec)[1][0]).scatter \
        is not None
    _check_form("subpixel", spec)


def test_unet_shape_is_one_pointwise_gemm_in_place():
    # 2x2 stride 2: four 1x1 sub-kernels, one GEMM with 4k output channels, no staging
    spec = kernels.ConvSpec(n=2, c=12, k=10, size=(5, 6), kernel=2, stride=2, transposed=True)
    sp = prepare_subpixel(spec, kernels.make_inputs("transposed2d", spec)[1][0])
    (stage,) = sp.stages
    assert stage.spec.kernel == (1, 1) and stage.spec.k == 4 * spec.k
    assert sp.scatter is not None
    _check_form("subpixel", spec)


def test_phases_grouped_by_sub_kernel():
    # 5x5 stride 2: four stages of exact sub-kernels (no zero taps), interleaved into y
    spec = kernels.ConvSpec(n=1, c=3, k=16, size=(4, 5), kernel=5, stride=2, padding=1,
                            output_padding=1, transposed=True, flip=True)
    sp = prepare_subpixel(spec, kernels.make_inputs("transposed2d", spec)[1][0])
    assert sp.scatter is None and not sp.zero_phases
    assert sorted(st.spec.kernel for st in sp.stages) == [(2, 2), (2, 3), (3, 2), (3, 3)]
    _check_form("subpixel", spec)
    # 3 output channels: all phases in one stage, zero-padded to 3x3 (12 channels, one panel)
    narrow = spec.replace(k=3)
    (stage,) = prepare_subpixel(narrow, kernels.make_inputs("transposed2d", narrow)[1][0]) \
        .stages
    assert stage.spec.kernel == (3, 3) and stage.spec.k == 12
    _check_form("subpixel", narrow)
    # 4x4 stride 2: every phase 2x2, one stage of 4k channels
    spec = spec.replace(kernel=4)
    sp = prepare_subpixel(spec, kernels.make_inputs("transposed2d", spec)[1][0])
    assert [(st.spec.kernel, st.spec.k) for st in sp.stages] == [((2, 2), 4 * spec.k)]
    _check_form("subpixel", spec)


def test_phases_without_taps_are_zero():
    # kernel 2 < stride 3 with padding 1: phase 2 of each axis has no tap
    spec = kernels.ConvSpec(n=2, c=4, k=32, size=(4, 3), kernel=2, stride=3, padding=1,
                            output_padding=(2, 1), groups=2, transposed=True)
    sp = prepare_subpixel(spec, kernels.make_inputs("transposed2d", spec)[1][0])
    assert sp.scatter is None and len(sp.zero_phases) == 5
    y = _check_form("subpixel", spec)
    assert (y[:, :, (2 - 1) % 3::3] == 0).all() and (y[:, :, :, (2 - 1) % 3::3] == 0).all()


def _stacked_dense_kernel(w, groups, flip, axes, phases):
    """The stage's dense kernel built by slicing: channel k*P + i holds phase i's
    sub-kernel w[..., rh::sh, rw::sw] reversed, zero-padded in front to the axes' taps."""
    (sh, sw), (th, tw) = (a.stride for a in axes), (a.taps for a in axes)
    we = w[:, :, ::-1, ::-1] if flip else w
    c, kg = w.shape[:2]
    cg = c // groups
    dense = np.zeros((groups, kg, len(phases), cg, th, tw), np.float32)
    for i, (rh, rw) in enumerate(phases):
        sub = we[:, :, rh::sh, rw::sw][:, :, ::-1, ::-1]  # taps in correlation order
        nh, nw = sub.shape[2:]
        dense[:, :, i, :, th - nh:, tw - nw:] = sub.reshape(groups, cg, kg, nh, nw) \
            .transpose(0, 2, 1, 3, 4)
    return dense.reshape(-1, cg, 1, th, tw)


@pytest.mark.parametrize("k", [2, 5])  # 2 or 8 stacked channels: AVX-512 dot block; 20: outer
@pytest.mark.parametrize("flip", [False, True])
def test_packed_weights_equal_the_dense_packing(k, flip):
    """pack_subpixel_weights == gemm.pack_blocked_weights of the kernel built by slicing,
    for every stage of 5x5 stride (2, 3) and for all phases zero-padded to T x T."""
    spec = kernels.ConvSpec(n=1, c=6, k=k * 2, size=5, kernel=(5, 3), stride=(2, 3),
                            groups=2, transposed=True, flip=flip)
    w = kernels.make_inputs("transposed2d", spec)[1][0]
    axes = subpixel_axes(spec)
    groups, _ = subpixel.phase_groups(spec, axes)
    every = [(rh, rw) for rh in range(2) for rw in range(3)]
    exact = [((axes[0].with_taps(th), axes[1].with_taps(tw)), ph) for th, tw, ph in groups]
    by_count = {}
    for ax, phases in exact + [(axes, every)]:
        by_count.setdefault(len(phases), []).append((ax, phases))
    assert len(by_count[3]) == 2  # 3x1 and 2x1 sub-kernels, 3 phases each: one pass
    for same in by_count.values():
        stages = [(ax, *(np.array(r, np.int64) for r in zip(*ph))) for ax, ph in same]
        for (ax, phases), packed in zip(same, subpixel.pack_subpixel_weights(
                w, spec.groups, flip, stages)):
            expected, outer = gemm.pack_blocked_weights(
                _stacked_dense_kernel(w, spec.groups, flip, ax, phases), spec.groups, False)
            assert packed.outer == outer
            np.testing.assert_array_equal(packed.wb, expected)


@settings(max_examples=15)
@given(spec=transposed_specs(strides=(1, 2, 3), kernels_=(1, 2, 3, 4, 5)))
def test_small_loop_matches_oracle(spec):
    _check_form("small", spec)


def test_small_loop_dilated():
    spec = kernels.ConvSpec(n=2, c=4, k=6, size=(3, 4), kernel=3, stride=(2, 3), padding=1,
                            dilation=(2, 3), output_padding=(1, 2), groups=2,
                            transposed=True, flip=True)
    _check_form("small", spec)


@pytest.mark.small_layers
@pytest.mark.parametrize("spec, form", [
    (kernels.ConvSpec(c=1, k=1, size=2, kernel=3, transposed=True), "small"),
    (kernels.ConvSpec(c=16, k=16, size=8, kernel=4, stride=2, padding=1, transposed=True),
     "subpixel"),
    (kernels.ConvSpec(c=16, k=16, size=8, kernel=3, stride=2, dilation=2, transposed=True),
     "gather"),
])
def test_form_by_shape(spec, form):
    assert transposed_choice.transposed_form(spec) == form
    x, w = kernels.make_inputs("transposed2d", spec, seed=1)
    y = kernels.run("transposed2d", "direct", spec, x, w)
    assert_close(y, kernels.reference("transposed2d", spec, x, w),
                 accuracy.bound("direct", "transposed2d", spec))


@pytest.mark.parametrize("small", [0, 1 << 40])  # every spec sub-pixel / every spec small
def test_plan_equals_run(small):
    @settings(max_examples=6)
    @given(spec=transposed_specs(strides=(1, 2, 3)), seed=st.integers(0, 3))
    def check(spec, seed):
        assert transposed_choice.transposed_form(spec) == ("small" if small else "subpixel")
        x1, w = kernels.make_inputs("transposed2d", spec, seed=seed)
        x2, _ = kernels.make_inputs("transposed2d", spec, seed=seed + 1)
        p = kernels.plan("transposed2d", "direct", spec, w)
        ys = [p(x) for x in (x1, x2, x1)]
        for x, y in zip((x1, x2, x1), ys):
            np.testing.assert_array_equal(y, kernels.run("transposed2d", "direct", spec, x, w))
        assert not np.array_equal(ys[0], ys[1])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(small_loop, "SMALL_WORK", small)
        check()
