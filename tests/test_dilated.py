"""The direct dilated2d cell (kernels/direct/dilated.py): space-to-batch along the width,
live kernel rows per output-row band, dead taps cropped; against the float64 oracle."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels.direct.dilated import bands, live_span, live_taps, prepare_dilated

from .conftest import assert_conforms

# output channels per group: 1-5 take the dot block, 12+ the outer-product block (one or
# two panels, by the target)
CHANNELS = (1, 2, 3, 5, 12, 17, 26, 33)


@st.composite
def dilated_specs(draw, dilations=(2, 3, 4), strides=(1,)):
    """dilated2d specs: odd and even sizes, padding up to past the kernel's reach (whole
    kernel rows and columns that read only padding), groups, batch up to 2, flip."""
    g = draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(2, 4)))
    dilation = (draw(st.sampled_from(dilations)), draw(st.sampled_from(dilations + (1,))))
    padding = tuple(draw(st.integers(0, d * (k - 1) + 2)) for d, k in zip(dilation, kernel))
    lows = [max(1, d * (k - 1) + 1 - 2 * p) for d, k, p in zip(dilation, kernel, padding)]
    size = tuple(draw(st.integers(lo, max(lo, 12))) for lo in lows)
    return kernels.ConvSpec(
        n=draw(st.integers(1, 2)), c=g * draw(st.integers(1, 3)),
        k=g * draw(st.sampled_from(CHANNELS)), size=size, kernel=kernel,
        stride=tuple(draw(st.sampled_from(strides)) for _ in range(2)), padding=padding,
        dilation=dilation, groups=g, flip=draw(st.booleans()))


def _conforms_and_plans(spec, seed):
    x, w, y = assert_conforms("dilated2d", "direct", spec, seed=seed)
    np.testing.assert_array_equal(kernels.plan("dilated2d", "direct", spec, w)(x), y)


@settings(max_examples=40)
@given(spec=dilated_specs(), seed=st.integers(0, 9))
def test_space_to_batch_matches_the_oracle(spec, seed):
    _conforms_and_plans(spec, seed)


@settings(max_examples=10)
@given(spec=dilated_specs(dilations=(5, 7, 9)), seed=st.integers(0, 9))
def test_large_dilations_match_the_oracle(spec, seed):
    _conforms_and_plans(spec, seed)


@settings(max_examples=15)
@given(spec=dilated_specs(strides=(1, 2, 3)), seed=st.integers(0, 9))
def test_strided_dilated_layers_match_the_oracle(spec, seed):
    _conforms_and_plans(spec, seed)


@settings(max_examples=60)
@given(spec=dilated_specs(dilations=(2, 3, 5), strides=(1, 2, 3)), axis=st.integers(0, 1),
       crop=st.booleans())
def test_bands_cover_every_output_with_its_live_taps(spec, axis, crop):
    """Bands tile the outputs in order, and each output's band holds its own live taps
    (clipped to the kept span; all kept taps without `crop`)."""
    geometry = tuple(getattr(spec, f)[axis] for f in (
        "out_size", "size", "stride", "padding", "dilation", "kernel"))
    kept = live_span(spec, axis)
    assert 0 <= kept[0] <= kept[1] <= spec.kernel[axis]
    table = bands(spec, axis, kept, crop)
    assert table[0, 0] == 0 and (table[1:, 0] == table[:-1, 0] + table[:-1, 1]).all()
    assert table[-1, 0] + table[-1, 1] == geometry[0]
    assert (table[1:, 2:] != table[:-1, 2:]).any(1).all(), "bands are maximal"
    for start, count, first, live in table.tolist():
        for o in range(start, start + count):
            own = live_taps(*geometry, o)
            assert own[0] == own[1] or kept[0] <= own[0] <= own[1] <= kept[1], "crop is exact"
            lo, hi = own if crop else kept
            lo, hi = max(lo, kept[0]), min(hi, kept[1])
            assert [first, live] == ([lo - kept[0], hi - lo] if hi > lo else [0, 0])


def test_aspp_rate18_runs_only_live_taps():
    """DeepLab's ASPP rate 18 on a 33x33 map (scaled down in channels): rows 0-14 read
    through kernel rows 1-2, rows 15-17 through row 1 only, rows 18-32 through rows 0-1;
    columns alike."""
    spec = kernels.ConvSpec(n=1, c=3, k=17, size=(33, 35), kernel=3, padding=18, dilation=18)
    assert bands(spec, 0, (0, 3), crop=True).tolist() == [
        [0, 15, 1, 2], [15, 3, 1, 1], [18, 15, 0, 2]]
    assert bands(spec, 1, (0, 3), crop=True).tolist() == [
        [0, 17, 1, 2], [17, 1, 1, 1], [18, 17, 0, 2]]
    geo = prepare_dilated(spec, kernels.make_inputs("dilated2d", spec)[1][0]).geometry
    assert geo.outer and len(geo.row_bands) == len(geo.col_bands) == 3
    assert_conforms("dilated2d", "direct", spec)


def test_taps_that_only_read_padding_are_cropped():
    """A dilation past the map: only the centre tap ever reads the input."""
    spec = kernels.ConvSpec(n=1, c=2, k=5, size=(6, 7), kernel=3, padding=8, dilation=8)
    assert live_span(spec, 0) == live_span(spec, 1) == (1, 2)
    packed = prepare_dilated(spec, kernels.make_inputs("dilated2d", spec)[1][0])
    assert (packed.geometry.first, packed.geometry.kept) == ((1, 1), (1, 1))
    assert_conforms("dilated2d", "direct", spec)


def test_rows_that_read_only_padding_are_zero():
    """Output rows whose every kernel row falls into the padding are written, as zeros."""
    spec = kernels.ConvSpec(n=2, c=3, k=13, size=(2, 5), kernel=3, padding=(6, 2),
                            dilation=2)
    assert live_taps(10, 2, 1, 6, 2, 3, 0) == (3, 3)  # row 0: no live tap
    _, _, y = assert_conforms("dilated2d", "direct", spec)
    assert not y[:, :, :2].any() and not y[:, :, 8:].any()
    assert y[:, :, 2:8].any()


def test_the_dot_block_runs_every_kept_tap():
    """The dot block strides weight rows by the whole window: one band, all kept taps."""
    spec = kernels.ConvSpec(n=1, c=2, k=3, size=(9, 10), kernel=3, padding=4, dilation=4)
    packed = prepare_dilated(spec, kernels.make_inputs("dilated2d", spec)[1][0])
    assert not packed.geometry.outer
    assert packed.geometry.row_bands.tolist() == [[0, 9, 0, 3]]
    assert packed.geometry.col_bands.tolist() == [[0, 10, 0, 3]]
    assert_conforms("dilated2d", "direct", spec)


def test_a_layer_that_reads_only_padding_is_zero():
    """Stride 2 from row -3 never meets the one real row: every output is zero, on both
    register blocks."""
    for k in (2, 13):
        spec = kernels.ConvSpec(n=1, c=2, k=k, size=(1, 4), kernel=(1, 3), stride=(2, 1),
                                padding=(3, 2), dilation=2)
        x, w = kernels.make_inputs("dilated2d", spec)
        y = kernels.run("dilated2d", "direct", spec, x, w)
        assert y.shape == spec.output_shape and not y.any()
        assert not kernels.reference("dilated2d", spec, x, w).any()
