"""OpenVINO's CPU plugin, one one-layer model per benchmarked layer.

`prepared` mode only: a compiled model is a prepared plan (its weights are Constant
nodes, reordered to the plugin's blocked layouts when it compiles). A `call` mode would
mean compiling per call: recorded as a skip.

Compiled for "CPU" with INFERENCE_NUM_THREADS = the sweep's thread count,
PERFORMANCE_HINT = LATENCY (one stream, all those threads on one request: the
single-input latency the sweep times) and INFERENCE_PRECISION_HINT = f32: on CPUs with
bf16 (AVX512_BF16, AMX) OpenVINO otherwise runs in bf16 by default, which would be
neither the same arithmetic as the other cells nor within their error bound. The
first inference of a compiled model still initialises its primitives, so one
inference happens when the callable is made, outside the timed region.

The graph (`harness.peers.layer`), built with the opset API: Convolution /
GroupConvolution (weights reshaped to [g, k/g, c/g, ...]), ConvolutionBackpropData /
GroupConvolutionBackpropData with output_padding for transposed, two convolutions for
depthwise separable, the folded full kernel for the factored types, and
Reshape/Transpose/Reshape for the channel shuffle.

NCHW-native (the opset's layout; the plugin picks its blocked layouts inside). In the
NHWC contract the model's parameter and result are NHWC (NDHWC) with a Transpose on
either side of the convolution, inside the timed inference, where the plugin may fold
them into its own reorders.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.peers.layouts import shape_in, to_first_perm, to_last_perm

NAME = "openvino"
MODES = ("prepared",)
NATIVE_LAYOUT = "nchw"


def missing() -> str | None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "OpenVINO is not installed (pip install openvino)"
    return None


def reason(conv_type: str, spec, mode: str, layout: str = "nchw") -> str | None:
    if mode != "prepared":
        return ("OpenVINO has no call mode: a compiled model is a prepared plan whose "
                "weights are constants, transformed once when it compiles")
    return None


def threading_layer() -> str:
    return "openvino-tbb"


def _opset():
    import openvino

    return openvino.opset13


def _stage(ops, data, s):
    pads = list(s.padding)
    g = s.groups
    w = s.weight
    if s.transposed:  # w[c, k/g, ...]; keywords: output_shape comes before the pads
        conv = dict(strides=list(s.stride), pads_begin=pads, pads_end=pads,
                    dilations=list(s.dilation), output_padding=list(s.output_padding))
        if g == 1:
            return ops.convolution_backprop_data(data, ops.constant(w), **conv)
        wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
        return ops.group_convolution_backprop_data(
            data, ops.constant(np.ascontiguousarray(wg)), **conv)
    if g == 1:  # w[k, c, ...]
        return ops.convolution(data, ops.constant(w), list(s.stride), pads, pads,
                               list(s.dilation))
    wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
    return ops.group_convolution(data, ops.constant(np.ascontiguousarray(wg)),
                                 list(s.stride), pads, pads, list(s.dilation))


def _transpose(ops, data, perm):
    return ops.transpose(data, ops.constant(np.asarray(perm, np.int64)))


def build_model(conv_type: str, spec, weights, layout: str = "nchw"):
    """The one-layer openvino.Model: one f32 input, one output, both in the `layout`
    contract (Transposes around the NCHW convolution for "nhwc")."""
    import openvino

    from harness.peers.layer import deployed_layer

    ops = _opset()
    layer = deployed_layer(conv_type, spec, weights)
    rank = spec.ndim + 2
    x = ops.parameter(shape_in(spec.input_shape, layout), openvino.Type.f32, name="x")
    y = _transpose(ops, x, to_first_perm(rank)) if layout == "nhwc" else x
    for s in layer.stages:
        y = _stage(ops, y, s)
    if layer.shuffle_groups:
        n, k, *rest = spec.output_shape
        g = layer.shuffle_groups
        y = ops.reshape(y, ops.constant(np.asarray([n, g, k // g, *rest], np.int64)), False)
        y = ops.transpose(y, ops.constant(np.asarray([0, 2, 1, *range(3, 3 + len(rest))],
                                                     np.int64)))
        y = ops.reshape(y, ops.constant(np.asarray(spec.output_shape, np.int64)), False)
    if layout == "nhwc":
        y = _transpose(ops, y, to_last_perm(rank))
    return openvino.Model([ops.result(y)], [x], f"{conv_type}_layer")


def compile_config(threads: int | None) -> dict:
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def function(conv_type: str, spec, x, weights, mode: str = "prepared",
             threads: int | None = None, layout: str = "nchw") -> Callable:
    import openvino

    why = reason(conv_type, spec, mode, layout)
    if why:
        raise ValueError(f"mode: {why}")
    compiled = openvino.Core().compile_model(build_model(conv_type, spec, weights, layout),
                                             "CPU",
                                             compile_config(threads))
    request = compiled.create_infer_request()
    xin = np.ascontiguousarray(x, dtype=np.float32)

    def prepared():
        request.infer({0: xin}, share_inputs=True)
        return request.get_output_tensor(0).data

    prepared()  # the first inference initialises the compiled primitives
    return prepared
