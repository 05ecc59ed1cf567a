"""ConvSpec: output sizes, benchdnn descriptors, validation rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from kernels import ConvSpec
from kernels.types import check_spec

from .conftest import specs

BENCHDNN_LINES = [  # from oneDNN's benchdnn batch files
    'mb50ic64ih56oc64oh56kh3ph1n"resnet_50:res2a_branch2b*3"',
    'g32mb1ic32ih112iw112oc32oh112ow112kh3kw3sh1sw1ph1pw1n"mobilenet:conv2_1/dw"',
    'mb1ic3ih132iw132id116oc32kh3kw3kd3ph0pw0pd0sh1sw1sd1n"3d_unet:conv_1"',
    'mb1ic512ih38iw57oc512oh38ow57kh3kw3ph3pw3dh2dw2n"dilated_rfcn"',
]
DECONV_LINE = 'g1mb256oc3oh227ow227ic96ih55iw55kh11kw11sh4sw4ph0pw0n"alexnet:deconv1"'


def test_contract_example():
    spec = ConvSpec(n=1, c=64, k=64, size=(56, 56), kernel=(3, 3), stride=1, padding=1,
                    dilation=1, groups=1, output_padding=0, transposed=False, flip=False)
    assert spec.out_size == (56, 56)
    assert ConvSpec.parse("mb1ic64ih56oc64oh56kh3ph1") == spec
    assert ConvSpec.parse(str(spec)) == spec


def test_integers_broadcast():
    spec = ConvSpec(c=2, k=2, size=(9, 7), kernel=3, stride=2, padding=1)
    assert spec.kernel == (3, 3) and spec.stride == (2, 2) and spec.padding == (1, 1)
    assert ConvSpec(size=(4, 5, 6), kernel=3).kernel == (3, 3, 3)


@pytest.mark.parametrize("line", BENCHDNN_LINES)
def test_benchdnn_lines_parse_and_round_trip(line):
    spec = ConvSpec.parse(line)
    assert ConvSpec.parse(str(spec)) == spec
    assert str(ConvSpec.parse(str(spec))) == str(spec)
    assert spec.name


def test_benchdnn_details():
    res = ConvSpec.parse(BENCHDNN_LINES[0])
    assert (res.n, res.c, res.k, res.size, res.padding) == (50, 64, 64, (56, 56), (1, 1))
    assert res.name == "resnet_50:res2a_branch2b*3"
    mob = ConvSpec.parse(BENCHDNN_LINES[1])
    assert mob.groups == 32 and mob.out_size == (112, 112)
    unet = ConvSpec.parse(BENCHDNN_LINES[2])
    assert unet.size == (116, 132, 132) and unet.out_size == (114, 130, 130)
    rfcn = ConvSpec.parse(BENCHDNN_LINES[3])
    assert rfcn.dilation == (3, 3)  # benchdnn's dh2 is 0-based
    assert rfcn.n == 1 and rfcn.out_size == (38, 57)
    assert ConvSpec.parse("ic3ih5oc1kh3").n == 2  # benchdnn's default minibatch


def test_deconv_descriptor():
    spec = ConvSpec.parse(DECONV_LINE, transposed=True)
    assert spec.transposed and spec.c == 96 and spec.k == 3
    assert spec.out_size == (227, 227) and spec.output_padding == (0, 0)
    padded = ConvSpec.parse("mb1ic8ih4oc4oh8kh3sh2ph1", transposed=True)
    assert padded.output_padding == (1, 1)
    assert ConvSpec.parse(str(spec)) == spec


def test_seed_transposed_examples():
    # 2x2 input, 3x3 kernel, unit stride -> 4x4; with one zero between inputs (stride 2) -> 5x5
    assert ConvSpec(size=2, kernel=3, transposed=True).out_size == (4, 4)
    assert ConvSpec(size=2, kernel=3, stride=2, transposed=True).out_size == (5, 5)


def test_output_size_formulas():
    assert ConvSpec(size=5, kernel=3).out_size == (3, 3)
    assert ConvSpec(size=7, kernel=3, stride=2, padding=1).out_size == (4, 4)
    assert ConvSpec(size=7, kernel=3, dilation=2).out_size == (3, 3)
    assert ConvSpec(size=4, kernel=3, stride=2, padding=1, output_padding=1,
                    transposed=True).out_size == (8, 8)


@pytest.mark.parametrize("conv_type", kernels.CONV_TYPES)
@given(data=st.data())
def test_random_specs_round_trip(conv_type, data):
    spec = data.draw(specs(conv_type))
    again = ConvSpec.parse(str(spec))
    assert again == spec and again.out_size == spec.out_size


@pytest.mark.parametrize("kwargs, field", [
    (dict(n=0), "n"),
    (dict(c=0), "c"),
    (dict(size=(0, 5)), "size"),
    (dict(kernel=0), "kernel"),
    (dict(stride=0), "stride"),
    (dict(dilation=0), "dilation"),
    (dict(padding=-1), "padding"),
    (dict(c=6, k=4, groups=4), "groups"),
    (dict(c=4, k=6, groups=4), "groups"),
    (dict(size=3, kernel=5), "kernel"),
    (dict(size=5, kernel=3, dilation=3), "kernel"),
    (dict(output_padding=1), "output_padding"),
    (dict(transposed=True, stride=2, output_padding=2), "output_padding"),
    (dict(size=(5, 5), kernel=(3, 3, 3)), "kernel"),
    (dict(size=2, kernel=1, padding=0, stride=1, transposed=True, output_padding=0,
          c="3"), "c"),
])
def test_validation_names_the_field(kwargs, field):
    base = dict(c=4, k=4, size=5, kernel=3)
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        ConvSpec(**{**base, **kwargs})


@pytest.mark.parametrize("conv_type, spec, field", [
    ("depthwise", ConvSpec(c=4, k=4, size=5, kernel=3, groups=2), "groups"),
    ("pointwise", ConvSpec(c=4, k=4, size=5, kernel=3), "kernel"),
    ("pointwise", ConvSpec(c=4, k=4, size=5, kernel=1, padding=1), "padding"),
    ("conv2d", ConvSpec(c=4, k=4, size=5, kernel=3, groups=2), "groups"),
    ("grouped", ConvSpec(c=4, k=4, size=5, kernel=3), "groups"),
    ("dilated2d", ConvSpec(c=4, k=4, size=5, kernel=3), "dilation"),
    ("conv3d", ConvSpec(c=4, k=4, size=5, kernel=3), "size"),
    ("transposed2d", ConvSpec(c=4, k=4, size=5, kernel=3), "transposed"),
    ("conv2d", ConvSpec(c=4, k=4, size=5, kernel=3, transposed=True), "transposed"),
])
def test_spec_must_fit_type(conv_type, spec, field):
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        check_spec(conv_type, spec)
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        kernels.make_inputs(conv_type, spec)


@pytest.mark.parametrize("text, field", [
    ("mb1ic64ih56oc64oh55kh3ph1", "oh"),  # contradicts the arithmetic
    ("mb1ic64oc64kh3", "descriptor"),  # no input size
    ("mb1ic64ih56oc64kh3xx7", "descriptor"),
    ("mb1ih56oc64kh3", "descriptor"),
    ("g3mb1ic64ih56oc64kh3", "groups"),
])
def test_bad_descriptors(text, field):
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        ConvSpec.parse(text)
