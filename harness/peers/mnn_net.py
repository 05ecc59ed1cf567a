"""MNN (Alibaba's inference engine, its pip wheel), one one-layer model per benchmarked
layer, built with its expression API (`MNN.expr`) and saved as an .mnn file. Its
`mnnconvert` command-line wrapper is never used: it installs a logging package and
sends usage data.

`prepared` mode only: a session is a prepared plan (weights transformed once when it is
created). Session: CPU, `numThread` = the sweep's threads, precision "high" (float32;
"low" would be fp16/bf16 where the CPU has it), and Winograd memory level 2
(`setSessionHint(3, 2)`): MNN's default Winograd tiles exceed a 1e-4 relative error on
3x3 layers, level 2 passes. MNN overwrites its input tensor during a run, so the input
is copied in on every timed call (as a user feeding a new image does), and the output
is copied out to a host tensor.

The layer (`harness.peers.layer`): conv2d with explicit symmetric padding (one group or
depthwise: grouped ones come out wrong from the expression API and are skipped),
two convolutions for depthwise separable, the folded full kernel for the factored
types, conv2d_transpose (full output, then cropped as PyTorch pads it), and
channel_shuffle. Inside, MNN computes in its blocked NC4HW4 layout; the model's input
and output are NCHW (its converters' default), or NHWC in the NHWC contract with the
conversion in the graph (so inside the timed run).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.peers.layouts import shape_in

NAME = "mnn"
MODES = ("prepared",)
NATIVE_LAYOUT = "nchw"
INSTALL = "pip install mnn"
WINOGRAD_MEMORY_LEVEL = (3, 2)  # Interpreter::HintMode WINOGRAD_MEMORY_LEVEL, level 2


def missing() -> str | None:
    try:
        import MNN  # noqa: F401
        import MNN.expr  # noqa: F401
    except ImportError:
        return f"MNN is not installed ({INSTALL})"
    return None


def reason(conv_type: str, spec, mode: str, layout: str = "nchw") -> str | None:
    if mode != "prepared":
        return ("MNN has no call mode: a session is a prepared plan whose weights are "
                "transformed once when it is created")
    if spec.ndim != 2:
        return "3-D layers are not written for MNN here (its 2-D expressions only)"
    if conv_type == "transposed2d" and any(d != 1 for d in spec.dilation):
        return "MNN's conv2d_transpose is not checked with dilation here"
    if spec.groups not in (1, spec.c):
        # its expression API takes a convolution's input count from the weights (c/g),
        # which is right for one group and for depthwise only (checked against the oracle)
        return "MNN's expression API builds grouped convolutions (1 < groups < c) wrongly"
    return None


def threading_layer() -> str:
    return "mnn-threadpool"


def _const(F, a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return F.const(a, list(a.shape), F.NCHW)


def _stage(F, data, s):
    kh, kw = s.weight.shape[2:]
    if s.transposed:  # full (unpadded) output, then PyTorch's crop
        k = s.weight.shape[1] * s.groups
        y = F.conv2d_transpose(data, _const(F, s.weight), _const(F, np.zeros(k)),
                               tuple(s.stride), (0, 0), tuple(s.dilation), s.groups,
                               F.VALID)
        return y, (s.padding, s.output_padding)
    k = s.weight.shape[0]
    y = F.conv2d(data, _const(F, s.weight), _const(F, np.zeros(k)), tuple(s.stride),
                 tuple(s.padding), tuple(s.dilation), s.groups, F.CAFFE)
    return y, None


def write_model(conv_type: str, spec, weights, path, layout: str = "nchw") -> Path:
    """The one-layer model as an .mnn file: input `x`, output `y`, in `layout`."""
    import MNN.expr as F

    from harness.peers.layer import deployed_layer

    layer = deployed_layer(conv_type, spec, weights)
    fmt = F.NHWC if layout == "nhwc" else F.NCHW
    x = F.placeholder(shape_in(spec.input_shape, layout), fmt)
    x.name = "x"
    y = F.convert(x, F.NC4HW4)
    for s in layer.stages:
        y, crop = _stage(F, y, s)
        if crop:
            (ph, pw), (oph, opw) = crop
            y = F.convert(y, F.NCHW)
            full = y.shape
            y = F.slice(y, F.const(np.asarray([0, 0, ph, pw], np.int32), [4], F.NCHW,
                                   F.int),
                        F.const(np.asarray([full[0], full[1], full[2] - 2 * ph + oph,
                                            full[3] - 2 * pw + opw], np.int32), [4],
                                F.NCHW, F.int))
            y = F.convert(y, F.NC4HW4)
    if layer.shuffle_groups:
        y = F.channel_shuffle(y, layer.shuffle_groups)
    y = F.convert(y, fmt)
    y.name = "y"
    F.save([y], str(path))
    return Path(path)


def session(conv_type: str, spec, weights, threads: int | None, layout: str = "nchw"):
    """(interpreter, session) with the model loaded in the configuration above."""
    import MNN

    with tempfile.TemporaryDirectory(prefix="convbench-mnn-") as folder:
        path = write_model(conv_type, spec, weights, Path(folder) / "layer.mnn", layout)
        interp = MNN.Interpreter(str(path))
        interp.setSessionHint(*WINOGRAD_MEMORY_LEVEL)
        config = {"backend": "CPU", "precision": "high"}
        if threads:
            config["numThread"] = int(threads)
        sess = interp.createSession(config)
    return interp, sess


def function(conv_type: str, spec, x, weights, mode: str = "prepared",
             threads: int | None = None, layout: str = "nchw") -> Callable:
    import MNN

    why = reason(conv_type, spec, mode, layout)
    if why:
        raise ValueError(f"mode: {why}")
    interp, sess = session(conv_type, spec, weights, threads, layout)
    dims = MNN.Tensor_DimensionType_Tensorflow if layout == "nhwc" else \
        MNN.Tensor_DimensionType_Caffe
    xin = np.ascontiguousarray(x, dtype=np.float32)
    host_in = MNN.Tensor(tuple(xin.shape), MNN.Halide_Type_Float, xin, dims)
    out_shape = tuple(shape_in(spec.output_shape, layout))
    y = np.zeros(out_shape, np.float32)
    host_out = MNN.Tensor(out_shape, MNN.Halide_Type_Float, y, dims)
    inp, out = interp.getSessionInput(sess), interp.getSessionOutput(sess)

    def prepared():
        inp.copyFrom(host_in)
        interp.runSession(sess)
        out.copyToHostTensor(host_out)
        return np.array(host_out.getNumpyData(), dtype=np.float32).reshape(out_shape)

    prepared()  # the first run allocates the session's buffers
    return prepared
