"""The memory layout as an axis of every problem (kernels.layout): nchw and nhwc in and out.

Every cell's NHWC result against the oracle is in tests/test_conformance.py; here: the
API's layout argument and its validation, the oracle and make_inputs in both layouts,
the registry's native forms against the transposing one, and the memory estimate.
"""

from __future__ import annotations

import numpy as np
import pytest

import harness.layouts
import kernels
from kernels import layout, registry

from .conftest import assert_conforms, temporary_algorithm
from .strategies import on_supported_specs

SPEC = kernels.ConvSpec(n=2, c=4, k=6, size=(5, 7), kernel=3, padding=1)
SPEC3 = kernels.ConvSpec(n=1, c=3, k=5, size=(3, 4, 5), kernel=3, padding=1)
NATIVE_EXAMPLES = 12  # a native form is its own kernel: as many specs as the NCHW test


def test_the_layout_names():
    assert kernels.LAYOUTS == ("nchw", "nhwc")
    assert harness.layouts.LAYOUTS == kernels.LAYOUTS  # read without importing the kernels
    assert layout.input_shape(SPEC, "nhwc") == (2, 5, 7, 4)
    assert layout.output_shape(SPEC3, "nhwc") == (1, 3, 4, 5, 5)  # NDHWC
    assert layout.input_shape(SPEC, "nchw") == SPEC.input_shape


@pytest.mark.parametrize("spec", [SPEC, SPEC3])
def test_make_inputs_and_the_oracle_in_both_layouts(spec):
    conv_type = "conv2d" if spec.ndim == 2 else "conv3d"
    x, w = kernels.make_inputs(conv_type, spec, seed=3)
    xh, wh = kernels.make_inputs(conv_type, spec, seed=3, layout="nhwc")
    assert xh.shape == layout.input_shape(spec, "nhwc") and xh.flags.c_contiguous
    assert xh.dtype == np.float32
    np.testing.assert_array_equal(xh, np.moveaxis(x, 1, -1))  # the same values
    for a, b in zip(w, wh):
        np.testing.assert_array_equal(a, b)  # weights keep their shapes in both layouts
    y = kernels.reference(conv_type, spec, x, w)
    yh = kernels.reference(conv_type, spec, xh, w, layout="nhwc")
    assert yh.shape == layout.output_shape(spec, "nhwc") and yh.flags.c_contiguous
    np.testing.assert_array_equal(yh, np.moveaxis(y, 1, -1))


@pytest.mark.parametrize("call", [
    lambda x, w, lay: kernels.run("conv2d", "direct", SPEC, x, w, layout=lay),
    lambda x, w, lay: kernels.plan("conv2d", "direct", SPEC, w, layout=lay),
    lambda x, w, lay: kernels.reference("conv2d", SPEC, x, w, layout=lay),
    lambda x, w, lay: kernels.make_inputs("conv2d", SPEC, layout=lay),
    lambda x, w, lay: kernels.supports("conv2d", "direct", SPEC, layout=lay),
    lambda x, w, lay: kernels.memory_estimate("conv2d", "direct", SPEC, layout=lay),
])
@pytest.mark.parametrize("bad", ["NHWC", "nchw ", "nhwc8c", None, ["nhwc"]])
def test_an_unknown_layout_is_refused(call, bad):
    x, w = kernels.make_inputs("conv2d", SPEC)
    with pytest.raises(ValueError, match=r"^layout: must be one of nchw, nhwc"):
        call(x, w, bad)


def test_x_of_the_other_layout_is_refused_naming_x_and_the_layout():
    x, w = kernels.make_inputs("conv2d", SPEC)
    xh, _ = kernels.make_inputs("conv2d", SPEC, layout="nhwc")
    for algorithm in ("direct", "im2col"):
        with pytest.raises(ValueError, match=r"^x: shape must be \(2, 5, 7, 4\) in layout "
                                             r"nhwc, got \(2, 4, 5, 7\)"):
            kernels.run("conv2d", algorithm, SPEC, x, w, layout="nhwc")
        with pytest.raises(ValueError, match=r"^x: shape must be \(2, 4, 5, 7\) in layout nchw"):
            kernels.run("conv2d", algorithm, SPEC, xh, w)
        with pytest.raises(ValueError, match=r"^x: shape must be .* in layout nhwc"):
            kernels.plan("conv2d", algorithm, SPEC, w, layout="nhwc")(x)
    with pytest.raises(ValueError, match=r"^x: shape must be .* in layout nhwc"):
        kernels.reference("conv2d", SPEC, x, w, layout="nhwc")


def test_a_non_contiguous_channels_last_view_is_accepted():
    """x.transpose(0, 2, 3, 1) of an NCHW array is NHWC data, not C-contiguous."""
    x, w = kernels.make_inputs("conv2d", SPEC)
    view = x.transpose(0, 2, 3, 1)
    assert not view.flags.c_contiguous
    y = kernels.run("conv2d", "direct", SPEC, view, w, layout="nhwc")
    np.testing.assert_allclose(y, np.moveaxis(kernels.run("conv2d", "direct", SPEC, x, w), 1, -1),
                               rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- native forms
NATIVE = [("conv2d", "direct"), ("conv3d", "direct"), ("pointwise", "direct"),
          ("depthwise", "direct"), ("grouped", "direct"), ("shuffled_grouped", "direct"),
          ("pointwise_grouped", "direct"), ("spatially_separable", "direct"),
          ("flattened", "direct"), ("pointwise", "im2col"), ("pointwise_grouped", "im2col"),
          ("conv2d", "winograd_f2"), ("grouped", "winograd_f4"), ("dilated2d", "winograd_f2"),
          ("transposed2d", "winograd_f4"), ("depthwise_separable", "direct"),
          ("dilated2d", "direct")]


def test_the_native_cells_are_registered():
    native = set(registry.native_cells("nhwc"))
    assert set(NATIVE) <= native
    assert set(native) <= set(registry.cells())
    assert ("transposed2d", "direct") not in native  # runs through the transposes
    assert registry.native_cells("nchw") == registry.cells()


@pytest.mark.parametrize("conv_type, algorithm", NATIVE)
def test_a_native_form_matches_the_reference_with_no_transpose(conv_type, algorithm,
                                                               monkeypatch):
    """The native form runs (the transposes are made to fail) and conforms, on as many
    specs as the NCHW conformance test; its plan equals its run bit for bit."""
    cell_ = registry._CELLS[(conv_type, algorithm)]
    native_specs = []

    def check(spec, seed):
        if not cell_.runs_natively("nhwc", spec):
            return
        native_specs.append(spec)
        _, w, y = assert_conforms(conv_type, algorithm, spec, seed=seed, layout="nhwc")
        x, _ = kernels.make_inputs(conv_type, spec, seed=seed, layout="nhwc")
        np.testing.assert_array_equal(kernels.plan(conv_type, algorithm, spec, w,
                                                   layout="nhwc")(x), y)

    def no_transpose(*args):
        raise AssertionError("a native form transposed its input or output")

    monkeypatch.setattr(registry, "to_nchw", no_transpose)
    monkeypatch.setattr(registry, "to_nhwc", no_transpose)
    on_supported_specs(conv_type, algorithm, check, NATIVE_EXAMPLES)
    assert len(native_specs) >= 3, f"only {len(native_specs)} specs ran natively"


WIDE = kernels.ConvSpec  # specs with enough output channels for the outer-product blocks


@pytest.mark.parametrize("conv_type, algorithm, spec", [
    ("conv2d", "direct", WIDE(n=2, c=6, k=40, size=(7, 9), kernel=3, padding=1, stride=(1, 2))),
    ("shuffled_grouped", "direct", WIDE(c=8, k=64, size=6, kernel=3, padding=1, groups=2)),
    ("pointwise", "direct", WIDE(n=2, c=24, k=40, size=(5, 6), kernel=1, stride=2)),
    ("dilated2d", "direct", WIDE(c=6, k=40, size=(13, 12), kernel=3, padding=4, dilation=4)),
    ("dilated2d", "direct", WIDE(c=6, k=40, size=(9, 10), kernel=3, padding=(2, 3),
                                 dilation=(2, 3), stride=2, flip=True)),
    ("depthwise", "direct", WIDE(n=2, c=40, k=40, size=(11, 9), kernel=3, padding=1, stride=2,
                                 groups=40)),
    ("depthwise_separable", "direct", WIDE(c=20, k=40, size=(8, 8), kernel=3, padding=1)),
    ("pointwise", "im2col", WIDE(n=2, c=24, k=40, size=(5, 6), kernel=1)),
    ("conv2d", "winograd_f4", WIDE(c=6, k=40, size=(9, 10), kernel=3, padding=1)),
])
def test_a_native_form_with_wide_register_blocks(conv_type, algorithm, spec):
    """The hypothesis specs have few channels (the dot-product blocks); these fill the
    outer-product blocks, whose stores write a channels-last pixel's channels in a run."""
    assert registry._CELLS[(conv_type, algorithm)].runs_natively("nhwc", spec)
    _, w, y = assert_conforms(conv_type, algorithm, spec, seed=1, layout="nhwc")
    x, _ = kernels.make_inputs(conv_type, spec, seed=1, layout="nhwc")
    np.testing.assert_array_equal(kernels.plan(conv_type, algorithm, spec, w, layout="nhwc")(x),
                                  y)


def test_a_cell_without_a_native_form_runs_its_nchw_form_between_transposes(monkeypatch):
    temporary_algorithm(monkeypatch, "nchw_only", "records what it is given")
    seen = []

    @registry.cell("conv2d", "nchw_only")
    def execute(spec, x, weights):
        seen.append(x.shape)
        return kernels.run("conv2d", "direct", spec, x, weights)

    x, w = kernels.make_inputs("conv2d", SPEC, layout="nhwc")
    y = kernels.run("conv2d", "nchw_only", SPEC, x, w, layout="nhwc")
    assert seen == [SPEC.input_shape]  # the NCHW form got NCHW input
    assert y.shape == layout.output_shape(SPEC, "nhwc") and y.flags.c_contiguous
    np.testing.assert_array_equal(y, kernels.run("conv2d", "direct", SPEC, x, w, layout="nhwc"))
    assert not registry._CELLS[("conv2d", "nchw_only")].runs_natively("nhwc", SPEC)


def test_a_native_form_takes_only_the_specs_it_says(monkeypatch):
    """A form whose `takes` refuses a spec leaves it to the transposes; plan and run agree."""
    temporary_algorithm(monkeypatch, "half_native", "native for stride 1 only")
    registry.cell("conv2d", "half_native")(
        lambda spec, x, weights: kernels.run("conv2d", "direct", spec, x, weights))
    calls = []

    @registry.native_layout("conv2d", "half_native", "nhwc",
                            takes=lambda spec: spec.stride == (1, 1))
    def execute_nhwc(spec, x, weights):
        calls.append(spec)
        return kernels.run("conv2d", "direct", spec, x, weights, layout="nhwc")

    strided = SPEC.replace(stride=2)
    for spec, native in ((SPEC, True), (strided, False)):
        x, w = kernels.make_inputs("conv2d", spec, layout="nhwc")
        calls.clear()
        y = kernels.run("conv2d", "half_native", spec, x, w, layout="nhwc")
        np.testing.assert_array_equal(kernels.plan("conv2d", "half_native", spec, w,
                                                   layout="nhwc")(x), y)
        assert len(calls) == (2 if native else 0)
        assert_close_to_direct(spec, x, w, y)


def assert_close_to_direct(spec, x, w, y):
    np.testing.assert_allclose(y, kernels.run("conv2d", "direct", spec, x, w, layout="nhwc"),
                               rtol=1e-5, atol=1e-6)


def test_native_layout_registration_rules(monkeypatch):
    temporary_algorithm(monkeypatch, "unregistered", "no cell yet")
    with pytest.raises(ValueError, match="^algorithm: register the conv2d/unregistered cell"):
        registry.native_layout("conv2d", "unregistered", "nhwc")
    with pytest.raises(ValueError, match="^layout: NCHW is the form `cell` registers"):
        registry.native_layout("conv2d", "direct", "nchw")
    with pytest.raises(ValueError, match="^layout: must be one of"):
        registry.native_layout("conv2d", "direct", "chwn")


def test_auto_runs_its_choice_in_the_layout():
    x, w = kernels.make_inputs("pointwise", kernels.ConvSpec(c=8, k=16, size=6, kernel=1),
                               layout="nhwc")
    spec = kernels.ConvSpec(c=8, k=16, size=6, kernel=1)
    y = kernels.run("pointwise", "auto", spec, x, w, layout="nhwc")
    chosen = kernels.auto.choose("pointwise", spec)
    np.testing.assert_array_equal(y, kernels.run("pointwise", chosen, spec, x, w, layout="nhwc"))


# ---------------------------------------------------------------------------- memory
def test_the_transposes_are_in_the_memory_estimate():
    big = kernels.ConvSpec(n=1, c=32, k=48, size=40, kernel=3, padding=1, stride=2,
                           transposed=False)
    nchw = kernels.memory_estimate("conv2d", "im2col", big)
    nhwc = kernels.memory_estimate("conv2d", "im2col", big, layout="nhwc")
    extra = 4 * (32 * 40 * 40 + 48 * 20 * 20)  # NCHW copies of input and output
    assert nhwc["total"] == nchw["total"] + extra == layout.transpose_bytes(big) + nchw["total"]
    assert nhwc["workspace"] == nchw["workspace"] + extra
    # a native form adds nothing here (conv_dense packs its padded input either way)
    assert kernels.memory_estimate("conv2d", "direct", big, layout="nhwc") == \
        kernels.memory_estimate("conv2d", "direct", big)
    # the oracle: its float64 output transposed
    ref = kernels.memory_estimate("conv2d", "reference", big)
    assert kernels.memory_estimate("conv2d", "reference", big, "nhwc")["total"] > ref["total"]


def test_a_layout_whose_transposes_pass_the_limit_is_refused_naming_the_layout():
    spec = kernels.ConvSpec(n=1, c=64, k=64, size=64, kernel=3, padding=1)
    nchw = kernels.memory_estimate("conv2d", "im2col", spec)["total"]
    kernels.set_memory_limit(nchw + layout.transpose_bytes(spec) // 2)
    try:
        assert kernels.supports("conv2d", "im2col", spec) is None
        why = kernels.supports("conv2d", "im2col", spec, layout="nhwc")
        assert why and why.startswith("size:") and "layout nhwc" in why
        x, w = kernels.make_inputs("conv2d", spec, layout="nhwc")
        with pytest.raises(ValueError, match="layout nhwc"):
            kernels.run("conv2d", "im2col", spec, x, w, layout="nhwc")
        with pytest.raises(ValueError, match="layout nhwc"):
            kernels.plan("conv2d", "im2col", spec, w, layout="nhwc")
    finally:
        kernels.set_memory_limit(None)
