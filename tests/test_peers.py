"""The peers in each timing mode against the float64 oracle, one small layer per type,
and the reasons of what a peer cannot express (skipped cleanly when a peer is not
installed)."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from harness import peers, timed
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
# the engines' Python packages, for importorskip
PACKAGES = {"torch": ("torch",), "onnxruntime": ("onnxruntime", "onnx"),
            "openvino": ("openvino",)}
# each engine peer with the modes it has
ENGINE_MODES = [("torch", "call"), ("torch", "prepared"), ("onnxruntime", "prepared"),
                ("openvino", "prepared")]


def spec_of(conv_type: str, flip: bool = False):
    spec = kernels.ConvSpec.parse(SPECS[conv_type])
    return spec.replace(flip=True) if flip else spec


def require(peer: str) -> None:
    for package in PACKAGES[peer]:
        pytest.importorskip(package)


def test_every_type_has_a_layer_here():
    assert set(SPECS) == set(kernels.CONV_TYPES)


@pytest.mark.parametrize("peer,mode", ENGINE_MODES)
@pytest.mark.parametrize("conv_type", list(SPECS))
def test_engine_peer_matches_the_oracle(peer, mode, conv_type):
    require(peer)
    spec = spec_of(conv_type)
    assert peers.peer_reason(peer, conv_type, spec, mode) is None
    x, w = kernels.make_inputs(conv_type, spec, seed=1)
    fn = peers.peer_function(peer, conv_type, spec, x, w, mode=mode, threads=1)
    ref = kernels.reference(conv_type, spec, x, w)
    for _ in range(2):  # a prepared plan gives the same answer again
        y = np.asarray(fn())
        assert y.shape == ref.shape
        assert accuracy.error(y, ref) <= accuracy.bound("direct", conv_type, spec)


@pytest.mark.parametrize("peer,mode", ENGINE_MODES)
@pytest.mark.parametrize("conv_type", ["conv2d", "transposed2d", "spatially_separable",
                                       "depthwise_separable"])
def test_engine_peer_flips_the_kernel_for_true_convolution(peer, mode, conv_type):
    require(peer)
    spec = spec_of(conv_type, flip=True)
    x, w = kernels.make_inputs(conv_type, spec, seed=2)
    y = peers.peer_function(peer, conv_type, spec, x, w, mode=mode, threads=1)()
    ref = kernels.reference(conv_type, spec, x, w)
    assert accuracy.error(np.asarray(y), ref) <= accuracy.bound("direct", conv_type, spec)


def test_check_cell_verifies_the_callable_of_the_mode():
    require("onnxruntime")
    spec = spec_of("grouped")
    ok = check_cell("grouped", "onnxruntime", spec, mode="prepared")
    assert ok["ok"], ok["error"]
    no = check_cell("grouped", "onnxruntime", spec, mode="call")
    assert not no["ok"] and "no call mode" in no["error"]


@pytest.mark.parametrize("peer", ["onnxruntime", "openvino"])
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
