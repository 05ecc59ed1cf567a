"""ONNX Runtime's CPU execution provider, one one-layer model per benchmarked layer.

`prepared` mode only: an inference session is a prepared plan. The weights are graph
initializers, so at session creation ONNX Runtime's level-3 (ORT_ENABLE_ALL) layout
transformer rewrites 2-D Conv nodes to its blocked NCHWc kernels (AVX-512/AVX2, with
the weights reordered once) and folds constant work; weights fed as inputs would keep
the plain NCHW path and re-read them every run. A `call` mode (raw weights in every
call) would mean a session per call, which no deployment does: recorded as a skip.

Session options, per ONNX Runtime's performance-tuning documentation: intra-op threads
= the sweep's thread count, inter-op 1 with sequential execution (one operator at a
time; a one-layer graph has no parallel branches), graph optimisation ORT_ENABLE_ALL,
and `session.intra_op.allow_spinning = 0`, so its pool's threads sleep between runs
instead of spinning on the cores the next benchmark (or Numba) wants.

The graph (`harness.peers.layer`): Conv / ConvTranspose with group, strides, pads,
dilations (and output_padding), two Convs for depthwise separable, the folded full
kernel for the factored types, Reshape/Transpose/Reshape for the channel shuffle.

NCHW-native (the ONNX Conv operator's layout). In the NHWC contract the graph takes and
gives NHWC (NDHWC) tensors with a Transpose node on either side of the convolution, so
the reorder is inside the timed run, where ONNX Runtime's optimiser may fuse it into its
own layout conversions (as it would for a user exporting a channels-last model).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.peers.layouts import shape_in, to_first_perm, to_last_perm

NAME = "onnxruntime"
MODES = ("prepared",)
NATIVE_LAYOUT = "nchw"
OPSET = 17
IR_VERSION = 8  # the oldest IR that opset 17 needs: loadable by any recent runtime


def missing() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return "ONNX Runtime is not installed (pip install onnxruntime onnx)"
    return None


def reason(conv_type: str, spec, mode: str, layout: str = "nchw") -> str | None:
    if mode != "prepared":
        return ("ONNX Runtime has no call mode: a session is a prepared plan whose weights "
                "are initializers, transformed once when it is created")
    return None


def threading_layer() -> str:
    return "onnxruntime-threadpool"


def build_model(conv_type: str, spec, weights, layout: str = "nchw"):
    """The one-layer ONNX model (weights as initializers): input `x`, output `y`, both
    in the `layout` contract (Transpose nodes around the NCHW convolution for "nhwc")."""
    from onnx import TensorProto, helper, numpy_helper

    from harness.peers.layer import deployed_layer

    layer = deployed_layer(conv_type, spec, weights)
    nodes, inits, prev = [], [], "x"
    rank = spec.ndim + 2
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"],
                                      perm=to_first_perm(rank)))
        prev = "x_nchw"
    for i, s in enumerate(layer.stages):
        w, out = f"w{i}", f"s{i}"
        inits.append(numpy_helper.from_array(s.weight, w))
        attrs = dict(group=s.groups, strides=list(s.stride), dilations=list(s.dilation),
                     pads=list(s.padding) * 2, kernel_shape=list(s.weight.shape[2:]))
        if s.transposed:
            attrs["output_padding"] = list(s.output_padding)
        nodes.append(helper.make_node("ConvTranspose" if s.transposed else "Conv",
                                      [prev, w], [out], **attrs))
        prev = out
    out_shape = list(spec.output_shape)
    if layer.shuffle_groups:
        n, k, *rest = out_shape
        g = layer.shuffle_groups
        for name, shape in (("split", [n, g, k // g, *rest]), ("joined", out_shape)):
            inits.append(numpy_helper.from_array(np.asarray(shape, dtype=np.int64), name))
        nodes += [helper.make_node("Reshape", [prev, "split"], ["grouped"]),
                  helper.make_node("Transpose", ["grouped"], ["swapped"],
                                   perm=[0, 2, 1, *range(3, 3 + len(rest))]),
                  helper.make_node("Reshape", ["swapped", "joined"], ["shuffled"])]
        prev = "shuffled"
    if layout == "nhwc":
        nodes.append(helper.make_node("Transpose", [prev], ["y"], perm=to_last_perm(rank)))
    else:
        nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(
        nodes, f"{conv_type}_layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       shape_in(spec.input_shape, layout))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape_in(out_shape, layout))],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="convbench")
    model.ir_version = IR_VERSION
    return model


def session_options(threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)  # 0: ONNX Runtime's default (the cores)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def function(conv_type: str, spec, x, weights, mode: str = "prepared",
             threads: int | None = None, layout: str = "nchw") -> Callable:
    import onnxruntime as ort

    why = reason(conv_type, spec, mode, layout)
    if why:
        raise ValueError(f"mode: {why}")
    model = build_model(conv_type, spec, weights, layout)
    session = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    feed = {"x": np.ascontiguousarray(x, dtype=np.float32)}

    def prepared():
        return session.run(None, feed)[0]

    prepared()  # the first run allocates the session's buffers
    return prepared
