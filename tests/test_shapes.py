"""Shape sets: parsing, type tags, names and repeats, and network totals against the papers.

Fast: nothing here runs a kernel; counts come from `kernels.multiplications`.
"""

from __future__ import annotations

import pytest

import kernels
from harness import shapes
from kernels.spec import ConvSpec
from kernels.types import check_spec

SETS = shapes.available_sets()
FILE_SETS = [s for s in SETS if s != shapes.FULL]
NETWORK_FILES = ["resnet50", "mobilenet_v1", "mobilenet_v2", "shufflenet_v1", "alexnet", "vgg16",
                 "c3d", "deeplab", "enet", "dcgan", "unet_decoder", "seed", "deepbench_inference"]

# Published totals (multiply-adds per 224x224 image, conv + fc as the papers count them) and
# the fc layers inside them, computed here from the layer sizes rather than read from the files.
PUBLISHED = {
    # He et al. 2016, Table 1 (50-layer "FLOPs" = multiply-adds); fc1000 on 2048 features
    "resnet50": (3.8e9, 2048 * 1000),
    # Howard et al. 2017, Tables 4/6/8 (1.0 MobileNet-224); fc 1024 -> 1000
    "mobilenet_v1": (569e6, 1024 * 1000),
    # Sandler et al. 2018, Table 4; classifier 1280 -> 1000
    "mobilenet_v2": (300e6, 1280 * 1000),
    # Zhang et al. 2018, Table 1 complexity row, g = 3; fc 960 -> 1000
    "shufflenet_v1": (137e6, 960 * 1000),
    # Howard et al. 2017, Table 9 (and the seed article); fc6, fc7, fc8
    "alexnet": (720e6, 9216 * 4096 + 4096 * 4096 + 4096 * 1000),
    # Howard et al. 2017, Table 8; fc6, fc7, fc8
    "vgg16": (15.3e9, 25088 * 4096 + 4096 * 4096 + 4096 * 1000),
}
# Conv-only totals must sit within this of (published - fc). The published figures carry two or
# three significant digits (3.8e9, 15.3e9), and ResNet-50's count depends on where the stride
# sits (3.86e9 here, original model); 3% covers both, 2% where the paper gives three digits.
TOLERANCE = {"resnet50": 0.03, "vgg16": 0.03, "alexnet": 0.03, "shufflenet_v1": 0.03,
             "mobilenet_v1": 0.02, "mobilenet_v2": 0.02}


def _total(name: str) -> int:
    df = shapes.totals(name)
    assert df.iloc[-1]["layer"] == "total"
    return int(df.iloc[-1]["multiply_adds"])


# ------------------------------------------------------------------- loading
def test_required_sets_exist():
    for name in NETWORK_FILES + ["quick", "full"]:
        assert name in SETS, name


@pytest.mark.parametrize("name", SETS)
def test_every_set_loads_and_fits_its_types(name):
    layers = shapes.load_set(name)
    assert layers, name
    keys = set()
    for layer in layers:
        assert isinstance(layer, shapes.Layer)
        assert layer.conv_type in kernels.CONV_TYPES
        check_spec(layer.conv_type, layer.spec)  # raises if the tag does not fit
        assert layer.spec.transposed == (layer.conv_type == "transposed2d")
        assert layer.repeat >= 1
        assert layer.network and layer.name and "/" not in layer.name
        assert layer.spec.n == 1, f"{layer.label}: inference sets use mb1"
        key = (layer.conv_type, layer.network, layer.name)
        assert key not in keys, f"duplicate {key} in {name}"
        keys.add(key)


@pytest.mark.parametrize("name", SETS)
def test_descriptors_round_trip(name):
    for layer in shapes.load_set(name):
        text = str(layer.spec)
        back = ConvSpec.parse(text)
        assert back == layer.spec, text
        assert back.name == layer.spec.name
        if layer.conv_type == "transposed2d":
            assert text.startswith("deconv:")


def test_names_and_repeats():
    layers = {(x.conv_type, x.name): x for x in shapes.load_set("resnet50")}
    b = layers[("conv2d", "res2a_branch2b")]
    assert (b.network, b.repeat, b.spec.name) == ("resnet50", 3, "resnet50:res2a_branch2b*3")
    assert layers[("pointwise", "res4b_branch2a")].repeat == 5
    assert layers[("conv2d", "conv1")].repeat == 1
    # every conv layer of ResNet-50: 1 stem + 16 blocks x 3 + 4 projection shortcuts
    assert sum(x.repeat for x in layers.values()) == 53
    mnv1 = {(x.conv_type, x.name): x for x in shapes.load_set("mobilenet_v1")}
    assert mnv1[("depthwise", "conv5_1_dw")].repeat == 5
    assert mnv1[("depthwise", "conv5_1_dw")].label == "mobilenet_v1:conv5_1_dw"


def test_type_tags_follow_the_layers():
    for layer in shapes.load_set("resnet50"):
        k = layer.spec.kernel
        expected = "pointwise" if k == (1, 1) else "conv2d"
        assert layer.conv_type == expected, layer.label
    for layer in shapes.load_set("mobilenet_v1") + shapes.load_set("mobilenet_v2"):
        if layer.conv_type == "depthwise":
            assert layer.spec.groups == layer.spec.c == layer.spec.k > 1
    shuffle = shapes.load_set("shufflenet_v1")
    assert {x.conv_type for x in shuffle} == {
        "conv2d", "pointwise", "depthwise", "pointwise_grouped", "shuffled_grouped"}
    assert all(x.spec.groups == 3 for x in shuffle
               if x.conv_type in ("pointwise_grouped", "shuffled_grouped"))
    alex = {x.name: x for x in shapes.load_set("alexnet")}
    assert [n for n, x in alex.items() if x.conv_type == "grouped"] == ["conv2", "conv4", "conv5"]
    assert all(alex[n].spec.groups == 2 for n in ("conv2", "conv4", "conv5"))
    assert {x.conv_type for x in shapes.load_set("deeplab")} == {"dilated2d"}
    assert {x.conv_type for x in shapes.load_set("c3d")} == {"conv3d"}
    for name in ("dcgan", "unet_decoder"):
        assert {x.conv_type for x in shapes.load_set(name)} == {"transposed2d"}


def test_transposed_lines_parse_as_deconvolutions():
    dcgan = {x.name: x.spec for x in shapes.load_set("dcgan")}
    assert dcgan["project"].out_size == (4, 4)
    for i, hw in enumerate((8, 16, 32, 64), start=1):
        spec = dcgan[f"conv{i}"]
        assert spec.transposed and spec.kernel == (5, 5) and spec.stride == (2, 2)
        assert spec.out_size == (hw, hw) and spec.output_padding == (1, 1)
    unet = {x.name: x.spec for x in shapes.load_set("unet_decoder")}
    assert [unet[f"upconv{i}"].out_size[0] for i in range(1, 5)] == [56, 104, 200, 392]


def test_deepbench_tuple_mapping():
    db = {x.name: x for x in shapes.load_set("deepbench_inference")}
    # (w, h, c, n, k, filter_w, filter_h, pad_w, pad_h, stride_w, stride_h)
    # = (700, 161, 1, 1, 32, 20, 5, 0, 0, 2, 2)
    s = db["server_001"].spec
    assert (s.c, s.k, s.size, s.kernel, s.padding, s.stride) == (
        1, 32, (161, 700), (5, 20), (0, 0), (2, 2))
    # (151, 40, 1, 1, 32, 20, 5, 8, 8, 8, 2): stride_w 8, stride_h 2
    s = db["device_001"].spec
    assert (s.size, s.kernel, s.padding, s.stride) == ((40, 151), (5, 20), (8, 8), (2, 8))
    # the 1x1 with padding 3 is conv2d (pointwise takes no padding)
    assert db["server_050"].conv_type == "conv2d"
    assert all(x.spec.n == 1 for x in db.values())


def test_seed_examples_reproduce_the_seed_counts():
    seed = {(x.conv_type, x.name): x.spec for x in shapes.load_set("seed")}

    def count(conv_type, name):
        return kernels.multiplications(conv_type, "direct", seed[(conv_type, name)])

    assert count("conv2d", "s8_2_7x7x3_to_5x5x128") == 86_400
    assert count("depthwise_separable", "s8_2_7x7x3_to_5x5x128") == 10_275
    assert count("depthwise", "s8_2_depthwise_step") == 675
    assert count("pointwise", "s8_2_pointwise_step") == 9_600
    assert count("spatially_separable", "s8_1_5x5_k3") == 81
    assert count("conv2d", "s2_1_single_channel") == 81
    assert seed[("transposed2d", "s6_2x2_to_4x4")].out_size == (4, 4)
    assert seed[("transposed2d", "s6_2x2_to_5x5")].out_size == (5, 5)
    assert seed[("dilated2d", "s7_rate2")].out_size == (3, 3)
    assert seed[("dilated2d", "s7_rate4")].out_size == (3, 3)
    # the single-channel examples
    assert {t for (t, _), s in seed.items() if s.c == s.k == 1} >= {
        "conv2d", "conv3d", "transposed2d", "dilated2d", "spatially_separable"}


# -------------------------------------------------------------------- quick/full
def test_quick_covers_every_type():
    quick = shapes.load_set("quick")
    assert {x.conv_type for x in quick} == set(kernels.CONV_TYPES)
    assert len(quick) <= 2 * len(kernels.CONV_TYPES)


def test_quick_layers_are_network_layers():
    full = {(x.conv_type, x.network, x.name): x.spec for x in shapes.load_set("full")}
    for layer in shapes.load_set("quick"):
        assert layer.repeat == 1
        key = (layer.conv_type, layer.network, layer.name)
        assert key in full, f"{layer.label} ({layer.conv_type}) is not in a network file"
        assert full[key] == layer.spec, layer.label
    # and they stay small: no layer above 0.7 G multiply-adds
    df = shapes.totals("quick")
    assert df.iloc[:-1]["multiply_adds"].max() < 0.7e9


def _in_full(name: str) -> bool:
    """Read from the file itself: not a copy set and not marked '# full: no'."""
    return (name not in shapes.NOT_IN_FULL
            and "\n# full: no" not in shapes.set_path(name).read_text())


def test_full_is_the_union_of_the_network_files():
    full = shapes.load_set("full")
    expected = []
    for name in FILE_SETS:
        if not _in_full(name):
            continue
        expected += shapes.load_set(name)
    assert full == expected
    assert {x.network for x in full} >= {"resnet50", "mobilenet_v1", "seed", "rfcn"}
    assert not any(x.network in ("quick", "ci") for x in full)


def test_unknown_set_names_the_available_ones():
    with pytest.raises(ValueError, match="nosuchnet") as err:
        shapes.load_set("nosuchnet")
    assert "resnet50" in str(err.value) and "full" in str(err.value)
    with pytest.raises(ValueError, match="nosuchnet"):
        shapes.totals("nosuchnet")


# -------------------------------------------------------------------- malformed
@pytest.mark.parametrize("bad, why", [
    ("conv9d mb1ic3ih5oc1oh3kh3n\"x:a\"", "unknown conv type"),
    ("conv2d mb1ic3ih5oc1oh3kh3zz9n\"x:a\"", "cannot read"),
    ("conv2d mb1ic3ih5oc1oh4kh3n\"x:a\"", "oh"),
    ("pointwise mb1ic3ih5oc1oh3kh3n\"x:a\"", "kernel"),
    ("depthwise g2mb1ic4ih5oc4oh3kh3n\"x:a\"", "groups"),
    ("conv2d mb1ic3ih5oc1oh3kh3", "name"),
    ("conv2d mb1ic3ih5oc1oh3kh3n\"x:a/b\"", "name"),
    ("conv2d", "expected"),
    ("conv2d mb1ic3ih5oc1oh3kh3n\"x:first\"", "already on line 2"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad, why):
    path = tmp_path / "broken.txt"
    path.write_text('# header\nconv2d mb1ic3ih5oc1oh3kh3n"x:first"\n\n' + bad + "\n")
    with pytest.raises(ValueError, match=why) as err:
        shapes.load_set(str(path))
    assert "broken.txt:4" in str(err.value)


def test_load_file_reads_comments_and_repeats(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text(
        "# a comment\n"
        'conv2d   mb1ic3ih5oc1oh3kh3n"net:a*4"   # trailing comment\n'
        'transposed2d mb1ic1ih2oc1oh5kh3sh2n"b"\n'
    )
    a, b = shapes.load_set(str(path))
    assert (a.network, a.name, a.repeat) == ("net", "a", 4)
    assert (b.network, b.name, b.repeat, b.spec.transposed) == ("mine", "b", 1, True)
    df = shapes.totals(str(path))
    # 4 x (9 outputs x 27 taps) + 4 input pixels x 9 taps
    assert int(df.iloc[-1]["multiply_adds"]) == 4 * 9 * 27 + 4 * 9


# ---------------------------------------------------------------------- totals
def test_totals_table_shape():
    df = shapes.totals("resnet50")
    assert list(df.columns) == shapes.TOTAL_COLUMNS
    body, total = df.iloc[:-1], df.iloc[-1]
    assert (body["multiply_adds"] == body["multiply_adds_each"] * body["repeat"]).all()
    assert total["multiply_adds"] == body.loc[body["in_total"], "multiply_adds"].sum()
    assert total["repeat"] == 53
    assert df.attrs["published"] == shapes.published_total("resnet50")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_network_totals_match_the_papers(name):
    value, fc = PUBLISHED[name]
    pub = shapes.published_total(name)
    assert pub is not None and pub.source
    assert pub.value == pytest.approx(value)
    assert pub.fc == pytest.approx(fc), "the header's fc figure must match the fc layer sizes"
    assert pub.tolerance == pytest.approx(TOLERANCE[name])
    conv = _total(name)
    rel = conv / (value - fc) - 1
    assert abs(rel) <= TOLERANCE[name], f"{name}: conv total {conv:.4g} is {rel:+.2%} off"
    # the same comparison with the fc layers added back to our count
    assert abs((conv + fc) / value - 1) <= TOLERANCE[name]


def test_published_total_parses_the_header_line():
    pub = shapes.published_total("resnet50")
    assert pub.text.startswith("# published: 3.8e9")
    assert "He et al. 2016" in pub.source and "Table 1" in pub.source
    assert pub.conv_only == pytest.approx(3.8e9 - 2.048e6)
    for name in ("seed", "quick", "deepbench_inference", "c3d", "full"):
        assert shapes.published_total(name) is None


def test_views_are_listed_but_not_counted():
    df = shapes.totals("mobilenet_v1")
    body = df.iloc[:-1]
    views = body[~body["in_total"]]
    assert set(views["conv_type"]) == {"depthwise_separable", "spatially_separable", "flattened"}
    # depthwise separable = the file's depthwise + pointwise layers, block for block
    ds = body.loc[body["conv_type"] == "depthwise_separable", "multiply_adds"].sum()
    dw_pw = body.loc[body["conv_type"].isin(["depthwise", "pointwise"]), "multiply_adds"].sum()
    assert ds == dw_pw
    # Table 4 of Howard et al.: the same network with full convolutions, 4866 million
    full_conv = (body.loc[body["conv_type"] == "spatially_separable", "multiply_adds"].sum()
                 + body.loc[body["conv_type"] == "conv2d", "multiply_adds"].sum() + 1024 * 1000)
    assert full_conv == pytest.approx(4866e6, rel=0.01)


def test_full_total_is_the_sum_of_the_network_totals():
    parts = sum(_total(name) for name in FILE_SETS if _in_full(name))
    assert _total("full") == parts
