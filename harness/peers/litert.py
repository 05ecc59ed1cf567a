"""LiteRT (TensorFlow Lite's runtime, `ai-edge-litert`) with its XNNPACK delegate, one
one-layer .tflite model per benchmarked layer.

`prepared` mode only: an interpreter with its tensors allocated is a prepared plan (the
delegate packs the constant weights once). The model is written here with the
flatbuffer schema the wheel ships (`ai_edge_litert.schema_py_generated`), so TensorFlow
is not needed; `Interpreter(model_content=..., num_threads=the sweep's threads)` applies
XNNPACK by default, and the whole graph must become one delegate node (else the
callable is refused: the reference kernels are not what a LiteRT user runs).

NHWC-native, weights OHWI. The layer (`harness.peers.layer`) in TFLite's operators:
CONV_2D (grouped when the weights have fewer input channels than the input),
DEPTHWISE_CONV_2D ([1, kh, kw, c] weights) for one filter per channel, two
convolutions for depthwise separable, the folded full kernel for the factored types,
TRANSPOSE_CONV then SLICE for transposed (TFLite has no symmetric padding or output
padding there: the full VALID output is cropped as PyTorch does), and
RESHAPE/TRANSPOSE/RESHAPE for the channel shuffle. TFLite pads only SAME or VALID:
where PyTorch's symmetric padding is neither, an explicit PAD precedes a VALID
convolution (still inside the delegate). Each convolution has a zero bias, as a
deployed layer has a bias (or a folded batch norm). In the NCHW contract a TRANSPOSE
on either side reorders inside the graph, as a model converted from PyTorch has them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.peers.layouts import shape_in, to_first_perm, to_last_perm

NAME = "litert"
MODES = ("prepared",)
NATIVE_LAYOUT = "nhwc"
INSTALL = "pip install ai-edge-litert"


def missing() -> str | None:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        import ai_edge_litert.schema_py_generated  # noqa: F401
        import flatbuffers  # noqa: F401
    except ImportError:
        return f"LiteRT is not installed ({INSTALL})"
    return None


def reason(conv_type: str, spec, mode: str, layout: str = "nchw") -> str | None:
    if mode != "prepared":
        return ("LiteRT has no call mode: an interpreter is a prepared plan whose delegate "
                "packs the constant weights once")
    if spec.ndim != 2:
        return "LiteRT's XNNPACK delegate has no 3-D convolution"
    if conv_type == "transposed2d":
        if spec.groups != 1:
            return "TFLite's TRANSPOSE_CONV has no groups"
        if any(d != 1 for d in spec.dilation):
            return "TFLite's TRANSPOSE_CONV has no dilation"
        if any(o > p for o, p in zip(spec.output_padding, spec.padding)):
            return "output padding beyond the padding is not expressed for TRANSPOSE_CONV"
    return None


def threading_layer() -> str:
    return "litert-xnnpack"


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple:
    """TFLite's SAME padding before the data, and its output size, on one axis."""
    same_out = -(-size // stride)
    total = max((same_out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, same_out


class _Graph:
    """A one-subgraph TFLite model under construction (the schema's object API)."""

    def __init__(self):
        from ai_edge_litert import schema_py_generated as tfl

        self.tfl = tfl
        self.buffers = [tfl.BufferT()]  # buffer 0: the empty sentinel the format wants
        self.tensors, self.operators, self.codes = [], [], {}

    def tensor(self, shape, data=None, dtype=np.float32) -> int:
        t = self.tfl.TensorT()
        t.shape = [int(s) for s in shape]
        t.type = self.tfl.TensorType.INT32 if dtype == np.int32 else \
            self.tfl.TensorType.FLOAT32
        t.name = f"t{len(self.tensors)}"
        t.buffer = 0
        if data is not None:
            buf = self.tfl.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data, dtype=dtype).tobytes(),
                                     dtype=np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def constant(self, values, dtype=np.int32) -> int:
        values = np.asarray(values, dtype=dtype)
        return self.tensor(values.shape, values, dtype)

    def op(self, name: str, inputs, out_shape, options=None, options_name=None) -> int:
        tfl = self.tfl
        code = getattr(tfl.BuiltinOperator, name)
        self.codes.setdefault(code, len(self.codes))
        out = self.tensor(out_shape)
        o = tfl.OperatorT()
        o.opcodeIndex = self.codes[code]
        o.inputs, o.outputs = list(inputs), [out]
        if options is not None:
            o.builtinOptionsType = getattr(tfl.BuiltinOptions, options_name)
            o.builtinOptions = options
        self.operators.append(o)
        return out

    def serialize(self, inputs, outputs) -> bytes:
        import flatbuffers

        tfl = self.tfl
        sub = tfl.SubGraphT()
        sub.tensors, sub.operators = self.tensors, self.operators
        sub.inputs, sub.outputs = list(inputs), list(outputs)
        model = tfl.ModelT()
        model.version = 3
        model.description = "convbench one-layer model"
        model.subgraphs = [sub]
        model.buffers = self.buffers
        codes = sorted(self.codes, key=self.codes.get)
        model.operatorCodes = []
        for code in codes:
            oc = tfl.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code,
                                           tfl.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            model.operatorCodes.append(oc)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _conv_options(g: _Graph, cls, stride, dilation, padding: str):
    o = cls()
    o.padding = getattr(g.tfl.Padding, padding)
    o.strideH, o.strideW = (int(s) for s in stride)
    o.dilationHFactor, o.dilationWFactor = (int(d) for d in dilation)
    return o


def _conv_stage(g: _Graph, data: int, shape: list, s) -> tuple[int, list]:
    """One PyTorch-style convolution stage on NHWC `data` of `shape`."""
    n, h, w, c = shape
    k, kh, kw = s.weight.shape[0], *s.weight.shape[2:]
    out_hw = [(size + 2 * p - d * (kk - 1) - 1) // st + 1 for size, p, d, kk, st in zip(
        (h, w), s.padding, s.dilation, (kh, kw), s.stride)]
    same = [_same_pads(size, kk, st, d) for size, kk, st, d in zip(
        (h, w), (kh, kw), s.stride, s.dilation)]
    if not any(s.padding):
        padding = "VALID"
    elif all(before == p and same_out == o
             for (before, same_out), p, o in zip(same, s.padding, out_hw)):
        padding = "SAME"  # PyTorch's rows past the last window are never read
    else:
        ph, pw = s.padding
        data = g.op("PAD", [data, g.constant([[0, 0], [ph, ph], [pw, pw], [0, 0]])],
                    [n, h + 2 * ph, w + 2 * pw, c])
        padding = "VALID"
    out_shape = [n, *out_hw, k]
    bias = g.tensor([k], np.zeros(k, np.float32))
    if s.groups == c and k == c:  # one filter per channel
        weight = g.tensor([1, kh, kw, c], s.weight[:, 0].transpose(1, 2, 0)[None])
        o = _conv_options(g, g.tfl.DepthwiseConv2DOptionsT, s.stride, s.dilation, padding)
        o.depthMultiplier = 1
        return g.op("DEPTHWISE_CONV_2D", [data, weight, bias], out_shape, o,
                    "DepthwiseConv2DOptions"), out_shape
    weight = g.tensor([k, kh, kw, c // s.groups], s.weight.transpose(0, 2, 3, 1))
    o = _conv_options(g, g.tfl.Conv2DOptionsT, s.stride, s.dilation, padding)
    return g.op("CONV_2D", [data, weight, bias], out_shape, o, "Conv2DOptions"), out_shape


def _transposed_stage(g: _Graph, data: int, shape: list, s) -> tuple[int, list]:
    """PyTorch's conv_transpose2d: the full VALID TRANSPOSE_CONV output, then the crop of
    `padding` before and `padding - output_padding` after."""
    n, h, w, c = shape
    k, kh, kw = s.weight.shape[1], *s.weight.shape[2:]
    full = [(size - 1) * st + kk for size, st, kk in zip((h, w), s.stride, (kh, kw))]
    out_hw = [f - 2 * p + op for f, p, op in zip(full, s.padding, s.output_padding)]
    weight = g.tensor([k, kh, kw, c], s.weight.transpose(1, 2, 3, 0))  # [c, k] -> OHWI
    bias = g.tensor([k], np.zeros(k, np.float32))
    o = g.tfl.TransposeConvOptionsT()
    o.padding = g.tfl.Padding.VALID
    o.strideH, o.strideW = (int(st) for st in s.stride)
    y = g.op("TRANSPOSE_CONV", [g.constant([n, *full, k]), weight, data, bias],
             [n, *full, k], o, "TransposeConvOptions")
    out_shape = [n, *out_hw, k]
    if out_hw == full:
        return y, out_shape
    ph, pw = s.padding
    return g.op("SLICE", [y, g.constant([0, ph, pw, 0]), g.constant(out_shape)],
                out_shape), out_shape


def _transpose(g: _Graph, data: int, shape: list, perm) -> tuple[int, list]:
    out = [shape[i] for i in perm]
    return g.op("TRANSPOSE", [data, g.constant(perm)], out), out


def _reshape(g: _Graph, data: int, shape: list) -> int:
    o = g.tfl.ReshapeOptionsT()
    o.newShape = list(shape)
    return g.op("RESHAPE", [data, g.constant(shape)], shape, o, "ReshapeOptions")


def build_model(conv_type: str, spec, weights, layout: str = "nchw") -> bytes:
    """The one-layer .tflite flatbuffer: input and output in the `layout` contract."""
    from harness.peers.layer import deployed_layer

    why = reason(conv_type, spec, "prepared", layout)
    if why:
        raise ValueError(f"conv_type: {why}")
    layer = deployed_layer(conv_type, spec, weights)
    g = _Graph()
    x = g.tensor(shape_in(spec.input_shape, layout))
    shape = shape_in(spec.input_shape, "nhwc")
    y = x
    if layout == "nchw":
        y, shape = _transpose(g, y, list(spec.input_shape), to_last_perm(4))
    for s in layer.stages:
        stage = _transposed_stage if s.transposed else _conv_stage
        y, shape = stage(g, y, shape, s)
    if layer.shuffle_groups:
        n, h, w, k = shape
        grp = layer.shuffle_groups
        y = _reshape(g, y, [n, h, w, grp, k // grp])
        y, _ = _transpose(g, y, [n, h, w, grp, k // grp], [0, 1, 2, 4, 3])
        y = _reshape(g, y, shape)
    if layout == "nchw":
        y, shape = _transpose(g, y, shape, to_first_perm(4))
    return g.serialize([x], [y])


def interpreter(model: bytes, threads: int | None):
    """The allocated interpreter; refused unless XNNPACK took the whole graph."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model, num_threads=int(threads) if threads else None)
    interp.allocate_tensors()
    if not fully_delegated(interp):
        nodes = ", ".join(op["op_name"] for op in interp._get_ops_details())
        raise ValueError(f"conv_type: LiteRT's XNNPACK delegate did not take the whole graph "
                         f"(nodes: {nodes})")
    return interp


def fully_delegated(interp) -> bool:
    """One delegate node from the model's input to its output. (The node list keeps the
    nodes a delegate replaced beside it: a graph split around an operator the delegate
    refused has two delegate nodes, or one that ends on an intermediate tensor.)"""
    delegates = [op for op in interp._get_ops_details() if op["op_name"] == "DELEGATE"]
    if len(delegates) != 1:
        return False
    x = [d["index"] for d in interp.get_input_details()]
    y = [d["index"] for d in interp.get_output_details()]
    return set(x) <= set(delegates[0]["inputs"]) and list(delegates[0]["outputs"]) == y


def function(conv_type: str, spec, x, weights, mode: str = "prepared",
             threads: int | None = None, layout: str = "nchw") -> Callable:
    why = reason(conv_type, spec, mode, layout)
    if why:
        raise ValueError(f"mode: {why}")
    interp = interpreter(build_model(conv_type, spec, weights, layout), threads)
    x_index = interp.get_input_details()[0]["index"]
    y_index = interp.get_output_details()[0]["index"]
    xin = np.ascontiguousarray(x, dtype=np.float32)

    def prepared():
        interp.set_tensor(x_index, xin)
        interp.invoke()
        return interp.get_tensor(y_index)

    prepared()  # the first run sets up the delegate's operators
    return prepared
