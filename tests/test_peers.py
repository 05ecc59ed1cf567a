"""The peers in each timing mode and layout contract against the float64 oracle, one
small layer per type, and the reasons of what a peer cannot express (skipped cleanly
when a peer is not installed)."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from harness import peers, timed
from harness.peers.layouts import LAYOUTS, in_layout
from harness.verify import check_cell
from kernels import accuracy

# one small layer of each type (strides, padding, groups, dilation and output padding
# all exercised somewhere)
SPECS = {
    "conv2d": "mb1ic4ih9oc6oh5kh3sh2ph1",
    "conv3d": "mb1ic3id5ih5oc4od5oh5kd3kh3pd1ph1",
    "pointwise": "mb1ic8ih5oc6oh5kh1ph0",
    "transposed2d": "deconv:g2mb1ic4ih4oc6oh8kh3sh2ph1",
    "dilated2d": "mb1ic4ih9oc6oh9kh3ph2dh1",
    "spatially_separable": "mb1ic3ih7oc4oh7kh3ph1",
    "depthwise": "g6mb1ic6ih7oc6oh4kh3sh2ph1",
    "depthwise_separable": "mb1ic4ih7oc6oh7kh3ph1",
    "flattened": "mb1ic3ih7oc4oh7kh3ph1",
    "grouped": "g2mb1ic4ih7oc6oh7kh3ph1",
    "shuffled_grouped": "g2mb1ic4ih6oc6oh6kh3ph1",
    "pointwise_grouped": "g2mb1ic4ih6oc6oh6kh1ph0",
}
# more layers where a peer's translation branches: PyTorch padding that is neither
# SAME nor VALID (LiteRT's explicit PAD), transposed without groups (LiteRT), with a
# batch of two (ncnn's loop over images) and output padding
EXTRA_SPECS = [("conv2d", "mb1ic4ih8oc6oh4kh3sh2ph1"),
               ("transposed2d", "deconv:mb1ic4ih4oc6oh8kh3sh2ph1"),
               ("transposed2d", "deconv:mb2ic3ih5oc4oh9kh3sh2ph1"),
               ("depthwise", "g6mb2ic6ih6oc6oh3kh3sh2ph1")]
# the engines' Python packages, for importorskip
PACKAGES = {"torch": ("torch",), "onnxruntime": ("onnxruntime", "onnx"),
            "openvino": ("openvino",), "litert": ("ai_edge_litert", "flatbuffers"),
            "ncnn": ("ncnn",), "mnn": ("MNN",)}
# each engine peer with the modes it has
ENGINE_MODES = [("torch", "call"), ("torch", "prepared"), ("onnxruntime", "prepared"),
                ("openvino", "prepared"), ("litert", "prepared"), ("ncnn", "prepared"),
                ("mnn", "prepared")]
# what an engine cannot express in the small layers above, and why (a word of the reason)
CANNOT = {("litert", "conv3d"): "3-D", ("litert", "transposed2d"): "groups",
          ("ncnn", "conv3d"): "3-D", ("mnn", "conv3d"): "3-D",
          **{("mnn", t): "grouped" for t in ("transposed2d", "grouped", "shuffled_grouped",
                                             "pointwise_grouped")}}


@pytest.fixture(autouse=True)
def scratch_home(tmp_path, monkeypatch):
    """Importing onnxruntime or openvino writes device ids under the home directory:
    keep them in the test's scratch folder."""
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(name, str(tmp_path))


def spec_of(conv_type: str, flip: bool = False):
    spec = kernels.ConvSpec.parse(SPECS[conv_type])
    return spec.replace(flip=True) if flip else spec


def require(peer: str) -> None:
    for package in PACKAGES[peer]:
        pytest.importorskip(package)


def test_every_type_has_a_layer_here():
    assert set(SPECS) == set(kernels.CONV_TYPES)


def check_against_oracle(peer, mode, conv_type, spec, layout, seed=1, repeat=2):
    """The peer's callable in the `layout` contract: the oracle's answer in that layout,
    C-contiguous float32, again on a second run."""
    x, w = kernels.make_inputs(conv_type, spec, seed=seed)
    ref = in_layout(kernels.reference(conv_type, spec, x, w), layout)
    fn = peers.peer_function(peer, conv_type, spec, in_layout(x, layout), w, mode=mode,
                             threads=1, layout=layout)
    for _ in range(repeat):  # a prepared plan gives the same answer again
        y = np.asarray(fn())
        assert y.shape == ref.shape and y.dtype == np.float32 and y.flags.c_contiguous
        assert accuracy.error(y, ref) <= accuracy.bound("direct", conv_type, spec)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("peer,mode", ENGINE_MODES)
@pytest.mark.parametrize("conv_type", list(SPECS))
def test_engine_peer_matches_the_oracle(peer, mode, conv_type, layout):
    require(peer)
    spec = spec_of(conv_type)
    why = peers.peer_reason(peer, conv_type, spec, mode, layout)
    if (peer, conv_type) in CANNOT:
        assert why and CANNOT[peer, conv_type] in why
        with pytest.raises(ValueError, match="peer: "):
            peers.peer_function(peer, conv_type, spec, None, None, mode, layout=layout)
        return
    assert why is None
    check_against_oracle(peer, mode, conv_type, spec, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("peer,mode", ENGINE_MODES)
@pytest.mark.parametrize("conv_type,text", EXTRA_SPECS)
def test_engine_peer_matches_the_oracle_on_more_layers(peer, mode, conv_type, text, layout):
    require(peer)
    check_against_oracle(peer, mode, conv_type, kernels.ConvSpec.parse(text), layout,
                         repeat=1)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("peer,mode", ENGINE_MODES)
@pytest.mark.parametrize("conv_type", ["conv2d", "transposed2d", "spatially_separable",
                                       "depthwise_separable"])
def test_engine_peer_flips_the_kernel_for_true_convolution(peer, mode, conv_type, layout):
    require(peer)
    spec = spec_of(conv_type, flip=True)
    if (peer, conv_type) in CANNOT:
        spec = kernels.ConvSpec.parse(EXTRA_SPECS[1][1]).replace(flip=True)
    check_against_oracle(peer, mode, conv_type, spec, layout, seed=2, repeat=1)


def test_check_cell_verifies_the_callable_of_the_mode():
    require("onnxruntime")
    spec = spec_of("grouped")
    ok = check_cell("grouped", "onnxruntime", spec, mode="prepared")
    assert ok["ok"], ok["error"]
    no = check_cell("grouped", "onnxruntime", spec, mode="call")
    assert not no["ok"] and "no call mode" in no["error"]


@pytest.mark.parametrize("peer", ["onnxruntime", "openvino", "litert", "ncnn", "mnn"])
def test_engines_have_no_call_mode(peer):
    spec = spec_of("conv2d")
    assert peers.peer_modes(peer) == ("prepared",)
    why = peers.peer_reason(peer, "conv2d", spec, "call")
    assert why and ("no call mode" in why or "not installed" in why)


def test_scipy_has_no_prepared_mode_and_says_why():
    spec = kernels.ConvSpec.parse("mb1ic1ih9oc1oh9kh3ph1")
    assert peers.peer_reason("scipy", "conv2d", spec, "call") is None
    assert "no prepared form" in peers.peer_reason("scipy", "conv2d", spec, "prepared")


def test_a_missing_peer_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(peers.onnx_runtime, "missing",
                        lambda: "ONNX Runtime is not installed (pip install onnxruntime onnx)")
    why = peers.peer_reason("onnxruntime", "conv2d", spec_of("conv2d"), "prepared")
    assert "pip install onnxruntime" in why


def test_unknown_peer_and_mode_are_refused():
    with pytest.raises(ValueError, match="peer: unknown peer 'mkl'"):
        peers.peer_function("mkl", "conv2d", spec_of("conv2d"), None, None)
    with pytest.raises(ValueError, match="mode: 'eager'"):
        peers.peer_reason("torch", "conv2d", spec_of("conv2d"), "eager")


@pytest.mark.parametrize("peer", peers.PEERS)
def test_an_unknown_layout_is_refused_whether_or_not_the_peer_is_installed(peer,
                                                                         monkeypatch):
    monkeypatch.setattr(peers._module(peer), "missing", lambda: "not installed (pip ...)")
    for call in (lambda: peers.peer_reason(peer, "conv2d", spec_of("conv2d"), "prepared",
                                           "nchwc"),
                 lambda: peers.peer_function(peer, "conv2d", spec_of("conv2d"), None, None,
                                             "prepared", layout="chwn"),
                 lambda: peers.peer_metadata(peer, "NHWC")):
        with pytest.raises(ValueError, match="^layout: "):
            call()


@pytest.mark.parametrize("peer", peers.PEERS)
def test_every_peer_says_its_native_layout_and_where_it_reorders(peer):
    native = peers.peer_metadata(peer, "nchw")["native_layout"]
    assert native in LAYOUTS
    for layout in LAYOUTS:
        meta = peers.peer_metadata(peer, layout)
        assert set(meta) == {"native_layout", "reorder_in_call"}
        assert meta["native_layout"] == native
        assert meta["reorder_in_call"] is (layout != native and peer not in ("torch", "scipy"))


def test_the_engines_native_layouts():
    assert {p: peers.peer_metadata(p)["native_layout"] for p in peers.PEERS} == {
        "torch": "nchw", "scipy": "nchw", "onnxruntime": "nchw", "openvino": "nchw",
        "litert": "nhwc", "ncnn": "nchw", "mnn": "nchw"}
    # channels_last is torch's own NHWC; LiteRT reorders in its graph for NCHW
    assert peers.peer_metadata("torch", "nhwc")["reorder_in_call"] is False
    assert peers.peer_metadata("litert", "nchw")["reorder_in_call"] is True
    assert peers.peer_metadata("litert", "nhwc")["reorder_in_call"] is False


def test_scipy_runs_a_single_channel_in_either_layout():
    spec = kernels.ConvSpec.parse("mb1ic1ih9oc1oh7kh3ph0")
    for layout in LAYOUTS:
        check_against_oracle("scipy", "call", "conv2d", spec, layout, repeat=1)


INSTALL = {"litert": "pip install ai-edge-litert", "ncnn": "pip install ncnn",
           "mnn": "pip install mnn"}


@pytest.mark.parametrize("peer", list(INSTALL))
def test_a_missing_engine_is_a_skip_with_its_install_line(peer, monkeypatch):
    import builtins

    real_import = builtins.__import__
    blocked = PACKAGES[peer][0]

    def no_engine(name, *args, **kwargs):
        if name == blocked or name.startswith(blocked + "."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_engine)
    why = peers.peer_reason(peer, "conv2d", spec_of("conv2d"), "prepared")
    assert INSTALL[peer] in why


def test_onnx_model_holds_the_weights_as_initializers():
    require("onnxruntime")
    from harness.peers.onnx_runtime import build_model, session_options

    spec = spec_of("shuffled_grouped")
    _, w = kernels.make_inputs("shuffled_grouped", spec, seed=0)
    model = build_model("shuffled_grouped", spec, w)
    assert [i.name for i in model.graph.input] == ["x"]  # weights are not inputs
    assert "w0" in {i.name for i in model.graph.initializer}
    assert [n.op_type for n in model.graph.node] == ["Conv", "Reshape", "Transpose",
                                                     "Reshape", "Identity"]
    so = session_options(3)
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (3, 1)
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_onnx_and_openvino_models_transpose_only_for_the_nhwc_contract(layout):
    require("onnxruntime")
    require("openvino")
    from harness.peers import onnx_runtime, openvino_cpu

    spec = spec_of("conv2d")
    _, w = kernels.make_inputs("conv2d", spec, seed=0)
    onnx_ops = [n.op_type for n in onnx_runtime.build_model("conv2d", spec, w,
                                                            layout).graph.node]
    ov_ops = [op.get_type_name() for op in openvino_cpu.build_model(
        "conv2d", spec, w, layout).get_ordered_ops()]
    transposes = 2 if layout == "nhwc" else 0
    assert onnx_ops.count("Transpose") == transposes and "Conv" in onnx_ops
    assert ov_ops.count("Transpose") == transposes


@pytest.mark.parametrize("layout", LAYOUTS)
def test_litert_model_is_one_xnnpack_delegate_with_the_sweeps_threads(layout):
    require("litert")
    from harness.peers import litert

    spec = spec_of("shuffled_grouped")
    _, w = kernels.make_inputs("shuffled_grouped", spec, seed=0)
    interp = litert.interpreter(litert.build_model("shuffled_grouped", spec, w, layout), 2)
    assert litert.fully_delegated(interp)
    names = [op["op_name"] for op in interp._get_ops_details()]
    assert names.count("TRANSPOSE") == (3 if layout == "nchw" else 1)  # + the shuffle's
    assert interp.get_input_details()[0]["shape"].tolist() == peers.layouts.shape_in(
        spec.input_shape, layout)


def test_litert_pads_explicitly_only_where_same_and_valid_differ():
    require("litert")
    from harness.peers import litert

    def ops(text):
        spec = kernels.ConvSpec.parse(text)
        _, w = kernels.make_inputs("conv2d", spec, seed=0)
        interp = litert.interpreter(litert.build_model("conv2d", spec, w, "nhwc"), 1)
        return [op["op_name"] for op in interp._get_ops_details()][:-1]  # not DELEGATE

    assert ops("mb1ic4ih9oc6oh5kh3sh2ph1") == ["CONV_2D"]         # SAME
    assert ops("mb1ic4ih9oc6oh7kh3ph0") == ["CONV_2D"]            # VALID
    assert ops("mb1ic4ih8oc6oh4kh3sh2ph1") == ["PAD", "CONV_2D"]  # SAME pads 0 before


def test_litert_refuses_a_graph_the_delegate_did_not_take(monkeypatch):
    require("litert")
    from harness.peers import litert

    spec = spec_of("conv2d")
    x, w = kernels.make_inputs("conv2d", spec, seed=0)
    monkeypatch.setattr(litert, "fully_delegated", lambda interp: False)
    with pytest.raises(ValueError, match="XNNPACK delegate did not take the whole graph"):
        peers.peer_function("litert", "conv2d", spec, in_layout(x, "nhwc"), w, "prepared",
                            threads=1, layout="nhwc")


def test_ncnn_param_file_is_the_layer(tmp_path):
    from harness.peers import ncnn_net

    spec = spec_of("shuffled_grouped")
    _, w = kernels.make_inputs("shuffled_grouped", spec, seed=0)
    param, model = ncnn_net.write_net("shuffled_grouped", spec, w, tmp_path)
    lines = param.read_text().splitlines()
    assert lines[:2] == ["7767517", "3 3"]
    assert lines[1 + 1].split()[:4] == ["Input", "input", "0", "1"]
    conv = lines[3].split()
    assert conv[0] == "ConvolutionDepthWise" and "7=2" in conv and "0=6" in conv
    assert lines[4].split()[0] == "ShuffleChannel" and lines[4].split()[5] == "y"
    # a 4-byte tag, then the weights as raw float32
    assert model.stat().st_size == 4 + 4 * w[0].size


def test_ncnn_runs_float32_with_the_sweeps_threads():
    require("ncnn")
    from harness.peers import ncnn_net

    spec = spec_of("conv2d")
    _, w = kernels.make_inputs("conv2d", spec, seed=0)
    net = ncnn_net.load_net("conv2d", spec, w, 3)
    assert net.opt.num_threads == 3
    assert not (net.opt.use_fp16_storage or net.opt.use_fp16_arithmetic
                or net.opt.use_bf16_storage)


def test_mnn_session_is_float32_with_the_winograd_level_that_passes(monkeypatch):
    require("mnn")
    import MNN

    from harness.peers import mnn_net

    hints, configs = [], []
    real = MNN.Interpreter

    class Recording(real):
        def setSessionHint(self, *args):
            hints.append(args)
            return super().setSessionHint(*args)

        def createSession(self, config, *args):
            configs.append(dict(config))
            return super().createSession(config, *args)

    monkeypatch.setattr(MNN, "Interpreter", Recording)
    spec = spec_of("conv2d")
    _, w = kernels.make_inputs("conv2d", spec, seed=0)
    mnn_net.session("conv2d", spec, w, 2)
    assert hints == [(3, 2)]
    assert configs == [{"backend": "CPU", "precision": "high", "numThread": 2}]


def test_torch_channels_last_is_zero_copy_in_and_out():
    require("torch")
    import torch

    from harness.peers import pytorch

    x = np.arange(2 * 5 * 4 * 3, dtype=np.float32).reshape(2, 5, 4, 3)  # NHWC
    xt = pytorch.from_contract(x, "nhwc")
    assert tuple(xt.shape) == (2, 3, 5, 4) and xt.data_ptr() == x.ctypes.data
    assert xt.is_contiguous(memory_format=torch.channels_last)
    y = torch.zeros(2, 6, 5, 4).contiguous(memory_format=torch.channels_last)
    out = pytorch.to_contract(y, "nhwc")
    assert out.shape == (2, 5, 4, 6) and out.ctypes.data == y.data_ptr()


def test_openvino_is_compiled_for_f32_latency_and_the_sweeps_threads():
    from harness.peers.openvino_cpu import compile_config

    assert compile_config(2) == {"PERFORMANCE_HINT": "LATENCY",
                                 "INFERENCE_PRECISION_HINT": "f32",
                                 "INFERENCE_NUM_THREADS": 2}


@pytest.mark.parametrize("algorithm", ["direct", "winograd_f4"])
def test_our_prepared_plan_equals_the_call(algorithm):
    spec = kernels.ConvSpec.parse("mb1ic4ih9oc6oh9kh3ph1")
    x, w = kernels.make_inputs("conv2d", spec, seed=0)
    call = timed.timed_callable("conv2d", algorithm, spec, x, w, mode="call")()
    prepared = timed.timed_callable("conv2d", algorithm, spec, x, w, mode="prepared")
    np.testing.assert_array_equal(prepared(), call)
    np.testing.assert_array_equal(prepared(), call)


def _cpu_has(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return any(line.startswith("flags") and f" {flag}" in line for line in fh)
    except OSError:
        return False


def test_onnx_runtime_runs_its_blocked_nchwc_kernels(tmp_path):
    """With the weights as initializers and ORT_ENABLE_ALL, the optimised graph's Conv is
    the NCHWc one (the AVX2/AVX-512 blocked kernels), between input/output reorders."""
    require("onnxruntime")
    if not _cpu_has("avx2"):
        pytest.skip("ONNX Runtime's NCHWc kernels need AVX2 or AVX-512")
    import onnx
    import onnxruntime as ort

    from harness.peers.onnx_runtime import build_model, session_options

    spec = kernels.ConvSpec.parse("mb1ic16ih8oc16oh8kh3ph1")
    _, w = kernels.make_inputs("conv2d", spec, seed=0)
    so = session_options(1)
    so.log_severity_level = 3  # not the warning that an NCHWc model is machine-specific
    so.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(build_model("conv2d", spec, w).SerializeToString(), so,
                         providers=["CPUExecutionProvider"])
    nodes = [(n.domain, n.op_type) for n in onnx.load(so.optimized_model_filepath).graph.node]
    assert ("com.microsoft.nchwc", "Conv") in nodes


def test_openvino_compiled_model_runs_f32():
    """INFERENCE_PRECISION_HINT=f32 holds on the compiled model (bf16 CPUs default to bf16)."""
    require("openvino")
    import openvino

    from harness.peers.openvino_cpu import build_model, compile_config

    spec = spec_of("conv2d")
    _, w = kernels.make_inputs("conv2d", spec, seed=0)
    compiled = openvino.Core().compile_model(build_model("conv2d", spec, w), "CPU",
                                             compile_config(1))
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.f32
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
